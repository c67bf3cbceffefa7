"""Board files, read below :data:`ROOT` (``EDGEBENCH_PROBE_ROOT``, default ``/``) so the
same code runs against fixture trees in tests."""

import os
from typing import Optional

ROOT = os.environ.get("EDGEBENCH_PROBE_ROOT", "/")


def board_path(rel: str) -> str:
    return os.path.join(ROOT, rel.lstrip("/"))


def read_board(rel: str) -> Optional[str]:
    return read_text(board_path(rel))


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").strip("\x00\n ")
    except OSError:
        return None
