"""How agent processes end, through the real local transport: timeouts, crashes, bad output."""

import _thread
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
from conftest import FAST_SETTINGS
from test_ssh import gone

from edgebench.agent.record import Record
from edgebench.harness.config import Device
from edgebench.harness.devices import probe_one
from edgebench.harness.run.pack import build
from edgebench.harness.transport.base import AgentExit, LocalTransport, interpret

ART = {"name": "m.onnx", "sha256": "00" * 32}


def transport(tmp_path: Path, python: str, **kw) -> LocalTransport:
    t = LocalTransport(Device(name="dev", kind="local", python=python, **kw))
    t.deploy(build(tmp_path / "cache"))
    return t


def fake_python(tmp_path: Path, body: str) -> str:
    path = tmp_path / "python3"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def job(model: Path, **settings):
    return {
        "protocol": 1,
        "device": "dev",
        "artifact": {"path": str(model)},
        "input_shapes": {"x": [1, 64]},
        "settings": dict(FAST_SETTINGS, **settings),
    }


def test_timeout_kills_the_agent_and_its_children(tmp_path, dynamic_onnx):
    import sys

    t = transport(tmp_path, sys.executable)
    start = time.monotonic()
    out = t.run_agent(
        "run",
        job(
            dynamic_onnx,
            min_seconds=120,
            max_seconds=120,
            min_iterations=10**7,
            max_iterations=10**7,
        ),
        timeout=3,
    )
    assert out.timed_out and time.monotonic() - start < 15
    rec = interpret(out, "dev", ART, 3)
    assert rec.reason == "timeout" and "killed" in rec.message
    assert not agents_running(str(t.agent_zip))


def agents_running(marker: str):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path("/proc", pid, "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(pid)
    return found


def test_agent_killed_by_a_signal_is_a_crash_naming_it(tmp_path, dynamic_onnx):
    python = fake_python(tmp_path, 'echo "segfault coming" >&2; kill -SEGV $$')
    out = transport(tmp_path, python).run_agent("run", job(dynamic_onnx), timeout=30)
    rec = interpret(out, "dev", ART, 30)
    assert rec.reason == "crash" and "SIGSEGV" in rec.message
    assert "segfault coming" in rec.stderr_tail


def test_missing_interpreter_is_runtime_missing(tmp_path, dynamic_onnx):
    out = transport(tmp_path, str(tmp_path / "no-python")).run_agent(
        "run", job(dynamic_onnx), timeout=30
    )
    assert interpret(out, "dev", ART, 30).reason == "runtime-missing"


def test_garbage_on_stdout_is_a_protocol_error(tmp_path, dynamic_onnx):
    python = fake_python(tmp_path, "echo not-json")
    out = transport(tmp_path, python).run_agent("run", job(dynamic_onnx), timeout=30)
    rec = interpret(out, "dev", ART, 30)
    assert rec.reason == "protocol"


def test_interpret_keeps_the_harness_names():
    doc = (
        '{"record": {"status": "error", "reason": "model-invalid", "message": "bad", '
        '"device": "agent-side", "artifact": {"name": "x"}}}'
    )
    rec = interpret(AgentExit(0, doc, ""), "pi4", ART, 10)
    assert isinstance(rec, Record) and rec.device == "pi4" and rec.artifact["name"] == "m.onnx"


def test_device_environment_reaches_the_agent(tmp_path, dynamic_onnx):
    python = fake_python(tmp_path, 'echo "$EDGEBENCH_TEST_MARK" >&2; exit 3')
    t = transport(tmp_path, python, env=(("EDGEBENCH_TEST_MARK", "hello-board"),))
    out = t.run_agent("run", job(dynamic_onnx), timeout=30)
    assert "hello-board" in out.stderr_tail and out.returncode == 3


def test_an_exception_in_the_harness_leaves_no_agent_behind(tmp_path, dynamic_onnx):
    """The agent has its own process group (Ctrl-C does not reach it): whatever stops the
    harness mid-run, the supervise loop kills the group on the way out."""
    pids = tmp_path / "pids"
    python = fake_python(tmp_path, "sleep 300 & echo $$ $! > %s; wait" % pids)
    t = transport(tmp_path, python)

    def interrupt_once_running() -> None:
        deadline = time.monotonic() + 30
        while not (pids.exists() and pids.read_text().endswith("\n")):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        _thread.interrupt_main()

    # Ctrl-C as at a terminal, even when the suite runs with SIGINT ignored (started with
    # `&`): interrupt_main() does nothing for an ignored signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_once_running, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            t.run_agent("run", job(dynamic_onnx), timeout=60)
    finally:
        signal.signal(signal.SIGINT, previous)
    started = [int(p) for p in pids.read_text().split()]  # the agent and its child
    deadline = time.monotonic() + 5
    while not all(gone(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(p) for p in started), started


def test_probe_reads_an_agent_exit_as_a_run_does(tmp_path):
    python = fake_python(tmp_path, 'echo "segfault coming" >&2; kill -SEGV $$')
    info = probe_one(Device(name="dev", kind="local", python=python), build(tmp_path / "cache"))
    message = "the agent was killed by SIGSEGV: segfault coming"
    assert info == {"error": "crash", "message": message}
    out = transport(tmp_path, python).run_agent("run", {}, timeout=30)
    assert interpret(out, "dev", ART, 30).message == message
