#!/usr/bin/env python3
"""Which MobileNetV2 variant should ship?  Build fp16 / int8 / pruned variants with
`edgebench run PLAN.yaml` and print the trade-off table (size, latency, top-1 against fp32).

The model has random weights, so top-1 here is agreement with the fp32 model: the eval set's
labels are fp32's own predictions on seeded random images (fp32 scores 100 % by construction).
Calibration uses other seeded random images.  Goals on 1 thread: fp32 ~14.0 MB, int8-static
<= 4.0 MB and p50 <= 0.6x fp32.

    pip install torch==2.13.0   # only to build the model once
    python benchmarks/models/make_mobilenetv2.py
    python benchmarks/optimize.py [--threads 1] [--seconds 5] [--activations uint8]

With --torch the model comes from its PyTorch source (make_mobilenetv2.py:build with
out/mobilenetv2.pt; needs edgebench[torch]) and the rows are the seeds' case study: fp32,
structured-50, int8-static and structured-50+int8-static, each size and p50 printed as a
ratio of fp32 next to the seeds' ratios.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "benchmarks" / "models" / "out" / "mobilenetv2.onnx"
WORK = MODEL.parent / "optimize"  # git-ignored; variants are cached here between runs
VARIANTS = ["fp16", "int8-dynamic", "int8-static", "prune-50", "prune-50+int8-static"]
WEIGHTS = MODEL.with_suffix(".pt")
# the seeds' MobileNetV2 case study, as ratios of fp32 (14.0 MB, 28 ms): size, p50
SEEDS = {
    "structured-50": (0.54, 0.64),
    "int8-static": (0.25, 0.43),
    "structured-50+int8-static": (0.21, 0.36),
}


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 3, 224, 224), dtype=np.float32)


def write_data(calib_samples: int, eval_samples: int) -> None:
    """calib.npz (inputs) and eval.npz (inputs, labels = fp32's predictions)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    inputs = images(eval_samples, seed=1)
    labels = np.array([int(np.argmax(session.run(None, {name: x[None]})[0])) for x in inputs])
    np.savez_compressed(WORK / "eval.npz", inputs=inputs, labels=labels)
    np.savez_compressed(WORK / "calib.npz", inputs=images(calib_samples, seed=2))


def write_plan(variants: list, activations: str, calib_method: str, torch: bool) -> Path:
    plan = WORK / "plan.yaml"
    model = (
        "{torch: '%s:build', weights: '%s', input_shapes: {input: [1, 3, 224, 224]}}"
        % (MODEL.parent.parent / "make_mobilenetv2.py", WEIGHTS)
        if torch
        else str(MODEL)
    )
    plan.write_text(
        "models: [%s]\nvariants: [%s]\neval: eval.npz\ncalibration: calib.npz\n"
        "optimize: {activations: %s, calib_method: %s}\nvariants_dir: variants\n"
        "devices: local\n" % (model, ", ".join(variants), activations, calib_method)
    )
    return plan


def seed_ratios(size: dict, p50: dict) -> None:
    """Each row's size and p50 as a ratio of fp32, next to the seeds'."""
    print("\n%-26s %12s %12s %12s %12s" % ("variant", "size/fp32", "seeds", "p50/fp32", "seeds"))
    for variant, (seed_size, seed_p50) in SEEDS.items():
        if variant in p50 and "fp32" in p50:
            print(
                "%-26s %12.2f %12.2f %12.2f %12.2f"
                % (
                    variant,
                    size[variant] / size["fp32"],
                    seed_size,
                    p50[variant] / p50["fp32"],
                    seed_p50,
                )
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0, help="timed window per variant")
    ap.add_argument(
        "--variants", help="default: %s (with --torch: %s)" % (",".join(VARIANTS), ",".join(SEEDS))
    )
    ap.add_argument("--torch", action="store_true", help="start from the PyTorch source")
    ap.add_argument("--activations", default="uint8", help="int8-static activations")
    ap.add_argument("--calib-method", default="minmax")
    ap.add_argument("--calib-samples", type=int, default=32)
    ap.add_argument("--eval-samples", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "results"), help="results root")
    args = ap.parse_args()
    for path in (MODEL, WEIGHTS) if args.torch else (MODEL,):
        if not path.is_file():
            raise SystemExit("%s missing: run benchmarks/models/make_mobilenetv2.py" % path)
    WORK.mkdir(exist_ok=True)
    write_data(args.calib_samples, args.eval_samples)
    variants = (
        args.variants.split(",") if args.variants else list(SEEDS if args.torch else VARIANTS)
    )
    plan = write_plan(variants, args.activations, args.calib_method, args.torch)
    code = subprocess.call(  # prints the build lines, the tables and the trade-offs
        [
            sys.executable,
            "-m",
            "edgebench.harness",
            "run",
            str(plan),
            "--threads",
            str(args.threads),
            "--min-seconds",
            str(args.seconds),
            "--max-seconds",
            str(args.seconds * 3),
            "--out",
            args.out,
        ],
        cwd=str(ROOT),
    )
    if code not in (0, 1):
        return code
    from edgebench.harness.store import open_run

    store = open_run(args.out)
    records = store.records()
    p50 = {r.artifact.get("variant"): r.stats.get("p50_ms") for r in records if r.ok}
    size = {r.artifact.get("variant"): r.artifact["size_bytes"] / 1e6 for r in records}
    seed_ratios(size, p50)
    if "fp32" in p50 and "int8-static" in p50:
        print(
            "\nfp32 %.1f MB; int8-static %.2f MB (goal <= 4.0); int8-static p50 / fp32 p50 = "
            "%.2f (goal <= 0.6); threads %d; run %s"
            % (
                size["fp32"],
                size["int8-static"],
                p50["int8-static"] / p50["fp32"],
                args.threads,
                store.path,
            )
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
