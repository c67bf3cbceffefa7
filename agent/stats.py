"""Summary statistics and the stability verdict for one series of latency samples.

Pure Python so the figures do not depend on the board's numpy version.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

# pyperf-style thresholds: a series is unstable when its spread is too wide to trust p50.
# The CV is judged on the central 98% of samples (p1..p99): a few preemptions among
# thousands of sub-millisecond samples would otherwise condemn every fast model, while a
# real spread -- or a heavy tail, caught by the p1/p99 rule -- still shows.
MAX_CV = 0.10
MAX_TAIL_FROM_MEDIAN = 0.50  # p1 or p99 more than 50% away from the median
MIN_SAMPLES = 20
# A median under this many timer-overheads is dominated by the clock, not the model.
MIN_TIMER_MULTIPLE = 100


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of pre-sorted values."""
    if not sorted_values:
        raise ValueError("percentile of an empty series")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def _cv(values: Sequence[float]) -> float:
    mean, std = mean_std(values)
    return std / mean if mean > 0 else 0.0


def stability(
    ordered_ms: Sequence[float], timer_overhead_ns: Optional[float] = None
) -> Tuple[List[str], float]:
    """Reasons the (sorted) series is not stable -- empty means stable -- and the CV of
    its central 98%."""
    reasons = []
    n = len(ordered_ms)
    if n < MIN_SAMPLES:
        reasons.append("only %d samples (< %d)" % (n, MIN_SAMPLES))
    p1, p50, p99 = (percentile(ordered_ms, q) for q in (1, 50, 99))
    central = [v for v in ordered_ms if p1 <= v <= p99]
    cv = _cv(central)
    if cv >= MAX_CV:
        reasons.append(
            "coefficient of variation %.1f%% >= %.0f%% (central 98%% of samples)"
            % (cv * 100, MAX_CV * 100)
        )
    if timer_overhead_ns and p50 * 1e6 < MIN_TIMER_MULTIPLE * timer_overhead_ns:
        reasons.append(
            "median %.1f us is under %d timer overheads (%.0f ns): too short to "
            "time one call at a time" % (p50 * 1e3, MIN_TIMER_MULTIPLE, timer_overhead_ns)
        )
    if p50 > 0 and (p99 - p50) / p50 >= MAX_TAIL_FROM_MEDIAN:
        reasons.append("p99 is %.0f%% above the median" % ((p99 - p50) / p50 * 100))
    if p50 > 0 and (p50 - p1) / p50 >= MAX_TAIL_FROM_MEDIAN:
        reasons.append("p1 is %.0f%% below the median" % ((p50 - p1) / p50 * 100))
    return reasons, cv


def summarize(
    samples_ns: Sequence[int], batch_size: int = 1, timer_overhead_ns: Optional[float] = None
) -> Dict[str, Any]:
    """Latency statistics in milliseconds, throughput in inferences per second.

    ``cv`` is the plain std/mean of all samples; the verdict uses ``cv_central``."""
    values = sorted(s / 1e6 for s in samples_ns)
    n = len(values)
    if n == 0:
        raise ValueError("no samples to summarise")
    mean, std = mean_std(values)
    p50 = percentile(values, 50)
    reasons, cv_central = stability(values, timer_overhead_ns)
    return {
        "n": n,
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": values[0],
        "max_ms": values[-1],
        "p50_ms": p50,
        "p90_ms": percentile(values, 90),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "throughput_ips": batch_size * 1000.0 / mean if mean > 0 else 0.0,
        "cv": std / mean if mean > 0 else 0.0,
        "cv_central": cv_central,
        "stable": not reasons,
        "stability_reasons": reasons,
    }
