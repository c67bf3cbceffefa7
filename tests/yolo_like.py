"""A YOLO-style detector built with onnx's helper API: ``images`` [batch,3,height,width],
Conv/BatchNorm/SiLU blocks, a nearest-neighbour upsample concatenated with an earlier
feature map, and a head reshaped to [batch, anchors, 6].  With its dims dynamic, onnxruntime's
symbolic shape inference cannot complete ("Incomplete symbolic shape inference"), as for
YOLOv8n exported with dynamic axes."""

from pathlib import Path
from typing import List

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write_yolo_like(path: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes: List[onnx.NodeProto] = []
    constants: List[onnx.TensorProto] = []

    def const(name: str, array: object, dtype: type = np.float32) -> str:
        constants.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def block(x: str, name: str, cin: int, cout: int, stride: int) -> str:
        """Conv 3x3, BatchNorm, SiLU (x * sigmoid(x))."""
        w = const(name + ".w", rng.normal(0, (2 / (9 * cin)) ** 0.5, (cout, cin, 3, 3)))
        b = const(name + ".b", np.zeros(cout))
        nodes.append(
            helper.make_node(
                "Conv", [x, w, b], [name + ".conv"], pads=[1, 1, 1, 1], strides=[stride] * 2
            )
        )
        norm = [
            const(name + ".scale", rng.uniform(0.5, 1.5, cout)),
            const(name + ".shift", rng.normal(0, 0.1, cout)),
            const(name + ".mean", rng.normal(0, 0.1, cout)),
            const(name + ".var", rng.uniform(0.5, 1.5, cout)),
        ]
        nodes.append(
            helper.make_node("BatchNormalization", [name + ".conv"] + norm, [name + ".bn"])
        )
        nodes.append(helper.make_node("Sigmoid", [name + ".bn"], [name + ".gate"]))
        nodes.append(helper.make_node("Mul", [name + ".bn", name + ".gate"], [name]))
        return name

    p2 = block(block("images", "stem", 3, 8, 2), "p2", 8, 16, 2)
    p3 = block(p2, "p3", 16, 16, 2)
    scales = const("scales", [1, 1, 2, 2])
    nodes.append(helper.make_node("Resize", [p3, "", scales], ["up"], mode="nearest"))
    nodes.append(helper.make_node("Concat", ["up", p2], ["cat"], axis=1))
    head = block("cat", "neck", 32, 16, 1)
    nodes.append(
        helper.make_node(
            "Conv", [head, const("head.w", rng.normal(0, 0.1, (6, 16, 1, 1)))], ["raw"]
        )
    )
    nodes.append(
        helper.make_node("Reshape", ["raw", const("flat", [0, 6, -1], np.int64)], ["rows"])
    )
    nodes.append(helper.make_node("Transpose", ["rows"], ["output0"], perm=[0, 2, 1]))
    graph = helper.make_graph(
        nodes,
        "yolo_like",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["batch", 3, "height", "width"]
            )
        ],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", "anchors", 6])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
