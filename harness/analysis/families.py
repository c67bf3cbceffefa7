"""Families of artifacts -- a model, the variants built from it, in one format -- and the
Pareto set of a family: the members no other member beats on both latency (p50) and
accuracy (top-1).  Size is a separate view, never part of the Pareto set.  The trade-off
table, the HTML chart, ``decide`` and budgets' ``top1_vs_parent`` all use these."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from edgebench.agent.record import Record

T = TypeVar("T")
PARENT_VARIANT = "fp32"
FamilyKey = Tuple[str, str, str]  # (device, the model's sha256, format)
PARETO_RULE = "no other member has both a lower p50 and a higher top-1"


def pareto(items: Sequence[T], key: Callable[[T], Tuple[float, ...]]) -> List[T]:
    """Items not dominated by another; ``key`` gives criteria where lower is better
    (negate what should be high, e.g. ``(p50_ms, -top1)``)."""
    scored = [(key(item), item) for item in items]
    front = []
    for score, item in scored:
        dominated = any(
            all(o <= s for o, s in zip(other, score)) and other != score for other, _ in scored
        )
        if not dominated:
            front.append(item)
    return front


def model_stem(name: str) -> str:
    """``mobilenet.int8.tflite`` -> ``mobilenet``: the model an artifact was built from."""
    return name.split(".", 1)[0]


def is_variant(record: Record) -> bool:
    """Built from another artifact; an original is recorded with no variant, or as ``fp32``
    with itself as parent."""
    art = record.artifact
    parent = art.get("parent_sha256")
    return art.get("variant") not in (None, PARENT_VARIANT) or bool(
        parent and parent != art.get("sha256")
    )


def family_key(record: Record) -> FamilyKey:
    """The family ``record`` belongs to: its device, the model it was built from (the
    parent's sha256; an original is its own model) and its format."""
    art = record.artifact
    model = art.get("parent_sha256") or art.get("sha256") or art["name"]
    fmt = art.get("format") or str(art["name"]).rsplit(".", 1)[-1]
    return record.device, str(model), str(fmt)


def families(records: Sequence[Record]) -> Dict[FamilyKey, List[Record]]:
    """Every record in its family, families and members in the order of ``records``; an
    artifact without variants is a family of one."""
    out: Dict[FamilyKey, List[Record]] = {}
    for record in records:
        out.setdefault(family_key(record), []).append(record)
    return out


def has_variants(members: Sequence[Record]) -> bool:
    """A family a plan or ``optimize`` built (its members say which variant they are)."""
    return any(r.artifact.get("variant") for r in members)


def find_parent(record: Record, same_device: Sequence[Record]) -> Optional[Record]:
    """The record whose sha256 is this artifact's ``parent_sha256``, else the ``fp32``
    variant of the same model stem."""
    parent_sha = record.artifact.get("parent_sha256")
    others = [r for r in same_device if r is not record]
    by_sha = [r for r in others if parent_sha and r.artifact.get("sha256") == parent_sha]
    if by_sha:
        return by_sha[0]
    stem = model_stem(str(record.artifact["name"]))
    fp32 = [
        r
        for r in others
        if r.artifact.get("variant") == PARENT_VARIANT
        and model_stem(str(r.artifact["name"])) == stem
    ]
    return fp32[0] if fp32 else None


def original(members: Sequence[Record]) -> Optional[Record]:
    """The family's fp32 parent, when it was measured."""
    return next((r for r in members if not is_variant(r)), None)


def scored(members: Sequence[Record]) -> List[Record]:
    """The members a Pareto set can place: measured, with a top-1."""
    return [r for r in members if r.ok and r.accuracy.get("top1") is not None]


def pareto_set(members: Sequence[Record]) -> List[Record]:
    """The family's Pareto set on (p50, top-1); empty when no member has a top-1."""
    return pareto(scored(members), key=lambda r: (r.stats["p50_ms"], -r.accuracy["top1"]))


def unstable(record: Record) -> bool:
    """A measurement the agent's stability check did not trust (marked wherever it shows
    in a trade-off)."""
    return record.ok and record.stats.get("stable") is False
