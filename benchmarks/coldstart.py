#!/usr/bin/env python3
"""Cold starts and idle gaps of one model on `local`, through the real CLI.

One run with --cold-starts K and --idle-gaps: prints the per-phase distribution over the K
fresh processes (import, model load, first inference, their total) and, per idle gap, the
first inference after it against the warm p50 -- with the load average before and after,
since this machine is shared.

    python benchmarks/coldstart.py [--model examples/digits.onnx] [--cold-starts 10]
                                   [--idle-gaps 1,5,30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "examples" / "digits.onnx"))
    p.add_argument("--cold-starts", type=int, default=10)
    p.add_argument("--idle-gaps", default="1,5,30")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "edgebench.harness", "run", "--model", args.model]
        cmd += ["--cold-starts", str(args.cold_starts), "--idle-gaps", args.idle_gaps]
        cmd += ["--threads", str(args.threads), "--quiet", "--out", out]
        subprocess.run(cmd, check=True)
        (path,) = (Path(out) / "latest").glob("raw/*/*.json")
        record = json.loads(path.read_text())
    load_after = os.getloadavg()
    cold = record["timing"]["cold_starts"]
    print(
        "model %s, %d fresh processes, threads %d"
        % (Path(args.model).name, len(cold["samples"]), args.threads)
    )
    print("%-16s %9s %9s %9s %9s" % ("phase (ms)", "min", "p50", "mean", "max"))
    for phase, s in cold["summary"].items():
        print(
            "%-16s %9.2f %9.2f %9.2f %9.2f"
            % (phase, s["min_ms"], s["p50_ms"], s["mean_ms"], s["max_ms"])
        )
    print("warm p50 %.4f ms" % record["stats"]["p50_ms"])
    for gap in record["timing"]["idle_gaps"]:
        print(
            "after %5.1f s idle: %.4f ms = %.1f x warm p50"
            % (gap["gap_s"], gap["first_ms"], gap["ratio"])
        )
    print("load average before %.2f, after %.2f" % (load_before[0], load_after[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
