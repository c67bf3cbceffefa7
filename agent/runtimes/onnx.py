"""ONNX Runtime backend."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from ..faults import Fault
from ..protocol import Job
from ..tensors import TensorSpec

ONNX_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}
TRT = "TensorrtExecutionProvider"
OPT_LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def import_runtime(job: Job) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise Fault(
            "runtime-missing", "onnxruntime is not installed on this device (%s)" % exc
        ) from None
    return onnxruntime


def _spec(arg: Any) -> TensorSpec:
    if arg.type not in ONNX_TYPES:
        raise Fault("input-invalid", "tensor %r has unsupported type %s" % (arg.name, arg.type))
    shape = tuple(d if isinstance(d, int) else (d or None) for d in (arg.shape or ()))
    return TensorSpec(arg.name, shape, np.dtype(ONNX_TYPES[arg.type]))


class OnnxModel:
    def __init__(self, ort: Any, job: Job) -> None:
        opts = ort.SessionOptions()
        threads = job.settings.threads
        if threads:
            opts.intra_op_num_threads = threads
        if job.onnx.get("inter_op_threads"):
            opts.inter_op_num_threads = int(job.onnx["inter_op_threads"])
        level = job.onnx.get("graph_optimization_level", "all")
        if level not in OPT_LEVELS:
            raise Fault(
                "job-invalid",
                "onnx.graph_optimization_level must be one of %s" % ", ".join(OPT_LEVELS),
            )
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[level])
        opts.log_severity_level = 3
        requested = list(job.onnx.get("providers") or ["CPUExecutionProvider"])
        available = ort.get_available_providers()
        accelerator = next((p for p in requested if p != "CPUExecutionProvider"), None)
        if job.require_accelerator and accelerator not in available:
            raise Fault("accelerator-not-used", accelerator_missing(accelerator, available))
        usable = [p for p in requested if p in available]
        if not usable:
            raise Fault(
                "runtime-missing",
                "none of the providers %s is available here "
                "(available: %s)" % (requested, ", ".join(available)),
            )
        options = provider_options(job.onnx.get("provider_options") or {}, usable)
        cache = engine_cache(options)
        # kept for the profiled session after the timed window (runtimes/onnx_profile.py)
        self.session_options = opts
        self.providers = [(p, options[p]) if p in options else p for p in usable]
        try:
            self.session = ort.InferenceSession(
                str(job.artifact["path"]), sess_options=opts, providers=self.providers
            )
        except MemoryError:
            raise
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            text = str(exc)
            if "bad_alloc" in text or "Failed to allocate" in text:
                raise Fault(
                    "out-of-memory", "loading the model ran out of memory: %s" % text
                ) from None
            if "NO_SUCHFILE" in text or "No such file" in text:
                raise Fault("model-invalid", "cannot read %s" % job.artifact["path"]) from None
            raise Fault("model-invalid", "onnxruntime cannot load the model: %s" % text) from None
        active = self.session.get_providers()
        used = None if accelerator is None else accelerator in active
        message = (
            ""
            if used is not False
            else ("%s was requested but the session runs on %s" % (accelerator, ", ".join(active)))
        )
        if used is False and job.require_accelerator:
            raise Fault("accelerator-not-used", message)
        if cache is not None:
            cache["engines_before"] = _engines(cache["path"])
        self.inputs = [_spec(a) for a in self.session.get_inputs()]
        self.outputs = [_spec(a) for a in self.session.get_outputs()]
        self.runtime = {
            "name": "onnxruntime",
            "module": "onnxruntime",
            "version": ort.__version__,
            "threads": threads,
            "inter_op_threads": job.onnx.get("inter_op_threads"),
            "graph_optimization_level": level,
            "providers_requested": requested,
            "providers_active": active,
            "provider_options": {p: dict(o) for p, o in options.items()},
            "accelerator": {"requested": accelerator, "used": used, "message": message},
            "delegate": None,
        }
        if cache is not None:
            self.runtime["trt_engine_cache"] = cache

    def after_first(self) -> None:
        """Called after the first inference (where TensorRT may build its engine)."""
        cache = self.runtime.get("trt_engine_cache")
        if cache is not None:
            cache["engines_after"] = _engines(cache["path"])

    def prepare(self, feeds: Dict[str, Any]) -> Callable[[], Any]:
        run, ready = self.session.run, dict(feeds)
        return lambda: run(None, ready)

    def infer(self, feeds: Dict[str, Any]) -> List[Any]:
        return self.session.run(None, feeds)


def accelerator_missing(accelerator: Optional[str], available: List[str]) -> str:
    if accelerator is None:
        return (
            "require_accelerator is set but onnx.providers names no accelerator (only "
            "CPUExecutionProvider)"
        )
    return "%s was requested but this onnxruntime does not have it (available: %s)" % (
        accelerator,
        ", ".join(available),
    )


def provider_options(raw: Mapping[str, Any], usable: List[str]) -> Dict[str, Dict[str, str]]:
    """Options per provider as ORT takes them (strings); the TensorRT engine cache path
    is expanded (``~``) and created."""
    options = {}
    for provider, opts in raw.items():
        if provider not in usable or not isinstance(opts, Mapping):
            continue
        conv = {}
        for key, value in opts.items():
            if isinstance(value, bool):
                value = "True" if value else "False"
            conv[str(key)] = str(value)
        if "trt_engine_cache_path" in conv:
            conv["trt_engine_cache_path"] = os.path.expanduser(conv["trt_engine_cache_path"])
        options[provider] = conv
    return options


def engine_cache(options: Mapping[str, Mapping[str, str]]) -> Optional[Dict[str, Any]]:
    trt = options.get(TRT, {})
    if trt.get("trt_engine_cache_enable", "").lower() not in ("true", "1"):
        return None
    path = trt.get("trt_engine_cache_path") or os.getcwd()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        pass
    return {"path": path}


def _engines(path: str) -> int:
    """TensorRT engine files in the cache directory (a build adds one)."""
    try:
        return sum(1 for name in os.listdir(path) if name.endswith(".engine"))
    except OSError:
        return 0


def engine_build_ms(runtime: Mapping[str, Any], first_ms: float, p50_ms: float) -> Optional[float]:
    """With TensorRT active the first inference builds (or loads) the engine: its excess
    over the steady-state median is reported apart as ``engine_build_ms``."""
    if TRT not in (runtime.get("providers_active") or []):
        return None
    return max(0.0, first_ms - p50_ms)


def load(ort: Any, job: Job) -> OnnxModel:
    return OnnxModel(ort, job)
