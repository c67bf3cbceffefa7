"""The one model of a report, rendered as report.md (here) and report.html (report/html.py).

A report is a list of :class:`Section`; each holds blocks in reading order: key/value
facts, tables whose columns say whether they hold text or numbers, notes (a lead line and
bullets, or a paragraph), and charts of the section's records, which only the HTML draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple, Union

from edgebench.agent.record import Record

TEXT, NUM = "text", "num"


@dataclass(frozen=True)
class Facts:
    items: List[Tuple[str, str]]  # (label, value), empty values already dropped


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = NUM  # TEXT (left-aligned) or NUM (right-aligned)


@dataclass(frozen=True)
class Table:
    columns: List[Column]
    rows: List[List[str]]


@dataclass(frozen=True)
class Notes:
    """A paragraph (``text`` alone), or a lead line followed by bullets."""

    text: str = ""
    bullets: List[str] = field(default_factory=list)
    emphasis: bool = False  # a remark in place of content: "No fingerprint: ..."


@dataclass(frozen=True)
class Charts:
    """The charts of these records (latency, memory, temperatures, trade-off)."""

    records: List[Record]


Block = Union[Facts, Table, Notes, Charts]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: Sequence[Block]
    level: int = 2  # heading level: 1 the report, 2 a device or part, 3 a sub-part
    anchor: str = ""  # an id for the HTML (``device-pi4``)


def md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _md_block(block: Block) -> List[str]:
    if isinstance(block, Facts):
        return ["- **%s:** %s" % item for item in block.items]
    if isinstance(block, Table):
        return [
            "| " + " | ".join(c.header for c in block.columns) + " |",
            "|" + "|".join("---" if c.kind == TEXT else "---:" for c in block.columns) + "|",
        ] + ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in block.rows]
    if isinstance(block, Notes):
        lead = ["_%s_" % block.text if block.emphasis else block.text] if block.text else []
        bullets = ["- " + b for b in block.bullets]
        return lead + [""] + bullets if lead and bullets else lead + bullets
    return []  # charts are drawn by the HTML only


def markdown(sections: Sequence[Section]) -> str:
    """Headings (a section without a title has none), each block followed by a blank line."""
    lines: List[str] = []
    for section in sections:
        lines += ["#" * section.level + " " + section.title, ""] if section.title else []
        for block in section.blocks:
            rendered = _md_block(block)
            lines += rendered + [""] if rendered else []
    return "\n".join(lines).rstrip("\n") + "\n"
