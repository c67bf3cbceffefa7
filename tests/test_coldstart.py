"""Cold starts in fresh processes (harness/run/coldstart.py) and idle gaps (agent/idle.py)."""

import json

import pytest
from conftest import EXAMPLES, FAST, edgebench

from edgebench.agent.protocol import JobError, parse_settings
from edgebench.agent.record import Record
from edgebench.harness.run.coldstart import cold_settings, extra, progress_label


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Two rounds, three cold starts (so one cold-only process), two idle gaps."""
    cwd = tmp_path_factory.mktemp("cold")
    args = ["run", "--model", str(EXAMPLES / "digits.onnx"), "--threads", "1", "--quiet"]
    args += ["--rounds", "2", "--cold-starts", "3", "--idle-gaps", "0.1,0.3", "--out", "out"]
    proc = edgebench(args + FAST, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return (cwd / "out" / "latest").resolve()


def the_record(run_dir):
    (path,) = (run_dir / "raw").rglob("*.json")
    return Record.from_dict(json.loads(path.read_text()))


def test_cold_starts_keep_one_sample_per_fresh_process(run_dir):
    rec = the_record(run_dir)
    cold = rec.timing["cold_starts"]
    samples = cold["samples"]
    assert [(s["process"], s["kind"], s["status"]) for s in samples] == [
        (1, "round", "ok"),
        (2, "round", "ok"),
        (3, "cold", "ok"),
    ]
    for s in samples:
        assert s["import_ms"] > 0 and s["load_ms"] > 0 and s["first_ms"] > 0
        assert s["total_ms"] == pytest.approx(s["import_ms"] + s["load_ms"] + s["first_ms"])
    loads = sorted(s["load_ms"] for s in samples)
    assert cold["summary"]["load_ms"]["n"] == 3
    assert cold["summary"]["load_ms"]["p50_ms"] == loads[1]
    assert cold["summary"]["load_ms"]["min_ms"] == loads[0]
    # the cold-only process adds no samples: the timed window is the two rounds'
    assert len(rec.rounds) == 2 and sum(r["n"] for r in rec.rounds) == len(rec.samples_ns)
    assert rec.settings["cold_starts"] == 3
    assert "| digits.onnx | 3 of 3 |" in (run_dir / "report.md").read_text()


def test_idle_gaps_are_measured_against_the_warm_p50(run_dir):
    rec = the_record(run_dir)
    gaps = rec.timing["idle_gaps"]
    assert [g["gap_s"] for g in gaps] == [0.1, 0.3]
    p50 = rec.rounds[0]["stats"]["p50_ms"]  # the warm p50 of the process that paused
    for g in gaps:
        assert g["first_ms"] > 0 and g["ratio"] == pytest.approx(g["first_ms"] / p50)
    report = (run_dir / "report.md").read_text()
    assert "| Artifact | warm p50 | after 0.1 s | after 0.3 s |" in report


def test_cold_processes_beyond_the_rounds_time_one_inference():
    assert extra({"rounds": 2, "cold_starts": 3}) == 1
    assert extra({"rounds": 3, "cold_starts": 2}) == extra({}) == 0
    assert progress_label(1, 1, 3) is None and progress_label(2, 2, 3)["round"] == 2
    assert progress_label(3, 1, 3) == {"round": 2, "rounds": 2, "label": "cold start"}
    settings = parse_settings(cold_settings({"threads": 1, "idle_gaps": [5], "min_seconds": 9}))
    assert settings.threads == 1 and settings.max_iterations == 1 and settings.idle_gaps == ()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"idle_gaps": [1, -1]}, "settings.idle_gaps: must be at least 0, got -1"),
        ({"idle_gaps": 5}, "settings.idle_gaps: expected a list of numbers, got 5"),
        ({"idle_gaps": ["a"]}, "settings.idle_gaps: expected a number, got 'a'"),
        ({"cold_starts": 0}, "settings.cold_starts: must be at least 1, got 0"),
    ],
)
def test_bad_settings_are_named(raw, message):
    with pytest.raises(JobError, match="^" + message.replace("(", r"\(") + "$"):
        parse_settings(raw)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cold-starts", "0"], "--cold-starts: must be at least 1, got 0"),
        (["--idle-gaps", "1,-5"], "--idle-gaps: must be at least 0, got -5.0"),
        (["--idle-gaps", "1,soon"], "expected seconds like 1,5,30, got '1,soon'"),
    ],
)
def test_bad_options_exit_2(tmp_path, args, message):
    proc = edgebench(["run", "--quiet", "--out", "out"] + args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
