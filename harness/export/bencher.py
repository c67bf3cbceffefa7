"""``edgebench export RUN --to bencher``: Bencher Metric Format (BMF) JSON.

One benchmark per device x artifact (``device/artifact``), each with measures: ``latency``
(Bencher's built-in measure, in nanoseconds: the p50 with its 95 % interval as lower and
upper value), ``latency-p90`` and ``latency-p99`` (ns), ``throughput`` (built-in,
inferences per second), ``peak-rss-mb``, ``top-1`` and ``energy-mj`` when measured.  BMF has
no way to say "failed": a failed record is left out (never a zero latency) and named by the
caller.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from edgebench.agent.record import Record

from ..summary import row

Metric = Dict[str, float]
NS_PER_MS = 1e6
# measure slug -> (summary column, factor to the measure's unit)
MEASURES = (
    ("latency-p90", "p90_ms", NS_PER_MS),
    ("latency-p99", "p99_ms", NS_PER_MS),
    ("throughput", "throughput_ips", 1.0),
    ("peak-rss-mb", "peak_rss_mb", 1.0),
    ("top-1", "top1", 1.0),
    ("energy-mj", "energy_mj", 1.0),
)


def benchmark_name(record: Record) -> str:
    return "%s/%s" % (record.device, record.artifact["name"])


def _latency(record: Record) -> Optional[Metric]:
    p50 = record.stats.get("p50_ms")
    if p50 is None:
        return None
    out = {"value": p50 * NS_PER_MS}
    interval = record.stats.get("p50_ci_ms")
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        out.update(lower_value=interval[0] * NS_PER_MS, upper_value=interval[1] * NS_PER_MS)
    return out


def bmf(records: Sequence[Record]) -> Dict[str, Dict[str, Metric]]:
    """The BMF document of the ok records."""
    doc: Dict[str, Dict[str, Metric]] = {}
    for record in records:
        if not record.ok:
            continue
        measures: Dict[str, Metric] = {}
        latency = _latency(record)
        if latency is not None:
            measures["latency"] = latency
        figures: Dict[str, Any] = row(record)
        for slug, column, factor in MEASURES:
            value = figures.get(column)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                measures[slug] = {"value": value * factor}
        doc[benchmark_name(record)] = measures
    return doc
