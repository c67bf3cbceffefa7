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


Z95 = 1.959964


def median_interval(ordered: Sequence[float]) -> Tuple[float, float]:
    """Distribution-free 95% interval of the median of pre-sorted values: the order
    statistics at ranks n/2 -/+ 1.96 sqrt(n)/2 (the binomial's normal approximation)."""
    n = len(ordered)
    half = Z95 * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)) - 1)
    hi = min(n - 1, int(math.ceil(n / 2 + half)))
    return ordered[lo], ordered[hi]


def precision(ordered: Sequence[float]) -> float:
    """Half-width of the p50's 95% interval relative to the p50 (0.01: within +/-1%)."""
    low, high = median_interval(ordered)
    p50 = percentile(ordered, 50)
    return (high - low) / 2 / p50 if p50 > 0 else math.inf


# Student's t (two-sided 95%) for 1..10 degrees of freedom; beyond, 2.0 is close enough
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def round_spread(rounds: Sequence[Sequence[float]]) -> Dict[str, Any]:
    """How much of the spread lies between processes, for the samples (ms) of each round:
    the CV of the round medians, the between-round share of the total variance (one-way
    ANOVA's components), and the p50's precision over rounds (the t interval of the mean
    round median, relative to it)."""
    medians = [percentile(sorted(r), 50) for r in rounds]
    out: Dict[str, Any] = {"rounds": len(rounds), "round_p50_ms": medians}
    if len(rounds) < 2:
        return out
    mean, std = mean_std(medians)
    means = [sum(r) / len(r) for r in rounds]
    grand = sum(m * len(r) for m, r in zip(means, rounds)) / sum(len(r) for r in rounds)
    within = sum(sum((v - m) ** 2 for v in r) for m, r in zip(means, rounds))
    between = sum(len(r) * (m - grand) ** 2 for m, r in zip(means, rounds))
    t = _T95[len(rounds) - 2] if len(rounds) <= len(_T95) + 1 else 2.0
    out.update(
        round_p50_cv=std / mean if mean > 0 else 0.0,
        between_round_share=between / (between + within) if between + within > 0 else 0.0,
        precision_over_rounds=t * std / math.sqrt(len(rounds)) / mean if mean > 0 else 0.0,
    )
    return out


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
        "p50_ci_ms": list(median_interval(values)),
        "precision": precision(values),
        "stable": not reasons,
        "stability_reasons": reasons,
    }
