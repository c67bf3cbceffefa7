"""The real agent in a subprocess: protocol, runtimes, inputs, memory, accuracy, faults."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, agent_run

from edgebench.agent.record import Record


def run_record(job, **kw) -> Record:
    doc = agent_run(job, **kw)
    assert doc["protocol"] == 1 and doc["kind"] == "record"
    return Record.from_dict(doc["record"])


def test_dynamic_dimension_without_shape_is_a_clear_input_shape_error(dynamic_onnx):
    rec = run_record({"artifact": {"path": str(dynamic_onnx)}})
    assert rec.status == "error" and rec.reason == "input-shape"
    assert "'x'" in rec.message and "dimension 0" in rec.message and "batch" in rec.message
    assert not rec.samples_ns and not rec.stats


def test_dynamic_dimension_resolved_from_the_job(dynamic_onnx):
    rec = run_record({"artifact": {"path": str(dynamic_onnx)}, "input_shapes": {"x": [8, 64]}})
    assert rec.ok, rec.message
    assert rec.timing["input_shapes"] == {"x": [8, 64]}
    assert rec.stats["n"] >= 20 and all(s > 0 for s in rec.samples_ns)
    # batch of 8: throughput counts inferences, not calls
    assert rec.stats["throughput_ips"] == pytest.approx(8000 / rec.stats["mean_ms"])


def test_shape_that_contradicts_a_fixed_dimension_is_refused(dynamic_onnx):
    rec = run_record({"artifact": {"path": str(dynamic_onnx)}, "input_shapes": {"x": [1, 63]}})
    assert rec.reason == "input-shape" and "fixed at 64" in rec.message


def test_memory_phases_are_positive_and_ordered(dynamic_onnx):
    rec = run_record({"artifact": {"path": str(dynamic_onnx)}, "input_shapes": {"x": [64, 64]}})
    m = rec.memory
    phases = [m["rss_before_import_mb"], m["rss_after_import_mb"], m["rss_after_load_mb"]]
    assert all(v > 0 for v in phases)
    assert phases[0] < phases[1] <= phases[2] <= m["peak_rss_mb"]
    assert m["methods"]["peak_rss_mb"] == "proc-hwm"  # clear_refs reset works here
    assert len(m["series"]) >= 2 and all(v > 0 for _, v in m["series"])


def test_timing_respects_minimums_and_reports_load_and_first_apart(dynamic_onnx):
    settings = {
        "min_iterations": 300,
        "min_seconds": 0.3,
        "warmup_iterations": 5,
        "warmup_seconds": 0.0,
    }
    rec = run_record(
        {
            "artifact": {"path": str(dynamic_onnx)},
            "input_shapes": {"x": [1, 64]},
            "settings": settings,
        }
    )
    assert rec.stats["n"] >= 300 and rec.timing["measure_s"] >= 0.3
    assert rec.timing["warmup_iterations"] >= 5
    assert rec.timing["load_ms"] > 0 and rec.timing["first_ms"] > 0
    assert rec.settings["min_iterations"] == 300


def test_max_seconds_caps_the_window(dynamic_onnx):
    settings = {
        "min_iterations": 10**6,
        "max_iterations": 10**6,
        "min_seconds": 100,
        "max_seconds": 0.3,
        "warmup_seconds": 0,
    }
    rec = run_record(
        {
            "artifact": {"path": str(dynamic_onnx)},
            "input_shapes": {"x": [1, 64]},
            "settings": settings,
        }
    )
    assert rec.ok and 0.3 <= rec.timing["measure_s"] < 5


def test_max_iterations_bounds_the_sample_count(dynamic_onnx):
    settings = {"min_iterations": 50, "max_iterations": 50, "min_seconds": 100, "warmup_seconds": 0}
    rec = run_record(
        {
            "artifact": {"path": str(dynamic_onnx)},
            "input_shapes": {"x": [1, 64]},
            "settings": settings,
        }
    )
    assert rec.ok and rec.stats["n"] == 50 and rec.timing["measure_s"] < 100
    assert rec.timing["timer_overhead_ns"] > 0


def test_missing_runtime_is_runtime_missing(dynamic_onnx, tmp_path):
    # An interpreter that cannot see site-packages: neither numpy nor onnxruntime import.
    env = {"PYTHONPATH": str(ROOT), "PYTHONNOUSERSITE": "1"}
    job = {"protocol": 1, "artifact": {"path": str(dynamic_onnx)}}
    proc = subprocess.run(
        [sys.executable, "-S", "-m", "agent", "run"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=dict(os.environ, **env),
        timeout=60,
    )
    rec = Record.from_dict(json.loads(proc.stdout)["record"])
    assert rec.reason == "runtime-missing" and "numpy" in rec.message


def test_malformed_jobs_are_job_invalid_records():
    for job, needle in [
        ({"artifact": {"path": "m.pt"}}, "format"),
        ({"artifact": {"path": "m.onnx"}, "settings": {"treads": 2}}, "treads"),
        ({"artifact": {"path": "m.onnx"}, "settings": {"min_seconds": "x"}}, "min_seconds"),
        (
            {"artifact": {"path": "m.onnx"}, "settings": {"max_seconds": 1e999}},
            "settings.max_seconds: expected a finite number, got inf",
        ),
        (
            {"artifact": {"path": "m.onnx"}, "settings": {"min_seconds": float("nan")}},
            "settings.min_seconds: expected a finite number, got nan",
        ),
        (
            {"artifact": {"path": "m.onnx"}, "settings": {"threads": -2}},
            "settings.threads: must be at least 1",
        ),
        ({"artifact": {"path": "m.onnx"}, "settings": [1]}, "settings must be an object"),
    ]:
        rec = run_record(job)
        assert rec.reason == "job-invalid" and needle in rec.message
    rec = run_record({"protocol": 99, "artifact": {"path": "m.onnx"}})
    assert rec.reason == "job-invalid" and "protocol" in rec.message


def test_native_output_on_stdout_cannot_corrupt_the_document(dynamic_onnx, tmp_path):
    # A runtime that writes straight to file descriptor 1 (as C++ libraries do).
    script = (
        "import os, sys\n"
        "sys.path.insert(0, %r)\n"
        "import agent.bench as bench\n"
        "real = bench.run\n"
        "def noisy(job):\n"
        "    os.write(1, b'native library chatter\\n'); print('python chatter')\n"
        "    return real(job)\n"
        "bench.run = noisy\n"
        "from agent.__main__ import main\n"
        "sys.exit(main(['run']))\n" % str(ROOT)
    )
    job = {
        "protocol": 1,
        "artifact": {"path": str(dynamic_onnx)},
        "input_shapes": {"x": [1, 64]},
        "settings": {"min_seconds": 0.05, "min_iterations": 5, "warmup_seconds": 0},
    }
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "native library chatter" in proc.stderr and "python chatter" in proc.stderr
    assert Record.from_dict(json.loads(proc.stdout)["record"]).ok


def test_probe_reports_runtimes_and_machine():
    doc = agent_run({}, command="probe")
    probe = doc["probe"]
    assert probe["cpu_count"] == os.cpu_count() and probe["python"]
    assert probe["runtimes"]["onnxruntime"]["available"] is True
    assert "CPUExecutionProvider" in probe["runtimes"]["onnxruntime"]["providers"]
    assert probe["runtimes"]["tflite"]["modules"]["ai_edge_litert.interpreter"]["available"]


def test_missing_delegate_library_is_reported_not_ignored(examples):
    rec = run_record(
        {
            "artifact": {"path": str(examples / "digits.tflite")},
            "tflite": {
                "delegate": {
                    "library": "libedgetpu-does-not-exist.so.1",
                    "options": {"device": "usb:0"},
                }
            },
        }
    )
    assert rec.reason == "runtime-missing" and "libedgetpu-does-not-exist" in rec.message


def test_vermin_agent_runs_on_python_38():
    vermin = shutil.which("vermin", path=os.path.dirname(sys.executable))  # venv or not on PATH
    assert vermin, "vermin is a test dependency"
    proc = subprocess.run(
        [vermin, "--no-tips", "--violations", "-t=3.8-", "--eval-annotations", str(ROOT / "agent")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_reference_outputs_give_fidelity(examples, tmp_path):
    import onnxruntime as ort

    data = np.load(examples / "digits_eval.npz")
    sess = ort.InferenceSession(str(examples / "digits.onnx"), providers=["CPUExecutionProvider"])
    reference = np.concatenate([sess.run(None, {"input": x[None]})[0] for x in data["inputs"]])
    ref_path = tmp_path / "ref.npz"
    np.savez(ref_path, inputs=data["inputs"], reference=reference)
    fp32 = run_record(
        {"artifact": {"path": str(examples / "digits.tflite")}, "eval": str(ref_path)}
    )
    assert fp32.ok and "top1" not in fp32.accuracy  # no labels, no top-1
    assert fp32.accuracy["max_abs_error"] < 1e-3
    assert fp32.accuracy["cosine_similarity"] > 0.99999
    assert fp32.accuracy["argmax_agreement"] == 1.0
    int8 = run_record(
        {"artifact": {"path": str(examples / "digits.int8.tflite")}, "eval": str(ref_path)}
    )
    assert int8.accuracy["max_abs_error"] > fp32.accuracy["max_abs_error"]
    assert int8.accuracy["argmax_agreement"] >= 0.97


def test_unusable_eval_set_is_input_invalid(examples, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((3, 1, 8, 8), np.float32))
    rec = run_record({"artifact": {"path": str(examples / "digits.onnx")}, "eval": str(bad)})
    assert rec.reason == "input-invalid" and "'inputs'" in rec.message
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, inputs=np.zeros((3, 5, 5), np.float32), labels=np.zeros(3, np.int64))
    rec = run_record({"artifact": {"path": str(examples / "digits.onnx")}, "eval": str(wrong)})
    assert rec.reason == "input-invalid" and "[5, 5]" in rec.message


def test_unknown_input_shape_name_is_an_input_shape_error(examples):
    rec = run_record(
        {
            "artifact": {"path": str(examples / "digits.onnx")},
            "input_shapes": {"inptu": [1, 1, 8, 8]},
        }
    )
    assert rec.reason == "input-shape" and not rec.samples_ns
    assert "'inptu'" in rec.message and "its inputs: 'input'" in rec.message


@pytest.mark.parametrize(
    "arrays, needle",
    [
        (
            lambda x, y: {"inputs": x, "reference": np.zeros((len(x), 7), np.float32)},
            "'reference' has 7 values per sample but output 'logits' has 10",
        ),
        (
            lambda x, y: {"inputs": x, "labels": y + 10},
            "labels run from 11 to 19 but output 'logits' has 10 classes",
        ),
        (
            lambda x, y: {"inputs": x, "labels": np.eye(10, dtype=np.int64)[y]},
            "'labels' must hold one integer class index per sample",
        ),
        (lambda x, y: {"inputs": x, "labels": y.astype(str)}, "'labels' must hold one integer"),
        (lambda x, y: {"inputs": x[:0], "labels": y[:0]}, "has no samples"),
    ],
)
def test_eval_set_faults_are_input_invalid_before_the_timed_window(
    examples, tmp_path, arrays, needle
):
    data = np.load(examples / "digits_eval.npz")
    path = tmp_path / "eval.npz"
    np.savez(path, **arrays(data["inputs"][:20], data["labels"][:20]))
    rec = run_record({"artifact": {"path": str(examples / "digits.onnx")}, "eval": str(path)})
    assert rec.reason == "input-invalid" and needle in rec.message, rec.message
    assert not rec.samples_ns and "measure_s" not in rec.timing


def test_nan_outputs_fail_the_accuracy_pass_and_keep_the_latency(dynamic_output_onnx, tmp_path):
    inputs = np.zeros((4, 64), np.float32)
    inputs[2, 5] = np.nan  # an Identity model: that sample's output is NaN
    path = tmp_path / "eval.npz"
    np.savez(path, inputs=inputs, reference=np.zeros((4, 64), np.float32))
    rec = run_record(
        {
            "artifact": {"path": str(dynamic_output_onnx)},
            "eval": str(path),
            "input_shapes": {"x": [1, 64]},
        }
    )
    assert rec.ok and rec.stats["n"] >= 20
    assert rec.accuracy == {
        "error": "inference-failed: 1 of the 4 eval samples gave NaN or infinite outputs"
    }
