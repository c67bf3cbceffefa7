"""`edgebench devices`: the inventory, and what each device's agent reports about itself."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Sequence

from edgebench.agent.board.power import max_temp_c
from edgebench.agent.faults import Fault
from edgebench.agent.protocol import PROTOCOL_VERSION

from .config import Device, Inventory
from .run.pack import build, default_cache
from .transport import make_transport
from .transport.base import agent_answer

PROBE_TIMEOUT_S = 120.0


def list_devices(inventory: Inventory, devices: Sequence[Device], as_json: bool) -> None:
    rows = [
        {
            "name": d.name,
            "kind": d.kind,
            "host": d.host or "",
            "python": d.python,
            "tags": ",".join(d.tags),
        }
        for d in devices
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    print("inventory: %s" % inventory.source)
    _table(rows, ["name", "kind", "host", "python", "tags"])


def _table(rows: List[Dict[str, Any]], columns: List[str]) -> None:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def probe_one(device: Device, agent_zip: Path) -> Dict[str, Any]:
    """The agent's probe document for ``device``, or ``{"error": reason, "message": ...}``."""
    job = {
        "protocol": PROTOCOL_VERSION,
        "tflite": device.tflite.to_dict(),
        "onnx": device.onnx.to_dict(),
    }
    return ask_agent(device, agent_zip, "probe", job, PROBE_TIMEOUT_S)


def ask_agent(
    device: Device, agent_zip: Path, command: str, job: Dict[str, Any], timeout: float
) -> Dict[str, Any]:
    """The document the agent's ``command`` answers with (its ``command`` key) on
    ``device``, or ``{"error": reason, "message": ...}``."""
    transport = make_transport(device)
    try:
        transport.deploy(agent_zip)
        outcome = transport.run_agent(command, job, timeout)
        return agent_answer(outcome, timeout, lambda doc: dict(doc[command]))
    except Fault as fault:  # the agent's failures read as in a run's records
        return {"error": fault.reason, "message": fault.message}
    except Exception as exc:  # a fault of ours or of this host: this device's answer
        return {"error": "internal", "message": "%s: %s" % (type(exc).__name__, exc)}
    finally:
        transport.close()


def _describe(info: Dict[str, Any]) -> Dict[str, Any]:
    if "error" in info:
        return {"status": "error: %s" % info["error"], "details": info["message"]}
    rts = info.get("runtimes", {})
    ort = rts.get("onnxruntime", {})
    tfl = rts.get("tflite", {})
    tfl_mods = [
        m.split(".")[0] + " " + v.get("version", "")
        for m, v in tfl.get("modules", {}).items()
        if v.get("available")
    ]
    delegate = tfl.get("delegate")
    temps = info.get("temps_c") or {}
    return {
        "status": "ok",
        "arch": info.get("arch"),
        "board": info.get("board_model") or "",
        "python": info.get("python"),
        "numpy": info.get("numpy"),
        "onnxruntime": (
            "%s [%s]" % (ort.get("version"), ",".join(ort.get("providers", [])))
            if ort.get("available")
            else "missing"
        ),
        "tflite": ", ".join(tfl_mods) or "missing",
        "delegate": (
            ""
            if not delegate
            else "%s %s"
            % (
                delegate["library"],
                "loads" if delegate["loads"] else "FAILS: %s" % delegate.get("error", ""),
            )
        ),
        "cpus": info.get("cpu_count"),
        "governor": info.get("governor") or "",
        "max_temp_c": max_temp_c(temps) or "",  # without Jetson's fixed PMIC-Die 100 °C
        **_board(info.get("board") or {}, ort.get("trt_engine_cache")),
        "warnings": "; ".join(info.get("warnings") or []),
    }


def _board(board: Dict[str, Any], trt_cache: Any) -> Dict[str, Any]:
    """The vendor probes (agent/board/boards.py) as ``edgebench devices --probe`` lines."""
    pi = board.get("raspberry_pi") or {}
    jetson = board.get("jetson") or {}
    throttled = pi.get("throttled") or {}
    mode = jetson.get("nvpmodel") or {}
    clocks = jetson.get("clocks")
    tpus = board.get("edgetpu") or []
    return {
        "family": board.get("family", ""),
        "throttled": (
            "%s (now: %s; since boot: %s)"
            % (
                throttled["raw"],
                ", ".join(throttled["now"]) or "none",
                ", ".join(throttled["since_boot"]) or "none",
            )
            if throttled
            else ""
        ),
        "soc_temp_c": pi.get("temp_c", ""),
        "arm_mhz": "%.0f" % pi["arm_mhz"] if pi.get("arm_mhz") else "",
        "l4t": jetson.get("l4t", ""),
        "nvpmodel": "%s (id %s)" % (mode["mode"], mode.get("id")) if mode else "",
        "clocks": (
            ""
            if clocks is None
            else "locked (jetson_clocks)"
            if clocks["locked"]
            else "dynamic: " + ", ".join(clocks.get("dynamic") or [])
        ),
        "edgetpu": ", ".join(
            "%s %s%s"
            % (
                t["bus"],
                t.get("id") or t.get("device"),
                " (%s)" % t["state"] if t.get("state") else "",
            )
            for t in tpus
        ),
        "power_rails": ", ".join(board.get("power_rails") or []),
        "tegrastats": "yes" if board.get("tegrastats") else "",
        "trt_cache": (
            ""
            if not trt_cache
            else "%s (%s)"
            % (trt_cache["path"], trt_cache.get("error") or "%d engines" % trt_cache["engines"])
        ),
        "probe_errors": "; ".join("%s: %s" % kv for kv in (board.get("errors") or {}).items()),
    }


def probe_devices(devices: Sequence[Device], as_json: bool) -> int:
    with ThreadPoolExecutor(max_workers=max(1, len(devices))) as pool:
        agent_zip = build(default_cache())  # once, not per device
        results = dict(
            zip([d.name for d in devices], pool.map(lambda d: probe_one(d, agent_zip), devices))
        )
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for name, info in results.items():
            print("== %s" % name)
            for key, value in _describe(info).items():
                if value not in ("", None):
                    print("  %-12s %s" % (key, value))
    return 1 if any("error" in info for info in results.values()) else 0
