"""``edgebench check``: budgets, failed measurements and regressions against a baseline."""

import xml.etree.ElementTree as ET

import pytest
from conftest import FAST, edgebench
from synthetic_runs import FINGERPRINT, failed, make_run, ok, sha

from edgebench.harness.analysis.budgets import FAIL, PASS, SKIP, parse_budgets
from edgebench.harness.analysis.gate import gate
from edgebench.harness.analysis.identity import device_identities, device_identity, same_board
from edgebench.harness.cli import main

BUDGETS = """
budgets:
  - device: arm
    artifact: "*.onnx"
    p50_ms: 12
  - device: jetson
    p50_ms: 1
"""


def by_check(verdicts):
    return {(v.device, v.artifact, v.check): v for v in verdicts}


def test_device_identity_follows_the_machine_not_the_name():
    a, b = ok("m.onnx", device="pi4"), ok("m.onnx", device="renamed")
    assert device_identity(a) == device_identity(b) and len(device_identity(a)) == 12
    other = ok("m.onnx", fingerprint=dict(FINGERPRINT, hostname="pi4-b"))
    assert device_identity(other) != device_identity(a)
    hot = ok("m.onnx", fingerprint=dict(FINGERPRINT, temps_c_before={"cpu": 80.0}))
    assert device_identity(hot) == device_identity(a)  # state is not identity
    lost = failed("x.onnx")
    assert device_identity(lost) is None
    assert device_identities([lost, a]) == {"pi4": device_identity(a)}


def test_board_identity_survives_a_new_hostname():
    board = dict(FINGERPRINT, machine_id="3f1c0a9e", board_serial=None)
    ci = ok("m.onnx", fingerprint=dict(board, hostname="runner-7f3a"))
    again = ok("m.onnx", fingerprint=dict(board, hostname="runner-c01d"))
    assert device_identity(ci) == device_identity(again) and same_board(ci, again)
    other = ok("m.onnx", fingerprint=dict(board, machine_id="9b2e4d71", hostname="runner-c01d"))
    assert device_identity(other) != device_identity(ci) and not same_board(other, again)
    # a record from before machine-id was read: the same board by its legacy identity
    old = ok("m.onnx", fingerprint=dict(FINGERPRINT, hostname="runner-7f3a"))
    assert same_board(old, ci) and not same_board(old, again)
    assert device_identity(old) == device_identity(ok("m.onnx", fingerprint=old.fingerprint))


def threads(record, n):
    return record.replace(settings=dict(record.settings, threads=n))


def test_a_different_measurement_definition_fails_unless_allowed(tmp_path):
    base = make_run(tmp_path, [threads(ok("m.onnx", p50_ms=10, seed=1), 2)])
    cand = make_run(tmp_path, [threads(ok("m.onnx", p50_ms=15, seed=2), 1)])
    (refused,) = [v for v in gate(cand, baseline=base) if v.check == "regression"]
    assert refused.verdict == FAIL and refused.detail == "not comparable: threads 2 → 1"
    (allowed,) = [v for v in gate(cand, None, base, ["threads"]) if v.check == "regression"]
    assert allowed.verdict == FAIL and allowed.detail.startswith("slower: +")
    assert allowed.detail.endswith("; threads 2 → 1 (allowed)")
    same = make_run(tmp_path, [threads(ok("m.onnx", p50_ms=10, seed=3), 2)])
    (passed,) = [v for v in gate(same, baseline=base) if v.check == "regression"]
    assert passed.verdict == PASS and "model changed" not in passed.detail


def test_budgets_failures_and_unfinished_jobs(tmp_path):
    store = make_run(
        tmp_path,
        [ok("fast.onnx", p50_ms=10), ok("slow.onnx", p50_ms=14), failed("broken.tflite")],
        tags={"pi4": ["arm", "pi"]},
        pending={"pi4": ["later.onnx"]},
    )
    out = by_check(gate(store, parse_budgets(BUDGETS, "b.yaml")))
    assert out[("pi4", "fast.onnx", "p50_ms")].verdict == PASS  # matched by tag
    slow = out[("pi4", "slow.onnx", "p50_ms")]
    assert slow.verdict == FAIL and slow.source == "budgets[0]"
    broken = out[("pi4", "broken.tflite", "measured")]
    assert broken.verdict == FAIL and "timeout" in broken.detail  # no budget needed
    assert out[("pi4", "later.onnx", "measured")].detail == "not measured (pending)"
    unused = out[("jetson", "*", "budgets[1]")]
    assert unused.verdict == SKIP and unused.detail == "matched no measurement"


def test_regression_against_a_baseline(tmp_path):
    base = make_run(
        tmp_path,
        [
            ok("same.onnx", p50_ms=10, seed=1),
            ok("slower.onnx", p50_ms=10, seed=2),
            ok("changed.onnx", p50_ms=10, digest="0" * 64),
            ok("same.onnx", device="pi4-twin", p50_ms=20, seed=3),
        ],
    )
    cand = make_run(
        tmp_path,
        [
            ok("same.onnx", p50_ms=10, seed=4),
            ok("slower.onnx", p50_ms=11, seed=5),
            ok("changed.onnx", p50_ms=10),
            ok("new.onnx"),
            ok("same.onnx", device="elsewhere", fingerprint=dict(FINGERPRINT, hostname="other")),
        ],
    )
    out = by_check(gate(cand, baseline=base))
    same = out[("pi4", "same.onnx", "regression")]
    assert same.verdict == PASS and same.detail.startswith("not significant")  # not twin's
    slower = out[("pi4", "slower.onnx", "regression")]
    assert slower.verdict == FAIL and slower.detail.startswith("slower: +")
    # ratio of medians; one round a side: the interval carries the assumed process spread
    assert slower.measured == "1.098× [1.010–1.195]"
    changed = out[("pi4", "changed.onnx", "regression")]  # the same slot, a new file
    assert changed.verdict == PASS and changed.detail.endswith(
        "; model changed 00000000→%.8s" % sha("changed.onnx")
    )
    new = out[("pi4", "new.onnx", "regression")]
    assert new.verdict == SKIP and new.detail == "not comparable: artifact not in the baseline"
    elsewhere = out[("elsewhere", "same.onnx", "regression")]  # never a silent pass
    assert elsewhere.verdict == FAIL
    assert elsewhere.detail == "not comparable: device not in the baseline"
    budgets = parse_budgets("budgets: [{artifact: slower.onnx, regression: 0.2}]", "b")
    loose = by_check(gate(cand, budgets, base))[("pi4", "slower.onnx", "regression")]
    assert loose.verdict == PASS and loose.limit == "≤ +20%"


def test_cli_exit_codes_table_and_junit(tmp_path, capsys):
    store = make_run(tmp_path / "res", [ok("a.onnx", p50_ms=10), failed("b.tflite")])
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets: [{artifact: a.onnx, p50_ms: 20}]")
    junit = tmp_path / "out" / "junit.xml"
    assert main(["check", str(store.path), "--budgets", str(budgets), "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "error: timeout — no result in 600 s" in out and "2 passed, 1 failed" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    (failure,) = suite.iter("failure")
    assert failure.get("message") == "error: timeout — no result in 600 s"
    names = [c.get("name") for c in suite.iter("testcase")]
    assert "a.onnx: p50_ms budgets[0]" in names


def test_cli_unusable_inputs_exit_2(tmp_path, capsys):
    store = make_run(tmp_path / "res", [ok("a.onnx")])
    assert main(["check", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    bad = tmp_path / "budgets.yaml"
    bad.write_text("budgets: [{p50_ms: -1}]")
    assert main(["check", str(store.path), "--budgets", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "edgebench: error: %s: budgets[0].p50_ms: expected a positive number, got -1" % bad
    )
    assert main(["check", str(store.path), "--baseline", str(tmp_path / "nope")]) == 2


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("gate")
    proc = edgebench(["run", "--quiet"] + FAST + ["--out", "res"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd


@pytest.mark.parametrize("limit, code", [("1000", 0), ("0.00001", 1)])
def test_end_to_end_run_then_check(real_run, limit, code):
    (real_run / "budgets.yaml").write_text(
        "budgets:\n  - device: host\n    artifact: '*.tflite'\n    p50_ms: %s\n"
        "    top1: 0.9\n    peak_rss_mb: 2000\n" % limit
    )
    proc = edgebench(
        [
            "check",
            "res",
            "--budgets",
            "budgets.yaml",
            "--baseline",
            "res/latest",
            "--junit",
            "junit.xml",
        ],
        cwd=real_run,
    )
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "digits.int8.tflite" in proc.stdout and "p50_ms budgets[0]" in proc.stdout
    cases = list(ET.parse(real_run / "junit.xml").getroot().iter("testcase"))
    assert len(cases) == 3 * 2 + 2 * 3  # measured + regression each, three limits x2 tflite
    assert len(list(ET.parse(real_run / "junit.xml").getroot().iter("failure"))) == (
        0 if code == 0 else 2
    )
