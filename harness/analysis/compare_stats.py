"""Did it get slower?  Pure functions on the latency samples of two measurements, each given
as its rounds (the samples of one fresh process each).

Samples within one process are correlated and share its memory layout, allocator and
thread placement, so a test over them says "p<0.0001" while the next process lands 5%
away.  The figures here are computed over rounds instead:

- **Separate runs** (:func:`compare`): a hierarchical bootstrap -- resample a side's rounds,
  then each picked round's samples; a side's statistic is the mean of its round medians, the
  ratio candidate / baseline with its 95% interval, widened for few rounds by Student's t
  with the Welch-Satterthwaite degrees of freedom of the two sides' round spreads.  A side
  of one round cannot show its process-to-process spread: its draws are widened by an
  assumed :data:`PROCESS_CV`, a stand-in that says so in the verdict.
- **A/B on one board** (:func:`compare_paired`): baseline and candidate rounds interleaved
  in one window, so each pair shares the board's state at that moment (drift, heat, other
  load); the ratio is the geometric mean of the pairs' ratios of round medians, its
  interval Student's t over their logs.

The rule, the same for the verdict and its interval: a change counts when the whole 95%
interval lies on one side of 1.0 (significant) and the ratio is beyond the threshold
factor (large) -- so an interval that contains 1.0 is never a regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

LEVEL = 0.95
# The process-to-process CV of a median assumed for a side measured in one process: a
# few percent is what separate processes of one model commonly differ on a quiet machine.
PROCESS_CV = 0.03
N_BOOT = 2000
PAIRED = "paired A/B rounds"  # Change.method of compare_paired
SLOWER, FASTER, NOT_SIGNIFICANT, NOT_COMPARABLE = (
    "slower",
    "faster",
    "not significant",
    "not comparable",
)


@dataclass(frozen=True)
class Change:
    ratio: float  # candidate / baseline, mean round medians
    low: float  # the ratio's 95% interval
    high: float
    significant: bool  # the interval lies wholly on one side of 1.0
    method: str  # "hierarchical bootstrap" or "paired A/B rounds"
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


def _side(
    rounds: Sequence[Sequence[float]], n_boot: int, rng: np.random.Generator
) -> Tuple[np.ndarray, float, float]:
    """``n_boot`` hierarchical bootstrap draws of the log mean round median (each draw
    picks len(rounds) rounds with replacement, each pick a fresh resample of that round),
    and the side's share of the ratio's variance (s^2/R of the log round medians) and its
    degrees of freedom.

    The plain bootstrap sees a spread of R values as (R-1)/R of it, so the draws are
    scaled about their centre by sqrt(R/(R-1)); one round has an assumed spread and, being
    assumed, infinite degrees of freedom."""
    r = len(rounds)
    medians = np.stack([bootstrap_medians(x, r * n_boot, rng).reshape(r, n_boot) for x in rounds])
    if r == 1:
        return np.log(medians[0, 0]) + rng.normal(0.0, PROCESS_CV, n_boot), PROCESS_CV**2, math.inf
    pick = rng.integers(0, r, (r, n_boot))
    logs = np.log(medians[pick, np.arange(r)[:, None], np.arange(n_boot)].mean(axis=0))
    centre = np.log(np.mean([np.median(x) for x in rounds]))
    share = float(np.var(np.log([np.median(x) for x in rounds]), ddof=1)) / r
    return centre + (logs - centre) * math.sqrt(r / (r - 1)), share, float(r - 1)


def _welch_widening(sides: Sequence[Tuple[float, float]]) -> float:
    """t(df)/z for the 95% level, df by Welch-Satterthwaite from each side's (share of the
    variance, degrees of freedom); 1 when every side's spread is assumed."""
    total = sum(v for v, _ in sides)
    denom = sum(v * v / df for v, df in sides if math.isfinite(df))
    if total <= 0 or denom <= 0:
        return 1.0
    from scipy.stats import norm, t

    tail = (1 + LEVEL) / 2
    return float(t.ppf(tail, total * total / denom) / norm.ppf(tail))


def _change(
    ratio: float, draws: np.ndarray, threshold: float, method: str, rounds: Tuple[int, int]
) -> Change:
    """The verdict of ``draws`` of the ratio around ``ratio``: interval, p and marker."""
    low, high = _interval(draws)
    slower = ratio >= 1
    significant = low > 1 if slower else high < 1
    beyond = np.sum(draws <= 1) if slower else np.sum(draws >= 1)
    p_value = float((beyond + 1) / (len(draws) + 1))
    large = ratio > 1 + threshold if slower else ratio < 1 / (1 + threshold)
    marker = NOT_SIGNIFICANT if not (significant and large) else SLOWER if slower else FASTER
    return Change(ratio, low, high, significant, method, p_value, marker, rounds)


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
    cand, cand_var, cand_df = _side(candidate, N_BOOT, rng)
    base, base_var, base_df = _side(baseline, N_BOOT, rng)
    ratio = float(
        np.mean([np.median(r) for r in candidate]) / np.mean([np.median(r) for r in baseline])
    )
    logs = cand - base
    centre = math.log(ratio)
    widen = _welch_widening([(cand_var, cand_df), (base_var, base_df)])
    draws = np.exp(centre + (logs - centre) * widen)
    return _change(
        ratio, draws, threshold, "hierarchical bootstrap", (len(baseline), len(candidate))
    )


def compare_paired(
    pairs: Sequence[Tuple[Sequence[float], Sequence[float]]], threshold: float = 0.05
) -> Change:
    """How the candidate differs from the baseline measured A/B: ``pairs`` of (baseline
    round, candidate round) samples, each pair run back to back on one board.  Needs two
    pairs or more: one pair shows no spread."""
    if len(pairs) < 2 or not all(len(b) and len(c) for b, c in pairs):
        raise ValueError("A/B needs two or more pairs of rounds with samples")
    from scipy.stats import t

    logs = np.array([math.log(np.median(c) / np.median(b)) for b, c in pairs])
    n = len(logs)
    centre, scale = float(logs.mean()), float(logs.std(ddof=1)) / math.sqrt(n)
    # the t distribution of the mean log ratio at evenly spaced quantiles, so that the
    # interval, p and verdict come out of _change as for the bootstrap
    grid = (np.arange(N_BOOT * 5) + 0.5) / (N_BOOT * 5)
    with np.errstate(over="ignore"):  # the far tails of t(1) overflow: harmless infinities
        draws = np.exp(centre + scale * t.ppf(grid, n - 1))
    return _change(math.exp(centre), draws, threshold, PAIRED, (n, n))
