"""The host side of a run's provenance: tool version, Python, platform."""

from __future__ import annotations

import platform
import socket
from typing import Any, Dict

from edgebench import agent


def host_info() -> Dict[str, Any]:
    return {
        "edgebench": agent.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
    }
