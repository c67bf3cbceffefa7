"""The agent on a board over SSH: deploy by content hash, upload fast and verified, run, kill.

Layout on the board, all under the device's workdir (nothing is written elsewhere)::

    agents/edgebench-agent-<hash>.pyz    the agent, named by its content
    blobs/<sha256><ext>                  artifacts and eval sets, named by their content
    lease                                held by the running agent (agent/lease.py)
    cache/                               the runtimes' caches ($XDG_CACHE_HOME of the agent)

Files travel through one small receiver run by the device's own Python (``agent/receive.py``,
sent inline as :data:`RECEIVE`): it answers whether the board already has the file -- hashing
the copy there, since a file can change on the board after it arrived -- else takes the bytes
on stdin into a temporary file in the same directory, hashes them as it writes, and renames
the file into place only if the sha256 matches; a re-run that finds an intact copy sends
nothing.  Streaming over an exec channel (from a memory map, into 1 MiB blocks) keeps pace
with ``scp`` (benchmarks/transfer.py), reports a full disk as ENOSPC -- paramiko's pipelined
SFTP writes drop most error replies -- and needs no sftp-server on the board.  The agent is
started through ``agent/loader.py`` (sent inline), which runs it only from bytes whose sha256
it checked, and the agent checks its inputs the same way before using them.

Remote commands are strings for the remote shell: every argument goes through
``shlex.quote``.  The agent runs as ``exec sh -c WRAPPER ...``: sshd makes the login shell a
session (and process group) leader and ``exec`` keeps that PID for the wrapper, which
reports it on stderr before starting the agent; a timeout or Ctrl-C kills that whole group
from a second channel, because closing the channel alone leaves a pty-less process running.

A board can stop answering with its TCP connection still up (a frozen sshd): every wait on
it -- opening a channel, starting a command, reading, the kill -- is bounded, by the
device's ``timeout_s`` at most, and once it has not answered, the rest of its work fails
at once instead of waiting again.
"""

from __future__ import annotations

import ast
import mmap
import os
import re
import shlex
import signal
import socket
import threading
import time
from pathlib import Path
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional

import paramiko

from edgebench.agent import receive
from edgebench.agent.faults import Fault
from edgebench.agent.verify import sha256_file

from ..config import Device
from .base import (
    KILL_WAIT_S,
    LOADER,
    AgentExit,
    AgentProcess,
    Progress,
    StderrSink,
    Transport,
    agent_env,
    printable,
    supervise,
)
from .sshconn import Connection, open_connection

CHUNK = 1 << 20
COMMAND_TIMEOUT_S = 120.0  # the longest a helper command may go without progress
# Prints the PID (= process group) first, then runs the agent as a child, so that a signal
# that kills the agent shows as status 128+N instead of vanishing with the process.
WRAPPER = 'echo "@pid $$" >&2; "$@"; exit $?'
PID_LINE = re.compile(r"^@pid (\d+)$")
# The upload receiver, sent inline like the loader (its text is checked by vermin and ruff).
RECEIVE = Path(receive.__file__).read_text(encoding="utf-8")
# A board that fails a transfer without the link or the disk being the cause (a corrupted
# upload, an unwritable workdir).
DEVICE_FAILED = "transfer-failed"


def quote_command(argv: Iterable[str]) -> str:
    """One shell command line; every argument is quoted, whatever it contains."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def shell_path(path: str) -> str:
    """``path`` for the remote shell: quoted, with a leading ``~/`` still meaning home."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + (shlex.quote(path[1:]) if len(path) > 1 else "")
    return shlex.quote(path)


def blob_name(path: Path, sha256: str) -> str:
    """``<sha256><ext>``: the content address, keeping a tame extension for the agent."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("not a sha256 hex digest: %r" % sha256)
    ext = path.suffix.lower()
    return sha256 + (ext if re.fullmatch(r"\.[a-z0-9]{1,16}", ext) else "")


def exit_code(status: int, stdout: str) -> int:
    """Our exit-code convention from what sshd reported for the wrapper.

    A wrapper whose agent died of signal N exits 128+N; with no document written that is
    the signal (negative, as in subprocess).  -1 means sshd sent no status at all, so the
    wrapper itself was killed -- by the OOM killer or an admin: SIGKILL is the likely one.
    """
    if status == -1:
        return -signal.SIGKILL
    if status > 128 and not stdout.strip() and (status - 128) in signal.Signals._value2member_map_:
        return 128 - status
    return status


class SSHTransport(Transport):
    """Talks to one board through one SSH connection (opened on first use)."""

    def __init__(self, device: Device, ssh_config: Optional[str] = None) -> None:
        super().__init__(device)
        self._ssh_config = ssh_config
        self._conn: Optional[Connection] = None
        self.agent_path = ""
        self.agent_sha256 = ""
        self._wait_s = min(COMMAND_TIMEOUT_S, device.timeout_s)
        self._lost = ""  # why the board is taken to have stopped answering

    def _connected(self) -> Connection:
        if self._conn is None:
            self._conn = open_connection(self.device, self._ssh_config)
        return self._conn

    def _alive(self) -> bool:
        transport = self._conn.transport if self._conn is not None else None
        return transport is not None and transport.is_active()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _channel(self, command: str, wait_s: Optional[float] = None) -> paramiko.Channel:
        """A channel running ``command``, opened and started within ``wait_s``."""
        if self._lost:
            raise Fault("unreachable", self._lost)
        wait_s = self._wait_s if wait_s is None else wait_s
        end = time.monotonic() + wait_s
        chan = watchdog = None
        try:
            chan = self._connected().transport.open_session(timeout=wait_s)
            # exec_command waits for sshd's answer without a timeout; a close ends the wait
            watchdog = threading.Timer(max(0.0, end - time.monotonic()), chan.close)
            watchdog.start()
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if chan is not None:
                chan.close()
            if not self._alive() or time.monotonic() < end:
                raise Fault(
                    "unreachable",
                    "lost the connection to %s: %s" % (self.device.name, exc or type(exc).__name__),
                ) from None
            self._lost = "%s stopped answering (no reply within %.0f s)" % (
                self.device.name,
                wait_s,
            )
            raise Fault("unreachable", self._lost) from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
        return chan

    def _python_command(self, code: str, *args: str) -> str:
        return "%s -S -c %s %s" % (
            shell_path(self.device.python),
            shlex.quote(code),
            quote_command(args),
        )

    # -- deploy and stage -----------------------------------------------------------------

    def deploy(self, agent_zip: Path) -> None:
        """The agent, under its content-hash name; sent only when the board lacks it."""
        self.agent_sha256 = sha256_file(agent_zip)
        self.agent_path = self.send(_map(agent_zip), "agents", agent_zip.name, self.agent_sha256)

    def stage(self, path: Path, sha256: str, progress: Optional[Progress] = None) -> str:
        return self.send(_map(path), "blobs", blob_name(path, sha256), sha256, progress)

    def stored(self, path: Path, sha256: str, size: int) -> str:
        """The blob a past run left on the board, if it is still there and intact: the
        receiver hashes it; offered no bytes, a missing or changed copy ends short."""
        name = blob_name(path, sha256)
        try:
            return self.send(memoryview(b""), "blobs", name, sha256, size=size)
        except Fault as fault:
            if fault.reason == "unreachable":
                raise
            raise Fault(
                "transfer-failed",
                "%s no longer holds %s (sha256 %s) intact in %s/blobs, and this host has no "
                "copy; give the baseline as a file"
                % (self.device.name, path.name, sha256[:12], self.device.workdir),
            ) from None

    def send(
        self,
        data: memoryview,
        sub: str,
        name: str,
        sha256: str,
        progress: Optional[Progress] = None,
        size: Optional[int] = None,
    ) -> str:
        """``<workdir>/<sub>/<name>`` on the board, sending ``data`` if it is not there yet
        (``size``: the file's, when ``data`` is not all of it).

        The bytes are hashed on the board; a mismatch leaves nothing behind.
        """
        if "/" in name or name in ("", ".", ".."):
            raise ValueError("not a plain file name: %r" % name)  # stay inside the workdir
        size = len(data) if size is None else size
        chan = self._channel(
            self._python_command(RECEIVE, self.device.workdir, sub, name, sha256, str(size))
        )
        chan.settimeout(self._wait_s)
        replies = chan.makefile("rb")
        try:
            state = _reply(replies)
            if state.get("state") == "send":
                try:
                    self._stream(data, chan, progress)
                except (OSError, EOFError, paramiko.SSHException):
                    pass  # the receiver stopped reading: its reply or status says why
                state = _reply(replies)
            chan.status_event.wait(self._wait_s)
            errors = printable(chan.makefile_stderr("rb").read().decode("utf-8", "replace"))
        except socket.timeout:
            self._lost = "%s: the transfer of %s made no progress for %.0f s" % (
                self.device.name,
                name,
                self._wait_s,
            )
            raise Fault("unreachable", self._lost) from None
        finally:
            chan.close()
        if state.get("state") in ("have", "ok"):
            return str(state["path"])
        raise self._send_fault(state, chan.exit_status, errors, name)

    def _stream(
        self, data: memoryview, chan: paramiko.Channel, progress: Optional[Progress]
    ) -> None:
        for offset in range(0, len(data), CHUNK):
            if self._cancel.is_set():
                raise Fault("interrupted", "an upload to %s was interrupted" % self.device.name)
            block = data[offset : offset + CHUNK]
            chan.sendall(block)
            self.bytes_sent += len(block)
            if progress is not None:
                progress(offset + len(block), len(data))
        chan.shutdown_write()

    def _send_fault(self, state: Dict[str, Any], status: int, errors: str, name: str) -> Fault:
        detail = printable(str(state.get("detail", "")))
        if status == 127:
            return Fault(
                "runtime-missing",
                "the device's Python (%s) could not be started: %s"
                % (self.device.python, errors.strip()),
            )
        if state.get("state") == "disk-full":
            return Fault(
                "disk-full",
                "%s: no room for %s in %s: %s"
                % (self.device.name, name, self.device.workdir, detail),
            )
        if state.get("state") == "mismatch":
            return Fault(
                DEVICE_FAILED,
                "%s: the upload of %s arrived with sha256 %s..., not "
                "the expected one; it was discarded" % (self.device.name, name, detail[:16]),
            )
        if not self._alive():
            return Fault(
                "unreachable",
                "lost the connection to %s while sending %s" % (self.device.name, name),
            )
        last = (errors.strip().splitlines() or [detail or "exit status %d" % status])[-1]
        return Fault(DEVICE_FAILED, "%s: storing %s failed: %s" % (self.device.name, name, last))

    # -- run ------------------------------------------------------------------------------

    def agent_command(self, command: str) -> str:
        argv = "%s -c %s %s" % (
            shell_path(self.device.python),
            shlex.quote(LOADER),
            quote_command([self.agent_path, self.agent_sha256, command]),
        )
        env = " ".join(
            "%s=%s" % (k, shell_path(v)) for k, v in agent_env(self.device.workdir).items()
        )
        env += "".join(" " + quote_command(["%s=%s" % kv]) for kv in self.device.env)
        return "exec sh -c %s edgebench-agent env %s %s" % (shlex.quote(WRAPPER), env, argv)

    def run_agent(
        self,
        command: str,
        job: Dict[str, Any],
        timeout: float,
        on_stderr: Optional[StderrSink] = None,
    ) -> AgentExit:
        assert self.agent_path, "deploy() first"
        chan = self._channel(self.agent_command(command))
        try:
            outcome = supervise(_RemoteProcess(self, chan), job, timeout, self._cancel, on_stderr)
        finally:
            chan.close()
        killed = outcome.timed_out or outcome.interrupted
        if chan.exit_status == -1 and not self._alive() and not killed:
            raise Fault(
                "unreachable", "lost the connection to %s during the run" % self.device.name
            )
        return outcome

    def _kill(self, pid: Optional[int]) -> bool:
        """SIGKILL the agent's process group (or at least the wrapper) from a new channel;
        False when the board did not confirm it within :data:`KILL_WAIT_S`.

        ``kill -9 -PGID`` rather than ``kill -9 -- -PGID``: dash's kill rejects ``--``.
        """
        if pid is None or not self._alive():
            return False
        end = time.monotonic() + KILL_WAIT_S
        try:
            chan = self._channel("kill -9 -%d 2>/dev/null || kill -9 %d" % (pid, pid), KILL_WAIT_S)
        except Fault:
            return False  # the board stopped answering; the channel close is all we can do
        try:
            chan.status_event.wait(max(0.0, end - time.monotonic()))
            if chan.exit_status == -1:
                self._lost = "%s stopped answering (a kill got no reply)" % self.device.name
            return chan.exit_status != -1
        finally:
            chan.close()


class _RemoteProcess(AgentProcess):
    """The agent behind an exec channel: its stderr starts with the wrapper's ``@pid N``,
    the process group that a kill from a second channel takes down."""

    def __init__(self, transport: SSHTransport, chan: paramiko.Channel) -> None:
        self.transport, self.chan = transport, chan
        self.pid: List[int] = []
        self.stdout = chan.makefile("rb")
        self.stderr = _strip_pid(chan.makefile_stderr("rb"), self.pid)

    def send(self, data: bytes) -> None:
        try:
            self.chan.sendall(data)
            self.chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the agent died early or the link is gone: the status says which

    def wait(self, seconds: float) -> bool:
        return bool(self.chan.status_event.wait(seconds))  # set by the exit status or a close

    def kill(self) -> bool:
        killed = self.transport._kill(self.pid[0] if self.pid else None)
        if killed:
            self.chan.status_event.wait(KILL_WAIT_S)
        self.chan.close()  # the readers stop even if the kill did not get through
        return killed

    def returncode(self, stdout: str) -> Optional[int]:
        return exit_code(self.chan.exit_status, stdout)


def _map(path: Path) -> memoryview:
    """The file's bytes, mapped rather than read: no copy into Python objects on the way out.

    The mapping lives as long as the view (or a slice of it) does.
    """
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))


def _reply(lines: IO[bytes]) -> Dict[str, Any]:
    """The receiver's next reply as a dict, or {} when it ended without one.

    Lines that are not replies are skipped: some boards' shell start-up files print.
    """
    for line in iter(lines.readline, b""):
        try:
            reply = ast.literal_eval(line.decode("utf-8", "replace").strip())
        except (ValueError, SyntaxError):
            continue
        if isinstance(reply, tuple) and len(reply) == 4 and reply[0] == "edgebench":
            return {"state": reply[1], "path": reply[2], "detail": reply[3]}
    return {}


def _strip_pid(lines: Iterable[bytes], pid: List[int]) -> Iterator[bytes]:
    """The agent's stderr without the wrapper's ``@pid N`` line, whose N goes to ``pid``."""
    for raw in lines:
        match = PID_LINE.match(raw.decode("ascii", "replace").strip()) if not pid else None
        if match:
            pid.append(int(match.group(1)))
        else:
            yield raw
