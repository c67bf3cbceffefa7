"""Where the time goes: the placement of every record and, with ``profile_ops``, a
per-operator profile -- both from a separate pass after the timed window, so the headline
numbers never carry the profiler's cost.

``record.profile`` holds one row per node (``name``, ``op_type``, ``provider``, ``mean_ms``
and ``p50_ms`` per call, ``calls`` per run, ``share`` of the per-op total), how it was
measured (``method``; ``estimate`` when the runtime has no profiler and the figures come
from timing each op alone), ``total_ms`` (the per-op total of one run: the median over the
profiled runs of the sum of their node times, or for ops timed alone the sum of each op's
p50 × calls) and
``ratio_to_p50`` (that total over the timed window's p50) with a ``note`` when the ratio
is far from 1, so nobody trusts a profile that does not add up.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .faults import Fault
from .placement import require_full, summarize
from .protocol import Job

PROFILE_MIN_RUNS = 20  # profiled runs of the whole model (ONNX) or of each op (TFLite)
PROFILE_SECONDS = 1.0  # ... and at least this long, the whole model or each op
PROFILE_MAX_RUNS = 1000
RATIO_BAND = (0.8, 1.25)  # a per-op total outside this band of the p50 gets a note


def profile_budget() -> Tuple[int, float, int]:
    return PROFILE_MIN_RUNS, PROFILE_SECONDS, PROFILE_MAX_RUNS


@dataclass
class Node:
    name: str
    op_type: str
    provider: str
    times_ms: List[float] = field(default_factory=list)  # one per call
    runs: int = 0  # the runs times_ms span, when not the Ops' own (an op timed alone)


@dataclass
class Ops:
    nodes: List[Node]
    method: str  # how the profile was measured
    placement_method: str  # how the placement was found
    estimate: bool  # each op timed on its own, not inside the model
    runs: int  # profiled runs
    timed: bool  # whether times_ms are a profile (not only a placement pass)
    accelerator: Optional[str]
    units: Dict[str, str] = field(default_factory=dict)  # provider -> what its nodes are
    # the sum of the node times of each profiled run, where the profiler sees whole runs
    run_totals_ms: List[float] = field(default_factory=list)
    error: str = ""  # why the profile failed where the placement did not


def _workdir(job: Job) -> str:
    """Where a profiler may write: the board's workdir (the lease's), else the cache the
    transports point at it, else the temporary folder of a bare ``python -m agent``."""
    if job.lease:
        return os.path.expanduser(str(job.lease["workdir"]))
    return os.environ.get("XDG_CACHE_HOME") or tempfile.gettempdir()


def after_window(
    model: Any, job: Job, feeds: Dict[str, Any], p50_ms: float
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The placement (for every record) and the profile (``settings.profile_ops``, else
    empty).  A runtime failing here costs the placement or profile, never the measurement;
    ``require_accelerator: full`` on a partial placement raises ``accelerator-not-used``."""
    profile = job.settings.profile_ops
    try:
        if model.runtime.get("name") == "onnxruntime":
            from .runtimes import onnx_profile as backend
        else:
            from .runtimes import tflite_profile as backend  # type: ignore[no-redef]
        ops = backend.measure(model, job, feeds, profile, _workdir(job))
    except Exception as exc:  # a runtime failing in the profiled pass
        text = (
            exc.message
            if isinstance(exc, Fault)
            else "%s: %s"
            % (
                type(exc).__name__,
                " ".join(str(exc).split()),
            )
        )
        require_full({"error": text}, job)
        return {"error": text}, ({"error": text} if profile else {})
    per_run = [_per_run(n, n.runs or ops.runs) for n in ops.nodes] if ops.timed else None
    placement = summarize(
        [n.provider for n in ops.nodes], ops.accelerator, ops.placement_method, per_run, ops.units
    )
    require_full(placement, job)
    if ops.error:
        return placement, {"error": ops.error}
    return placement, (_profile(ops, p50_ms) if ops.timed else {})


def _per_run(node: Node, runs: int) -> float:
    """The node's typical time in one run: its p50 per call times its calls per run (the
    median, as for the headline p50: a profiler's outliers do not swell it)."""
    return _p50(node.times_ms) * len(node.times_ms) / max(1, runs) if node.times_ms else 0.0


def _p50(values: List[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _profile(ops: Ops, p50_ms: float) -> Dict[str, Any]:
    rows = []
    total = sum(_per_run(n, n.runs or ops.runs) for n in ops.nodes)
    run_total = _p50(ops.run_totals_ms) if ops.run_totals_ms else total
    for n in ops.nodes:
        if not n.times_ms:
            continue
        runs = n.runs or ops.runs
        rows.append(
            {
                "name": n.name,
                "op_type": n.op_type,
                "provider": n.provider,
                "mean_ms": sum(n.times_ms) / len(n.times_ms),
                "p50_ms": _p50(n.times_ms),
                "calls": len(n.times_ms) / max(1, runs),
                "share": _per_run(n, runs) / total if total > 0 else 0.0,
            }
        )
    ratio = run_total / p50_ms if p50_ms > 0 else 0.0
    out: Dict[str, Any] = {
        "method": ops.method,
        "estimate": ops.estimate,
        "runs": ops.runs,
        "total_ms": run_total,
        "p50_ms": p50_ms,
        "ratio_to_p50": ratio,
        "rows": rows,
    }
    note = ratio_note(ratio, ops.estimate)
    if note:
        out["note"] = note
    return out


def ratio_note(ratio: float, estimate: bool) -> str:
    """Why a per-op total is far from the whole model's p50 (empty when it is near)."""
    low, high = RATIO_BAND
    if low <= ratio <= high:
        return ""
    if estimate and ratio > high:
        return (
            "each op was timed alone as a model of its own: every op pays the invoke "
            "overhead and starts with cold caches, and fusions across ops are lost"
        )
    if estimate:
        return (
            "each op was timed alone with its inputs hot in the cache, while the whole "
            "model moves its activations between ops; or the timed window ran on a busier "
            "machine than the op timings"
        )
    if ratio < low:
        return (
            "the profiler times the kernels only: copying inputs and outputs, scheduling "
            "between nodes and the Python call around session.run fall outside every node; "
            "or the timed window ran on a busier machine than the profiled pass"
        )
    return (
        "the profiled pass ran slower than the timed window: the profiler's own cost per "
        "node, or a busier machine during the pass"
    )
