"""``edgebench check``: judge a run against budgets and, optionally, a baseline run.

Every job of the run is a verdict: a failed or never-finished measurement fails the gate
with its reason; budgets add limits; a baseline adds a regression check per artifact,
paired by board identity and model slot (artifact name) and refused -- a failed verdict --
when the measurement definition differs (definition.py); a changed model file or runtime
version is compared and reported.  An A/B run (run/ab.py) carries its own baselines: each
candidate is judged against the baseline measured beside it, round by round.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from edgebench.agent.record import Record

from ..formatting import print_table
from ..store import Run
from .budgets import FAIL, PASS, SKIP, Budgets, Verdict, judge
from .compare_stats import (
    NOT_COMPARABLE,
    NOT_SIGNIFICANT,
    PAIRED,
    PROCESS_CV,
    Change,
    compare,
    compare_paired,
)
from .definition import changes, definition, differences, provenance
from .identity import device_tags, same_board

NEW_SLOT = "artifact not in the baseline"  # a new model: nothing to regress from


def find_baseline(
    record: Record, baseline: Sequence[Record], allow: Iterable[str] = ()
) -> Tuple[Optional[Record], str]:
    """The baseline record of the same model slot (artifact name) on the same board, or
    None and why the two are not comparable."""
    if not record.fingerprint:
        return None, "no device fingerprint"
    seen: Dict[
        str, Record
    ] = {}  # a device's failed records may lack the fingerprint its others carry
    for b in baseline:
        if b.fingerprint:
            seen.setdefault(b.device, b)
    machine = [b for b in baseline if b.device in seen and same_board(record, seen[b.device])]
    if not machine:
        return None, "device not in the baseline"
    name = record.artifact["name"]
    same = [b for b in machine if b.artifact["name"] == name]
    if not same:
        return None, NEW_SLOT
    best = min(same, key=lambda b: b.device != record.device)  # a machine listed twice
    if not best.ok:
        return None, "baseline failed: %s" % best.reason
    diff = differences(definition(best), definition(record), allow)
    return (None, "; ".join(diff)) if diff else (best, "")


def notes(record: Record, base: Record, allow: Iterable[str]) -> List[str]:
    """What changed between comparable records: the model file, the runtime version and
    the definition keys the user allowed to differ."""
    before, after = definition(base), definition(record)
    refused = differences(before, after, allow)
    allowed = ["%s (allowed)" % d for d in differences(before, after) if d not in refused]
    return changes(provenance(base), provenance(record)) + allowed


def _p(p_value: float) -> str:
    return "p<0.001" if p_value < 1e-3 else "p=%.2g" % p_value


def describe(change: Change, threshold: float) -> str:
    """``slower: +11.2% beyond 5%, 95% interval above 1 (3+3 rounds, p<0.001)`` -- the
    marker and why; one round a side says its process spread was assumed."""
    base, cand = change.rounds
    if change.method == PAIRED:
        rounds = "%d A/B pairs, %s" % (cand, _p(change.p_value))
    else:
        rounds = "%d+%d rounds, %s" % (base, cand, _p(change.p_value))
    if change.assumed_spread:
        rounds += "; one round: process-to-process spread not measured, assumed %g%%" % (
            PROCESS_CV * 100
        )
    where = (
        "95%% interval %s 1" % ("above" if change.ratio >= 1 else "below")
        if change.significant
        else "95% interval includes 1"
    )
    test = "%s (%s)" % (where, rounds)
    shift = "%+.1f%%" % ((change.ratio - 1) * 100)
    if change.marker != NOT_SIGNIFICANT:
        return "%s: %s beyond %g%%, %s" % (change.marker, shift, threshold * 100, test)
    if change.significant:
        return "%s: %s is within %g%%, %s" % (change.marker, shift, threshold * 100, test)
    return "%s: %s, %s" % (change.marker, shift, test)


def regression(record: Record, base: Record, threshold: float) -> Verdict:
    change = compare(base.round_samples(), record.round_samples(), threshold)
    return _verdict(record, change, threshold)


def ab_regression(record: Record, base: Record, threshold: float) -> Verdict:
    """``record`` against the baseline measured beside it in an A/B run: each candidate
    round paired with the baseline round of its number (they ran back to back)."""
    if not base.ok:
        detail = "%s: baseline failed: %s: %s" % (NOT_COMPARABLE, base.reason, base.message)
        return Verdict(
            record.device, str(record.artifact["name"]), "regression", FAIL, detail=detail
        )
    before, after = base.samples_by_round(), record.samples_by_round()
    pairs = [(before[n], after[n]) for n in after if n in before]
    if len(pairs) < 2:  # one pair shows no spread: as separate measurements
        return regression(record, base, threshold)
    return _verdict(record, compare_paired(pairs, threshold), threshold)


def _verdict(record: Record, change: Change, threshold: float) -> Verdict:
    return Verdict(
        record.device,
        str(record.artifact["name"]),
        "regression",
        FAIL if change.regression else PASS,
        "%.3f× [%.3f–%.3f]" % (change.ratio, change.low, change.high),
        "≤ +%g%%" % (threshold * 100),
        describe(change, threshold),
    )


def gate(
    store: Run,
    budgets: Optional[Budgets] = None,
    baseline: Optional[Run] = None,
    allow: Iterable[str] = (),
) -> List[Verdict]:
    """Every verdict for the run, by device and artifact."""
    budgets = budgets or Budgets((), "")
    meta, records = store.meta(), store.records()
    tags = device_tags(meta)
    done = {(r.device, str(r.artifact["name"])) for r in records}
    out = [
        Verdict(device, artifact, "measured", FAIL, detail="not measured (%s)" % status)
        for device, jobs in meta.status.items()
        for artifact, status in jobs.items()
        if (device, artifact) not in done
    ]
    by_device: Dict[str, List[Record]] = defaultdict(list)
    for record in records:
        by_device[record.device].append(record)
    base_records = baseline.records() if baseline else []
    beside = {(r.device, r.artifact["baseline_of"]): r for r in records if _ab_baseline(r)}
    used: Set[str] = set()
    for record in records:
        if _ab_baseline(record):
            continue  # judged through its candidate
        name = str(record.artifact["name"])
        device_tags_ = tags.get(record.device, [])
        matching = budgets.matching(record.device, device_tags_, name)
        used.update(b.where for b in matching)
        out += judge(record, matching, by_device[record.device])
        if not record.ok:
            continue
        threshold = budgets.regression(record.device, device_tags_, name)
        if (record.device, name) in beside:
            pair = beside[(record.device, name)]
            found = ab_regression(record, pair, threshold)
            extra = changes(provenance(pair), provenance(record)) if pair.ok else []
            out.append(replace(found, detail="; ".join([found.detail] + extra)))
            continue
        if baseline is None:
            continue
        base, why = find_baseline(record, base_records, allow)
        if base is None:
            verdict = SKIP if why == NEW_SLOT else FAIL  # never a silent pass
            detail = "%s: %s" % (NOT_COMPARABLE, why)
            out.append(Verdict(record.device, name, "regression", verdict, detail=detail))
        else:
            found = regression(record, base, threshold)
            extra = notes(record, base, allow)
            out.append(replace(found, detail="; ".join([found.detail] + extra)))
    out += [
        Verdict(
            b.device, b.artifact, b.where, SKIP, detail="matched no measurement", source=b.where
        )
        for b in budgets.entries
        if b.where not in used
    ]
    return sorted(out, key=lambda v: (v.device, v.artifact))


def _ab_baseline(record: Record) -> bool:
    return bool(record.artifact.get("baseline_of"))


HEADERS = ["Device", "Artifact", "Check", "Measured", "Limit", "Verdict", "Detail"]
STYLES = {PASS: "green", FAIL: "red", SKIP: "yellow"}


def show(verdicts: Sequence[Verdict]) -> None:
    print_table(
        HEADERS,
        [
            [v.device, v.artifact, v.label, v.measured, v.limit, v.verdict, v.detail]
            for v in verdicts
        ],
        STYLES,
    )
    counts = {k: sum(v.verdict == k for v in verdicts) for k in (PASS, FAIL, SKIP)}
    print("%d passed, %d failed, %d skipped" % (counts[PASS], counts[FAIL], counts[SKIP]))


def seconds(record: Record) -> float:
    """How long the agent took over ``record`` (started_at to finished_at), 0 if unknown."""
    try:
        start = datetime.datetime.fromisoformat(record.started_at)
        end = datetime.datetime.fromisoformat(record.finished_at)
    except ValueError:
        return 0.0
    return max(0.0, (end - start).total_seconds())


def verdict_text(v: Verdict) -> str:
    """``fail: measured 1.172× [0.964–1.506]; limit ≤ +5%; slower: …`` -- the verdict and
    the line the table shows for it."""
    parts = (v.measured and "measured " + v.measured, v.limit and "limit " + v.limit, v.detail)
    return "%s: %s" % (v.verdict, "; ".join(filter(None, parts)) or v.label)


def as_json(verdicts: Sequence[Verdict], run_id: str) -> Dict[str, Any]:
    """``check --json``: the verdicts as the table shows them, counts and the outcome."""
    counts = {k: sum(v.verdict == k for v in verdicts) for k in (PASS, FAIL, SKIP)}
    return {
        "run_id": run_id,
        "verdict": FAIL if counts[FAIL] else PASS,
        "counts": counts,
        "verdicts": [
            {
                "device": v.device,
                "artifact": v.artifact,
                "check": v.check,
                "source": v.source,
                "verdict": v.verdict,
                "measured": v.measured,
                "limit": v.limit,
                "detail": v.detail,
                "text": verdict_text(v),
            }
            for v in verdicts
        ],
    }


def junit(
    verdicts: Sequence[Verdict],
    run_id: str,
    durations: Optional[Mapping[Tuple[str, str], float]] = None,
) -> str:
    """JUnit XML: a test case per verdict, named ``artifact: check``, in a class per
    device, timed with the measurement it judges (``durations`` by device and artifact:
    :func:`seconds`); every case carries the verdict text in system-out, failures and
    skips also say why in their message."""
    durations = durations or {}
    suite = ET.Element(
        "testsuite",
        name="edgebench check %s" % run_id,
        tests=str(len(verdicts)),
        failures=str(sum(v.verdict == FAIL for v in verdicts)),
        skipped=str(sum(v.verdict == SKIP for v in verdicts)),
        errors="0",
        time="%.3f" % sum(durations.values()),
    )
    for v in verdicts:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=v.device,
            name="%s: %s" % (v.artifact, v.label),
            time="%.3f" % durations.get((v.device, v.artifact), 0.0),
        )
        if v.verdict == FAIL:
            ET.SubElement(
                case, "failure", message=v.detail or "over the limit"
            ).text = verdict_text(v)
        elif v.verdict == SKIP:
            ET.SubElement(case, "skipped", message=v.detail)
        ET.SubElement(case, "system-out").text = verdict_text(v)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
