"""``edgebench decide``: the variant that ships per device, its manifest and signature."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from synthetic_runs import FINGERPRINT, make_run, ok, sha

from edgebench.harness.analysis.budgets import parse_budgets
from edgebench.harness.analysis.decide import decide
from edgebench.harness.analysis.identity import device_identity
from edgebench.harness.analysis.sign import NAMESPACE
from edgebench.harness.cli import main

BUDGETS = """
budgets:
  - p50_ms: 16
    top1_vs_parent: 0.98
"""


def variants(device="pi4", slow=1.0):
    """net.onnx (the fp32 parent) and three variants, plus a model without variants."""
    return [
        ok("net.onnx", device, p50_ms=20 * slow, top1=0.80, size_bytes=16_000_000),
        ok(
            "net.fp16.onnx",
            device,
            p50_ms=15 * slow,
            top1=0.80,
            size_bytes=8_000_000,
            variant="fp16",
            parent="net.onnx",
        ),
        ok(
            "net.int8.onnx",
            device,
            p50_ms=8 * slow,
            top1=0.79,
            size_bytes=4_000_000,
            variant="int8",
            parent="net.onnx",
        ),
        ok(
            "net.pruned.onnx",
            device,
            p50_ms=6 * slow,
            top1=0.70,
            size_bytes=3_000_000,
            variant="pruned",
            parent="net.onnx",
        ),
        ok("other.tflite", device, p50_ms=5 * slow, top1=0.6),
    ]


@pytest.fixture
def run(tmp_path):
    slow_fp = dict(FINGERPRINT, hostname="zero", board_model="Pi Zero 2")
    records = variants() + [r.replace(fingerprint=slow_fp) for r in variants("zero", 3.0)]
    return make_run(tmp_path / "res", records)


def chosen(choices):
    return {
        (c.device, c.model): c.chosen.record.artifact["name"] if c.chosen else None for c in choices
    }


@pytest.mark.parametrize(
    "profile, pick",
    [
        ("most-accurate", "net.fp16.onnx"),
        ("fastest", "net.int8.onnx"),
        ("smallest", "net.int8.onnx"),
    ],
)
def test_profiles_pick_among_variants_within_budgets(run, profile, pick):
    choices = decide(run, parse_budgets(BUDGETS, "b.yaml"), profile)
    assert chosen(choices) == {
        ("pi4", "net.onnx"): pick,
        ("pi4", "other.tflite"): "other.tflite",
        ("zero", "net.onnx"): None,
        ("zero", "other.tflite"): "other.tflite",
    }


def test_explanations_name_the_broken_budget_and_the_pareto_set(run):
    (net, *_) = decide(run, parse_budgets(BUDGETS, "b.yaml"), "fastest")
    broken = {v.record.artifact["name"]: [b.check for b in v.broken] for v in net.variants}
    assert broken == {
        "net.onnx": ["p50_ms"],
        "net.fp16.onnx": [],
        "net.int8.onnx": [],
        "net.pruned.onnx": ["top1_vs_parent"],
    }
    # the parent is dominated by fp16 (faster, as accurate); the rest trade speed for accuracy
    assert sorted(r.artifact["name"] for r in net.front) == [
        "net.fp16.onnx",
        "net.int8.onnx",
        "net.pruned.onnx",
    ]


def test_without_budgets_everything_measured_fits(run):
    assert chosen(decide(run, None, "fastest"))[("zero", "net.onnx")] == "net.pruned.onnx"


def test_cli_writes_the_manifest_and_exits_1_when_a_device_has_no_fit(run, tmp_path, capsys):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    assert main(["decide", str(run.path), "--budgets", str(budgets)]) == 1
    out = capsys.readouterr().out
    assert "no variant fits" in out
    assert "p50_ms 60.0" in out and "limit ≤ 16 ms (budgets[0])" in out
    doc = json.loads((run.path / "manifest.json").read_text())
    assert doc["run_id"] == run.run_id and doc["profile"] == "most-accurate"
    first = doc["deployments"][0]
    assert first["device"] == "pi4" and first["artifact"] == "net.fp16.onnx"
    assert first["sha256"] == sha("net.fp16.onnx") and first["variant"] == "fp16"
    assert first["device_identity"]["id"] == device_identity(variants()[0])
    assert first["device_identity"]["board_model"] == "Raspberry Pi 4"
    assert first["measured"]["top1"] == 0.80 and first["measured"]["p50_ms"] > 14
    assert first["budgets"] == [
        {"device": "*", "artifact": "*", "p50_ms": 16.0, "top1_vs_parent": 0.98}
    ]
    assert set(first["rejected"]) == {"net.onnx", "net.pruned.onnx"}
    zero = [d for d in doc["deployments"] if d["device"] == "zero"]
    assert [d["artifact"] for d in zero] == [None, "other.tflite"]


needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (OpenSSH)"
)


def make_key(path: Path) -> Path:
    """A fresh ed25519 signing key (no passphrase) for ci@example."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci@example", "-f", str(path)],
        check=True,
    )
    return path


def verifies(manifest: Path, key: Path) -> bool:
    """Whether ``manifest.sig`` verifies offline with ``key``'s public half."""
    signers = manifest.with_name("allowed_signers")
    signers.write_text("ci@example %s" % key.with_suffix(".pub").read_text())
    argv = ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "ci@example"]
    argv += ["-n", NAMESPACE, "-s", str(manifest) + ".sig"]
    with open(manifest, "rb") as fh:
        return subprocess.run(argv, stdin=fh, capture_output=True).returncode == 0


@needs_ssh_keygen
def test_signed_manifest_verifies_offline_and_tampering_fails(run, tmp_path):
    key = make_key(tmp_path / "id_ed25519")
    manifest = tmp_path / "deploy" / "manifest.json"
    assert main(["decide", str(run.path), "--manifest", str(manifest), "--sign-key", str(key)]) == 0
    assert verifies(manifest, key)
    genuine = manifest.read_text()
    assert '"artifact": "net.fp16.onnx"' in genuine
    manifest.write_text(genuine.replace('"artifact": "net.fp16.onnx"', '"artifact": "net.onnx"'))
    assert not verifies(manifest, key)
    # signing again replaces the stale signature instead of keeping it
    assert main(["decide", str(run.path), "--manifest", str(manifest), "--sign-key", str(key)]) == 0
    assert verifies(manifest, key)


def test_a_missing_key_is_unusable_input(run, tmp_path, capsys):
    assert main(["decide", str(run.path), "--sign-key", str(tmp_path / "nokey")]) == 2
    assert "nokey: no such key file" in capsys.readouterr().err


# -- several runs decide as one ------------------------------------------------------------


def test_runs_decide_as_one_by_board_identity_newest_first(tmp_path, capsys):
    """Last week's fp32 and fp16 on the board (named pi4 then), today's int8 on the same
    board renamed lab-pi with a new hostname: one family, one choice, newest per slot."""
    fp = dict(FINGERPRINT, machine_id="m-1")
    old = [
        r.replace(fingerprint=fp, started_at="2026-11-01T00:00:00+00:00") for r in variants()[:2]
    ]
    new_fp = dict(fp, hostname="ci-7f3a")
    new = [
        r.replace(device="lab-pi", fingerprint=new_fp, started_at="2026-12-01T00:00:00+00:00")
        for r in (variants(slow=1.2)[0], variants()[2])
    ]
    first = make_run(tmp_path / "a", old)
    second = make_run(tmp_path / "b", new)
    (choice,) = [c for c in decide(first, None, "fastest", [second]) if c.model == "net.onnx"]
    assert choice.device == "pi4"  # the name the first run gave the board
    names = {str(v.record.artifact["name"]): v.record for v in choice.variants}
    assert set(names) == {"net.onnx", "net.fp16.onnx", "net.int8.onnx"}
    assert names["net.onnx"].stats["p50_ms"] == pytest.approx(24, rel=0.05)  # today's, not 20
    assert choice.chosen is not None
    assert choice.chosen.record.artifact["name"] == "net.int8.onnx"
    out = tmp_path / "m.json"
    code = main(["decide", str(first.path), str(second.path), "--manifest", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["runs"] == [first.run_id, second.run_id]


def test_unlike_runs_are_refused_naming_the_key_unless_allowed(tmp_path, capsys):
    threads = lambda r, n: r.replace(settings=dict(r.settings, threads=n))  # noqa: E731
    first = make_run(tmp_path / "a", [threads(variants()[0], 2)])
    second = make_run(tmp_path / "b", [threads(variants()[2], 1)])
    code = main(["decide", str(first.path), str(second.path)])
    err = capsys.readouterr().err
    assert code == 2 and "not comparable: threads 2 → 1" in err and "--allow-different" in err
    assert len(err.strip().splitlines()) == 1
    assert not (first.path / "manifest.json").exists()
    code = main(["decide", str(first.path), str(second.path), "--allow-different", "threads"])
    assert code == 0 and (first.path / "manifest.json").exists()
