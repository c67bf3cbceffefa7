"""Faults on the `run` / `--resume` / `devices --probe` path: each one is a record or a
one-line error with the right exit code -- never a lost measurement, a traceback or exit 0."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST, edgebench

from edgebench.agent.lease import acquire
from edgebench.harness.analysis.budgets import parse_budgets
from edgebench.harness.config import ConfigError, Device
from edgebench.harness.devices import probe_one
from edgebench.harness.run.pack import build, default_cache
from edgebench.harness.run.runner import Artifact, Request, Runner
from edgebench.harness.store import RunStore


def one_line_error(proc: subprocess.CompletedProcess, code: int, needle: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    return lines[0]


def test_results_disk_full_is_an_error_line_exit_1_and_the_measurement_is_shown(tmp_path, examples):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        pytest.skip("a small tmpfs for --out needs root, unshare and mount")
    # run.json fits in 64 KiB; a record of 20000 samples does not
    script = (
        "mkdir -p out && mount -t tmpfs -o size=64k tmpfs out && exec %s -m edgebench.harness run "
        "--model %s --min-iterations 20000 --min-seconds 0 --warmup-seconds 0 "
        "--out out --json" % (sys.executable, examples / "digits.onnx")
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if "mount:" in proc.stderr:
        pytest.skip("cannot mount a tmpfs here: %s" % proc.stderr.strip())
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("edgebench: error")]
    assert (
        "results not saved: " in error and "/out/" in error and "No space left on device" in error
    )
    [row] = json.loads(proc.stdout)  # what was measured still reaches the user
    assert row["status"] == "ok" and row["n"] == 20000 and row["p50_ms"] > 0


def test_an_exception_in_a_device_worker_is_an_internal_record(tmp_path, examples):
    # an environment variable name execve refuses: Popen raises ValueError in the worker
    device = Device(name="local", kind="local", python=sys.executable, env=(("A=B", "1"),))
    store = RunStore.create(tmp_path / "res")
    request = Request(artifacts=(Artifact.from_path(examples / "digits.onnx"),))
    store.update_meta(status={"local": {"digits.onnx": "pending"}})
    runner = Runner(store, request, [device], build(default_cache()))
    [record] = runner.run()
    assert record.reason == "internal" and record.fault_class == "bug"
    assert "ValueError" in record.message and "environment variable" in record.message
    assert store.meta().status["local"]["digits.onnx"] == "error:internal"
    assert (store.path / "raw" / "local" / "digits.onnx.json").is_file()


def test_probe_turns_an_exception_into_that_devices_answer():
    device = Device(name="local", kind="local", python=sys.executable, env=(("A=B", "1"),))
    info = probe_one(device, build(default_cache()))
    assert info["error"] == "internal" and "ValueError" in info["message"]


def test_sigterm_stops_the_agents_and_marks_the_run_interrupted(tmp_path, examples):
    workdir = tmp_path / "wd"
    (tmp_path / "devices.yaml").write_text(
        "devices:\n  local:\n    kind: local\n    workdir: %s\n" % workdir
    )
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
        "60",
        "--max-iterations",
        "5000000",
        "--warmup-seconds",
        "0",
        "--out",
        "res",
        "--quiet",
    ]
    proc = subprocess.Popen(
        args,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (workdir / "lease").is_file():  # the agent holds the board
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    with acquire(str(workdir), "the next harness", 0):  # no agent left holding the lease
        pass
    meta = json.loads((tmp_path / "res" / "latest" / "run.json").read_text())
    assert meta["interrupted"] is True and meta["finished_at"]
    assert meta["status"]["local"] == {"digits.onnx": "pending", "digits.tflite": "pending"}


@pytest.mark.parametrize(
    "option, value, needle",
    [
        ("--min-seconds", "nan", "--min-seconds: expected a finite number, got nan"),
        ("--max-seconds", "inf", "--max-seconds: expected a finite number, got inf"),
        ("--min-iterations", "0", "--min-iterations: must be at least 1, got 0"),
        ("--threads", "-2", "--threads: must be at least 1, got -2"),
        ("--min-seconds", "-1", "--min-seconds: must be at least 0, got -1.0"),
        ("--max-seconds", "0", "--max-seconds: must be greater than 0"),
        ("--max-iterations", "10", "--max-iterations (10) must be at least --min-iterations (50)"),
    ],
)
def test_bad_settings_are_exit_2_before_anything_runs(tmp_path, examples, option, value, needle):
    proc = edgebench(["run", "--model", str(examples / "digits.onnx"), option, value], cwd=tmp_path)
    one_line_error(proc, 2, needle)
    assert not (tmp_path / "results").exists()


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "arrays, needle",
    [
        (
            {"inputs": np.zeros((0, 1, 8, 8), np.float32), "labels": np.zeros(0, np.int64)},
            "has no samples",
        ),
        (
            {"inputs": np.zeros((4, 1, 8, 8), np.float32), "labels": np.eye(4, 10, dtype=np.int64)},
            "'labels' must hold one integer class index per sample (shape [4])",
        ),
        (
            {"inputs": np.zeros((4, 1, 8, 8), np.float32), "labels": np.array(list("abcd"))},
            "'labels' must hold one integer class index",
        ),
        ({"inputs": np.array(["a", "b"])}, "'inputs' must be a numeric array"),
        ({"images": np.zeros((4, 1, 8, 8), np.float32)}, "no 'inputs' array"),
        (
            {
                "inputs": np.zeros((2, 1, 8, 8), np.float32),
                "reference": np.array([[0.0] * 10, [np.nan] * 10], np.float32),
            },
            "'reference' holds NaN or infinite values",
        ),
    ],
)
def test_an_unusable_eval_set_is_exit_2_before_anything_runs(tmp_path, examples, arrays, needle):
    bad = npz(tmp_path / "bad.npz", **arrays)
    proc = edgebench(
        ["run", "--model", str(examples / "digits.onnx"), "--eval", str(bad)], cwd=tmp_path
    )
    assert str(bad) in one_line_error(proc, 2, needle)
    assert not (tmp_path / "results").exists()


def test_a_failed_accuracy_pass_keeps_the_latency_and_exits_1(tmp_path, dynamic_output_onnx):
    # the output's width is dynamic, so the wrong reference width shows only after timing
    ref = npz(
        tmp_path / "ref.npz",
        inputs=np.zeros((4, 64), np.float32),
        reference=np.zeros((4, 7), np.float32),
    )
    proc = edgebench(
        [
            "run",
            "--model",
            str(dynamic_output_onnx),
            "--eval",
            str(ref),
            "--input-shape",
            "x:1,64",
            "--json",
            "--out",
            "res",
        ]
        + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    [row] = json.loads(proc.stdout)
    assert row["status"] == "ok" and row["p50_ms"] > 0
    assert "failed: local / %s: accuracy: ValueError" % dynamic_output_onnx.name in proc.stderr
    record = json.loads(next((tmp_path / "res" / "latest" / "raw" / "local").iterdir()).read_text())
    assert record["samples_ns"] and "broadcast" in record["accuracy"]["error"]


def test_a_model_path_that_is_a_directory_is_exit_2(tmp_path):
    (tmp_path / "model.onnx").mkdir()
    one_line_error(
        edgebench(["run", "--model", "model.onnx"], cwd=tmp_path),
        2,
        "model.onnx: is a directory, not a model file",
    )


def test_an_unreadable_model_is_exit_2(tmp_path, examples):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    model = tmp_path / "model.onnx"
    shutil.copy(examples / "digits.onnx", model)
    model.chmod(0)
    one_line_error(
        edgebench(["run", "--model", str(model)], cwd=tmp_path),
        2,
        "cannot read the model (Permission denied)",
    )


def test_devices_yaml_bad_env_and_nan_timeout_are_exit_2(tmp_path, examples):
    for body, needle in [
        ('env: {"A=B": 1}', "devices.local.env.A=B: 'A=B' is not a valid"),
        ("timeout_s: .nan", "devices.local.timeout_s: expected a positive"),
    ]:
        (tmp_path / "devices.yaml").write_text(
            "devices:\n  local:\n    kind: local\n    %s\n" % body
        )
        for command in (["run", "--model", str(examples / "digits.onnx")], ["devices", "--probe"]):
            one_line_error(edgebench(command, cwd=tmp_path), 2, needle)


def test_a_nan_budget_limit_is_refused():
    with pytest.raises(
        ConfigError,
        match=r"budgets\[0\]\.p50_ms: expected a positive number, "
        r"got nan",
    ):
        parse_budgets("budgets: [{device: '*', p50_ms: .nan}]", "budgets.yaml")


@pytest.fixture
def stored_run(tmp_path, examples):
    """A run directory as `run` leaves it, with nothing measured yet."""
    store = RunStore.create(tmp_path / "res")
    request = Request(artifacts=(Artifact.from_path(examples / "digits.onnx"),))
    store.update_meta(request=request.describe(), status={"local": {"digits.onnx": "pending"}})
    return store.path


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda m: m.update(status=[1]), "status: expected an object"),
        (lambda m: m["status"].update(local="ok"), "status.local: expected an object"),
        (lambda m: m.update(request="x"), "request: expected an object"),
        (
            lambda m: m["request"].update(artifacts=[{"path": 1}]),
            "request.artifacts[0].path: expected a string",
        ),
        (
            lambda m: m["request"].update(settings={"min_seconds": float("nan")}),
            "settings.min_seconds: expected a finite number",
        ),
    ],
)
def test_resume_of_a_damaged_run_is_exit_2_naming_its_run_json(stored_run, damage, needle):
    meta = json.loads((stored_run / "run.json").read_text())
    damage(meta)
    (stored_run / "run.json").write_text(json.dumps(meta))
    proc = edgebench(["run", "--resume", str(stored_run)], cwd=stored_run)
    line = one_line_error(proc, 2, needle)
    assert str(stored_run / "run.json") in line


def test_an_out_that_is_a_file_is_exit_2(tmp_path, examples):
    (tmp_path / "res").write_text("not a folder")
    proc = edgebench(
        ["run", "--model", str(examples / "digits.onnx"), "--out", "res"], cwd=tmp_path
    )
    one_line_error(proc, 2, "res: not a directory")


def test_a_device_python_that_does_not_start_is_runtime_missing(tmp_path, examples):
    (tmp_path / "devices.yaml").write_text(
        "devices:\n  local:\n    kind: local\n    python: %s\n" % (tmp_path / "no-python")
    )
    run = edgebench(
        ["run", "--model", str(examples / "digits.onnx"), "--quiet", "--out", "res"], cwd=tmp_path
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert (
        "local / digits.onnx: runtime-missing: the device's Python could not be started"
        in run.stderr
    )
    probe = edgebench(["devices", "--probe", "--json"], cwd=tmp_path)
    assert probe.returncode == 1 and "Traceback" not in probe.stderr
    assert json.loads(probe.stdout)["local"]["error"] == "runtime-missing"


def test_resume_of_a_read_only_run_is_exit_2(stored_run):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        pytest.skip("a read-only bind mount needs root, unshare and mount")
    script = (
        'mount --bind -o ro "$0" "$0" && exec %s -m edgebench.harness run --resume "$0"'
        % sys.executable
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, str(stored_run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "mount:" in proc.stderr:
        pytest.skip("cannot bind-mount here: %s" % proc.stderr.strip())
    one_line_error(proc, 2, "%s: cannot write (Read-only file system)" % (stored_run / "run.json"))
