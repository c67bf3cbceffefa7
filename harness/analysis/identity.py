"""Which machine measured a record, so results follow the board, not its name in
devices.yaml."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional, Sequence

from edgebench.agent.record import Record

from ..store import RunMeta

IDENTITY_FIELDS = ("hostname", "arch", "board_model", "cpu_model")


def identity_fields(record: Record) -> Dict[str, Any]:
    return {key: record.fingerprint.get(key) for key in IDENTITY_FIELDS}


def device_identity(record: Record) -> Optional[str]:
    """12 hex digits naming the machine that measured ``record`` -- a hash of its hostname,
    architecture, board model and CPU model -- so results follow the board, not its name
    in devices.yaml.  None when the record carries no fingerprint."""
    if not record.fingerprint:
        return None
    text = json.dumps([record.fingerprint.get(key) for key in IDENTITY_FIELDS])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


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
