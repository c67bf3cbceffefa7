"""The agent on an older board's stack: Python 3.8 (JetPack 5), numpy 1.24 (Raspberry Pi OS
bookworm), tflite_runtime 2.14 (Coral) and the last onnxruntime for 3.8 -- through the real
harness, with the venv's interpreter as the device's `python`."""

import csv
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FAST, edgebench

BOARD_STACK = ["numpy==1.24.4", "tflite-runtime==2.14.0", "onnxruntime==1.19.2"]
PYENV38 = "~/.pyenv/versions/3.8.18/bin/python3.8"
NO_PY38 = (
    "no Python 3.8 interpreter (Debian 12 and 13 ship none): set EDGEBENCH_PY38="
    "/path/to/python3.8, or `pyenv install 3.8.18` for %s" % PYENV38
)


def _python38():
    """EDGEBENCH_PY38 when set, else pyenv's 3.8 or a python3.8 on PATH."""
    given = os.environ.get("EDGEBENCH_PY38")
    candidates = [given] if given else [os.path.expanduser(PYENV38), "python3.8"]
    return next(filter(None, map(shutil.which, candidates)), None)


@pytest.fixture(scope="session")
def board_python() -> str:
    """A cached venv with the board stack (built once per machine, ~10 s)."""
    py38 = _python38()
    if py38 is None:
        given = os.environ.get("EDGEBENCH_PY38")
        pytest.skip("EDGEBENCH_PY38=%s is not an executable" % given if given else NO_PY38)
    key = hashlib.sha256(" ".join([py38] + BOARD_STACK).encode()).hexdigest()[:12]
    venv = Path(os.path.expanduser("~/.cache/edgebench/test-venvs")) / ("py38-" + key)
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([py38, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q"] + BOARD_STACK,
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            pytest.skip("cannot install the board stack: %s" % pip.stderr.strip()[-300:])
        (venv / ".complete").write_text("ok")
    return str(python)


def test_old_board_stack_runs_every_example(tmp_path, board_python, examples):
    (tmp_path / "devices.yaml").write_text(
        "devices:\n  oldboard:\n    kind: local\n    python: %s\n" % json.dumps(board_python)
    )
    proc = edgebench(["run", "--devices", "oldboard", "--out", "res"] + FAST, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "res" / "latest" / "summary.csv", newline="") as fh:
        rows = {r["artifact"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"digits.onnx", "digits.tflite", "digits.int8.tflite"}
    for row in rows.values():
        assert row["status"] == "ok", row["message"]
        assert float(row["top1"]) > 0.93
    raw = tmp_path / "res" / "latest" / "raw" / "oldboard"
    rec = json.loads((raw / "digits.int8.tflite.json").read_text())
    assert rec["runtime"]["module"] == "tflite_runtime.interpreter"
    assert rec["runtime"]["version"] == "2.14.0"
    assert rec["fingerprint"]["python"].startswith("3.8.")
    assert rec["fingerprint"]["numpy"] == "1.24.4"
