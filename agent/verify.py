"""Inputs are checked by sha256 right before use: a file on the board that changed after it
was sent (same size or not) is never measured."""

from __future__ import annotations

import hashlib
import os
from typing import Optional, Union

from .faults import Fault


def sha256_file(path: Union[str, os.PathLike[str]]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(path: str, want: Optional[str], what: str) -> None:
    """Raise ``transfer-failed`` unless ``path`` has the sha256 ``want`` (None: unchecked)."""
    if not want:
        return
    try:
        got = sha256_file(path)
    except OSError as exc:
        raise Fault(
            "transfer-failed", "cannot read %s %s: %s" % (what, path, exc.strerror or exc)
        ) from None
    if got != want:
        raise Fault(
            "transfer-failed",
            "the %s %s has sha256 %s..., not the %s... that was "
            "sent; not measured" % (what, path, got[:16], want[:16]),
        )
