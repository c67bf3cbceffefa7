"""Results on disk: one directory per run, written so that a kill at any moment loses
nothing already measured.

Layout of ``<root>/<run-id>/``::

    run.json                      what was asked, versions, devices, status of every job
    raw/<device>/<artifact>.json  one Record each (Record.to_dict)
    summary.csv                   one row per record, columns harness.summary.COLUMNS

Every file is replaced atomically (temp file in the same directory, fsync, ``os.replace``),
and writers on concurrent device threads are serialised by one lock.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from edgebench.agent.record import Record, RecordError

from .config import _show
from .summary import COLUMNS, rows

DEFAULT_ROOT = "results"
LATEST = "latest"
META_FILE = "run.json"
SUMMARY_FILE = "summary.csv"
RAW_DIR = "raw"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

PathLike = Union[str, os.PathLike]


class StoreError(Exception):
    """A run directory is missing or damaged; ``str()`` is one line."""


def _umask() -> int:
    """The process umask, read without setting it where /proc allows: device threads
    create files meanwhile."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half.

    Like a file the user writes: a new file follows the umask, a replaced one keeps its
    mode, and a symbolic link is written through.  A failure is a one-line StoreError.
    """
    path = Path(os.path.realpath(path))
    try:
        fd, tmp = tempfile.mkstemp(
            dir=str(path.parent), prefix="." + path.name + ".", suffix=".tmp"
        )
    except OSError as exc:
        raise StoreError("%s: cannot write (%s)" % (path, exc.strerror or exc)) from None
    try:
        try:
            mode = os.stat(str(path)).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            os.fchmod(fh.fileno(), mode)  # mkstemp made it 0600
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, str(path))
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise StoreError("%s: cannot write (%s)" % (path, exc.strerror or exc)) from None
        raise


def writable_dir(path: PathLike) -> Path:
    """``path``, made if missing and found writable by writing to it (root ignores file
    modes; a mount can be read-only); else a one-line StoreError."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=str(folder)).close()
    except FileExistsError:
        raise StoreError("%s: not a directory" % folder) from None
    except OSError as exc:
        raise StoreError("%s: cannot write there (%s)" % (folder, exc.strerror or exc)) from None
    return folder


def output_file(path: PathLike) -> Path:
    """A file a command was asked to write, checked before the work that fills it: not a
    directory, in a folder that exists (or is made) and is writable."""
    target = Path(path)
    if target.is_dir():
        raise StoreError("%s: is a directory; give a file name" % target)
    writable_dir(target.parent)
    return target


def safe_name(name: str) -> str:
    """A file name for ``name``; a name that had to change gets a hash of the original,
    so two different names (``a b`` and ``a_b``) never share a file."""
    cleaned = _UNSAFE.sub("_", name).lstrip(".") or "_"
    if cleaned == name:
        return name
    return "%s-%s" % (cleaned, hashlib.sha256(name.encode("utf-8")).hexdigest()[:8])


def _ordered(records: List[Record]) -> List[Record]:
    """By device then artifact, so output does not depend on which thread finished first."""
    return sorted(records, key=lambda r: (r.device, str(r.artifact.get("name"))))


def summary_csv(records: List[Record]) -> str:
    """summary.csv text for ``records``, sorted by device then artifact."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(_ordered(records)))
    return out.getvalue()


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxx``: UTC start time plus 4 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError("%s: cannot read (%s)" % (path, " ".join(str(exc).split()))) from None


# --- What the readers of a stored run rely on ------------------------------------------------
# run.json and the raw records are plain files: one edited by hand or cut short is a one-line
# StoreError naming the file and the field, never a TypeError deep in a report.  Only the
# fields the harness reads are checked; each may be absent or null (not measured), but a
# present value has its type.  Items of lists and free-keyed objects may not be null.

NUMBER = (int, float)
POSITIVE = (float, int)  # a number above 0 (latencies divide); its own tuple, told apart by id


@dataclass(frozen=True)
class Each:
    """A JSON object with free keys whose values all have ``shape``."""

    shape: Any


@dataclass(frozen=True)
class ListOf:
    """A JSON array of ``shape`` items (exactly ``length`` of them when given)."""

    shape: Any
    length: Optional[int] = None


_KINDS = {
    str: "a string",
    NUMBER: "a number",
    POSITIVE: "a number above 0",
    int: "an integer",
    bool: "true or false",
    dict: "an object",
    (str, dict): "a string or an object",
}

RECORD_SHAPE = {
    "schema_version": int,
    "device": str,
    "reason": str,
    "message": str,
    "started_at": str,
    "finished_at": str,
    "stderr_tail": str,
    "samples_ns": ListOf(int),
    "artifact": {
        "name": str,
        "sha256": str,
        "parent_sha256": str,
        "variant": str,
        "size_bytes": NUMBER,
        "format": str,
    },
    "runtime": {
        "name": str,
        "version": str,
        "providers_active": ListOf(str),
        "delegate": (str, dict),
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
            "memory_interval_ms",
        ),
        NUMBER,
    ),
    "timing": dict.fromkeys(("load_ms", "first_ms", "energy_mj", "engine_build_ms"), NUMBER),
    "stats": dict(
        dict.fromkeys(
            ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "throughput_ips"), POSITIVE
        ),
        std_ms=NUMBER,
        cv=NUMBER,
        n=int,
        stable=bool,
        stability_reasons=ListOf(str),
    ),
    "memory": dict(
        dict.fromkeys(("peak_rss_mb", "rss_after_import_mb", "rss_after_load_mb"), NUMBER),
        series=ListOf(ListOf(NUMBER, 2)),
    ),
    "accuracy": {"top1": NUMBER, "top5": NUMBER},
    "fingerprint": {
        "temps_c_before": Each(NUMBER),
        "temps_c_after": Each(NUMBER),
        "freqs_mhz": ListOf(NUMBER),
        "loadavg": ListOf(NUMBER),
        "mem_available_mb": NUMBER,
        "runtimes": Each(object),
        "governor": str,
        "validity": {
            "throttled": bool,
            "flags": ListOf(str),
            "reasons": ListOf(str),
            "warnings": ListOf(str),
        },
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
RECORD_REQUIRED = ("status", "device", "artifact")
OK_REQUIRED = ("p50_ms", "p90_ms")  # read without a fallback for an ok record

META_SHAPE = {
    "run_id": str,
    "created_at": str,
    "finished_at": str,
    "status": Each(Each(str)),
    "devices": Each({"kind": str, "host": str, "tags": ListOf(str)}),
    "request": {
        "artifacts": ListOf({"name": str, "sha256": str, "path": str}),
        "eval": str,
        "input_shapes": dict,
        "settings": dict,
    },
    "plan": {
        "file": str,
        "builds": ListOf({"file": str, "sparsity": NUMBER, "gzip_bytes": NUMBER}),
    },
}


def _leaf_ok(value: Any, shape: Any) -> bool:
    """``value`` is of the type ``shape`` names; a number is finite (an integer within 64
    bits, as numpy takes it), a POSITIVE one above 0."""
    if shape is object:
        return True
    if not isinstance(value, shape) or (isinstance(value, bool) and shape is not bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63 and (shape is not POSITIVE or value > 0)
    if isinstance(value, float):
        return math.isfinite(value) and (shape is not POSITIVE or value > 0)
    return True


def shape_error(value: Any, shape: Any, where: str = "") -> Optional[str]:
    """Why ``value`` does not have ``shape`` (``stats.p50_ms: expected a number, got
    'fast'``), or None."""

    def wrong(kind: str) -> str:
        return "%sexpected %s, got %s" % (where + ": " if where else "", kind, _show(value))

    def inner(key: Any) -> str:
        return "%s.%s" % (where, key) if where else str(key)

    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return wrong("an object")
        items = [(inner(k), value[k], sub) for k, sub in shape.items() if value.get(k) is not None]
    elif isinstance(shape, Each):
        if not isinstance(value, dict):
            return wrong("an object")
        items = [(inner(k), v, shape.shape) for k, v in value.items()]
    elif isinstance(shape, ListOf):
        if not isinstance(value, list) or len(value) != (shape.length or len(value)):
            return wrong("a list" if shape.length is None else "a list of %d" % shape.length)
        if (
            shape.shape is int
            and set(map(type, value)) <= {int}
            and -(2**63) <= min(value, default=0)
            and max(value, default=0) < 2**63
        ):
            return None  # 100 000 samples at C speed
        if not isinstance(shape.shape, (dict, Each, ListOf)):
            bad = next((i for i, v in enumerate(value) if not _leaf_ok(v, shape.shape)), None)
            return (
                None
                if bad is None
                else shape_error(value[bad], shape.shape, "%s[%d]" % (where, bad))
            )
        items = [("%s[%d]" % (where, i), v, shape.shape) for i, v in enumerate(value)]
    else:
        return None if _leaf_ok(value, shape) else wrong(_KINDS[shape])
    return next((why for w, v, sub in items for why in [shape_error(v, sub, w)] if why), None)


def record_error(data: Any) -> Optional[str]:
    """What is wrong with a stored record's JSON, as far as the harness reads it."""
    if not isinstance(data, dict):
        return shape_error(data, RECORD_SHAPE)
    missing = [key for key in RECORD_REQUIRED if key not in data]
    if missing:
        return "missing field %r" % missing[0]
    why = shape_error(data, RECORD_SHAPE)
    if why is None and data["status"] == "ok":
        absent = [k for k in OK_REQUIRED if (data.get("stats") or {}).get(k) is None]
        why = "stats.%s: missing (an ok record has it)" % absent[0] if absent else None
    return why


class RunStore:
    """One run directory.  Use :meth:`create` for a new run or :func:`open_run`."""

    def __init__(self, path: Path, meta: Dict[str, Any]) -> None:
        self.path = path
        self.run_id = path.name
        self._meta = meta
        self._lock = threading.Lock()
        self._records: Optional[Dict[Tuple[str, str], Record]] = None  # loaded on first write

    @classmethod
    def create(cls, root: PathLike = DEFAULT_ROOT) -> RunStore:
        """Make a fresh ``<root>/<run-id>/`` holding a minimal run.json."""
        root_path = writable_dir(root)
        while True:
            path = root_path / new_run_id()
            try:
                path.mkdir()
                break
            except FileExistsError:  # same second, same random suffix
                continue
            except OSError as exc:
                raise StoreError("%s: cannot create (%s)" % (path, exc.strerror or exc)) from None
        store = cls(path, {})
        store.write_meta({})
        return store

    @property
    def root(self) -> Path:
        return self.path.parent

    def meta(self) -> Dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._meta)

    def write_meta(self, meta: Dict[str, Any]) -> None:
        """Replace run.json with ``meta`` (plus ``run_id`` and an empty ``status``)."""
        data = copy.deepcopy(dict(meta))
        data.setdefault("run_id", self.run_id)
        data.setdefault("status", {})
        with self._lock:
            self._meta = data
            atomic_write(self.path / META_FILE, _dumps(data))

    def update_meta(self, **fields: Any) -> None:
        """Set top-level fields of run.json without touching the rest."""
        with self._lock:
            self._meta.update(copy.deepcopy(fields))
            atomic_write(self.path / META_FILE, _dumps(self._meta))

    def set_status(self, device: str, artifact: str, status: str) -> None:
        """Record the status of one device x artifact job in run.json."""
        with self._lock:
            self._meta.setdefault("status", {}).setdefault(device, {})[artifact] = status
            atomic_write(self.path / META_FILE, _dumps(self._meta))

    def _record_path(self, device: str, artifact: str) -> Path:
        return self.path / RAW_DIR / safe_name(device) / (safe_name(artifact) + ".json")

    def write_record(self, record: Record) -> Path:
        """Store ``record`` (replacing an earlier one for the same device and artifact,
        e.g. a retry) and rewrite summary.csv to cover every record so far."""
        path = self._record_path(record.device, str(record.artifact["name"]))
        with self._lock:
            if self._records is None:
                self._records = {
                    (r.device, str(r.artifact["name"])): r for r in self._read_records()
                }
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    "%s: cannot create (%s)" % (path.parent, exc.strerror or exc)
                ) from None
            atomic_write(path, _dumps(record.to_dict()))
            self._records[(record.device, str(record.artifact["name"]))] = record
            atomic_write(self.path / SUMMARY_FILE, summary_csv(list(self._records.values())))
        return path

    def records(self) -> List[Record]:
        """Every stored record, by device then artifact."""
        with self._lock:
            return self._read_records()

    def _read_records(self) -> List[Record]:
        out = []
        for path in sorted((self.path / RAW_DIR).glob("*/*.json")):
            try:
                data = _read_json(path)
                why = record_error(data)
                if why:
                    raise RecordError(why)
                out.append(Record.from_dict(data))
            except (StoreError, RecordError) as exc:
                text = (
                    str(exc)
                    if isinstance(exc, StoreError)
                    else ("%s: not a valid record (%s)" % (path, exc))
                )
                raise StoreError(
                    "%s; fix it, or delete it and `edgebench run --resume %s` "
                    "measures it again" % (text, self.path)
                ) from None
        return _ordered(out)

    def write_text(self, name: str, text: str) -> Path:
        """Atomically write a report file (``report.md``, ...) into the run directory."""
        if not name or os.path.basename(name) != name or name.startswith("."):
            raise ValueError("not a plain file name: %r" % name)
        path = self.path / name
        atomic_write(path, text)
        return path

    def mark_latest(self) -> None:
        """Point ``<root>/latest`` at this run (relative link, swapped in atomically)."""
        link = self.root / LATEST
        tmp = self.root / (".%s.%s.tmp" % (LATEST, secrets.token_hex(4)))
        try:
            os.symlink(self.run_id, str(tmp))
            os.replace(str(tmp), str(link))
        except OSError as exc:
            if os.path.lexists(str(tmp)):
                os.unlink(str(tmp))
            raise StoreError("%s: cannot update (%s)" % (link, exc.strerror or exc)) from None


def open_run(path: PathLike) -> RunStore:
    """An existing run: its directory, ``<root>/latest``, or a results root with a
    ``latest`` link."""
    given = Path(path)
    if not given.exists():
        raise StoreError("%s: no such run directory" % given)
    if not (given / META_FILE).is_file() and (given / LATEST / META_FILE).is_file():
        given = given / LATEST
    meta_path = given / META_FILE
    if not meta_path.is_file():
        raise StoreError("%s: not a run directory (no %s)" % (given, META_FILE))
    meta = _read_json(meta_path)
    why = shape_error(meta, META_SHAPE)
    if why:
        raise StoreError("%s: %s" % (meta_path, why))
    return RunStore(given.resolve(), meta)
