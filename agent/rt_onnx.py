"""ONNX Runtime backend."""
from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np

from .faults import Fault
from .protocol import Job
from .tensors import TensorSpec

ONNX_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}
OPT_LEVELS = {
    "disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL",
}


def import_runtime(job: Job) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise Fault("runtime-missing", "onnxruntime is not installed on this device (%s)"
                         % exc)
    return onnxruntime


def _spec(arg: Any) -> TensorSpec:
    if arg.type not in ONNX_TYPES:
        raise Fault("input-invalid", "tensor %r has unsupported type %s"
                         % (arg.name, arg.type))
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
            raise Fault("job-invalid", "onnx.graph_optimization_level must be one of %s"
                             % ", ".join(OPT_LEVELS))
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[level])
        opts.log_severity_level = 3
        requested = list(job.onnx.get("providers") or ["CPUExecutionProvider"])
        available = ort.get_available_providers()
        usable = [p for p in requested if p in available]
        if not usable:
            raise Fault("runtime-missing", "none of the providers %s is available here "
                             "(available: %s)" % (requested, ", ".join(available)))
        try:
            self.session = ort.InferenceSession(str(job.artifact["path"]), sess_options=opts,
                                                providers=usable)
        except MemoryError:
            raise
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            text = str(exc)
            if "bad_alloc" in text or "Failed to allocate" in text:
                raise Fault("out-of-memory", "loading the model ran out of memory: %s"
                                 % text)
            if "NO_SUCHFILE" in text or "No such file" in text:
                raise Fault("model-invalid", "cannot read %s" % job.artifact["path"])
            raise Fault("model-invalid", "onnxruntime cannot load the model: %s" % text)
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
            "providers_active": self.session.get_providers(),
            "delegate": None,
        }

    def prepare(self, feeds: Dict[str, Any]) -> Callable[[], Any]:
        run, ready = self.session.run, dict(feeds)
        return lambda: run(None, ready)

    def infer(self, feeds: Dict[str, Any]) -> List[Any]:
        return self.session.run(None, feeds)


def load(ort: Any, job: Job) -> OnnxModel:
    return OnnxModel(ort, job)
