#!/usr/bin/env python3
"""Build the bundled example: a small CNN on scikit-learn's 8x8 digits.

Writes, next to this file:

  digits.onnx          fp32 ONNX, input ``input`` [1,1,8,8] (NCHW, batch 1 like the TFLite
                       models, so it runs without --input-shape), output ``logits`` [1,10]
  digits.tflite        fp32 TFLite, input ``input`` [1,8,8,1] (NHWC), output ``logits`` [1,10]
  digits.int8.tflite   full-integer TFLite: int8 input/output, int8 weights, int32 biases
  digits_eval.npz      held-out eval set: ``inputs`` float32 [360,1,8,8] in [0,1], ``labels`` int64

Needs torch (CPU) only to train; the artifacts load with plain onnxruntime / LiteRT /
tflite_runtime. The TFLite files are written directly as flatbuffers (tflite_writer.py),
without TensorFlow.

    pip install torch==2.13.0 scikit-learn onnx onnxruntime ai-edge-litert
    python examples/make_digits.py
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tflite_writer as tw  # noqa: E402

SEED = 0
N_EVAL = 360
EPOCHS = 40
BATCH = 32
LR = 2e-3
TOL = 1e-4


# ---------------------------------------------------------------------------- data
def load_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]  # [N,1,8,8] in [0,1]
    y = d.target.astype(np.int64)
    x_tr, x_ev, y_tr, y_ev = train_test_split(x, y, test_size=N_EVAL, stratify=y, random_state=SEED)
    return (np.ascontiguousarray(x_tr), y_tr), (np.ascontiguousarray(x_ev), y_ev)


# ---------------------------------------------------------------------------- torch
def build_and_train(x_tr, y_tr):
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"  epoch {epoch + 1:3d}  train loss {total / len(xt):.4f}")
    model.eval()
    return model


def torch_logits(model, x):
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def export_onnx(model, path: Path):
    import torch

    dummy = torch.zeros(1, 1, 8, 8)
    kwargs = dict(
        input_names=["input"], output_names=["logits"], opset_version=17, do_constant_folding=True
    )
    import warnings

    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    try:
        # The TorchScript exporter gives a plain, small graph; torch>=2.9 defaults to dynamo.
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, **kwargs)
    except TypeError:  # older torch without the dynamo argument
        torch.onnx.export(model, (dummy,), str(path), **kwargs)


# ------------------------------------------------------------------------ numpy reference (NHWC)
def params_nhwc(model):
    """Torch weights rearranged for TFLite: conv OHWI, FC [out,in] with NHWC flatten order."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    fc1 = sd["5.weight"].reshape(64, 32, 4, 4).transpose(0, 2, 3, 1).reshape(64, 512)
    return {
        "conv1_w": np.ascontiguousarray(sd["0.weight"].transpose(0, 2, 3, 1)),
        "conv1_b": sd["0.bias"],
        "conv2_w": np.ascontiguousarray(sd["2.weight"].transpose(0, 2, 3, 1)),
        "conv2_b": sd["2.bias"],
        "fc1_w": np.ascontiguousarray(fc1),
        "fc1_b": sd["5.bias"],
        "fc2_w": sd["7.weight"],
        "fc2_b": sd["7.bias"],
    }


def conv2d_nhwc(x, w_ohwi, b, stride=1, pad=(0, 0, 0, 0)):
    """x [N,H,W,C], w [O,KH,KW,C], pad (top,bottom,left,right) -> [N,OH,OW,O]."""
    t, bo, le, r = pad
    x = np.pad(x, ((0, 0), (t, bo), (le, r), (0, 0)))
    n, h, w, c = x.shape
    o, kh, kw, _ = w_ohwi.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = x[
                :, i : i + stride * oh : stride, j : j + stride * ow : stride, :
            ]
    return cols.reshape(n, oh, ow, -1) @ w_ohwi.reshape(o, -1).T + b


def forward_nhwc(p, x_nhwc):
    """Float forward pass mirroring the TFLite graph; returns every activation."""
    a = {"input": x_nhwc}
    a["conv1"] = np.maximum(conv2d_nhwc(x_nhwc, p["conv1_w"], p["conv1_b"], 1, (1, 1, 1, 1)), 0)
    # torch's padding=1, stride=2 on 8x8 pads top/left only in effect; TFLite SAME would pad
    # bottom/right instead, so the graph uses an explicit PAD and a VALID conv.
    a["conv2"] = np.maximum(conv2d_nhwc(a["conv1"], p["conv2_w"], p["conv2_b"], 2, (1, 1, 1, 1)), 0)
    a["flat"] = a["conv2"].reshape(len(x_nhwc), -1)
    a["fc1"] = np.maximum(a["flat"] @ p["fc1_w"].T + p["fc1_b"], 0)
    a["logits"] = a["fc1"] @ p["fc2_w"].T + p["fc2_b"]
    return a


# ---------------------------------------------------------------------------- quantization
def act_qparams(lo, hi):
    """Asymmetric per-tensor int8 parameters covering [lo,hi] (and 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0 or 1e-8
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return np.float32(scale), zp


def quantize_weights(w, per_channel):
    """Symmetric int8 ([-127,127]); per output channel (axis 0) or per tensor."""
    if per_channel:
        m = np.abs(w.reshape(len(w), -1)).max(axis=1)
    else:
        m = np.array([np.abs(w).max()])
    scale = (np.maximum(m, 1e-12) / 127.0).astype(np.float32)
    s = scale.reshape((-1,) + (1,) * (w.ndim - 1)) if per_channel else scale[0]
    q = np.clip(np.round(w / s), -127, 127).astype(np.int8)
    return q, scale


def quantize_bias(b, in_scale, w_scale):
    scale = np.float64(in_scale) * w_scale.astype(np.float64)
    q = np.round(b.astype(np.float64) / scale)
    return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32), scale


# ---------------------------------------------------------------------------- TFLite graphs
PADDINGS = np.array([[0, 0], [1, 1], [1, 1], [0, 0]], dtype=np.int32)


def build_tflite_fp32(p, path: Path) -> int:
    w = tw.TFLiteWriter(description="edgebench digits CNN fp32")
    f32 = np.float32
    x = w.add_tensor("input", [1, 8, 8, 1], f32)
    c1 = w.add_tensor("conv1/relu", [1, 8, 8, 16], f32)
    w.add_operator(
        "CONV_2D",
        [
            x,
            w.add_tensor("conv1/weights", data=p["conv1_w"]),
            w.add_tensor("conv1/bias", data=p["conv1_b"]),
        ],
        [c1],
        tw.conv2d_options("SAME", 1, "RELU"),
    )
    pd = w.add_tensor("conv2/pad", [1, 10, 10, 16], f32)
    w.add_operator("PAD", [c1, w.add_tensor("conv2/paddings", data=PADDINGS)], [pd])
    c2 = w.add_tensor("conv2/relu", [1, 4, 4, 32], f32)
    w.add_operator(
        "CONV_2D",
        [
            pd,
            w.add_tensor("conv2/weights", data=p["conv2_w"]),
            w.add_tensor("conv2/bias", data=p["conv2_b"]),
        ],
        [c2],
        tw.conv2d_options("VALID", 2, "RELU"),
    )
    fl = w.add_tensor("flatten", [1, 512], f32)
    w.add_operator(
        "RESHAPE",
        [c2, w.add_tensor("flatten/shape", data=np.array([1, 512], np.int32))],
        [fl],
        tw.reshape_options([1, 512]),
    )
    f1 = w.add_tensor("fc1/relu", [1, 64], f32)
    w.add_operator(
        "FULLY_CONNECTED",
        [
            fl,
            w.add_tensor("fc1/weights", data=p["fc1_w"]),
            w.add_tensor("fc1/bias", data=p["fc1_b"]),
        ],
        [f1],
        tw.fully_connected_options("RELU"),
    )
    out = w.add_tensor("logits", [1, 10], f32)
    w.add_operator(
        "FULLY_CONNECTED",
        [
            f1,
            w.add_tensor("fc2/weights", data=p["fc2_w"]),
            w.add_tensor("fc2/bias", data=p["fc2_b"]),
        ],
        [out],
        tw.fully_connected_options(),
    )
    w.set_io([x], [out])
    return w.save(path)


def build_tflite_int8(p, calib, path: Path) -> int:
    """Full-integer model. ``calib`` maps activation name -> (min, max) on the training set."""
    q = {k: act_qparams(*v) for k, v in calib.items()}
    w = tw.TFLiteWriter(description="edgebench digits CNN int8 (full integer)")
    i8 = np.int8

    def act(name, key, shape):
        s, z = q[key]
        return w.add_tensor(name, shape, i8, scale=s, zero_point=z)

    def layer(prefix, in_key, wname, per_channel):
        wq, ws = quantize_weights(p[wname + "_w"], per_channel)
        bq, bs = quantize_bias(p[wname + "_b"], q[in_key][0], ws)
        wt = w.add_tensor(
            f"{prefix}/weights",
            data=wq,
            scale=ws,
            zero_point=np.zeros(len(ws), np.int64),
            quantized_dimension=0,
        )
        bt = w.add_tensor(
            f"{prefix}/bias",
            data=bq,
            scale=bs,
            zero_point=np.zeros(len(bs), np.int64),
            quantized_dimension=0,
        )
        return wt, bt

    x = act("input", "input", [1, 8, 8, 1])
    c1 = act("conv1/relu", "conv1", [1, 8, 8, 16])
    w.add_operator(
        "CONV_2D",
        [x, *layer("conv1", "input", "conv1", True)],
        [c1],
        tw.conv2d_options("SAME", 1, "RELU"),
        version=3,
    )
    pd = act("conv2/pad", "conv1", [1, 10, 10, 16])  # PAD keeps its input's scale/zero point
    w.add_operator("PAD", [c1, w.add_tensor("conv2/paddings", data=PADDINGS)], [pd], version=2)
    c2 = act("conv2/relu", "conv2", [1, 4, 4, 32])
    w.add_operator(
        "CONV_2D",
        [pd, *layer("conv2", "conv1", "conv2", True)],
        [c2],
        tw.conv2d_options("VALID", 2, "RELU"),
        version=3,
    )
    fl = act("flatten", "conv2", [1, 512])  # RESHAPE keeps its input's scale/zero point
    w.add_operator(
        "RESHAPE",
        [c2, w.add_tensor("flatten/shape", data=np.array([1, 512], np.int32))],
        [fl],
        tw.reshape_options([1, 512]),
    )
    f1 = act("fc1/relu", "fc1", [1, 64])
    w.add_operator(
        "FULLY_CONNECTED",
        [fl, *layer("fc1", "conv2", "fc1", False)],
        [f1],
        tw.fully_connected_options("RELU"),
        version=4,
    )
    out = act("logits", "logits", [1, 10])
    w.add_operator(
        "FULLY_CONNECTED",
        [f1, *layer("fc2", "fc1", "fc2", False)],
        [out],
        tw.fully_connected_options(),
        version=4,
    )
    w.set_io([x], [out])
    return w.save(path)


# ---------------------------------------------------------------------------- runtimes
def run_onnx(path: Path, x_nchw):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(["logits"], {"input": x[None]})[0] for x in x_nchw])


def run_tflite(path: Path, x_nchw):
    """Runs one sample at a time (batch 1 model); int8 inputs quantized, outputs dequantized."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = x_nchw.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    res = []
    for s in x:
        s = s[None]
        if inp["dtype"] == np.int8:
            sc, zp = inp["quantization"]
            s = np.clip(np.round(s / sc) + zp, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], s.astype(inp["dtype"]))
        it.invoke()
        o = it.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            sc, zp = out["quantization"]
            o = (o.astype(np.float32) - zp) * sc
        res.append(o[0])
    return np.stack(res)


def top1(logits, labels):
    return float((logits.argmax(axis=1) == labels).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: examples/)")
    args = ap.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    os.environ.setdefault("PYTHONHASHSEED", str(SEED))
    random.seed(SEED)
    np.random.seed(SEED)

    (x_tr, y_tr), (x_ev, y_ev) = load_data()
    print(f"digits: train {len(x_tr)}, eval {len(x_ev)}")

    print("training CNN (torch, CPU)...")
    model = build_and_train(x_tr, y_tr)
    ref = torch_logits(model, x_ev)
    print(f"torch       top-1 {top1(ref, y_ev):.4f}")
    ok = True

    onnx_path = out / "digits.onnx"
    export_onnx(model, onnx_path)
    import onnx

    onnx.checker.check_model(onnx.load(str(onnx_path)))
    lo = run_onnx(onnx_path, x_ev)
    err = float(np.abs(lo - ref).max())
    ok &= err < TOL
    print(
        f"onnx        top-1 {top1(lo, y_ev):.4f}  max|onnx-torch| {err:.2e}  "
        f"{onnx_path.stat().st_size} B"
    )

    p = params_nhwc(model)
    acts = forward_nhwc(p, x_ev.transpose(0, 2, 3, 1))
    err = float(np.abs(acts["logits"] - ref).max())
    ok &= err < TOL
    print(f"numpy NHWC reference     max|ref-torch| {err:.2e}")

    tfl_path = out / "digits.tflite"
    size = build_tflite_fp32(p, tfl_path)
    lt = run_tflite(tfl_path, x_ev)
    err = float(np.abs(lt - ref).max())
    ok &= err < TOL
    print(f"tflite fp32 top-1 {top1(lt, y_ev):.4f}  max|tflite-torch| {err:.2e}  {size} B")

    calib_acts = forward_nhwc(p, x_tr.transpose(0, 2, 3, 1))
    calib = {k: (float(v.min()), float(v.max())) for k, v in calib_acts.items() if k != "flat"}
    int8_path = out / "digits.int8.tflite"
    size = build_tflite_int8(p, calib, int8_path)
    lq = run_tflite(int8_path, x_ev)
    agree = float((lq.argmax(1) == lt.argmax(1)).mean())
    drop = top1(lt, y_ev) - top1(lq, y_ev)
    ok &= drop <= 0.02
    print(f"tflite int8 top-1 {top1(lq, y_ev):.4f}  agreement with fp32 {agree:.4f}  {size} B")

    eval_path = out / "digits_eval.npz"
    np.savez_compressed(eval_path, inputs=x_ev.astype(np.float32), labels=y_ev.astype(np.int64))
    print(
        f"eval set    {eval_path.name}: inputs {x_ev.shape} float32 NCHW, labels {y_ev.shape} "
        f"int64  {eval_path.stat().st_size} B"
    )

    if not ok:
        print("FAILED: an artifact does not match the torch model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
