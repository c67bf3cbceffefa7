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
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from agent.record import Record, RecordError
from harness.summary import COLUMNS, rows

DEFAULT_ROOT = "results"
LATEST = "latest"
META_FILE = "run.json"
SUMMARY_FILE = "summary.csv"
RAW_DIR = "raw"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

PathLike = Union[str, os.PathLike]


class StoreError(Exception):
    """A run directory is missing or damaged; ``str()`` is one line."""


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix="." + path.name + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, str(path))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


class RunStore:
    """One run directory.  Use :meth:`create` for a new run or :func:`open_run`."""

    def __init__(self, path: Path, meta: Dict[str, Any]) -> None:
        self.path = path
        self.run_id = path.name
        self._meta = meta
        self._lock = threading.Lock()
        self._records: Optional[Dict[Tuple[str, str], Record]] = None  # loaded on first write

    @classmethod
    def create(cls, root: PathLike = DEFAULT_ROOT) -> "RunStore":
        """Make a fresh ``<root>/<run-id>/`` holding a minimal run.json."""
        root_path = Path(root)
        root_path.mkdir(parents=True, exist_ok=True)
        while True:
            path = root_path / new_run_id()
            try:
                path.mkdir()
                break
            except FileExistsError:  # same second, same random suffix
                continue
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
                self._records = {(r.device, str(r.artifact["name"])): r
                                 for r in self._read_records()}
            path.parent.mkdir(parents=True, exist_ok=True)
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
                out.append(Record.from_dict(_read_json(path)))
            except RecordError as exc:
                raise StoreError("%s: not a valid record (%s)" % (path, exc)) from None
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
        os.symlink(self.run_id, str(tmp))
        try:
            os.replace(str(tmp), str(link))
        except OSError as exc:
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
    if not isinstance(meta, dict):
        raise StoreError("%s: expected a JSON object" % meta_path)
    return RunStore(given.resolve(), meta)
