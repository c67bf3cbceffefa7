"""The measurement record: one device x artifact result, validated on construction.

The agent produces it and the harness stores, summarises and gates on it, so both sides
share this one definition.  A record is either ``ok`` (with raw samples and statistics) or
``error`` (with a reason code from :data:`REASONS` and a message) -- never a zero latency.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

SCHEMA_VERSION = 1

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
    started_at: str = ""
    finished_at: str = ""
    stderr_tail: str = ""
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
        ):
            object.__setattr__(self, name, _frozen_copy(getattr(self, name)))
        object.__setattr__(self, "samples_ns", tuple(self.samples_ns))
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
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "stderr_tail": self.stderr_tail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        if not isinstance(data, Mapping):
            raise RecordError("a record must be a JSON object, not %s" % type(data).__name__)
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


def error_record(
    device: str, artifact: Mapping[str, Any], reason: str, message: str, **extra: Any
) -> Record:
    """Build a failure record; ``message`` is kept to one line."""
    one_line = " ".join(str(message).split()) or reason
    return Record(
        status="error", device=device, artifact=artifact, reason=reason, message=one_line, **extra
    )
