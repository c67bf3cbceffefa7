"""`edgebench run` end to end on the `local` device with real runtimes and real models."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST, edgebench

from edgebench.agent.record import Record
from edgebench.harness.summary import COLUMNS

REQUIRED = [
    "device",
    "artifact",
    "runtime",
    "status",
    "reason",
    "n",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "throughput_ips",
    "load_ms",
    "first_ms",
    "peak_rss_mb",
    "model_rss_mb",
    "size_mb",
    "top1",
    "top5",
    "stable",
]


def summary(run_dir: Path):
    with open(run_dir / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def records(run_dir: Path):
    return {
        p.stem: Record.from_dict(json.loads(p.read_text()))
        for p in (run_dir / "raw").rglob("*.json")
    }


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """One default run of the bundled example (ONNX, TFLite fp32, TFLite int8)."""
    cwd = tmp_path_factory.mktemp("run")
    proc = edgebench(["run"] + FAST + ["--out", "res"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / "res" / "latest", proc


def test_default_run_benchmarks_both_runtimes_with_accuracy(example_run):
    run_dir, proc = example_run
    rows = {r["artifact"]: r for r in summary(run_dir)}
    assert set(rows) == {"digits.onnx", "digits.tflite", "digits.int8.tflite"}
    assert rows["digits.onnx"]["runtime"] == "onnxruntime"
    assert rows["digits.tflite"]["runtime"] == "tflite"
    for row in rows.values():
        assert row["status"] == "ok" and row["device"] == "local"
        assert float(row["p50_ms"]) > 0 and int(row["n"]) >= 20
        assert 0.93 <= float(row["top1"]) <= 1.0  # trained to ~97%
    # fp32 TFLite and ONNX are the same network: same predictions
    assert rows["digits.tflite"]["top1"] == rows["digits.onnx"]["top1"]
    assert "digits.onnx" in proc.stdout  # the terminal table


def test_progress_off_a_terminal_counts_the_jobs_done(example_run):
    _, proc = example_run
    counts = [line for line in proc.stderr.splitlines() if line.startswith("overall: ")]
    assert [c.split()[1] for c in counts] == ["1/3", "2/3", "3/3"]  # one per finished job
    assert counts[0].endswith(" left") and counts[-1].startswith("overall: 3/3 jobs done in ")
    assert "p90 ms" in proc.stdout  # the table has what budgets hold


def test_summary_csv_has_the_promised_columns(example_run):
    run_dir, _ = example_run
    with open(run_dir / "summary.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == COLUMNS
    assert set(REQUIRED) <= set(header)


def test_summary_csv_says_what_was_measured_and_with_what(example_run):
    run_dir, _ = example_run
    import onnxruntime

    from edgebench.agent import __version__

    assert COLUMNS[-6:] == [
        "run_id",
        "threads",
        "input_shape",
        "rounds",
        "runtime_version",
        "agent_version",
    ]  # appended: older columns keep their place
    rows = {r["artifact"]: r for r in summary(run_dir)}
    onnx = rows["digits.onnx"]
    assert onnx["run_id"] == run_dir.resolve().name and onnx["threads"] == ""
    assert onnx["rounds"] == "1" and onnx["runtime_version"] == onnxruntime.__version__
    assert onnx["input_shape"] == "input:1,1,8,8" and onnx["agent_version"] == __version__


def test_run_json_and_report(example_run):
    run_dir, _ = example_run
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"]["local"] == {
        "digits.onnx": "ok",
        "digits.tflite": "ok",
        "digits.int8.tflite": "ok",
    }
    assert meta["tool"]["python"] and meta["request"]["eval"].endswith("digits_eval.npz")
    report = (run_dir / "report.md").read_text()
    assert "local" in report and "digits.int8.tflite" in report
    again = edgebench(["report", str(run_dir), "--format", "csv"], cwd=run_dir)
    assert again.returncode == 0 and again.stdout == (run_dir / "summary.csv").read_text()


def test_int8_input_model_quantizes_inputs_and_stays_accurate(example_run):
    run_dir, _ = example_run
    recs = records(run_dir)
    int8 = next(r for r in recs.values() if r.artifact["name"] == "digits.int8.tflite")
    fp32 = next(r for r in recs.values() if r.artifact["name"] == "digits.tflite")
    assert int8.accuracy["quantized_input"] is True
    assert int8.accuracy["layout"] == "nchw->nhwc"
    assert abs(int8.accuracy["top1"] - fp32.accuracy["top1"]) <= 0.02
    assert int8.artifact["size_bytes"] < fp32.artifact["size_bytes"]


def test_accuracy_equals_an_independent_numpy_computation(example_run, examples):
    import onnxruntime as ort

    run_dir, _ = example_run
    rec = next(r for r in records(run_dir).values() if r.artifact["name"] == "digits.onnx")
    data = np.load(examples / "digits_eval.npz")
    sess = ort.InferenceSession(str(examples / "digits.onnx"), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    logits = np.concatenate([sess.run(None, {name: x[None]})[0] for x in data["inputs"]])
    labels = data["labels"]
    top1 = float(np.mean(logits.argmax(1) == labels))
    top5 = float(np.mean([labels[i] in np.argsort(logits[i])[-5:] for i in range(len(labels))]))
    assert rec.accuracy["n"] == len(labels)
    assert rec.accuracy["top1"] == pytest.approx(top1, abs=1e-12)
    assert rec.accuracy["top5"] == pytest.approx(top5, abs=1e-12)


def test_truncated_model_is_model_invalid_and_others_finish(tmp_path, examples, truncated_onnx):
    proc = edgebench(
        [
            "run",
            "--model",
            str(truncated_onnx),
            "--model",
            str(examples / "digits.onnx"),
            "--eval",
            str(examples / "digits_eval.npz"),
            "--out",
            "res",
        ]
        + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 1  # a measurement failed
    rows = {r["artifact"]: r for r in summary(tmp_path / "res" / "latest")}
    assert rows["truncated.onnx"]["status"] == "error"
    assert rows["truncated.onnx"]["reason"] == "model-invalid"
    assert rows["truncated.onnx"]["p50_ms"] == ""  # never a zero latency
    assert rows["digits.onnx"]["status"] == "ok"
    assert "truncated.onnx: model-invalid" in proc.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path, examples):
    bad = tmp_path / "conf" / "devices.yaml"
    bad.parent.mkdir()
    bad.write_text("devices:\n  local:\n    kind: local\n    prot: 1\n")
    cases = [
        (["run", "--model", "nope.onnx"], "nope.onnx"),
        (["run", "--model", str(examples / "digits.onnx"), "--devices", "jetsn"], "jetsn"),
        (["--devices-file", str(bad), "run"], "devices.local.prot"),
        (["run", "--input-shape", "x=1,2"], "--input-shape"),
        (["report", str(tmp_path / "missing-run")], "missing-run"),
    ]
    for args, needle in cases:
        proc = edgebench(args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr


def test_json_output_is_the_summary(tmp_path, examples):
    proc = edgebench(
        ["run", "--model", str(examples / "digits.onnx"), "--json", "--out", "r"] + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows[0]["artifact"] == "digits.onnx" and rows[0]["p50_ms"] > 0


def test_interrupted_run_keeps_its_finished_rows(tmp_path, examples):
    # each artifact measures for 3 s; Ctrl-C lands while the second one is measuring
    args = [
        sys.executable,
        "-m",
        "edgebench.harness",
        "run",
        "--model",
        str(examples / "digits.onnx"),
        "--model",
        str(examples / "digits.tflite"),
        "--min-seconds",
        "3",
        "--warmup-seconds",
        "0",
        "--out",
        "res",
        "--quiet",
    ]
    # SIGINT as at a terminal, even when the suite runs with it ignored (started with `&`)
    proc = subprocess.Popen(
        args,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "res").glob("*/raw/local/digits.onnx.json")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    run_dir = tmp_path / "res" / "latest"
    rows = {r["artifact"]: r for r in summary(run_dir)}
    assert list(rows) == ["digits.onnx"] and rows["digits.onnx"]["status"] == "ok"
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["interrupted"] is True
    assert meta["status"]["local"] == {"digits.onnx": "ok", "digits.tflite": "pending"}
    assert (run_dir / "report.md").exists()


def test_devices_lists_and_probes_local(tmp_path):
    listed = edgebench(["devices"], cwd=tmp_path)
    assert listed.returncode == 0 and "local" in listed.stdout and "<built-in>" in listed.stdout
    probed = edgebench(["devices", "--probe", "--json"], cwd=tmp_path)
    assert probed.returncode == 0, probed.stderr
    info = json.loads(probed.stdout)["local"]
    assert info["arch"] and info["cpu_count"] >= 1
    assert info["runtimes"]["onnxruntime"]["version"]
    text = edgebench(["devices", "--probe"], cwd=tmp_path)
    assert "onnxruntime" in text.stdout and "CPUExecutionProvider" in text.stdout


def test_resume_measures_only_what_is_missing(tmp_path, examples):
    run = [
        "run",
        "--model",
        str(examples / "digits.onnx"),
        "--model",
        str(examples / "digits.tflite"),
        "--out",
        "res",
    ] + FAST
    first = edgebench(run, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = (tmp_path / "res" / "latest").resolve()
    kept = (run_dir / "raw" / "local" / "digits.onnx.json").read_text()
    # simulate a run cut short: the tflite measurement never arrived
    (run_dir / "raw" / "local" / "digits.tflite.json").unlink()
    meta = json.loads((run_dir / "run.json").read_text())
    meta["status"]["local"]["digits.tflite"] = "pending"
    (run_dir / "run.json").write_text(json.dumps(meta))
    again = edgebench(["run", "--resume", str(run_dir), "--quiet"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (run_dir / "raw" / "local" / "digits.onnx.json").read_text() == kept  # untouched
    rows = {r["artifact"]: r for r in summary(run_dir)}
    assert rows["digits.tflite"]["status"] == "ok"
    assert json.loads((run_dir / "run.json").read_text())["status"]["local"] == {
        "digits.onnx": "ok",
        "digits.tflite": "ok",
    }
    nothing = edgebench(["run", "--resume", str(run_dir), "--quiet"], cwd=tmp_path)
    assert nothing.returncode == 0
    assert (run_dir / "raw" / "local" / "digits.onnx.json").read_text() == kept


def test_busy_board_is_device_busy_naming_the_holder(tmp_path, examples):
    from edgebench.agent.lease import acquire

    workdir = tmp_path / "wd"
    (tmp_path / "devices.yaml").write_text(
        "devices:\n  local:\n    kind: local\n    workdir: %s\n    timeout_s: 4\n" % workdir
    )
    with acquire(str(workdir), "another harness", 1):
        proc = edgebench(
            ["run", "--model", str(examples / "digits.onnx"), "--out", "res"] + FAST, cwd=tmp_path
        )
    assert proc.returncode == 1
    row = summary(tmp_path / "res" / "latest")[0]
    assert row["reason"] == "device-busy" and "another harness" in row["message"]
    assert row["p50_ms"] == ""
