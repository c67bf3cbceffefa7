"""Accuracy passes over an eval set, separate from the timed iterations."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .faults import Fault
from .tensors import dequantize, fit_layout, quantize


def topk(logits: Any, labels: Any, k: int) -> Optional[float]:
    scores = np.asarray(logits).reshape(len(labels), -1)
    if scores.shape[1] < k:
        return None
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(best == np.asarray(labels).reshape(-1, 1), axis=1)))


def fidelity(outputs: Any, reference: Any) -> Dict[str, float]:
    out = np.asarray(outputs, dtype=np.float64).reshape(len(reference), -1)
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    norms = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
    cosine = np.sum(out * ref, axis=1) / np.where(norms == 0, 1.0, norms)
    return {
        "max_abs_error": float(np.max(np.abs(out - ref))),
        "cosine_similarity": float(np.mean(cosine)),
        "argmax_agreement": float(np.mean(np.argmax(out, 1) == np.argmax(ref, 1))),
    }


def check_eval(model: Any, eval_set: Dict[str, Any]) -> None:
    """Refuse, before the timed window, an eval set that does not fit the model's output:
    ``reference`` rows of another width, labels outside the output's classes."""
    out = model.outputs[0]
    if not all(isinstance(d, int) and d > 0 for d in out.shape[1:]):
        return  # a dynamic output: its width is known only after inference
    width = int(np.prod(out.shape[1:], dtype=np.int64))
    if "reference" in eval_set:
        got = int(np.prod(eval_set["reference"].shape[1:], dtype=np.int64))
        if got != width:
            raise Fault(
                "input-invalid",
                "the eval set's 'reference' has %d values per "
                "sample but output %r has %d (shape %s)" % (got, out.name, width, list(out.shape)),
            )
    labels = eval_set.get("labels")
    if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= width):
        raise Fault(
            "input-invalid",
            "the eval set's labels run from %d to %d but output %r "
            "has %d classes (0 to %d)" % (labels.min(), labels.max(), out.name, width, width - 1),
        )


def evaluate(model: Any, spec_shape: tuple, eval_set: Dict[str, Any]) -> Dict[str, Any]:
    """Run every eval sample through the model in batches of the timed input's batch size."""
    spec = model.inputs[0]
    inputs, layout = fit_layout(np.asarray(eval_set["inputs"]), spec_shape, spec.name)
    batch = spec_shape[0] if spec_shape else 1
    n = len(inputs)
    chunks = []
    for start in range(0, n, batch):
        part = inputs[start : start + batch]
        real = len(part)
        if real < batch:  # pad the last batch; padded rows are dropped below
            pad = np.zeros((batch - real,) + part.shape[1:], dtype=part.dtype)
            part = np.concatenate([part, pad])
        out = model.infer({spec.name: quantize(part, spec)})[0]
        chunks.append(dequantize(out, model.outputs[0])[:real])
    outputs = np.concatenate(chunks)
    bad = int(np.sum(~np.all(np.isfinite(outputs.reshape(n, -1)), axis=1)))
    if bad:  # top-1 or fidelity over NaN would be a number that means nothing
        raise Fault(
            "inference-failed", "%d of the %d eval samples gave NaN or infinite outputs" % (bad, n)
        )
    result: Dict[str, Any] = {
        "n": n,
        "layout": layout or None,
        "quantized_input": spec.quant is not None and spec.dtype.kind in "iu",
    }
    if "labels" in eval_set:
        labels = np.asarray(eval_set["labels"]).reshape(-1)
        result["top1"] = topk(outputs, labels, 1)
        result["top5"] = topk(outputs, labels, 5)
    if "reference" in eval_set:
        result.update(fidelity(outputs, eval_set["reference"]))
    return result
