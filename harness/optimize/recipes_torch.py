"""Structured pruning of a PyTorch model (``structured-N``), exported as its fp32 model is
(ONNX, or TFLite with litert-torch).

N % of the output channels of each prunable Conv/Linear layer are removed -- the ones with the
smallest L1 norm -- with torch-pruning's dependency graph, which keeps the layers that
consume or add up those channels consistent (residual adds, concatenations, BatchNorm,
depthwise convolutions).  Layers that produce the model's outputs keep their channels.  The
smaller model really is smaller and faster, unlike ``prune-N``'s zeros.  Removing channels
shifts the activations, so BatchNorm running statistics are re-estimated on the calibration
set; an optional fine-tune hook (model in, model out) then recovers accuracy.  The export's
format's recipes (``structured-50+int8-static``) run on the export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from edgebench.agent.verify import sha256_file

from . import torch_intake
from .variants import BuildError, Options, Step, calibration_batches, one_line


class Structured:
    """structured-N of one PyTorch model, used as a format's recipes are (settings, apply,
    tools).  The recipe names the model, the weights and the fine-tune hook by their content
    hashes, not their paths, so a moved or fresh clone finds its builds; the paths are here."""

    def __init__(self, spec: Optional[torch_intake.TorchModel]) -> None:
        if spec is None:
            raise BuildError(
                "structured pruning removes channels from a PyTorch model: give the model as "
                "%s (with its weights and input shapes), not as an exported file"
                % torch_intake.ENTRY_HELP
            )
        self.spec = spec

    def settings(self, step: Step, options: Options) -> Dict[str, Any]:
        finetune = self.spec.finetune
        return {
            "tool": "torch-pruning",
            "channels_removed": step.sparsity,
            "importance": "L1 magnitude, per layer",
            "kept": "layers producing the model's outputs",
            "batchnorm": "statistics re-estimated on the calibration set (if the model has any)",
            "finetune": (
                {
                    "entry": torch_intake.portable(finetune),
                    "sha256": sha256_file(torch_intake.source_file(finetune)),
                }
                if finetune
                else None
            ),
            "model": torch_intake.export_step(self.spec),
        }

    def apply(
        self,
        source: Path,
        target: Path,
        step: Step,
        recipe: Mapping[str, Any],
        calib: Optional[Any],
        progress: Callable[..., None],
    ) -> Dict[str, Any]:
        """Prune the PyTorch model (``source`` is its fp32 export, unused), re-estimate
        BatchNorm, fine-tune, export ``target``; returns the parameter counts before and
        after."""
        spec = self.spec
        model = torch_intake.load_model(spec)
        before = _parameters(model)
        progress("pruning channels")
        _prune(model, spec, float(step.sparsity or 0))
        if _batchnorms(model):
            if calib is None:
                raise BuildError(
                    "%s has BatchNorm layers, whose statistics are re-estimated after pruning: "
                    "give a calibration set (--calib FILE.npz, or 'calibration:' in a plan)"
                    % spec.entry
                )
            _recalibrate(model, spec, calib, progress)
        if spec.finetune:
            progress("fine-tuning")
            model = _finetune(model, spec.finetune)
        after = _parameters(model)
        progress("exporting")
        torch_intake.export(model, spec, target)
        return {
            "torch_parameters": {
                "before": before,
                "after": after,
                "removed": round(1 - after / before, 4) if before else 0.0,
            }
        }

    @staticmethod
    def tools() -> Dict[str, str]:
        return dict(torch_intake.tools(), **{"torch-pruning": _torch_pruning().__version__})


def _torch_pruning() -> Any:
    try:
        import torch_pruning
    except ImportError:
        raise BuildError(
            "structured pruning needs torch-pruning: pip install 'edgebench[torch]'"
        ) from None
    return torch_pruning


def _parameters(model: Any) -> int:
    return sum(int(p.numel()) for p in model.parameters())


def _batchnorms(model: Any) -> List[Any]:
    import torch

    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _output_layers(model: Any, inputs: Any) -> List[Any]:
    """The Conv/Linear layers whose output is (a view of) a model output, else the last one
    run: pruning their channels would change what the model returns."""
    import torch

    ran: List[Any] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, out: ran.append((mod, out)))
        for m in model.modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd))
    ]
    try:
        with torch.no_grad():
            outputs = model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    flat = outputs if isinstance(outputs, (tuple, list)) else [outputs]
    if isinstance(outputs, dict):
        flat = list(outputs.values())
    ptrs = {t.data_ptr() for t in flat if isinstance(t, torch.Tensor)}
    direct = [mod for mod, out in ran if isinstance(out, torch.Tensor) and out.data_ptr() in ptrs]
    if direct or not ran:
        return direct
    return [ran[-1][0]]


def _prune(model: Any, spec: torch_intake.TorchModel, ratio: float) -> None:
    tp = _torch_pruning()
    inputs = torch_intake.example_inputs(spec)
    try:
        pruner = tp.pruner.MagnitudePruner(
            model,
            inputs,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=ratio,
            ignored_layers=_output_layers(model, inputs),
        )
        pruner.step()
    except Exception as exc:  # the graph tracer meets every kind of model code
        raise BuildError("%s: pruning failed (%s)" % (spec.entry, one_line(exc)[:300])) from None


def _recalibrate(
    model: Any, spec: torch_intake.TorchModel, calib: Any, progress: Callable[..., None]
) -> None:
    """BatchNorm running statistics as the cumulative average over the calibration set."""
    import torch

    name, dims = spec.input_shapes[0]
    batches = calibration_batches(calib, dims, name)
    for bn in _batchnorms(model):
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for i, batch in enumerate(batches):
            progress("re-estimating BatchNorm", i, len(batches))
            model(torch.from_numpy(batch))
    model.eval()


def _finetune(model: Any, entry: str) -> Any:
    import torch

    try:
        tuned = torch_intake.load_callable(entry)(model)
    except BuildError:
        raise
    except Exception as exc:
        raise BuildError("%s: fine-tuning failed (%s)" % (entry, one_line(exc)[:300])) from None
    if not isinstance(tuned, torch.nn.Module):
        raise BuildError(
            "%s: returned %s, not the torch.nn.Module (model in, model out)"
            % (entry, type(tuned).__name__)
        )
    return tuned.eval()
