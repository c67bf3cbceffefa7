"""``edgebench report --history``: p50 and p90 over runs, per board x model slot, on one
offline HTML page (the run report's conventions: inline CSS and SVG, a Content-Security-
Policy that forbids every fetch), and the same data as JSON.

The series and their steps are history.py's (:func:`~..analysis.history.series`); this
module only names each point's verdict and draws it: a regression or an improvement
beyond the threshold, a break where the measurement definition changed (not comparable,
no step taken), a change of model file or runtime version (compared, and marked), and a
failed measurement.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from html import escape
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ..analysis.compare_stats import NOT_COMPARABLE
from ..analysis.history import Point, as_json, machine_label, marker
from ..formatting import fmt_ms
from .html import CSP, STYLE, _table
from .sections import NUM, TEXT, Column, Table
from .svg import BOTTOM, TOP, Axis, Chart, Style, axis

SLOWER, FASTER, BREAK, CHANGED, FAILED = (
    "slower",
    "faster",
    "not-comparable",
    "changed",
    "failed",
)
COLORS = {SLOWER: "#d62728", FASTER: "#2ca02c", BREAK: "#7f7f7f", CHANGED: "#9467bd"}
P50, P90 = Style(0), Style(1)
HISTORY_STYLE = ".verdicts td.text{white-space:normal}"

Series = Mapping[Tuple[Any, ...], List[Point]]


def verdict(point: Point, threshold: float) -> str:
    """What a point says against the point before it: ``slower``/``faster`` (a step beyond
    ``threshold``), ``not-comparable`` (a break: no step), ``changed`` (a new model file or
    runtime version, compared across), ``failed``, or "" (nothing to mark)."""
    if point.p50_ms is None:
        return FAILED
    if point.note.startswith(NOT_COMPARABLE):
        return BREAK
    mark = marker(point.step, threshold)
    if mark:
        return SLOWER if "slower" in mark else FASTER
    return CHANGED if point.note else ""


def history_json(
    entries: Sequence[Dict[str, Any]], found: Series, threshold: float
) -> Dict[str, Any]:
    """``history --json``'s document, each point with its :func:`verdict`."""
    doc = as_json(entries, found, threshold)
    for item, points in zip(doc["series"], found.values()):
        for shown, point in zip(item["points"], points):
            shown["verdict"] = verdict(point, threshold)
    return doc


@dataclass(frozen=True)
class RunAxis(Axis):
    """The x axis of a series: its runs in order, one step each, ticks labelled with the
    date of the run there."""

    dates: Tuple[str, ...] = ()

    def ticks(self) -> List[float]:
        return [t for t in super().ticks() if float(t).is_integer() and 0 <= t < len(self.dates)]

    def tick_labels(self) -> List[str]:
        return [self.dates[int(t)][5:10] for t in self.ticks()]  # MM-DD; the year is in the label


def _chart(title: str, points: Sequence[Point], threshold: float) -> str:
    dates = tuple(p.created_at or "" for p in points)
    span = "%s to %s" % (dates[0][:10], dates[-1][:10]) if dates[0] else ""
    x = RunAxis(-0.5, len(points) - 0.5, "runs, oldest first (%s)" % span, dates=dates)
    values = [v for p in points for v in (p.p50_ms, p.p90_ms) if v is not None]
    chart = Chart("history", title, x, axis(values or [0.0, 1.0], "latency ms", zero=True))
    assert chart.y is not None
    low, high = chart.py(chart.y.lo), chart.py(chart.y.hi)
    for style, label, key in ((P50, "p50", "p50_ms"), (P90, "p90", "p90_ms")):
        segment: List[Tuple[float, float]] = []  # a failure or a break ends a line
        for i, p in enumerate(points):
            value = getattr(p, key)
            if value is None or verdict(p, threshold) == BREAK:
                _line(chart, segment, style)
                segment = []
            if value is None:
                continue
            segment.append((chart.px(i), chart.py(value)))
            chart.marker(segment[-1][0], segment[-1][1], style, _tip(p, label, value))
        _line(chart, segment, style)
        chart.legend(label, style)
    for i, p in enumerate(points):
        kind = verdict(p, threshold)
        x_px = chart.px(i)
        if kind in (BREAK, CHANGED):
            chart.marks.append(
                '<line class="verdict %s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" '
                'stroke-dasharray="4 3"><title>%s</title></line>'
                % (kind, x_px, high, x_px, low, COLORS[kind], escape(p.note))
            )
            chart.label(x_px, TOP + 8, "not comparable" if kind == BREAK else "changed")
        elif kind in (SLOWER, FASTER):  # circled, the step in its tooltip and the table
            y_px = chart.py(p.p50_ms or 0.0)
            chart.marks.append(
                '<circle class="verdict %s" cx="%.1f" cy="%.1f" r="7" fill="none" stroke="%s" '
                'stroke-width="2"><title>%s</title></circle>'
                % (kind, x_px, y_px, COLORS[kind], escape(_step(p)))
            )
        elif kind == FAILED:
            chart.marks.append(
                '<text class="verdict failed" x="%.1f" y="%.1f" text-anchor="middle" '
                'fill="%s">×<title>%s</title></text>'
                % (x_px, chart.height - BOTTOM - 4, COLORS[SLOWER], escape("error: %s" % p.reason))
            )
    return chart.render()


def _line(chart: Chart, segment: List[Tuple[float, float]], style: Style) -> None:
    if len(segment) > 1:
        chart.line(segment, style.color, dash=style.dash)


def _step(point: Point) -> str:
    return "%+.1f%%" % (((point.step or 1.0) - 1) * 100)


def _tip(point: Point, label: str, value: float) -> str:
    return "%s %s ms · %s · %s · %s" % (
        label,
        fmt_ms(value),
        point.run_id,
        point.created_at,
        point.device,
    )


def _verdicts(points: Sequence[Point], threshold: float) -> str:
    """The marked points as a table: run, date, device, p50, p90, step and what it means."""
    rows = []
    for p in points:
        kind = verdict(p, threshold)
        if not kind:
            continue
        what = {
            SLOWER: "▲ slower",
            FASTER: "▼ faster",
            BREAK: p.note,
            CHANGED: p.note,
            FAILED: "error: %s" % p.reason,
        }[kind]
        if kind in (SLOWER, FASTER) and p.note:
            what += " (%s)" % p.note
        rows.append(
            [
                p.run_id,
                p.created_at,
                p.device,
                fmt_ms(p.p50_ms),
                fmt_ms(p.p90_ms),
                "" if p.step is None else _step(p),
                what,
            ]
        )
    if not rows:
        return '<p class="note">No regression, break or failure in this series.</p>'
    columns = [Column(h, TEXT) for h in ("Run", "Started", "Device")]
    columns += [Column(h, NUM) for h in ("p50 ms", "p90 ms", "Step")] + [Column("", TEXT)]
    return '<div class="verdicts">%s</div>' % _table(Table(columns, rows))


def render_history(
    entries: Sequence[Dict[str, Any]], found: Series, threshold: float, source: str
) -> str:
    """The page: a chart and a table of verdicts per board x model slot."""
    parts = [
        "<h1>edgebench history</h1>",
        '<p class="note">%s: %d runs; steps beyond ±%.0f%% against the previous comparable '
        "measurement are marked; generated %s.</p>"
        % (
            escape(source),
            len(entries),
            threshold * 100,
            datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        ),
    ]
    for (identity, name), points in found.items():
        title = "%s · %s" % (machine_label(entries, identity), name)
        parts.append(
            "<section><h2>%s</h2>%s%s</section>"
            % (escape(title), _chart(str(name), points, threshold), _verdicts(points, threshold))
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="%s">'
        '<link rel="icon" href="data:,"><title>edgebench history</title><style>%s%s</style>'
        "</head><body>\n%s\n</body></html>\n" % (CSP, STYLE, HISTORY_STYLE, "\n".join(parts))
    )
