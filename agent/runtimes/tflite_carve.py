"""Single-op TFLite models carved out of a model's flatbuffer, with the standard library.

A flatbuffer refers forward only (unsigned offsets, each relative to where it is stored),
so a new ``Model`` and ``SubGraph`` placed *in front of* the original bytes can point into
them unchanged: the carved model is a small prefix -- a model whose first subgraph runs one
operator of the original's first subgraph, with that operator's non-constant inputs as the
model's inputs and its outputs as the outputs -- followed by the original file, which
keeps every tensor, buffer, operator code and other subgraph where the prefix points.  The
prefix is padded to a multiple of 64 bytes so buffers keep their alignment.  Models whose
buffers live outside the flatbuffer (``Buffer.offset``, files over 2 GB) are not carved.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Optional, Tuple

ALIGN = 64
IDENTIFIER = b"TFL3"


class CarveError(ValueError):
    """The file is not a TFLite flatbuffer this module can carve."""


class Flat:
    """Read access to a flatbuffer's tables, vectors and scalars by absolute position."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 8 or data[4:8] != IDENTIFIER:
            raise CarveError("not a TFLite flatbuffer")
        self.data = data

    def u32(self, pos: int) -> int:
        if pos < 0 or pos + 4 > len(self.data):
            raise CarveError("offset out of range")
        return int(struct.unpack_from("<I", self.data, pos)[0])

    def i32(self, pos: int) -> int:
        return int(struct.unpack_from("<i", self.data, pos)[0])

    def ref(self, pos: int) -> int:
        """The position an unsigned offset stored at ``pos`` points at."""
        return pos + self.u32(pos)

    def field(self, table: int, index: int) -> Optional[int]:
        """Absolute position of field ``index`` of the table at ``table``, if present."""
        vtable = table - self.i32(table)
        if vtable < 0 or vtable + 4 > len(self.data):
            raise CarveError("bad vtable")
        size = struct.unpack_from("<H", self.data, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > size:
            return None
        offset = struct.unpack_from("<H", self.data, vtable + slot)[0]
        return table + offset if offset else None

    def table(self, table: int, index: int) -> Optional[int]:
        pos = self.field(table, index)
        return None if pos is None else self.ref(pos)

    def vector(self, table: int, index: int) -> Tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) if absent."""
        pos = self.table(table, index)
        return (0, 0) if pos is None else (pos + 4, self.u32(pos))

    def tables(self, table: int, index: int) -> List[int]:
        start, n = self.vector(table, index)
        return [self.ref(start + 4 * i) for i in range(n)]

    def ints(self, table: int, index: int) -> List[int]:
        start, n = self.vector(table, index)
        return [self.i32(start + 4 * i) for i in range(n)]

    def string(self, table: int, index: int) -> Optional[str]:
        pos = self.table(table, index)
        if pos is None:
            return None
        return self.data[pos + 4 : pos + 4 + self.u32(pos)].decode("utf-8", "replace")

    def scalar_u32(self, table: int, index: int, default: int = 0) -> int:
        pos = self.field(table, index)
        return default if pos is None else self.u32(pos)


# field indices of the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs)
MODEL_VERSION, MODEL_OPCODES, MODEL_SUBGRAPHS, MODEL_BUFFERS = 0, 1, 2, 4
SG_TENSORS, SG_INPUTS, SG_OUTPUTS, SG_OPERATORS = 0, 1, 2, 3
OP_OPCODE, OP_INPUTS, OP_OUTPUTS = 0, 1, 2
TENSOR_BUFFER = 2
CODE_CUSTOM = 1
BUFFER_DATA, BUFFER_OFFSET = 0, 1


class Model:
    """The parts of a TFLite model that carving needs: its first subgraph's operators,
    their inputs and outputs, and which tensors are constants."""

    def __init__(self, data: bytes) -> None:
        self.flat = flat = Flat(data)
        self.root = flat.ref(0)
        self.subgraphs = flat.tables(self.root, MODEL_SUBGRAPHS)
        if not self.subgraphs:
            raise CarveError("the model has no subgraph")
        buffers = flat.tables(self.root, MODEL_BUFFERS)
        if any(flat.scalar_u32(b, BUFFER_OFFSET) > 1 for b in buffers):
            raise CarveError("the model keeps its weights outside the flatbuffer")
        filled = [flat.vector(b, BUFFER_DATA)[1] > 0 for b in buffers]
        graph = self.subgraphs[0]
        self.tensor_count = flat.vector(graph, SG_TENSORS)[1]
        self.constant = [
            0 < flat.scalar_u32(t, TENSOR_BUFFER) < len(filled)
            and filled[flat.scalar_u32(t, TENSOR_BUFFER)]
            for t in flat.tables(graph, SG_TENSORS)
        ]
        self.operators = flat.tables(graph, SG_OPERATORS)
        self.op_inputs = [flat.ints(op, OP_INPUTS) for op in self.operators]
        self.op_outputs = [flat.ints(op, OP_OUTPUTS) for op in self.operators]
        codes = [flat.string(c, CODE_CUSTOM) for c in flat.tables(self.root, MODEL_OPCODES)]
        # each operator's custom code (``edgetpu-custom-op``), None for a builtin one
        self.op_custom = [
            codes[i] if 0 <= i < len(codes) else None
            for i in (flat.scalar_u32(op, OP_OPCODE) for op in self.operators)
        ]

    def carve_inputs(self, op: int) -> List[int]:
        """The tensors operator ``op`` reads that the carved model must be fed."""
        seen: Dict[int, None] = {}
        for t in self.op_inputs[op]:
            if 0 <= t < self.tensor_count and not self.constant[t]:
                seen[t] = None
        return list(seen)

    def carve(self, op: int) -> bytes:
        """A model running operator ``op`` of the first subgraph alone."""
        flat = self.flat
        p = _Prefix()
        root_ref = p.slot()
        p.buf += IDENTIFIER
        # Model: version, operator_codes, subgraphs, buffers
        model = p.table(
            [
                (MODEL_VERSION, ("u32", flat.scalar_u32(self.root, MODEL_VERSION, 3))),
                (MODEL_OPCODES, ("orig", flat.table(self.root, MODEL_OPCODES))),
                (MODEL_SUBGRAPHS, ("local", "subgraphs")),
                (MODEL_BUFFERS, ("orig", flat.table(self.root, MODEL_BUFFERS))),
            ]
        )
        p.refs[root_ref] = ("abs", model)
        p.label("subgraphs")
        p.vector_of_refs([("local", "graph")] + [("orig", g) for g in self.subgraphs[1:]])
        p.labels["graph"] = p.table(
            [
                (SG_TENSORS, ("orig", flat.table(self.subgraphs[0], SG_TENSORS))),
                (SG_INPUTS, ("local", "inputs")),
                (SG_OUTPUTS, ("local", "outputs")),
                (SG_OPERATORS, ("local", "operators")),
            ]
        )
        p.label("inputs")
        p.ints(self.carve_inputs(op))
        p.label("outputs")
        p.ints([t for t in self.op_outputs[op] if t >= 0])
        p.label("operators")
        p.vector_of_refs([("orig", self.operators[op])])
        return p.finish(flat.data)


class _Prefix:
    """The bytes in front of the original file, with offsets resolved at the end."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.refs: Dict[int, Tuple[str, object]] = {}  # slot position -> target
        self.labels: Dict[str, int] = {}

    def align(self, n: int = 4) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def slot(self, target: Tuple[str, object] = ("abs", 0)) -> int:
        pos = len(self.buf)
        self.buf += b"\0\0\0\0"
        self.refs[pos] = target
        return pos

    def label(self, name: str) -> None:
        self.align()
        self.labels[name] = len(self.buf)

    def table(self, fields: List[Tuple[int, Tuple[str, object]]]) -> int:
        """A table of 4-byte fields; its vtable right before it.  Returns its position."""
        fields = [f for f in fields if f[1] != ("orig", None)]  # absent in the original
        count = max(index for index, _ in fields) + 1
        vt_size = 4 + 2 * count
        self.align()
        if (len(self.buf) + vt_size) % 4:
            self.buf += b"\0\0"
        offsets = [0] * count
        for i, (index, _) in enumerate(fields):
            offsets[index] = 4 + 4 * i
        self.buf += struct.pack("<HH", vt_size, 4 + 4 * len(fields))
        self.buf += struct.pack("<%dH" % count, *offsets)
        table = len(self.buf)
        self.buf += struct.pack("<i", vt_size)  # the vtable lies vt_size bytes before
        for _, (kind, value) in fields:
            if kind == "u32":
                self.buf += struct.pack("<I", int(value))  # type: ignore[call-overload]
            else:
                self.slot((kind, value))
        return table

    def ints(self, values: List[int]) -> None:
        self.buf += struct.pack("<I%di" % len(values), len(values), *values)

    def vector_of_refs(self, targets: List[Tuple[str, object]]) -> None:
        self.buf += struct.pack("<I", len(targets))
        for target in targets:
            self.slot(target)

    def finish(self, original: bytes) -> bytes:
        self.buf += b"\0" * (-len(self.buf) % ALIGN)
        size = len(self.buf)
        for pos, (kind, value) in self.refs.items():
            if kind == "orig":
                target = size + int(value)  # type: ignore[call-overload]
            elif kind == "local":
                target = self.labels[str(value)]
            else:
                target = int(value)  # type: ignore[call-overload]
            struct.pack_into("<I", self.buf, pos, target - pos)
        return bytes(self.buf) + original
