"""Placement and an estimated per-op profile for TFLite / LiteRT.

The Python interpreters (ai-edge-litert, tflite-runtime) expose no op profiler, so:

- **Placement** reads the loaded interpreter's nodes (``_get_ops_details``): after the
  model's own operators come the delegate kernels that replaced some of them, and the
  operators a delegate kernel took are those between its inputs and its outputs.  Taken by
  the configured delegate they count for it (an ``edgetpu-custom-op`` as "Edge TPU ... custom
  op"), taken with no delegate configured they count as LiteRT's default CPU delegate
  (XNNPACK), the rest as CPU.
- **Profile** (an *estimate*, and labelled so): every operator is carved out of the
  flatbuffer into a model of its own (runtimes/tflite_carve.py), fed the values its inputs
  had in one run of the whole model, and timed alone with the same threads and delegate.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Set

from ..board.boards import EDGETPU_CUSTOM_OP, is_edgetpu_delegate
from ..placement import CPU, EDGETPU
from ..profile import PROFILE_MAX_RUNS, PROFILE_MIN_RUNS, Node, Ops
from ..protocol import Job
from .tflite_carve import Model

DEFAULT_DELEGATE = "XNNPACK"
OP_SECONDS = 0.02  # each op is timed at least this long (and PROFILE_MIN_RUNS times)


def _delegate_label(job: Job) -> Optional[str]:
    library = (job.tflite.get("delegate") or {}).get("library")
    if not library:
        return None
    if is_edgetpu_delegate(library):
        return EDGETPU
    name = os.path.basename(str(library)).split(".")[0]
    return name[3:] if name.startswith("lib") else name


def measure(model: Any, job: Job, feeds: Dict[str, Any], profile: bool, workdir: str) -> Ops:
    with open(str(job.artifact["path"]), "rb") as fh:
        flat = Model(fh.read())
    details = list(model.interpreter._get_ops_details())
    count = len(flat.operators)
    names = [str(d.get("op_name")) for d in details[:count]]
    accelerator = _delegate_label(job)
    taken = _delegated(details, count)
    nodes = []
    for i in range(count):
        if flat.op_custom[i] == EDGETPU_CUSTOM_OP:
            provider, op_type = EDGETPU, EDGETPU_CUSTOM_OP
        else:
            provider = (accelerator or DEFAULT_DELEGATE) if i in taken else CPU
            if accelerator == EDGETPU and i in taken:
                provider = DEFAULT_DELEGATE  # the Edge TPU runs only its custom op
            op_type = flat.op_custom[i] or names[i]
        nodes.append(Node("%d:%s" % (i, op_type), op_type, provider))
    error = ""
    if profile:
        try:
            _time_each(model, job, feeds, flat, nodes)
        except (ValueError, RuntimeError) as exc:  # an op the runtime will not run alone
            error = "%s: %s" % (type(exc).__name__, " ".join(str(exc).split()))
    return Ops(
        nodes=nodes,
        method="estimate: each op carved out of the flatbuffer and timed alone",
        placement_method="interpreter nodes and the delegate kernels that replaced them",
        estimate=profile,
        runs=min((n.runs for n in nodes), default=0),  # the fewest any op was timed
        timed=profile and not error,
        accelerator=accelerator,
        units={EDGETPU: "custom op"},
        error=error,
    )


def _delegated(details: List[Dict[str, Any]], count: int) -> Set[int]:
    """The model's operators (index < count) that a delegate kernel replaced: those that
    produce, directly or through each other, a delegate kernel's outputs from its inputs."""
    producer = {}
    for d in details[:count]:
        for t in d["outputs"]:
            producer[int(t)] = int(d["index"])
    taken: Set[int] = set()
    for d in details[count:]:
        stop = {int(t) for t in d["inputs"]}
        todo = [int(t) for t in d["outputs"]]
        while todo:
            t = todo.pop()
            op = producer.get(t)
            if t in stop or op is None or op in taken:
                continue
            taken.add(op)
            todo += [int(x) for x in details[op]["inputs"] if int(x) >= 0]
    return taken


def _values(model: Any, job: Job, feeds: Dict[str, Any], flat: Model) -> Dict[int, Any]:
    """Every tensor the carved ops read, as it was in one run of the whole model (run by
    the built-in kernels, so no delegate hides the intermediate tensors)."""
    module = model.module
    kwargs: Dict[str, Any] = {
        "model_path": str(job.artifact["path"]),
        "experimental_preserve_all_tensors": True,
    }
    resolver = getattr(
        getattr(module, "OpResolverType", None), "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None
    )
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver
    if model.delegates:
        kwargs["experimental_delegates"] = model.delegates
    try:
        full = module.Interpreter(**kwargs)
        full.allocate_tensors()
        for d in full.get_input_details():
            full.set_tensor(d["index"], feeds[d["name"]])
        full.invoke()
        wanted = {t for op in range(len(flat.operators)) for t in flat.carve_inputs(op)}
        return {t: full.get_tensor(t) for t in wanted}
    except (TypeError, ValueError, RuntimeError):  # an older runtime: zeros are fed
        return {}


def _time_each(model: Any, job: Job, feeds: Dict[str, Any], flat: Model, nodes: List[Node]) -> None:
    import numpy as np

    values = _values(model, job, feeds, flat)
    kwargs: Dict[str, Any] = {}
    if job.settings.threads:
        kwargs["num_threads"] = job.settings.threads
    if model.delegates:
        kwargs["experimental_delegates"] = model.delegates
    perf = time.perf_counter_ns
    for i, node in enumerate(nodes):
        interpreter = model.module.Interpreter(model_content=flat.carve(i), **kwargs)
        details = interpreter.get_input_details()
        for tensor, d in zip(flat.carve_inputs(i), details):
            value = values.get(tensor)
            if value is not None and tuple(value.shape) != tuple(d["shape"]):
                interpreter.resize_tensor_input(d["index"], list(value.shape))
        interpreter.allocate_tensors()
        for tensor, d in zip(flat.carve_inputs(i), interpreter.get_input_details()):
            value = values.get(tensor)
            interpreter.set_tensor(
                d["index"], value if value is not None else np.zeros(d["shape"], d["dtype"])
            )
        invoke = interpreter.invoke
        invoke()
        invoke()
        start = perf()
        while len(node.times_ms) < PROFILE_MAX_RUNS and (
            len(node.times_ms) < PROFILE_MIN_RUNS or perf() - start < OP_SECONDS * 1e9
        ):
            t0 = perf()
            invoke()
            node.times_ms.append((perf() - t0) / 1e6)
        node.runs = len(node.times_ms)
