"""The interface commands use, whichever backend holds the runs, and run references.

A *run reference* names one run in a store: a run id, ``latest``, a stored name
(``edgebench store name``), or ``tag:LABEL[@DEVICE]`` — the newest run made with ``run --tag
LABEL`` (that measured DEVICE).  In a local store a reference may also be a path, as before:
a run directory or a results root (its ``latest``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, Optional, Protocol, Tuple, Union

from edgebench.agent.record import Record

from .local import LATEST, RunMeta, StoreError

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
    (:meth:`run_ids`; history.entries(store): its small summary of every run)."""

    @property
    def label(self) -> str: ...

    def create(self) -> Run: ...

    def open(self, ref: str, exclude: Optional[str] = None) -> Run: ...

    def run_ids(self) -> List[str]: ...

    def name(self, name: str, run: Run) -> None: ...

    def read_text(self, run: Run, name: str) -> str: ...

    def default_file(self, run: Run, name: str) -> Path: ...


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
