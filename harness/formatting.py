"""How numbers, failures and tables look, the same in every command and report."""

from __future__ import annotations

import sys
from typing import Mapping, Optional, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgebench.agent.record import Record


def fmt_ms(value: Optional[float]) -> str:
    """About three significant figures: 0.052, 1.23, 12.3, 123."""
    if value is None:
        return ""
    size = abs(value)
    decimals = 3 if size < 1 else 2 if size < 10 else 1 if size < 100 else 0
    return "%.*f" % (decimals, value)


def fmt_mb(value: Optional[float]) -> str:
    return "" if value is None else "%.2f" % value


def fmt_pct(fraction: Optional[float]) -> str:
    return "" if fraction is None else "%.1f%%" % (fraction * 100)


def error_text(record: Record) -> str:
    return "error: %s — %s" % (record.reason, record.message)


def md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: Optional[Mapping[str, str]] = None,
) -> None:
    """A table on stdout; a cell whose whole text is a key of ``styles`` gets that style
    (``{"fail": "red"}``)."""
    styles = styles or {}
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in rows:  # Text, not markup: names may contain "[...]"
        grid.add_row(*(Text(cell, style=styles.get(cell, "")) for cell in row))
    Console(width=None if sys.stdout.isatty() else 160).print(grid)
