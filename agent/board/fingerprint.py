"""What the board is and what state it is in: travels with every record."""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import re
import socket
from typing import Any, Dict, List, Optional

from .sysfs import board_path, read_board, read_text


def temperatures_c() -> Dict[str, float]:
    temps = {}
    for zone in sorted(glob.glob(board_path("sys/class/thermal/thermal_zone*"))):
        name = os.path.basename(zone)
        raw = read_text(os.path.join(zone, "temp"))
        kind = read_text(os.path.join(zone, "type")) or name
        try:
            temps["%s:%s" % (name, kind)] = int(raw or "") / 1000.0
        except ValueError:
            continue
    return temps


def _cpu_files(leaf: str) -> List[str]:
    paths = glob.glob(board_path("sys/devices/system/cpu/cpu[0-9]*/cpufreq/" + leaf))
    # numeric order (cpu2 before cpu10); the number is the cpuN directory's
    return sorted(paths, key=lambda p: int(re.findall(r"/cpu(\d+)/cpufreq/", p)[-1]))


def _cpu_model() -> Optional[str]:
    text = read_board("proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
            return value.strip()
    return platform.processor() or None


def _machine_id() -> Optional[str]:
    """systemd's (or D-Bus's) id of the installation, which survives renaming the host --
    hashed for edgebench, as machine-id(5) asks of ids that leave the machine."""
    for rel in ("etc/machine-id", "var/lib/dbus/machine-id"):
        text = read_board(rel)
        if text:
            return hashlib.sha256(("edgebench:" + text).encode("utf-8")).hexdigest()[:32]
    return None


def _board_serial() -> Optional[str]:
    """The device tree's serial number (Raspberry Pi, Jetson); absent on most PCs."""
    return read_board("proc/device-tree/serial-number") or read_board(
        "sys/firmware/devicetree/base/serial-number"
    )


def _mem_available_mb() -> Optional[float]:
    for line in (read_board("proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024.0
    return None


def _loadavg() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def governor() -> Optional[str]:
    govs = sorted({read_text(p) or "" for p in _cpu_files("scaling_governor")} - {""})
    return ",".join(govs) if govs else None


def freqs_mhz() -> List[float]:
    freqs = []
    for p in _cpu_files("scaling_cur_freq"):
        raw = read_text(p)
        if raw and raw.isdigit():
            freqs.append(int(raw) / 1000.0)
    return freqs


def static() -> Dict[str, Any]:
    """Facts that do not change during a measurement."""
    try:
        import numpy

        numpy_version: Optional[str] = numpy.__version__
    except ImportError:
        numpy_version = None
    return {
        "hostname": socket.gethostname(),
        "arch": platform.machine(),
        "board_model": read_board("proc/device-tree/model"),
        "board_serial": _board_serial(),
        "machine_id": _machine_id(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy_version,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }


def state() -> Dict[str, Any]:
    """Facts that drift: sampled before (and temperatures again after) the timed window."""
    return {
        "governor": governor(),
        "freqs_mhz": freqs_mhz(),
        "loadavg": _loadavg(),
        "mem_available_mb": _mem_available_mb(),
    }
