"""Whether a measurement can be trusted as asked: cooling down before an artifact,
throttling during the timed window, board settings that skew numbers, and whether the
requested accelerator actually ran the model.

The verdict goes into ``record.validity``::

    {"throttled": bool, "flags": ["throttled", ...], "reasons": ["...", ...],
     "warnings": ["...", ...], "throttle_temp_c": 80.0}

``flags`` are codes (``throttled``, ``accelerator-not-used``, ``hot-start``) with one
human-readable ``reasons`` entry each at least; ``warnings`` are board settings that make
numbers vary (governor, Jetson power mode and clocks, past under-voltage), each with the
command that fixes it.  A requested accelerator that did not run the model under
``require_accelerator`` is not a flag but an ``accelerator-not-used`` error record.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, Optional

from . import boards, fingerprint
from .power import max_temp_c

# Raspberry Pi firmware starts soft throttling at 80 °C (Pi 4 and 5); elsewhere only a
# configured ``throttle_temp_c`` applies.
DEFAULT_THROTTLE_TEMP_C = {"raspberry-pi": 80.0}
COOLDOWN_POLL_S = 0.5
THROTTLE_NAMES = [name for _, name in sorted(boards.THROTTLE_BITS.items())]

GOVERNOR_FIX = "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
JETSON_FIX = "sudo jetson_clocks"


def current_temp_c() -> Optional[float]:
    """The hottest thermal zone, else what ``vcgencmd measure_temp`` says."""
    temp = max_temp_c(fingerprint.temperatures_c())
    return temp if temp is not None else boards.vcgencmd_temp_c()


def cooldown(max_temp: float, timeout_s: float, poll_s: float = COOLDOWN_POLL_S) -> Dict[str, Any]:
    """Wait until the board is below ``max_temp`` °C, at most ``timeout_s``; then go on
    either way and say how long it waited and whether it got there."""
    info: Dict[str, Any] = {"max_temp_c": max_temp, "timeout_s": timeout_s}
    start = time.monotonic()
    temp = first = current_temp_c()
    if temp is None:
        info.update(waited_s=0.0, cooled=None, error="no temperature sensor to wait on")
        return info
    while temp >= max_temp:
        remaining = timeout_s - (time.monotonic() - start)
        if remaining <= 0:
            break
        time.sleep(min(poll_s, remaining))
        latest = current_temp_c()
        temp = latest if latest is not None else temp
    info.update(
        waited_s=round(time.monotonic() - start, 3),
        start_temp_c=first,
        end_temp_c=temp,
        cooled=temp < max_temp,
    )
    return info


def throttle_limit(family: str, configured: Optional[float]) -> Optional[float]:
    return configured if configured is not None else DEFAULT_THROTTLE_TEMP_C.get(family)


class Window:
    """``vcgencmd get_throttled`` right before and right after the timed window."""

    def __init__(self) -> None:
        self.available = boards.which("vcgencmd") is not None
        self.before: Optional[Dict[str, Any]] = None
        self.after: Optional[Dict[str, Any]] = None

    def begin(self) -> None:
        if self.available:
            self.before = boards.throttled()

    def end(self) -> None:
        if self.available:
            self.after = boards.throttled()

    def reasons(self) -> List[str]:
        """One line per throttling condition seen at the window's start, arising during it
        (a "has occurred" bit newly set) or present at its end."""
        before, after = self.before or {}, self.after or {}
        out = []
        for name in THROTTLE_NAMES:
            if name in before.get("now", []):
                when = "at the start of the timed window"
            elif (
                self.before is not None
                and name in after.get("since_boot", [])
                and name not in before.get("since_boot", [])
            ):
                when = "occurred during the timed window"
                if name in after.get("now", []):
                    when += " and was still on at its end"
            elif name in after.get("now", []):
                when = "at the end of the timed window"
            else:
                continue
            out.append(
                "%s %s (vcgencmd get_throttled %s)"
                % (
                    name,
                    when,
                    " -> ".join(d["raw"] for d in (self.before, self.after) if d is not None),
                )
            )
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"before": self.before, "after": self.after}


def temperature_reasons(peak_c: Optional[float], limit_c: Optional[float]) -> List[str]:
    if peak_c is None or limit_c is None or peak_c < limit_c:
        return []
    return [
        "temperature reached %.1f °C during the timed window (limit %.1f °C)" % (peak_c, limit_c)
    ]


def board_warnings(fp: Mapping[str, Any]) -> List[str]:
    """Board settings that make numbers vary, each with the command that fixes it."""
    board = fp.get("board") or {}
    jetson = board.get("jetson") or {}
    is_jetson = board.get("family") == "jetson" or bool(jetson)
    out = []
    clocks = jetson.get("clocks") or {}
    governors = [g for g in str(fp.get("governor") or "").split(",") if g]
    # after `jetson_clocks` min = max frequency, whatever the governor is called
    if governors and any(g != "performance" for g in governors) and not clocks.get("locked"):
        out.append(
            "cpufreq governor is %s, not performance: CPU frequency varies during the "
            "run; fix: `%s`" % (", ".join(governors), JETSON_FIX if is_jetson else GOVERNOR_FIX)
        )
    mode = jetson.get("nvpmodel") or {}
    if mode.get("mode") and not str(mode["mode"]).upper().startswith("MAXN"):
        out.append(
            "Jetson power mode is %s (nvpmodel %s), not MAXN: numbers hold for this "
            "mode only; `sudo nvpmodel -q --verbose` lists the modes, `sudo nvpmodel "
            "-m ID` selects one" % (mode["mode"], mode.get("id"))
        )
    if clocks and not clocks.get("locked"):
        out.append(
            "Jetson clocks are dynamic (%s): latency depends on DVFS; fix: `%s`"
            % (", ".join(clocks.get("dynamic") or []), JETSON_FIX)
        )
    pi = (board.get("raspberry_pi") or {}).get("throttled") or {}
    if pi.get("since_boot"):
        out.append(
            "vcgencmd get_throttled %s: %s since boot -- check the power supply and "
            "cooling" % (pi.get("raw"), ", ".join(pi["since_boot"]))
        )
    return out


def assess(
    fp: Mapping[str, Any],
    runtime: Mapping[str, Any],
    throttle_reasons: List[str],
    limit_c: Optional[float],
    cooled: Optional[Mapping[str, Any]],
) -> Dict[str, Any]:
    """The ``validity`` mapping of an ok record."""
    flags: List[str] = []
    reasons: List[str] = []
    if throttle_reasons:
        flags.append("throttled")
        reasons.extend(throttle_reasons)
    accelerator = runtime.get("accelerator") or {}
    if accelerator.get("used") is False:
        flags.append("accelerator-not-used")
        reasons.append(accelerator.get("message") or "the requested accelerator was not used")
    if cooled and cooled.get("cooled") is False:
        flags.append("hot-start")
        reasons.append(
            "cooldown gave up after %.0f s at %.1f °C (wanted below %.1f °C)"
            % (cooled["waited_s"], cooled["end_temp_c"], cooled["max_temp_c"])
        )
    return {
        "throttled": bool(throttle_reasons),
        "flags": flags,
        "reasons": reasons,
        "warnings": board_warnings(fp),
        "throttle_temp_c": limit_c,
    }
