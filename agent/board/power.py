"""Power, energy and board state during the timed window.

Two samplers, both outside the timed loop's thread:

- :class:`BoardSampler`, a thread that sleeps between reads of the INA3221 power rails
  (Jetson; hwmon on JetPack 5+, iio on JetPack 4) and the thermal zones;
- :class:`Tegrastats`, the ``tegrastats --interval MS`` subprocess, whose lines a thread
  reads and parses (RAM, CPU, EMC and GPU load/frequency, temperatures, power rails).

Energy is the power integrated (trapezoids) over exactly the timed window:
``integrate_mj(series, t0_ns, t1_ns)``, mW x s = mJ.  Timestamps are
``time.perf_counter_ns()``, the clock the window is timed with.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..periodic import Periodic
from .sysfs import board_path, read_text

perf_ns = time.perf_counter_ns

# Rails that measure the whole module's input; without one, the rails are summed.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


# --- INA3221 rails -------------------------------------------------------------------------


class Rail:
    """One INA3221 channel: either a power file (mW) or a voltage (mV) and current (mA)."""

    def __init__(
        self,
        name: str,
        power: Optional[str] = None,
        volt: Optional[str] = None,
        curr: Optional[str] = None,
    ) -> None:
        self.name, self.power, self.volt, self.curr = name, power, volt, curr

    def read_mw(self) -> Optional[float]:
        try:
            if self.power is not None:
                return float(_first_int(self.power))
            return _first_int(self.volt) * _first_int(self.curr) / 1000.0  # type: ignore
        except (TypeError, ValueError):
            return None


def _first_int(path: Optional[str]) -> int:
    text = read_text(path) if path else None
    if not text:
        raise ValueError("unreadable")
    return int(text.split()[0])


def _skip(label: str) -> bool:
    # Unconnected channels ("NC") and the AGX Orin's "sum of shunt voltages" channel.
    return not label or label.upper().startswith("NC") or "sum of" in label.lower()


def find_rails() -> List[Rail]:
    """The INA3221 rails that can be read, newer hwmon layout first."""
    rails: List[Rail] = []
    hwmons = glob.glob(board_path("sys/class/hwmon/hwmon*"))
    hwmons += glob.glob(board_path("sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"))
    seen = set()
    for hwmon in sorted(hwmons):
        real = os.path.realpath(hwmon)
        if real in seen or (read_text(os.path.join(hwmon, "name")) or "") != "ina3221":
            continue
        seen.add(real)
        for label_path in sorted(glob.glob(os.path.join(hwmon, "in*_label"))):
            channel = os.path.basename(label_path)[2 : -len("_label")]
            label = read_text(label_path) or ""
            volt = os.path.join(hwmon, "in%s_input" % channel)
            curr = os.path.join(hwmon, "curr%s_input" % channel)
            if _skip(label) or not (os.path.exists(volt) and os.path.exists(curr)):
                continue
            rails.append(Rail(label, volt=volt, curr=curr))
    for iio in sorted(glob.glob(board_path("sys/bus/i2c/drivers/ina3221x/*/iio:device*"))):
        for power in sorted(glob.glob(os.path.join(iio, "in_power*_input"))):
            channel = os.path.basename(power)[len("in_power") : -len("_input")]
            label = read_text(os.path.join(iio, "rail_name_%s" % channel)) or "rail%s" % channel
            if not _skip(label):
                rails.append(Rail(label, power=power))
    return [r for r in rails if r.read_mw() is not None]


def total_rail(names: Sequence[str]) -> Optional[str]:
    for name in TOTAL_RAILS:
        if name in names:
            return name
    return None


def integrate_mj(
    series: Sequence[Tuple[int, Optional[float]]], t0_ns: int, t1_ns: int
) -> Optional[float]:
    """Energy (mJ) of a power series (ns, mW; None where unread) over [t0, t1]: trapezoids,
    the series linearly interpolated at the window's edges and held flat beyond its ends."""
    points = sorted((t, p) for t, p in series if p is not None)
    if not points or t1_ns <= t0_ns:
        return None

    def at(t: int) -> float:
        if t <= points[0][0]:
            return points[0][1]
        if t >= points[-1][0]:
            return points[-1][1]
        for (ta, pa), (tb, pb) in zip(points, points[1:]):
            if ta <= t <= tb:
                return pa + (pb - pa) * (t - ta) / float(tb - ta) if tb > ta else pb
        return points[-1][1]  # pragma: no cover

    inside = (
        [(t0_ns, at(t0_ns))]
        + [(t, p) for t, p in points if t0_ns < t < t1_ns]
        + [(t1_ns, at(t1_ns))]
    )
    total = 0.0
    for (ta, pa), (tb, pb) in zip(inside, inside[1:]):
        total += (pa + pb) / 2.0 * (tb - ta) / 1e9
    return total


# --- Thermal zones -----------------------------------------------------------------------


def plausible_temp(name: str, value: float) -> bool:
    """Leave out sensors that do not measure heat: Jetson's fixed ``PMIC-Die`` (100 °C) and
    offline sensors reporting -256 °C or similar."""
    return "pmic" not in name.lower() and -40.0 < value < 150.0


def max_temp_c(temps: Dict[str, float]) -> Optional[float]:
    values = [v for k, v in temps.items() if plausible_temp(k, v)]
    return max(values) if values else None


def _zone_files() -> List[Tuple[str, str]]:
    zones = []
    for zone in sorted(glob.glob(board_path("sys/class/thermal/thermal_zone*"))):
        kind = read_text(os.path.join(zone, "type")) or os.path.basename(zone)
        if plausible_temp(kind, 0.0):
            zones.append((kind, os.path.join(zone, "temp")))
    return zones


class BoardSampler(Periodic):
    """A thread reading the power rails every ``interval_ms`` and the thermal zones every
    ``temp_interval_ms``; sleeps in between.  Holds a final sample taken at exit."""

    def __init__(self, interval_ms: float = 50.0, temp_interval_ms: float = 250.0) -> None:
        self.rails = find_rails()
        self.zones = _zone_files()
        interval = interval_ms / 1000.0 if self.rails else temp_interval_ms / 1000.0
        super().__init__(interval, "board-sampler")
        self.temp_every = max(1, int(round(temp_interval_ms / 1000.0 / self.interval)))
        self.power: List[Tuple[int, Dict[str, Optional[float]]]] = []
        self.temps: List[Tuple[int, float]] = []
        self._ticks = 0

    @property
    def enabled(self) -> bool:
        return bool(self.rails or self.zones)

    def _sample(self, with_temps: bool) -> None:
        now = perf_ns()
        if self.rails:
            self.power.append((now, {r.name: r.read_mw() for r in self.rails}))
        if with_temps and self.zones:
            values = []
            for _, path in self.zones:
                raw = read_text(path)
                if raw and raw.lstrip("-").isdigit():
                    values.append(int(raw) / 1000.0)
            values = [v for v in values if plausible_temp("", v)]
            if values:
                self.temps.append((now, max(values)))

    def tick(self) -> Optional[bool]:
        self._sample(self._ticks % self.temp_every == 0)
        self._ticks += 1
        return None

    def finish(self) -> None:
        self._sample(True)

    def peak_temp_c(self, t0_ns: int, t1_ns: int) -> Optional[float]:
        """The hottest reading in the window, counting the readings that bracket it."""
        before = [v for t, v in self.temps if t < t0_ns][-1:]
        after = [v for t, v in self.temps if t > t1_ns][:1]
        inside = before + [v for t, v in self.temps if t0_ns <= t <= t1_ns] + after
        return max(inside) if inside else None

    def energy(self, t0_ns: int, t1_ns: int) -> Optional[Dict[str, Any]]:
        """Mean power per rail and the energy of the total rail over the window."""
        if not self.power:
            return None
        names = [r.name for r in self.rails]
        total = total_rail(names)
        if total is not None:
            series = [(t, values.get(total)) for t, values in self.power]
        else:
            series = [
                (t, sum(v for v in values.values() if v is not None)) for t, values in self.power
            ]
        energy = integrate_mj(series, t0_ns, t1_ns)
        if energy is None:
            return None
        seconds = (t1_ns - t0_ns) / 1e9
        rails = {}
        for name in names:
            e = integrate_mj([(t, v.get(name)) for t, v in self.power], t0_ns, t1_ns)
            if e is not None:
                rails[name] = round(e / seconds, 1)
        return {
            "source": "ina3221",
            "rail": total or "sum of rails",
            "energy_mj": energy,
            "mean_mw": energy / seconds,
            "rails_mean_mw": rails,
            "samples": sum(1 for t, _ in self.power if t0_ns <= t <= t1_ns),
        }


# --- tegrastats ----------------------------------------------------------------------------

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_ENGINE = re.compile(r"\b(EMC_FREQ|GR3D_FREQ) (\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMP = re.compile(r"\b([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]+) (\d+)(?:mW)?/(\d+)(?:mW)?\b")


def parse_tegrastats(line: str) -> Dict[str, Any]:
    """One ``tegrastats`` line (JetPack 4 to 6 layouts) as numbers.

    ``ram_mb``/``swap_mb``: [used, total]; ``cpu``: per core [load %, MHz] or None when
    off; ``emc``/``gpu``: load % and MHz (the GPU may list one frequency per GPC);
    ``temps_c``: sensor -> °C; ``rails_mw``: rail -> [current, average] mW.
    """
    out: Dict[str, Any] = {}
    match = _RAM.search(line)
    if match:
        out["ram_mb"] = [int(match.group(1)), int(match.group(2))]
    match = _SWAP.search(line)
    if match:
        out["swap_mb"] = [int(match.group(1)), int(match.group(2))]
    match = _CPU.search(line)
    if match:
        cores: List[Optional[List[int]]] = []
        shared = int(match.group(2)) if match.group(2) else None
        for item in match.group(1).split(","):
            item = item.strip()
            core = re.match(r"(\d+)%(?:@(\d+))?", item)
            if core is None:
                cores.append(None)  # "off"
            else:
                mhz = int(core.group(2)) if core.group(2) else shared
                cores.append([int(core.group(1)), mhz])  # type: ignore[list-item]
        out["cpu"] = cores
    for name, load, freqs in _ENGINE.findall(line):
        key = "emc" if name == "EMC_FREQ" else "gpu"
        engine_mhz = [int(f) for f in freqs.split(",") if f] if freqs else []
        out[key] = {"load_pct": int(load), "mhz": max(engine_mhz) if engine_mhz else None}
    temps = {name: float(value) for name, value in _TEMP.findall(line) if not name.isdigit()}
    if temps:
        out["temps_c"] = temps
    rails = {
        name: [int(cur), int(avg)]
        for name, cur, avg in _RAIL.findall(line)
        if name not in ("RAM", "SWAP", "IRAM")
    }
    if rails:
        out["rails_mw"] = rails
    return out


class Tegrastats:
    """``tegrastats --interval MS`` in a subprocess; a thread parses its lines as they come.

    Each parsed line is stamped with ``perf_counter_ns`` on arrival.  Without a
    ``tegrastats`` on PATH this does nothing.
    """

    def __init__(self, interval_ms: int = 100, tool: Optional[str] = None) -> None:
        self.interval_ms = int(interval_ms)
        self.tool = tool
        self.samples: List[Tuple[int, Dict[str, Any]]] = []
        self.error: Optional[str] = None
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                parsed = parse_tegrastats(line)
                if parsed:
                    self.samples.append((perf_ns(), parsed))

    def __enter__(self) -> Tegrastats:
        if self.tool:
            try:
                self._proc = subprocess.Popen(
                    [self.tool, "--interval", str(self.interval_ms)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            except OSError as exc:
                self.error = str(exc)
                return self
            self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.samples and self._proc.returncode not in (0, -15):
            self.error = "tegrastats exited with %s" % self._proc.returncode

    def summary(self, t0_ns: int, t1_ns: int) -> Optional[Dict[str, Any]]:
        """Means and maxima over the lines that arrived during the window (each line
        describes the interval before it, so the first line after the window counts too)."""
        inside = [s for t, s in self.samples if t0_ns <= t <= t1_ns]
        later = [s for t, s in self.samples if t > t1_ns]
        if later:
            inside.append(later[0])
        if not inside:
            return {"error": self.error} if self.error else None
        out: Dict[str, Any] = {"samples": len(inside), "interval_ms": self.interval_ms}
        rams = [s["ram_mb"][0] for s in inside if "ram_mb" in s]
        if rams:
            out["ram_used_mb_max"] = max(rams)
            out["ram_total_mb"] = inside[-1].get("ram_mb", [None, None])[1]
        for key in ("gpu", "emc"):
            loads = [s[key]["load_pct"] for s in inside if key in s]
            mhz = [s[key]["mhz"] for s in inside if key in s and s[key]["mhz"] is not None]
            if loads:
                out[key + "_load_pct_mean"] = round(sum(loads) / float(len(loads)), 1)
            if mhz:
                out[key + "_mhz"] = [min(mhz), max(mhz)]
        temps: Dict[str, float] = {}
        for s in inside:
            for name, value in s.get("temps_c", {}).items():
                if plausible_temp(name, value):
                    temps[name] = max(value, temps.get(name, value))
        if temps:
            out["temps_c_max"] = temps
        rails: Dict[str, List[int]] = {}
        for s in inside:
            for name, (cur, _) in s.get("rails_mw", {}).items():
                rails.setdefault(name, []).append(cur)
        if rails:
            out["rails_mw_mean"] = {k: round(sum(v) / float(len(v)), 1) for k, v in rails.items()}
        return out

    def energy(self, t0_ns: int, t1_ns: int) -> Optional[Dict[str, Any]]:
        """Energy from tegrastats' total rail, for boards whose rails are not readable."""
        series = [(t, s["rails_mw"]) for t, s in self.samples if "rails_mw" in s]
        if not series:
            return None
        total = total_rail(list(series[-1][1]))
        if total is None:
            return None
        # each line reports the power at its time stamp; held flat before the first
        points = [(t, float(rails[total][0])) for t, rails in series if total in rails]
        energy = integrate_mj(points, t0_ns, t1_ns)
        if energy is None:
            return None
        seconds = (t1_ns - t0_ns) / 1e9
        return {
            "source": "tegrastats",
            "rail": total,
            "energy_mj": energy,
            "mean_mw": energy / seconds,
            "samples": sum(1 for t, _ in points if t0_ns <= t <= t1_ns),
        }
