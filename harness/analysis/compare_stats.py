"""Did it get slower?  Pure functions on the latency samples of two measurements, each given
as its rounds (the samples of one fresh process each).

Samples within one process are correlated and share its memory layout, allocator and
thread placement, so a test over them says "p<0.0001" while the next process lands 5%
away.  The figures here are computed over rounds instead, by a hierarchical bootstrap:
resample a side's rounds, then each picked round's samples; a side's statistic is the mean
of its round medians, the ratio candidate / baseline with its 95% interval (widened for
few rounds by the small-sample t factor, see :func:`_side`).  A side of one
round cannot show its process-to-process spread: its draws are widened by an assumed
:data:`PROCESS_CV`, a conservative stand-in that says so in the verdict.

The rule, the same for the verdict and its interval: a change counts when the whole 95%
interval lies on one side of 1.0 (significant) and the ratio is beyond the threshold
factor (large) -- so an interval that contains 1.0 is never a regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

LEVEL = 0.95
# The process-to-process CV of a median assumed for a side measured in one process: a
# few percent is what separate processes of one model commonly differ on a quiet machine.
PROCESS_CV = 0.03
N_BOOT = 2000
SLOWER, FASTER, NOT_SIGNIFICANT, NOT_COMPARABLE = (
    "slower",
    "faster",
    "not significant",
    "not comparable",
)


@dataclass(frozen=True)
class Change:
    ratio: float  # candidate / baseline, mean round medians
    low: float  # the ratio's 95% interval (hierarchical bootstrap)
    high: float
    significant: bool  # the interval lies wholly on one side of 1.0
    method: str  # "hierarchical bootstrap"
    p_value: float  # one-sided bootstrap p, in the direction of the change
    marker: str  # SLOWER, FASTER or NOT_SIGNIFICANT
    rounds: Tuple[int, int] = (1, 1)  # baseline's, candidate's

    @property
    def assumed_spread(self) -> bool:
        """A side had one round: its process-to-process spread is assumed, not measured."""
        return min(self.rounds) < 2

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


def _side(rounds: Sequence[Sequence[float]], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` hierarchical bootstrap draws of the mean round median: each draw picks
    len(rounds) rounds with replacement, each pick a fresh resample of that round.

    With few rounds the plain bootstrap is too narrow (it sees a spread of R values as
    (R-1)/R of it, and its tails are normal where Student's t is due), so the draws are
    widened about their centre by sqrt(R/(R-1)) * t(R-1)/z -- the small-sample factor."""
    r = len(rounds)
    medians = np.stack([bootstrap_medians(x, r * n_boot, rng).reshape(r, n_boot) for x in rounds])
    if r == 1:
        return medians[0, 0] * np.exp(rng.normal(0.0, PROCESS_CV, n_boot))
    from scipy.stats import norm, t

    pick = rng.integers(0, r, (r, n_boot))
    logs = np.log(medians[pick, np.arange(r)[:, None], np.arange(n_boot)].mean(axis=0))
    centre = np.log(np.mean([np.median(x) for x in rounds]))
    tail = (1 + LEVEL) / 2
    widen = np.sqrt(r / (r - 1)) * t.ppf(tail, r - 1) / norm.ppf(tail)
    return np.exp(centre + (logs - centre) * widen)


def compare(
    baseline: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    threshold: float = 0.05,
    seed: int = 0,
) -> Change:
    """How ``candidate`` differs from ``baseline`` (each: the samples of its rounds);
    ``threshold`` 0.05 means a slowdown must exceed 5% (and a speed-up 1.05x) to count."""
    if not baseline or not candidate or not all(len(r) for r in (*baseline, *candidate)):
        raise ValueError("both sides need rounds with samples")
    rng = np.random.default_rng(seed)
    draws = _side(candidate, N_BOOT, rng) / _side(baseline, N_BOOT, rng)
    ratio = float(
        np.mean([np.median(r) for r in candidate]) / np.mean([np.median(r) for r in baseline])
    )
    low, high = _interval(draws)
    slower = ratio >= 1
    significant = low > 1 if slower else high < 1
    beyond = np.sum(draws <= 1) if slower else np.sum(draws >= 1)
    p_value = float((beyond + 1) / (N_BOOT + 1))
    large = ratio > 1 + threshold if slower else ratio < 1 / (1 + threshold)
    marker = NOT_SIGNIFICANT if not (significant and large) else SLOWER if slower else FASTER
    return Change(
        ratio,
        low,
        high,
        significant,
        "hierarchical bootstrap",
        p_value,
        marker,
        (len(baseline), len(candidate)),
    )
