"""Rounds: one artifact measured in several fresh agent processes, kept as one record.

Process-level effects (memory layout, allocator, thread placement, frequency) are the
largest source of variance between runs, and one process cannot show them; the record of
several rounds keeps each round's samples and summary and says how much of the spread lies
between processes.  A failed round is kept as such: the record counts the rounds that
succeeded, never silently merges fewer.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from edgebench.agent.record import Record
from edgebench.agent.stats import round_spread, summarize


def _entry(number: int, record: Record) -> Dict[str, Any]:
    entry: Dict[str, Any] = {
        "round": number,
        "status": record.status,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
    }
    if record.ok:
        entry.update(n=len(record.samples_ns), stats=dict(record.stats))
    else:
        entry.update(reason=record.reason, message=record.message)
    return entry


def merge(records: Sequence[Record]) -> Record:
    """One record of the rounds ``records`` (in the order they ran): the first ok round's
    runtime, fingerprint, memory and accuracy, all ok rounds' samples with statistics over
    them (``stats.rounds``: the spread between processes), every round's own summary, and
    the validity flags of any round.  With no ok round, the last failure with the rounds."""
    if len(records) == 1 and records[0].settings.get("rounds", 1) == 1:
        return records[0]
    entries = [_entry(i + 1, r) for i, r in enumerate(records)]
    ok = [r for r in records if r.ok]
    if not ok:
        return records[-1].replace(rounds=entries, started_at=records[0].started_at)
    first = ok[0]
    samples = [s for r in ok for s in r.samples_ns]
    shapes = list((first.timing.get("input_shapes") or {}).values())
    batch = shapes[0][0] if shapes and shapes[0] else 1  # as the agent counts it
    stats = summarize(samples, batch, first.timing.get("timer_overhead_ns"))
    stats["rounds"] = dict(
        round_spread([[s / 1e6 for s in r.samples_ns] for r in ok]),
        rounds=len(records),
        rounds_ok=len(ok),
    )
    validity = dict(first.validity)
    for key in ("flags", "reasons", "warnings"):
        merged: List[str] = []
        for r in ok:
            merged += [x for x in r.validity.get(key) or [] if x not in merged]
        if merged or key in validity:
            validity[key] = merged
    validity["throttled"] = any(r.validity.get("throttled") for r in ok)
    failures = ["round %d: %s" % (e["round"], e["reason"]) for e in entries if e["status"] != "ok"]
    message = (
        "%d of %d rounds succeeded (%s)" % (len(ok), len(records), "; ".join(failures))
        if failures
        else ""
    )
    return first.replace(
        samples_ns=samples,
        stats=stats,
        validity=validity,
        rounds=entries,
        message=message,
        started_at=records[0].started_at,
        finished_at=records[-1].finished_at,
    )


# Rounds a side needs before ``check --baseline`` measures, rather than assumes, the
# process-to-process spread (3 is the fewest with a usable spread of the round medians).
GATE_ROUNDS = 3


def rounds_of(record: Record) -> int:
    """The rounds that succeeded for ``record``; any record from before rounds is one."""
    return len(record.round_samples())


def few_rounds_note(baseline: Sequence[Record], candidate: Sequence[Record]) -> Optional[str]:
    """A line for ``check`` when either side was measured in fewer than GATE_ROUNDS rounds."""
    counts = {
        side: min((rounds_of(r) for r in records if r.ok), default=GATE_ROUNDS)
        for side, records in (("baseline", baseline), ("candidate", candidate))
    }
    few = ["%s %d" % (side, n) for side, n in counts.items() if n < GATE_ROUNDS]
    if not few:
        return None
    return (
        "note: fewer than %d rounds (%s): the process-to-process spread is assumed, not "
        "measured, so only a large change can fail; run both with --rounds %d"
        % (GATE_ROUNDS, ", ".join(few), GATE_ROUNDS)
    )
