"""A/B on the board: `check --ab` measures a candidate and its baseline in one window,
rounds interleaved, and judges the pairs."""

import json
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
from conftest import edgebench
from mlp_onnx import mlp
from sshd import Sshd, skip_reason

from edgebench.agent.record import Record
from edgebench.agent.verify import sha256_file
from edgebench.harness.analysis.compare_stats import (
    NOT_SIGNIFICANT,
    PAIRED,
    SLOWER,
    compare,
    compare_paired,
)

needs_sshd = pytest.mark.skipif(bool(skip_reason()), reason=skip_reason() or "")
SHORT = ["--min-seconds", "0.15", "--warmup-seconds", "0.05", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main/model.onnx and a candidate/model.onnx ten times its work: one slot (a
    difference no load on a shared CI machine hides)."""
    root = tmp_path_factory.mktemp("ab")
    mlp(root / "main" / "model.onnx", 4)
    mlp(root / "slow" / "model.onnx", 40)
    (root / "same").mkdir()
    (root / "same" / "model.onnx").write_bytes((root / "main" / "model.onnx").read_bytes())
    return root


def check(args: List[str], cwd: Path):
    proc = edgebench(["check", "--json"] + args + SHORT, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return proc, json.loads(proc.stdout)


def regression(doc):
    (found,) = [v for v in doc["verdicts"] if v["check"] == "regression"]
    return found


def stored(run: Path) -> dict:
    recs = [Record.from_dict(json.loads(p.read_text())) for p in (run / "raw").rglob("*.json")]
    return {r.artifact["name"]: r for r in recs}


def latest(out: Path) -> Path:
    return (out / "latest").resolve()


def test_a_a_passes_and_rounds_are_paired_in_one_run(models, tmp_path):
    proc, doc = check(
        [
            "--ab",
            str(models / "same" / "model.onnx"),
            "--baseline",
            str(models / "main" / "model.onnx"),
        ]
        + ["--rounds", "4", "--out", str(tmp_path / "r")],
        tmp_path,
    )
    assert proc.returncode == 0 and doc["verdict"] == "pass", proc.stdout
    found = regression(doc)
    assert found["verdict"] == "pass" and "4 A/B pairs" in found["detail"]
    assert "model changed" not in found["detail"]  # the same file: nothing changed
    recs = stored(latest(tmp_path / "r"))
    assert set(recs) == {"model.onnx", "model.onnx@baseline"}
    base, cand = recs["model.onnx@baseline"], recs["model.onnx"]
    assert base.artifact["baseline_of"] == "model.onnx" and "baseline_of" not in cand.artifact
    assert len(base.round_samples()) == len(cand.round_samples()) == 4
    order = sorted(
        (r["started_at"], name, r["round"]) for name, rec in recs.items() for r in rec.rounds
    )
    names = ("model.onnx@baseline", "model.onnx")
    assert [(n, k) for _, n, k in order] == [
        (n, k) for k in (1, 2, 3, 4) for n in (names if k % 2 else names[::-1])
    ]
    # the stored A/B run is judged the same way again, from its files alone
    again = edgebench(["check", str(latest(tmp_path / "r")), "--json"], cwd=tmp_path)
    assert again.returncode == 0 and regression(json.loads(again.stdout))["verdict"] == "pass"


def test_a_slower_model_under_the_same_name_is_a_regression(models, tmp_path):
    proc, doc = check(
        [
            "--ab",
            str(models / "slow" / "model.onnx"),
            "--baseline",
            str(models / "main" / "model.onnx"),
        ]
        + ["--rounds", "4", "--out", str(tmp_path / "r")],
        tmp_path,
    )
    assert proc.returncode == 1 and doc["verdict"] == "fail"
    found = regression(doc)
    assert found["verdict"] == "fail" and found["detail"].startswith("slower:")
    assert "4 A/B pairs" in found["detail"] and "model changed" in found["detail"]
    ratio = float(found["measured"].split("×")[0])
    assert ratio > 3


def test_the_baseline_from_a_stored_run(models, tmp_path):
    """A stored run's artifact of the same name is the baseline: its file while unchanged."""
    base_run = edgebench(
        ["run", "--model", str(models / "main" / "model.onnx"), "--out", str(tmp_path / "b")]
        + SHORT,
        cwd=tmp_path,
    )
    assert base_run.returncode == 0, base_run.stderr
    proc, doc = check(
        ["--ab", str(models / "slow" / "model.onnx"), "--baseline", str(latest(tmp_path / "b"))]
        + ["--rounds", "3", "--out", str(tmp_path / "r")],
        tmp_path,
    )
    assert proc.returncode == 1 and regression(doc)["detail"].startswith("slower:")
    base = stored(latest(tmp_path / "r"))["model.onnx@baseline"]
    assert base.artifact["sha256"] == sha256_file(models / "main" / "model.onnx")
    # no such slot in that run: exit 2, one line
    other = mlp(tmp_path / "x" / "other.onnx", 2)
    proc = edgebench(
        ["check", "--ab", str(other), "--baseline", str(latest(tmp_path / "b"))], cwd=tmp_path
    )
    assert proc.returncode == 2 and "no artifact named 'other.onnx'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ab", "{slow}"], "needs --baseline"),
        (["--ab", "{slow}", "--baseline", "{main}", "--rounds", "1"], "2 or more"),
        (["--ab", "{slow}", "--baseline", "{tflite}"], "not comparable: format tflite → onnx"),
        (["RUN", "--ab", "{slow}", "--baseline", "{main}"], "drop RUN"),
        ([], "needs a RUN"),
    ],
)
def test_bad_ab_input_is_one_line_and_exit_2(models, tmp_path, args, message):
    from conftest import EXAMPLES

    paths = {
        "slow": str(models / "slow" / "model.onnx"),
        "main": str(models / "main" / "model.onnx"),
        "tflite": str(EXAMPLES / "digits.tflite"),
    }
    proc = edgebench(["check"] + [a.format(**paths) for a in args], cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "results").exists()


@pytest.mark.skipif(bool(skip_reason()), reason=skip_reason() or "")
def test_over_ssh_the_baseline_is_the_boards_own_copy(models, tmp_path, server: Sshd, home):
    """The stored run's file is gone from this host: the board's blob is used, checked by
    sha256 there; once it is tampered with the baseline fails and so does the check."""
    gone = mlp(tmp_path / "old" / "model.onnx", 4, width=96)
    inventory = tmp_path / "devices.yaml"
    workdir = tmp_path / "wd"
    inventory.write_text(
        "devices:\n" + server.device_yaml("board", python=sys.executable, workdir=str(workdir))
    )
    common = ["--devices-file", str(inventory)]
    first = edgebench(
        common
        + ["run", "--model", str(gone), "--devices", "board", "--out", str(tmp_path / "b")]
        + SHORT,
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    digest = sha256_file(gone)
    gone.unlink()
    args = common + ["check", "--json", "--ab", str(models / "slow" / "model.onnx")]
    args += ["--baseline", str(latest(tmp_path / "b")), "--devices", "board", "--rounds", "3"]
    proc = edgebench(args + ["--out", str(tmp_path / "r")] + SHORT, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr  # judged (its verdict: test_a_slower_…)
    found = regression(json.loads(proc.stdout))
    assert "3 A/B pairs" in found["detail"] and "model changed" in found["detail"], found
    run = json.loads((latest(tmp_path / "r") / "run.json").read_text())
    assert run["bytes_sent"]["board"] == (models / "slow" / "model.onnx").stat().st_size
    base = stored(latest(tmp_path / "r"))["model.onnx@baseline"]
    assert base.ok and base.artifact["sha256"] == digest

    blob = workdir / "blobs" / (digest + ".onnx")
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    proc = edgebench(args + ["--out", str(tmp_path / "t")] + SHORT, cwd=tmp_path)
    assert proc.returncode == 1
    found = regression(json.loads(proc.stdout))
    assert found["verdict"] == "fail"
    assert "not comparable: baseline failed: transfer-failed" in found["detail"]
    assert "no longer holds" in found["detail"]


# -- the statistics of pairs ----------------------------------------------------------------


def drifting_pairs(ratio: float, k: int, seed: int):
    """``k`` pairs of rounds on a board whose speed wanders by +-15% between pairs."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(k):
        level = 10 * (1 + rng.uniform(-0.15, 0.15))
        base = rng.normal(level, level * 0.02, 400)
        cand = rng.normal(level * ratio, level * ratio * 0.02, 400)
        pairs.append((base, cand))
    return pairs


def test_pairs_cancel_what_the_board_does():
    """The same 10% slowdown on a wandering board: separate measurements cannot show it,
    pairs measured back to back can."""
    pairs = drifting_pairs(1.10, 5, 1)
    paired = compare_paired(pairs)
    assert paired.method == PAIRED and paired.marker == SLOWER and paired.low > 1.05
    assert paired.ratio == pytest.approx(1.10, abs=0.02) and paired.rounds == (5, 5)
    apart = compare([b for b, _ in pairs], [c for _, c in pairs])
    assert apart.marker == NOT_SIGNIFICANT and apart.low < 1


def test_paired_a_a_is_not_significant_and_needs_two_pairs():
    change = compare_paired(drifting_pairs(1.0, 5, 2))
    assert change.marker == NOT_SIGNIFICANT and not change.regression
    assert change.ratio == pytest.approx(1.0, abs=0.01) and change.high - change.low < 0.03
    with pytest.raises(ValueError):
        compare_paired(drifting_pairs(1.0, 1, 3))
