"""What a measurement measured, so every comparison compares like with like.

Two records are compared when they measure the same *model slot* (the artifact's name; a
plan's variants are named ``<model>.<variant>.<ext>``) on the same board (identity.py) with
the same *measurement definition*: threads, input shapes, providers or delegate and their
options, graph optimisation level and the stop rule (warm-up, iterations, seconds, rounds).
A difference there changes what is measured, so the pair is refused with the key named --
``not comparable: threads 2 → 1`` -- unless the user allows that key.  A changed model file
or runtime version is what a comparison is for: it is reported, never refused.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional

from edgebench.agent.protocol import SETTINGS
from edgebench.agent.record import Record

from .compare_stats import NOT_COMPARABLE

# runtime fields that configure the measurement (the runtime's own version is provenance)
RUNTIME_KEYS = (
    "providers_requested",
    "provider_options",
    "delegate",
    "graph_optimization_level",
    "inter_op_threads",
)
# settings that do not change what is timed: the last three act after the timed window
NOT_DEFINING = ("memory_interval_ms", "cold_starts", "idle_gaps", "profile_ops")
# a key a record does not state is unknown and not compared, except these, whose absence
# means their default (records from before rounds existed ran one round)
IMPLIED = {"rounds": 1}
KEYS = tuple(
    dict.fromkeys(
        [k for k in SETTINGS if k not in NOT_DEFINING]
        + ["rounds", "input_shapes"]
        + list(RUNTIME_KEYS)
    )
)


def definition(record: Record) -> Dict[str, Any]:
    """The measurement-definition keys ``record`` states, with their values."""
    out: Dict[str, Any] = dict(IMPLIED)
    out.update({k: v for k, v in record.settings.items() if k not in NOT_DEFINING})
    if "input_shapes" in record.timing:
        out["input_shapes"] = record.timing["input_shapes"]
    out.update({k: record.runtime[k] for k in RUNTIME_KEYS if k in record.runtime})
    return out


def _show(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def differences(
    base: Mapping[str, Any], cand: Mapping[str, Any], allow: Iterable[str] = ()
) -> List[str]:
    """``threads 2 → 1`` for every key both definitions state with different values,
    except the allowed ones."""
    allowed = set(allow)
    return [
        "%s %s → %s" % (key, _show(base[key]), _show(cand[key]))
        for key in sorted(set(base) & set(cand))
        if key not in allowed and base[key] != cand[key]
    ]


def refusal(
    base: Mapping[str, Any], cand: Mapping[str, Any], allow: Iterable[str] = ()
) -> Optional[str]:
    """``not comparable: threads 2 → 1`` when the definitions differ beyond ``allow``."""
    diff = differences(base, cand, allow)
    return "%s: %s" % (NOT_COMPARABLE, "; ".join(diff)) if diff else None


def provenance(record: Record) -> Dict[str, Optional[str]]:
    """What may change between two comparable records: the model file and the runtime."""
    return {
        "sha256": record.artifact.get("sha256"),
        "runtime": record.runtime.get("name"),
        "version": record.runtime.get("version"),
    }


def changes(base: Mapping[str, Any], cand: Mapping[str, Any]) -> List[str]:
    """``model changed a1b2c3d4→c3d4e5f6``, ``onnxruntime 1.17.1→1.18.0``: what differs
    between two provenances (:func:`provenance`)."""
    out = []
    if base.get("sha256") and cand.get("sha256") and base["sha256"] != cand["sha256"]:
        out.append("model changed %.8s→%.8s" % (base["sha256"], cand["sha256"]))
    if base.get("runtime") != cand.get("runtime"):
        out.append("runtime %s→%s" % (base.get("runtime"), cand.get("runtime")))
    elif base.get("version") and cand.get("version") and base["version"] != cand["version"]:
        out.append("%s %s→%s" % (cand.get("runtime"), base["version"], cand["version"]))
    return out
