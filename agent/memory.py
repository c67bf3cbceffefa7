"""Resident memory of this process, per phase, and an optional sampler thread.

Preferred source is /proc/self/status (VmRSS now, VmHWM peak); the peak is reset between
phases by writing 5 to /proc/self/clear_refs where the kernel allows it.  Without /proc we
fall back to psutil (if the board has it) for the current RSS and to getrusage for the peak
-- a peak since process start, which the record says.
"""

from __future__ import annotations

import sys
import time
from typing import Dict, List, Optional, Tuple

from .periodic import Periodic

try:  # psutil is optional on boards
    import psutil  # type: ignore
except ImportError:  # pragma: no cover - depends on the board
    psutil = None

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore

PROC_STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"


def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open(PROC_STATUS) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_mb() -> Tuple[Optional[float], str]:
    kb = _proc_status_kb("VmRSS")
    if kb is not None:
        return kb / 1024.0, "proc-status"
    if psutil is not None:
        return psutil.Process().memory_info().rss / 2.0**20, "psutil"
    return None, "unavailable"


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open(CLEAR_REFS, "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(reset_ok: bool) -> Tuple[Optional[float], str]:
    kb = _proc_status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0, "proc-hwm" if reset_ok else "proc-hwm-since-start"
    if resource is not None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB elsewhere
        return peak / scale / 2.0**20, "getrusage-since-start"
    return None, "unavailable"


class Phases:
    """Collects the RSS of each named phase and the method behind each figure."""

    def __init__(self) -> None:
        self.values: Dict[str, Optional[float]] = {}
        self.methods: Dict[str, str] = {}

    def mark(self, phase: str) -> None:
        value, method = current_rss_mb()
        self.values["rss_%s_mb" % phase] = value
        self.methods["rss_%s_mb" % phase] = method

    def peak(self, reset_ok: bool) -> None:
        value, method = peak_rss_mb(reset_ok)
        self.values["peak_rss_mb"] = value
        self.methods["peak_rss_mb"] = method


class Sampler(Periodic):
    """Background thread recording (seconds since start, RSS MB) every ``interval_ms``."""

    def __init__(self, interval_ms: float) -> None:
        super().__init__(interval_ms / 1000.0, "rss-sampler")
        self.series: List[List[float]] = []
        self._start = time.monotonic()

    def tick(self) -> Optional[bool]:
        value, _ = current_rss_mb()
        if value is None:
            return False
        self.series.append([round(time.monotonic() - self._start, 4), round(value, 3)])
        return None
