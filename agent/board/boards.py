"""Vendor probes: Raspberry Pi (vcgencmd), Jetson (nvpmodel, jetson_clocks, L4T release)
and Coral (Edge TPU devices, Edge TPU-compiled models).

Tools are found on the agent's ``PATH`` and board files below ``EDGEBENCH_PROBE_ROOT``
(see :mod:`agent.fingerprint`), so tests run this code against stand-in tools and fixture
trees.  Every probe is best effort: a missing tool is simply absent from the result, a
tool that fails is reported under ``errors``; no probe raises.
"""

from __future__ import annotations

import glob
import mmap
import os
import re
import shutil
import struct
import subprocess
from typing import Any, Dict, List, Optional, Tuple

from .sysfs import board_path, read_board, read_text

TOOL_TIMEOUT_S = 5.0

# vcgencmd get_throttled bits (Raspberry Pi documentation, "vcgencmd", get_throttled):
# 0-3 are the current state, 16-19 the same conditions "has occurred since boot".
THROTTLE_BITS = {
    0: "under-voltage",
    1: "arm-frequency-capped",
    2: "throttled",
    3: "soft-temperature-limit",
}
STICKY_SHIFT = 16

EDGETPU_USB_IDS = {("1a6e", "089a"): "unprovisioned", ("18d1", "9302"): "provisioned"}
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


def which(tool: str) -> Optional[str]:
    return shutil.which(tool, path=os.environ.get("PATH", os.defpath))


def run_tool(args: List[str], timeout: float = TOOL_TIMEOUT_S) -> Tuple[bool, str]:
    """(succeeded, stdout or a one-line error) of a vendor tool; never raises."""
    try:
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, "%s: %s" % (args[0], exc)
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip() or out.strip()
        return False, "%s exited with %d%s" % (
            os.path.basename(args[0]),
            proc.returncode,
            ": " + err.splitlines()[-1] if err else "",
        )
    return True, out


# --- Raspberry Pi ----------------------------------------------------------------------------


def parse_throttled(text: str) -> Optional[Dict[str, Any]]:
    """``throttled=0x50005`` -> the raw value and the named conditions, now and since boot."""
    match = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", text)
    if not match:
        return None
    value = int(match.group(1), 0)
    return {
        "raw": match.group(1),
        "now": [name for bit, name in sorted(THROTTLE_BITS.items()) if value >> bit & 1],
        "since_boot": [
            name for bit, name in sorted(THROTTLE_BITS.items()) if value >> (bit + STICKY_SHIFT) & 1
        ],
    }


def parse_temp(text: str) -> Optional[float]:
    """``temp=47.2'C`` -> 47.2."""
    match = re.search(r"temp=(-?[0-9.]+)", text)
    return float(match.group(1)) if match else None


def parse_clock(text: str) -> Optional[float]:
    """``frequency(48)=1500345728`` -> 1500.345728 (MHz)."""
    match = re.search(r"frequency\(\d+\)=(\d+)", text)
    return int(match.group(1)) / 1e6 if match else None


def vcgencmd(*args: str) -> Tuple[bool, str]:
    tool = which("vcgencmd")
    if tool is None:
        return False, ""
    return run_tool([tool] + list(args))


def throttled() -> Optional[Dict[str, Any]]:
    """The decoded ``vcgencmd get_throttled``, or None without a working vcgencmd."""
    ok, out = vcgencmd("get_throttled")
    return parse_throttled(out) if ok else None


def vcgencmd_temp_c() -> Optional[float]:
    ok, out = vcgencmd("measure_temp")
    return parse_temp(out) if ok else None


def _raspberry_pi(errors: Dict[str, str]) -> Dict[str, Any]:
    info: Dict[str, Any] = {}
    for key, args, parse in (
        ("throttled", ("get_throttled",), parse_throttled),
        ("temp_c", ("measure_temp",), parse_temp),
        ("arm_mhz", ("measure_clock", "arm"), parse_clock),
    ):
        ok, out = vcgencmd(*args)
        value = parse(out) if ok else None
        if value is not None:
            info[key] = value
        else:
            errors["vcgencmd " + " ".join(args)] = out.strip() or "unrecognised output"
    return info


# --- Jetson ------------------------------------------------------------------------------------


def parse_nvpmodel(text: str) -> Optional[Dict[str, Any]]:
    """``nvpmodel -q``: ``NV Power Mode: MAXN`` then the mode id on the next line."""
    match = re.search(r"NV Power Mode:[ \t]*(\S+)[ \t]*(?:\r?\n\s*(\d+))?", text)
    if not match:
        return None
    return {
        "mode": match.group(1),
        "id": int(match.group(2)) if match.group(2) is not None else None,
    }


def parse_jetson_clocks(text: str) -> Optional[Dict[str, Any]]:
    """``jetson_clocks --show``: clocks are locked (what ``sudo jetson_clocks`` does) when
    every online CPU's and the GPU's minimum frequency equals its maximum and the EMC runs
    at its maximum with ``FreqOverride=1``."""
    pairs = []  # (name, min, max, cur)
    for line in text.splitlines():
        line = line.strip()
        name = line.split(":", 1)[0] if re.match(r"cpu\d+:", line) else line.split(" ", 1)[0]
        if not (re.match(r"cpu\d+$", name) or name in ("GPU", "EMC")):
            continue
        if name.startswith("cpu") and "Online=0" in line:
            continue
        found = dict(re.findall(r"(MinFreq|MaxFreq|CurrentFreq)=(\d+)", line))
        if "MinFreq" in found and "MaxFreq" in found:
            low, high = int(found["MinFreq"]), int(found["MaxFreq"])
            locked = low == high or (name == "EMC" and "FreqOverride=1" in line)
            pairs.append((name, low, high, int(found.get("CurrentFreq", 0)), locked))
    if not pairs:
        return None
    dynamic = [p[0] for p in pairs if not p[4]]
    result: Dict[str, Any] = {"locked": not dynamic, "dynamic": dynamic}
    for name, low, high, cur, _ in pairs:
        if name in ("GPU", "EMC"):
            result[name.lower() + "_mhz"] = {"min": low / 1e6, "max": high / 1e6, "cur": cur / 1e6}
    return result


def l4t_release() -> Optional[str]:
    """``# R35 (release), REVISION: 4.1, ...`` in /etc/nv_tegra_release -> ``R35.4.1``."""
    text = read_board("etc/nv_tegra_release")
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)", text or "")
    return "R%s.%s" % (match.group(1), match.group(2)) if match else None


def _jetson(errors: Dict[str, str]) -> Dict[str, Any]:
    info: Dict[str, Any] = {}
    release = l4t_release()
    if release:
        info["l4t"] = release
    for key, tool, args, parse in (
        ("nvpmodel", "nvpmodel", ["-q"], parse_nvpmodel),
        ("clocks", "jetson_clocks", ["--show"], parse_jetson_clocks),
    ):
        path = which(tool)
        if path is None:
            continue
        ok, out = run_tool([path] + args)
        value = parse(out) if ok else None
        if value is not None:
            info[key] = value
        else:
            errors["%s %s" % (tool, " ".join(args))] = (
                out.strip().splitlines()[-1] if out.strip() else "unrecognised output"
            )
    return info


# --- Coral ---------------------------------------------------------------------------------------


def edgetpu_devices() -> List[Dict[str, str]]:
    """Edge TPUs: USB accelerators by vendor:product id, PCIe/M.2 ones by /dev/apex_*."""
    found = []
    for dev in sorted(glob.glob(board_path("sys/bus/usb/devices/*"))):
        ids = (
            read_text(os.path.join(dev, "idVendor")),
            read_text(os.path.join(dev, "idProduct")),
        )
        if ids in EDGETPU_USB_IDS:
            found.append(
                {
                    "bus": "usb",
                    "id": "%s:%s" % ids,
                    "sysfs": os.path.basename(dev),
                    "state": EDGETPU_USB_IDS[ids],
                }
            )  # type: ignore[index]
    for dev in sorted(glob.glob(board_path("dev/apex_*"))):
        found.append({"bus": "pcie", "device": "/dev/" + os.path.basename(dev)})
    return found


def is_edgetpu_delegate(library: Optional[str]) -> bool:
    return bool(library) and "edgetpu" in os.path.basename(str(library)).lower()


def tflite_custom_ops(path: str) -> Optional[List[str]]:
    """The custom operator codes of a TFLite flatbuffer (``Model.operator_codes[*]
    .custom_code``), read with the standard library; None when the file is not one."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 8:
                return None
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                return _custom_ops(buf, size)
            finally:
                buf.close()
    except (OSError, ValueError, struct.error):
        return None


def _custom_ops(buf: Any, size: int) -> Optional[List[str]]:
    def u32(pos: int) -> int:
        if pos < 0 or pos + 4 > size:
            raise ValueError("offset out of range")
        return struct.unpack_from("<I", buf, pos)[0]

    def field(table: int, index: int) -> Optional[int]:
        """Absolute position of field ``index`` of the table at ``table``, if present."""
        vtable = table - struct.unpack_from("<i", buf, table)[0]
        if vtable < 0 or vtable + 4 > size:
            raise ValueError("bad vtable")
        vt_size = struct.unpack_from("<H", buf, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        offset = struct.unpack_from("<H", buf, vtable + slot)[0]
        return table + offset if offset else None

    if bytes(buf[4:8]) != b"TFL3":
        return None
    model = u32(0)
    codes_field = field(model, 1)  # Model.operator_codes
    if codes_field is None:
        return []
    vector = codes_field + u32(codes_field)
    ops = []
    for i in range(u32(vector)):
        element = vector + 4 + 4 * i
        code = element + u32(element)
        custom = field(code, 1)  # OperatorCode.custom_code
        if custom is None:
            continue
        string = custom + u32(custom)
        length = u32(string)
        if string + 4 + length > size:
            raise ValueError("string out of range")
        ops.append(bytes(buf[string + 4 : string + 4 + length]).decode("utf-8", "replace"))
    return ops


def has_edgetpu_op(path: str) -> Optional[bool]:
    ops = tflite_custom_ops(path)
    return None if ops is None else EDGETPU_CUSTOM_OP in ops


# --- All of it -------------------------------------------------------------------------------


def family(board_model: Optional[str]) -> str:
    model = (board_model or "").lower()
    if "raspberry pi" in model:
        return "raspberry-pi"
    if "jetson" in model or "nvidia" in model or read_board("etc/nv_tegra_release") is not None:
        return "jetson"
    if "coral" in model or "phanbell" in model:
        return "coral"
    return "generic"


def probe(board_model: Optional[str]) -> Dict[str, Any]:
    """What the vendor tools and files say about this board (only what applies)."""
    from .power import find_rails

    errors: Dict[str, str] = {}
    info: Dict[str, Any] = {"family": family(board_model)}
    if which("vcgencmd"):
        info["raspberry_pi"] = _raspberry_pi(errors)
    jetson = _jetson(errors)
    if jetson:
        info["jetson"] = jetson
    tpus = edgetpu_devices()
    if tpus:
        info["edgetpu"] = tpus
    rails = find_rails()
    if rails:
        info["power_rails"] = [r.name for r in rails]
    if which("tegrastats"):
        info["tegrastats"] = True
    if errors:
        info["errors"] = errors
    return info
