#!/usr/bin/env python3
"""Wall time of the store's views -- `edgebench report --history` (HTML and `--json`) and
`edgebench lab --no-leases` -- on a local results root of 10 000 records.

The records are real Records on synthetic samples (tests/synthetic_runs.py): RUNS runs of
BOARDS boards x ARTIFACTS model slots each, a slowdown now and then so the page has
regressions to mark.  Each command runs as the CLI does (a fresh process), first cold (no
history index yet: every run.json and record is read once) and then warm (the index
cached in ``index.jsonl``); the figure is the median of ``--repeat`` warm runs.

    python benchmarks/views.py [--runs 500] [--boards 4] [--artifacts 5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
EDGEBENCH = [sys.executable, "-m", "edgebench.harness"]


def fill(root: Path, runs: int, boards: int, artifacts: int) -> int:
    from synthetic_runs import FINGERPRINT, make_run, ok

    count = 0
    for i in range(runs):
        records = [
            ok(
                "model%d.onnx" % a,
                "board%d" % b,
                p50_ms=(5.0 + a) * (1.2 if i % 50 == 49 else 1.0),
                n=50,
                seed=i,
                fingerprint=dict(FINGERPRINT, machine_id="%032x" % b),
            )
            for b in range(boards)
            for a in range(artifacts)
        ]
        day = "2026-%02d-%02dT%02d:%02d:00+00:00" % (1 + i // 600, 1 + i // 24 % 25, i % 24, i % 60)
        make_run(root, records, created_at=day)
        count += len(records)
    return count


def timed(args: List[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(EDGEBENCH + args, cwd=str(cwd), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("edgebench %s failed: %s" % (" ".join(args), proc.stderr))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--boards", type=int, default=4)
    parser.add_argument("--artifacts", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--keep", metavar="DIR", help="write the runs to DIR/results and keep them; reuse them"
    )
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(opts.keep or tmp)
        root = cwd / "results"
        if not root.is_dir():
            start = time.perf_counter()
            count = fill(root, opts.runs, opts.boards, opts.artifacts)
            print(
                "%d records in %d runs written in %.0f s"
                % (count, opts.runs, time.perf_counter() - start)
            )
        (root / "index.jsonl").unlink(missing_ok=True)
        commands = {
            "report --history (HTML)": ["report", "--history", "results"],
            "report --history --json": ["report", "--history", "results", "--json"],
            "lab --no-leases": ["lab", "--no-leases", "--root", "results"],
            "history --json (reference)": ["history", "--root", "results", "--json"],
            "--version (start-up)": ["--version"],
        }
        cold = timed(commands["report --history (HTML)"], cwd)
        print("cold (builds the index): report --history %.2f s" % cold)
        for name, args in commands.items():
            warm = [timed(args, cwd) for _ in range(opts.repeat)]
            print(
                "warm: %-26s median %.2f s (min %.2f, max %.2f)"
                % (name, statistics.median(warm), min(warm), max(warm))
            )
        print("page: %.1f MB" % ((root / "history.html").stat().st_size / 1e6))
        print("load average: %s" % " ".join("%.2f" % x for x in os.getloadavg()))


if __name__ == "__main__":
    main()
