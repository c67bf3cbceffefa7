"""Families of artifacts -- a model and the variants built from it -- and the Pareto set:
the options no other option beats on every criterion at once."""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from edgebench.agent.record import Record

T = TypeVar("T")
PARENT_VARIANT = "fp32"


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


def variant_groups(
    records: Sequence[Record], order: Mapping[str, int]
) -> Dict[Tuple[str, str], List[Record]]:
    """Variant records by (device, parent model), in the order the run asked for them."""
    groups: Dict[Tuple[str, str], List[Record]] = {}
    for record in sorted(records, key=lambda r: order.get(str(r.artifact["name"]), len(order))):
        if record.artifact.get("variant"):
            art = record.artifact  # the fp32 original has no parent: it is the parent
            key = (record.device, str(art.get("parent_sha256") or art.get("sha256")))
            groups.setdefault(key, []).append(record)
    return groups


def parent_groups(records: Sequence[Record]) -> Dict[str, List[Record]]:
    """Records by the model they were built from (the parent's sha256)."""
    groups: Dict[str, List[Record]] = {}
    for record in records:
        art = record.artifact
        groups.setdefault(art.get("parent_sha256") or art.get("sha256") or art["name"], []).append(
            record
        )
    return groups
