"""Shared fixtures: the bundled example models, small generated models, and runners for the
real agent and the real CLI (as subprocesses, the way users and boards run them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from sshd import Sshd, skip_reason, start_sshd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# Short windows keep the suite fast; tests that judge statistics ask for more.
FAST = ["--min-seconds", "0.2", "--min-iterations", "20", "--warmup-seconds", "0.05"]
FAST_SETTINGS = {
    "min_seconds": 0.2,
    "min_iterations": 20,
    "warmup_seconds": 0.05,
    "memory_interval_ms": 10,
}


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def dynamic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MatMul model whose batch dimension is dynamic ('batch')."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(
        np.random.default_rng(0).random((64, 10), dtype=np.float32), "W"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("models") / "matmul_dynamic.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def truncated_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = (EXAMPLES / "digits.onnx").read_bytes()
    path = tmp_path_factory.mktemp("models") / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def agent_run(
    job: Dict[str, Any], command: str = "run", env: Dict[str, str] = None, timeout: float = 120
) -> Dict[str, Any]:
    """Run the real agent (``python -m agent``) with a job; returns the parsed document."""
    job = dict({"protocol": 1, "settings": FAST_SETTINGS}, **job)
    proc = subprocess.run(
        [sys.executable, "-m", "agent", command],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def edgebench(
    args: List[str], cwd: Path, timeout: float = 300, **kwargs: Any
) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, run from ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "edgebench.harness"] + args,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@pytest.fixture(scope="session")
def dynamic_output_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Identity model on [1, n]: how wide its output is shows only when it runs."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("models") / "identity_dynamic.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if skip_reason():
        pytest.skip(skip_reason())
    sshd = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield sshd
    sshd.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean client home: no ~/.ssh/config, known_hosts or keys of the real user."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server on loopback for the session (tests/pg.py)."""
    from pg import skip_reason as pg_skip
    from pg import start_postgres

    if pg_skip():
        pytest.skip(pg_skip())
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return postgres.database()
