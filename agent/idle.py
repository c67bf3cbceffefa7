"""Idle gaps: the first inference after a pause, against the warm median.

Boards that sleep between requests (a duty cycle) see caches, clocks and accelerator
memory go cold; back-to-back timing never shows it.  Measured after the timed window,
never inside it: each gap costs its own length plus one inference.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Sequence

perf_ns = time.perf_counter_ns


def measure(call: Callable[[], Any], gaps_s: Sequence[float]) -> List[int]:
    """Sleep each gap in turn, then time one call; the times in nanoseconds."""
    out = []
    for gap in gaps_s:
        time.sleep(gap)
        t0 = perf_ns()
        call()
        out.append(perf_ns() - t0)
    return out


def summary(
    gaps_s: Sequence[float], first_ns: Sequence[int], p50_ms: float
) -> List[Dict[str, Any]]:
    """One entry per gap: its length, the first inference after it, and that ÷ warm p50."""
    return [
        {"gap_s": gap, "first_ms": ns / 1e6, "ratio": ns / 1e6 / p50_ms}
        for gap, ns in zip(gaps_s, first_ns)
    ]
