"""Cold starts: import, model load and first inference in K fresh agent processes.

Every round (``--rounds``) is already a fresh process that times all three, so the rounds
count among the K; the runner starts the rest as short processes that stop after one
timed inference (:func:`cold_settings`), and their records are folded in here.  The OS
page cache is not dropped: these are cold processes, not cold disks.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from edgebench.agent.record import Record
from edgebench.agent.stats import mean_std, percentile

PHASES = ("import_ms", "load_ms", "first_ms")


def extra(settings: Mapping[str, Any]) -> int:
    """The processes to start beyond the rounds."""
    return max(0, int(settings.get("cold_starts") or 1) - int(settings.get("rounds") or 1))


def cold_settings(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """A cold-start process's settings: the same runtime settings, a timed window of one
    inference, no warm-up, no idle gaps and no op profile."""
    return dict(
        settings,
        warmup_iterations=0,
        warmup_seconds=0,
        min_iterations=1,
        min_seconds=0,
        max_iterations=1,
        target_precision=None,
        idle_gaps=[],
        profile_ops=False,
    )


def progress_label(number: int, rounds: int, total: int) -> Optional[Dict[str, Any]]:
    """What the live display says of process ``number`` of ``total``: its round (when there
    are several), or which cold start it is."""
    if number > rounds:
        return {"round": number - rounds, "rounds": total - rounds, "label": "cold start"}
    return {"round": number, "rounds": rounds} if rounds > 1 else None


def _sample(number: int, kind: str, record: Record) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"process": number, "kind": kind, "status": record.status}
    if record.ok and all(record.timing.get(p) is not None for p in PHASES):
        entry.update({p: record.timing[p] for p in PHASES})
        entry["total_ms"] = sum(record.timing[p] for p in PHASES)
    else:
        entry.update(status="error", reason=record.reason or "protocol")
    return entry


def attach(record: Record, rounds: Sequence[Record], colds: Sequence[Record]) -> Record:
    """``record`` (the rounds merged) with ``timing.cold_starts``: every process's sample in
    order (rounds first), and per phase its n, min, p50, mean and max over the ok ones."""
    samples = [_sample(i + 1, "round", r) for i, r in enumerate(rounds)]
    samples += [_sample(len(rounds) + i + 1, "cold", r) for i, r in enumerate(colds)]
    ok = [s for s in samples if s["status"] == "ok"]
    summary: Dict[str, Dict[str, float]] = {}
    for phase in PHASES + ("total_ms",):
        values: List[float] = sorted(s[phase] for s in ok)
        if values:
            summary[phase] = {
                "n": len(values),
                "min_ms": values[0],
                "p50_ms": percentile(values, 50),
                "mean_ms": mean_std(values)[0],
                "max_ms": values[-1],
            }
    timing = dict(record.timing, cold_starts={"samples": samples, "summary": summary})
    return record.replace(timing=timing)
