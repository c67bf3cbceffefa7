"""The boundary between the runner and a device: how the agent is started and spoken to.

A transport deploys the agent, stages artifacts, and runs one agent command with a job on
stdin and a deadline.  Every transport runs it through one loop, :func:`supervise` (feed the
job, stream stderr, kill at the deadline or on cancel), and whatever went wrong on the way --
a crash, a kill, a timeout, a document that is not one -- is read by one function,
:func:`agent_answer`, so `local` and SSH yield the same records, and ``devices --probe`` the
same reasons.

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
from typing import IO, Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, TypeVar

from edgebench.agent import loader
from edgebench.agent.faults import Fault
from edgebench.agent.record import Record, error_record
from edgebench.agent.verify import sha256_file

from ..config import Device

StderrSink = Callable[[str], None]
Progress = Callable[[int, int], None]  # (bytes sent, bytes in all)
TAIL_LINES = 30
POLL_S = 0.1  # how often a running agent's deadline and cancel are checked
KILL_WAIT_S = 5.0  # a kill: delivering it, the exit, the last output
T = TypeVar("T")
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


def agent_answer(outcome: AgentExit, timeout: float, read: Callable[[Any], T]) -> T:
    """``read(document)`` of the agent's document -- or the :class:`Fault` saying how the agent
    failed to give one: interrupted, timeout, a refused zipapp, a crash, a Python that did
    not start, output that is not the document ``read`` expects."""
    tail = outcome.stderr_tail
    killed = (
        "the board stopped answering; the agent may still be running -- the kill "
        "could not be delivered"
        if outcome.kill_failed
        else "the agent was killed"
    )
    if outcome.interrupted:
        raise Fault("interrupted", "the run was interrupted; " + killed)
    if outcome.timed_out:
        raise Fault("timeout", "no result within %.0f s; %s" % (timeout, killed))
    code = outcome.returncode
    refusal = [line for line in tail.splitlines() if line.startswith(loader.REFUSED_MARK)]
    if code == loader.REFUSED and refusal:
        raise Fault(
            "transfer-failed",
            "the agent on the board is not the one that was sent: " + refusal[-1],
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
        raise Fault(reason, msg + (": %s" % last[0] if last else ""))
    try:
        return read(parse_document(outcome.stdout))
    except (ValueError, KeyError, TypeError) as exc:  # RecordError is a ValueError
        raise Fault("protocol", "the agent's output is not a result document (%s)" % exc) from None


def _record(doc: Mapping[str, Any]) -> Record:
    """The record of a result document; the agent's version (on the document, not in the
    record) joins the record's fingerprint, so summary.csv can show it."""
    record = Record.from_dict(doc["record"])
    if not record.fingerprint or not doc.get("agent_version"):
        return record
    return record.replace(fingerprint=dict(record.fingerprint, agent_version=doc["agent_version"]))


def interpret(
    outcome: AgentExit, device: str, artifact: Mapping[str, Any], timeout: float
) -> Record:
    """The record for one agent run: the agent's own, or one describing how it failed."""
    try:
        record = agent_answer(outcome, timeout, _record)
    except Fault as fault:
        return error_record(
            device, artifact, fault.reason, fault.message, stderr_tail=outcome.stderr_tail
        )
    # The harness's names win: the device name is ours, the artifact identity was sent.
    return record.replace(
        device=device,
        artifact={**record.artifact, **artifact},
        stderr_tail=outcome.stderr_tail if not record.ok else "",
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

    def stored(self, path: Path, sha256: str, size: int) -> str:
        """The device's own copy of a file this host no longer has, checked by sha256
        (an A/B baseline taken from a stored run); a fault when it has none."""
        raise Fault(
            "transfer-failed",
            "%s keeps no copies of artifacts, and %s (sha256 %s) is no longer on this host; "
            "give the baseline as a file" % (self.device.name, path.name, sha256[:12]),
        )

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


class AgentProcess:
    """A started agent as :func:`supervise` drives it; each transport has its own."""

    stdout: IO[bytes]
    stderr: Iterable[bytes]

    def send(self, data: bytes) -> None:
        """``data`` on the agent's stdin, then its end; an agent already gone is no error."""
        raise NotImplementedError

    def wait(self, seconds: float) -> bool:
        """Whether the agent has exited, waiting at most ``seconds`` for it."""
        raise NotImplementedError

    def kill(self) -> bool:
        """SIGKILL the agent and everything it started, give it :data:`KILL_WAIT_S` to exit,
        and end its output streams; False when the kill could not be delivered."""
        raise NotImplementedError

    def returncode(self, stdout: str) -> Optional[int]:
        """The exit status in subprocess's convention (negative: killed by that signal)."""
        raise NotImplementedError


def supervise(
    process: AgentProcess,
    job: Dict[str, Any],
    timeout: float,
    cancel: threading.Event,
    on_stderr: Optional[StderrSink] = None,
) -> AgentExit:
    """Feed ``process`` the job, stream its stderr, and wait for its exit -- killing it at
    the deadline or on ``cancel``.  Every wait is bounded; an agent is never left behind."""
    tail: Deque[str] = deque(maxlen=TAIL_LINES)
    out_chunks: List[bytes] = []
    readers = [
        threading.Thread(target=_pump_lines, args=(process.stderr, tail, on_stderr), daemon=True),
        threading.Thread(target=lambda: out_chunks.append(process.stdout.read()), daemon=True),
    ]
    timed_out = interrupted = kill_failed = False
    try:
        for t in readers:
            t.start()
        process.send(json.dumps(job).encode())
        deadline = time.monotonic() + timeout
        while not process.wait(POLL_S):
            interrupted = cancel.is_set()
            timed_out = not interrupted and time.monotonic() >= deadline
            if interrupted or timed_out:
                kill_failed = not process.kill()
                break
    except BaseException:
        if not process.wait(0):
            process.kill()
        raise
    for t in readers:
        t.join(timeout=KILL_WAIT_S)
    stdout = b"".join(out_chunks).decode("utf-8", "replace")
    return AgentExit(
        process.returncode(stdout),
        stdout,
        "\n".join(tail),
        timed_out,
        interrupted,
        kill_failed,
    )


def _pump_lines(stream: Iterable[bytes], tail: Deque[str], sink: Optional[StderrSink]) -> None:
    for raw in stream:
        line = printable(raw.decode("utf-8", "replace").rstrip("\n"))
        tail.append(line)
        if sink is not None:
            sink(line)


class _LocalProcess(AgentProcess):
    """The agent in a subprocess, leading its own process group."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.stdout, self.stderr = proc.stdout, proc.stderr

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait(self, seconds: float) -> bool:
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> bool:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the whole group: no orphans left
        self.wait(KILL_WAIT_S)
        return True

    def returncode(self, stdout: str) -> Optional[int]:
        return self.proc.returncode


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
        return supervise(_LocalProcess(proc), job, timeout, self._cancel, on_stderr)


def agent_env(workdir: str) -> Dict[str, str]:
    """Environment for the agent: libraries' caches inside the workdir.  ONNX Runtime writes
    a telemetry database and device id under ``$XDG_CACHE_HOME`` (else ``~/.cache``)
    ``/Microsoft`` when imported."""
    return {"XDG_CACHE_HOME": workdir.rstrip("/") + "/cache"}
