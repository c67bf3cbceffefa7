"""Budgets: limits per device x artifact, read from YAML and judged against records.

A budgets file (or the ``budgets:`` section of a plan; other top-level keys are ignored)::

    budgets:
      - device: pi*            # device name, tag or glob (default "*")
        artifact: "*.tflite"   # artifact-name glob (default "*")
        p50_ms: 12             # maxima: p50_ms p90_ms p99_ms peak_rss_mb size_mb
        top1: 0.90             # minima (fractions): top1 top5
        top1_vs_parent: 0.98   # at least 98% of the parent's top-1
        regression: 0.05       # slowdown against a baseline that counts (default 5%)

Every entry that matches a record applies.  A limit that cannot be judged -- the figure
was not measured, the parent is missing -- fails: a budget is never passed by default.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from edgebench.agent.record import Record

from .. import summary
from ..config import Checker, ConfigError, load_yaml, read_text
from ..formatting import error_text, fmt_pct
from ..store import RunMeta
from .families import find_parent, is_variant

MAXIMA = ("p50_ms", "p90_ms", "p99_ms", "peak_rss_mb", "size_mb")
MINIMA = ("top1", "top5")
RELATIVE = "top1_vs_parent"
LIMITS = MAXIMA + MINIMA + (RELATIVE,)
KEYS = ("device", "artifact") + LIMITS + ("regression",)
DEFAULT_REGRESSION = 0.05

PASS, FAIL, SKIP = "pass", "fail", "skip"


class BudgetError(ConfigError):
    """The budgets file is unusable; ``str()`` names the file and key."""


class _Check(Checker):
    """devices.yaml's checks, raising BudgetErrors."""

    def error(self, path: str, problem: str) -> BudgetError:
        return BudgetError(str(super().error(path, problem)))


def fmt_value(column: str, value: Optional[float]) -> str:
    """A figure to judge against a limit: four significant digits, so that a value just
    over its limit never prints the same as the limit."""
    if value is None:
        return ""
    if column.endswith("_ms"):
        return "%.4g ms" % value
    if column.endswith("_mb"):
        return "%.4g MB" % value
    return "%.4g%%" % (value * 100)


@dataclass(frozen=True)
class Budget:
    """One entry of the file; ``where`` names it in messages (``budgets[2]``)."""

    where: str
    device: str = "*"
    artifact: str = "*"
    limits: Tuple[Tuple[str, float], ...] = ()
    regression: Optional[float] = None

    def matches(self, device: str, tags: Sequence[str], artifact: str) -> bool:
        return any(
            fnmatch.fnmatchcase(d, self.device) for d in (device,) + tuple(tags)
        ) and fnmatch.fnmatchcase(artifact, self.artifact)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"device": self.device, "artifact": self.artifact}
        out.update(self.limits)
        if self.regression is not None:
            out["regression"] = self.regression
        return out


@dataclass(frozen=True)
class Budgets:
    entries: Tuple[Budget, ...]
    source: str

    def matching(self, device: str, tags: Sequence[str], artifact: str) -> List[Budget]:
        return [b for b in self.entries if b.matches(device, tags, artifact)]

    def regression(self, device: str, tags: Sequence[str], artifact: str) -> float:
        """The strictest regression threshold of the matching entries, else 5%."""
        given = [
            b.regression for b in self.matching(device, tags, artifact) if b.regression is not None
        ]
        return min(given) if given else DEFAULT_REGRESSION


def load_budgets(path: Optional[str], meta: Optional[RunMeta]) -> Optional[Budgets]:
    """The budgets file at ``path``; without one, the budgets of the plan the run was made
    from (run.json ``plan.budgets``), if it had any."""
    if path is None:
        plan = (meta.plan if meta else None) or {}
        if plan.get("budgets") is None:
            return None
        return budgets_from(plan["budgets"], str(plan.get("file") or "run.json plan"))
    return parse_budgets(read_text(path, "budgets", BudgetError), path)


def parse_budgets(text: str, source: str) -> Budgets:
    doc = load_yaml(text, source, BudgetError)
    if not isinstance(doc, Mapping) or "budgets" not in doc:
        raise _Check(source).error("", "expected a mapping with a 'budgets:' list")
    return budgets_from(doc["budgets"], source)


def budgets_from(entries: Any, source: str) -> Budgets:
    """Validate the value of a ``budgets:`` key (a plan can call this when it loads)."""
    check = _Check(source)
    if not isinstance(entries, list) or not entries:
        raise check.error("budgets", "expected a non-empty list of entries")
    return Budgets(
        tuple(_entry(check, raw, "budgets[%d]" % i) for i, raw in enumerate(entries)), source
    )


def _fraction(check: _Check, value: Any, path: str, hint: str) -> float:
    number = check.number(value, path)
    if number > 1:
        raise check.error(path, "expected a fraction up to 1 (%s), got %r" % (hint, value))
    return number


def _entry(check: _Check, raw: Any, where: str) -> Budget:
    check.keys(raw, where, KEYS)
    limits = []
    for key in LIMITS:
        if key in raw:
            path = "%s.%s" % (where, key)
            value = (
                check.number(raw[key], path)
                if key in MAXIMA
                else _fraction(check, raw[key], path, "0.98 means 98%")
            )
            limits.append((key, value))
    regression = None
    if "regression" in raw:
        regression = _fraction(
            check, raw["regression"], where + ".regression", "0.05 means 5% slower"
        )
    if not limits and regression is None:
        raise check.error(
            where, "no limits (expected some of %s, or regression)" % ", ".join(LIMITS)
        )
    return Budget(
        where,
        check.string(raw.get("device", "*"), where + ".device"),
        check.string(raw.get("artifact", "*"), where + ".artifact"),
        tuple(limits),
        regression,
    )


# --- Judging records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One line of a gate: a limit, a measurement or a comparison, and how it came out."""

    device: str
    artifact: str
    check: str  # "p50_ms", "measured", "regression", ...
    verdict: str  # PASS, FAIL or SKIP
    measured: str = ""
    limit: str = ""
    detail: str = ""
    source: str = ""  # the budget entry, e.g. budgets[0]

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    @property
    def label(self) -> str:
        """``p50_ms budgets[0]``: the check and the entry it came from."""
        return (
            self.check if self.source in ("", self.check) else "%s %s" % (self.check, self.source)
        )


def _relative(
    record: Record, budget: Budget, floor: float, same_device: Sequence[Record]
) -> Verdict:
    verdict = Verdict(
        record.device,
        str(record.artifact["name"]),
        RELATIVE,
        FAIL,
        limit="≥ %s" % fmt_value(RELATIVE, floor),
        source=budget.where,
    )
    if not is_variant(record):
        return replace(verdict, verdict=SKIP, detail="not a variant: it is the reference")
    parent = find_parent(record, same_device)
    top1 = record.accuracy.get("top1")
    if parent is None:
        return replace(verdict, detail="parent not measured in this run")
    if not parent.ok:
        return replace(
            verdict, detail="parent %s failed: %s" % (parent.artifact["name"], parent.reason)
        )
    parent_top1 = parent.accuracy.get("top1")
    if top1 is None or not parent_top1:
        return replace(verdict, detail="no top-1 for it or its parent (run with --eval)")
    ratio = top1 / parent_top1
    return replace(
        verdict,
        verdict=PASS if ratio >= floor else FAIL,
        measured=fmt_value(RELATIVE, ratio),
        detail="%s vs %s of %s" % (fmt_pct(top1), fmt_pct(parent_top1), parent.artifact["name"]),
    )


def judge(
    record: Record, budgets: Sequence[Budget], same_device: Sequence[Record]
) -> List[Verdict]:
    """Whether ``record`` was measured, then every limit of ``budgets`` against it;
    ``same_device`` holds the records of its device (to find the parent)."""
    name = str(record.artifact["name"])
    if not record.ok:  # a failed measurement fails the gate, whatever the budgets
        return [Verdict(record.device, name, "measured", FAIL, detail=error_text(record))]
    row = summary.row(record)
    out = [
        Verdict(record.device, name, "measured", PASS, "p50 " + fmt_value("p50_ms", row["p50_ms"]))
    ]
    for budget in budgets:
        for column, limit in budget.limits:
            if column == RELATIVE:
                out.append(_relative(record, budget, limit, same_device))
                continue
            value = row[column]
            maximum = column in MAXIMA
            shown = "%s %s" % ("≤" if maximum else "≥", fmt_value(column, limit))
            if value is None:
                out.append(
                    Verdict(
                        record.device, name, column, FAIL, "", shown, "not measured", budget.where
                    )
                )
                continue
            ok = value <= limit if maximum else value >= limit
            out.append(
                Verdict(
                    record.device,
                    name,
                    column,
                    PASS if ok else FAIL,
                    fmt_value(column, value),
                    shown,
                    "",
                    budget.where,
                )
            )
    return out
