"""``edgebench decide``: which variant of each model ships on which board.

On each device the records are grouped by family (analysis/families.py: an artifact and
the variants built from it, in one format; an artifact without variants is its own family)
and each family's Pareto set is the one the trade-off table and the HTML chart show.  Of a
family's variants that pass every budget on that device, the profile picks one: the most
accurate, the fastest or the smallest (ties go to the faster, then the smaller).

Several runs decide as one (variants measured last week beside today's): records pair by
board identity, not device name, the newest measurement of a model slot on a board wins,
and members of one family measured under different definitions (threads, shapes ...) are
refused with the key named, unless allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from edgebench.agent.record import Record

from .. import summary
from ..config import ConfigError
from ..formatting import fmt_mb, fmt_ms, fmt_pct, print_table
from ..store import Run
from .budgets import Budget, Budgets, Verdict, judge
from .definition import definition, differences
from .families import families, model_stem, pareto_set, unstable
from .identity import device_identities, device_identity, device_tags, identity_fields

FIGURES = ("p50_ms", "p90_ms", "p99_ms", "peak_rss_mb", "size_mb", "top1", "top5")
MANIFEST_VERSION = 1


def _criteria(record: Record) -> Tuple[float, float, float]:
    """(p50 ms, -top-1, size MB): lower is better; no accuracy counts as the worst."""
    row = summary.row(record)
    top1 = row["top1"] if row["top1"] is not None else float("-inf")
    return row["p50_ms"], -top1, row["size_mb"] or 0.0


_ORDER: Dict[str, Callable[[Tuple[float, float, float]], Tuple[float, ...]]] = {
    "most-accurate": lambda c: (c[1], c[0], c[2]),
    "fastest": lambda c: c,
    "smallest": lambda c: (c[2], c[0], c[1]),
}


@dataclass(frozen=True)
class Variant:
    record: Record
    budgets: List[Budget]  # the entries that apply to it on this device
    broken: List[Verdict]  # the verdicts it failed; empty when it fits


@dataclass(frozen=True)
class Choice:
    """One model on one device: its variants, the Pareto set and the pick."""

    device: str
    model: str
    variants: List[Variant]
    front: List[Record]  # the family's Pareto set (families.pareto_set)
    chosen: Optional[Variant]


def _model_name(key: str, members: Sequence[Record]) -> str:
    """The parent's artifact name, or the variants' model stem when the parent is absent."""
    for record in members:
        if record.artifact.get("sha256") == key:
            return str(record.artifact["name"])
    return model_stem(str(members[0].artifact["name"]))


def pooled(
    stores: Sequence[Run],
) -> Tuple[List[Record], List[str], Dict[str, List[str]], Dict[int, str]]:
    """The records of ``stores`` as one run: per board and model slot the newest, under the
    device name the first run to meet the board gave it; the device names, their tags, and
    which run each record came from (by ``id``)."""
    names: Dict[str, str] = {}  # board identity -> device name
    newest: Dict[Tuple[str, str], Tuple[Record, str]] = {}
    devices: List[str] = []
    tags: Dict[str, List[str]] = {}
    for store in stores:
        meta, records = store.meta(), store.records()
        idents = device_identities(records)
        for device in list(meta.status) + [r.device for r in records]:
            board = idents.get(device) or "%s:%s" % (store.run_id, device)
            name = names.setdefault(board, device)
            if name not in devices:
                devices.append(name)
                tags[name] = device_tags(meta).get(device, [])
        for r in records:
            board = idents.get(r.device) or "%s:%s" % (store.run_id, r.device)
            key = (names[board], str(r.artifact["name"]))
            if key not in newest or r.started_at > newest[key][0].started_at:
                newest[key] = (r, store.run_id)
    out, runs = [], {}
    for (name, _), (r, run_id) in newest.items():
        record = r if r.device == name else r.replace(device=name)
        out.append(record)
        runs[id(record)] = run_id
    return out, devices, tags, runs


def _check_like(members: Sequence[Record], runs: Dict[int, str], allow: Iterable[str]) -> None:
    """Members of a family from different runs must measure alike: else a one-line error."""
    ok = [r for r in members if r.ok]
    for r in ok[1:]:
        diff = differences(definition(ok[0]), definition(r), allow)
        if diff and runs.get(id(r)) != runs.get(id(ok[0])):
            raise ConfigError(
                "not comparable: %s (%s in run %s, %s in run %s); measure them alike or "
                "pass --allow-different %s"
                % (
                    "; ".join(diff),
                    ok[0].artifact["name"],
                    runs.get(id(ok[0])),
                    r.artifact["name"],
                    runs.get(id(r)),
                    diff[0].split()[0],
                )
            )


def decide(
    store: Run,
    budgets: Optional[Budgets],
    profile: str,
    more: Sequence[Run] = (),
    allow: Iterable[str] = (),
) -> List[Choice]:
    """A choice per device and model of ``store`` (and the runs in ``more``, see
    :func:`pooled`)."""
    budgets = budgets or Budgets((), "")
    records, devices, tags, runs = pooled([store, *more])
    out = []
    for device in devices:
        on_device = [r for r in records if r.device == device]
        if not on_device:  # nothing measured there: nothing can ship
            out.append(Choice(device, "", [], [], None))
        for (_, key, _), members in families(on_device).items():
            _check_like(members, runs, allow)
            variants = []
            for r in members:
                matching = budgets.matching(device, tags.get(device, []), str(r.artifact["name"]))
                variants.append(
                    Variant(r, matching, [v for v in judge(r, matching, on_device) if v.failed])
                )
            fits = [v for v in variants if not v.broken]
            chosen = min(fits, key=lambda v: _ORDER[profile](_criteria(v.record))) if fits else None
            front = pareto_set(members)
            out.append(Choice(device, _model_name(key, members), variants, front, chosen))
    return out


def _why(broken: Sequence[Verdict]) -> str:
    return "; ".join(
        "%s %s, limit %s (%s)" % (v.check, v.measured, v.limit, v.source)
        if v.measured
        else "%s: %s" % (v.label, v.detail)
        for v in broken
    )


def verdict(choice: Choice, variant: Variant, profile: str) -> Tuple[str, str]:
    """(decision, why) for one variant: chosen, rejected (and the broken budgets) or fits."""
    if variant.broken:
        return "rejected", _why(variant.broken)
    if variant is not choice.chosen:
        return "fits", ""
    if variant.budgets:
        return "chosen", "%s within %d budget(s)" % (profile, len(variant.budgets))
    return "chosen", "%s; no budget applies" % profile


def on_front(choice: Choice, record: Record) -> bool:
    return any(record is r for r in choice.front)


def show(choices: Sequence[Choice], profile: str) -> None:
    """A row per variant: figures, Pareto membership, and the decision with its reason;
    an unstable measurement is marked by its p50."""
    rows = []
    for c in choices:
        for v in c.variants:
            row = summary.row(v.record)
            decision, why = verdict(c, v, profile)
            rows.append(
                [
                    c.device,
                    c.model,
                    str(row["artifact"]),
                    fmt_ms(row["p50_ms"]) + (" (unstable)" if unstable(v.record) else ""),
                    fmt_pct(row["top1"]),
                    fmt_mb(row["size_mb"]),
                    "yes" if on_front(c, v.record) else "",
                    decision,
                    why,
                ]
            )
        if c.chosen is None:
            rows.append([c.device, c.model, "", "", "", "", "", "no variant fits", ""])
    print_table(
        ["Device", "Model", "Artifact", "p50 ms", "Top-1", "Size MB", "Pareto", "Decision", "Why"],
        rows,
        {"chosen": "green", "rejected": "red", "no variant fits": "bold red"},
    )


def as_json(choices: Sequence[Choice], profile: str) -> List[Dict[str, Any]]:
    """What :func:`show` prints, per device and model (``decide --json``)."""
    out = []
    for c in choices:
        variants = []
        for v in c.variants:
            row = summary.row(v.record)
            decision, why = verdict(c, v, profile)
            entry: Dict[str, Any] = {"artifact": row["artifact"], "status": v.record.status}
            entry.update({k: row[k] for k in FIGURES})
            entry.update(
                stable=not unstable(v.record) if v.record.ok else None,
                pareto=on_front(c, v.record),
                decision=decision,
                why=why,
            )
            variants.append(entry)
        out.append(
            {
                "device": c.device,
                "model": c.model,
                "chosen": str(c.chosen.record.artifact["name"]) if c.chosen else None,
                "pareto": [str(r.artifact["name"]) for r in c.front],
                "variants": variants,
            }
        )
    return out


def manifest(
    store: Run,
    choices: Sequence[Choice],
    budgets: Optional[Budgets],
    profile: str,
    created_at: str,
    more: Sequence[Run] = (),
) -> str:
    """The deployment manifest (JSON text): per device and model, the chosen artifact,
    its measured figures and the budgets it met; ``null`` where nothing fits."""
    deployments = []
    for c in choices:
        seen = next((v.record for v in c.variants if v.record.fingerprint), None)
        entry: Dict[str, Any] = {
            "device": c.device,
            "device_identity": (
                dict(id=device_identity(seen), **identity_fields(seen)) if seen else None
            ),
            "model": c.model,
            "artifact": None,
        }
        if c.chosen is not None:
            art, row = c.chosen.record.artifact, summary.row(c.chosen.record)
            entry.update(
                artifact=art["name"],
                sha256=art.get("sha256"),
                variant=art.get("variant"),
                measured={k: row[k] for k in FIGURES},
                budgets=[b.to_dict() for b in c.chosen.budgets],
            )
        entry["rejected"] = {
            str(v.record.artifact["name"]): _why(v.broken) for v in c.variants if v.broken
        }
        deployments.append(entry)
    return (
        json.dumps(
            {
                "manifest_version": MANIFEST_VERSION,
                "run_id": store.run_id,
                "runs": [store.run_id, *(m.run_id for m in more)],
                "created_at": created_at,
                "profile": profile,
                "budgets_source": budgets.source if budgets else None,
                "deployments": deployments,
            },
            indent=2,
        )
        + "\n"
    )
