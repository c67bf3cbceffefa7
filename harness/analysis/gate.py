"""``edgebench check``: judge a run against budgets and, optionally, a baseline run.

Every job of the run is a verdict: a failed or never-finished measurement fails the gate
with its reason; budgets add limits; a baseline adds a regression check per artifact,
matched by device identity and artifact sha256 (a changed artifact is "not comparable",
never compared blindly).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

from edgebench.agent.record import Record

from ..formatting import print_table
from ..store import RunStore
from .budgets import FAIL, PASS, SKIP, Budgets, Verdict, judge
from .compare_stats import NOT_COMPARABLE, NOT_SIGNIFICANT, PROCESS_CV, Change, compare
from .identity import device_identities, device_tags


def find_baseline(
    record: Record,
    identity: Optional[str],
    baseline: Sequence[Record],
    base_ids: Mapping[str, Optional[str]],
) -> Tuple[Optional[Record], str]:
    """The baseline record measuring the same artifact (sha256) on the same machine, or
    None and why they are not comparable."""
    if identity is None:
        return None, "no device fingerprint"
    machine = [b for b in baseline if base_ids.get(b.device) == identity]
    if not machine:
        return None, "device not in the baseline"
    sha, name = record.artifact.get("sha256"), record.artifact["name"]
    same = [b for b in machine if sha and b.artifact.get("sha256") == sha]
    if same:  # prefer the same device and file name when a machine appears twice
        best = min(same, key=lambda b: (b.device != record.device, b.artifact["name"] != name))
        if not best.ok:
            return None, "baseline failed: %s" % best.reason
        return best, ""
    renamed = [b for b in machine if b.artifact["name"] == name]
    if renamed:
        return None, "artifact changed (sha256 %.8s → %.8s)" % (
            renamed[0].artifact.get("sha256") or "?",
            sha or "?",
        )
    return None, "artifact not in the baseline"


def _p(p_value: float) -> str:
    return "p<0.001" if p_value < 1e-3 else "p=%.2g" % p_value


def describe(change: Change, threshold: float) -> str:
    """``slower: +11.2% beyond 5%, 95% interval above 1 (3+3 rounds, p<0.001)`` -- the
    marker and why; one round a side says its process spread was assumed."""
    base, cand = change.rounds
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
    store: RunStore, budgets: Optional[Budgets] = None, baseline: Optional[RunStore] = None
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
    ids = device_identities(records)
    base_records = baseline.records() if baseline else []
    base_ids = device_identities(base_records)
    used: Set[str] = set()
    for record in records:
        name = str(record.artifact["name"])
        device_tags_ = tags.get(record.device, [])
        matching = budgets.matching(record.device, device_tags_, name)
        used.update(b.where for b in matching)
        out += judge(record, matching, by_device[record.device])
        if baseline is None or not record.ok:
            continue
        base, why = find_baseline(record, ids[record.device], base_records, base_ids)
        if base is None:
            out.append(
                Verdict(
                    record.device, name, "regression", SKIP, detail="%s: %s" % (NOT_COMPARABLE, why)
                )
            )
        else:
            out.append(
                regression(record, base, budgets.regression(record.device, device_tags_, name))
            )
    out += [
        Verdict(
            b.device, b.artifact, b.where, SKIP, detail="matched no measurement", source=b.where
        )
        for b in budgets.entries
        if b.where not in used
    ]
    return sorted(out, key=lambda v: (v.device, v.artifact))


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


def junit(verdicts: Sequence[Verdict], run_id: str) -> str:
    """JUnit XML: a test case per verdict, named ``artifact: check``, in a class per
    device; failures carry the detail, skips say why."""
    suite = ET.Element(
        "testsuite",
        name="edgebench check %s" % run_id,
        tests=str(len(verdicts)),
        failures=str(sum(v.verdict == FAIL for v in verdicts)),
        skipped=str(sum(v.verdict == SKIP for v in verdicts)),
        errors="0",
    )
    for v in verdicts:
        case = ET.SubElement(
            suite, "testcase", classname=v.device, name="%s: %s" % (v.artifact, v.label)
        )
        text = "; ".join(
            filter(
                None,
                (v.measured and "measured " + v.measured, v.limit and "limit " + v.limit, v.detail),
            )
        )
        if v.verdict == FAIL:
            ET.SubElement(case, "failure", message=v.detail or "over the limit").text = text
        elif v.verdict == SKIP:
            ET.SubElement(case, "skipped", message=v.detail)
        else:
            ET.SubElement(case, "system-out").text = text
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
