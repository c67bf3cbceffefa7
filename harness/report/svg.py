"""Inline SVG chart primitives for the HTML report: axes with nice ticks (linear or log),
an optional band axis of categories, and marks.  Tooltips are SVG ``<title>`` elements, so
the charts need no script and no network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import List, Optional, Sequence, Tuple

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
LOG_SPREAD = 10.0  # a positive axis spanning more than this factor goes logarithmic
TOP, BOTTOM, RIGHT = 12, 42, 16


@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    label: str = ""
    log: bool = False

    def frac(self, value: float) -> float:
        """Position of ``value`` along the axis, 0 at ``lo`` and 1 at ``hi``."""
        if self.log:
            return math.log(value / self.lo) / math.log(self.hi / self.lo)
        return (value - self.lo) / (self.hi - self.lo)

    def ticks(self) -> List[float]:
        if self.log:
            decades = range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
            steps = (1, 2, 5) if self.hi / self.lo < 1000 else (1,)  # labels must not collide
            ticks = [m * 10.0**d for d in decades for m in steps]
            inside = [t for t in ticks if self.lo <= t <= self.hi]
            return inside if len(inside) >= 2 else [self.lo, self.hi]
        raw = (self.hi - self.lo) / 5
        step = 10 ** math.floor(math.log10(raw))
        step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


def axis(
    values: Sequence[float], label: str = "", zero: bool = False, log: Optional[bool] = None
) -> Axis:
    """An axis covering ``values`` with a margin; logarithmic (unless ``log`` says) when
    they are positive and spread wider than :data:`LOG_SPREAD`."""
    lo, hi = min(values), max(values)
    if log is None:
        log = not zero and lo > 0 and hi / lo > LOG_SPREAD
    if log:
        return Axis(lo / 1.3, hi * 1.3, label, True)
    if zero:
        lo = min(lo, 0.0)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    return Axis(lo if zero and lo == 0 else lo - pad, hi + pad, label)


def fmt_tick(value: float) -> str:
    return "%.3g" % value


class Chart:
    """A plot area with a numeric x axis and either a numeric y axis or a band of
    categories (one row each, top to bottom)."""

    def __init__(
        self,
        kind: str,
        title: str,
        x: Axis,
        y: Optional[Axis] = None,
        categories: Sequence[str] = (),
        width: int = 560,
        height: Optional[int] = None,
    ) -> None:
        self.kind, self.title, self.x, self.y = kind, title, x, y
        self.categories = list(categories)
        self.width = width
        self.height = height or (TOP + BOTTOM + 26 * len(self.categories) if categories else 260)
        longest = max((len(c) for c in self.categories), default=0)
        self.left = max(56, min(220, 7 * longest + 12)) if categories else 60
        self.marks: List[str] = []
        self.legend_items: List[Tuple[str, str]] = []
        self._labels: List[Tuple[float, float, float]] = []  # x0, x1, baseline

    def px(self, value: float) -> float:
        return self.left + self.x.frac(value) * (self.width - self.left - RIGHT)

    def py(self, value: float) -> float:
        assert self.y is not None
        return self.height - BOTTOM - self.y.frac(value) * (self.height - TOP - BOTTOM)

    def band(self, index: int) -> Tuple[float, float]:
        """Centre and height of category row ``index``."""
        step = (self.height - TOP - BOTTOM) / max(1, len(self.categories))
        return TOP + step * (index + 0.5), step

    def line(
        self,
        points: Sequence[Tuple[float, float]],
        color: str,
        tip: str = "",
        width: float = 1.6,
        dash: bool = False,
    ) -> None:
        """A polyline in pixel coordinates."""
        path = " ".join("%.1f,%.1f" % p for p in points)
        self.marks.append(
            '<polyline points="%s" fill="none" stroke="%s" stroke-width="%s"%s>'
            "%s</polyline>"
            % (path, color, width, ' stroke-dasharray="4 3"' if dash else "", _tip(tip))
        )

    def dot(
        self, x: float, y: float, color: str, tip: str = "", hollow: bool = False, r: float = 4.0
    ) -> None:
        self.marks.append(
            '<circle cx="%.1f" cy="%.1f" r="%s" fill="%s" stroke="%s" '
            'stroke-width="1.5">%s</circle>'
            % (x, y, r, "white" if hollow else color, color, _tip(tip))
        )

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: str, tip: str = "") -> None:
        self.marks.append(
            '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" '
            'fill-opacity="0.35" stroke="%s">%s</rect>'
            % (min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0), color, color, _tip(tip))
        )

    def label(self, x: float, y: float, text: str) -> None:
        """Text beside the point (x, y), moved down until it overlaps no earlier label."""
        width = 6.2 * len(text) + 4
        right_half = x > self.left + (self.width - self.left) * 0.6
        x0 = x - 7 - width if right_half else x + 7
        y -= 7
        while any(x0 < b1 and b0 < x0 + width and abs(y - by) < 12 for b0, b1, by in self._labels):
            y += 12
        self._labels.append((x0, x0 + width, y))
        self.marks.append('<text x="%.1f" y="%.1f">%s</text>' % (x0, y, escape(text)))

    def legend(self, label: str, color: str) -> None:
        self.legend_items.append((label, color))

    def _axes(self) -> List[str]:
        out = []
        bottom, right = self.height - BOTTOM, self.width - RIGHT
        for t in self.x.ticks():
            x = self.px(t)
            out.append(
                '<line class="grid" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>'
                '<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                % (x, TOP, x, bottom, x, bottom + 15, fmt_tick(t))
            )
        out.append(
            '<text x="%.1f" y="%d" text-anchor="middle" class="label">%s</text>'
            % ((self.left + right) / 2, self.height - 8, escape(self.x.label))
        )
        if self.y is not None:
            for t in self.y.ticks():
                y = self.py(t)
                out.append(
                    '<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>'
                    '<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                    % (self.left, y, right, y, self.left - 5, y + 4, fmt_tick(t))
                )
            out.append(
                '<text transform="translate(13,%.1f) rotate(-90)" text-anchor="middle"'
                ' class="label">%s</text>' % ((TOP + bottom) / 2, escape(self.y.label))
            )
        for i, name in enumerate(self.categories):
            y, _ = self.band(i)
            out.append(
                '<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                % (self.left - 6, y + 4, escape(name))
            )
        out.append(
            '<rect class="frame" x="%d" y="%d" width="%d" height="%d"/>'
            % (self.left, TOP, right - self.left, bottom - TOP)
        )
        return out

    def _legend(self) -> str:
        """HTML under the chart, so a long list wraps instead of running off the plot."""
        if not self.legend_items:
            return ""
        return '<div class="legend">%s</div>' % "".join(
            '<span><i style="background:%s"></i>%s</span>' % (color, escape(label))
            for label, color in self.legend_items
        )

    def render(self) -> str:
        return (
            '<figure><figcaption>%s</figcaption><svg class="chart" data-chart="%s" '
            'role="img" viewBox="0 0 %d %d" width="%d" height="%d">%s</svg>%s</figure>'
            % (
                escape(self.title),
                escape(self.kind),
                self.width,
                self.height,
                self.width,
                self.height,
                "".join(self._axes() + self.marks),
                self._legend(),
            )
        )


def _tip(text: str) -> str:
    return "<title>%s</title>" % escape(text) if text else ""
