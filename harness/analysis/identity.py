"""Which machine measured a record, so results follow the board, not its name in
devices.yaml."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional, Sequence

from edgebench.agent.record import Record

from ..store import RunMeta

# What names a board whatever its hostname; records from before these fields existed (or a
# board that has neither id) fall back to the legacy hash, which includes the hostname.
STABLE_FIELDS = ("machine_id", "board_serial", "arch", "board_model", "cpu_model")
LEGACY_FIELDS = ("hostname", "arch", "board_model", "cpu_model")
IDENTITY_FIELDS = ("hostname", "machine_id", "board_serial", "arch", "board_model", "cpu_model")


def identity_fields(record: Record) -> Dict[str, Any]:
    return {key: record.fingerprint.get(key) for key in IDENTITY_FIELDS}


def _hash(values: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(list(values)).encode("utf-8")).hexdigest()[:12]


def legacy_identity(record: Record) -> Optional[str]:
    """The identity edgebench gave a board before it read machine-id and serial."""
    if not record.fingerprint:
        return None
    return _hash([record.fingerprint.get(key) for key in LEGACY_FIELDS])


def device_identity(record: Record) -> Optional[str]:
    """12 hex digits naming the machine that measured ``record``, so results follow the
    board, not its name in devices.yaml nor its hostname (a CI container gets a new one each
    run): a hash of its machine-id, serial number, architecture, board and CPU model.  A
    record with neither id keeps the legacy hash (:func:`legacy_identity`).  None when the
    record carries no fingerprint."""
    fp = record.fingerprint
    if not fp:
        return None
    if not (fp.get("machine_id") or fp.get("board_serial")):
        return legacy_identity(record)
    return _hash(["board"] + [fp.get(key) for key in STABLE_FIELDS])


def same_board(a: Record, b: Record) -> bool:
    """Measured on the same machine: same identity, or -- when one record predates the
    stable ids -- the same legacy identity."""
    ident = device_identity(a)
    if ident is not None and ident == device_identity(b):
        return True
    stable = [
        bool(r.fingerprint.get("machine_id") or r.fingerprint.get("board_serial")) for r in (a, b)
    ]
    return (
        not all(stable)
        and legacy_identity(a) is not None
        and legacy_identity(a) == legacy_identity(b)
    )


def device_identities(records: Sequence[Record]) -> Dict[str, Optional[str]]:
    """Device name -> identity; a device's failed records without a fingerprint share the
    identity its other records show."""
    out: Dict[str, Optional[str]] = {}
    for record in records:
        if out.get(record.device) is None:
            out[record.device] = device_identity(record)
    return out


def device_tags(meta: RunMeta) -> Dict[str, List[str]]:
    """Device name -> tags, from run.json."""
    return {name: list((info or {}).get("tags") or []) for name, info in meta.devices.items()}
