"""TFLite / LiteRT backend: ai_edge_litert, else tflite_runtime, else tensorflow.lite."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..board import boards
from ..faults import Fault
from ..protocol import Job
from ..tensors import TensorSpec

MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


def module_version(module_name: str) -> str:
    top = module_name.split(".")[0]
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return "unknown"
    for dist in {
        "ai_edge_litert": ("ai-edge-litert",),
        "tflite_runtime": ("tflite-runtime", "tflite_runtime"),
        "tensorflow": ("tensorflow", "tensorflow-cpu"),
    }.get(top, (top,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def import_runtime(job: Job) -> Tuple[str, Any]:
    """The first interpreter module that imports (or the one the job insists on)."""
    wanted = job.tflite.get("module")
    candidates = (wanted,) if wanted else MODULES
    errors = []
    for name in candidates:
        try:
            return name, importlib.import_module(name)
        except ImportError as exc:
            errors.append("%s: %s" % (name, exc))
    raise Fault("runtime-missing", "no TFLite interpreter importable (%s)" % "; ".join(errors))


def _spec(detail: Dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature")
    if signature is None or len(signature) == 0:
        signature = detail["shape"]
    shape = tuple(int(d) if d >= 0 else None for d in signature)
    scale, zero = detail.get("quantization", (0.0, 0))
    quant = (float(scale), int(zero)) if scale else None
    return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), quant)


class TfliteModel:
    def __init__(self, loaded: Tuple[str, Any], job: Job) -> None:
        module_name, module = loaded
        self.module = module  # for the placement and profile pass (runtimes/tflite_profile.py)
        interpreter_cls = module.Interpreter
        load_delegate = getattr(module, "load_delegate", None)
        delegate_conf: Optional[Dict[str, Any]] = job.tflite.get("delegate")
        delegates = []
        accelerator = accelerator_check(job)
        if delegate_conf:
            library = delegate_conf.get("library")
            options = {str(k): str(v) for k, v in (delegate_conf.get("options") or {}).items()}
            # under require_accelerator, a delegate that does not load is "not used"
            missing = "accelerator-not-used" if job.require_accelerator else "runtime-missing"
            if load_delegate is None:
                raise Fault(missing, "%s cannot load external delegates" % module_name)
            try:
                delegates.append(load_delegate(library, options))
            except (ValueError, OSError, RuntimeError) as exc:
                also = ("; and " + accelerator["message"]) if accelerator["used"] is False else ""
                raise Fault(
                    missing, "delegate %s did not load: %s%s" % (library, exc, also)
                ) from None
        kwargs: Dict[str, Any] = {"model_path": str(job.artifact["path"])}
        if job.settings.threads:
            kwargs["num_threads"] = job.settings.threads
        if delegates:
            kwargs["experimental_delegates"] = delegates
        self.delegates = delegates
        try:
            self.interpreter = interpreter_cls(**kwargs)
            self.interpreter.allocate_tensors()
        except MemoryError:
            raise
        except (ValueError, RuntimeError) as exc:
            hint = ""
            if not delegate_conf and boards.has_edgetpu_op(str(job.artifact["path"])):
                hint = (
                    " (the model is compiled for the Edge TPU: set tflite.delegate to libedgetpu)"
                )
            raise Fault(
                "model-invalid",
                "%s cannot load the model: %s%s" % (module_name, " ".join(str(exc).split()), hint),
            ) from None
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        self.inputs = [_spec(d) for d in self._in]
        self.outputs = [_spec(d) for d in self._out]
        self._shapes = {d["name"]: tuple(d["shape"]) for d in self._in}
        self.runtime = {
            "name": "tflite",
            "module": module_name,
            "version": module_version(module_name),
            "threads": job.settings.threads,
            "providers_requested": None,
            "providers_active": None,
            "delegate": (
                {
                    "library": delegate_conf.get("library"),
                    "options": delegate_conf.get("options") or {},
                    "loaded": True,
                }
                if delegate_conf
                else None
            ),
            "accelerator": accelerator,
        }

    def _set(self, feeds: Dict[str, Any]) -> None:
        resized = False
        for detail in self._in:
            value = feeds[detail["name"]]
            if tuple(value.shape) != self._shapes[detail["name"]]:
                self.interpreter.resize_tensor_input(detail["index"], list(value.shape))
                self._shapes[detail["name"]] = tuple(value.shape)
                resized = True
        if resized:
            self.interpreter.allocate_tensors()
        for detail in self._in:
            self.interpreter.set_tensor(detail["index"], feeds[detail["name"]])

    def prepare(self, feeds: Dict[str, Any]) -> Callable[[], Any]:
        """Inputs are set once; the timed call is ``invoke`` alone."""
        self._set(feeds)
        return self.interpreter.invoke

    def infer(self, feeds: Dict[str, Any]) -> List[Any]:
        self._set(feeds)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]) for d in self._out]


def accelerator_check(job: Job) -> Dict[str, Any]:
    """Before loading: would the requested delegate run this model?  An Edge TPU delegate
    runs only the ``edgetpu-custom-op`` that edgetpu_compiler puts in the model; without it
    everything runs on the CPU.  Raises ``accelerator-not-used`` under require_accelerator;
    otherwise the answer goes into ``runtime["accelerator"]`` and the record is flagged."""
    conf = job.tflite.get("delegate") or {}
    library = conf.get("library")
    if not library:
        if job.require_accelerator:
            raise Fault(
                "accelerator-not-used",
                "require_accelerator is set but no "
                "tflite.delegate is configured: the model would run on the CPU",
            )
        return {"requested": None, "used": None, "message": ""}
    if boards.is_edgetpu_delegate(library):
        compiled = boards.has_edgetpu_op(str(job.artifact["path"]))
        if compiled is False:
            message = (
                "%s is not compiled for the Edge TPU (no %s operator): the %s delegate "
                "leaves it all on the CPU; compile it with edgetpu_compiler"
                % (job.artifact.get("name"), boards.EDGETPU_CUSTOM_OP, library)
            )
            if job.require_accelerator:
                raise Fault("accelerator-not-used", message)
            return {"requested": library, "used": False, "message": message, "edgetpu_op": False}
        return {
            "requested": library,
            "used": True if compiled else None,
            "message": "",
            "edgetpu_op": compiled,
        }
    return {"requested": library, "used": True, "message": ""}


def load(loaded: Tuple[str, Any], job: Job) -> TfliteModel:
    return TfliteModel(loaded, job)
