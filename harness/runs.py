"""Where the views -- ``lab``, ``export``, ``report --history`` -- read stored runs.

The one place they touch the store: the run index (history.py's, one small entry per run)
and opening one run.  A store backend other than the local directory is plugged in here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from .analysis.history import load_index
from .store import RunStore, open_run


def index(root: str) -> List[Dict[str, Any]]:
    """One small entry per stored run under ``root`` (no samples), oldest first."""
    return load_index(Path(root))


def open_stored(ref: str) -> RunStore:
    """A stored run: a run directory, or a results root (its latest run)."""
    return open_run(ref)


def open_in(root: str, run_id: str) -> RunStore:
    """Run ``run_id`` of the index of ``root``."""
    return open_run(Path(root) / run_id)
