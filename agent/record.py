"""The measurement record: one device x artifact result, validated on construction.

The agent produces it and the harness stores, summarises and gates on it, so both sides
share this one definition.  A record is either ``ok`` (with raw samples and statistics) or
``error`` (with a reason code from :data:`REASONS` and a message) -- never a zero latency.
:meth:`Record.from_dict` is the loader: it reads every earlier ``schema_version`` (one
upgrade step per version) and checks the fields readers rely on (:data:`SHAPE`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .jsonshape import NUMBER, POSITIVE, Each, ListOf, shape_error

# Version 2 moved the validity verdict from ``fingerprint["validity"]`` to ``validity``.
SCHEMA_VERSION = 2

# Stable reason codes, grouped by fault class (LAVA style).  The class decides retries and
# exit codes: only "infrastructure" faults are worth retrying.
REASONS: Dict[str, str] = {
    # infrastructure: the board or the link
    "unreachable": "infrastructure",
    "auth-failed": "infrastructure",
    "host-key": "infrastructure",
    "device-busy": "infrastructure",
    "disk-full": "infrastructure",
    "transfer-failed": "infrastructure",
    "timeout": "infrastructure",
    "crash": "infrastructure",
    "interrupted": "infrastructure",
    # configuration: what the user asked for cannot run as asked
    "job-invalid": "config",
    "runtime-missing": "config",
    "input-shape": "config",
    "input-invalid": "config",
    "accelerator-not-used": "config",
    # test: the model itself failed
    "model-invalid": "test",
    "out-of-memory": "test",
    "inference-failed": "test",
    "pipeline-failed": "config",  # the plan's pre/post code raised (agent/pipeline.py)
    # bug: ours
    "protocol": "bug",
    "internal": "bug",
}

STATUSES = ("ok", "error")


class RecordError(ValueError):
    """A record (or a document claiming to be one) is not valid."""


def _frozen_copy(value: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    return copy.deepcopy(dict(value or {}))


@dataclass(frozen=True)
class Record:
    """One benchmark of one artifact on one device."""

    status: str
    device: str
    artifact: Mapping[str, Any]  # name, sha256, size_bytes, format
    reason: Optional[str] = None
    message: str = ""
    runtime: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    timing: Mapping[str, Any] = field(default_factory=dict)  # load_ms, first_ms, warmup_*
    samples_ns: Tuple[int, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)
    memory: Mapping[str, Any] = field(default_factory=dict)
    accuracy: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    validity: Mapping[str, Any] = field(default_factory=dict)  # agent/board/validity.py's verdict
    started_at: str = ""
    finished_at: str = ""
    stderr_tail: str = ""
    # one entry per fresh agent process (``--rounds``), in order: round, status, started_at,
    # finished_at, and n + stats (ok: its samples are the next n of samples_ns) or reason +
    # message (error); empty for a record of one process, which is one round
    rounds: Tuple[Mapping[str, Any], ...] = ()
    # --profile-ops: per-operator rows from a pass after the timed window (agent/profile.py);
    # optional, so records without it load unchanged
    profile: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        for name in (
            "artifact",
            "runtime",
            "settings",
            "timing",
            "stats",
            "memory",
            "accuracy",
            "fingerprint",
            "validity",
            "profile",
        ):
            object.__setattr__(self, name, _frozen_copy(getattr(self, name)))
        object.__setattr__(self, "samples_ns", tuple(self.samples_ns))
        object.__setattr__(self, "rounds", tuple(_frozen_copy(r) for r in self.rounds))
        self._validate()

    def _validate(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise RecordError(
                "unsupported schema_version %r (this code reads %d)"
                % (self.schema_version, SCHEMA_VERSION)
            )
        if self.status not in STATUSES:
            raise RecordError("status must be one of %s, not %r" % (STATUSES, self.status))
        if not self.device:
            raise RecordError("record has no device name")
        if not self.artifact.get("name"):
            raise RecordError("record has no artifact name")
        if self.status == "ok":
            if self.reason is not None:
                raise RecordError("an ok record cannot carry reason %r" % self.reason)
            if not self.samples_ns:
                raise RecordError("an ok record needs at least one latency sample")
            if any(
                not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in self.samples_ns
            ):
                raise RecordError("latency samples must be positive integer nanoseconds")
            if self.stats.get("n") != len(self.samples_ns):
                raise RecordError(
                    "stats.n (%r) does not match the %d samples"
                    % (self.stats.get("n"), len(self.samples_ns))
                )
            counts = [r.get("n") or 0 for r in self.rounds if r.get("status") == "ok"]
            if self.rounds and sum(counts) != len(self.samples_ns):
                raise RecordError(
                    "the ok rounds' n (%s) do not add up to the %d samples"
                    % ("+".join(map(str, counts)) or "none", len(self.samples_ns))
                )
        else:
            if self.reason not in REASONS:
                raise RecordError(
                    "an error record needs a reason code from %s, not %r"
                    % (sorted(REASONS), self.reason)
                )
            if not self.message:
                raise RecordError("an error record needs a message")
            if self.samples_ns or self.stats:
                raise RecordError("an error record cannot carry latency samples or stats")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def fault_class(self) -> Optional[str]:
        return REASONS.get(self.reason) if self.reason else None

    def round_samples(self) -> List[Tuple[int, ...]]:
        """The samples of each ok round; a record of one process (any record from before
        rounds existed) is one round."""
        return list(self.samples_by_round().values())

    def samples_by_round(self) -> Dict[int, Tuple[int, ...]]:
        """The samples of each ok round by its number (from 1), in order."""
        if not self.rounds:
            return {1: self.samples_ns} if self.samples_ns else {}
        out, start = {}, 0
        for number, r in enumerate(self.rounds, 1):
            if r.get("status") == "ok":
                out[int(r.get("round") or number)] = self.samples_ns[start : start + r["n"]]
                start += r["n"]
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "device": self.device,
            "artifact": _frozen_copy(self.artifact),
            "runtime": _frozen_copy(self.runtime),
            "settings": _frozen_copy(self.settings),
            "timing": _frozen_copy(self.timing),
            "samples_ns": list(self.samples_ns),
            "stats": _frozen_copy(self.stats),
            "memory": _frozen_copy(self.memory),
            "accuracy": _frozen_copy(self.accuracy),
            "fingerprint": _frozen_copy(self.fingerprint),
            "validity": _frozen_copy(self.validity),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "stderr_tail": self.stderr_tail,
            **({"rounds": [_frozen_copy(r) for r in self.rounds]} if self.rounds else {}),
            **({"profile": _frozen_copy(self.profile)} if self.profile else {}),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Record:
        """The record a JSON document of any schema version this code reads holds; what is
        wrong with it is a one-line RecordError naming the field."""
        if not isinstance(data, Mapping):
            raise RecordError("a record must be a JSON object, not %s" % type(data).__name__)
        version = data.get("schema_version", SCHEMA_VERSION)
        if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
            newer = type(version) is int and version > SCHEMA_VERSION
            raise RecordError(
                "unsupported schema_version %r (this code reads 1 to %d%s)"
                % (version, SCHEMA_VERSION, "; a newer edgebench wrote it" * newer)
            )
        for older in range(version, SCHEMA_VERSION):
            data = _UPGRADE[older](data)
        why = _shape_error(data)
        if why:
            raise RecordError(why)
        known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecordError("unknown record fields: %s" % ", ".join(unknown))
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise RecordError(str(exc)) from None

    def replace(self, **changes: Any) -> Record:
        data = self.to_dict()
        data.update(changes)
        return Record.from_dict(data)


def _v1_to_v2(data: Mapping[str, Any]) -> Dict[str, Any]:
    """Version 1 kept the validity verdict inside the fingerprint."""
    out = dict(data, schema_version=2)
    fp = data.get("fingerprint")
    if isinstance(fp, Mapping) and "validity" in fp:
        out["fingerprint"] = {k: v for k, v in fp.items() if k != "validity"}
        out["validity"] = fp["validity"]
    return out


# schema_version -> the document one version newer; a loader per version, as pyperf keeps
_UPGRADE: Dict[int, Callable[[Mapping[str, Any]], Dict[str, Any]]] = {1: _v1_to_v2}

# The fields readers rely on (see jsonshape): a stored record edited by hand or cut short is
# a one-line error naming the field, never a TypeError deep in a report.
SHAPE = {
    "schema_version": int,
    "device": str,
    "reason": str,
    "message": str,
    "started_at": str,
    "finished_at": str,
    "stderr_tail": str,
    "samples_ns": ListOf(int),
    "rounds": ListOf({"round": int, "status": str, "n": int, "stats": dict}),
    "artifact": {
        "name": str,
        "sha256": str,
        "parent_sha256": str,
        "variant": str,
        "size_bytes": NUMBER,
        "format": str,
        "baseline_of": str,
    },
    "runtime": {
        "name": str,
        "version": str,
        "providers_active": ListOf(str),
        "delegate": (str, dict),
        "placement": {
            "nodes": int,
            "text": str,
            "partial": bool,
            "by": ListOf({"provider": str, "nodes": int, "share": NUMBER}),
        },
    },
    "settings": dict.fromkeys(
        (
            "threads",
            "warmup_iterations",
            "warmup_seconds",
            "min_iterations",
            "min_seconds",
            "max_seconds",
            "max_iterations",
            "target_precision",
            "rounds",
            "cold_starts",
            "memory_interval_ms",
        ),
        NUMBER,
    ),
    "timing": dict(
        dict.fromkeys(("import_ms", "load_ms", "first_ms", "energy_mj", "engine_build_ms"), NUMBER),
        # agent/idle.py, harness/run/coldstart.py, agent/pipeline.py
        idle_gaps=ListOf({"gap_s": NUMBER, "first_ms": NUMBER, "ratio": NUMBER}),
        cold_starts={"samples": ListOf(dict), "summary": Each(dict)},
        pipeline={"stages": Each({"p50_ms": NUMBER, "mean_ms": NUMBER, "n": int})},
    ),
    "stats": dict(
        dict.fromkeys(
            ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "throughput_ips"), POSITIVE
        ),
        std_ms=NUMBER,
        cv=NUMBER,
        precision=NUMBER,
        p50_ci_ms=ListOf(NUMBER, 2),
        n=int,
        stable=bool,
        stability_reasons=ListOf(str),
    ),
    "memory": dict(
        dict.fromkeys(("peak_rss_mb", "rss_after_import_mb", "rss_after_load_mb"), NUMBER),
        series=ListOf(ListOf(NUMBER, 2)),
    ),
    "accuracy": {"top1": NUMBER, "top5": NUMBER},
    "profile": {
        "method": str,
        "estimate": bool,
        "runs": int,
        "total_ms": NUMBER,
        "ratio_to_p50": NUMBER,
        "rows": ListOf(
            {
                "name": str,
                "op_type": str,
                "provider": str,
                "mean_ms": NUMBER,
                "p50_ms": NUMBER,
                "share": NUMBER,
                "calls": NUMBER,
            }
        ),
    },
    "validity": {
        "throttled": bool,
        "flags": ListOf(str),
        "reasons": ListOf(str),
        "warnings": ListOf(str),
    },
    "fingerprint": {
        "temps_c_before": Each(NUMBER),
        "temps_c_after": Each(NUMBER),
        "freqs_mhz": ListOf(NUMBER),
        "loadavg": ListOf(NUMBER),
        "mem_available_mb": NUMBER,
        "runtimes": Each(object),
        "governor": str,
        "board": {
            "family": str,
            "edgetpu": ListOf(dict),
            "power_rails": ListOf(str),
            "raspberry_pi": {
                "arm_mhz": NUMBER,
                "throttled": {"raw": str, "now": ListOf(str), "since_boot": ListOf(str)},
            },
            "jetson": {
                "l4t": str,
                "nvpmodel": {"mode": str, "id": int},
                "clocks": {"locked": bool, "dynamic": ListOf(str)},
            },
        },
    },
}
REQUIRED = ("status", "device", "artifact")
OK_REQUIRED = ("p50_ms", "p90_ms")  # read without a fallback for an ok record


def _shape_error(data: Mapping[str, Any]) -> Optional[str]:
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        return "missing field %r" % missing[0]
    why = shape_error(dict(data), SHAPE)
    if why is None and data["status"] == "ok":
        absent = [k for k in OK_REQUIRED if (data.get("stats") or {}).get(k) is None]
        why = "stats.%s: missing (an ok record has it)" % absent[0] if absent else None
    return why


def error_record(
    device: str, artifact: Mapping[str, Any], reason: str, message: str, **extra: Any
) -> Record:
    """Build a failure record; ``message`` is kept to one line."""
    one_line = " ".join(str(message).split()) or reason
    return Record(
        status="error", device=device, artifact=artifact, reason=reason, message=one_line, **extra
    )
