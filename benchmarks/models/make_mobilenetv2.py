#!/usr/bin/env python3
"""Write a MobileNetV2-sized benchmark model with random (seeded) weights.

MobileNetV2, width 1.0, 224x224x3 input, 1000 classes (about 3.5 M parameters), written out in
torch (no torchvision), exported to

  OUT/mobilenetv2.onnx     fp32 ONNX, input ``input`` [1,3,224,224] (NCHW),
                           output ``logits`` [1,1000]
  OUT/mobilenetv2.pt       the state_dict, for `edgebench` as a PyTorch model
                           (entry point ``benchmarks/models/make_mobilenetv2.py:build``)
  OUT/mobilenetv2.tflite   fp32 TFLite, input ``input`` [1,224,224,3] (NHWC),
                           output ``logits`` [1,1000] (BatchNorm folded; written with
                           examples/tflite_writer.py; skip with --no-tflite)

The weights are random: the model is for timing and memory, not accuracy. BatchNorm running
statistics are estimated from a forward pass over seeded random images, so activations stay
in a normal range layer after layer (no blow-up, no vanishing), as in a trained network.

    pip install torch==2.13.0 onnx onnxruntime ai-edge-litert
    python benchmarks/models/make_mobilenetv2.py [--out benchmarks/models/out/]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SEED = 0

# t (expansion), c (output channels), n (repeats), s (first stride)
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional ReLU6. ``groups=channels`` for depthwise."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, act=True):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=False))
        super().__init__(*layers)
        self.stride, self.kernel, self.depthwise, self.act = stride, kernel, groups > 1, act


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand_ratio):
        super().__init__()
        hidden = cin * expand_ratio
        self.use_res = stride == 1 and cin == cout
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(cin, hidden, kernel=1))  # expand
        layers.append(ConvBNAct(hidden, hidden, 3, stride, groups=hidden))  # depthwise
        layers.append(ConvBNAct(hidden, cout, kernel=1, act=False))  # linear project
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, width_mult=1.0):
        super().__init__()

        def ch(c):  # round to a multiple of 8, as in the reference implementation
            v = max(8, int(c * width_mult + 4) // 8 * 8)
            return v + 8 if v < 0.9 * c * width_mult else v

        cin = ch(32)
        self.last_channel = ch(1280) if width_mult > 1.0 else 1280
        feats = [ConvBNAct(3, cin, 3, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            cout = ch(c)
            for i in range(n):
                feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        feats.append(ConvBNAct(cin, self.last_channel, kernel=1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(x)


def build() -> MobileNetV2:
    """The entry point edgebench loads (weights: OUT/mobilenetv2.pt)."""
    return MobileNetV2()


def init_random(model: MobileNetV2, seed: int = SEED) -> None:
    """Seeded random weights with plausible BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.reset_running_stats()
                m.momentum = None  # cumulative average while estimating the statistics below
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.01, generator=g)
                m.bias.zero_()
        # Running mean/var from seeded random images (train mode), then freeze (eval mode).
        model.train()
        for _ in range(4):
            model(torch.rand(8, 3, 224, 224, generator=g) * 2 - 1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
    model.eval()


def export_onnx(model, path: Path) -> None:
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    dummy = torch.zeros(1, 3, 224, 224)
    kwargs = dict(
        input_names=["input"], output_names=["logits"], opset_version=17, do_constant_folding=True
    )
    try:
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, **kwargs)
    except TypeError:  # older torch without the dynamo argument
        torch.onnx.export(model, (dummy,), str(path), **kwargs)


# ---------------------------------------------------------------------------- TFLite
def fold_bn(block: ConvBNAct):
    conv, bn = block[0], block[1]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    w = (conv.weight.detach() * scale[:, None, None, None]).numpy().astype(np.float32)
    b = (bn.bias.detach() - bn.running_mean * scale).numpy().astype(np.float32)
    return w, b


def build_tflite(model: MobileNetV2, path: Path) -> int:
    sys.path.insert(0, str(REPO / "examples"))
    import tflite_writer as tw

    w = tw.TFLiteWriter(description="edgebench MobileNetV2 1.0 224 (random weights) fp32")
    f32 = np.float32
    counter = [0]

    def name(kind):
        counter[0] += 1
        return f"{kind}_{counter[0]}"

    def conv_block(x, shape, block: ConvBNAct):
        """shape: NHWC of x. Returns (tensor, shape)."""
        wt, b = fold_bn(block)
        n, h, wd, c = shape
        k, s = block.kernel, block.stride
        padding = "SAME"
        if k > 1 and s > 1:
            # torch pads (k-1)//2 on every side; TFLite SAME with stride 2 on an even size
            # pads only bottom/right, so pad explicitly and run a VALID convolution.
            p = (k - 1) // 2
            h, wd = h + 2 * p, wd + 2 * p
            pd = w.add_tensor(name("pad"), [n, h, wd, c], f32)
            w.add_operator(
                "PAD",
                [
                    x,
                    w.add_tensor(
                        name("paddings"), data=np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32)
                    ),
                ],
                [pd],
            )
            x, padding = pd, "VALID"
            oh, ow = (h - k) // s + 1, (wd - k) // s + 1
        else:
            oh, ow = -(-h // s), -(-wd // s)
        act = "RELU6" if block.act else None
        if block.depthwise:
            cout = wt.shape[0]
            out = w.add_tensor(name("dwconv"), [n, oh, ow, cout], f32)
            w.add_operator(
                "DEPTHWISE_CONV_2D",
                [
                    x,
                    w.add_tensor(
                        name("dw_weights"), data=np.ascontiguousarray(wt.transpose(1, 2, 3, 0))
                    ),
                    w.add_tensor(name("dw_bias"), data=b),
                ],
                [out],
                tw.depthwise_conv2d_options(padding, s, 1, act),
            )
        else:
            cout = wt.shape[0]
            out = w.add_tensor(name("conv"), [n, oh, ow, cout], f32)
            w.add_operator(
                "CONV_2D",
                [
                    x,
                    w.add_tensor(
                        name("weights"), data=np.ascontiguousarray(wt.transpose(0, 2, 3, 1))
                    ),
                    w.add_tensor(name("bias"), data=b),
                ],
                [out],
                tw.conv2d_options(padding, s, act),
            )
        return out, (n, oh, ow, cout)

    shape = (1, 224, 224, 3)
    x = inp = w.add_tensor("input", list(shape), f32)
    for layer in model.features:
        if isinstance(layer, ConvBNAct):
            x, shape = conv_block(x, shape, layer)
        else:
            y, yshape = x, shape
            for block in layer.conv:
                y, yshape = conv_block(y, yshape, block)
            if layer.use_res:
                s = w.add_tensor(name("add"), list(yshape), f32)
                w.add_operator("ADD", [x, y], [s], tw.add_options())
                y = s
            x, shape = y, yshape
    pooled = w.add_tensor("pool", [1, shape[3]], f32)
    w.add_operator(
        "MEAN",
        [x, w.add_tensor("pool/axes", data=np.array([1, 2], np.int32))],
        [pooled],
        tw.reducer_options(keep_dims=False),
    )
    fc = model.classifier[1]
    out = w.add_tensor("logits", [1, fc.out_features], f32)
    w.add_operator(
        "FULLY_CONNECTED",
        [
            pooled,
            w.add_tensor("fc/weights", data=fc.weight.detach().numpy().astype(f32)),
            w.add_tensor("fc/bias", data=fc.bias.detach().numpy().astype(f32)),
        ],
        [out],
        tw.fully_connected_options(),
    )
    w.set_io([inp], [out])
    return w.save(path)


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--out", type=Path, default=HERE / "out", help="output directory (default: %(default)s)"
    )
    ap.add_argument("--no-tflite", action="store_true", help="write only the ONNX model")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    model = MobileNetV2()
    init_random(model, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"MobileNetV2 1.0/224: {n_params:,} parameters (BatchNorm included)")

    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed + 1)) * 2 - 1
    with torch.no_grad():
        ref = model(x).numpy()
        feats = model.features(x)
    print(
        f"activations: last feature map mean {feats.mean():.3f} std {feats.std():.3f}; "
        f"logits std {ref.std():.4f}"
    )
    if not np.isfinite(ref).all() or ref.std() < 1e-6:
        print("FAILED: degenerate activations", file=sys.stderr)
        return 1

    ok = True
    torch.save(model.state_dict(), str(args.out / "mobilenetv2.pt"))
    onnx_path = args.out / "mobilenetv2.onnx"
    export_onnx(model, onnx_path)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = np.concatenate(
        [sess.run(["logits"], {"input": x[i : i + 1].numpy()})[0] for i in range(len(x))]
    )
    err = float(np.abs(got - ref).max())
    rel = err / float(np.abs(ref).max())
    ok &= rel < 1e-3
    print(
        f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB), "
        f"max|onnx-torch| {err:.2e} (relative {rel:.1e})"
    )

    if not args.no_tflite:
        tfl_path = args.out / "mobilenetv2.tflite"
        size = build_tflite(model, tfl_path)
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(tfl_path))
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        outs = []
        for s in x.numpy().transpose(0, 2, 3, 1):
            it.set_tensor(i["index"], s[None])
            it.invoke()
            outs.append(it.get_tensor(o["index"])[0])
        err = float(np.abs(np.stack(outs) - ref).max())
        rel = err / float(np.abs(ref).max())
        ok &= rel < 1e-3
        print(
            f"wrote {tfl_path} ({size / 1e6:.2f} MB), "
            f"max|tflite-torch| {err:.2e} (relative {rel:.1e})"
        )

    if not ok:
        print("FAILED: an exported model does not match torch", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
