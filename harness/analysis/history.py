"""``edgebench history``: p50 over runs, per machine (device identity) and model slot
(artifact name).  A step is taken against the previous measurement only when both have the
same measurement definition (definition.py); a changed model file or runtime is noted.

The index is built lazily by scanning ``<root>/*/run.json`` and cached in
``<root>/index.jsonl`` (one line per run, re-read only when its run.json or summary.csv
changed).  Scanning rather than appending from ``edgebench run`` keeps the history right
for runs that were killed, copied in from CI, made by older versions or deleted, and needs
nothing from the run command; the cache keeps it to one read of each new run.
"""

from __future__ import annotations

import fnmatch
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from edgebench.agent.jsonshape import POSITIVE, ListOf, shape_error

from ..formatting import fmt_ms, print_table
from ..store import META_FILE, SUMMARY_FILE, Run, Store, StoreError, atomic_write, open_run
from ..store.backend import LocalStore
from ..store.postgres import PgStore
from .budgets import DEFAULT_REGRESSION
from .compare_stats import NOT_COMPARABLE
from .definition import changes, definition, provenance, refusal
from .identity import (
    IDENTITY_FIELDS,
    device_identities,
    device_tags,
    identity_fields,
    legacy_identity,
)

INDEX_FILE = "index.jsonl"
_RECORD = {
    "device": str,
    "identity": str,
    "legacy_identity": str,
    "tags": ListOf(str),
    "machine": dict,
    "artifact": str,
    "sha256": str,
    "runtime": str,
    "version": str,
    "definition": dict,
    "status": str,
    "reason": str,
    "p50_ms": POSITIVE,
    "p90_ms": POSITIVE,
    "n": int,
}
_ENTRY = {"run_id": str, "stamp": ListOf(int), "created_at": str, "records": ListOf(_RECORD)}


_TOP = {k: v for k, v in _ENTRY.items() if k != "records"}
_NUMBERS = ("p50_ms", "p90_ms", "n")


def _usable(entry: Any) -> bool:
    """A cache line exactly as :func:`_entry` writes it; any other is rebuilt from its run.

    Its records are checked by their keys and the numbers :func:`series` computes with, not
    field by field: a full shape check of 10 000 cached records costs more than the rest of
    ``history`` together."""
    if not isinstance(entry, dict) or set(entry) != set(_ENTRY):
        return False
    records = entry["records"]
    return (
        shape_error({k: entry[k] for k in _TOP}, _TOP) is None
        and isinstance(records, list)
        and all(
            isinstance(r, dict)
            and r.keys() == _RECORD.keys()
            and all(_positive(r[k]) for k in _NUMBERS)
            for r in records
        )
    )


def _positive(value: Any) -> bool:
    """None (a failed record's) or a finite number above 0: never a zero latency."""
    return value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
    )


def _stamp(run_dir: Path) -> List[int]:
    """Changes whenever a record is written (summary.csv) or a job's status (run.json)."""
    out = []
    for name in (META_FILE, SUMMARY_FILE):
        try:
            st = (run_dir / name).stat()
            out += [st.st_mtime_ns, st.st_size]
        except FileNotFoundError:
            out += [0, 0]
    return out


def _entry(run_dir: Path) -> Dict[str, Any]:
    return dict(run_entry(open_run(run_dir)), stamp=_stamp(run_dir))


def run_entry(store: Run) -> Dict[str, Any]:
    """What history needs of one run: no samples, one small dict per record (a database
    store keeps it beside the run)."""
    meta, records = store.meta(), store.records()
    ids, tags = device_identities(records), device_tags(meta)
    machines = {r.device: identity_fields(r) for r in records if r.fingerprint}
    legacy = {r.device: legacy_identity(r) for r in records if r.fingerprint}
    return {
        "run_id": store.run_id,
        "created_at": meta.created_at or "",
        "records": [
            {
                "device": r.device,
                "identity": ids[r.device],
                "legacy_identity": legacy.get(r.device),
                "tags": tags.get(r.device, []),
                "machine": machines.get(r.device, {}),
                "artifact": r.artifact["name"],
                **provenance(r),
                "definition": definition(r),
                "status": r.status,
                "reason": r.reason,
                "p50_ms": r.stats.get("p50_ms"),
                "p90_ms": r.stats.get("p90_ms"),
                "n": r.stats.get("n"),
            }
            for r in records
        ],
    }


def load_index(root: Path) -> List[Dict[str, Any]]:
    """One entry per run under ``root``, oldest first; refreshes ``index.jsonl``."""
    if not root.is_dir():
        raise StoreError("%s: no such results directory" % root)
    cached: Dict[str, Dict[str, Any]] = {}
    index = root / INDEX_FILE
    try:
        old = index.read_text(encoding="utf-8", errors="replace")
    except OSError:  # none yet, or not a readable file: rebuilt
        old = ""
    for line in old.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if _usable(entry):  # a damaged line is rebuilt from its run
            cached[entry["run_id"]] = entry
    entries = []
    for run_dir in sorted(
        p for p in root.iterdir() if not p.is_symlink() and (p / META_FILE).is_file()
    ):
        entry = cached.get(run_dir.name)
        if entry is None or entry.get("stamp") != _stamp(run_dir):
            try:
                entry = _entry(run_dir)
            except StoreError as exc:
                print("history: skipped %s" % exc, file=sys.stderr)
                continue
        entries.append(entry)
    entries.sort(key=lambda e: (e["created_at"], e["run_id"]))
    text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    if old != text:
        try:
            atomic_write(index, text)
        except StoreError:
            pass  # a read-only results root (a CI artifact) still has a history
    return entries


def entries(store: Store) -> List[Dict[str, Any]]:
    """One entry per run of ``store`` (either backend), oldest first."""
    if isinstance(store, PgStore):
        return store.summaries(run_entry)
    assert isinstance(store, LocalStore)
    return load_index(store.root)


@dataclass(frozen=True)
class Point:
    run_id: str
    created_at: str
    device: str
    p50_ms: Optional[float]  # None when the measurement failed
    reason: Optional[str]
    step: Optional[float]  # p50 / the previous measured p50, when comparable
    note: str = ""  # what changed since then, or why it is not comparable
    p90_ms: Optional[float] = None


def series(
    entries: Sequence[Dict[str, Any]],
    device: Optional[str] = None,
    artifact: Optional[str] = None,
    allow: Sequence[str] = (),
) -> Dict[Tuple[Any, ...], List[Point]]:
    """(identity, artifact name) -> its points over runs, oldest first.

    ``device`` (a name, tag or identity prefix) selects machines: every record of a
    machine it names belongs, under whatever name.  ``artifact`` is a name glob or a
    sha256 prefix.  A record without a fingerprint (the board was unreachable) takes the
    identity its device name last had; one from before boards were named by machine-id
    takes the identity its board has since.  ``allow`` names the definition keys a step may
    cross."""
    known: Dict[str, str] = {}
    since = {  # legacy identity -> the stable one of the same board
        rec["legacy_identity"]: rec["identity"]
        for entry in entries
        for rec in entry["records"]
        if rec["legacy_identity"] and rec["identity"] != rec["legacy_identity"]
    }
    resolved = []
    for entry in entries:
        for rec in entry["records"]:
            ident = since.get(rec["identity"], rec["identity"]) or known.get(rec["device"])
            if ident:
                known[rec["device"]] = ident
            resolved.append((entry, rec, ident))
    wanted = (
        None
        if device is None
        else {
            ident
            for _, rec, ident in resolved
            if ident and (device in [rec["device"]] + rec["tags"] or ident.startswith(device))
        }
    )
    out: Dict[Tuple[Any, ...], List[Point]] = {}
    last: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for entry, rec, ident in resolved:
        if wanted is not None and ident not in wanted:
            continue
        if artifact is not None and not (
            fnmatch.fnmatchcase(rec["artifact"], artifact)
            or (rec["sha256"] or "").startswith(artifact)
        ):
            continue
        key = (ident, rec["artifact"])
        p50 = rec["p50_ms"] if rec["status"] == "ok" else None
        step, note, prev = None, "", last.get(key)
        if p50 is not None and prev is not None:
            why = refusal(prev["definition"], rec["definition"], allow)
            step = None if why else p50 / prev["p50_ms"]
            note = why or "; ".join(changes(prev, rec))
        if p50 is not None:
            last[key] = rec
        out.setdefault(key, []).append(
            Point(
                entry["run_id"],
                entry["created_at"],
                rec["device"],
                p50,
                rec["reason"],
                step,
                note,
                rec["p90_ms"] if p50 is not None else None,
            )
        )
    return out


def marker(step: Optional[float], threshold: float = DEFAULT_REGRESSION) -> str:
    if step is None or 1 / (1 + threshold) <= step <= 1 + threshold:
        return ""
    return "▲ slower" if step > 1 else "▼ faster"


def rows(points: Sequence[Point], threshold: float) -> List[List[str]]:
    return [
        [
            p.run_id,
            p.created_at,
            p.device,
            fmt_ms(p.p50_ms) if p.p50_ms is not None else "error: %s" % p.reason,
            "" if p.step is None else "%+.1f%%" % ((p.step - 1) * 100),
            NOT_COMPARABLE if p.note.startswith(NOT_COMPARABLE) else marker(p.step, threshold),
        ]
        for p in points
    ]


def machine_label(entries: Sequence[Dict[str, Any]], identity: Optional[str]) -> str:
    """``vm · x86_64 · AMD EPYC (id 1a2b…)`` for a series heading."""
    for entry in entries:
        for rec in entry["records"]:
            if rec["identity"] == identity and rec["machine"]:
                machine = rec["machine"]  # in IDENTITY_FIELDS order: caches sort keys
                parts = [
                    str(machine[k]) for k in IDENTITY_FIELDS if k != "machine_id" and machine.get(k)
                ]
                return "%s (id %s)" % (" · ".join(parts), identity)
    return "unknown machine"


def show(
    entries: Sequence[Dict[str, Any]],
    found: Mapping[Tuple[Any, ...], List[Point]],
    threshold: float,
) -> None:
    """A table per machine x model slot, headed by the machine and the artifact, and below
    it what changed between runs (a new model file, runtime) or why a step is missing."""
    for (identity, name), points in found.items():
        print("\n%s · %s" % (machine_label(entries, identity), name))
        print_table(
            ["Run", "Started", "Device", "p50 ms", "Step", ""],
            rows(points, threshold),
            {"▲ slower": "red", "▼ faster": "green", NOT_COMPARABLE: "yellow"},
        )
        for p in points:
            if p.note:
                print("%s: %s" % (p.run_id, p.note))


def as_json(
    entries: Sequence[Dict[str, Any]],
    found: Mapping[Tuple[Any, ...], List[Point]],
    threshold: float,
) -> Dict[str, Any]:
    """``history --json``: what :func:`show` prints, a series per machine x artifact."""
    return {
        "threshold": threshold,
        "series": [
            {
                "identity": identity,
                "machine": machine_label(entries, identity),
                "artifact": name,
                "points": [
                    {
                        "run_id": p.run_id,
                        "created_at": p.created_at,
                        "device": p.device,
                        "p50_ms": p.p50_ms,
                        "p90_ms": p.p90_ms,
                        "reason": p.reason,
                        "step": p.step,
                        "marker": marker(p.step, threshold),
                        "note": p.note,
                    }
                    for p in points
                ],
            }
            for (identity, name), points in found.items()
        ],
    }
