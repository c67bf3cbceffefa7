#!/usr/bin/env python3
"""How far can `edgebench check --baseline` be trusted as a CI gate?

On `local`, with an ONNX model of a few milliseconds built here (a stack of MatMul+Relu
layers) and a "slower" one with one layer more (about 10 % more work) written under the
same file name in another folder (same model slot, another sha256), each trial makes three
separate `edgebench run` invocations -- fast, fast, slow -- and two checks with a
``regression: 0.05`` budget:

- A/A: the second fast run against the first; a ``fail`` regression verdict is a false alarm.
- detection: the slow run against the first fast run; a ``fail`` is a detection.

Both at the default settings (1 round) and with ``--rounds 3`` (separate runs), and as an A/B
check on the board (``check --ab CANDIDATE --baseline BASELINE``: both measured in one run,
rounds interleaved, default 5 pairs; A/A = the fast model against a byte-identical copy).
Reported per configuration:
the false-alarm rate, the detection rate, the median ratio each check measured, and the wall
time per verdict (its two runs plus the check). Goal: A/A false alarms <= 5 % and the ~10 %
slowdown detected in >= 90 % of trials.

    pip install onnx   # only to build the two models
    python benchmarks/gate.py [--trials 20] [--modes 1 3 ab] [--min-seconds 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from mlp_onnx import mlp  # noqa: E402

EDGEBENCH = [sys.executable, "-m", "edgebench.harness"]
MODEL = "gate.onnx"  # the model slot both variants share
BUDGETS = "budgets:\n  - device: '*'\n    artifact: '*'\n    regression: 0.05\n"


def run(model: Path, out: Path, args: argparse.Namespace, rounds: int) -> Tuple[float, float]:
    """One `edgebench run` of ``model`` into the results root ``out``: its wall time and p50."""
    cmd = EDGEBENCH + ["run", "--model", str(model), "--threads", str(args.threads)]
    cmd += ["--min-seconds", str(args.min_seconds), "--out", str(out), "--json"]
    if rounds > 1:
        cmd += ["--rounds", str(rounds)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit("edgebench run failed: %s" % done.stderr.strip()[-500:])
    return took, json.loads(done.stdout)[0]["p50_ms"]


def check(candidate: Path, baseline: Path, budgets: Path) -> Tuple[float, str, float, str]:
    """`edgebench check --json` of ``candidate`` against ``baseline``: its wall time, the
    regression verdict, the ratio it measured and the verdict's text."""
    cmd = EDGEBENCH + ["check", str(candidate), "--baseline", str(baseline)]
    return _judged(cmd + ["--budgets", str(budgets), "--json"])


def ab_check(
    candidate: Path, baseline: Path, out: Path, budgets: Path, args: argparse.Namespace
) -> Tuple[float, str, float, str]:
    """`edgebench check --ab CANDIDATE --baseline BASELINE --json`: as :func:`check`, its
    wall time covering both measurements."""
    cmd = EDGEBENCH + ["check", "--ab", str(candidate), "--baseline", str(baseline)]
    cmd += ["--threads", str(args.threads), "--min-seconds", str(args.min_seconds)]
    cmd += ["--budgets", str(budgets), "--out", str(out), "--quiet", "--json"]
    return _judged(cmd)


def _judged(cmd: List[str]) -> Tuple[float, str, float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    took = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit("edgebench check failed: %s" % done.stderr.strip()[-500:])
    (found,) = [v for v in json.loads(done.stdout)["verdicts"] if v["check"] == "regression"]
    ratio = re.match(r"([0-9.]+)×", found["measured"] or "")
    return took, found["verdict"], float(ratio.group(1)) if ratio else float("nan"), found["text"]


def trials(
    fast: Path, slow: Path, work: Path, args: argparse.Namespace, mode: str
) -> Dict[str, Any]:
    """``args.trials`` trials of one configuration (a number of rounds for separate runs,
    or ``ab``): the A/A and detection outcomes."""
    budgets = work / "budgets.yaml"
    budgets.write_text(BUDGETS)
    same = work / "same" / MODEL  # A/B's A/A: a byte-identical copy, another path
    if mode == "ab" and not same.exists():
        same.parent.mkdir(parents=True)
        same.write_bytes(fast.read_bytes())
    out: Dict[str, List[Any]] = {k: [] for k in ("aa", "det", "aa_s", "det_s", "aa_r", "det_r")}
    for i in range(args.trials):
        trial = work / ("%s-t%d" % (mode, i))
        if mode == "ab":
            aa = ab_check(same, fast, trial / "aa", budgets, args)
            det = ab_check(slow, fast, trial / "det", budgets, args)
            aa_s, det_s, p50s = aa[0], det[0], ""
        else:
            rounds = int(mode)
            base_s, base_p50 = run(fast, trial / "base", args, rounds)
            aa_s, aa_p50 = run(fast, trial / "aa", args, rounds)
            det_s, det_p50 = run(slow, trial / "det", args, rounds)
            aa = check(trial / "aa", trial / "base", budgets)
            det = check(trial / "det", trial / "base", budgets)
            aa_s, det_s = base_s + aa_s + aa[0], base_s + det_s + det[0]
            p50s = "p50 %.3f / %.3f / %.3f ms; " % (base_p50, aa_p50, det_p50)
        out["aa"].append(aa[1] == "fail")
        out["det"].append(det[1] == "fail")
        out["aa_s"].append(aa_s)
        out["det_s"].append(det_s)
        out["aa_r"].append(aa[2])
        out["det_r"].append(det[2])
        print(
            "%s trial %2d: %sA/A %s %.3f; slow %s %.3f  [%s]"
            % (mode, i + 1, p50s, aa[1], aa[2], det[1], det[2], det[3]),
            flush=True,
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument(
        "--modes",
        nargs="+",
        default=["1", "3", "ab"],
        help="rounds per separate run (1, 3, ...) and/or ab (check --ab, default rounds)",
    )
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, default=10, help="the fast model's; the slow has +1")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fast, slow = work / "fast" / MODEL, work / "slow" / MODEL
        mlp(fast, args.layers, args.width, args.batch)
        mlp(slow, args.layers + 1, args.width, args.batch)
        for m in (fast, slow):
            digest = hashlib.sha256(m.read_bytes()).hexdigest()[:12]
            print("%s: sha256 %s, %d bytes" % (m.relative_to(work), digest, m.stat().st_size))
        results = {m: trials(fast, slow, work, args, m) for m in args.modes}
    print(
        "\n| mode | A/A false alarms | A/A median ratio | detected | slow median ratio "
        "| s per verdict (A/A, slow) |\n| ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for mode, o in results.items():
        n = len(o["aa"])
        print(
            "| %s | %d/%d (%.0f %%) | %.3f | %d/%d (%.0f %%) | %.3f | %.1f, %.1f |"
            % (
                mode,
                sum(o["aa"]),
                n,
                100 * sum(o["aa"]) / n,
                statistics.median(o["aa_r"]),
                sum(o["det"]),
                n,
                100 * sum(o["det"]) / n,
                statistics.median(o["det_r"]),
                statistics.median(o["aa_s"]),
                statistics.median(o["det_s"]),
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
