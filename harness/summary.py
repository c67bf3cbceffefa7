"""Flatten records into the rows of summary.csv (one row per device x artifact)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from edgebench.agent.record import Record

COLUMNS = [
    "device",
    "artifact",
    "runtime",
    "status",
    "reason",
    "n",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "cv",
    "throughput_ips",
    "load_ms",
    "first_ms",
    "peak_rss_mb",
    "model_rss_mb",
    "size_mb",
    "top1",
    "top5",
    "stable",
    "unstable_why",
    "providers",
    "sha256",
    "message",
    # board validity (agent/board/validity.py) and energy, appended: older columns keep their place
    "throttled",
    "energy_mj",
    "engine_build_ms",
    "flags",
    # what was measured, and with what, so a row stands on its own (appended likewise)
    "run_id",
    "threads",
    "input_shape",
    "rounds",
    "runtime_version",
    "agent_version",
]


def _mb(num_bytes: Optional[float]) -> Optional[float]:
    return None if num_bytes is None else num_bytes / 1e6


def _shapes(shapes: Any) -> str:
    """``input:1,3,224,224`` (``;`` between inputs): the shapes the timed inputs had."""
    if not isinstance(shapes, dict):
        return ""
    return ";".join(
        "%s:%s" % (name, ",".join(str(d) for d in dims)) for name, dims in shapes.items()
    )


def row(record: Record, run_id: str = "") -> Dict[str, Any]:
    """One summary row; figures a failed record does not have stay empty, never zero.
    ``run_id`` names the run the record belongs to (records do not carry it)."""
    stats, memory, timing = record.stats, record.memory, record.timing
    validity = record.validity
    after_load, after_import = memory.get("rss_after_load_mb"), memory.get("rss_after_import_mb")
    model_rss = (
        after_load - after_import if after_load is not None and after_import is not None else None
    )
    providers = record.runtime.get("providers_active") or record.runtime.get("delegate") or ""
    if isinstance(providers, (list, tuple)):
        providers = ",".join(providers)
    elif isinstance(providers, dict):
        providers = providers.get("name", "")
    return {
        "device": record.device,
        "artifact": record.artifact.get("name"),
        "runtime": record.runtime.get("name", ""),
        "status": record.status,
        "reason": record.reason or "",
        "n": stats.get("n"),
        "p50_ms": stats.get("p50_ms"),
        "p90_ms": stats.get("p90_ms"),
        "p95_ms": stats.get("p95_ms"),
        "p99_ms": stats.get("p99_ms"),
        "mean_ms": stats.get("mean_ms"),
        "std_ms": stats.get("std_ms"),
        "cv": stats.get("cv"),
        "throughput_ips": stats.get("throughput_ips"),
        "load_ms": timing.get("load_ms"),
        "first_ms": timing.get("first_ms"),
        "peak_rss_mb": memory.get("peak_rss_mb"),
        "model_rss_mb": model_rss,
        "size_mb": _mb(record.artifact.get("size_bytes")),
        "top1": record.accuracy.get("top1"),
        "top5": record.accuracy.get("top5"),
        "stable": stats.get("stable") if record.ok else None,
        "unstable_why": "; ".join(stats.get("stability_reasons", [])),
        "providers": providers,
        "sha256": record.artifact.get("sha256", ""),
        "message": record.message,
        "throttled": validity.get("throttled") if record.ok else None,
        "energy_mj": timing.get("energy_mj"),
        "engine_build_ms": timing.get("engine_build_ms"),
        "flags": ";".join(validity.get("flags") or []),
        "run_id": run_id,
        "threads": record.settings.get("threads"),
        "input_shape": _shapes(timing.get("input_shapes")),
        "rounds": record.settings.get("rounds", 1),
        "runtime_version": record.runtime.get("version", ""),
        "agent_version": record.fingerprint.get("agent_version", ""),
    }


def rows(records: List[Record], run_id: str = "") -> List[Dict[str, Any]]:
    return [row(r, run_id) for r in records]
