"""Did it get slower?  Pure functions on two series of per-iteration latency samples.

A change counts only when it is both larger than a threshold factor and statistically
significant (asv's rule): one-sided Mann-Whitney U at p < 0.01, or -- with fewer than 20
samples on a side, where the U test has little power -- bootstrap 95% intervals of the two
medians that do not overlap.  The reported ratio is candidate median / baseline median with
a bootstrap 95% interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

ALPHA = 0.01
MIN_SAMPLES_FOR_U = 20
LEVEL = 0.95
N_BOOT = 2000
SLOWER, FASTER, NOT_SIGNIFICANT, NOT_COMPARABLE = (
    "slower",
    "faster",
    "not significant",
    "not comparable",
)


@dataclass(frozen=True)
class Change:
    ratio: float  # candidate median / baseline median
    low: float  # bootstrap interval of the ratio
    high: float
    significant: bool
    method: str  # "mann-whitney" or "bootstrap"
    p_value: Optional[float]  # one-sided, in the direction of the change (U test only)
    marker: str  # SLOWER, FASTER or NOT_SIGNIFICANT

    @property
    def regression(self) -> bool:
        return self.marker == SLOWER


def bootstrap_medians(values: Sequence[float], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` medians of resamples of ``values``, drawn exactly without resampling.

    A resample's k-th smallest value is ``sorted[ceil(n * U_(k)) - 1]`` for the k-th order
    statistic ``U_(k)`` of n uniforms, and ``U_(k) ~ Beta(k, n + 1 - k)``; so each median
    costs O(1) instead of O(n) -- the samples of a fast model run to tens of thousands.
    """
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    k = (n + 1) // 2  # the (lower) middle rank

    def pick(u: np.ndarray) -> np.ndarray:
        return ordered[np.clip(np.ceil(n * u).astype(int) - 1, 0, n - 1)]

    lower = rng.beta(k, n + 1 - k, n_boot)
    if n % 2:
        return pick(lower)
    upper = lower + (1 - lower) * rng.beta(1, n - k, n_boot)  # next of the n - k above
    return (pick(lower) + pick(upper)) / 2


def _interval(draws: np.ndarray, level: float = LEVEL) -> Tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def compare(
    baseline: Sequence[float], candidate: Sequence[float], threshold: float = 0.05, seed: int = 0
) -> Change:
    """How ``candidate`` differs from ``baseline``; ``threshold`` 0.05 means a slowdown
    must exceed 5% (and a speed-up 1.05x) to count."""
    if len(baseline) == 0 or len(candidate) == 0:
        raise ValueError("both series need samples")
    rng = np.random.default_rng(seed)
    base_boot = bootstrap_medians(baseline, N_BOOT, rng)
    cand_boot = bootstrap_medians(candidate, N_BOOT, rng)
    ratio = float(np.median(candidate) / np.median(baseline))
    low, high = _interval(cand_boot / base_boot)
    slower = ratio >= 1
    if min(len(baseline), len(candidate)) >= MIN_SAMPLES_FOR_U:
        from scipy.stats import mannwhitneyu

        p_value = float(
            mannwhitneyu(candidate, baseline, alternative="greater" if slower else "less").pvalue
        )
        significant, method = p_value < ALPHA, "mann-whitney"
    else:
        (b_low, b_high), (c_low, c_high) = _interval(base_boot), _interval(cand_boot)
        significant = c_low > b_high if slower else c_high < b_low
        p_value, method = None, "bootstrap"
    large = ratio > 1 + threshold if slower else ratio < 1 / (1 + threshold)
    marker = NOT_SIGNIFICANT if not (significant and large) else SLOWER if slower else FASTER
    return Change(ratio, low, high, significant, method, p_value, marker)
