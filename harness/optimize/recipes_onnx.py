"""ONNX recipes: float16, int8 (dynamic, and static QDQ calibrated on a calibration set) with
``onnxruntime.quantization``, and magnitude pruning.

Static int8 defaults to uint8 activations with int8 per-channel weights (U8S8): on x86 with
VNNI, onnxruntime runs that about 1.7x faster than S8S8 for MobileNetV2, whose QDQ graph
otherwise has to be converted at load time; ``Options.activations = "int8"`` gives S8S8, which
can suit ARM boards better.  Weights are symmetric, so pruned zeros stay zero when quantized.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import onnx
from onnx import numpy_helper

from .variants import BuildError, Input, Options, Step, calibration_batches

# Inputs (by position) that hold quantization scales and zero points, not parameters.
_QUANT_PARAM_SLOTS = {
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "ConvInteger": (2, 3),
    "MatMulInteger": (2, 3),
}
_QUANT_OPS = frozenset(_QUANT_PARAM_SLOTS) | {
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
}
_PRUNE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


@contextlib.contextmanager
def _scratch_cwd(near: Path) -> Iterator[None]:
    """Run in a scratch folder beside ``near``: onnxruntime's symbolic shape inference
    dumps ``sym_shape_infer_temp.onnx`` and its external data into the current directory
    when it fails, which must not litter the user's."""
    scratch = tempfile.mkdtemp(dir=str(near), prefix=".preprocess-")
    previous = os.getcwd()
    os.chdir(scratch)
    try:
        yield
    finally:
        os.chdir(previous)
        shutil.rmtree(scratch, ignore_errors=True)


def tools() -> Dict[str, str]:
    import onnxruntime

    return {
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }


def check(path: Path) -> None:
    """The model parses and passes the ONNX checker."""
    try:
        onnx.checker.check_model(onnx.load(str(path)))
    except Exception as exc:  # protobuf, checker and OS errors alike mean "unusable"
        raise BuildError(
            "%s: not a valid ONNX model (%s)"
            % (path, " ".join(str(exc).split())[:200] or type(exc).__name__)
        ) from None


def verify(path: Path) -> None:
    """The built file loads in onnxruntime on the CPU, as the boards will load it."""
    import onnxruntime

    try:
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BuildError(
            "the result does not load in onnxruntime (%s)" % " ".join(str(exc).split())[:300]
        ) from None


def settings(step: Step, options: Options) -> Dict[str, Any]:
    """What the step does beyond its name, recorded in the recipe (and so in the cache key)."""
    if step.kind == "fp16":
        return {"tool": "onnxruntime.transformers.float16", "keep_io_types": True}
    if step.kind == "int8-dynamic":
        return {
            "tool": "onnxruntime.quantization.quantize_dynamic",
            "preprocess": True,
            "weights": "int8 symmetric per-tensor",
            "activations": "uint8 at run time",
        }
    if step.kind == "int8-static":
        return {
            "tool": "onnxruntime.quantization.quantize_static",
            "preprocess": True,
            "format": "QDQ",
            "weights": "int8 symmetric per-channel",
            "activations": options.activations,
            "calib_method": step.method or options.calib_method,
        }
    return {"sparsity": step.sparsity, "scope": options.prune_scope, "ops": list(_PRUNE_OPS)}


def apply(
    source: Path,
    target: Path,
    step: Step,
    recipe: Mapping[str, Any],
    calib: Optional[Any],
    progress: Callable[..., None],
) -> None:
    """Write ``target`` from ``source``; intermediate files go next to ``target``.
    ``progress(text[, done, total])`` hears about the long parts."""
    if step.kind == "fp16":
        _fp16(source, target)
    elif step.kind == "prune":
        _prune(source, target, float(recipe["sparsity"]), str(recipe["scope"]))
    else:
        _quantize(source, target, step.kind, recipe, calib, progress)


def inspect(path: Path) -> Dict[str, Any]:
    """Parameters (constant elements, without quantization scales and zero points) and
    sparsity (the fraction of zeros among weight tensors, i.e. constants of rank >= 2)."""
    model = onnx.load(str(path))
    skip = {
        node.input[i]
        for node in model.graph.node
        for i in _QUANT_PARAM_SLOTS.get(node.op_type, ())
        if i < len(node.input)
    }
    parameters = weights = zeros = 0
    for name, array in _constants(model.graph):
        if name in skip or array.ndim == 0:
            continue
        parameters += array.size
        if array.ndim >= 2:
            weights += array.size
            zeros += array.size - int(np.count_nonzero(array))
    return {"parameters": parameters, "sparsity": zeros / weights if weights else 0.0}


def inputs(path: Path) -> List[Input]:
    """The graph's inputs (initializers aside), with their dims and dtypes."""
    graph = onnx.load(str(path)).graph
    initializers = {t.name for t in graph.initializer}
    return [
        Input(
            i.name,
            tuple(d.dim_value or d.dim_param or None for d in i.type.tensor_type.shape.dim),
            np.dtype(onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)).name,
        )
        for i in graph.input
        if i.name not in initializers
    ]


def census(path: Path) -> Dict[str, Any]:
    """Constant tensors by dtype, ops by type, zeros among the weights (rank >= 2)."""
    model = onnx.load(str(path))
    tensors: Counter = Counter()
    zeros = 0
    for _, array in _constants(model.graph):
        tensors[array.dtype.name] += 1
        if array.ndim >= 2:
            zeros += array.size - int(np.count_nonzero(array))
    ops = Counter(n.op_type for n in model.graph.node)
    return {
        "tensors": dict(sorted(tensors.items())),
        "ops": dict(sorted(ops.items())),
        "zeros": zeros,
    }


def unchanged(step: Step, source: Path) -> str:
    """Why ``step`` left ``source`` as it was, and what to do instead."""
    model = onnx.load(str(source))
    kinds = ", ".join(sorted({a.dtype.name for _, a in _constants(model.graph)})) or "none"
    return "onnxruntime found nothing to convert (constant tensors: %s; ops: %s)%s" % (
        kinds,
        _ops(model),
        "; the model may be converted already" if step.kind != "prune" else "",
    )


def _constants(graph: onnx.GraphProto) -> Iterator[Tuple[str, Any]]:
    for tensor in graph.initializer:
        yield tensor.name, numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    yield node.output[0], numpy_helper.to_array(attr.t)


def _ops(model: onnx.ModelProto) -> str:
    return ", ".join(sorted({n.op_type for n in model.graph.node})) or "none"


def _fp16(source: Path, target: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(target))


def _quantize(
    source: Path,
    target: Path,
    kind: str,
    recipe: Mapping[str, Any],
    calib: Optional[Any],
    progress: Callable[..., None],
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    original = onnx.load(str(source))
    shapes = recipe.get("input_shapes") or {}
    if shapes:  # a copy with the given dims, for shape inference and calibration
        fixed = target.with_name("fixed." + target.name)
        onnx.save(_with_dims(original, shapes), str(fixed))
        source = fixed
    prepared = target.with_name("preprocessed." + target.name)
    progress("preprocessing")
    source, prepared = source.resolve(), prepared.resolve()  # before leaving the cwd
    with _scratch_cwd(target.parent):
        try:
            quant_pre_process(str(source), str(prepared))
        except Exception as exc:  # onnxruntime raises a bare Exception for this
            if "symbolic shape inference" not in str(exc):
                raise
            print("pre-processing without symbolic shape inference: %s" % exc)  # into the log
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    if kind == "int8-dynamic":
        progress("quantizing")
        quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
    else:
        model = onnx.load(str(prepared))
        inputs = [
            i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}
        ]
        if len(inputs) != 1:
            raise BuildError(
                "static calibration supports models with one input, not %d" % len(inputs)
            )
        dims = tuple(
            d.dim_value or d.dim_param or None for d in inputs[0].type.tensor_type.shape.dim
        )
        batches = calibration_batches(calib, dims, inputs[0].name)
        feeds = iter(enumerate(batches))

        class Reader(CalibrationDataReader):
            def get_next(self) -> Optional[Dict[str, Any]]:
                index, batch = next(feeds, (len(batches), None))
                progress("calibrating", index, len(batches))
                return None if batch is None else {inputs[0].name: batch}

        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[recipe["calib_method"]]
        quantize_static(
            str(prepared),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=(
                QuantType.QUInt8 if recipe["activations"] == "uint8" else QuantType.QInt8
            ),
            calibrate_method=method,
        )
    after = onnx.load(str(target))
    if _count(after, _QUANT_OPS) <= _count(original, _QUANT_OPS):
        raise BuildError(
            "onnxruntime quantized no operator of this model (its ops: %s)" % _ops(original)
        )
    if shapes:
        progress("checking the dynamic interface")
        _keep_interface(target, original, shapes)


def _with_dims(model: onnx.ModelProto, shapes: Mapping[str, List[int]]) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs have the given dims (inferred shapes dropped)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name in shapes:
            for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name]):
                dim.dim_value = int(size)  # clears dim_param
    del fixed.graph.value_info[:]
    return fixed


def _keep_interface(target: Path, original: onnx.ModelProto, shapes: Mapping[str, Any]) -> None:
    """Give the quantized model the original's input and output types (dynamic dims back)
    where it then still runs at the given shapes; otherwise it keeps the given dims."""
    import onnxruntime

    model = onnx.load(str(target))
    types = {v.name: v.type for v in list(original.graph.input) + list(original.graph.output)}
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name in types:
            value.type.CopyFrom(types[value.name])
    del model.graph.value_info[:]  # inferred at the given dims
    dynamic = target.with_name("dynamic." + target.name)
    onnx.save(model, str(dynamic))
    try:
        session = onnxruntime.InferenceSession(str(dynamic), providers=["CPUExecutionProvider"])
        session.run(None, {i.name: _zeros(i, shapes) for i in session.get_inputs()})
    except Exception as exc:
        print("the int8 model keeps the given input dims: with dynamic ones it fails (%s)" % exc)
        return
    os.replace(str(dynamic), str(target))


def _zeros(value: Any, shapes: Mapping[str, Any]) -> Any:
    """A feed for an onnxruntime input: the given shape, else its fixed dims (1 if dynamic)."""
    shape = shapes.get(value.name) or [d if isinstance(d, int) else 1 for d in value.shape]
    kind = value.type[len("tensor(") : -1]  # "tensor(float)"
    dtype = {"float": "float32", "double": "float64"}.get(kind, kind)
    return np.zeros(shape, dtype=dtype)


def _count(model: onnx.ModelProto, ops: frozenset) -> int:
    return sum(1 for n in model.graph.node if n.op_type in ops)


def _prunable(model: onnx.ModelProto) -> List[onnx.TensorProto]:
    """Float weight initializers (rank >= 2) feeding Conv, ConvTranspose, Gemm or MatMul."""
    initializers = {t.name: t for t in model.graph.initializer}
    names = dict.fromkeys(
        name
        for node in model.graph.node
        if node.op_type in _PRUNE_OPS
        for name in node.input[:2]
        if name in initializers
    )
    return [
        initializers[n]
        for n in names
        if initializers[n].data_type in _FLOATS and len(initializers[n].dims) >= 2
    ]


def _smallest(magnitudes: Any, count: int) -> Any:
    """A mask of the ``count`` smallest entries of a flat array."""
    mask = np.zeros(magnitudes.size, dtype=bool)
    if count:
        mask[np.argpartition(magnitudes, count - 1)[:count]] = True
    return mask


def _prune(source: Path, target: Path, sparsity: float, scope: str) -> None:
    """Zero the smallest-magnitude weights: ``sparsity`` of all of them together (scope
    "global": layers of small weights lose more) or of each tensor (scope "layer")."""
    model = onnx.load(str(source))
    tensors = _prunable(model)
    if not tensors:
        raise BuildError(
            "nothing to prune: no float weights feed %s (its ops: %s)"
            % ("/".join(_PRUNE_OPS), _ops(model))
        )
    arrays = [numpy_helper.to_array(t) for t in tensors]
    flats = [np.abs(a.astype(np.float32)).ravel() for a in arrays]
    if scope == "global":
        joined = np.concatenate(flats)
        masks = np.split(
            _smallest(joined, int(round(sparsity * joined.size))),
            np.cumsum([f.size for f in flats])[:-1],
        )
    else:
        masks = [_smallest(f, int(round(sparsity * f.size))) for f in flats]
    for tensor, array, mask in zip(tensors, arrays, masks):
        pruned = np.where(mask.reshape(array.shape), np.zeros_like(array), array)
        tensor.CopyFrom(numpy_helper.from_array(pruned, tensor.name))
    onnx.save(model, str(target))
