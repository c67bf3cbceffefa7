"""Capabilities of this device: what `edgebench devices --probe` shows."""

from __future__ import annotations

import importlib
import os
from typing import Any, Dict, Mapping

from .board import boards, fingerprint, validity


def _onnxruntime() -> Dict[str, Any]:
    try:
        import onnxruntime
    except ImportError as exc:
        return {"available": False, "error": str(exc)}
    return {
        "available": True,
        "version": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
    }


def _tflite(delegate: Any) -> Dict[str, Any]:
    from .runtimes.tflite import MODULES, module_version

    modules = {}
    loaded = None
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            modules[name] = {"available": False, "error": str(exc).splitlines()[0]}
            continue
        modules[name] = {"available": True, "version": module_version(name)}
        loaded = loaded or module
    result: Dict[str, Any] = {"available": loaded is not None, "modules": modules}
    if isinstance(delegate, Mapping) and delegate.get("library") and loaded is not None:
        options = {str(k): str(v) for k, v in (delegate.get("options") or {}).items()}
        try:
            loaded.load_delegate(delegate["library"], options)
            result["delegate"] = {"library": delegate["library"], "loads": True}
        except Exception as exc:  # any failure means "does not load here"
            result["delegate"] = {
                "library": delegate["library"],
                "loads": False,
                "error": str(exc).splitlines()[0] if str(exc) else repr(exc),
            }
    return result


def probe(job: Mapping[str, Any]) -> Dict[str, Any]:
    tflite_conf = job.get("tflite") if isinstance(job.get("tflite"), Mapping) else {}
    info = fingerprint.static()
    info.update(fingerprint.state())
    info["temps_c"] = fingerprint.temperatures_c()
    try:
        import psutil  # noqa: F401

        info["psutil"] = True
    except ImportError:
        info["psutil"] = False
    info["runtimes"] = {
        "onnxruntime": _onnxruntime(),
        "tflite": _tflite((tflite_conf or {}).get("delegate")),
    }
    info["board"] = boards.probe(info.get("board_model"))
    info["warnings"] = validity.board_warnings(info)
    cache = _trt_cache(job.get("onnx"))
    if cache:
        info["runtimes"]["onnxruntime"]["trt_engine_cache"] = cache
    return info


def _trt_cache(onnx_conf: Any) -> Dict[str, Any]:
    """The configured TensorRT engine cache directory and the engines already in it."""
    if not isinstance(onnx_conf, Mapping):
        return {}
    trt = (onnx_conf.get("provider_options") or {}).get("TensorrtExecutionProvider") or {}
    if str(trt.get("trt_engine_cache_enable", "")).lower() not in ("true", "1"):
        return {}
    path = os.path.expanduser(str(trt.get("trt_engine_cache_path") or "."))
    try:
        engines = sorted(n for n in os.listdir(path) if n.endswith(".engine"))
    except OSError as exc:
        return {"path": path, "error": exc.strerror or str(exc)}
    return {"path": path, "engines": len(engines)}
