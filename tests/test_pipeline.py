"""The on-device pipeline: plan keys, shipping, per-stage timing, accuracy, faults."""

import hashlib
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, FAST, agent_run, edgebench
from sshd import skip_reason

from edgebench.agent.pipeline import read_png
from edgebench.agent.record import Record
from edgebench.harness.store import open_run

needs_sshd = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
PLAN = EXAMPLES / "plan-pipeline.yaml"
STAGES = {"pre", "infer", "post", "end_to_end"}


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def png(image, filters):
    """An 8-bit PNG whose rows use the given filter types (0-4), cycling."""
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    flat = image.reshape(height, width * channels).astype(int)
    rows = b""
    for y in range(height):
        kind = filters[y % len(filters)]
        prev = flat[y - 1] if y else np.zeros_like(flat[0])
        out = []
        for x, v in enumerate(flat[y]):
            a = flat[y, x - channels] if x >= channels else 0
            b, c = prev[x], prev[x - channels] if x >= channels else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
            out.append((v - pred) & 0xFF)
        rows += bytes([kind] + out)
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("shape", [(7, 5), (6, 4, 3), (5, 3, 4), (4, 4, 2)])
def test_png_reader_undoes_every_filter(shape):
    image = np.random.default_rng(1).integers(0, 256, size=shape).astype(np.uint8)
    assert np.array_equal(read_png(png(image, [0, 1, 2, 3, 4])), image)


def test_png_reader_names_what_it_cannot_read():
    data = bytearray(png(np.zeros((2, 2), np.uint8), [0]))
    data[24] = 16  # bit depth
    with pytest.raises(ValueError, match="x.png: only 8-bit.*bit depth 16.*use .npy"):
        read_png(bytes(data), "x.png")


def check_pipeline_records(records):
    assert {r.artifact["name"] for r in records} == {
        "digits.onnx",
        "digits.tflite",
        "digits.int8.tflite",
    }
    for rec in records:
        assert rec.ok, rec.message
        pipe = rec.timing["pipeline"]
        assert pipe["pre"] == "prep.py:preprocess" and pipe["post"] == "prep.py:postprocess"
        assert set(pipe["stages"]) == STAGES and pipe["inputs"] == 100
        n = pipe["stages"]["end_to_end"]["n"]
        assert n >= 20 and all(len(pipe["samples_ns"][s]) == n for s in STAGES)
        for s in ("pre", "infer", "post"):
            assert pipe["stages"][s]["n"] == n and pipe["stages"][s]["p50_ms"] > 0
        # every iteration: end to end is at least its three stages
        parts = zip(*(pipe["samples_ns"][s] for s in ("pre", "infer", "post", "end_to_end")))
        assert all(pre + inf + post <= total for pre, inf, post, total in parts)
        # top-1 of the pipeline's own output on the 100 raw PNGs (the model: 96.9 % on 360)
        assert rec.accuracy["source"] == "pipeline" and rec.accuracy["n"] == 100
        assert rec.accuracy["top1"] >= 0.9 and pipe["accuracy"]["top1"] == rec.accuracy["top1"]


def test_example_pipeline_plan_on_local(tmp_path):
    proc = edgebench(["run", str(PLAN), "--quiet", "--out", "out"] + FAST, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = open_run(tmp_path / "out")
    check_pipeline_records(run.records())
    assert run.meta().request["pipeline"]["pre"] == "preprocess"
    report = (run.path / "report.md").read_text()
    assert "| Artifact | pre | inference | post | end to end | Top-1 | Raw inputs |" in report


@needs_sshd
def test_example_pipeline_plan_over_ssh(server, tmp_path, home):
    inventory = tmp_path / "devices.yaml"
    inventory.write_text(
        "devices:\n"
        + server.device_yaml("board", python=sys.executable, workdir=str(tmp_path / "wd"))
    )
    args = ["--devices-file", str(inventory), "run", str(PLAN), "--devices", "board"]
    proc = edgebench(args + ["--quiet", "--out", "out"] + FAST, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = open_run(tmp_path / "out")
    check_pipeline_records(run.records())
    blobs = {p.suffix for p in (tmp_path / "wd" / "blobs").iterdir()}
    assert {".py", ".zip"} <= blobs  # the code and the packed raw inputs, by content


def job(tmp_path, code, **pipeline):
    prep = tmp_path / "prep.py"
    prep.write_text(code)
    spec = {
        "code": str(prep),
        "code_sha256": hashlib.sha256(prep.read_bytes()).hexdigest(),
        "pre": "prep.py:preprocess",
        "post": None,
        "inputs": str(EXAMPLES / "digits_eval.npz"),
    }
    spec.update(pipeline)
    return {"artifact": {"path": str(EXAMPLES / "digits.onnx")}, "pipeline": spec}


GOOD = "def preprocess(x):\n    return x.reshape(1, 1, 8, 8)\n"


def test_eval_set_rows_as_raw_inputs_and_argmax_without_post(tmp_path):
    doc = agent_run(job(tmp_path, GOOD))
    rec = Record.from_dict(doc["record"])
    assert rec.ok and rec.timing["pipeline"]["inputs"] == 360
    assert rec.accuracy["top1"] == pytest.approx(0.9694, abs=1e-3)  # the model's own


def test_a_tampered_code_file_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    spec = job(tmp_path, GOOD)
    Path(spec["pipeline"]["code"]).write_text(
        "open(%r, 'w').close()\n" % str(marker) + GOOD  # changed after it was hashed
    )
    rec = Record.from_dict(agent_run(spec)["record"])
    assert rec.reason == "transfer-failed" and "pipeline code" in rec.message
    assert not marker.exists()


@pytest.mark.parametrize(
    "code, message",
    [
        (
            "def preprocess(x):\n    raise ValueError('bad pixel')\n",
            "prep.py:preprocess raised on sample 0: ValueError: bad pixel",
        ),
        ("import a_module_no_board_has\n" + GOOD, "prep.py failed to load: ModuleNotFoundError"),
        ("def other(x):\n    return x\n", "prep.py: no function 'preprocess'"),
    ],
)
def test_failing_user_code_is_a_pipeline_failed_record(tmp_path, code, message):
    rec = Record.from_dict(agent_run(job(tmp_path, code))["record"])
    assert rec.reason == "pipeline-failed" and message in rec.message
    assert rec.fault_class == "config" and not rec.samples_ns


def test_a_raising_postprocess_names_the_sample(tmp_path):
    code = GOOD + "def post(outputs):\n    raise KeyError('label')\n"
    rec = Record.from_dict(agent_run(job(tmp_path, code, post="prep.py:post"))["record"])
    assert rec.reason == "pipeline-failed"
    assert "prep.py:post raised on sample 0: KeyError: 'label'" in rec.message


@pytest.mark.parametrize(
    "pipeline, message",
    [
        ("{pre: E/pipeline/prep.py:preprocess}", "pipeline: missing required key 'inputs'"),
        (
            "{pre: E/pipeline/prep.py, inputs: E/pipeline/raw}",
            "pipeline.pre: expected file.py:function, got 'E/pipeline/prep.py'",
        ),
        ("{pre: nope.py:f, inputs: E/pipeline/raw}", "pipeline.pre: file not found"),
        (
            "{pre: E/pipeline/prep.py:preprocess, inputs: E/digits.onnx}",
            "pipeline.inputs: expected a folder of .npy/.png files or an .npz file",
        ),
        (
            "{pre: E/pipeline/prep.py:preprocess, post: E/make_digits.py:main, "
            "inputs: E/pipeline/raw}",
            "pipeline.post: pre and post must be functions of one file",
        ),
        ("{pre: E/pipeline/prep.py:preprocess, inputs: E/pipeline/raw, when: now}", "'when'"),
    ],
)
def test_bad_pipeline_keys_exit_2(tmp_path, pipeline, message):
    plan = tmp_path / "plan.yaml"
    text = "models: [E/digits.onnx]\nvariants: []\npipeline: %s\n" % pipeline
    plan.write_text(text.replace("E/", str(EXAMPLES) + "/"))
    proc = edgebench(["run", str(plan), "--quiet", "--out", "out"], cwd=tmp_path)
    message = message.replace("E/", str(EXAMPLES) + "/")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
