"""Rounds in fresh processes, statistics over rounds, and the target-precision stop rule."""

import json

import pytest
from conftest import EXAMPLES, FAST, agent_run, edgebench
from synthetic_runs import V1_RUN, failed, ok

from edgebench.agent.protocol import JobError, parse_settings
from edgebench.agent.record import Record
from edgebench.agent.verify import sha256_file
from edgebench.harness.run.rounds import few_rounds_note, merge, rounds_of

MODELS = ["--model", str(EXAMPLES / "digits.onnx"), "--model", str(EXAMPLES / "digits.tflite")]


def records(run_dir):
    return {
        p.name[: -len(".json")]: Record.from_dict(json.loads(p.read_text()))
        for p in (run_dir / "raw").rglob("*.json")
    }


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two runs of the same two artifacts, three rounds each."""
    cwd = tmp_path_factory.mktemp("rounds")
    runs = []
    for out in ("a", "b"):
        proc = edgebench(
            ["run", "--rounds", "3", "--threads", "1", "--quiet", "--out", out] + FAST + MODELS,
            cwd=cwd,
        )
        assert proc.returncode == 0, proc.stderr
        runs.append((cwd / out / "latest").resolve())
    return cwd, runs


def test_rounds_are_fresh_processes_interleaved_across_artifacts(two_runs):
    _, (run, _) = two_runs
    recs = records(run)
    assert set(recs) == {"digits.onnx", "digits.tflite"}
    for rec in recs.values():
        assert rec.ok and rec.settings["rounds"] == 3 and rounds_of(rec) == 3
        assert [r["round"] for r in rec.rounds] == [1, 2, 3]
        assert [len(s) for s in rec.round_samples()] == [r["n"] for r in rec.rounds]
        assert sum(r["n"] for r in rec.rounds) == rec.stats["n"] == len(rec.samples_ns)
        spread = rec.stats["rounds"]
        assert spread["rounds"] == spread["rounds_ok"] == 3 and len(spread["round_p50_ms"]) == 3
        assert 0 <= spread["between_round_share"] <= 1 and spread["round_p50_cv"] >= 0
        assert spread["precision_over_rounds"] >= 0 and rec.stats["precision"] >= 0
        assert rec.started_at == rec.rounds[0]["started_at"]
    order = sorted(
        (r["started_at"], name, r["round"]) for name, rec in recs.items() for r in rec.rounds
    )
    # A B, B A, A B: interleaved and counterbalanced, so a steady drift favours neither
    pair = ("digits.onnx", "digits.tflite")
    assert [(name, n) for _, name, n in order] == [
        (name, n) for n in (1, 2, 3) for name in (pair if n % 2 else pair[::-1])
    ]


def test_an_a_a_check_over_rounds_passes(two_runs):
    cwd, (a, b) = two_runs
    proc = edgebench(["check", str(b), "--baseline", str(a)], cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("(3+3 rounds,") == 2
    assert "fewer than 3 rounds" not in proc.stderr


def test_check_against_one_round_says_the_spread_is_assumed(two_runs, tmp_path):
    cwd, (a, _) = two_runs
    args = ["run", "--threads", "1", "--quiet", "--out", "one"] + FAST + MODELS
    proc = edgebench(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    one = str(tmp_path / "one" / "latest")
    refused = edgebench(["check", one, "--baseline", str(a)], cwd=cwd)
    assert refused.returncode == 1 and "not comparable: rounds 3 → 1" in refused.stdout
    check = edgebench(["check", one, "--baseline", str(a), "--allow-different", "rounds"], cwd=cwd)
    assert "process-to-process spread not measured" in check.stdout
    assert "fewer than 3 rounds (candidate 1)" in check.stderr


def test_a_failed_round_is_counted_not_hidden():
    rounds = [ok("m.onnx", seed=1), failed("m.onnx"), ok("m.onnx", seed=2)]
    rounds = [r.replace(settings={"rounds": 3}) for r in rounds]
    rec = merge(rounds)
    assert rec.ok and rounds_of(rec) == 2 and rec.stats["rounds"]["rounds_ok"] == 2
    assert rec.stats["rounds"]["rounds"] == 3
    assert rec.message == "2 of 3 rounds succeeded (round 2: timeout)"
    assert [r["status"] for r in rec.rounds] == ["ok", "error", "ok"]
    assert rec.samples_ns == rounds[0].samples_ns + rounds[2].samples_ns
    assert Record.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    lost = merge([failed("m.onnx").replace(settings={"rounds": 2})] * 2)
    assert not lost.ok and lost.reason == "timeout" and len(lost.rounds) == 2


def test_a_record_from_before_rounds_is_one_round():
    old = ok("m.onnx")
    data = old.to_dict()
    assert "rounds" not in data  # a one-process record is stored as before
    assert Record.from_dict(data).round_samples() == [old.samples_ns]
    assert rounds_of(old) == 1 and merge([old]) is old
    assert few_rounds_note([old], [old]).startswith("note: fewer than 3 rounds (baseline 1,")
    v1 = Record.from_dict(json.loads((V1_RUN / "raw" / "local" / "digits.tflite.json").read_text()))
    assert v1.round_samples() == [v1.samples_ns] and v1.rounds == ()


def test_rounds_that_do_not_add_up_are_refused():
    rec = ok("m.onnx")
    with pytest.raises(ValueError, match="do not add up"):
        rec.replace(rounds=[{"round": 1, "status": "ok", "n": 3}])


def test_target_precision_stops_early_and_every_record_states_its_precision():
    job = {
        "artifact": {
            "path": str(EXAMPLES / "digits.onnx"),
            "sha256": sha256_file(EXAMPLES / "digits.onnx"),
        },
        "settings": {
            "min_seconds": 0,
            "min_iterations": 20,
            "warmup_seconds": 0.05,
            "max_seconds": 30,
            "target_precision": 0.05,
            "threads": 1,
        },
    }
    doc = agent_run(job)["record"]
    assert doc["status"] == "ok", doc
    assert doc["timing"]["stopped_by"] == "target_precision"
    assert doc["stats"]["precision"] <= 0.05
    low, high = doc["stats"]["p50_ci_ms"]
    assert low <= doc["stats"]["p50_ms"] <= high
    plain = agent_run(dict(job, settings=dict(job["settings"], target_precision=None)))["record"]
    assert plain["timing"]["stopped_by"] == "min_iterations+min_seconds"
    assert plain["stats"]["n"] == 20 and plain["stats"]["precision"] > 0


@pytest.mark.parametrize(
    "raw, why",
    [
        ({"rounds": 0}, "settings.rounds: must be at least 1"),
        ({"target_precision": 0}, "settings.target_precision: must be greater than 0"),
        ({"rounds": 1.5}, "settings.rounds: expected an integer"),
    ],
)
def test_rounds_and_precision_are_checked_settings(raw, why):
    with pytest.raises(JobError, match=why):
        parse_settings(raw)


def test_bad_rounds_on_the_command_line_is_exit_2(tmp_path):
    proc = edgebench(["run", "--rounds", "0"] + MODELS, cwd=tmp_path)
    assert proc.returncode == 2 and "--rounds: must be at least 1" in proc.stderr
