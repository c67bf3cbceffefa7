"""Human-readable views of a run: a Markdown report per device and terminal tables.

A failed artifact always shows its reason and message where the numbers would be, never a
zero.  ``accuracy.top1`` is a fraction (0..1) and is shown as a percentage.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from edgebench.agent.board.validity import board_warnings
from edgebench.agent.record import Record

from .. import summary
from ..formatting import error_text, fmt_mb, fmt_ms, fmt_pct
from ..store import Run, RunMeta, summary_csv
from . import sections, startup
from .ops import ops_sections
from .sections import TEXT, Block, Charts, Column, Facts, Notes, Section, Table

FORMATS = ("md", "csv", "json")


def _runtime(record: Record, with_version: bool = True) -> str:
    rt = record.runtime
    keys = ("name", "version") if with_version else ("name",)
    text = " ".join(str(rt[k]) for k in keys if rt.get(k))
    providers = str(summary.row(record)["providers"]).replace("ExecutionProvider", "")
    return "%s (%s)" % (text, providers) if text and providers else text


def flags(record: Record) -> List[str]:
    """Validity flags of an ok record (``throttled``, ``accelerator-not-used``, ...)."""
    return list(record.validity.get("flags") or []) if record.ok else []


def device_warnings(records: List[Record]) -> List[str]:
    """Board settings that make this device's numbers vary (governor, power mode, clocks,
    past under-voltage), each with its fix; from the records, else from their fingerprints."""
    out: List[str] = []
    for record in records:
        if not record.fingerprint:
            continue
        found = (
            (record.validity.get("warnings") or [])
            if record.validity
            else board_warnings(record.fingerprint)
        )
        out.extend(w for w in found if w not in out)
    return out


def _cells(record: Record) -> Dict[str, str]:
    """The formatted figures of one record; empty strings for a failed one."""
    row = summary.row(record)
    cells = {
        "artifact": str(row["artifact"]),
        "runtime": _runtime(record),
        "size": fmt_mb(row["size_mb"]),
    }
    figures = {
        "p50": fmt_ms(row["p50_ms"]),
        "p90": fmt_ms(row["p90_ms"]),
        "p99": fmt_ms(row["p99_ms"]),
        "throughput": fmt_ms(row["throughput_ips"]),
        "load": fmt_ms(row["load_ms"]),
        "first": fmt_ms(row["first_ms"]),
        "rss": fmt_mb(row["peak_rss_mb"]),
        "top1": fmt_pct(row["top1"]),
        "stable": "" if row["stable"] is None else "yes" if row["stable"] else "no",
        "energy": fmt_ms(row["energy_mj"]),
        "engine": fmt_ms(row["engine_build_ms"]),
        "flags": ", ".join(flags(record)),
    }
    cells.update(figures if record.ok else dict.fromkeys(figures, ""))
    return cells


# --- The report's sections (sections.py renders them as Markdown and HTML) -------------

_COLUMNS = [
    Column("Artifact", TEXT),
    Column("Runtime", TEXT),
    Column("Size (MB)"),
    Column("p50 (ms)"),
    Column("p90 (ms)"),
    Column("p99 (ms)"),
    Column("Throughput (inf/s)"),
    Column("Load (ms)"),
    Column("First (ms)"),
    Column("Peak RSS (MB)"),
    Column("Top-1"),
    Column("Stable"),
]
_KEYS = [
    "artifact",
    "runtime",
    "size",
    "p50",
    "p90",
    "p99",
    "throughput",
    "load",
    "first",
    "rss",
    "top1",
    "stable",
]


# shown only when some record of the device has them (boards with power rails, TensorRT, flags)
_OPTIONAL = [
    (Column("Energy (mJ/inf)"), "energy"),
    (Column("Engine build (ms)"), "engine"),
    (Column("Flags", TEXT), "flags"),
]


def _freqs(values: Sequence[float]) -> str:
    """``[1800, 1800, 2400]`` -> ``1800 ×2, 2400``."""
    counts = Counter("%.0f" % v for v in values)
    return ", ".join(f if n == 1 else "%s ×%d" % (f, n) for f, n in counts.items())


def _temps(before: Mapping[str, float], after: Mapping[str, float]) -> str:
    parts = []
    for zone in list(before) + [z for z in after if z not in before]:
        b, a = before.get(zone), after.get(zone)
        span = " → ".join("%.1f" % t for t in (b, a) if t is not None)
        parts.append("%s %s" % (zone, span))
    return ", ".join(parts)


def _fingerprint(records: List[Record]) -> Block:
    """The device: static facts from its first record, every runtime its records loaded, the
    temperatures from before its first artifact to after its last."""
    with_fp = [r for r in records if r.fingerprint]
    if not with_fp:
        return Notes("No fingerprint: no artifact reached the device.", emphasis=True)
    first, last = with_fp[0].fingerprint, with_fp[-1].fingerprint
    runtimes: Dict[str, Any] = {}
    for record in with_fp:
        runtimes.update(record.fingerprint.get("runtimes") or {})
    facts = [
        ("Hostname", first.get("hostname")),
        ("Board", first.get("board_model")),
        ("Architecture", first.get("arch")),
        ("OS", first.get("os")),
        ("Kernel", first.get("kernel")),
        ("CPU", first.get("cpu_model")),
        ("CPU count", first.get("cpu_count")),
        ("Governor", first.get("governor")),
        ("Frequencies (MHz)", _freqs(first.get("freqs_mhz") or [])),
        ("Python", first.get("python")),
        ("numpy", first.get("numpy")),
        ("Runtimes", ", ".join("%s %s" % kv for kv in runtimes.items())),
        (
            "Temperatures (°C, before → after)",
            _temps(first.get("temps_c_before") or {}, last.get("temps_c_after") or {}),
        ),
        ("Load average", " ".join("%.2f" % v for v in first.get("loadavg") or [])),
        (
            "Available memory (MB)",
            (
                "%.0f" % first["mem_available_mb"]
                if first.get("mem_available_mb") is not None
                else ""
            ),
        ),
    ] + _board_facts(first.get("board") or {})
    return Facts([(label, str(value)) for label, value in facts if value not in (None, "")])


def _board_facts(board: Mapping[str, Any]) -> List[Any]:
    """Vendor-tool facts (agent/board/boards.py): Pi throttle state, Jetson mode, Edge TPUs."""
    pi = board.get("raspberry_pi") or {}
    jetson = board.get("jetson") or {}
    throttled = pi.get("throttled") or {}
    mode = jetson.get("nvpmodel") or {}
    clocks = jetson.get("clocks")
    return [
        (
            "Throttle state (vcgencmd)",
            "%s — now: %s; since boot: %s"
            % (
                throttled.get("raw"),
                ", ".join(throttled.get("now") or []) or "none",
                ", ".join(throttled.get("since_boot") or []) or "none",
            )
            if throttled
            else "",
        ),
        ("ARM clock (MHz)", "%.0f" % pi["arm_mhz"] if pi.get("arm_mhz") else ""),
        ("L4T", jetson.get("l4t")),
        (
            "Power mode (nvpmodel)",
            "%s (id %s)" % (mode["mode"], mode.get("id")) if mode.get("mode") else "",
        ),
        (
            "Clocks (jetson_clocks)",
            ""
            if clocks is None
            else "locked"
            if clocks.get("locked")
            else "dynamic: " + ", ".join(clocks.get("dynamic") or []),
        ),
        (
            "Edge TPU",
            ", ".join(
                "%s %s" % (t.get("bus"), t.get("id") or t.get("device"))
                for t in board.get("edgetpu") or []
            ),
        ),
        ("Power rails", ", ".join(board.get("power_rails") or [])),
    ]


def how_measured(settings: Mapping[str, Any]) -> str:
    threads = settings.get("threads")
    return (
        "warm-up %s iterations / %s s; then at least %s iterations and %s s (at most "
        "%s s or %s iterations) per artifact; threads: %s; memory sampled every %s ms"
        % (
            settings.get("warmup_iterations", "?"),
            settings.get("warmup_seconds", "?"),
            settings.get("min_iterations", "?"),
            settings.get("min_seconds", "?"),
            settings.get("max_seconds", "?"),
            settings.get("max_iterations", "?"),
            "runtime default" if threads is None else threads,
            settings.get("memory_interval_ms", "?"),
        )
    )


def device_section(device: str, records: List[Record], status: Mapping[str, str]) -> Section:
    """The device's fingerprint, warnings, table of artifacts with their footnotes, what was
    not measured, and the charts of its records."""
    blocks: List[Block] = [_fingerprint(records)]
    warned = device_warnings(records)
    if warned:
        blocks.append(Notes("Warnings:", ["⚠ %s" % w for w in warned]))
    notes, flagged = [], []
    if records:
        all_cells = [_cells(r) for r in records]
        optional = [(c, k) for c, k in _OPTIONAL if any(cells[k] for cells in all_cells)]
        keys = _KEYS + [k for _, k in optional]
        rows = []
        for record, cells in zip(records, all_cells):
            if not record.ok:
                cells["p50"] = error_text(record)
            elif cells["stable"] == "no":
                notes.append(
                    "%s: %s"
                    % (cells["artifact"], "; ".join(record.stats.get("stability_reasons", [])))
                )
                cells["stable"] = "no [%d]" % len(notes)
            if cells["flags"]:
                reasons = record.validity.get("reasons") or []
                flagged.append("%s: %s" % (cells["artifact"], "; ".join(reasons)))
                cells["flags"] = "⚑ %s [F%d]" % (cells["flags"], len(flagged))
            rows.append([cells[k] for k in keys])
        blocks.append(Table(_COLUMNS + [c for c, _ in optional], rows))
    if notes:
        blocks.append(Notes("Unstable:", ["[%d] %s" % (i, n) for i, n in enumerate(notes, 1)]))
    if flagged:
        blocks.append(
            Notes(
                "Flagged (not valid as a plain measurement of this board):",
                ["[F%d] %s" % (i, n) for i, n in enumerate(flagged, 1)],
            )
        )
    done = {str(r.artifact.get("name")) for r in records}
    missing = ["%s (%s)" % (a, s) for a, s in status.items() if a not in done]
    if missing:
        blocks.append(Notes("Not measured: " + ", ".join(missing)))
    blocks += startup.blocks(records)
    if records:
        blocks.append(Charts(records))
    return Section(device, blocks, anchor="device-" + device)


def run_sections(meta: RunMeta, records: List[Record]) -> List[Section]:
    """The run report: per device, its fingerprint and a table of its artifacts; how it was
    measured; then the variants' trade-offs when there are any, and where the time goes
    (placements, profiles: report/ops.py)."""
    from .tradeoff import report_sections  # tradeoff builds on this module

    status = meta.status
    devices = list(status) + [r.device for r in records if r.device not in status]
    ordered = sorted(records, key=lambda r: r.started_at)
    out = [Section("edgebench run %s" % meta.run_id, [], level=1)]
    for device in dict.fromkeys(devices):
        mine = [r for r in ordered if r.device == device]
        out.append(device_section(device, mine, status.get(device, {})))
    settings = {json.dumps(r.settings, sort_keys=True): r.settings for r in records if r.settings}
    measured: List[Block] = [
        Notes("How measured: %s." % how_measured(s)) for s in settings.values()
    ]
    if measured:
        out.append(Section("", measured))
    by_device = [r for device in dict.fromkeys(devices) for r in ordered if r.device == device]
    return out + report_sections(meta, records) + ops_sections(by_device)


def run_report(meta: RunMeta, records: List[Record]) -> str:
    """report.md."""
    return sections.markdown(run_sections(meta, records))


# --- Terminal --------------------------------------------------------------------------------

_TERM_COLUMNS = [
    ("Device", "device"),
    ("Artifact", "artifact"),
    ("Runtime", "runtime"),
    ("p50 ms", "p50"),
    ("p90 ms", "p90"),  # what budgets hold
    ("p99 ms", "p99"),
    ("inf/s", "throughput"),
    ("RSS MB", "rss"),
    ("Top-1", "top1"),
    ("Status", "status"),
]


def _term_cells(record: Record) -> Dict[str, str]:
    cells = _cells(record)
    cells["device"] = record.device
    cells["runtime"] = _runtime(record, with_version=False)
    cells["status"] = (
        "error"
        if not record.ok
        else "flagged"
        if cells["flags"]
        else "unstable"
        if cells["stable"] == "no"
        else "ok"
    )
    return cells


def _failures(records: List[Record]) -> List[str]:
    """One line per failed or flagged artifact, printed under the table so the figures stay
    narrow."""
    lines = []
    for r in records:
        if not r.ok:
            lines.append("%s/%s: %s" % (r.device, r.artifact.get("name"), error_text(r)))
        elif flags(r):
            reasons = r.validity.get("reasons") or []
            lines.append(
                "%s/%s: flagged %s — %s"
                % (r.device, r.artifact.get("name"), ", ".join(flags(r)), "; ".join(reasons))
            )
    return lines


def terminal_table(records: List[Record], console: Optional[Console] = None) -> None:
    """Print a compact table of ``records`` to the terminal (or ``console``)."""
    table = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for header, key in _TERM_COLUMNS:
        if key in ("device", "artifact", "runtime"):  # these shrink on a narrow terminal
            table.add_column(header, overflow="fold")
        else:
            table.add_column(header, justify="left" if key == "status" else "right", no_wrap=True)
    styles = {"error": "red", "flagged": "yellow", "unstable": "yellow", "ok": "green"}
    for cells in map(_term_cells, records):
        # Text, not markup (names may contain "[...]") nor highlighted (digits.int8.tflite)
        table.add_row(
            *(
                Text(cells[k], style=styles[cells[k]] if k == "status" else "")
                for _, k in _TERM_COLUMNS
            )
        )
    if console is None:  # off a terminal (CI logs, pipes) rich would wrap at 80 columns
        console = Console(width=None if sys.stdout.isatty() else 140, highlight=False)
    console.print(table)
    for line in _failures(records):
        console.print(Text(line, style="red" if ": error: " in line else "yellow"))


def render(store: Run, fmt: str) -> str:
    """The run as ``md`` (the report), ``csv`` (summary.csv) or ``json`` (summary rows)."""
    records = store.records()
    if fmt == "md":
        return run_report(store.meta(), records)
    if fmt == "csv":
        return summary_csv(records, store.run_id)
    if fmt == "json":
        return json.dumps(summary.rows(records, store.run_id), indent=2) + "\n"
    raise ValueError("unknown report format %r (expected one of %s)" % (fmt, ", ".join(FORMATS)))
