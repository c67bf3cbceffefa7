"""TFLite recipes with Google's ai-edge-quantizer: dynamic int8, static int8 calibrated on a
calibration set, and float16 weights.  Pruning is ONNX only (prune the ONNX model, or the
source model before conversion)."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils
from ai_edge_quantizer import quantizer
from ai_edge_quantizer import recipe as aeq_recipe

from .variants import BuildError, Input, Options, Step, calibration_batches

# ai-edge-quantizer's float casting: weights of the ops it supports stored as float16 and
# dequantized in the graph, so every runtime without fp16 kernels still runs the model.
_FP16_RECIPE = [
    {
        "regex": ".*",
        "operation": "*",
        "algorithm_key": "float_casting",
        "op_config": {
            "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
            "compute_precision": "FLOAT",
            "explicit_dequantize": True,
        },
    }
]
# Weight types (int32 constants are biases, shapes and paddings, not weights).
_WEIGHT_DTYPES = {
    schema.TensorType.FLOAT32: np.float32,
    schema.TensorType.FLOAT16: np.float16,
    schema.TensorType.INT16: np.int16,
    schema.TensorType.INT8: np.int8,
    schema.TensorType.UINT8: np.uint8,
}

_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if k.isupper()}
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
_NO_SIGNATURE = (
    "the model has no signature, and ai-edge-quantizer calibrates through one: convert it "
    "with a signature (TFLiteConverter.from_saved_model or from_concrete_functions writes "
    "serving_default), or build variants of its ONNX form"
)

_RECIPES = {
    "fp16": lambda: _FP16_RECIPE,
    "int8-dynamic": aeq_recipe.dynamic_wi8_afp32,
    "int8-static": aeq_recipe.static_wi8_ai8,
}


def tools() -> Dict[str, str]:
    from importlib.metadata import version

    return {
        "ai-edge-quantizer": version("ai-edge-quantizer"),
        "ai-edge-litert": version("ai-edge-litert"),
        "numpy": np.__version__,
    }


def verify(path: Path) -> None:
    """The file loads and allocates in the LiteRT interpreter."""
    try:
        Interpreter(model_path=str(path)).allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise BuildError(
            "%s: not a usable TFLite model (%s)" % (path.name, " ".join(str(exc).split())[:200])
        ) from None


check = verify


def settings(step: Step, options: Options) -> Dict[str, Any]:
    if step.kind == "prune":
        raise BuildError("pruning is implemented for ONNX models only")
    if step.kind == "int8-static":
        method = step.method or options.calib_method
        if method != "minmax":
            raise BuildError("ai-edge-quantizer calibrates with minmax only, not %s" % method)
        return {"tool": "ai-edge-quantizer", "recipe": "static_wi8_ai8", "calib_method": method}
    if step.kind == "int8-dynamic":
        return {"tool": "ai-edge-quantizer", "recipe": "dynamic_wi8_afp32"}
    return {"tool": "ai-edge-quantizer", "recipe": "float_casting fp16 weights"}


def apply(
    source: Path,
    target: Path,
    step: Step,
    recipe: Mapping[str, Any],
    calib: Optional[Any],
    progress: Callable[..., None],
) -> None:
    """Write ``target`` from ``source``; ``progress(text[, done, total])`` hears about the
    calibration."""
    with warnings.catch_warnings():  # the quantizer's own interpreter settings, not ours
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        qt = quantizer.Quantizer(str(source), _RECIPES[step.kind]())
        ranges = None
        if step.kind == "int8-static":
            samples = _calibration(source, calib, recipe.get("input_shapes") or {})
            ranges = qt.calibrate({k: _Counted(v, progress) for k, v in samples.items()})
        progress("quantizing")
        qt.quantize(ranges, enable_progress_bar=False, enable_progress_report=False).export_model(
            str(target)
        )


class _Counted:
    """Calibration samples that report how far a pass through them has come (ai-edge-quantizer
    makes two: a quick one to count them, then the calibration)."""

    def __init__(self, samples: List[Dict[str, Any]], progress: Callable[..., None]) -> None:
        self.samples = samples
        self.progress = progress

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for done, sample in enumerate(self.samples):
            self.progress("calibrating", done, len(self.samples))
            yield sample
        self.progress("calibrating", len(self.samples), len(self.samples))


def _calibration(
    source: Path, calib: Any, shapes: Mapping[str, Any]
) -> Dict[str, List[Dict[str, Any]]]:
    """Samples keyed the way ai-edge-quantizer wants them: by signature, then input name."""
    interpreter = Interpreter(model_path=str(source))
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise BuildError(_NO_SIGNATURE)
    key = next(iter(signatures))
    names = signatures[key]["inputs"]
    if len(names) != 1:
        raise BuildError("static calibration supports models with one input, not %d" % len(names))
    details = interpreter.get_signature_runner(key).get_input_details()[names[0]]
    shape = shapes.get(details["name"]) or tuple(details["shape"])
    return {key: [{names[0]: b} for b in calibration_batches(calib, shape, names[0])]}


def inspect(path: Path) -> Dict[str, Any]:
    """Parameters (elements of constant tensors; quantization scales live outside them) and
    sparsity (the fraction of zeros among float and int8 constants of rank >= 2)."""
    model = flatbuffer_utils.read_model(str(path))
    parameters = weights = zeros = 0
    seen = set()
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            shape = list(tensor.shape if tensor.shape is not None else [])
            if data is None or not len(data) or not shape or tensor.buffer in seen:
                continue
            seen.add(tensor.buffer)
            parameters += int(np.prod(shape))
            if len(shape) >= 2 and tensor.type in _WEIGHT_DTYPES:
                values = np.frombuffer(bytes(data), dtype=_WEIGHT_DTYPES[tensor.type])
                weights += values.size
                zeros += values.size - int(np.count_nonzero(values))
    return {"parameters": parameters, "sparsity": zeros / weights if weights else 0.0}


def inputs(path: Path) -> List[Input]:
    """The interpreter's inputs; dims its shape signature marks -1 are dynamic (None)."""
    return [
        Input(
            d["name"],
            tuple(int(n) if n >= 0 else None for n in d.get("shape_signature", d["shape"])),
            np.dtype(d["dtype"]).name,
        )
        for d in Interpreter(model_path=str(path)).get_input_details()
    ]


def census(path: Path) -> Dict[str, Any]:
    """Constant tensors by dtype and ops by type, read from the flatbuffer, and zeros among
    the weights (rank >= 2)."""
    model = flatbuffer_utils.read_model(str(path))
    tensors: Counter = Counter()
    ops: Counter = Counter()
    zeros = 0
    seen = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            ops[_OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")] += 1
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            if data is None or not len(data) or tensor.buffer in seen:
                continue
            seen.add(tensor.buffer)
            tensors[_TYPE_NAMES.get(tensor.type, str(tensor.type))] += 1
            shape = list(tensor.shape if tensor.shape is not None else [])
            if len(shape) >= 2 and tensor.type in _WEIGHT_DTYPES:
                values = np.frombuffer(bytes(data), dtype=_WEIGHT_DTYPES[tensor.type])
                zeros += values.size - int(np.count_nonzero(values))
    return {
        "tensors": dict(sorted(tensors.items())),
        "ops": dict(sorted(ops.items())),
        "zeros": zeros,
    }


def unchanged(step: Step, source: Path) -> str:
    """Why ai-edge-quantizer left ``source`` as it was, and what to do instead."""
    found = census(source)
    signed = bool(Interpreter(model_path=str(source)).get_signature_list())
    return (
        "ai-edge-quantizer converted no weight (ops: %s; constant tensors: %s)%s; quantize the "
        "source model when converting it to TFLite, or build variants of its ONNX form"
        % (
            ", ".join(found["ops"]) or "none",
            ", ".join("%s %d" % kv for kv in found["tensors"].items()) or "none",
            "" if signed else ", and the model has no signature, which it works through",
        )
    )
