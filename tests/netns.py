"""Test hosts in network namespaces: each is a namespace joined to this one by a veth pair,
with a 10.x address that exists only inside this machine, and its own sshd.

Needs root and iproute2; everything made here is removed by :meth:`Host.remove`, and the
only processes stopped are the ones running inside the namespaces these tests made.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sshd import Sshd, start_sshd

# The second octet follows the test process, so two suites running at once (developers
# side by side) do not route to each other's hosts.
SUBNET = "10.%d.%%d.%%d" % (100 + os.getpid() % 100)


def skip_reason() -> Optional[str]:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2 ('ip') is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip"] + list(args), check=True, capture_output=True)


@dataclass
class Host:
    index: int
    ns: str
    veth: str  # our end of the pair; setting it down cuts the host off
    sshd: Optional[Sshd] = None

    @property
    def address(self) -> str:
        return SUBNET % (self.index, 2)

    def link(self, up: bool) -> None:
        _ip("link", "set", self.veth, "up" if up else "down")

    def limit(self, rate: str) -> None:
        """Cap the bandwidth towards the host with a token bucket (netem does not exist)."""
        subprocess.run(
            [
                "tc",
                "qdisc",
                "replace",
                "dev",
                self.veth,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "32kbit",
                "latency",
                "400ms",
            ],
            check=True,
        )

    def remove(self) -> None:
        pids = subprocess.run(
            ["ip", "netns", "pids", self.ns], capture_output=True, text=True
        ).stdout.split()
        for pid in pids:  # sshd and its sessions: all started by these tests
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


def make_host(index: int, root: Path) -> Host:
    """Namespace ``ebtest<pid>-<index>`` at 10.<n>.<index>.2 with sshd on port 22."""
    host = Host(
        index, "ebtest%d-%d" % (os.getpid(), index), "ebv%d-%d" % (os.getpid() % 10000, index)
    )
    peer = host.veth + "p"
    try:
        _ip("netns", "add", host.ns)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", host.ns)
        _ip("addr", "add", SUBNET % (index, 1) + "/24", "dev", host.veth)
        _ip("link", "set", host.veth, "up")
        _ip("netns", "exec", host.ns, "ip", "addr", "add", host.address + "/24", "dev", peer)
        _ip("netns", "exec", host.ns, "ip", "link", "set", peer, "up")
        _ip("netns", "exec", host.ns, "ip", "link", "set", "lo", "up")
        host.sshd = start_sshd(root, address=host.address, prefix=["ip", "netns", "exec", host.ns])
    except BaseException:
        host.remove()
        raise
    return host
