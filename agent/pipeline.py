"""The on-device pipeline: the user's pre- and post-processing around the model, timed per stage.

A plan names ``pre: prep.py:preprocess`` (and optionally ``post: prep.py:postprocess``) and
raw inputs.  The code file is sent like a model; here it runs only from the bytes whose
sha256 was checked (never imported from a path that could change in between, and no
bytecode is written).  ``preprocess(raw)`` gets one raw sample (a numpy array) and returns
the model's input (an array, or a dict of input name -> array); ``postprocess(outputs)``
gets the model's outputs (a list of float arrays, dequantized) and returns the class index
(or scores, whose argmax is taken).  Without ``post`` the class is the first output's argmax.

Raw inputs are an ``.npz`` (its ``inputs`` rows, ``labels`` if any) or a ``.zip`` the harness
packs from a folder: ``.npy`` files and 8-bit PNGs (greyscale, RGB, with or without alpha,
non-interlaced; decoded here with zlib + numpy), labelled by their subfolder's name when it
is a class number.  They are decoded before timing; each timed iteration takes the next
sample through pre, inference and post.
"""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zipfile
from array import array
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .faults import Fault
from .stats import summarize

REASON = "pipeline-failed"
STAGES = ("pre", "infer", "post")
perf_ns = time.perf_counter_ns


def read_png(data: bytes, name: str = "image") -> Any:
    """An 8-bit, non-interlaced PNG as a uint8 array (H, W) or (H, W, C)."""
    import zlib

    import numpy as np

    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s is not a PNG file" % name)
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("%s has no PNG header" % name)
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(
            "%s: only 8-bit, non-interlaced greyscale/RGB(A) PNGs are read "
            "(bit depth %d, colour type %d, interlace %d); use .npy"
            % (name, depth, color, interlace)
        )
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) & 0xFF
        else:  # sub, average, paeth depend on the bytes just decoded: one at a time
            cur = line.copy()
            for x in range(stride):
                a = int(cur[x - channels]) if x >= channels else 0
                b = int(prev[x])
                c = int(prev[x - channels]) if x >= channels else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) // 2
                elif kind == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                else:
                    raise ValueError("%s: bad PNG filter type %d" % (name, kind))
                cur[x] = (cur[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    image = out.astype(np.uint8)
    return image.reshape(height, width) if channels == 1 else image.reshape(height, width, channels)


def _decode(name: str, data: bytes) -> Any:
    import numpy as np

    if name.lower().endswith(".npy"):
        return np.load(io.BytesIO(data), allow_pickle=False)
    return read_png(data, name)


def load_inputs(path: str) -> Tuple[List[Any], Optional[List[int]]]:
    """The raw samples and their labels (None when there are none)."""
    import numpy as np

    try:
        if path.lower().endswith(".npz"):
            with np.load(path, allow_pickle=False) as data:
                if "inputs" not in data.files:
                    raise ValueError("it has no 'inputs' array")
                inputs = list(data["inputs"])
                labels = data["labels"].tolist() if "labels" in data.files else None
        else:
            inputs, found = [], []
            with zipfile.ZipFile(path) as zf:
                for name in sorted(zf.namelist()):
                    if name.endswith("/") or not name.lower().endswith((".npy", ".png")):
                        continue
                    inputs.append(_decode(name, zf.read(name)))
                    folder = name.rsplit("/", 1)[0] if "/" in name else ""
                    found.append(int(folder) if folder.isdigit() else None)
            labels = found if found and all(x is not None for x in found) else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise Fault(
            "input-invalid", "cannot read the pipeline inputs %s: %s" % (path, exc)
        ) from None
    if not inputs:
        raise Fault("input-invalid", "the pipeline inputs %s hold no .npy or .png samples" % path)
    return inputs, labels


def _load_code(path: str, sha256: Optional[str], entries: List[str]) -> List[Callable[..., Any]]:
    """The named functions of the code file, run from the bytes that were checked."""
    try:
        with open(path, "rb") as fh:
            code = fh.read()
    except OSError as exc:
        raise Fault(
            "transfer-failed", "cannot read the pipeline code %s: %s" % (path, exc)
        ) from None
    got = hashlib.sha256(code).hexdigest()
    if sha256 and got != sha256:
        raise Fault(
            "transfer-failed",
            "the pipeline code %s has sha256 %s..., not the %s... that was sent; not run"
            % (path, got[:16], sha256[:16]),
        )
    label = entries[0].rsplit(":", 1)[0]
    namespace: Dict[str, Any] = {"__name__": "edgebench_pipeline", "__file__": label}
    try:
        exec(compile(code, label, "exec"), namespace)
    except (Exception, SystemExit) as exc:  # the user's module failing at import
        raise Fault(REASON, "%s failed to load: %s" % (label, _why(exc))) from None
    funcs = []
    for entry in entries:
        func = namespace.get(entry.rsplit(":", 1)[-1])
        if not callable(func):
            raise Fault(REASON, "%s: no function %r" % (label, entry.rsplit(":", 1)[-1]))
        funcs.append(func)
    return funcs


def _layout(x: Any, spec: Any) -> Any:
    """``x`` in the input's layout: NCHW and NHWC are told apart as for eval sets."""
    import numpy as np

    from .tensors import fit_layout

    x = np.asarray(x)
    if x.ndim != 4 or not all(isinstance(d, int) and d > 0 for d in spec.shape):
        return x
    return fit_layout(x, tuple(spec.shape), spec.name)[0]


def _why(exc: BaseException) -> str:
    return "%s: %s" % (type(exc).__name__, " ".join(str(exc).split()))


class Pipeline:
    def __init__(self, spec: Mapping[str, Any], model: Any) -> None:
        self.spec = spec
        self.model = model
        entries = [spec["pre"]] + ([spec["post"]] if spec.get("post") else [])
        funcs = _load_code(spec["code"], spec.get("code_sha256"), entries)
        self.pre = funcs[0]
        self.post: Optional[Callable[..., Any]] = funcs[1] if len(funcs) > 1 else None
        self.inputs, self.labels = load_inputs(spec["inputs"])

    def _user(self, stage: str, func: Callable[..., Any], arg: Any, k: int) -> Any:
        try:
            return func(arg)
        except Exception as exc:
            raise Fault(
                REASON, "%s raised on sample %d: %s" % (self.spec[stage], k, _why(exc))
            ) from None

    def _feeds(self, x: Any) -> Dict[str, Any]:
        from .tensors import quantize

        specs = {s.name: s for s in self.model.inputs}
        given = x if isinstance(x, Mapping) else {self.model.inputs[0].name: x}
        unknown = sorted(set(given) - set(specs))
        if unknown:
            raise Fault(
                REASON, "%s returned inputs the model lacks: %s" % (self.spec["pre"], unknown)
            )
        return {
            name: quantize(_layout(value, specs[name]), specs[name])
            for name, value in given.items()
        }

    def _stage_pre(self, k: int) -> Dict[str, Any]:
        return self._feeds(self._user("pre", self.pre, self.inputs[k % len(self.inputs)], k))

    def _stage_post(self, outputs: List[Any], k: int) -> Any:
        from .tensors import dequantize

        floats = [dequantize(y, spec) for y, spec in zip(outputs, self.model.outputs)]
        if self.post is None:
            return floats[0]
        return self._user("post", self.post, floats, k)

    def check(self) -> None:
        """One sample through every stage, before the timed window: what would fail later
        fails now."""
        self._stage_post(self.model.infer(self._stage_pre(0)), 0)

    def measure(self, settings: Any, measure: Callable[..., Tuple[int, str]]) -> Dict[str, Any]:
        """Every stage timed per iteration, stopped by the timed window's own rule on the
        end-to-end time; then the accuracy of the pipeline's output."""
        cap = settings.max_iterations
        bufs = {stage: array("q", bytes(8 * cap)) for stage in STAGES}
        total = array("q", bytes(8 * cap))
        pre, infer, post = (bufs[s] for s in STAGES)
        count = [0]

        def step() -> None:
            k = count[0]
            t0 = perf_ns()
            feeds = self._stage_pre(k)
            t1 = perf_ns()
            outputs = self.model.infer(feeds)
            t2 = perf_ns()
            self._stage_post(outputs, k)
            t3 = perf_ns()
            pre[k], infer[k], post[k] = t1 - t0, t2 - t1, t3 - t2
            count[0] = k + 1

        for _ in range(min(settings.warmup_iterations, len(self.inputs), cap)):
            step()
        count[0] = 0
        n, stopped_by = measure(
            step,
            total,
            settings.min_iterations,
            settings.min_seconds,
            settings.max_seconds,
            settings.target_precision,
        )
        samples = {s: bufs[s][:n].tolist() for s in STAGES}
        samples["end_to_end"] = total[:n].tolist()
        out: Dict[str, Any] = {
            "pre": self.spec["pre"],
            "post": self.spec.get("post"),
            "inputs": len(self.inputs),
            "stopped_by": stopped_by,
            "stages": {s: summarize(v) for s, v in samples.items()},
            "samples_ns": samples,
        }
        out["accuracy"] = self.accuracy()
        return out

    def accuracy(self) -> Dict[str, Any]:
        """Top-1 of the pipeline's output over every raw sample that has a label."""
        import numpy as np

        if self.labels is None:
            return {"n": len(self.inputs), "top1": None}
        hits = 0
        for k, label in enumerate(self.labels):
            result = np.asarray(self._stage_post(self.model.infer(self._stage_pre(k)), k))
            pred = int(result.reshape(-1)[0]) if result.size == 1 else int(np.argmax(result))
            hits += pred == int(label)
        return {"n": len(self.labels), "top1": hits / len(self.labels)}
