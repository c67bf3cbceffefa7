"""Inline SVG chart primitives for the HTML report: axes with nice ticks (linear or log)
labelled with as many decimals as their step needs, an optional band axis of categories,
marks, and labels placed at their points without overlap.  A series is told apart by colour,
dash pattern and marker shape together, so ten lines stay distinguishable.  Text too long
for its room is shortened in the middle with the full text in a ``<title>`` tooltip, so the
charts need no script and no network and clip nothing.
"""

from __future__ import annotations

import math
import os
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
DASHES = ("", "6 3", "2 2", "8 3 2 3", "1 3", "10 4")
MARKERS = ("circle", "square", "triangle", "diamond", "down", "plus", "cross")
SEPARATORS = "._-+/ "
MIN_PREFIX = 16  # a shared prefix shorter than this is kept: it is no burden
CHAR_PX = 6.6  # width of one character of 11 px chart text, generously
LOG_SPREAD = 10.0  # a positive axis spanning more than this factor goes logarithmic
TOP, BOTTOM, RIGHT = 12, 42, 16
Box = Tuple[float, float, float, float]  # x0, y0, x1, y1


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
        span = self.hi - self.lo  # steps of 1, 2 or 5 × 10^k; at most 9 of them
        step = 10 ** math.floor(math.log10(span / 9))
        step *= next(m for m in (1, 2, 5, 10) if span / (step * m) <= 9)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]

    def tick_labels(self) -> List[str]:
        """Distinct labels: linear ticks get the decimals their step needs (101.5, not 102)."""
        ticks = self.ticks()
        if self.log or len(ticks) < 2:
            return ["%g" % t for t in ticks]
        decimals = max(0, -math.floor(math.log10(ticks[1] - ticks[0]) + 1e-9))
        return ["%.*f" % (decimals, t) for t in ticks]


@dataclass(frozen=True)
class Style:
    """How series ``index`` is drawn: colour, dash pattern and marker shape all vary."""

    index: int

    @property
    def color(self) -> str:
        return PALETTE[self.index % len(PALETTE)]

    @property
    def dash(self) -> str:
        return DASHES[self.index % len(DASHES)]

    @property
    def marker(self) -> str:
        return MARKERS[self.index % len(MARKERS)]


def shorten(text: str, chars: int) -> str:
    """``text`` in at most ``chars`` characters, its middle replaced by an ellipsis (the
    ends tell variants of one model apart)."""
    if len(text) <= chars:
        return text
    keep = max(1, chars - 1)
    return text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]


def tails(names: Sequence[str], chars: int) -> List[str]:
    """``names`` as shown in a chart: a long prefix they all share becomes "…" (variants
    of one model differ at the end), then each is shortened to ``chars`` characters."""
    prefix = os.path.commonprefix(list(names)) if len(set(names)) > 1 else ""
    # back to the start of the prefix's last word: "…keras.onnx", "…keras.int8.onnx"
    cut = max((prefix[:-1].rfind(c) for c in SEPARATORS), default=-1) + 1
    drop = cut if cut >= MIN_PREFIX else 0
    return [shorten("…" + n[drop:] if drop else n, chars) for n in names]


def text_px(text: str) -> float:
    return CHAR_PX * len(text)


def axis(
    values: Sequence[float],
    label: str = "",
    zero: bool = False,
    log: Optional[bool] = None,
    margin: float = 0.05,
) -> Axis:
    """An axis covering ``values`` with a ``margin`` (a fraction of their span) each side;
    logarithmic (unless ``log`` says) when they are positive and spread wider than
    :data:`LOG_SPREAD`."""
    lo, hi = min(values), max(values)
    if log is None:
        log = not zero and lo > 0 and hi / lo > LOG_SPREAD
    if log:
        return Axis(lo / 1.3, hi * 1.3, label, True)
    if zero:
        lo = min(lo, 0.0)
    pad = (hi - lo) * margin or abs(hi) * margin or 1.0
    return Axis(lo if zero and lo == 0 else lo - pad, hi + pad, label)


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
        longest = max((text_px(c) for c in tails(self.categories, 80)), default=0.0)
        # category names get at most 40% of the width; longer ones are shortened
        self.left = int(max(56, min(0.4 * width, longest + 12))) if categories else 60
        self.marks: List[str] = []
        self.legend_items: List[Tuple[str, Style]] = []
        self._dots: List[Tuple[float, float]] = []
        self._path: List[Tuple[float, float]] = []  # points along the lines, every few px
        self._labels: List[Tuple[float, float, str]] = []  # placed at render time

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
        dash: str = "",
    ) -> None:
        """A polyline in pixel coordinates; ``dash`` is an SVG dash array ("4 3")."""
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / 4))
            self._path += [
                (x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(steps)
            ]
        path = " ".join("%.1f,%.1f" % p for p in points)
        self.marks.append(
            '<polyline points="%s" fill="none" stroke="%s" stroke-width="%s"%s>'
            "%s</polyline>"
            % (path, color, width, ' stroke-dasharray="%s"' % dash if dash else "", _tip(tip))
        )

    def dot(
        self, x: float, y: float, color: str, tip: str = "", hollow: bool = False, r: float = 4.0
    ) -> None:
        self._dots.append((x, y))
        self.marks.append(
            '<circle cx="%.1f" cy="%.1f" r="%s" fill="%s" stroke="%s" '
            'stroke-width="1.5">%s</circle>'
            % (x, y, r, "white" if hollow else color, color, _tip(tip))
        )

    def marker(self, x: float, y: float, style: Style, tip: str = "") -> None:
        """The series' marker shape at (x, y)."""
        self.marks.append(_marker(x, y, style, _tip(tip)))

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: str, tip: str = "") -> None:
        self.marks.append(
            '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" '
            'fill-opacity="0.35" stroke="%s">%s</rect>'
            % (min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0), color, color, _tip(tip))
        )

    def label(self, x: float, y: float, text: str) -> None:
        """Name the point (x, y); placed when the chart renders, beside its point and clear
        of every other label and dot."""
        self._labels.append((x, y, text))

    def legend(self, label: str, style: Style) -> None:
        self.legend_items.append((label, style))

    def _place_labels(self) -> List[str]:
        """Each label at the best spot around its point: right, left, above, below, the
        diagonals, then the same further out with a leader line; the first spot inside the
        plot that overlaps no placed label and no dot, else the one that overlaps least."""
        placed: List[Box] = []
        out = []
        right, bottom = self.width - RIGHT, self.height - BOTTOM
        plot = (self.left + 2.0, TOP + 1.0, right - 2.0, bottom - 1.0)
        texts = [text for _, _, text in self._labels]
        chars = int((right - self.left) * 0.4 / CHAR_PX)
        for (x, y, text), shown in zip(self._labels, tails(texts, chars)):
            w, h = text_px(shown), 12.0
            spots = []
            for gap in (6.0, 18.0, 32.0, 48.0):
                for dx, dy in (
                    (1, 0),
                    (-1, 0),
                    (0, -1),
                    (0, 1),
                    (1, -1),
                    (1, 1),
                    (-1, -1),
                    (-1, 1),
                ):
                    x0 = x + gap if dx > 0 else x - gap - w if dx < 0 else x - w / 2
                    y0 = y - h / 2 + dy * (gap + h / 2) * (0.7 if dx else 1)
                    spots.append(((x0, y0, x0 + w, y0 + h), gap))
            box, gap = min(spots, key=lambda spot: self._crowding(spot[0], placed, plot))
            x0, y0, x1, y1 = box
            placed.append(box)
            if gap > 6:  # a leader from the dot to the nearest edge of the label
                lx, ly = min(max(x, x0), x1), min(max(y, y0), y1)
                out.append(
                    '<line class="leader" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>'
                    % (x, y, lx, ly)
                )
            out.append(
                '<text class="tag" x="%.1f" y="%.1f">%s%s</text>'
                % (x0, y1 - 3, escape(shown), _tip(text) if shown != text else "")
            )
        return out

    def _crowding(self, box: Box, placed: Sequence[Box], plot: Box) -> float:
        """How badly a label at ``box`` sits: area outside the plot or over placed labels
        (weighted), the dots it covers, and a little for each stretch of line it covers;
        0 for a clear spot."""
        bad = _area(box) - _overlap(box, plot)
        bad += sum(4 * _overlap(box, other) for other in placed)
        x0, y0, x1, y1 = box
        bad += sum(100 for dx, dy in self._dots if x0 - 5 < dx < x1 + 5 and y0 - 5 < dy < y1 + 5)
        return bad + sum(4 for lx, ly in self._path if x0 < lx < x1 and y0 < ly < y1)

    def _axes(self) -> List[str]:
        out = []
        bottom, right = self.height - BOTTOM, self.width - RIGHT
        for t, text in zip(self.x.ticks(), self.x.tick_labels()):
            x = self.px(t)
            out.append(
                '<line class="grid" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>'
                '<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                % (x, TOP, x, bottom, x, bottom + 15, text)
            )
        out.append(
            '<text x="%.1f" y="%d" text-anchor="middle" class="label">%s</text>'
            % ((self.left + right) / 2, self.height - 8, escape(self.x.label))
        )
        if self.y is not None:
            for t, text in zip(self.y.ticks(), self.y.tick_labels()):
                y = self.py(t)
                out.append(
                    '<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>'
                    '<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                    % (self.left, y, right, y, self.left - 5, y + 4, text)
                )
            out.append(
                '<text transform="translate(13,%.1f) rotate(-90)" text-anchor="middle"'
                ' class="label">%s</text>' % ((TOP + bottom) / 2, escape(self.y.label))
            )
        chars = int((self.left - 10) / CHAR_PX)
        for i, (name, shown) in enumerate(zip(self.categories, tails(self.categories, chars))):
            y, _ = self.band(i)
            out.append(
                '<text x="%d" y="%.1f" text-anchor="end">%s%s</text>'
                % (self.left - 6, y + 4, escape(shown), _tip(name) if shown != name else "")
            )
        out.append(
            '<rect class="frame" x="%d" y="%d" width="%d" height="%d"/>'
            % (self.left, TOP, right - self.left, bottom - TOP)
        )
        return out

    def _legend(self) -> str:
        """HTML under the chart, so a long list wraps instead of running off the plot; each
        entry shows its series' colour, dash and marker."""
        if not self.legend_items:
            return ""
        labels = [label for label, _ in self.legend_items]
        return '<div class="legend">%s</div>' % "".join(
            '<span title="%s"><svg width="30" height="12" viewBox="0 0 30 12">%s%s</svg>%s</span>'
            % (
                escape(label),
                '<line x1="1" y1="6" x2="29" y2="6" stroke="%s" stroke-width="1.6"%s/>'
                % (style.color, ' stroke-dasharray="%s"' % style.dash if style.dash else ""),
                _marker(15, 6, style, ""),
                escape(shown),
            )
            for (label, style), shown in zip(self.legend_items, tails(labels, 80))
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
                "".join(self._axes() + self.marks + self._place_labels()),
                self._legend(),
            )
        )


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _marker(x: float, y: float, style: Style, tip: str) -> str:
    r, c = 3.5, style.color
    shapes = {
        "circle": '<circle cx="%.1f" cy="%.1f" r="%s"' % (x, y, r),
        "square": '<rect x="%.1f" y="%.1f" width="%s" height="%s"' % (x - r, y - r, 2 * r, 2 * r),
        "triangle": '<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f"'
        % (x, y - r - 0.5, x - r, y + r, x + r, y + r),
        "diamond": '<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f"'
        % (x, y - r - 1, x + r, y, x, y + r + 1, x - r, y),
        "down": '<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f"'
        % (x, y + r + 0.5, x - r, y - r, x + r, y - r),
        "plus": '<path d="M%.1f %.1fh%sM%.1f %.1fv%s"' % (x - r, y, 2 * r, x, y - r, 2 * r),
        "cross": '<path d="M%.1f %.1fl%s %sM%.1f %.1fl%s -%s"'
        % (x - r, y - r, 2 * r, 2 * r, x - r, y + r, 2 * r, 2 * r),
    }
    stroke_only = style.marker in ("plus", "cross")
    return '%s fill="%s" stroke="%s" stroke-width="%s">%s</%s>' % (
        shapes[style.marker],
        "none" if stroke_only else c,
        c,
        2 if stroke_only else 1,
        tip,
        shapes[style.marker][1:].split(" ")[0],
    )


def _tip(text: str) -> str:
    return "<title>%s</title>" % escape(text) if text else ""
