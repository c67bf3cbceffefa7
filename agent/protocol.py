"""The job the agent receives, validated into one immutable object.

Protocol (version :data:`PROTOCOL_VERSION`): the harness writes one JSON job on stdin, the
agent writes one JSON document on stdout and progress/logs on stderr.  A job benchmarks one
artifact, so a crash or a kill costs at most that one measurement.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

PROTOCOL_VERSION = 1

FORMATS = {".onnx": "onnx", ".tflite": "tflite"}
# require_accelerator's third value: the accelerator must run every node, not only some
FULL_PLACEMENT = "full"


def stronger_demand(*demands: Union[bool, str]) -> Union[bool, str]:
    """The strictest of several require_accelerator values (a device's and a plan's)."""
    return FULL_PLACEMENT if FULL_PLACEMENT in demands else any(demands)


class JobError(ValueError):
    """The job is malformed; reported as a ``job-invalid`` record."""


@dataclass(frozen=True)
class Settings:
    threads: Optional[int] = None
    warmup_iterations: int = 10
    warmup_seconds: float = 0.5
    min_iterations: int = 50
    min_seconds: float = 2.0
    max_seconds: float = 60.0
    max_iterations: int = 100000  # bounds the sample buffer, allocated before timing
    # optional stop rule: once count and seconds are met, also until the p50's 95 %
    # interval is within +/- this fraction of it (still capped by max_seconds/iterations)
    target_precision: Optional[float] = None
    # fresh agent processes per artifact; the harness runs them, the agent runs one
    rounds: int = 1
    # fresh processes timed for import, load and first inference (the rounds among them;
    # the harness starts the rest, agent/coldstart.py); idle gaps (s) after the timed window
    cold_starts: int = 1
    idle_gaps: Tuple[float, ...] = ()
    # a per-operator profile in a separate pass after the timed window (agent/profile.py)
    profile_ops: bool = False

    memory_interval_ms: float = 50.0
    seed: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__, idle_gaps=list(self.idle_gaps))


@dataclass(frozen=True)
class Job:
    device: str
    artifact: Mapping[str, Any]  # name, path, sha256, size_bytes, format
    settings: Settings
    eval_path: Optional[str] = None
    eval_sha256: Optional[str] = None  # checked before use, like artifact["sha256"]
    input_shapes: Mapping[str, Tuple[int, ...]] = field(default_factory=dict)
    onnx: Mapping[str, Any] = field(default_factory=dict)
    tflite: Mapping[str, Any] = field(default_factory=dict)
    # validity (see agent/board/validity.py): fail rather than measure the CPU in its place; wait
    # below cooldown["max_temp_c"] (at most cooldown["timeout_s"]) before the artifact;
    # flag the record when the timed window reaches throttle_temp_c
    require_accelerator: Union[bool, str] = False  # or "full": every node on it
    cooldown: Optional[Mapping[str, float]] = None
    throttle_temp_c: Optional[float] = None
    # one benchmark at a time per board (agent/lease.py): {workdir, owner, timeout_s}
    lease: Optional[Mapping[str, Any]] = None
    # pre/post-processing on the board (agent/pipeline.py): code, code_sha256, pre, post,
    # inputs, inputs_sha256
    pipeline: Optional[Mapping[str, Any]] = None

    @property
    def format(self) -> str:
        return str(self.artifact["format"])


_SETTING_TYPES = {
    "threads": int,
    "warmup_iterations": int,
    "warmup_seconds": float,
    "min_iterations": int,
    "min_seconds": float,
    "max_seconds": float,
    "max_iterations": int,
    "target_precision": float,
    "rounds": int,
    "cold_starts": int,
    "idle_gaps": list,
    "profile_ops": bool,
    "memory_interval_ms": float,
    "seed": int,
}
SETTINGS = tuple(_SETTING_TYPES)
# the smallest value each setting takes, and whether that value itself is allowed
_MINIMA = {
    "threads": (1, True),
    "warmup_iterations": (0, True),
    "warmup_seconds": (0, True),
    "min_iterations": (1, True),
    "min_seconds": (0, True),
    "max_seconds": (0, False),
    "max_iterations": (1, True),
    "target_precision": (0, False),
    "rounds": (1, True),
    "cold_starts": (1, True),
    "idle_gaps": (0, True),  # each gap
    "memory_interval_ms": (0, False),
    "seed": (0, True),
}


def _setting_label(key: str) -> str:
    return "settings." + key


def _check_number(key: str, value: Any, label: Callable[[str], str]) -> None:
    integer = _SETTING_TYPES[key] is int
    if isinstance(value, bool) or not isinstance(value, (int,) if integer else (int, float)):
        raise JobError(
            "%s: expected %s, got %r" % (label(key), "an integer" if integer else "a number", value)
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise JobError("%s: expected a finite number, got %r" % (label(key), value))
    low, inclusive = _MINIMA[key]
    if value < low or (value == low and not inclusive):
        raise JobError(
            "%s: must be %s %d, got %r"
            % (label(key), "at least" if inclusive else "greater than", low, value)
        )


def parse_settings(
    raw: Mapping[str, Any], label: Callable[[str], str] = _setting_label
) -> Settings:
    """The one validator of measurement settings: the agent's job, the command line and a
    plan's ``settings:`` all come through here.  ``label`` names a key in messages (a job's
    ``settings.min_seconds``, the command line's ``--min-seconds``).  Finite numbers only:
    a NaN deadline never fires."""
    unknown = sorted(set(raw) - set(_SETTING_TYPES))
    if unknown:
        raise JobError(
            "unknown settings: %s (known: %s)" % (", ".join(map(str, unknown)), ", ".join(SETTINGS))
        )
    for key, value in raw.items():
        if value is None and key in ("threads", "target_precision"):  # not set
            continue
        if _SETTING_TYPES[key] is bool:
            if not isinstance(value, bool):
                raise JobError("%s: expected true or false, got %r" % (label(key), value))
        elif _SETTING_TYPES[key] is list:
            if not isinstance(value, (list, tuple)):
                raise JobError("%s: expected a list of numbers, got %r" % (label(key), value))
            for item in value:
                _check_number(key, item, label)
        else:
            _check_number(key, value, label)
    settings = Settings(**dict(raw, idle_gaps=tuple(raw.get("idle_gaps") or ())))
    if settings.max_iterations < settings.min_iterations:
        raise JobError(
            "%s (%d) must be at least %s (%d)"
            % (
                label("max_iterations"),
                settings.max_iterations,
                label("min_iterations"),
                settings.min_iterations,
            )
        )
    return settings


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise JobError("%s must be an object" % where)
    return raw


def _shapes(raw: Any) -> Dict[str, Tuple[int, ...]]:
    if not isinstance(raw, Mapping):
        raise JobError("input_shapes must map input names to lists of dimensions")
    shapes = {}
    for name, dims in raw.items():
        if not isinstance(dims, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims
        ):
            raise JobError(
                "input_shapes.%s: expected a list of positive integers, got %r" % (name, dims)
            )
        shapes[str(name)] = tuple(dims)
    return shapes


def parse_job(doc: Any) -> Job:
    if not isinstance(doc, Mapping):
        raise JobError("the job must be a JSON object")
    if doc.get("protocol") != PROTOCOL_VERSION:
        raise JobError(
            "protocol %r is not supported (this agent speaks %d)"
            % (doc.get("protocol"), PROTOCOL_VERSION)
        )
    artifact = doc.get("artifact")
    if not isinstance(artifact, Mapping) or not artifact.get("path"):
        raise JobError("the job names no artifact path")
    artifact = dict(artifact)
    artifact.setdefault("name", str(artifact["path"]).replace("\\", "/").rsplit("/", 1)[-1])
    if not artifact.get("format"):
        suffix = (
            "." + artifact["name"].rsplit(".", 1)[-1].lower() if "." in artifact["name"] else ""
        )
        if suffix not in FORMATS:
            raise JobError(
                "cannot tell the format of %r (expected .onnx or .tflite)" % artifact["name"]
            )
        artifact["format"] = FORMATS[suffix]
    _sha256(artifact.get("sha256"), "artifact.sha256")
    if artifact["format"] not in FORMATS.values():
        raise JobError("unknown artifact format %r" % artifact["format"])
    for section in ("onnx", "tflite"):
        if not isinstance(doc.get(section, {}), Mapping):
            raise JobError("%s settings must be an object" % section)
    return Job(
        device=str(doc.get("device") or "local"),
        artifact=artifact,
        settings=parse_settings(_mapping(doc.get("settings") or {}, "settings")),
        eval_path=doc.get("eval"),
        eval_sha256=_sha256(doc.get("eval_sha256"), "eval_sha256"),
        input_shapes=_shapes(doc.get("input_shapes") or {}),
        onnx=dict(doc.get("onnx") or {}),
        tflite=dict(doc.get("tflite") or {}),
        lease=_lease(doc.get("lease")),
        pipeline=_pipeline(doc.get("pipeline")),
        **_validity(doc),
    )


def _sha256(raw: Any, where: str) -> Optional[str]:
    if raw is None:
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"[0-9a-f]{64}", raw):
        raise JobError("%s: expected a sha256 hex digest, got %r" % (where, raw))
    return raw


def _pipeline(raw: Any) -> Optional[Dict[str, Any]]:
    if raw is None:
        return None
    raw = _mapping(raw, "pipeline")
    out: Dict[str, Any] = {}
    for key in ("code", "pre", "inputs", "post"):
        if raw.get(key) is None and key == "post":
            continue
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise JobError("pipeline.%s: expected a string, got %r" % (key, raw.get(key)))
        out[key] = raw[key]
    for key in ("code_sha256", "inputs_sha256"):
        out[key] = _sha256(raw.get(key), "pipeline." + key)
    return out


def _lease(raw: Any) -> Optional[Dict[str, Any]]:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("workdir"), str):
        raise JobError("lease must be an object with a 'workdir' string")
    timeout = raw.get("timeout_s", 300.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise JobError("lease.timeout_s: expected a non-negative number, got %r" % timeout)
    return {"workdir": raw["workdir"], "owner": raw.get("owner"), "timeout_s": float(timeout)}


def _validity(doc: Mapping[str, Any]) -> Dict[str, Any]:
    """The job's require_accelerator, cooldown and throttle_temp_c, checked."""

    def positive(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise JobError("%s: expected a positive number, got %r" % (where, value))
        return float(value)

    out: Dict[str, Any] = {}
    if doc.get("require_accelerator") is not None:
        value = doc["require_accelerator"]
        if not (isinstance(value, bool) or value == FULL_PLACEMENT):
            raise JobError(
                "require_accelerator must be true or false, or %r (every node on the "
                "accelerator)" % FULL_PLACEMENT
            )
        out["require_accelerator"] = value
    cooldown = doc.get("cooldown")
    if cooldown is not None:
        if not isinstance(cooldown, Mapping) or "max_temp_c" not in cooldown:
            raise JobError("cooldown must be an object with max_temp_c (and timeout_s)")
        out["cooldown"] = {
            "max_temp_c": positive(cooldown["max_temp_c"], "cooldown.max_temp_c"),
            "timeout_s": positive(cooldown.get("timeout_s", 300), "cooldown.timeout_s"),
        }
    if doc.get("throttle_temp_c") is not None:
        out["throttle_temp_c"] = positive(doc["throttle_temp_c"], "throttle_temp_c")
    return out


def artifact_stub(doc: Any) -> Dict[str, Any]:
    """Best-effort artifact identity from a job that failed validation."""
    art = doc.get("artifact") if isinstance(doc, Mapping) else None
    if isinstance(art, Mapping):
        name = art.get("name") or str(art.get("path", "")).rsplit("/", 1)[-1]
        return {"name": name or "<unknown>", "sha256": art.get("sha256", "")}
    return {"name": "<unknown>"}


def job_device(doc: Any) -> str:
    return str(doc.get("device") or "local") if isinstance(doc, Mapping) else "local"
