"""The boundary between the runner and a device: how the agent is started and spoken to.

A transport deploys the agent, stages artifacts, and runs one agent command with a job on
stdin and a deadline.  Whatever went wrong on the way -- a crash, a kill, a timeout, a
document that is not one -- is turned into an error record here, identically for every
transport, so `local` and SSH yield the same records.

Both start the agent through ``agent/loader.py``, sent inline: it checks the zipapp's sha256
and runs exactly the bytes it checked.  Text from a device (its stderr, its documents) goes
through :func:`printable` on the way in, so a hostile board cannot drive our terminal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

from edgebench.agent import loader
from edgebench.agent.record import Record, RecordError, error_record
from edgebench.agent.verify import sha256_file

from ..config import Device

StderrSink = Callable[[str], None]
Progress = Callable[[int, int], None]  # (bytes sent, bytes in all)
TAIL_LINES = 30
LOADER = Path(loader.__file__).read_text(encoding="utf-8")
# C0 and C1 controls and DEL, except newline and tab; and the bidirectional overrides
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(value: Any) -> Any:
    """``value`` (a string, or JSON data) with control characters escaped as ``\\xNN``."""
    if isinstance(value, str):
        return CONTROL.sub(
            lambda m: (
                "\\x%02x" % ord(m.group()) if ord(m.group()) < 256 else "\\u%04x" % ord(m.group())
            ),
            value,
        )
    if isinstance(value, list):
        return [printable(v) for v in value]
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    return value


def parse_document(stdout: str) -> Any:
    """The agent's JSON document, its strings made :func:`printable`."""
    return printable(json.loads(stdout))


@dataclass(frozen=True)
class AgentExit:
    """How one agent process ended, before its output is interpreted."""

    returncode: Optional[int]  # negative: killed by that signal (subprocess convention)
    stdout: str
    stderr_tail: str
    timed_out: bool = False
    interrupted: bool = False
    kill_failed: bool = False  # timed out or interrupted, and the kill never got through


def interpret(
    outcome: AgentExit, device: str, artifact: Mapping[str, Any], timeout: float
) -> Record:
    """The record for one agent run: the agent's own, or one describing how it failed."""
    tail = outcome.stderr_tail
    killed = (
        "the board stopped answering; the agent may still be running -- the kill "
        "could not be delivered"
        if outcome.kill_failed
        else "the agent was killed"
    )
    if outcome.interrupted:
        return error_record(
            device, artifact, "interrupted", "the run was interrupted; " + killed, stderr_tail=tail
        )
    if outcome.timed_out:
        return error_record(
            device,
            artifact,
            "timeout",
            "no result within %.0f s; %s" % (timeout, killed),
            stderr_tail=tail,
        )
    code = outcome.returncode
    refusal = [line for line in tail.splitlines() if line.startswith(loader.REFUSED_MARK)]
    if code == loader.REFUSED and refusal:
        return error_record(
            device,
            artifact,
            "transfer-failed",
            "the agent on the board is not the one that was sent: " + refusal[-1],
            stderr_tail=tail,
        )
    if code is not None and code != 0:
        if code < 0:
            name = (
                signal.Signals(-code).name
                if -code in signal.Signals._value2member_map_
                else str(-code)
            )
            reason = (
                "out-of-memory" if -code == signal.SIGKILL and "MemoryError" in tail else "crash"
            )
            msg = "the agent was killed by %s" % name
        elif code == 127:
            reason, msg = "runtime-missing", "the device's Python could not be started"
        else:
            reason, msg = "crash", "the agent exited with status %d" % code
        last = tail.strip().splitlines()[-1:] if tail.strip() else []
        return error_record(
            device, artifact, reason, msg + (": %s" % last[0] if last else ""), stderr_tail=tail
        )
    try:
        record = Record.from_dict(parse_document(outcome.stdout)["record"])
    except (ValueError, KeyError, TypeError, RecordError) as exc:
        return error_record(
            device,
            artifact,
            "protocol",
            "the agent's output is not a result document (%s)" % exc,
            stderr_tail=tail,
        )
    # The harness's names win: the device name is ours, the artifact identity was sent.
    return record.replace(
        device=device,
        artifact={**record.artifact, **artifact},
        stderr_tail=tail if not record.ok else "",
    )


class Transport:
    """Base class; subclasses implement deploy, stage and _spawn."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.bytes_sent = 0
        self._cancel = threading.Event()

    def deploy(self, agent_zip: Path) -> None:
        """Make the agent available on the device."""
        raise NotImplementedError

    def stage(self, path: Path, sha256: str, progress: Optional[Progress] = None) -> str:
        """Make an artifact (or eval set) available; returns its path on the device.
        ``progress(sent, total)`` hears about bytes as they go."""
        raise NotImplementedError

    def run_agent(
        self,
        command: str,
        job: Dict[str, Any],
        timeout: float,
        on_stderr: Optional[StderrSink] = None,
    ) -> AgentExit:
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop the running agent (Ctrl-C): its run returns ``interrupted``."""
        self._cancel.set()

    def close(self) -> None:
        pass


def pump_lines(stream: Iterable[bytes], tail: deque[str], sink: Optional[StderrSink]) -> None:
    for raw in stream:
        line = printable(raw.decode("utf-8", "replace").rstrip("\n"))
        tail.append(line)
        if sink is not None:
            sink(line)


class LocalTransport(Transport):
    """The agent in a subprocess on this machine, with the device's interpreter."""

    def __init__(self, device: Device) -> None:
        super().__init__(device)
        self.agent_zip: Optional[Path] = None
        self.agent_sha256 = ""

    def deploy(self, agent_zip: Path) -> None:
        self.agent_zip = agent_zip
        self.agent_sha256 = sha256_file(str(agent_zip))

    def stage(self, path: Path, sha256: str, progress: Optional[Progress] = None) -> str:
        return str(Path(path).resolve())

    def run_agent(
        self,
        command: str,
        job: Dict[str, Any],
        timeout: float,
        on_stderr: Optional[StderrSink] = None,
    ) -> AgentExit:
        assert self.agent_zip is not None, "deploy() first"
        env = dict(os.environ, **agent_env(os.path.expanduser(self.device.workdir)))
        env.update(dict(self.device.env))
        try:
            proc = subprocess.Popen(
                [self.device.python, "-c", LOADER, str(self.agent_zip), self.agent_sha256, command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=env,
            )  # own group: Ctrl-C reaches us, not it
        except OSError as exc:
            return AgentExit(127, "", "cannot start %s: %s" % (self.device.python, exc))
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        pipe = proc.stdout
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        out_chunks = []
        readers = [
            threading.Thread(target=pump_lines, args=(proc.stderr, tail, on_stderr), daemon=True),
            threading.Thread(target=lambda: out_chunks.append(pipe.read()), daemon=True),
        ]
        for t in readers:
            t.start()
        try:
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        timed_out = interrupted = False
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            interrupted = self._cancel.is_set()
            timed_out = not interrupted and time.monotonic() >= deadline
            if interrupted or timed_out:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: no orphans left
                proc.wait()
                break
            try:
                proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        for t in readers:
            t.join(timeout=5)
        stdout = out_chunks[0].decode("utf-8", "replace") if out_chunks else ""
        return AgentExit(proc.returncode, stdout, "\n".join(tail), timed_out, interrupted)


def agent_env(workdir: str) -> Dict[str, str]:
    """Environment for the agent: libraries' caches inside the workdir.  ONNX Runtime writes
    a telemetry database and device id under ``$XDG_CACHE_HOME`` (else ``~/.cache``)
    ``/Microsoft`` when imported."""
    return {"XDG_CACHE_HOME": workdir.rstrip("/") + "/cache"}
