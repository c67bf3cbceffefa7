"""Model inputs: shape resolution, generated and eval inputs, (de)quantization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .faults import Fault


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Tuple[Any, ...]  # ints; None or a name for a dynamic dimension
    dtype: Any  # numpy dtype
    quant: Optional[Tuple[float, int]] = None  # (scale, zero_point) for integer tensors

    @property
    def dynamic(self) -> List[int]:
        return [i for i, d in enumerate(self.shape) if not isinstance(d, int) or d < 0]


def resolve_shape(spec: TensorSpec, overrides: Mapping[str, Sequence[int]]) -> Tuple[int, ...]:
    """The concrete shape to feed: the model's own, or the job's where dimensions are dynamic."""
    if spec.name in overrides:
        shape = tuple(overrides[spec.name])
        if len(shape) != len(spec.shape):
            raise Fault(
                "input-shape",
                "input %r has rank %d but the given shape %s has rank %d"
                % (spec.name, len(spec.shape), list(shape), len(shape)),
            )
        for i, (want, got) in enumerate(zip(spec.shape, shape)):
            if i not in spec.dynamic and want != got:
                raise Fault(
                    "input-shape",
                    "input %r dimension %d is fixed at %d, not %d" % (spec.name, i, want, got),
                )
        return shape
    if spec.dynamic:
        i = spec.dynamic[0]
        label = spec.shape[i] if isinstance(spec.shape[i], str) else "?"
        raise Fault(
            "input-shape",
            "input %r has a dynamic dimension %d (%s) in shape %s; "
            "give it with --input-shape %s:%s"
            % (
                spec.name,
                i,
                label,
                list(spec.shape),
                spec.name,
                ",".join(str(d) if isinstance(d, int) and d > 0 else "N" for d in spec.shape),
            ),
        )
    return tuple(spec.shape)


def generated(spec: TensorSpec, shape: Tuple[int, ...], rng: np.random.Generator) -> Any:
    """Seeded stand-in data of the right shape and dtype (uniform [0,1) for floats)."""
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return rng.random(shape, dtype=np.float32).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(info.min, -128), min(info.max, 127)
        return rng.integers(low, high + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise Fault(
        "input-invalid", "cannot generate data for input %r of type %s" % (spec.name, dtype)
    )


def quantize(x: Any, spec: TensorSpec) -> Any:
    """Float data into an integer input tensor using its scale and zero point."""
    dtype = np.dtype(spec.dtype)
    if spec.quant is None or dtype.kind not in "iu" or np.asarray(x).dtype.kind != "f":
        return np.asarray(x).astype(dtype, copy=False)
    scale, zero = spec.quant
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float64) / scale) + zero
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(y: Any, spec: TensorSpec) -> Any:
    if spec.quant is None or np.dtype(spec.dtype).kind not in "iu":
        return np.asarray(y, dtype=np.float32)
    scale, zero = spec.quant
    return ((np.asarray(y, dtype=np.float32) - zero) * scale).astype(np.float32)


def fit_layout(x: Any, shape: Tuple[int, ...], name: str) -> Tuple[Any, str]:
    """Match eval samples to the model's layout: as is, or NCHW<->NHWC for rank-4 inputs."""
    sample = tuple(x.shape[1:])
    want = tuple(shape[1:])
    if sample == want:
        return x, ""
    if x.ndim == 4 and (sample[1], sample[2], sample[0]) == want:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)), "nchw->nhwc"
    if x.ndim == 4 and (sample[2], sample[0], sample[1]) == want:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "nhwc->nchw"
    raise Fault(
        "input-invalid",
        "eval samples have shape %s but input %r takes %s" % (list(sample), name, list(want)),
    )


def load_eval(path: str) -> Dict[str, Any]:
    """An eval set: ``inputs`` plus ``labels`` and/or ``reference`` outputs."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise Fault("input-invalid", "cannot read eval set %s: %s" % (path, exc)) from None
    if "inputs" not in arrays:
        raise Fault(
            "input-invalid",
            "eval set %s has no 'inputs' array (found: %s)"
            % (path, ", ".join(sorted(arrays)) or "nothing"),
        )
    for key in ("inputs", "reference"):
        if key in arrays and (arrays[key].ndim < 1 or arrays[key].dtype.kind not in "biuf"):
            raise Fault(
                "input-invalid",
                "eval set %s: %r must be a numeric array with one "
                "row per sample, not %s of shape %s"
                % (path, key, arrays[key].dtype, list(arrays[key].shape)),
            )
    if "reference" in arrays and not np.all(np.isfinite(arrays["reference"])):
        raise Fault("input-invalid", "eval set %s: 'reference' holds NaN or infinite values" % path)
    n = len(arrays["inputs"])
    if n == 0:
        raise Fault("input-invalid", "eval set %s has no samples ('inputs' is empty)" % path)
    labels = arrays.get("labels")
    if labels is not None and (labels.ndim != 1 or labels.dtype.kind not in "iu"):
        raise Fault(
            "input-invalid",
            "eval set %s: 'labels' must hold one integer class index "
            "per sample (shape [%d]), not %s of shape %s"
            % (path, n, labels.dtype, list(labels.shape)),
        )
    for key in ("labels", "reference"):
        if key in arrays and len(arrays[key]) != n:
            raise Fault(
                "input-invalid",
                "eval set %s: %d inputs but %d %s" % (path, n, len(arrays[key]), key),
            )
    return arrays
