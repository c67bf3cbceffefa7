"""An ONNX model whose work grows with its depth: ``layers`` MatMul+Relu blocks (the A/B
tests and benchmarks/gate.py build their "same slot, slower model" pairs with it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mlp(path: Path, layers: int, width: int = 128, batch: int = 64) -> Path:
    """``layers`` MatMul+Relu blocks on a ``batch``×``width`` input, written to ``path``;
    He-scaled weights keep the activations in range (no denormals), a fixed seed keeps the
    file reproducible."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights, name = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) * (2 / width) ** 0.5).astype(np.float32)
        weights.append(numpy_helper.from_array(w, "w%d" % i))
        nodes += [
            helper.make_node("MatMul", [name, "w%d" % i], ["m%d" % i]),
            helper.make_node("Relu", ["m%d" % i], ["r%d" % i]),
        ]
        name = "r%d" % i
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, width])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by onnxruntime >= 1.16
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
