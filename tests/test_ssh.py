"""The SSH transport against real OpenSSH servers on loopback (tests/sshd.py), and the
board lease.  Nothing is mocked: the servers, the agent and the CLI are the real ones."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import zipapp
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from conftest import FAST, ROOT, edgebench
from sshd import Sshd, free_port, keygen, kill_tree, skip_reason, start_sshd

from edgebench.agent.faults import Fault
from edgebench.agent.lease import acquire
from edgebench.harness.config import Device
from edgebench.harness.store import open_run
from edgebench.harness.transport.base import interpret
from edgebench.harness.transport.ssh import SSHTransport

needs_sshd = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
NASTY = "we ird 'q\" ;touch MARK; $(touch MARK) `touch MARK` \\"


def fault_of(dev: Device) -> Fault:
    t = SSHTransport(dev)
    try:
        with pytest.raises(Fault) as info:
            t.deploy(fake_agent(Path(dev.workdir).parent, "print('hi')"))
    finally:
        t.close()
    return info.value


def fake_agent(where: Path, code: str) -> Path:
    """A zipapp standing in for the agent, e.g. to hang or crash on purpose."""
    src = where / "fake-src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "__main__.py").write_text(code)
    target = where / "fake-agent.pyz"
    zipapp.create_archive(str(src), str(target))
    return target


def proc_stat(pid: int) -> List[str]:
    """/proc/PID/stat after the command name: state, ppid, ..."""
    return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()


def gone(pid: int) -> bool:
    """No such process, or a zombie (killed, waiting for a reaper that may never come)."""
    try:
        return proc_stat(pid)[0] == "Z"
    except FileNotFoundError:
        return True


def write_devices(path: Path, entries: List[str]) -> Path:
    path.write_text("devices:\n  local:\n    kind: local\n" + "".join(entries))
    return path


# -- the whole CLI ------------------------------------------------------------------------


@needs_sshd
def test_run_over_ssh_matches_local_and_a_rerun_sends_nothing(
    server: Sshd, tmp_path: Path, home: Path, examples: Path
) -> None:
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [
            server.device_yaml("board", python=sys.executable, workdir=str(tmp_path / "wd")),
            server.device_yaml("dead", port=free_port(), workdir=str(tmp_path / "wd2")),
        ],
    )
    models = [examples / "digits.onnx", examples / "digits.tflite"]
    args = [
        "--devices-file",
        str(inventory),
        "run",
        "--model",
        str(models[0]),
        "--model",
        str(models[1]),
        "--eval",
        str(examples / "digits_eval.npz"),
        "--devices",
        "local,board,dead",
        "--quiet",
        "--out",
        str(tmp_path / "results"),
    ] + FAST
    first = edgebench(args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # "dead" failed
    run = open_run(tmp_path / "results")
    records = {(r.device, r.artifact["name"]): r for r in run.records()}
    assert len(records) == 6
    for model in models:
        board, local = records["board", model.name], records["local", model.name]
        assert board.ok and local.ok, board.message
        assert records["dead", model.name].reason == "unreachable"
        assert board.accuracy["top1"] == local.accuracy["top1"]
        board_doc, local_doc = board.to_dict(), local.to_dict()
        assert board_doc.keys() == local_doc.keys()
        for key, value in board_doc.items():
            if isinstance(value, dict):
                assert value.keys() == local_doc[key].keys(), key
    sent = run.meta().bytes_sent["board"]
    assert sent > sum(m.stat().st_size for m in models)  # + the agent and the eval set

    again = edgebench(args, cwd=tmp_path)
    assert again.returncode == 1, again.stderr
    assert open_run(tmp_path / "results").meta().bytes_sent["board"] == 0


@needs_sshd
def test_probe_over_ssh(server: Sshd, tmp_path: Path, home: Path) -> None:
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [server.device_yaml("board", python=sys.executable, workdir=str(tmp_path / "wd"))],
    )
    proc = edgebench(
        ["--devices-file", str(inventory), "devices", "--probe", "--devices", "board", "--json"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)["board"]
    assert info["arch"] and info["python"], info


@needs_sshd
def test_hostile_names_are_quoted(
    server: Sshd, tmp_path: Path, home: Path, dynamic_onnx: Path
) -> None:
    """Names with spaces, quotes, ;, $() and backticks reach the board as data only."""
    nasty_dir = tmp_path / NASTY
    nasty_dir.mkdir()
    model = nasty_dir / (NASTY + ".onnx")
    model.write_bytes(dynamic_onnx.read_bytes())
    # a wrapper script, not a symlink: a venv's Python started through a link outside the
    # venv loses the venv
    python = nasty_dir / ("py " + NASTY)
    python.write_text('#!/bin/sh\nexec %s "$@"\n' % shlex.quote(sys.executable))
    python.chmod(0o755)
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [
            server.device_yaml(
                "board",
                python=str(python),
                workdir=str(nasty_dir / "wd"),
                env={"EDGEBENCH_NOTE": NASTY},
            )
        ],
    )
    proc = edgebench(
        [
            "--devices-file",
            str(inventory),
            "run",
            "--model",
            str(model),
            "--input-shape",
            "x:1,64",
            "--devices",
            "board",
            "--quiet",
            "--out",
            str(tmp_path / "results"),
        ]
        + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    record = open_run(tmp_path / "results").records()[0]
    assert record.ok and record.artifact["name"] == model.name
    remote_home = Path(os.path.expanduser("~" + server.user))
    for where in (remote_home, tmp_path, nasty_dir, nasty_dir / "wd", Path.cwd()):
        assert not (where / "MARK").exists(), where
    assert {p.name for p in (nasty_dir / "wd").iterdir()} == {"agents", "blobs", "cache", "lease"}


# -- connection faults --------------------------------------------------------------------


@needs_sshd
def test_unknown_host_key_is_refused_unless_trusted_on_first_use(
    server: Sshd, tmp_path: Path, home: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    fault = fault_of(server.device(tmp_path / "wd", known_hosts=str(known)))
    assert fault.reason == "host-key" and "trust_on_first_use" in fault.message
    assert known.read_text() == ""

    t = SSHTransport(
        server.device(tmp_path / "wd", known_hosts=str(known), trust_on_first_use=True)
    )
    t.deploy(fake_agent(tmp_path, "print('hi')"))
    t.close()
    assert known.read_text().split()[1:] == server.known_hosts.read_text().split()[1:]
    t = SSHTransport(server.device(tmp_path / "wd", known_hosts=str(known)))
    t.deploy(fake_agent(tmp_path, "print('hi')"))  # now known: no TOFU needed
    t.close()


@needs_sshd
def test_default_known_hosts_is_the_users(server: Sshd, tmp_path: Path, home: Path) -> None:
    fault = fault_of(server.device(tmp_path / "wd", known_hosts=None))
    assert fault.reason == "host-key" and str(home / ".ssh" / "known_hosts") in fault.message


@needs_sshd
def test_changed_host_key_is_refused(server: Sshd, tmp_path: Path, home: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    known = tmp_path / "known_hosts"
    known.write_text(
        "[%s]:%d %s\n"
        % (server.host, server.port, " ".join(Path(str(other) + ".pub").read_text().split()[:2]))
    )
    fault = fault_of(
        server.device(tmp_path / "wd", known_hosts=str(known), trust_on_first_use=True)
    )  # TOFU never overrides a change
    assert fault.reason == "host-key" and "CHANGED" in fault.message


@needs_sshd
@pytest.mark.parametrize("key", ["wrong", "missing"])
def test_wrong_key_is_auth_failed(server: Sshd, tmp_path: Path, home: Path, key: str) -> None:
    path = keygen(tmp_path / "stranger") if key == "wrong" else tmp_path / "nope"
    fault = fault_of(server.device(tmp_path / "wd", key=str(path)))
    assert fault.reason == "auth-failed", fault.message
    assert "PRIVATE KEY" not in fault.message


@needs_sshd
def test_closed_port_is_unreachable_after_retries(server: Sshd, tmp_path: Path, home: Path) -> None:
    start = time.monotonic()
    fault = fault_of(server.device(tmp_path / "wd", port=free_port()))
    assert fault.reason == "unreachable" and "refused" in fault.message.lower()
    assert 1.0 < time.monotonic() - start < 10  # 3 tries with backoff, not a long hang


@needs_sshd
def test_proxyjump_alias_from_ssh_config(tmp_path: Path, home: Path) -> None:
    """The device names an alias; ~/.ssh/config supplies the address, user, key and the
    jump host, which is reached first and tunnels to the target."""
    jump, target = start_sshd(tmp_path / "jump"), start_sshd(tmp_path / "target")
    try:
        config = tmp_path / "ssh_config"
        config.write_text(
            "Host board-alias\n  HostName 127.0.0.1\n  Port %d\n  User %s\n  IdentityFile %s\n"
            "  ProxyJump hop\nHost hop\n  HostName 127.0.0.1\n  Port %d\n  IdentityFile %s\n"
            % (target.port, target.user, target.client_key, jump.port, jump.client_key)
        )
        known = tmp_path / "known_hosts"
        known.write_text(jump.known_hosts.read_text() + target.known_hosts.read_text())
        dev = Device(
            name="board",
            kind="ssh",
            python=sys.executable,
            host="board-alias",
            known_hosts=str(known),
            workdir=str(tmp_path / "wd"),
        )
        t = SSHTransport(dev, ssh_config=str(config))
        t.deploy(fake_agent(tmp_path, "import sys; print(sys.stdin.read())"))
        assert len(t._conn.hops) == 1
        out = t.run_agent("run", {"via": "jump"}, 30)
        t.close()
        assert out.returncode == 0 and json.loads(out.stdout) == {"via": "jump"}
    finally:
        jump.stop()
        target.stop()


# -- running the agent --------------------------------------------------------------------

HANG = """import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "300"])
open(sys.argv[0] + ".pids", "w").write("%d %d" % (os.getpid(), child.pid))
sys.stderr.write("hanging\\n"); sys.stderr.flush()
time.sleep(300)
"""


@needs_sshd
@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_timeout_and_cancel_kill_the_remote_processes(
    server: Sshd, tmp_path: Path, home: Path, how: str
) -> None:
    t = SSHTransport(server.device(tmp_path / "wd"))
    t.deploy(fake_agent(tmp_path, HANG))
    lines: List[str] = []
    if how == "cancel":
        threading.Timer(1.5, t.cancel).start()
    start = time.monotonic()
    out = t.run_agent("run", {}, 1.5 if how == "timeout" else 60, lines.append)
    t.close()
    assert time.monotonic() - start < 8
    assert (out.timed_out, out.interrupted) == (how == "timeout", how == "cancel")
    assert lines == ["hanging"] and out.stderr_tail == "hanging"  # no "@pid" line
    pids = [int(p) for p in Path(t.agent_path + ".pids").read_text().split()]
    deadline = time.monotonic() + 5
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(p) for p in pids), pids  # the agent and its child
    record = interpret(out, "board", {"name": "m.onnx"}, 1.5)
    assert record.reason == ("timeout" if how == "timeout" else "interrupted")


@needs_sshd
def test_crash_by_signal_names_the_signal(server: Sshd, tmp_path: Path, home: Path) -> None:
    t = SSHTransport(server.device(tmp_path / "wd"))
    t.deploy(fake_agent(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"))
    out = t.run_agent("run", {}, 30)
    t.close()
    assert out.returncode == -signal.SIGSEGV
    record = interpret(out, "board", {"name": "m.onnx"}, 30)
    assert record.reason == "crash" and "SIGSEGV" in record.message


@needs_sshd
def test_missing_python_is_runtime_missing(server: Sshd, tmp_path: Path, home: Path) -> None:
    fault = fault_of(server.device(tmp_path / "wd", python="/nonexistent/python3"))
    assert fault.reason == "runtime-missing" and "/nonexistent/python3" in fault.message


@needs_sshd
def test_lost_connection_during_a_run_is_unreachable(
    server: Sshd, tmp_path: Path, home: Path
) -> None:
    t = SSHTransport(server.device(tmp_path / "wd"))
    t.deploy(fake_agent(tmp_path, HANG))
    pids_file = Path(t.agent_path + ".pids")
    killed: List[int] = []

    def cut() -> None:  # once the agent runs: everything below sshd, i.e. the connection
        deadline = time.monotonic() + 30
        while not pids_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        killed.extend(kill_tree(server.proc.pid))

    threading.Timer(1.0, cut).start()
    with pytest.raises(Fault) as info:  # not the 60 s timeout: the loss is noticed
        t.run_agent("run", {}, 60)
    t.close()
    assert info.value.reason == "unreachable"
    pids = killed + [int(p) for p in pids_file.read_text().split()]  # the agent and its child
    deadline = time.monotonic() + 5
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(p) for p in pids), pids  # nothing of this test is left running


# -- uploads ------------------------------------------------------------------------------


@needs_sshd
def test_upload_is_verified_before_it_gets_its_name(
    server: Sshd, tmp_path: Path, home: Path
) -> None:
    from edgebench.agent.verify import sha256_file

    data = tmp_path / "model.onnx"
    data.write_bytes(os.urandom(300000))
    sha256 = sha256_file(data)
    t = SSHTransport(server.device(tmp_path / "wd"))
    remote = t.stage(data, sha256)
    assert Path(remote) == tmp_path / "wd" / "blobs" / (sha256 + ".onnx")
    assert Path(remote).read_bytes() == data.read_bytes()
    assert t.bytes_sent == data.stat().st_size

    corrupt = memoryview(b"x" + data.read_bytes()[1:])  # as if damaged on the way
    with pytest.raises(Fault) as info:
        t.send(corrupt, "blobs", "other.onnx", sha256)
    t.close()
    assert "sha256" in info.value.message
    assert sorted(p.name for p in (tmp_path / "wd" / "blobs").iterdir()) == [Path(remote).name]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here: %s" % proc.stderr.strip())
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@needs_sshd
def test_full_disk_is_disk_full(server: Sshd, tmp_path: Path, home: Path, tiny_disk: Path) -> None:
    from edgebench.agent.verify import sha256_file

    data = tmp_path / "big.onnx"
    data.write_bytes(os.urandom(2 << 20))
    t = SSHTransport(server.device(tiny_disk / "wd"))
    with pytest.raises(Fault) as info:
        t.stage(data, sha256_file(data))
    t.close()
    assert info.value.reason == "disk-full", info.value.message
    assert list((tiny_disk / "wd" / "blobs").iterdir()) == []  # no partial upload left


# -- the lease ----------------------------------------------------------------------------

HOLD = """import sys
sys.path.insert(0, %r)
from edgebench.agent.lease import acquire
with acquire(sys.argv[1], "harness-A", 5):
    print("held", flush=True)
    sys.stdin.read()
""" % str(ROOT)


def test_lease_makes_a_second_agent_wait_then_report_busy(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        start = time.monotonic()
        with pytest.raises(Fault) as info:
            with acquire(str(tmp_path), "harness-B", timeout_s=0.5):
                pass
        assert 0.5 <= time.monotonic() - start < 3
        assert info.value.reason == "device-busy"
        assert "pid %d" % holder.pid in info.value.message and "harness-A" in info.value.message

        threading.Timer(0.5, holder.stdin.close).start()  # released while we wait
        with acquire(str(tmp_path), "harness-B", timeout_s=10) as mine:
            assert mine["harness"] == "harness-B" and mine["pid"] == os.getpid()
            assert json.loads((tmp_path / "lease").read_text())["harness"] == "harness-B"
    finally:
        holder.kill()
        holder.wait()


def test_lease_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    holder.kill()  # SIGKILL: no cleanup runs, the kernel still drops the flock
    holder.wait()
    start = time.monotonic()
    with acquire(str(tmp_path), None, timeout_s=5):
        assert time.monotonic() - start < 0.5


# -- boards that misbehave ----------------------------------------------------------------


def descendants(pid: int) -> List[int]:
    """``pid`` and every process below it, parents first."""
    children: Dict[int, List[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                children.setdefault(int(proc_stat(int(entry.name))[1]), []).append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            pass
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop(0))
        todo += children.get(found[-1], [])
    return found


@needs_sshd
def test_frozen_sshd_gives_up_at_the_deadline_and_says_the_kill_failed(
    tmp_path: Path, home: Path, examples: Path
) -> None:
    """sshd and its sessions stopped (SIGSTOP) mid-run, TCP still up: the harness gives up
    at the device's timeout_s plus the kill's few seconds -- not minutes -- and does not
    claim a kill it could not deliver."""
    board = start_sshd(tmp_path / "sshd")
    frozen: List[int] = []
    proc: Any = None
    try:
        inventory = write_devices(
            tmp_path / "devices.yaml",
            [
                board.device_yaml(
                    "board", python=sys.executable, workdir=str(tmp_path / "wd"), timeout_s=12
                )
            ],
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgebench.harness",
                "--devices-file",
                str(inventory),
                "run",
                "--devices",
                "board",
                "--model",
                str(examples / "digits.onnx"),
                "--model",
                str(examples / "digits.tflite"),
                "--quiet",
                "--out",
                "res",
                "--min-seconds",
                "60",
                "--max-seconds",
                "60",
                "--warmup-seconds",
                "0",
            ],
            cwd=str(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lease = tmp_path / "wd" / "lease"
        deadline = time.monotonic() + 60
        while not (lease.exists() and lease.stat().st_size):  # the agent is measuring
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        frozen = descendants(board.proc.pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        start = time.monotonic()
        _, err = proc.communicate(timeout=60)  # it used to take 252 s
        print("gave up after %.1f s" % (time.monotonic() - start))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in frozen:  # the agent (below the session) was never killed: we do it
            try:
                os.kill(pid, signal.SIGCONT)
                if pid != board.proc.pid:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        board.stop()
    assert proc.returncode == 1, err
    records = {r.artifact["name"]: r for r in open_run(tmp_path / "res").records()}
    first, second = records["digits.onnx"], records["digits.tflite"]
    assert first.reason == "timeout" and "could not be delivered" in first.message, first.message
    assert "was killed" not in first.message
    assert second.reason == "unreachable" and "stopped answering" in second.message


@needs_sshd
def test_disk_full_for_one_artifact_leaves_the_next_its_own_attempt(
    server: Sshd, tmp_path: Path, home: Path, examples: Path, tiny_disk: Path
) -> None:
    big = tmp_path / "big.onnx"
    big.write_bytes(os.urandom(3 * 10**6))  # does not fit in 512 KiB; the 42 KB model does
    small = examples / "digits.int8.tflite"
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [server.device_yaml("board", python=sys.executable, workdir=str(tiny_disk / "wd"))],
    )
    proc = edgebench(
        [
            "--devices-file",
            str(inventory),
            "run",
            "--devices",
            "board",
            "--model",
            str(big),
            "--model",
            str(small),
            "--quiet",
            "--out",
            str(tmp_path / "res"),
        ]
        + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    records = {r.artifact["name"]: r for r in open_run(tmp_path / "res").records()}
    assert records["big.onnx"].reason == "disk-full", records["big.onnx"].message
    assert records[small.name].ok, records[small.name].message


@pytest.fixture(
    params=[
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        b"SSH-\x1b[2J\x1b]0;owned\x07-evil\r\n",
    ],
    ids=["http", "hostile-banner"],
)
def not_ssh(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port that answers like a web server, or with a banner that is not SSH's."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(request.param)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


@needs_sshd
def test_port_that_is_not_ssh_is_one_fault_line_without_tracebacks(
    server: Sshd, tmp_path: Path, home: Path, examples: Path, not_ssh: int
) -> None:
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [server.device_yaml("web", port=not_ssh, workdir=str(tmp_path / "wd"))],
    )
    proc = edgebench(
        [
            "--devices-file",
            str(inventory),
            "run",
            "--devices",
            "web",
            "--model",
            str(examples / "digits.onnx"),
            "--quiet",
            "--out",
            str(tmp_path / "res"),
        ]
        + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "paramiko" not in proc.stderr, proc.stderr
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "failed: web / digits.onnx: unreachable" in proc.stderr
