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


def test_identical_distributions_are_not_significant():
    change = compare(series(10, 1000, 1), series(10, 1000, 2))
    assert change.marker == NOT_SIGNIFICANT and not change.significant
    assert change.method == "mann-whitney" and change.p_value > 0.01
    assert change.low < 1 < change.high


def test_ten_percent_slower_with_1000_samples_is_a_regression():
    change = compare(series(10, 1000, 1), series(11, 1000, 2))
    assert change.marker == SLOWER and change.regression
    assert change.ratio == pytest.approx(1.10, abs=0.01)
    assert change.low < change.ratio < change.high and change.low > 1.05
    assert change.p_value < 1e-6


def test_three_percent_slower_is_significant_but_not_a_regression():
    change = compare(series(10, 1000, 1, 0.01), series(10.3, 1000, 2, 0.01))
    assert change.significant and change.p_value < 1e-6
    assert change.marker == NOT_SIGNIFICANT and not change.regression


def test_threshold_is_configurable():
    base, cand = series(10, 1000, 1, 0.01), series(10.3, 1000, 2, 0.01)
    assert compare(base, cand, threshold=0.02).marker == SLOWER


def test_faster():
    change = compare(series(10, 1000, 1), series(8, 1000, 2))
    assert change.marker == FASTER and not change.regression and change.ratio < 0.85


def test_small_samples_use_bootstrap_intervals():
    clear = compare(series(10, 10, 1), series(20, 10, 2))
    assert clear.method == "bootstrap" and clear.p_value is None
    assert clear.marker == SLOWER
    noisy = compare(series(10, 10, 1, 0.3), series(11, 10, 2, 0.3))
    assert noisy.marker == NOT_SIGNIFICANT and not noisy.significant


def test_deterministic_and_rejects_empty_series():
    a, b = series(10, 50, 1), series(11, 50, 2)
    assert compare(a, b) == compare(a, b)
    with pytest.raises(ValueError):
        compare([], b)
