"""The stores: a local results directory (the default, nothing to set up) or a PostgreSQL
database (``--store postgresql://…`` or ``EDGEBENCH_STORE``), opened by :func:`open_store`
behind the api.Store interface.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from .api import Run, Store, check_name, newest_tagged, parse_tag
from .local import (
    DEFAULT_ROOT,
    META_FILE,
    RunMeta,
    RunStore,
    StoreError,
    _read_json,
    open_run,
    safe_name,
)

ENV = "EDGEBENCH_STORE"


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
