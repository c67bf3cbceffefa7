"""Write TFLite flatbuffers directly, without TensorFlow.

A thin helper over the object API in ``ai_edge_litert.schema_py_generated`` and the
``flatbuffers`` package::

    w = TFLiteWriter()
    x = w.add_tensor("input", [1, 8, 8, 1], np.float32)
    k = w.add_tensor("conv/w", data=kernel_ohwi)             # constant: buffer made for you
    b = w.add_tensor("conv/b", data=bias)
    y = w.add_tensor("conv/out", [1, 8, 8, 16], np.float32)
    w.add_operator("CONV_2D", [x, k, b], [y],
                   conv2d_options(padding="SAME", stride=1, activation="RELU"))
    w.set_io([x], [y])
    w.save("model.tflite")

Quantized tensors take ``scale=`` / ``zero_point=`` (scalars for per-tensor, sequences for
per-axis with ``quantized_dimension=``). Buffer 0 is always the empty sentinel buffer and
constant data is 16-byte aligned in the file, as the official converter does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = [
    "TFLiteWriter",
    "conv2d_options",
    "depthwise_conv2d_options",
    "fully_connected_options",
    "pool2d_options",
    "reshape_options",
    "add_options",
    "reducer_options",
    "pad_options",
]

_TFL_TYPES = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.float16): schema.TensorType.FLOAT16,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int64): schema.TensorType.INT64,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.int16): schema.TensorType.INT16,
    np.dtype(np.bool_): schema.TensorType.BOOL,
}

_ACTIVATIONS = {
    None: schema.ActivationFunctionType.NONE,
    "NONE": schema.ActivationFunctionType.NONE,
    "RELU": schema.ActivationFunctionType.RELU,
    "RELU6": schema.ActivationFunctionType.RELU6,
    "RELU_N1_TO_1": schema.ActivationFunctionType.RELU_N1_TO_1,
}

_PADDING = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}

# schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES: codes above it live only in
# OperatorCode.builtin_code; older readers look at deprecated_builtin_code.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def _activation(name):
    if isinstance(name, int):
        return name
    return _ACTIVATIONS[name.upper() if isinstance(name, str) else name]


def _padding(name):
    return name if isinstance(name, int) else _PADDING[name.upper()]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ---------------------------------------------------------------------------- options
def conv2d_options(padding="SAME", stride=1, activation=None, dilation=1):
    o = schema.Conv2DOptionsT()
    o.padding = _padding(padding)
    o.strideH, o.strideW = _pair(stride)
    o.dilationHFactor, o.dilationWFactor = _pair(dilation)
    o.fusedActivationFunction = _activation(activation)
    return o


def depthwise_conv2d_options(
    padding="SAME", stride=1, depth_multiplier=1, activation=None, dilation=1
):
    o = schema.DepthwiseConv2DOptionsT()
    o.padding = _padding(padding)
    o.strideH, o.strideW = _pair(stride)
    o.dilationHFactor, o.dilationWFactor = _pair(dilation)
    o.depthMultiplier = depth_multiplier
    o.fusedActivationFunction = _activation(activation)
    return o


def fully_connected_options(activation=None, keep_num_dims=False):
    o = schema.FullyConnectedOptionsT()
    o.fusedActivationFunction = _activation(activation)
    o.keepNumDims = keep_num_dims
    return o


def pool2d_options(filter_size, padding="VALID", stride=1, activation=None):
    o = schema.Pool2DOptionsT()
    o.padding = _padding(padding)
    o.strideH, o.strideW = _pair(stride)
    o.filterHeight, o.filterWidth = _pair(filter_size)
    o.fusedActivationFunction = _activation(activation)
    return o


def reshape_options(new_shape: Sequence[int]):
    o = schema.ReshapeOptionsT()
    o.newShape = [int(d) for d in new_shape]
    return o


def add_options(activation=None):
    o = schema.AddOptionsT()
    o.fusedActivationFunction = _activation(activation)
    return o


def reducer_options(keep_dims=False):
    o = schema.ReducerOptionsT()
    o.keepDims = keep_dims
    return o


def pad_options():
    return schema.PadOptionsT()


class _AlignedBufferT(schema.BufferT):
    """BufferT whose data vector starts on a 16-byte boundary of the final file."""

    ALIGNMENT = 16

    def Pack(self, builder):
        data = None
        if self.data is not None:
            raw = np.ascontiguousarray(self.data).view(np.uint8).reshape(-1).tobytes()
            builder.StartVector(1, len(raw), self.ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head : builder.head + len(raw)] = raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


class TFLiteWriter:
    """Accumulates buffers, tensors and operators of a single-subgraph TFLite model."""

    def __init__(self, description: str = "edgebench tflite_writer", subgraph_name: str = "main"):
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.description = description
        self.model.buffers = [_AlignedBufferT()]  # buffer 0: the empty sentinel
        self.model.operatorCodes = []
        self.subgraph = schema.SubGraphT()
        self.subgraph.name = subgraph_name
        self.subgraph.tensors = []
        self.subgraph.operators = []
        self.subgraph.inputs = []
        self.subgraph.outputs = []
        self.model.subgraphs = [self.subgraph]
        self._opcode_index: dict[tuple[int, int], int] = {}
        self._names: set[str] = set()

    # -- buffers and tensors -------------------------------------------------------
    def add_buffer(self, data: np.ndarray | bytes | None = None) -> int:
        """Adds a buffer (raw little-endian bytes of ``data``) and returns its index."""
        buf = _AlignedBufferT()
        if data is not None:
            if isinstance(data, (bytes, bytearray)):
                data = np.frombuffer(bytes(data), dtype=np.uint8)
            arr = np.ascontiguousarray(data)
            if arr.dtype.byteorder == ">":
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            buf.data = arr.view(np.uint8).reshape(-1)
        self.model.buffers.append(buf)
        return len(self.model.buffers) - 1

    def add_tensor(
        self,
        name: str,
        shape: Sequence[int] | None = None,
        dtype=None,
        *,
        data: np.ndarray | None = None,
        scale: float | Sequence[float] | None = None,
        zero_point: int | Sequence[int] | None = None,
        quantized_dimension: int = 0,
        shape_signature: Sequence[int] | None = None,
    ) -> int:
        """Adds a tensor and returns its index.

        With ``data`` the tensor is a constant (shape and dtype default to the array's).
        Without it the tensor is an activation (or a graph input/output). ``scale`` and
        ``zero_point`` attach quantization parameters; ``shape_signature`` marks dynamic
        dims with -1.
        """
        if name in self._names:
            raise ValueError(f"duplicate tensor name {name!r}")
        self._names.add(name)
        if data is not None:
            data = np.asarray(data)
            if dtype is not None and np.dtype(dtype) != data.dtype:
                data = data.astype(dtype)
            dtype = data.dtype
            if shape is None:
                shape = data.shape
            elif int(np.prod(shape)) != data.size:
                raise ValueError(f"{name}: shape {shape} does not match data {data.shape}")
        if shape is None or dtype is None:
            raise ValueError(f"{name}: shape and dtype are required without data")
        t = schema.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = _TFL_TYPES[np.dtype(dtype)]
        t.buffer = self.add_buffer(data) if data is not None else self.add_buffer()
        if shape_signature is not None:
            t.shapeSignature = [int(d) for d in shape_signature]
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(np.asarray(scale, dtype=np.float64))]
            zp = 0 if zero_point is None else zero_point
            zp = [int(z) for z in np.atleast_1d(np.asarray(zp, dtype=np.int64))]
            if len(zp) == 1 and len(q.scale) > 1:
                zp = zp * len(q.scale)
            q.zeroPoint = zp
            q.quantizedDimension = int(quantized_dimension)
            t.quantization = q
        self.subgraph.tensors.append(t)
        return len(self.subgraph.tensors) - 1

    def tensor(self, index: int) -> schema.TensorT:
        return self.subgraph.tensors[index]

    # -- operators -----------------------------------------------------------------
    def _opcode(self, op: str | int, version: int) -> int:
        code = getattr(schema.BuiltinOperator, op) if isinstance(op, str) else int(op)
        key = (code, version)
        if key not in self._opcode_index:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = version
            self.model.operatorCodes.append(oc)
            self._opcode_index[key] = len(self.model.operatorCodes) - 1
        return self._opcode_index[key]

    def add_operator(
        self,
        op: str | int,
        inputs: Iterable[int],
        outputs: Iterable[int],
        options=None,
        version: int = 1,
    ) -> int:
        """Adds a builtin operator (name as in ``BuiltinOperator``, e.g. "CONV_2D").

        ``options`` is a ``schema.*OptionsT`` object (see the ``*_options`` helpers); its
        union type is derived from the class name. Use -1 in ``inputs`` for an omitted
        optional input.
        """
        o = schema.OperatorT()
        o.opcodeIndex = self._opcode(op, version)
        o.inputs = [int(i) for i in inputs]
        o.outputs = [int(i) for i in outputs]
        if options is not None:
            type_name = type(options).__name__
            if type_name.endswith("T"):
                type_name = type_name[:-1]
            o.builtinOptionsType = getattr(schema.BuiltinOptions, type_name)
            o.builtinOptions = options
        self.subgraph.operators.append(o)
        return len(self.subgraph.operators) - 1

    def set_io(
        self,
        inputs: Sequence[int],
        outputs: Sequence[int],
        signature_key: str | None = "serving_default",
    ) -> None:
        """Declares graph inputs/outputs (and a signature def named after the tensors)."""
        self.subgraph.inputs = [int(i) for i in inputs]
        self.subgraph.outputs = [int(i) for i in outputs]
        if signature_key:
            sig = schema.SignatureDefT()
            sig.signatureKey = signature_key
            sig.subgraphIndex = 0
            sig.inputs, sig.outputs = [], []
            for idxs, dest in ((inputs, sig.inputs), (outputs, sig.outputs)):
                for i in idxs:
                    m = schema.TensorMapT()
                    m.name = self.subgraph.tensors[i].name
                    m.tensorIndex = int(i)
                    dest.append(m)
            self.model.signatureDefs = [sig]

    # -- output --------------------------------------------------------------------
    def finish(self) -> bytes:
        if not self.subgraph.inputs or not self.subgraph.outputs:
            raise ValueError("call set_io() before finish()")
        builder = flatbuffers.Builder(1024)
        packed = self.model.Pack(builder)
        builder.Finish(packed, file_identifier=b"TFL3")
        return bytes(builder.Output())

    def save(self, path: str | Path) -> int:
        data = self.finish()
        Path(path).write_bytes(data)
        return len(data)
