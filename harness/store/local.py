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
import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from edgebench.agent.jsonshape import NUMBER, Each, ListOf, shape_error
from edgebench.agent.record import Record, RecordError

from ..summary import COLUMNS, rows

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


def summary_csv(records: List[Record], run_id: str = "") -> str:
    """summary.csv text for ``records`` of run ``run_id``, sorted by device then artifact."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(_ordered(records), run_id))
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


# --- run.json ---------------------------------------------------------------------------------

META_VERSION = 1  # a run.json without schema_version was written before it had one: version 1


@dataclass(frozen=True)
class RunMeta:
    """run.json: what a run was asked, on which devices, and how far each job got.

    The one definition of the file: writers replace fields (:meth:`RunStore.update_meta`),
    readers use attributes.  A field at its default is not written, so a run.json keeps the
    keys it held before this model (plus ``schema_version``).
    """

    run_id: str
    created_at: Optional[str] = None
    argv: Tuple[str, ...] = ()
    tool: Mapping[str, Any] = field(default_factory=dict)  # hostinfo.host_info()
    inventory: Optional[str] = None  # the devices file the run used
    request: Mapping[str, Any] = field(default_factory=dict)  # runner.Request.describe()
    devices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # kind, host, tags
    status: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # pending, ok, error:*
    plan: Optional[Mapping[str, Any]] = None  # plan.Plan.describe() plus its builds
    bytes_sent: Mapping[str, int] = field(default_factory=dict)  # per device
    interrupted: Optional[bool] = None
    finished_at: Optional[str] = None
    resumed_at: Optional[str] = None
    tag: Optional[str] = None  # `run --tag`: a branch or label that baselines can name
    schema_version: int = META_VERSION

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (Mapping, list, tuple)):
                value = tuple(value) if f.name == "argv" else copy.deepcopy(value)
                object.__setattr__(self, f.name, value)

    def to_dict(self) -> Dict[str, Any]:
        out = {"run_id": self.run_id, "schema_version": self.schema_version, "status": {}}
        for f in fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if value != default or f.name == "status":
                out[f.name] = list(value) if f.name == "argv" else copy.deepcopy(value)
        return out

    @classmethod
    def from_dict(cls, data: Any, run_id: str) -> RunMeta:
        """The run.json document ``data`` of run ``run_id`` (its directory name, for a file
        without one); what is wrong with it is one line naming the field, raised as
        ValueError."""
        why = shape_error(data, _META_SHAPE)
        if why:
            raise ValueError(why)
        version = data.get("schema_version", 1)
        if not 1 <= version <= META_VERSION:
            raise ValueError(
                "unsupported schema_version %d (this edgebench reads 1 to %d%s)"
                % (version, META_VERSION, "; a newer one wrote it" * (version > META_VERSION))
            )
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError("unknown field %r" % unknown[0])
        given = {k: v for k, v in data.items() if v is not None}
        return cls(**dict({"run_id": run_id, "schema_version": 1}, **given))


# What readers rely on: a run.json edited by hand is a one-line error naming the field.
_META_SHAPE = {
    "schema_version": int,
    "run_id": str,
    "created_at": str,
    "argv": ListOf(str),
    "tool": dict,
    "inventory": str,
    "finished_at": str,
    "resumed_at": str,
    "interrupted": bool,
    "tag": str,
    "bytes_sent": Each(NUMBER),
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


class MetaOwner:
    """A run's run.json in memory, changed under one lock and saved by the backend's
    :meth:`_save_meta` (local.RunStore, postgres.PgRun)."""

    def __init__(self, meta: RunMeta) -> None:
        self._meta = meta
        self._lock = threading.Lock()

    def meta(self) -> RunMeta:
        with self._lock:
            return self._meta

    def write_meta(self, meta: RunMeta) -> None:
        """Replace run.json with ``meta``."""
        with self._lock:
            self._save_meta(meta)

    def update_meta(self, **changes: Any) -> None:
        """Set fields of run.json (RunMeta's names) without touching the rest."""
        with self._lock:
            self._save_meta(dataclasses.replace(self._meta, **changes))

    def set_status(self, device: str, artifact: str, status: str) -> None:
        """Record the status of one device x artifact job in run.json."""
        with self._lock:
            jobs = dict(self._meta.status)
            jobs[device] = dict(jobs.get(device, {}), **{artifact: status})
            self._save_meta(dataclasses.replace(self._meta, status=jobs))

    def _save_meta(self, meta: RunMeta) -> None:
        raise NotImplementedError


class RunStore(MetaOwner):
    """One run directory.  Use :meth:`create` for a new run or :func:`open_run`."""

    def __init__(self, path: Path, meta: RunMeta) -> None:
        super().__init__(meta)
        self.path = path
        self.run_id = path.name
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
        store = cls(path, RunMeta(path.name))
        store.write_meta(store.meta())
        return store

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def where(self) -> str:
        """Where the run lives, for messages."""
        return str(self.path)

    def _save_meta(self, meta: RunMeta) -> None:
        self._meta = meta  # kept when the disk refuses it: the run's report still shows it
        atomic_write(self.path / META_FILE, _dumps(meta.to_dict()))

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
            atomic_write(
                self.path / SUMMARY_FILE, summary_csv(list(self._records.values()), self.run_id)
            )
        return path

    def records(self) -> List[Record]:
        """Every stored record, by device then artifact."""
        with self._lock:
            return self._read_records()

    def _read_records(self) -> List[Record]:
        out = []
        for path in sorted((self.path / RAW_DIR).glob("*/*.json")):
            try:
                out.append(Record.from_dict(_read_json(path)))
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
        self.link(LATEST)

    def link(self, name: str) -> None:
        """Point ``<root>/<name>`` (``latest``, a stored name) at this run."""
        link = self.root / name
        tmp = self.root / (".%s.%s.tmp" % (name, secrets.token_hex(4)))
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
    try:
        meta = RunMeta.from_dict(_read_json(meta_path), given.resolve().name)
    except ValueError as exc:
        raise StoreError("%s: %s" % (meta_path, exc)) from None
    return RunStore(given.resolve(), meta)
