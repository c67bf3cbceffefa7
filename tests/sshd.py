"""Real OpenSSH servers on loopback for tests and benchmarks.

Each server gets its own directory with a host key, an ``authorized_keys`` holding one
client key, and a client ``known_hosts`` that trusts the server -- so a test can also
swap in a wrong key or an empty known_hosts.  Servers run as the current user (root in
CI), in the foreground, and are stopped by PID.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

if TYPE_CHECKING:
    from edgebench.harness.config import Device

SFTP_SERVER_CANDIDATES = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
)


def sshd_path() -> Optional[str]:
    """The sshd binary, or None when OpenSSH's server is not installed."""
    return shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None
    )


def skip_reason() -> Optional[str]:
    """Why SSH tests cannot run here, or None."""
    if sshd_path() is None:
        return "OpenSSH sshd not found (apt-get install openssh-server)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen not found"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    """A new passphrase-less ed25519 key at ``path`` (and ``path.pub``)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgebench-test", "-f", str(path)],
        check=True,
    )
    return path


@dataclass
class Sshd:
    root: Path
    port: int
    host_key: Path
    client_key: Path
    known_hosts: Path
    proc: subprocess.Popen
    host: str = "127.0.0.1"

    user = pwd.getpwuid(os.geteuid()).pw_name

    def device(self, workdir: Path, name: str = "board", **changes: Any) -> Device:
        """A harness device for this server, running the agent with this Python."""
        from edgebench.harness.config import Device

        fields: Dict[str, Any] = dict(
            name=name,
            kind="ssh",
            python=sys.executable,
            host=self.host,
            port=self.port,
            user=self.user,
            key=str(self.client_key),
            known_hosts=str(self.known_hosts),
            workdir=str(workdir),
        )
        fields.update(changes)
        return Device(**fields)

    def device_yaml(self, name: str, **extra: object) -> str:
        """A ``devices.yaml`` entry for this server (indented for ``devices:``); values are
        written as JSON scalars, which YAML reads back verbatim whatever their characters."""
        fields = dict(
            host=self.host,
            port=self.port,
            user=self.user,
            key=str(self.client_key),
            known_hosts=str(self.known_hosts),
        )
        fields.update(extra)
        return "  %s:\n" % name + "".join(
            "    %s: %s\n" % (k, json.dumps(v)) for k, v in fields.items()
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)  # sessions still open, if any
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def descendants(pid: int) -> List[int]:
    """Every process below ``pid`` (children, grandchildren, ...), read from /proc."""
    children: Dict[int, List[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # not a process, or gone meanwhile
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: List[int] = []
    todo = [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def kill_tree(pid: int) -> List[int]:
    """SIGKILL every process below ``pid`` and return their PIDs.  All are stopped first, so
    none sees another die and acts on it (a session reporting its command's exit, say); an
    sshd connection can live in a grandchild (OpenSSH 10's ``sshd-session``), not only in a
    child."""
    stopped: List[int] = []
    while True:  # until no process forked meanwhile is left running
        fresh = [p for p in descendants(pid) if p not in stopped]
        if not fresh:
            break
        for p in fresh:
            _signal(p, signal.SIGSTOP)
        stopped += fresh
    for p in stopped:
        _signal(p, signal.SIGKILL)
    return stopped


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def start_sshd(
    root: Path, extra_config: str = "", address: str = "127.0.0.1", prefix: Sequence[str] = ()
) -> Sshd:
    """sshd with fresh keys under ``root``, answering when returned: on a free loopback
    port, or on port 22 of ``address`` when ``prefix`` starts it elsewhere (for example
    ``ip netns exec NS`` -- an address of a namespace the test made)."""
    binary = sshd_path()
    assert binary, skip_reason()
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege-separation dir
    host_key = keygen(root / "host_key")
    client_key = keygen(root / "client_key")
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    sftp = next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), "internal-sftp")
    last_error = ""
    for _ in range(5):  # a free port can be taken between probing and binding
        port = free_port() if not prefix else 22
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "Port %d" % port,
                    "ListenAddress %s" % address,
                    "HostKey %s" % host_key,
                    "AuthorizedKeysFile %s" % (root / "authorized_keys"),
                    "PidFile %s" % (root / "sshd.pid"),
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "Subsystem sftp %s" % sftp,
                    "LogLevel ERROR",
                    "MaxStartups 100",
                    extra_config,
                    "",
                ]
            )
        )
        log = open(root / "sshd.log", "ab")
        proc = subprocess.Popen(
            list(prefix) + [binary, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if _wait_banner(address, port, proc):
            name = address if port == 22 else "[%s]:%d" % (address, port)
            line = "%s %s" % (name, " ".join((root / "host_key.pub").read_text().split()[:2]))
            (root / "known_hosts").write_text(line + "\n")
            return Sshd(root, port, host_key, client_key, root / "known_hosts", proc, address)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        last_error = (root / "sshd.log").read_text(errors="replace")
    raise RuntimeError("sshd did not start: %s" % last_error.strip()[-500:])


def _wait_banner(address: str, port: int, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((address, port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def ssh_base(server: Sshd) -> List[str]:
    """OpenSSH client options for talking to ``server`` (for scp/ssh comparisons)."""
    return [
        "-i",
        str(server.client_key),
        "-o",
        "UserKnownHostsFile=%s" % server.known_hosts,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
    ]
