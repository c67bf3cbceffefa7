#!/usr/bin/env python3
"""Do boards really run concurrently?  Wall time of N loopback boards vs 1, same work each.

Each board is its own sshd on loopback (tests/sshd.py).  This machine has 2 cores, so N
boards that each want a whole core would measure the CPU, not edgebench: with --board-cpu
(default 0.25) every board's sshd -- and so its agent -- sits in its own cgroup v1 with a
CFS quota of that share of one core, a stand-in for a small board (root and
/sys/fs/cgroup/cpu needed; --board-cpu 0 turns it off).  Per board the work is the same
fixed number of iterations of the digits example, so a board's time does not stretch to
fill a window.  Goal: wall(N=4) / wall(N=1) <= 1.3.

    python benchmarks/fleet.py [--boards 4] [--iterations 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sshd import Sshd, skip_reason, start_sshd  # noqa: E402

CGROUP = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100000


def confine(server: Sshd, name: str, share: float) -> Path:
    """Put the board's sshd (and every session it forks) under a CPU quota."""
    group = CGROUP / name
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(int(PERIOD_US * share)))
    (group / "cgroup.procs").write_text(str(server.proc.pid))
    return group


def run(boards: List[Sshd], workdir: Path, iterations: int) -> float:
    inventory = workdir / ("devices-%d.yaml" % len(boards))
    inventory.write_text(
        "devices:\n"
        + "".join(
            s.device_yaml(
                "board%d" % i,
                python=sys.executable,
                tags=["fleet"],
                workdir=str(workdir / ("board%d" % i)),
            )
            for i, s in enumerate(boards)
        )
    )
    examples = ROOT / "examples"
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebench.harness",
            "--devices-file",
            str(inventory),
            "run",
            "--devices",
            "fleet",
            "--model",
            str(examples / "digits.onnx"),
            "--model",
            str(examples / "digits.tflite"),
            "--eval",
            str(examples / "digits_eval.npz"),
            "--min-seconds",
            "0",
            "--min-iterations",
            str(iterations),
            "--warmup-seconds",
            "0",
            "--out",
            str(workdir / "results"),
            "--json",
        ],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit("edgebench run failed: %s" % out.stderr.strip()[-500:])
    assert all(r["status"] == "ok" for r in json.loads(out.stdout))
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--board-cpu",
        type=float,
        default=0.25,
        help="CPU share of one core per board (0: no cgroup)",
    )
    args = ap.parse_args()
    if skip_reason():
        raise SystemExit(skip_reason())
    if args.board_cpu and not (os.geteuid() == 0 and CGROUP.is_dir()):
        raise SystemExit("--board-cpu needs root and cgroup v1 at %s" % CGROUP)
    tmp = Path(tempfile.mkdtemp(prefix="edgebench-fleet-"))
    servers, groups = [], []
    try:
        for i in range(args.boards):
            servers.append(start_sshd(tmp / ("sshd%d" % i)))
            if args.board_cpu:
                groups.append(
                    confine(servers[-1], "edgebench-fleet-%d-%d" % (os.getpid(), i), args.board_cpu)
                )
        run(servers[:1], tmp, args.iterations)  # deploy once: later rounds send nothing
        run(servers, tmp, args.iterations)
        ratios = []
        for r in range(args.rounds):
            one = run(servers[:1], tmp, args.iterations)
            many = run(servers, tmp, args.iterations)
            ratios.append(many / one)
            print(
                "round %d: 1 board %.2f s, %d boards %.2f s, ratio %.3f"
                % (r + 1, one, args.boards, many, many / one),
                flush=True,
            )
        print(
            "median wall-time ratio %d boards / 1 board = %.3f (board cpu %s, %d iterations "
            "x 2 artifacts per board)"
            % (
                args.boards,
                statistics.median(ratios),
                args.board_cpu or "unlimited",
                args.iterations,
            )
        )
    finally:
        for server in servers:
            server.stop()
        for group in groups:
            for _ in range(50):  # sessions leave the group as they exit
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
