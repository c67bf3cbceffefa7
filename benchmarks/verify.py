#!/usr/bin/env python3
"""What does checking every file by sha256 on the board cost?

Starts a loopback sshd (tests/sshd.py) and measures, in alternating rounds (medians):

* the upload check of a file the board already has -- the receiver now hashes the copy
  there instead of comparing its size -- for a ``--mb`` file against a 1 KB one, each on a
  fresh connection (connecting and logging in included); the difference is the hashing;
* the agent's own check of its inputs before a run (``agent/verify.py``) on the same file;
* starting the agent through the verifying loader (``agent/loader.py``: read the zipapp,
  hash it, import from memory) against ``python3 AGENT.pyz`` directly, for ``version``.

A run of one artifact hashes it twice on the board (upload check, agent check) and the
agent once; an eval set is hashed once per device and once per artifact.

    python benchmarks/verify.py [--mb 200] [--rounds 5] [--dest DIR]
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
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebench.agent.verify import check, sha256_file  # noqa: E402
from edgebench.harness.run.pack import build  # noqa: E402
from edgebench.harness.transport.base import LOADER  # noqa: E402
from edgebench.harness.transport.ssh import SSHTransport  # noqa: E402
from tests.sshd import Sshd, skip_reason, start_sshd  # noqa: E402


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def stage(server: Sshd, path: Path, sha256: str, workdir: Path) -> int:
    """Stage ``path`` on a fresh connection; returns the bytes that had to be sent."""
    transport = SSHTransport(server.device(workdir, name="bench"))
    try:
        transport.stage(path, sha256)
        return transport.bytes_sent
    finally:
        transport.close()


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        for _ in range(size // 1000000):
            fh.write(os.urandom(1000000))
        fh.write(os.urandom(size % 1000000))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="file size in MB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--dest",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="the board's workdir goes here (default: /dev/shm if present)",
    )
    args = parser.parse_args()
    if skip_reason():
        print("cannot run: %s" % skip_reason(), file=sys.stderr)
        return 2
    times: Dict[str, List[float]] = {
        k: [] for k in ("have_big", "have_small", "agent_check", "loader", "direct")
    }
    with tempfile.TemporaryDirectory(prefix="edgebench-verify-") as tmp:
        root = Path(tmp)
        server = start_sshd(root / "sshd")
        dest = Path(tempfile.mkdtemp(prefix="edgebench-verify-", dir=args.dest))
        try:
            big = random_file(dest / "payload.bin", args.mb * 1000000)
            small = random_file(root / "small.bin", 1000)
            sums = {p: sha256_file(p) for p in (big, small)}
            for path in (big, small):  # the board has both from now on
                stage(server, path, sums[path], dest / "workdir")
            agent = build(root / "cache")
            agent_sha = sha256_file(agent)
            loader = [sys.executable, "-c", LOADER, str(agent), agent_sha, "version"]
            direct = [sys.executable, str(agent), "version"]
            for _ in range(args.rounds):
                for key, path in (("have_big", big), ("have_small", small)):
                    sent: List[int] = []
                    times[key].append(
                        timed(
                            lambda sent=sent, path=path: sent.append(
                                stage(server, path, sums[path], dest / "workdir")
                            )
                        )
                    )
                    assert sent == [0], "the board should have had %s" % path
                times["agent_check"].append(timed(lambda: check(str(big), sums[big], "model")))
                for key, argv in (("loader", loader), ("direct", direct)):
                    times[key].append(
                        timed(
                            lambda argv=argv: subprocess.run(
                                argv, check=True, stdout=subprocess.DEVNULL
                            )
                        )
                    )
        finally:
            server.stop()
            shutil.rmtree(dest, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        "medians of %d alternating rounds, loopback sshd, board workdir on %s"
        % (args.rounds, args.dest or "disk")
    )
    print("upload check, %d MB already there:  %6.3f s" % (args.mb, med["have_big"]))
    print("upload check, 1 KB already there:    %6.3f s" % med["have_small"])
    print(
        "  -> hashing %d MB on the board:      %6.3f s (%.0f MB/s)"
        % (
            args.mb,
            med["have_big"] - med["have_small"],
            args.mb / max(1e-9, med["have_big"] - med["have_small"]),
        )
    )
    print("agent's input check, %d MB:          %6.3f s" % (args.mb, med["agent_check"]))
    print("agent start via verifying loader:    %6.3f s" % med["loader"])
    print("agent start, python3 AGENT.pyz:      %6.3f s" % med["direct"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
