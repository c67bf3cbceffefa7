import numpy as np
import pytest

from edgebench.harness.analysis.compare_stats import (
    FASTER,
    NOT_SIGNIFICANT,
    SLOWER,
    bootstrap_medians,
    compare,
)


def series(median: float, n: int, seed: int, spread: float = 0.05) -> np.ndarray:
    return np.random.default_rng(seed).normal(median, median * spread, n)


@pytest.mark.parametrize("n", [7, 8, 25])
def test_bootstrap_medians_match_naive_resampling(n):
    values = np.random.default_rng(1).lognormal(0, 0.5, n)
    fast = bootstrap_medians(values, 40_000, np.random.default_rng(2))
    naive = np.median(values[np.random.default_rng(3).integers(0, n, (40_000, n))], axis=1)
    for q in (2.5, 25, 50, 75, 97.5):
        assert np.percentile(fast, q) == pytest.approx(np.percentile(naive, q), rel=0.03)


def rounds(median: float, k: int, seed: int, spread: float = 0.05, between: float = 0.01):
    """``k`` rounds of 1000 samples whose medians differ by about ``between`` (CV)."""
    rng = np.random.default_rng(seed + 100)
    return [
        series(median * (1 + rng.normal(0, between)), 1000, seed * 10 + i, spread) for i in range(k)
    ]


def test_identical_distributions_are_not_significant():
    change = compare(rounds(10, 3, 1), rounds(10, 3, 2))
    assert change.marker == NOT_SIGNIFICANT and not change.significant
    assert change.method == "hierarchical bootstrap" and change.p_value > 0.025
    assert change.low < 1 < change.high and change.rounds == (3, 3)


def test_ten_percent_slower_over_rounds_is_a_regression():
    change = compare(rounds(10, 3, 1), rounds(11, 3, 2))
    assert change.marker == SLOWER and change.regression
    assert change.ratio == pytest.approx(1.10, abs=0.03)
    assert change.low < change.ratio < change.high and change.low > 1
    assert change.p_value < 0.01 and not change.assumed_spread


def test_three_percent_slower_is_significant_but_not_a_regression():
    base, cand = rounds(10, 5, 1, 0.01, 0.002), rounds(10.3, 5, 2, 0.01, 0.002)
    change = compare(base, cand)
    assert change.significant and change.low > 1
    assert change.marker == NOT_SIGNIFICANT and not change.regression


def test_threshold_is_configurable():
    base, cand = rounds(10, 5, 1, 0.01, 0.002), rounds(10.3, 5, 2, 0.01, 0.002)
    assert compare(base, cand, threshold=0.02).marker == SLOWER


def test_faster():
    change = compare(rounds(10, 3, 1), rounds(8, 3, 2))
    assert change.marker == FASTER and not change.regression and change.ratio < 0.85


def test_one_process_samples_alone_are_not_trusted():
    """100 000 samples of one process each: a within-process test would call 1.04x
    p<0.0001; one round a side widens the interval by the assumed process spread."""
    one = compare([series(10, 20_000, 1, 0.01)], [series(10.4, 20_000, 2, 0.01)], 0.01)
    assert one.assumed_spread and one.rounds == (1, 1)
    assert one.low < 1 < one.high and one.marker == NOT_SIGNIFICANT
    clear = compare([series(10, 1000, 1)], [series(12, 1000, 2)])
    assert clear.marker == SLOWER and clear.low > 1


def test_spread_between_processes_widens_the_interval():
    """Tight samples, but round medians 5% apart: the interval is as wide as the rounds."""
    base = rounds(10, 4, 1, 0.005, 0.05)
    cand = rounds(10.6, 4, 2, 0.005, 0.05)
    change = compare(base, cand)
    assert change.high - change.low > 0.05
    assert change.regression == (change.low > 1 and change.ratio > 1.05)


@pytest.mark.parametrize("seed", range(12))
def test_an_interval_containing_one_is_never_a_fail(seed):
    rng = np.random.default_rng(seed)
    k_base, k_cand = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    change = compare(
        rounds(10, k_base, seed, 0.05, 0.05), rounds(10.8, k_cand, seed + 50, 0.05, 0.05)
    )
    if change.low <= 1 <= change.high:
        assert not change.regression and change.marker == NOT_SIGNIFICANT
    if change.regression:
        assert change.low > 1 and change.ratio > 1.05


def test_deterministic_and_rejects_empty_series():
    a, b = rounds(10, 2, 1), rounds(11, 2, 2)
    assert compare(a, b) == compare(a, b)
    with pytest.raises(ValueError):
        compare([], b)
    with pytest.raises(ValueError):
        compare([[]], b)
