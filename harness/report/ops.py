"""Where the time goes: placement, slowest ops and op-type diffs from the records'
``runtime.placement`` and ``profile`` (agent/profile.py).

report.md and report.html get a "Where the time goes" section (the placement of every
record, the top-N slowest ops per device × artifact, and per op type the time of a variant
against its parent and of a board against the first board that ran the same artifact);
the HTML adds a stacked bar per variant; ``compare`` lists the op types that changed most.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from edgebench.agent.placement import short
from edgebench.agent.record import Record

from ..analysis.families import find_parent, is_variant
from ..formatting import fmt_ms, fmt_pct
from .sections import TEXT, Block, Column, Notes, Section, Table
from .svg import Axis, Chart, Style

TOP_OPS = 10  # slowest ops shown per device × artifact
TOP_TYPES = 8  # op types with a colour of their own in the stacked bars; the rest is "other"
DIFF_TYPES = 12  # op types per diff table, largest change first
OTHER = "other"


def placement_text(record: Record) -> str:
    """``TensorRT 61 / CPU 17 of 78`` (with the time shares when profiled), or why not."""
    placement = record.runtime.get("placement") or {}
    if placement.get("error"):
        return "unknown: %s" % placement["error"]
    shares = [e for e in placement.get("by") or [] if e.get("share") is not None]
    text = str(placement.get("text") or "")
    if shares:
        text += " (time: %s)" % ", ".join(
            "%s %s" % (short(e["provider"]), fmt_pct(e["share"])) for e in shares
        )
    return text


def profiled(record: Record) -> bool:
    return record.ok and bool(record.profile.get("rows"))


def op_types(record: Record) -> Dict[str, float]:
    """Milliseconds per run by op type (each node's p50 × calls, as the agent's shares),
    largest first."""
    out: Dict[str, float] = {}
    for row in record.profile.get("rows") or []:
        out[row["op_type"]] = out.get(row["op_type"], 0.0) + row["p50_ms"] * row["calls"]
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def diff(base: Record, other: Record) -> List[Tuple[str, float, float]]:
    """(op type, ms per run in ``base``, in ``other``), the largest change first."""
    a, b = op_types(base), op_types(other)
    kinds = list(dict.fromkeys(list(a) + list(b)))
    rows = [(k, a.get(k, 0.0), b.get(k, 0.0)) for k in kinds]
    return sorted(rows, key=lambda r: -abs(r[2] - r[1]))


def ratio_text(before: float, after: float) -> str:
    if before <= 0:
        return "new" if after > 0 else ""
    if after <= 0:
        return "gone"
    return "%.2f×" % (after / before)


def diff_line(base: Record, other: Record, limit: int = 5) -> str:
    """``Conv 1.20→0.41 ms (0.34×), ConvInteger 0→3.10 ms (new), …``"""
    return ", ".join(
        "%s %s→%s ms (%s)" % (k, fmt_ms(a), fmt_ms(b), ratio_text(a, b))
        for k, a, b in diff(base, other)[:limit]
    )


def _name(record: Record) -> str:
    return str(record.artifact["name"])


def _profile_note(record: Record) -> str:
    p = record.profile
    text = "%s; %d runs; per-op total %s ms = %.2f× the timed p50 (%s ms)" % (
        p.get("method"),
        p.get("runs", 0),
        fmt_ms(p.get("total_ms")),
        p.get("ratio_to_p50", 0.0),
        fmt_ms(p.get("p50_ms") or record.stats.get("p50_ms")),
    )
    return text + ("; %s" % p["note"] if p.get("note") else "")


def _slowest(record: Record) -> List[Block]:
    rows = sorted(record.profile["rows"], key=lambda r: -r["share"])[:TOP_OPS]
    table = Table(
        [
            Column("Node", TEXT),
            Column("Op type", TEXT),
            Column("Provider", TEXT),
            Column("Mean (ms)"),
            Column("p50 (ms)"),
            Column("Calls/run"),
            Column("Share"),
        ],
        [
            [
                str(r["name"]),
                str(r["op_type"]),
                str(r["provider"]),
                fmt_ms(r["mean_ms"]),
                fmt_ms(r["p50_ms"]),
                "%g" % r["calls"],
                fmt_pct(r["share"]),
            ]
            for r in rows
        ],
    )
    label = "estimate" if record.profile.get("estimate") else "profile"
    lead = "%s / %s — slowest ops (%s): %s." % (
        record.device,
        _name(record),
        label,
        _profile_note(record),
    )
    return [Notes(lead), table]


def pairs(records: Sequence[Record]) -> List[Tuple[str, Record, Record]]:
    """(what is compared, base, other) for every profiled variant and its profiled parent
    on one device, and every profiled artifact on a board against the first board that
    profiled the same artifact."""
    ok = [r for r in records if profiled(r)]
    out = []
    for r in ok:
        if is_variant(r):
            parent = find_parent(r, [o for o in ok if o.device == r.device])
            if parent is not None:
                out.append(("%s: %s vs %s" % (r.device, _name(r), _name(parent)), parent, r))
    first: Dict[Tuple[str, str], Record] = {}
    for r in ok:
        key = (_name(r), str(r.artifact.get("sha256")))
        ref = first.setdefault(key, r)
        if ref.device != r.device:
            out.append(("%s: %s vs %s" % (_name(r), r.device, ref.device), ref, r))
    return out


def _ms_or_dash(ms: float) -> str:
    return fmt_ms(ms) if ms > 0 else "—"  # the op type is not in that model


def _diff_table(base: Record, other: Record) -> Table:
    rows = diff(base, other)[:DIFF_TYPES]
    return Table(
        [
            Column("Op type", TEXT),
            Column("%s / %s (ms/run)" % (base.device, _name(base))),
            Column("%s / %s (ms/run)" % (other.device, _name(other))),
            Column("Ratio"),
        ],
        [[k, _ms_or_dash(a), _ms_or_dash(b), ratio_text(a, b)] for k, a, b in rows],
    )


def ops_sections(records: Sequence[Record]) -> List[Section]:
    """The "Where the time goes" section; none when no record has a placement."""
    ok = [r for r in records if r.ok and r.runtime.get("placement")]
    if not ok:
        return []
    placed = Table(
        [
            Column("Device", TEXT),
            Column("Artifact", TEXT),
            Column("Placement (nodes per provider)", TEXT),
            Column("Partly accelerated", TEXT),
        ],
        [
            [
                r.device,
                _name(r),
                placement_text(r),
                "yes" if r.runtime["placement"].get("partial") else "",
            ]
            for r in ok
        ],
    )
    blocks: List[Block] = [placed]
    for r in ok:
        if profiled(r):
            blocks += _slowest(r)
        elif r.profile.get("error"):
            blocks.append(
                Notes("%s / %s: no profile: %s" % (r.device, _name(r), r.profile["error"]))
            )
    out = [Section("Where the time goes", blocks, anchor="where-the-time-goes")]
    compared = pairs(records)
    if compared:
        diff_blocks: List[Block] = []
        for title, base, other in compared:
            diff_blocks += [
                Notes(title + " (op types, largest change first)"),
                _diff_table(base, other),
            ]
        out.append(Section("Op types side by side", diff_blocks, level=3))
    return out


def stacked_bars(records: Sequence[Record]) -> str:
    """Per profiled artifact a horizontal bar of its per-op total, split by op type (the
    :data:`TOP_TYPES` largest over these records, the rest as "other")."""
    ok = [r for r in records if profiled(r)]
    if not ok:
        return ""
    per = {id(r): op_types(r) for r in ok}
    overall: Dict[str, float] = {}
    for types in per.values():
        for k, ms in types.items():
            overall[k] = overall.get(k, 0.0) + ms
    top = [k for k, _ in sorted(overall.items(), key=lambda kv: -kv[1])[:TOP_TYPES]]
    styles = {k: Style(i) for i, k in enumerate(top + [OTHER])}
    totals = [sum(t.values()) for t in per.values()]
    chart = Chart(
        "ops",
        "Per-op time by op type (ms per run; estimates marked)",
        Axis(0.0, max(totals) * 1.05 or 1.0, "ms per run (sum of ops)"),
        categories=[
            "%s%s" % (_name(r), " (estimate)" if r.profile.get("estimate") else "") for r in ok
        ],
    )
    for i, r in enumerate(ok):
        y, h = chart.band(i)
        x = 0.0
        parts: Dict[str, float] = {}
        for k, ms in per[id(r)].items():
            key = k if k in styles and k != OTHER else OTHER
            parts[key] = parts.get(key, 0.0) + ms
        for k in top + [OTHER]:
            ms = parts.get(k, 0.0)
            if ms <= 0:
                continue
            tip = "%s: %s %s ms (%s)" % (
                _name(r),
                k,
                fmt_ms(ms),
                fmt_pct(ms / max(1e-12, totals[i])),
            )
            chart.rect(
                chart.px(x), y - h * 0.3, chart.px(x + ms), y + h * 0.3, styles[k].color, tip
            )
            x += ms
    for k in top + ([OTHER] if len(overall) > len(top) else []):
        chart.legend(k, styles[k])
    return chart.render()


def compare_lines(
    cells: Sequence[Optional[Record]], columns: Sequence[str], reference: int, label: str
) -> List[str]:
    """``compare``: per column against the reference, the op types that changed most."""
    ref = cells[reference]
    if ref is None or not profiled(ref):
        return []
    return [
        "%s / %s: op types vs %s: %s" % (columns[i], label, columns[reference], diff_line(ref, rec))
        for i, rec in enumerate(cells)
        if i != reference and rec is not None and profiled(rec)
    ]


def compare_json(
    cells: Sequence[Optional[Record]], columns: Sequence[str], reference: int
) -> List[Dict[str, object]]:
    """``compare --json``: per column, every op type's ms per run against the reference's."""
    ref = cells[reference]
    if ref is None or not profiled(ref):
        return []
    return [
        {
            "column": columns[i],
            "op_types": [{"op_type": k, "reference_ms": a, "ms": b} for k, a, b in diff(ref, rec)],
        }
        for i, rec in enumerate(cells)
        if i != reference and rec is not None and profiled(rec)
    ]
