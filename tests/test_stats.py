import numpy as np
import pytest

from edgebench.agent.stats import percentile, summarize


def test_percentiles_match_numpy():
    rng = np.random.default_rng(1)
    values = sorted(rng.gamma(2.0, 1.0, size=501).tolist())
    for q in (1, 50, 90, 95, 99):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_summary_figures_and_throughput():
    samples = [2_000_000] * 40 + [2_200_000] * 10
    s = summarize(samples, batch_size=4)
    ms = np.array(samples) / 1e6
    assert s["n"] == 50
    assert s["mean_ms"] == pytest.approx(ms.mean())
    assert s["std_ms"] == pytest.approx(ms.std(ddof=1))
    assert s["p50_ms"] == pytest.approx(2.0)
    assert s["throughput_ips"] == pytest.approx(4 * 1000 / ms.mean())
    assert s["stable"] is True and s["stability_reasons"] == []


def test_wide_spread_is_unstable_with_reasons():
    rng = np.random.default_rng(2)
    samples = (rng.lognormal(0, 0.6, size=200) * 1e6).astype(int).tolist()
    s = summarize(samples)
    assert s["stable"] is False
    assert any("coefficient of variation" in r for r in s["stability_reasons"])


def test_few_samples_are_flagged():
    s = summarize([1_000_000] * 5)
    assert s["stable"] is False and "only 5 samples" in s["stability_reasons"][0]
