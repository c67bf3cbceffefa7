"""The Pareto set: the options no other option beats on every criterion at once."""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple, TypeVar

T = TypeVar("T")


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
