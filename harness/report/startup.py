"""Report tables for what lies around the timed window: the on-device pipeline's stages,
cold starts and idle gaps (``timing.pipeline``, ``timing.cold_starts``, ``timing.idle_gaps``).
Each table appears only when some record of the device has its data."""

from __future__ import annotations

from typing import Any, List, Mapping

from edgebench.agent.record import Record

from ..formatting import fmt_ms, fmt_pct
from .sections import TEXT, Block, Column, Notes, Table

STAGES = (("pre", "pre"), ("infer", "inference"), ("post", "post"), ("end_to_end", "end to end"))
PHASES = (("import_ms", "import"), ("load_ms", "load"), ("first_ms", "first inference"))


def _p50_p90(stats: Mapping[str, Any]) -> str:
    return "%s / %s" % (fmt_ms(stats.get("p50_ms")), fmt_ms(stats.get("p90_ms")))


def _pipeline(records: List[Record]) -> List[Block]:
    rows = []
    for r in records:
        pipe = r.timing.get("pipeline")
        if not r.ok or not pipe:
            continue
        stages = pipe["stages"]
        top1 = (pipe.get("accuracy") or {}).get("top1")
        rows.append(
            [str(r.artifact.get("name"))]
            + [_p50_p90(stages.get(key) or {}) for key, _ in STAGES]
            + [fmt_pct(top1) if top1 is not None else "—", str(pipe.get("inputs", "—"))]
        )
    if not rows:
        return []
    columns = [Column("Artifact", TEXT)] + [Column(label) for _, label in STAGES]
    return [
        Notes("On-device pipeline, per stage (p50 / p90 ms per raw input; top-1 of its output):"),
        Table(columns + [Column("Top-1"), Column("Raw inputs")], rows),
    ]


def _cold_starts(records: List[Record]) -> List[Block]:
    rows = []
    for r in records:
        cold = r.timing.get("cold_starts")
        if not cold:
            continue
        summary = cold.get("summary") or {}
        cells = []
        for key, _ in PHASES + (("total_ms", "total"),):
            s = summary.get(key)
            cells.append(
                "%s [%s–%s]" % (fmt_ms(s["p50_ms"]), fmt_ms(s["min_ms"]), fmt_ms(s["max_ms"]))
                if s
                else "—"
            )
        ok = sum(1 for s in cold.get("samples") or [] if s.get("status") == "ok")
        rows.append(
            [str(r.artifact.get("name")), "%d of %d" % (ok, len(cold.get("samples") or []))] + cells
        )
    if not rows:
        return []
    columns = [Column("Artifact", TEXT), Column("Processes")]
    columns += [Column(label) for _, label in PHASES] + [Column("total")]
    return [
        Notes("Cold starts, one per fresh process (p50 [min–max] ms):"),
        Table(columns, rows),
    ]


def _idle_gaps(records: List[Record]) -> List[Block]:
    gaps: List[float] = []
    for r in records:
        gaps += [g["gap_s"] for g in r.timing.get("idle_gaps") or [] if g["gap_s"] not in gaps]
    if not gaps:
        return []
    rows = []
    for r in records:
        by_gap = {g["gap_s"]: g for g in r.timing.get("idle_gaps") or []}
        if not by_gap:
            continue
        rows.append(
            [str(r.artifact.get("name")), fmt_ms(r.stats.get("p50_ms"))]
            + [
                "%s (%.1f×)" % (fmt_ms(by_gap[g]["first_ms"]), by_gap[g]["ratio"])
                if g in by_gap
                else "—"
                for g in gaps
            ]
        )
    columns = [Column("Artifact", TEXT), Column("warm p50")]
    columns += [Column("after %g s" % g) for g in gaps]
    return [
        Notes("Idle gaps: the first inference after each pause, ms (× the warm p50):"),
        Table(columns, rows),
    ]


def blocks(records: List[Record]) -> List[Block]:
    """The pipeline, cold-start and idle-gap tables of one device's records."""
    return _pipeline(records) + _cold_starts(records) + _idle_gaps(records)
