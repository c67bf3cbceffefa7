#!/usr/bin/env python3
"""How much does edgebench add to a measurement?

For the same model and thread count, compare the p50 that `edgebench run` reports on `local`
with the p50 of a bare ``session.run`` / ``invoke`` loop in a fresh process. Rounds alternate
(bare, agent, bare, agent, ...) so drift hits both alike; the ratio printed is the median
over rounds. Goal: <= 1.02 on a model of at least 1 ms.

    pip install torch==2.13.0   # only to build the model once
    python benchmarks/models/make_mobilenetv2.py
    python benchmarks/overhead.py [--rounds 3] [--seconds 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "benchmarks" / "models" / "out"

# The bare loop: the runtime's own API, nothing else, timed the way a user would.
BARE = r"""
import json, sys, time
import numpy as np
fmt, path, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
if fmt == "onnx":
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feed = {inp.name: np.random.default_rng(0).random(inp.shape, dtype=np.float32)}
    call = lambda: sess.run(None, feed)
else:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(0).random(d["shape"], dtype=np.float32))
    call = it.invoke
end = time.perf_counter() + 0.5
while time.perf_counter() < end:
    call()
samples = []
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    t0 = time.perf_counter_ns(); call(); samples.append(time.perf_counter_ns() - t0)
samples.sort()
print(json.dumps({"p50_ms": samples[len(samples) // 2] / 1e6, "n": len(samples)}))
"""


def bare(fmt: str, model: Path, threads: int, seconds: float) -> float:
    out = subprocess.run(
        [sys.executable, "-c", BARE, fmt, str(model), str(threads), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["p50_ms"]


def agent(model: Path, threads: int, seconds: float, out_dir: str) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebench.harness",
            "run",
            "--model",
            str(model),
            "--threads",
            str(threads),
            "--min-seconds",
            str(seconds),
            "--warmup-seconds",
            "0.5",
            "--max-seconds",
            str(seconds * 3),
            "--json",
            "--out",
            out_dir,
        ],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )
    if out.returncode != 0:
        raise SystemExit("edgebench run failed: %s" % out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout)[0]["p50_ms"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--models",
        nargs="*",
        default=[str(MODELS / "mobilenetv2.onnx"), str(MODELS / "mobilenetv2.tflite")],
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out_dir:
        for name in args.models:
            model = Path(name)
            if not model.is_file():
                raise SystemExit("%s missing: run benchmarks/models/make_mobilenetv2.py" % model)
            fmt = "onnx" if model.suffix == ".onnx" else "tflite"
            ratios = []
            for i in range(args.rounds):
                b = bare(fmt, model, args.threads, args.seconds)
                a = agent(model, args.threads, args.seconds, out_dir)
                ratios.append(a / b)
                print(
                    "%s round %d: bare p50 %.3f ms, edgebench p50 %.3f ms, ratio %.4f"
                    % (model.name, i + 1, b, a, a / b),
                    flush=True,
                )
            print(
                "%s: median ratio edgebench/bare = %.4f (threads=%d, %d rounds of %.0f s)"
                % (model.name, statistics.median(ratios), args.threads, args.rounds, args.seconds),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
