"""``edgebench report --format html``: one self-contained file that opens offline.

Inline CSS and inline SVG only (a Content-Security-Policy forbids every fetch, so a stray
reference would show as a console error, not a silent download).  Per device: the tables
of the Markdown report, the latency distribution (box plot and CDF), the sampled memory,
temperatures before and after each artifact, and latency against accuracy with the Pareto
set; across devices, the side-by-side comparison; for a plan, the trade-off tables.  The page
is drawn from the same sections as report.md (sections.py).
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Union

from edgebench.agent.record import Record
from edgebench.agent.stats import percentile

from ..analysis.families import families, pareto_set, scored, unstable
from ..store import Run, RunMeta
from .compare import side_by_side
from .markdown import run_sections
from .ops import stacked_bars
from .sections import NUM, TEXT, Block, Column, Facts, Notes, Section, Table
from .svg import Axis, Chart, Style, axis

REPORT_FILE = "report.html"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CDF_QUANTILES = [q / 2 for q in range(199)]  # 0 .. 99: the axis ends at the largest p99
CDF_MARKS = (50, 90, 99)  # quantiles that get the series' marker
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:1240px;padding:0 16px;color:#222;overflow-wrap:anywhere}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;
margin-top:32px}h3{font-size:15px;margin:20px 0 4px}
.scroll{overflow-x:auto;max-width:100%;margin:8px 0}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;overflow-wrap:normal}
th{background:#f4f4f4}td.text{white-space:nowrap}td.text:first-child{white-space:normal;
min-width:16em}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.error{color:#b00020}
ul{margin:4px 0;padding-left:20px}p{margin:8px 0}
.charts{display:flex;flex-wrap:wrap;gap:12px 28px}
figure{margin:8px 0;max-width:100%}figcaption{font-weight:600;margin-bottom:2px}
svg.chart{font-size:11px;background:#fff;max-width:100%;height:auto}svg .grid{stroke:#eee}
svg .frame{fill:none;stroke:#999}svg .label{font-size:12px;fill:#444}
svg .leader{stroke:#999;stroke-width:.8}
svg .tag{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.legend{font-size:12px;max-width:560px}
.legend span{display:inline-block;margin-right:12px}
.legend svg{vertical-align:middle;margin-right:4px}
.note{color:#666;font-size:12px}
"""


def write_report(store: Run) -> Union[Path, str]:
    """Write ``report.html`` into the run directory (or the store); returns where."""
    return store.write_text(REPORT_FILE, render_html(store))


def render_html(store: Run) -> str:
    """The sections of report.md, with the run's overview and (for several devices) the
    side-by-side comparison under the title, and each device's charts."""
    meta, records = store.meta(), store.records()
    parts = run_sections(meta, records)
    head = Section(parts[0].title, [_overview(meta)], level=1)
    devices = {r.device for r in records}
    extra = [_comparison(store)] if len(devices) > 1 else []
    names = dict.fromkeys(str(r.artifact["name"]) for r in records)
    styles = {name: Style(i) for i, name in enumerate(names)}
    body = [_section(s, styles) for s in [head] + extra + parts[1:]]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="%s">'
        '<link rel="icon" href="data:,"><title>edgebench %s</title><style>%s</style>'
        "</head><body>\n%s\n</body></html>\n" % (CSP, escape(store.run_id), STYLE, "\n".join(body))
    )


# --- Sections --------------------------------------------------------------------------------


def _section(section: Section, styles: Mapping[str, Style]) -> str:
    heading = (
        "<h%d>%s</h%d>" % (section.level, escape(section.title), section.level)
        if section.title
        else ""
    )
    inner = heading + "".join(_block(b, styles) for b in section.blocks)
    if section.anchor:
        return '<section id="%s">%s</section>' % (escape(section.anchor), inner)
    return inner


def _block(block: Block, styles: Mapping[str, Style]) -> str:
    if isinstance(block, Facts):
        return "<ul>%s</ul>" % "".join(
            "<li><strong>%s:</strong> %s</li>" % (escape(k), escape(v)) for k, v in block.items
        )
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Notes):
        lead = ""
        if block.text:
            text = "<em>%s</em>" % escape(block.text) if block.emphasis else escape(block.text)
            lead = "<p>%s</p>" % text
        bullets = "".join("<li>%s</li>" % escape(b) for b in block.bullets)
        return lead + ("<ul>%s</ul>" % bullets if bullets else "")
    return '<div class="charts">%s</div>' % "".join(_charts(block.records, styles))


def _table(table: Table) -> str:
    """A table in a box that scrolls sideways, so a wide one never widens the page."""
    head = "".join("<th>%s</th>" % escape(c.header) for c in table.columns)
    body = "".join("<tr>%s</tr>" % "".join(_cells(row, table.columns)) for row in table.rows)
    return (
        '<div class="scroll"><table><thead><tr>%s</tr></thead><tbody>%s</tbody></table></div>'
        % (head, body)
    )


def _cells(row: Sequence[str], columns: Sequence[Column]) -> List[str]:
    """The row's cells; an error where a figure would be spans the empty cells after it."""
    out, i = [], 0
    while i < len(row):
        cell, column = row[i], columns[i]
        if column.kind == NUM and cell.startswith("error"):
            span = 1
            while i + span < len(row) and not row[i + span]:
                span += 1
            out.append('<td class="error" colspan="%d">%s</td>' % (span, escape(cell)))
            i += span
            continue
        text = escape(cell) if column.kind == NUM else _breakable(cell)
        out.append('<td class="%s">%s</td>' % (column.kind, text))
        i += 1
    return out


def _breakable(text: str) -> str:
    """Escaped ``text`` that may wrap after its separators: a long artifact name takes a few
    lines of its column instead of widening the table."""
    return re.sub(r"([._+/-])(?=[A-Za-z])", r"\1<wbr>", escape(text))


def _overview(meta: RunMeta) -> Facts:
    request = meta.request
    facts = [
        ("Started", meta.created_at),
        ("Finished", meta.finished_at),
        ("Devices", ", ".join(meta.status)),
        (
            "Artifacts",
            ", ".join(
                "%s (sha256 %.12s)" % (a.get("name"), a.get("sha256"))
                for a in request.get("artifacts", [])
            ),
        ),
        ("Eval set", request.get("eval")),
    ]
    return Facts([(k, str(v)) for k, v in facts if v])


def _comparison(store: Run) -> Section:
    sbs = side_by_side([store])
    headers, rows = sbs.table()
    columns = [Column(headers[0], TEXT)] + [Column(h) for h in headers[1:]]
    failures = sbs.failures()
    blocks: List[Block] = [Table(columns, rows)]
    blocks += [Notes(bullets=failures)] if failures else []
    return Section("Devices side by side", blocks, anchor="side-by-side")


# --- Charts ----------------------------------------------------------------------------------


def _charts(records: Sequence[Record], styles: Mapping[str, Style]) -> List[str]:
    ok = [r for r in records if r.ok]
    if not ok:
        return ['<p class="note">No successful measurement to chart.</p>']
    return [
        c
        for c in (
            _latency(ok, styles)
            + [_memory(ok, styles), _temperatures(records), _tradeoff(ok, styles)]
            + [stacked_bars(ok)]
        )
        if c
    ]


def _name(record: Record) -> str:
    return str(record.artifact["name"])


def _latency(ok: Sequence[Record], styles: Mapping[str, Style]) -> List[str]:
    """A box plot (box p25-p75, median, whiskers p1-p99) and the CDF up to p99."""
    ms: Dict[str, List[float]] = {_name(r): sorted(s / 1e6 for s in r.samples_ns) for r in ok}
    x = axis([v[0] for v in ms.values()] + [percentile(v, 99) for v in ms.values()], "latency (ms)")
    box = Chart(
        "box", "Latency distribution (box p25–p75, whiskers p1–p99)", x, categories=list(ms)
    )
    for i, (name, values) in enumerate(ms.items()):
        p1, p25, p50, p75, p99 = (percentile(values, q) for q in (1, 25, 50, 75, 99))
        y, h = box.band(i)
        tip = "%s: p1 %.4g, p25 %.4g, median %.4g, p75 %.4g, p99 %.4g ms (n=%d)" % (
            name,
            p1,
            p25,
            p50,
            p75,
            p99,
            len(values),
        )
        color = styles[name].color
        box.line([(box.px(p1), y), (box.px(p25), y)], color)
        box.line([(box.px(p75), y), (box.px(p99), y)], color)
        for cap in (p1, p99):
            box.line([(box.px(cap), y - h * 0.2), (box.px(cap), y + h * 0.2)], color)
        box.rect(box.px(p25), y - h * 0.3, box.px(p75), y + h * 0.3, color, tip)
        box.line([(box.px(p50), y - h * 0.3), (box.px(p50), y + h * 0.3)], color, tip, 2.5)
    cdf = Chart("cdf", "Latency CDF", x, Axis(0, 100, "% of iterations"))
    for name, values in ms.items():
        style = styles[name]
        points = [(cdf.px(percentile(values, q)), cdf.py(q)) for q in CDF_QUANTILES]
        cdf.line(points, style.color, name, dash=style.dash)
        for q in CDF_MARKS:
            ms_q = percentile(values, q)
            cdf.marker(cdf.px(ms_q), cdf.py(q), style, "%s: p%d %.4g ms" % (name, q, ms_q))
        cdf.legend(name, style)
    return [box.render(), cdf.render()]


def _memory(ok: Sequence[Record], styles: Mapping[str, Style]) -> str:
    series = {_name(r): r.memory.get("series") or [] for r in ok}
    series = {name: s for name, s in series.items() if s}
    if not series:
        return ""
    points = [p for s in series.values() for p in s]
    chart = Chart(
        "memory",
        "Memory while measuring (RSS, sampled)",
        axis([p[0] for p in points], "seconds since the model loaded", zero=True),
        axis([p[1] for p in points], "RSS (MB)"),
    )
    for name, s in series.items():
        style = styles[name]
        chart.line([(chart.px(t), chart.py(mb)) for t, mb in s], style.color, name, dash=style.dash)
        t, mb = max(s, key=lambda p: p[1])
        chart.marker(chart.px(t), chart.py(mb), style, "%s: peak %.1f MB at %.2f s" % (name, mb, t))
        chart.legend(name, style)
    return chart.render()


def _temperatures(records: Sequence[Record]) -> str:
    """Per artifact in run order, each thermal zone before (hollow circle) and after (the
    zone's marker)."""
    rows = [r for r in records if r.fingerprint.get("temps_c_before")]
    if not rows:
        return ""
    zones = list(
        dict.fromkeys(
            z
            for r in rows
            for key in ("temps_c_before", "temps_c_after")
            for z in r.fingerprint.get(key) or {}
        )
    )
    temps = [
        t
        for r in rows
        for key in ("temps_c_before", "temps_c_after")
        for t in (r.fingerprint.get(key) or {}).values()
    ]
    chart = Chart(
        "temperatures",
        "Temperatures before → after each artifact",
        axis(temps, "°C", log=False),
        categories=[_name(r) for r in rows],
    )
    for z, zone in enumerate(zones):
        style = Style(z)
        chart.legend(zone, style)
        for i, r in enumerate(rows):
            y, h = chart.band(i)
            y += (z - (len(zones) - 1) / 2) * min(6.0, h / (len(zones) + 1))
            before = (r.fingerprint.get("temps_c_before") or {}).get(zone)
            after = (r.fingerprint.get("temps_c_after") or {}).get(zone)
            tip = "%s %s: %s → %s °C" % (_name(r), zone, before, after)
            if before is not None and after is not None:
                chart.line(
                    [(chart.px(before), y), (chart.px(after), y)], style.color, tip, dash=style.dash
                )
            if before is not None:
                chart.dot(chart.px(before), y, style.color, tip, hollow=True)
            if after is not None:
                chart.marker(chart.px(after), y, style, tip)
    return chart.render()


def _tradeoff(ok: Sequence[Record], styles: Mapping[str, Style]) -> str:
    """p50 against top-1; each family's Pareto set (analysis/families.py: one model in one
    format) is filled and joined, the dominated variants are hollow; an unstable
    measurement is labelled so."""
    points = scored(ok)
    if not points:
        return ""
    fronts = [pareto_set(members) for members in families(points).values()]
    front = [r for f in fronts for r in f]
    chart = Chart(
        "pareto",
        "Latency vs accuracy (Pareto set of each model and format filled)",
        # room around the dots for their labels
        axis([r.stats["p50_ms"] for r in points], "p50 latency (ms)", margin=0.1),
        axis([r.accuracy["top1"] * 100 for r in points], "top-1 (%)", margin=0.15),
    )
    for members in fronts:
        line = sorted(members, key=lambda r: r.stats["p50_ms"])
        chart.line(
            [(chart.px(r.stats["p50_ms"]), chart.py(r.accuracy["top1"] * 100)) for r in line],
            "#444",
            "Pareto set",
            1.2,
            dash="4 3",
        )
    for r in points:
        x, y = chart.px(r.stats["p50_ms"]), chart.py(r.accuracy["top1"] * 100)
        on_front = any(r is f for f in front)
        mark = " (unstable)" if unstable(r) else ""
        chart.dot(
            x,
            y,
            styles[_name(r)].color,
            "%s: p50 %.4g ms, top-1 %.2f%%%s%s"
            % (
                _name(r),
                r.stats["p50_ms"],
                r.accuracy["top1"] * 100,
                " (Pareto)" if on_front else "",
                mark,
            ),
            hollow=not on_front,
            r=5,
        )
        chart.label(x, y, _name(r) + mark)
    return chart.render()
