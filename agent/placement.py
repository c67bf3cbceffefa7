"""Which execution provider or delegate ran how many of a model's nodes.

Every ok record carries ``runtime["placement"]``: ``nodes`` (all of them), ``by`` (per
provider: its ``nodes`` and, when the run was profiled, its ``share`` of the time), ``text``
("TensorRT 61 / CPU 17 of 78", "Edge TPU 1 custom op / CPU 3 of 4"), the ``accelerator``
asked for and ``partial`` when it took some nodes but not all.  How the runtime was asked
is in ``method`` (see agent/runtimes/onnx_profile.py and tflite_profile.py).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from .faults import Fault
from .protocol import FULL_PLACEMENT, Job

CPU = "CPU"
# providers and delegates that run on the CPU: never "the accelerator"
CPU_CLASS = ("CPU", "XNNPACK")
EDGETPU = "Edge TPU"


def short(provider: str) -> str:
    """``TensorrtExecutionProvider`` -> ``Tensorrt``; a delegate's label stays as it is."""
    name = (
        provider[: -len("ExecutionProvider")]
        if provider.endswith("ExecutionProvider")
        else provider
    )
    return {"Tensorrt": "TensorRT"}.get(name, name) or provider


def summarize(
    providers: Sequence[str],
    accelerator: Optional[str],
    method: str,
    times_ms: Optional[Sequence[float]] = None,
    units: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]:
    """The placement of nodes run by ``providers`` (one entry per node, in graph order);
    ``times_ms`` (per node, per run) adds each provider's share of the time; ``units``
    names what a provider's nodes are (``{"Edge TPU": "custom op"}``)."""
    counts: Dict[str, int] = {}
    spent: Dict[str, float] = {}
    for i, provider in enumerate(providers):
        counts[provider] = counts.get(provider, 0) + 1
        if times_ms is not None:
            spent[provider] = spent.get(provider, 0.0) + times_ms[i]
    # the accelerator first, then by node count
    order = sorted(counts, key=lambda p: (p != accelerator, -counts[p], p))
    total_ms = sum(spent.values())
    by: List[Dict[str, Any]] = []
    for provider in order:
        entry: Dict[str, Any] = {"provider": provider, "nodes": counts[provider]}
        if times_ms is not None and total_ms > 0:
            entry["share"] = spent[provider] / total_ms
        by.append(entry)
    units = units or {}
    text = " / ".join(
        " ".join(filter(None, (short(e["provider"]), str(e["nodes"]), units.get(e["provider"]))))
        for e in by
    )
    taken = counts.get(accelerator, 0) if accelerator else 0
    return {
        "method": method,
        "nodes": len(providers),
        "by": by,
        "text": "%s of %d" % (text, len(providers)) if providers else "no nodes",
        "accelerator": accelerator,
        "accelerator_nodes": taken,
        "partial": bool(accelerator) and 0 < taken < len(providers),
    }


def require_full(placement: Mapping[str, Any], job: Job) -> None:
    """Under ``require_accelerator: full`` a node left to another provider, or a placement
    that could not be found, is an ``accelerator-not-used`` fault."""
    if job.require_accelerator != FULL_PLACEMENT:
        return
    if placement.get("error"):
        raise Fault(
            "accelerator-not-used",
            "require_accelerator is full but the placement could not be found: %s"
            % placement["error"],
        )
    if placement.get("accelerator_nodes", 0) < placement.get("nodes", 0):
        raise Fault(
            "accelerator-not-used",
            "require_accelerator is full but %s ran only %d of the %d nodes (%s)"
            % (
                placement.get("accelerator") or "no accelerator",
                placement.get("accelerator_nodes", 0),
                placement.get("nodes", 0),
                placement.get("text"),
            ),
        )
