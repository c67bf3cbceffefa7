#!/usr/bin/env python3
"""Does --profile-ops leak into the headline numbers, and does a profile add up?

For MobileNetV2 (ONNX and TFLite) the real agent measures the model in fresh processes,
alternating without and with ``profile_ops`` (plain, profiled, plain, profiled, ...) so
drift hits both alike.  Printed per model: the median over rounds of p50 with the profile
pass ÷ p50 without (goal: within 1 %; also the smallest p50 of each side, the rounds a
loaded machine disturbed least), and of the per-op total ÷ the p50 that the profile
states (with the agent's note when it is far from 1), plus the slowest op types.  Then
the ONNX model's int8-dynamic variant (built with `edgebench optimize`, cached) is
profiled once and its op types set against fp32's: where the int8 time goes.

    pip install torch==2.13.0   # only to build the model once
    python benchmarks/models/make_mobilenetv2.py
    python benchmarks/profile.py [--rounds 5] [--seconds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "benchmarks" / "models" / "out"
WORK = MODELS / "optimize"  # git-ignored; shared with benchmarks/optimize.py


def measure(model: Path, threads: int, seconds: float, profile: bool) -> Dict[str, Any]:
    job = {
        "protocol": 1,
        "artifact": {"path": str(model)},
        "settings": {
            "threads": threads,
            "min_seconds": seconds,
            "warmup_seconds": 1.0,
            "profile_ops": profile,
        },
    }
    out = subprocess.run(
        [sys.executable, "-m", "edgebench.agent", "run"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    record: Dict[str, Any] = json.loads(out.stdout)["record"]
    if record["status"] != "ok":
        raise SystemExit("%s: %s" % (model.name, record["message"]))
    return record


def op_types(record: Dict[str, Any]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for row in record["profile"]["rows"]:
        out[row["op_type"]] = out.get(row["op_type"], 0.0) + row["p50_ms"] * row["calls"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    for name in ("mobilenetv2.onnx", "mobilenetv2.tflite"):
        model = MODELS / name
        if not model.is_file():
            print("%s: missing (python benchmarks/models/make_mobilenetv2.py)" % model)
            continue
        ratios: List[float] = []
        adds: List[float] = []
        p50s: Dict[bool, List[float]] = {False: [], True: []}
        last: Dict[str, Any] = {}
        for _ in range(args.rounds):
            plain = measure(model, args.threads, args.seconds, False)
            last = measure(model, args.threads, args.seconds, True)
            ratios.append(last["stats"]["p50_ms"] / plain["stats"]["p50_ms"])
            p50s[False].append(plain["stats"]["p50_ms"])
            p50s[True].append(last["stats"]["p50_ms"])
            adds.append(last["profile"]["ratio_to_p50"])
        profile = last["profile"]
        print(
            "%s: p50 with ÷ without --profile-ops %.4f (rounds %s); per-op total ÷ p50 %.2f "
            "(rounds %s); %s; placement %s"
            % (
                name,
                statistics.median(ratios),
                " ".join("%.3f" % r for r in ratios),
                statistics.median(adds),
                " ".join("%.2f" % r for r in adds),
                profile["method"],
                last["runtime"]["placement"]["text"],
            )
        )
        print(
            "  least-disturbed rounds: min p50 with %.3f ms ÷ without %.3f ms = %.4f"
            % (min(p50s[True]), min(p50s[False]), min(p50s[True]) / min(p50s[False]))
        )
        if profile.get("note"):
            print("  note: %s" % profile["note"])
        slowest = sorted(op_types(last).items(), key=lambda kv: -kv[1])[:5]
        print("  slowest op types: " + ", ".join("%s %.2f ms" % kv for kv in slowest))
        if name.endswith(".onnx"):
            int8_diff(model, last, args)
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    return 0


def int8_diff(model: Path, fp32: Dict[str, Any], args: argparse.Namespace) -> None:
    """fp32 -> int8-dynamic per op type (ms per run), the largest change first."""
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "edgebench.harness", "optimize", str(model)]
        + ["--variants", "int8-dynamic", "--out", str(WORK)],
        check=True,
        capture_output=True,
    )
    variant = measure(WORK / "mobilenetv2.int8-dynamic.onnx", args.threads, args.seconds, True)
    a, b = op_types(fp32), op_types(variant)
    rows = sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, 0.0) - a.get(k, 0.0)))
    print(
        "  int8-dynamic: p50 %.2f ms vs fp32 %.2f ms; op types fp32 -> int8 (ms/run): %s"
        % (
            variant["stats"]["p50_ms"],
            fp32["stats"]["p50_ms"],
            ", ".join("%s %.2f->%.2f" % (k, a.get(k, 0.0), b.get(k, 0.0)) for k in rows[:6]),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
