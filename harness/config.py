"""The device inventory (``devices.yaml``): which boards exist and how to reach them.

Every problem is reported as a one-line :class:`ConfigError` naming the file, the key
path and, where one exists, a likely fix -- the inventory is hand-written, so typos are
the common case.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Hashable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)

import yaml

from edgebench.agent.jsonshape import show as _show
from edgebench.agent.protocol import FULL_PLACEMENT

BUILTIN = "<built-in>"
DEFAULT_FILE = "devices.yaml"
KINDS = ("local", "ssh")
GRAPH_LEVELS = ("disabled", "basic", "extended", "all")
SSH_ONLY = ("host", "port", "user", "key", "known_hosts", "trust_on_first_use")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ConfigError(Exception):
    """The inventory or a command-line option is invalid; ``str()`` is one line."""


ProviderOptions = Tuple[Tuple[str, Tuple[Tuple[str, Union[str, int, float, bool]], ...]], ...]


@dataclass(frozen=True)
class OnnxOptions:
    providers: Tuple[str, ...] = ()
    graph_optimization_level: Optional[str] = None
    inter_op_threads: Optional[int] = None
    # per provider, e.g. TensorrtExecutionProvider: trt_engine_cache_enable/_path
    provider_options: ProviderOptions = ()

    def to_dict(self) -> Dict[str, Any]:
        """The job's ``onnx`` section: only what was set, so the agent's defaults apply."""
        out: Dict[str, Any] = {}
        if self.providers:
            out["providers"] = list(self.providers)
        if self.provider_options:
            out["provider_options"] = {p: dict(o) for p, o in self.provider_options}
        if self.graph_optimization_level is not None:
            out["graph_optimization_level"] = self.graph_optimization_level
        if self.inter_op_threads is not None:
            out["inter_op_threads"] = self.inter_op_threads
        return out


@dataclass(frozen=True)
class Delegate:
    library: str
    options: Tuple[Tuple[str, Union[str, int]], ...] = ()


@dataclass(frozen=True)
class TfliteOptions:
    delegate: Optional[Delegate] = None

    def to_dict(self) -> Dict[str, Any]:
        """The job's ``tflite`` section."""
        if self.delegate is None:
            return {}
        return {
            "delegate": {"library": self.delegate.library, "options": dict(self.delegate.options)}
        }


@dataclass(frozen=True)
class Cooldown:
    """Wait until the board is below ``max_temp_c`` (at most ``timeout_s``) per artifact."""

    max_temp_c: float
    timeout_s: float = 300.0

    def to_dict(self) -> Dict[str, float]:
        return {"max_temp_c": self.max_temp_c, "timeout_s": self.timeout_s}


@dataclass(frozen=True)
class Device:
    name: str
    kind: str
    python: str
    host: Optional[str] = None
    port: int = 22
    user: Optional[str] = None
    key: Optional[str] = None
    known_hosts: Optional[str] = None
    trust_on_first_use: bool = False
    workdir: str = "~/.cache/edgebench"
    tags: Tuple[str, ...] = ()
    timeout_s: float = 600.0
    onnx: OnnxOptions = OnnxOptions()
    tflite: TfliteOptions = TfliteOptions()
    env: Tuple[Tuple[str, str], ...] = ()  # extra environment for the agent; dict(env)
    # a CPU fallback is an accelerator-not-used error; "full": so is a partial placement
    require_accelerator: Union[bool, str] = False
    cooldown: Optional[Cooldown] = None
    throttle_temp_c: Optional[float] = None  # None: the agent's board default (Pi: 80)


@dataclass(frozen=True)
class Inventory:
    devices: Tuple[Device, ...]
    source: str  # the file it was read from, or BUILTIN

    def select(self, spec: Optional[str]) -> List[Device]:
        """Devices named by ``spec``: comma-separated device names or tags.

        ``None`` means the device called ``local`` if there is one (benchmarking the host
        is the safe default), else every device.  Names win over tags of the same
        spelling; the result is in the order asked, without duplicates.
        """
        if spec is None:
            local = [d for d in self.devices if d.name == "local"]
            return local or list(self.devices)
        by_name = {d.name: d for d in self.devices}
        tags = sorted({t for d in self.devices for t in d.tags})
        chosen: List[Device] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item in by_name:
                matches = [by_name[item]]
            else:
                matches = [d for d in self.devices if item in d.tags]
            if not matches:
                hint = _did_you_mean(item, list(by_name) + tags)
                known = "known: " + ", ".join(by_name)
                if tags:
                    known += "; tags: " + ", ".join(tags)
                raise ConfigError(
                    "unknown device or tag %r (%s%s)" % (item, hint + "; " if hint else "", known)
                )
            chosen.extend(d for d in matches if d not in chosen)
        if not chosen:
            raise ConfigError("no devices selected by %r" % spec)
        return chosen


def builtin_inventory() -> Inventory:
    """The inventory used when there is no ``devices.yaml``: this machine only."""
    return Inventory(
        (Device(name="local", kind="local", python=sys.executable, tags=("host",)),), BUILTIN
    )


def load_inventory(path: Optional[str] = None) -> Inventory:
    """Read ``path``; without one, ``./devices.yaml`` if present, else the built-in default."""
    if path is None:
        if not os.path.lexists(DEFAULT_FILE):  # a directory or broken link there is an error
            return builtin_inventory()
        path = DEFAULT_FILE
    return parse_inventory(read_text(path, "device inventory"), path)


def read_text(path: str, what: str, error: Type[ConfigError] = ConfigError) -> str:
    """The text of a hand-written file; unreadable or not UTF-8 is one line naming it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise error("%s: cannot read the %s (%s)" % (path, what, exc.strerror or exc)) from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise error(
            "%s: line %d: cannot read the %s: byte 0x%02x is not UTF-8 (save the "
            "file as UTF-8)" % (path, line, what, exc.object[exc.start])
        ) from None


def load_yaml(text: str, source: str, error: Type[ConfigError] = ConfigError) -> Any:
    """Parse YAML (duplicate keys refused); a syntax error is one line naming ``source``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = "line %d: " % (mark.line + 1) if mark is not None else ""
        why = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error("%s: %sinvalid YAML (%s)" % (source, where, why)) from None


def parse_inventory(text: str, source: str) -> Inventory:
    """Validate the YAML ``text``; ``source`` names it in errors and resolves relative paths."""
    doc = load_yaml(text, source)
    check = Checker(source)
    if doc is None:
        raise check.error("", "the file is empty; expected a 'devices:' mapping")
    check.keys(doc, "", ("devices",), required=("devices",))
    devices = doc["devices"]
    if not isinstance(devices, Mapping) or not devices:
        raise check.error(
            "devices", "expected a mapping of device names to settings, got %s" % _show(devices)
        )
    base = os.path.dirname(os.path.abspath(source))
    return Inventory(
        tuple(_device(check, name, settings, base) for name, settings in devices.items()), source
    )


def parse_input_shapes(values: Sequence[str]) -> Dict[str, List[int]]:
    """``--input-shape NAME:1,3,224,224`` values into ``{NAME: [1, 3, 224, 224]}``.

    The split is at the last ``:`` so TensorFlow-style names such as ``input:0`` work.
    """
    shapes: Dict[str, List[int]] = {}
    for value in values:
        name, sep, dims = value.rpartition(":")
        parts = dims.split(",")
        if not sep or not name or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise ConfigError(
                "--input-shape %r: expected NAME:DIM,DIM,... with positive "
                "integers, e.g. input:1,3,224,224" % value
            )
        if name in shapes:
            raise ConfigError("--input-shape %r: input %r is given twice" % (value, name))
        shapes[name] = [int(p) for p in parts]
    return shapes


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` semantics, except that a repeated key (say, two ``pi4:`` blocks,
    where the second would silently replace the first) is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # a list or mapping as a key: the base class says so
                break
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, "duplicate key %r" % (key,), key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return "did you mean %r?" % close[0] if close else ""


class Checker:
    """Type checks that raise ConfigErrors in the ``file: key.path: problem`` form."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, problem: str) -> ConfigError:
        return ConfigError("%s: %s%s" % (self.source, path + ": " if path else "", problem))

    def keys(
        self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()
    ) -> None:
        if not isinstance(value, Mapping):
            raise self.error(path, "expected a mapping, got %s" % _show(value))
        for key in value:
            if key not in allowed:
                hint = _did_you_mean(str(key), allowed)
                raise self.error(
                    _join(path, key),
                    "unknown key %r (%s)" % (key, hint or "expected one of " + ", ".join(allowed)),
                )
        for key in required:
            if key not in value:
                raise self.error(path, "missing required key %r" % key)

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(path, "expected a non-empty string, got %s" % _show(value))
        return value

    def integer(self, value: Any, path: str, low: int, high: Optional[int] = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, "expected an integer, got %s" % _show(value))
        if value < low or (high is not None and value > high):
            raise self.error(
                path,
                "expected an integer from %d%s, got %d"
                % (low, " to %d" % high if high is not None else " up", value),
            )
        return value

    def number(self, value: Any, path: str) -> float:
        try:  # NaN and infinity are refused: no limit or timeout can be either
            ok = (
                not isinstance(value, bool)
                and isinstance(value, (int, float))
                and 0 < float(value) < math.inf
            )
        except OverflowError:  # an integer too large for a float
            ok = False
        if not ok:
            raise self.error(path, "expected a positive number, got %s" % _show(value))
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, "expected true or false, got %s" % _show(value))
        return value

    def accelerator_demand(self, value: Any, path: str) -> Union[bool, str]:
        """``require_accelerator``: true, false or "full" (every node on the accelerator)."""
        if isinstance(value, bool) or value == FULL_PLACEMENT:
            return value  # type: ignore[no-any-return]
        raise self.error(
            path, "expected true, false or %s, got %s" % (FULL_PLACEMENT, _show(value))
        )

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str:
        if value not in choices:
            hint = _did_you_mean(str(value), choices)
            raise self.error(
                path,
                "expected one of %s; got %s%s"
                % (", ".join(choices), _show(value), " (%s)" % hint if hint else ""),
            )
        return value

    def name(self, value: Any, path: str, what: str) -> str:
        if not isinstance(value, str) or not _NAME.match(value):
            raise self.error(
                path, "%s %s must be letters, digits, '.', '_' or '-'" % (what, _show(value))
            )
        return value

    def string_list(
        self, value: Any, path: str, item: Optional[Callable[[Any, str], str]] = None
    ) -> Tuple[str, ...]:
        if not isinstance(value, list):
            raise self.error(path, "expected a list of strings, got %s" % _show(value))
        item = item or self.string
        return tuple(item(v, "%s[%d]" % (path, i)) for i, v in enumerate(value))

    def scalar_map(
        self, value: Any, path: str, types: Tuple[type, ...]
    ) -> Tuple[Tuple[str, Any], ...]:
        if not isinstance(value, Mapping):
            raise self.error(path, "expected a mapping, got %s" % _show(value))
        out = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise self.error(path, "keys must be strings, got %r" % (key,))
            if isinstance(item, bool) or not isinstance(item, types):
                raise self.error(
                    _join(path, key),
                    "expected a string or %s, got %s"
                    % ("a number" if float in types else "an integer", _show(item)),
                )
            out.append((key, item))
        return tuple(out)


def _join(path: str, key: Any) -> str:
    return "%s.%s" % (path, key) if path else str(key)


_DEVICE_KEYS = (
    "kind",
    "python",
    "host",
    "port",
    "user",
    "key",
    "known_hosts",
    "trust_on_first_use",
    "workdir",
    "tags",
    "timeout_s",
    "onnx",
    "tflite",
    "env",
    "require_accelerator",
    "cooldown",
    "throttle_temp_c",
)


def _device(check: Checker, name: Any, raw: Any, base: str) -> Device:
    path = _join("devices", name)
    check.name(name, path, "device name")
    raw = {} if raw is None else raw
    check.keys(raw, path, _DEVICE_KEYS)
    if "kind" in raw:
        kind = check.choice(raw["kind"], path + ".kind", KINDS)
    else:
        kind = "ssh" if "host" in raw else ""
    if not kind:
        raise check.error(
            path, "missing required key 'host' (or add 'kind: local' to benchmark this machine)"
        )
    if kind == "ssh" and "host" not in raw:
        raise check.error(path, "missing required key 'host' (ssh devices need one)")
    if kind == "local":
        for key in SSH_ONLY:
            if key in raw:
                raise check.error(
                    _join(path, key),
                    "only ssh devices take %r (this device "
                    "is kind local; remove it or set 'kind: ssh')" % key,
                )

    def opt(key: str, parse: Callable[[Any, str], Any], default: Any) -> Any:
        return parse(raw[key], _join(path, key)) if key in raw else default

    def local_path(value: Any, where: str) -> str:
        # relative key/known_hosts paths are relative to devices.yaml, not the CWD
        return os.path.join(base, os.path.expanduser(check.string(value, where)))

    device = Device(
        name=name,
        kind=kind,
        python=opt("python", check.string, sys.executable if kind == "local" else "python3"),
        host=opt("host", check.string, None),
        port=opt("port", lambda v, p: check.integer(v, p, 1, 65535), 22),
        user=opt("user", check.string, None),
        key=opt("key", local_path, None),
        known_hosts=opt("known_hosts", local_path, None),
        trust_on_first_use=opt("trust_on_first_use", check.boolean, False),
        workdir=opt("workdir", check.string, "~/.cache/edgebench"),
        tags=opt(
            "tags", lambda v, p: check.string_list(v, p, lambda t, tp: check.name(t, tp, "tag")), ()
        ),
        timeout_s=opt("timeout_s", check.number, 600.0),
        onnx=opt("onnx", lambda v, p: _onnx(check, v, p), OnnxOptions()),
        tflite=opt("tflite", lambda v, p: _tflite(check, v, p), TfliteOptions()),
        env=opt("env", lambda v, p: _env(check, v, p), ()),
        require_accelerator=opt("require_accelerator", check.accelerator_demand, False),
        cooldown=opt("cooldown", lambda v, p: _cooldown(check, v, p), None),
        throttle_temp_c=opt("throttle_temp_c", check.number, None),
    )
    if device.require_accelerator and not (
        set(device.onnx.providers) - {"CPUExecutionProvider"} or device.tflite.delegate
    ):
        raise check.error(
            _join(path, "require_accelerator"),
            "no accelerator to require: set "
            "onnx.providers (e.g. [TensorrtExecutionProvider, "
            "CUDAExecutionProvider]) or tflite.delegate",
        )
    if device.cooldown is not None and device.cooldown.timeout_s >= device.timeout_s:
        raise check.error(
            _join(path, "cooldown.timeout_s"),
            "%g s is not less than timeout_s "
            "(%g s): the agent would be killed while cooling down"
            % (device.cooldown.timeout_s, device.timeout_s),
        )
    return device


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env(check: Checker, raw: Any, path: str) -> Tuple[Tuple[str, str], ...]:
    """Environment variables for the agent: names a shell and ``execve`` both take."""
    env = []
    for key, value in check.scalar_map(raw, path, (str, int, float)):
        if not _ENV_NAME.match(key):
            raise check.error(
                _join(path, key),
                "%r is not a valid environment variable name "
                "(letters, digits and '_', not starting with a digit)" % key,
            )
        text = str(value)
        if "\0" in text:
            raise check.error(_join(path, key), "the value contains a NUL character")
        env.append((key, text))
    return tuple(env)


def _cooldown(check: Checker, raw: Any, path: str) -> Cooldown:
    check.keys(raw, path, ("max_temp_c", "timeout_s"), required=("max_temp_c",))
    return Cooldown(
        max_temp_c=check.number(raw["max_temp_c"], path + ".max_temp_c"),
        timeout_s=(
            check.number(raw["timeout_s"], path + ".timeout_s") if "timeout_s" in raw else 300.0
        ),
    )


def _onnx(check: Checker, raw: Any, path: str) -> OnnxOptions:
    check.keys(
        raw, path, ("providers", "graph_optimization_level", "inter_op_threads", "provider_options")
    )
    providers = (
        check.string_list(raw["providers"], path + ".providers") if "providers" in raw else ()
    )
    options: List[Tuple[str, Tuple[Tuple[str, Any], ...]]] = []
    if "provider_options" in raw:
        opath = path + ".provider_options"
        if not isinstance(raw["provider_options"], Mapping):
            raise check.error(
                opath,
                "expected a mapping of provider names to options, got %s"
                % _show(raw["provider_options"]),
            )
        for provider, values in raw["provider_options"].items():
            if provider not in providers:  # (a did-you-mean would match the common suffix)
                raise check.error(
                    _join(opath, provider),
                    "%r is not in onnx.providers "
                    "(providers: %s)" % (provider, ", ".join(providers) or "none"),
                )
            options.append((provider, _option_values(check, values, _join(opath, provider))))
    return OnnxOptions(
        providers=providers,
        graph_optimization_level=(
            check.choice(
                raw["graph_optimization_level"], path + ".graph_optimization_level", GRAPH_LEVELS
            )
            if "graph_optimization_level" in raw
            else None
        ),
        inter_op_threads=(
            check.integer(raw["inter_op_threads"], path + ".inter_op_threads", 1)
            if "inter_op_threads" in raw
            else None
        ),
        provider_options=tuple(options),
    )


def _option_values(check: Checker, raw: Any, path: str) -> Tuple[Tuple[str, Any], ...]:
    """A provider's options: strings, numbers or booleans (ORT takes them as strings)."""
    if not isinstance(raw, Mapping):
        raise check.error(path, "expected a mapping, got %s" % _show(raw))
    out = []
    for key, value in raw.items():
        if not isinstance(key, str):
            raise check.error(path, "keys must be strings, got %r" % (key,))
        if not isinstance(value, (str, int, float, bool)):
            raise check.error(
                _join(path, key), "expected a string, number or true/false, got %s" % _show(value)
            )
        out.append((key, value))
    return tuple(out)


def _tflite(check: Checker, raw: Any, path: str) -> TfliteOptions:
    check.keys(raw, path, ("delegate",))
    if "delegate" not in raw:
        return TfliteOptions()
    dpath = path + ".delegate"
    delegate = raw["delegate"]
    check.keys(delegate, dpath, ("library", "options"), required=("library",))
    return TfliteOptions(
        Delegate(
            library=check.string(delegate["library"], dpath + ".library"),
            options=(
                check.scalar_map(delegate["options"], dpath + ".options", (str, int))
                if "options" in delegate
                else ()
            ),
        )
    )
