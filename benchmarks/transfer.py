#!/usr/bin/env python3
"""Is edgebench's upload at least as fast as OpenSSH's ``scp``?

Starts a loopback sshd (tests/sshd.py), writes a random file, and times ``scp`` (OpenSSH 9
speaks SFTP underneath) against edgebench staging the same file on a board that lacks it.
Rounds alternate (scp, edgebench, scp, ...) so drift hits both alike; the figures are
medians.  Both include connecting and logging in; edgebench's also include what ``scp``
does not do: hashing the bytes on the board and renaming the verified file into place.
Both write to ``--dest`` -- by default a tmpfs (/dev/shm) where there is one, because on a
VM disk the write-back of the previous round's 200 MB makes either side slow at random.
Goal: ratio (edgebench / scp throughput) >= 1.0.  Needs sshd, ssh-keygen and scp.

    python benchmarks/transfer.py [--mb 200] [--rounds 5] [--dest DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebench.agent.verify import sha256_file  # noqa: E402
from edgebench.harness.transport.ssh import SSHTransport  # noqa: E402
from tests.sshd import Sshd, skip_reason, ssh_base, start_sshd  # noqa: E402


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def scp(server: Sshd, path: Path, dest: Path) -> None:
    subprocess.run(
        ["scp", "-q"]
        + ssh_base(server)
        + [
            "-P",
            str(server.port),
            str(path),
            "%s@%s:%s" % (server.user, server.host, dest / "scp.bin"),
        ],
        check=True,
    )


def edgebench(server: Sshd, path: Path, sha256: str, workdir: Path) -> str:
    """Stage ``path`` on a fresh connection; returns the cipher that was negotiated."""
    transport = SSHTransport(server.device(workdir, name="bench"))
    try:
        transport.stage(path, sha256)
        assert transport.bytes_sent == path.stat().st_size
        return transport._conn.transport.local_cipher  # type: ignore[union-attr]
    finally:
        transport.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="file size in MB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--dest",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where the uploads land (default: /dev/shm if present)",
    )
    args = parser.parse_args()
    if skip_reason() or not shutil.which("scp"):
        print("cannot run: %s" % (skip_reason() or "scp not found"), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edgebench-transfer-") as tmp:
        root = Path(tmp)
        server = start_sshd(root / "sshd")
        try:
            dest = Path(tempfile.mkdtemp(prefix="edgebench-transfer-", dir=args.dest))
            data = root / "payload.bin"
            with open(data, "wb") as fh:
                for _ in range(args.mb):
                    fh.write(os.urandom(1000000))
            sha256 = sha256_file(data)
            ciphers, t_scp, t_edge = [], [], []
            for _ in range(args.rounds):
                t_scp.append(timed(lambda: scp(server, data, dest)))
                shutil.rmtree(dest / "workdir", ignore_errors=True)  # the board lacks it
                t_edge.append(
                    timed(lambda: ciphers.append(edgebench(server, data, sha256, dest / "workdir")))
                )
        finally:
            server.stop()
            shutil.rmtree(dest, ignore_errors=True)
    scp_s, edge_s = statistics.median(t_scp), statistics.median(t_edge)
    print("file:       %d MB, median of %d alternating rounds, loopback" % (args.mb, args.rounds))
    print("scp:        %7.1f MB/s  (%.2f s)" % (args.mb / scp_s, scp_s))
    print(
        "edgebench:  %7.1f MB/s  (%.2f s, %s, incl. sha256 check on the board)"
        % (args.mb / edge_s, edge_s, ciphers[0])
    )
    print("ratio:      %.2f  (edgebench / scp throughput; goal >= 1.0)" % (scp_s / edge_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
