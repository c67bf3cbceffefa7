"""Side by side: artifact rows, device (or run) columns, p50/p90 and the speed-up against a
reference column.  A failed measurement shows its reason where the numbers would be.

Across runs a row is a model slot (artifact name) on one board (its identity, whatever its
name); a speed-up needs the same measurement definition (analysis/definition.py), and a
changed model file or runtime is noted below the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from edgebench.agent.record import Record

from ..analysis.compare_stats import NOT_COMPARABLE
from ..analysis.definition import changes, definition, provenance, refusal
from ..analysis.identity import device_identities
from ..config import ConfigError
from ..formatting import error_text, fmt_ms
from ..store import Run
from .ops import compare_json, compare_lines


@dataclass(frozen=True)
class SideBySide:
    by: str
    columns: List[str]
    reference: int  # index into columns
    rows: List[Tuple[str, List[Optional[Record]]]]  # label, a record (or None) per column

    def pair(
        self, cells: Sequence[Optional[Record]], column: int, allow: Iterable[str] = ()
    ) -> Tuple[Optional[float], str]:
        """Reference p50 / this p50 when both measured the slot with the same measurement
        definition (definition.py), else None and ``not comparable: …`` (or "")."""
        ref, rec = cells[self.reference], cells[column]
        if ref is None or rec is None or not ref.ok or not rec.ok:
            return None, ""
        why = refusal(definition(ref), definition(rec), allow)
        if why:
            return None, why
        return ref.stats["p50_ms"] / rec.stats["p50_ms"], ""

    def speedup(
        self, cells: Sequence[Optional[Record]], column: int, allow: Iterable[str] = ()
    ) -> Optional[float]:
        return self.pair(cells, column, allow)[0]

    def table(self, allow: Iterable[str] = ()) -> Tuple[List[str], List[List[str]]]:
        """Headers and text rows: p50 and p90 per column, then the speed-up of every
        other column against the reference."""
        ref = self.columns[self.reference]
        others = [i for i in range(len(self.columns)) if i != self.reference]
        headers = ["Artifact" if self.by == "device" else "Device / artifact"]
        for label in self.columns:
            headers += ["%s p50 ms" % label, "%s p90 ms" % label]
        headers += ["%s speed-up vs %s" % (self.columns[i], ref) for i in others]
        out = []
        for label, cells in self.rows:
            row = [label]
            for rec in cells:
                if rec is None:
                    row += ["not measured", ""]
                elif not rec.ok:
                    row += ["error: %s" % rec.reason, ""]
                else:
                    row += [fmt_ms(rec.stats["p50_ms"]), fmt_ms(rec.stats["p90_ms"])]
            for i in others:
                factor, why = self.pair(cells, i, allow)
                row.append(NOT_COMPARABLE if why else "" if factor is None else "%.2f×" % factor)
            out.append(row)
        return headers, out

    def as_json(self, allow: Iterable[str] = ()) -> Dict[str, Any]:
        """``compare --json``: the table's figures as numbers, a cell per column (status
        ``not-measured``, the record's status and reason, p50/p90, the speed-up or why the
        pair is not comparable)."""
        rows = []
        for label, cells in self.rows:
            out = []
            for i, rec in enumerate(cells):
                cell: Dict[str, Any] = {"column": self.columns[i], "status": "not-measured"}
                if rec is not None:
                    cell.update(
                        status=rec.status,
                        reason=rec.reason,
                        p50_ms=rec.stats.get("p50_ms") if rec.ok else None,
                        p90_ms=rec.stats.get("p90_ms") if rec.ok else None,
                    )
                if i != self.reference:
                    cell["speedup"], why = self.pair(cells, i, allow)
                    if why:
                        cell["not_comparable"] = why
                out.append(cell)
            rows.append({"label": label, "cells": out})
        return {
            "by": self.by,
            "columns": self.columns,
            "reference": self.columns[self.reference],
            "rows": rows,
            "failures": self.failures(),
            "notes": self.notes(allow),
            "op_diff": [
                dict(entry, label=label)
                for label, cells in self.rows
                for entry in compare_json(cells, self.columns, self.reference)
            ],
        }

    def notes(self, allow: Iterable[str] = ()) -> List[str]:
        """``b / digits.onnx: model changed a1b2c3d4→c3d4e5f6`` for each compared pair
        whose model file or runtime differs from the reference's, and ``not comparable: …``
        for each refused one."""
        out = []
        for label, cells in self.rows:
            ref = cells[self.reference]
            for i, rec in enumerate(cells):
                if ref is None or rec is None:
                    continue
                factor, why = self.pair(cells, i, allow)
                found = (
                    [why]
                    if why
                    else []
                    if factor is None
                    else changes(provenance(ref), provenance(rec))
                )
                if found:
                    out.append("%s / %s: %s" % (self.columns[i], label, "; ".join(found)))
        return out

    def op_diffs(self) -> List[str]:
        """Per profiled pair, the op types that changed most (report/ops.py)."""
        return [
            line
            for label, cells in self.rows
            for line in compare_lines(cells, self.columns, self.reference, label)
        ]

    def failures(self) -> List[str]:
        return [
            "%s / %s: %s" % (self.columns[i], label, error_text(rec))
            for label, cells in self.rows
            for i, rec in enumerate(cells)
            if rec is not None and not rec.ok
        ]


def side_by_side(
    stores: Sequence[Run], by: str = "device", reference: Optional[str] = None
) -> SideBySide:
    """Compare the devices of ``stores`` (``by="device"``; a device in several runs gets a
    column per run, labelled ``device@run``) or the runs (``by="run"``)."""
    entries = [(store.run_id, rec) for store in stores for rec in store.records()]

    def column(run_id: str, rec: Record) -> Tuple[str, str]:
        return run_id, rec.device if by == "device" else ""

    keys = list(dict.fromkeys(column(run_id, rec) for run_id, rec in entries))
    devices = [device for _, device in keys]
    short = _short_ids([s.run_id for s in stores])
    columns = [
        (device if devices.count(device) == 1 else "%s@%s" % (device, short[run_id]))
        if by == "device"
        else short[run_id]
        for run_id, device in keys
    ]
    boards = {}  # across runs, a row is a model slot on one board, whatever its name
    for store in stores:
        boards.update({(store.run_id, d): i for d, i in device_identities(store.records()).items()})
    rows: Dict[Tuple[str, str], Tuple[str, List[Optional[Record]]]] = {}
    for run_id, rec in entries:
        name = str(rec.artifact["name"])
        board = "" if by == "device" else boards.get((run_id, rec.device)) or rec.device
        label = name if by == "device" else "%s / %s" % (rec.device, name)
        cells = rows.setdefault((board, name), (label, [None] * len(columns)))[1]
        cells[keys.index(column(run_id, rec))] = rec
    if not columns:
        raise ConfigError("no measurements in %s" % ", ".join(s.run_id for s in stores))
    return SideBySide(by, columns, _reference(columns, reference), list(rows.values()))


def _short_ids(run_ids: Sequence[str]) -> Dict[str, str]:
    """Run ids by their random suffix (``20260101-120000-ab12`` -> ``ab12``) to keep the
    columns narrow, unless two runs share it."""
    suffixes = [r.rsplit("-", 1)[-1] for r in run_ids]
    return {r: s if suffixes.count(s) == 1 else r for r, s in zip(run_ids, suffixes)}


def _reference(columns: List[str], name: Optional[str]) -> int:
    if name is None:
        return 0
    for i, label in enumerate(columns):
        if name == label or label.startswith(name + "@") or name.endswith("-" + label):
            return i
    raise ConfigError("--reference %r is not one of the columns: %s" % (name, ", ".join(columns)))
