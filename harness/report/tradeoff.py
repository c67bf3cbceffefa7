"""The trade-off view of a run with variants: per family (device, model and format; see
analysis/families.py), every variant's size, latency, throughput, memory and top-1 against
the fp32 original, and the family's Pareto set on latency (p50) and accuracy (top-1).
Unstable measurements are marked in the table and in the Pareto set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from edgebench.agent.record import Record

from .. import summary
from ..analysis.families import (
    PARENT_VARIANT,
    PARETO_RULE,
    families,
    has_variants,
    is_variant,
    original,
    pareto_set,
    unstable,
)
from ..formatting import error_text, fmt_mb, fmt_ms, fmt_pct
from ..optimize.variants import PRUNE_NOTE
from ..store import RunMeta
from . import sections as model

HEADER = (
    "Variant",
    "Size (MB)",
    "p50 / p90 (ms)",
    "Throughput (inf/s)",
    "Peak RSS (MB)",
    "Top-1",
    "Δ top-1 vs fp32",
    "Speed-up vs fp32",
)
UNSTABLE = " (unstable)"


@dataclass(frozen=True)
class Section:
    title: str  # "local — digits.onnx"
    rows: List[List[str]]
    pareto: str
    notes: List[str]


def _variant(record: Record) -> str:
    """The variant's name; the original (recorded as ``fp32``, or with no variant) is fp32."""
    return str(record.artifact.get("variant") or PARENT_VARIANT)


def _row(record: Record, base: Optional[Dict[str, Any]]) -> List[str]:
    """One table row; ``base`` is the fp32 summary row (None when fp32 was not measured)."""
    row = summary.row(record)
    cells = [_variant(record), fmt_mb(row["size_mb"])]
    if not record.ok:
        return cells + [error_text(record)] + [""] * 5
    cells += [
        "%s / %s%s"
        % (fmt_ms(row["p50_ms"]), fmt_ms(row["p90_ms"]), UNSTABLE if unstable(record) else ""),
        fmt_ms(row["throughput_ips"]),
        fmt_mb(row["peak_rss_mb"]),
        fmt_pct(row["top1"]),
    ]
    if base is None:
        return cells + ["", ""]
    if not is_variant(record):
        return cells + ["—", "1.00×"]
    delta = (
        "%+.1f pt" % (100 * (row["top1"] - base["top1"]))
        if row["top1"] is not None and base["top1"] is not None
        else ""
    )
    return cells + [delta, "%.2f×" % (base["p50_ms"] / row["p50_ms"])]


def _pareto(records: List[Record]) -> str:
    names = ", ".join(_variant(r) + (UNSTABLE if unstable(r) else "") for r in pareto_set(records))
    if not names:
        names = (
            "none, no top-1 was measured (run with an eval set)"
            if any(r.ok for r in records)
            else "none, nothing was measured"
        )
    return "Pareto set (%s): %s." % (PARETO_RULE, names)


def _notes(records: List[Record], builds: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """What the table cannot show about pruned variants: sparsity and the compressed size."""
    base = next(
        (builds.get(str(r.artifact["name"])) for r in records if not is_variant(r)),
        None,
    )
    pruned = [r for r in records if any(s.startswith("prune-") for s in _variant(r).split("+"))]
    notes = []
    for record in pruned:
        built = builds.get(str(record.artifact["name"]))
        if built and base:
            notes.append(
                "%s: %.1f%% of weights are zero; gzip %.2f MB against %.2f MB for "
                "fp32."
                % (
                    _variant(record),
                    100 * built["sparsity"],
                    built["gzip_bytes"] / 1e6,
                    base["gzip_bytes"] / 1e6,
                )
            )
    return notes + (["Pruning: %s." % PRUNE_NOTE] if pruned else [])


def sections(meta: RunMeta, records: Sequence[Record]) -> List[Section]:
    """One section per device and model; empty when the run has no variants."""
    builds = {str(b["file"]): b for b in (meta.plan or {}).get("builds", []) if b.get("file")}
    order = {str(a.get("name")): i for i, a in enumerate(meta.request.get("artifacts", []))}
    out = []
    ordered = sorted(records, key=lambda r: order.get(str(r.artifact["name"]), len(order)))
    for (device, parent, _), group in families(ordered).items():
        if not has_variants(group):
            continue
        fp32 = original(group)
        base = summary.row(fp32) if fp32 is not None and fp32.ok else None
        model = fp32.artifact["name"] if fp32 is not None else "parent " + parent[:12]
        out.append(
            Section(
                "%s — %s" % (device, model),
                [_row(r, base) for r in group],
                _pareto(group),
                _notes(group, builds),
            )
        )
    return out


def report_sections(meta: RunMeta, records: Sequence[Record]) -> List[model.Section]:
    """The trade-off part of the report: a lead, then per device and model its table, its
    Pareto set and notes ([] without variants)."""
    columns = [model.Column(HEADER[0], model.TEXT)] + [model.Column(h) for h in HEADER[1:]]
    parts = []
    for section in sections(meta, records):
        blocks: List[model.Block] = [
            model.Table(columns, section.rows),
            model.Notes(section.pareto),
        ]
        blocks += [model.Notes(bullets=section.notes)] if section.notes else []
        parts.append(model.Section(section.title, blocks, level=3))
    if not parts:
        return []
    lead = (
        "Speed-up is the fp32 p50 over the variant's p50; Δ top-1 is in percentage points. "
        "The Pareto set is taken within one model and format on p50 and top-1 (size is a "
        "column, not a criterion); (unstable) marks a measurement the stability check did "
        "not trust."
    )
    return [model.Section("Trade-offs", [model.Notes(lead)], anchor="trade-offs")] + parts


def markdown(meta: RunMeta, records: Sequence[Record]) -> str:
    """The report.md section ("" without variants)."""
    parts = report_sections(meta, records)
    return model.markdown(parts) if parts else ""


def text(meta: RunMeta, records: Sequence[Record]) -> str:
    """The same tables for the terminal, columns aligned ("" without variants)."""
    blocks = []
    for section in sections(meta, records):
        table = [list(HEADER)] + section.rows
        widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
        lines = ["Trade-offs: " + section.title]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        blocks.append("\n".join(lines + [section.pareto] + section.notes))
    return "\n\n".join(blocks) + "\n" if blocks else ""
