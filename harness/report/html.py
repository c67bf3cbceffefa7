"""``edgebench report --format html``: one self-contained file that opens offline.

Inline CSS and inline SVG only (a Content-Security-Policy forbids every fetch, so a stray
reference would show as a console error, not a silent download).  Per device: the tables
of the Markdown report, the latency distribution (box plot and CDF), the sampled memory,
temperatures before and after each artifact, and latency against accuracy with the Pareto
set; across devices, the side-by-side comparison.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from edgebench.agent.record import Record
from edgebench.agent.stats import percentile

from ..analysis.families import pareto
from ..store import RunStore
from .compare import side_by_side
from .markdown import device_section, how_measured
from .svg import PALETTE, Axis, Chart, axis

REPORT_FILE = "report.html"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CDF_QUANTILES = [q / 2 for q in range(199)]  # 0 .. 99: the axis ends at the largest p99
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:1240px;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;
margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.error{color:#b00020}
ul{margin:4px 0;padding-left:20px}.charts{display:flex;flex-wrap:wrap;gap:12px 28px}
figure{margin:8px 0}figcaption{font-weight:600;margin-bottom:2px}
svg.chart{font-size:11px;background:#fff}svg .grid{stroke:#eee}
svg .frame{fill:none;stroke:#999}svg .label{font-size:12px;fill:#444}
.legend{font-size:12px;max-width:560px}.legend span{margin-right:12px;white-space:nowrap}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.note{color:#666;font-size:12px}
"""


def write_report(store: RunStore) -> Path:
    """Write ``report.html`` into the run directory; returns its path."""
    return store.write_text(REPORT_FILE, render_html(store))


def render_html(store: RunStore) -> str:
    meta, records = store.meta(), store.records()
    status: Mapping[str, Mapping[str, str]] = meta.get("status") or {}
    devices = list(dict.fromkeys(list(status) + [r.device for r in records]))
    names = dict.fromkeys(str(r.artifact["name"]) for r in records)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    body = ["<h1>edgebench run %s</h1>" % escape(store.run_id), _overview(meta)]
    if len(devices) > 1 and records:
        body.append(_comparison(store))
    for device in devices:
        mine = sorted((r for r in records if r.device == device), key=lambda r: r.started_at)
        section = _markdown(device_section(device, mine, status.get(device, {})))
        body.append(
            '<section id="device-%s">%s<div class="charts">%s</div></section>'
            % (escape(device), section, "".join(_charts(mine, colors)))
        )
    settings = {repr(sorted(r.settings.items())): r.settings for r in records if r.settings}
    body += [
        '<p class="note">How measured: %s.</p>' % escape(how_measured(s)) for s in settings.values()
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="%s">'
        '<link rel="icon" href="data:,"><title>edgebench %s</title><style>%s</style>'
        "</head><body>\n%s\n</body></html>\n" % (CSP, escape(store.run_id), STYLE, "\n".join(body))
    )


# --- Tables ----------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    head = "".join("<th>%s</th>" % escape(h) for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            '<td class="%s">%s</td>'
            % ("error" if cell.startswith("error") else "num" if num else "", escape(cell))
            for cell, num in zip(row, numeric)
        )
        body.append("<tr>%s</tr>" % cells)
    return "<table><thead><tr>%s</tr></thead><tbody>%s</tbody></table>" % (head, "".join(body))


def _inline(text: str) -> str:
    html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escape(text))
    return re.sub(r"^_(.+)_$", r"<em>\1</em>", html)


def _md_row(line: str) -> List[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def _markdown(lines: Sequence[str]) -> str:
    """HTML for the Markdown that harness.report writes: headings, bullets, tables and
    paragraphs -- so the HTML report shows exactly what report.md shows."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        prefix = "|" if line.startswith("|") else "- " if line.startswith("- ") else None
        if prefix is None:
            i += 1
            if line.startswith("## "):
                out.append("<h2>%s</h2>" % _inline(line[3:]))
            elif line.strip():
                out.append("<p>%s</p>" % _inline(line))
            continue
        block = []
        while i < len(lines) and lines[i].startswith(prefix):
            block.append(lines[i])
            i += 1
        if prefix == "|":
            rows = [_md_row(b) for b in block]
            out.append(_table(rows[0], rows[2:], [a.endswith(":") for a in rows[1]]))
        else:
            out.append("<ul>%s</ul>" % "".join("<li>%s</li>" % _inline(b[2:]) for b in block))
    return "\n".join(out)


def _overview(meta: Mapping[str, Any]) -> str:
    request = meta.get("request") or {}
    facts = [
        ("Started", meta.get("created_at")),
        ("Finished", meta.get("finished_at")),
        ("Devices", ", ".join(meta.get("status") or {})),
        (
            "Artifacts",
            ", ".join(
                "%s (sha256 %.12s)" % (a.get("name"), a.get("sha256"))
                for a in request.get("artifacts", [])
            ),
        ),
        ("Eval set", request.get("eval")),
    ]
    return "<ul>%s</ul>" % "".join(
        "<li><strong>%s:</strong> %s</li>" % (k, escape(str(v))) for k, v in facts if v
    )


def _comparison(store: RunStore) -> str:
    sbs = side_by_side([store])
    headers, rows = sbs.table()
    numeric = [False] + [True] * (len(headers) - 1)
    notes = "".join("<li>%s</li>" % escape(f) for f in sbs.failures())
    return "<h2>Devices side by side</h2>%s%s" % (
        _table(headers, rows, numeric),
        "<ul>%s</ul>" % notes if notes else "",
    )


# --- Charts ----------------------------------------------------------------------------------


def _charts(records: Sequence[Record], colors: Mapping[str, str]) -> List[str]:
    ok = [r for r in records if r.ok]
    if not ok:
        return ['<p class="note">No successful measurement to chart.</p>']
    return [
        c
        for c in (
            _latency(ok, colors)
            + [_memory(ok, colors), _temperatures(records), _tradeoff(ok, colors)]
        )
        if c
    ]


def _name(record: Record) -> str:
    return str(record.artifact["name"])


def _latency(ok: Sequence[Record], colors: Mapping[str, str]) -> List[str]:
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
        color = colors[name]
        box.line([(box.px(p1), y), (box.px(p25), y)], color)
        box.line([(box.px(p75), y), (box.px(p99), y)], color)
        for cap in (p1, p99):
            box.line([(box.px(cap), y - h * 0.2), (box.px(cap), y + h * 0.2)], color)
        box.rect(box.px(p25), y - h * 0.3, box.px(p75), y + h * 0.3, color, tip)
        box.line([(box.px(p50), y - h * 0.3), (box.px(p50), y + h * 0.3)], color, tip, 2.5)
    cdf = Chart("cdf", "Latency CDF", x, Axis(0, 100, "% of iterations"))
    for name, values in ms.items():
        points = [(cdf.px(percentile(values, q)), cdf.py(q)) for q in CDF_QUANTILES]
        cdf.line(points, colors[name], name)
        cdf.legend(name, colors[name])
    return [box.render(), cdf.render()]


def _memory(ok: Sequence[Record], colors: Mapping[str, str]) -> str:
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
        chart.line([(chart.px(t), chart.py(mb)) for t, mb in s], colors[name], name)
        chart.legend(name, colors[name])
    return chart.render()


def _temperatures(records: Sequence[Record]) -> str:
    """Per artifact in run order, each thermal zone before (hollow) and after (filled)."""
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
        color = PALETTE[z % len(PALETTE)]
        chart.legend(zone, color)
        for i, r in enumerate(rows):
            y, h = chart.band(i)
            y += (z - (len(zones) - 1) / 2) * min(6.0, h / (len(zones) + 1))
            before = (r.fingerprint.get("temps_c_before") or {}).get(zone)
            after = (r.fingerprint.get("temps_c_after") or {}).get(zone)
            tip = "%s %s: %s → %s °C" % (_name(r), zone, before, after)
            if before is not None and after is not None:
                chart.line([(chart.px(before), y), (chart.px(after), y)], color, tip)
            if before is not None:
                chart.dot(chart.px(before), y, color, tip, hollow=True)
            if after is not None:
                chart.dot(chart.px(after), y, color, tip)
    return chart.render()


def _tradeoff(ok: Sequence[Record], colors: Mapping[str, str]) -> str:
    """p50 against top-1; the Pareto set (faster or more accurate than every other) is
    filled and joined, the dominated variants are hollow."""
    scored = [r for r in ok if r.accuracy.get("top1") is not None]
    if not scored:
        return ""
    front = pareto(scored, key=lambda r: (r.stats["p50_ms"], -r.accuracy["top1"]))
    chart = Chart(
        "pareto",
        "Latency vs accuracy (Pareto set filled)",
        axis([r.stats["p50_ms"] for r in scored], "p50 latency (ms)"),
        axis([r.accuracy["top1"] * 100 for r in scored], "top-1 (%)"),
    )
    line = sorted(front, key=lambda r: r.stats["p50_ms"])
    chart.line(
        [(chart.px(r.stats["p50_ms"]), chart.py(r.accuracy["top1"] * 100)) for r in line],
        "#444",
        "Pareto set",
        1.2,
        dash=True,
    )
    for r in scored:
        x, y = chart.px(r.stats["p50_ms"]), chart.py(r.accuracy["top1"] * 100)
        on_front = any(r is f for f in front)
        chart.dot(
            x,
            y,
            colors[_name(r)],
            "%s: p50 %.4g ms, top-1 %.2f%%%s"
            % (
                _name(r),
                r.stats["p50_ms"],
                r.accuracy["top1"] * 100,
                " (Pareto)" if on_front else "",
            ),
            hollow=not on_front,
            r=5,
        )
        chart.label(x, y, _name(r))
    return chart.render()
