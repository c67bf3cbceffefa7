"""The interface commands use, whichever backend holds the runs.

A *store* is a local results directory (the default, nothing to set up) or a PostgreSQL
database (``--store postgresql://…`` or ``EDGEBENCH_STORE``).  A *run reference* names one
run in it: a run id, ``latest``, a stored name (``edgebench store name``), or
``tag:LABEL[@DEVICE]`` — the newest run made with ``run --tag LABEL`` (that measured DEVICE).
In a local store a reference may also be a path, as before: a run directory or a results
root (its ``latest``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Tuple, Union

from edgebench.agent.record import Record

from .local import (
    DEFAULT_ROOT,
    LATEST,
    META_FILE,
    RunMeta,
    RunStore,
    StoreError,
    _read_json,
    open_run,
    safe_name,
)

ENV = "EDGEBENCH_STORE"
TAG_PREFIX = "tag:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


class Run(Protocol):
    """One run, wherever it is stored (local.RunStore, postgres.PgRun)."""

    @property
    def run_id(self) -> str: ...

    @property
    def where(self) -> str: ...

    def meta(self) -> RunMeta: ...

    def write_meta(self, meta: RunMeta) -> None: ...

    def update_meta(self, **changes: Any) -> None: ...

    def set_status(self, device: str, artifact: str, status: str) -> None: ...

    def write_record(self, record: Record) -> Any: ...

    def records(self) -> List[Record]: ...

    def write_text(self, name: str, text: str) -> Union[Path, str]: ...

    def mark_latest(self) -> None: ...


class Store(Protocol):
    """Where runs are created, found (:meth:`open` a run reference) and listed
    (:meth:`run_ids`; :meth:`entries`: history's small summary of every run)."""

    @property
    def label(self) -> str: ...

    def create(self) -> Run: ...

    def open(self, ref: str, exclude: Optional[str] = None) -> Run: ...

    def run_ids(self) -> List[str]: ...

    def entries(self) -> List[Dict[str, Any]]: ...

    def name(self, name: str, run: Run) -> None: ...

    def read_text(self, run: Run, name: str) -> str: ...

    def default_file(self, run: Run, name: str) -> Path: ...


def store_location(given: Optional[str]) -> Optional[str]:
    """The store a command was given (``--store``), else ``EDGEBENCH_STORE``, else None."""
    return given or os.environ.get(ENV) or None


def is_database(location: Optional[str]) -> bool:
    return bool(location) and str(location).startswith(("postgresql://", "postgres://"))


def open_store(location: Optional[str], root: Optional[str] = None) -> Store:
    """The store at ``location`` (a PostgreSQL URL or a results directory; None: the local
    default).  ``root``: a results directory the command was given (``--out``, ``--root``),
    which a local store takes over ``location``."""
    if is_database(location):
        from .postgres import PgStore

        return PgStore(str(location))
    return LocalStore(Path(root or location or DEFAULT_ROOT))


def parse_tag(ref: str) -> Optional[Tuple[str, Optional[str]]]:
    """``tag:main@pi4`` -> ("main", "pi4"); not a tag reference -> None."""
    if not ref.startswith(TAG_PREFIX):
        return None
    label, _, device = ref[len(TAG_PREFIX) :].partition("@")
    if not label:
        raise StoreError("%s: a tag reference is tag:LABEL or tag:LABEL@DEVICE" % ref)
    return label, device or None


def check_name(name: str) -> str:
    """A stored name: letters, digits, ``._-``; not ``latest`` nor a tag reference."""
    if not _NAME.match(name) or name == LATEST:
        raise StoreError(
            "%r: a stored name is 1-100 letters, digits, '.', '_' or '-' (not 'latest')" % name
        )
    return name


def check_tag(label: str) -> str:
    """A ``run --tag`` label: a branch name such as ``main`` or ``feature/int8`` (no ``@``,
    which separates the device in ``tag:LABEL@DEVICE``)."""
    if not _TAG.match(label):
        raise StoreError(
            "--tag %r: a label is letters, digits, '.', '_', '-' or '/' (at most 200)" % label
        )
    return label


def newest_tagged(
    metas: List[RunMeta], label: str, device: Optional[str], exclude: Optional[str]
) -> Optional[RunMeta]:
    """The newest of ``metas`` tagged ``label`` (that measured ``device``), not ``exclude``."""
    found = [
        m
        for m in metas
        if m.tag == label
        and m.run_id != exclude
        and (device is None or device in m.devices or device in m.status)
    ]
    return max(found, key=lambda m: (m.created_at or "", m.run_id), default=None)


class LocalStore:
    """A results directory: ``<root>/<run-id>/`` per run (local.py)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def label(self) -> str:
        return str(self.root)

    def create(self) -> Run:
        return RunStore.create(self.root)

    def open(self, ref: str, exclude: Optional[str] = None) -> Run:
        tag = parse_tag(ref)
        if tag is None:
            path = Path(ref)
            if not path.exists() and (self.root / ref).exists():
                path = self.root / ref  # a run id or stored name in this root
            return open_run(path)
        if not self.root.is_dir():
            raise StoreError("%s: no such results directory" % self.root)
        metas = []
        for run_dir in sorted(p for p in self.root.iterdir() if not p.is_symlink()):
            try:
                metas.append(RunMeta.from_dict(_read_json(run_dir / META_FILE), run_dir.name))
            except (StoreError, ValueError):
                continue  # not a run, or a damaged one: not a baseline
        meta = newest_tagged(metas, tag[0], tag[1], exclude)
        if meta is None:
            raise StoreError("%s: no run tagged %s in %s" % (ref, tag[0], self.root))
        return open_run(self.root / meta.run_id)

    def run_ids(self) -> List[str]:
        """Every run, oldest first (ids start with their UTC start time)."""
        if not self.root.is_dir():
            raise StoreError("%s: no such results directory" % self.root)
        return sorted(
            p.name for p in self.root.iterdir() if not p.is_symlink() and (p / META_FILE).is_file()
        )

    def entries(self) -> List[Dict[str, Any]]:
        from ..analysis.history import load_index

        return load_index(self.root)

    def name(self, name: str, run: Run) -> None:
        check_name(name)
        target = self.root / name
        if target.exists() and not target.is_symlink():
            raise StoreError("%s: exists and is not a stored name" % target)
        assert isinstance(run, RunStore)
        run.link(name)

    def read_text(self, run: Run, name: str) -> str:
        assert isinstance(run, RunStore)
        path = run.path / safe_name(name)
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StoreError("%s: cannot read (%s)" % (path, exc.strerror or exc)) from None

    def default_file(self, run: Run, name: str) -> Path:
        assert isinstance(run, RunStore)
        return run.path / name
