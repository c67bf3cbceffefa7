"""Plans: ``edgebench run PLAN.yaml`` names the models, the variants to build from them, the
eval and calibration sets, input shapes, devices, measurement settings and budgets in one file.

Example (relative paths resolve against the plan's folder)::

    models:
      - digits.onnx                          # gets the top-level variants
      - {path: other.onnx, variants: [fp16]}
      - {torch: net.py:build, weights: net.pt, finetune: tune.py:finetune,
         input_shapes: {input: [1, 3, 224, 224]}, variants: [structured-50]}
    variants: [fp16, int8-static, prune-50+int8-static]
    eval: digits_eval.npz
    calibration: calib.npz
    optimize: {calib_method: minmax, prune_scope: global, activations: uint8}
    input_shapes: {input: [1, 1, 8, 8]}
    devices: [local]                         # names or tags
    settings: {threads: 1, min_seconds: 2}
    variants_dir: variants                   # default: <results root>/variants
    budgets: {...}                           # kept in run.json for `edgebench check`
    pipeline: {pre: prep.py:preprocess, post: prep.py:postprocess, inputs: raw/}  # run/pipeline.py

Every problem is a one-line :class:`ConfigError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from edgebench.agent.protocol import FORMATS, SETTINGS, JobError, parse_settings

from .config import Checker, ConfigError, Device, Inventory, load_yaml, read_text
from .optimize.variants import (
    ACTIVATIONS,
    CALIB_METHODS,
    DEFAULT_VARIANTS,
    PRUNE_SCOPES,
    STRUCTURED_DEFAULTS,
    BuildError,
    Options,
    Watch,
    build_variants,
    parse_variant,
    variant_name,
)
from .run import pipeline
from .run.runner import Artifact

_KEYS = (
    "models",
    "variants",
    "eval",
    "calibration",
    "optimize",
    "input_shapes",
    "devices",
    "settings",
    "variants_dir",
    "budgets",
    "require_accelerator",
    "pipeline",
)


@dataclass(frozen=True)
class PlanModel:
    path: Path  # for a PyTorch model, the ONNX export's file name (in the variants folder)
    variants: Tuple[str, ...]
    torch: Optional[Any] = None  # a torch_intake.TorchModel


@dataclass(frozen=True)
class Plan:
    source: Path
    models: Tuple[PlanModel, ...]
    eval_path: Optional[Path] = None
    options: Options = Options()  # carries the calibration set
    input_shapes: Mapping[str, List[int]] = dataclasses.field(default_factory=dict)
    devices: Optional[str] = None  # comma-separated names or tags, as for --devices
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    variants_dir: Optional[Path] = None
    budgets: Any = None  # as written; `edgebench check` reads it from run.json
    # on every device, as if each devices.yaml entry said so (true, false or "full")
    require_accelerator: Union[bool, str] = False
    pipeline: Optional[Any] = None  # a run.pipeline.PipelineSpec: on-device pre/post-processing

    def select_devices(self, inventory: Inventory) -> List[Device]:
        try:
            return inventory.select(self.devices)
        except ConfigError as exc:
            raise ConfigError("%s: devices: %s" % (self.source, exc)) from None

    def describe(self) -> Dict[str, Any]:
        """The plan as run.json keeps it (under ``plan``), with resolved paths."""
        opts = self.options
        return {
            "file": str(self.source),
            "models": [
                dict(
                    {"path": str(m.path), "variants": list(m.variants)},
                    **({"torch": m.torch.entry} if m.torch else {}),
                )
                for m in self.models
            ],
            "eval": str(self.eval_path) if self.eval_path else None,
            "calibration": str(opts.calib) if opts.calib else None,
            "optimize": {
                "calib_method": opts.calib_method,
                "prune_scope": opts.prune_scope,
                "activations": opts.activations,
            },
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "devices": self.devices,
            "settings": dict(self.settings),
            "variants_dir": str(self.variants_dir) if self.variants_dir else None,
            "require_accelerator": self.require_accelerator,
            "budgets": self.budgets,
            **({"pipeline": self.pipeline.describe()} if self.pipeline else {}),
        }


def load_plan(path: str) -> Plan:
    return parse_plan(read_text(path, "plan"), Path(path))


def parse_plan(text: str, source: Path) -> Plan:
    doc = load_yaml(text, str(source))
    check = Checker(str(source))
    if doc is None:
        raise check.error("", "the plan is empty; expected at least 'models:'")
    check.keys(doc, "", _KEYS, required=("models",))
    base = source.resolve().parent

    def path(key: str, value: Any, must_exist: bool = True) -> Path:
        resolved = base / os.path.expanduser(check.string(value, key))
        if must_exist and not resolved.is_file():
            raise check.error(
                key,
                "%s: %s"
                % ("a directory, not a file" if resolved.is_dir() else "file not found", resolved),
            )
        return resolved

    def opt(key: str, parse: Callable[[Any, str], Any], default: Any = None) -> Any:
        return parse(doc[key], key) if key in doc else default

    variants = opt("variants", lambda v, k: _variants(check, v, k))
    input_shapes = opt("input_shapes", lambda v, k: _shapes(check, v, k), {})
    models = _models(check, doc["models"], variants, path, base, input_shapes)
    optimize = opt("optimize", lambda v, k: _optimize(check, v, k), {})
    return Plan(
        source=source,
        models=models,
        eval_path=opt("eval", lambda v, k: path(k, v)),
        options=Options(
            calib=opt("calibration", lambda v, k: path(k, v)),
            input_shapes={k: tuple(v) for k, v in input_shapes.items()},
            **optimize,
        ),
        input_shapes=input_shapes,
        devices=opt(
            "devices",
            lambda v, k: ",".join(
                [check.string(v, k)] if isinstance(v, str) else check.string_list(v, k)
            ),
        ),
        settings=opt("settings", lambda v, k: _settings(check, v, k), {}),
        variants_dir=opt("variants_dir", lambda v, k: path(k, v, must_exist=False)),
        budgets=doc.get("budgets"),
        require_accelerator=opt("require_accelerator", check.accelerator_demand, False),
        pipeline=opt("pipeline", lambda v, k: pipeline.parse(check, v, k, base)),
    )


def _variants(check: Checker, value: Any, key: str) -> Tuple[str, ...]:
    names = []
    for i, text in enumerate(check.string_list(value, key)):
        try:
            names.append(variant_name(parse_variant(text)))
        except ValueError as exc:
            raise check.error("%s[%d]" % (key, i), str(exc)) from None
    return tuple(dict.fromkeys(names))


def _torch_model(
    check: Checker, item: Mapping[str, Any], key: str, base: Path, shapes: Mapping[str, Any]
) -> Any:
    """A ``{torch: file.py:build, weights:, finetune:, input_shapes:, export:}`` entry."""
    from .optimize.torch_intake import EXPORTS, torch_model

    check.keys(
        item,
        key,
        ("torch", "weights", "finetune", "input_shapes", "export", "variants"),
        ("torch",),
    )
    try:
        return torch_model(
            check.string(item["torch"], key + ".torch"),
            _shapes(check, item["input_shapes"], key + ".input_shapes")
            if "input_shapes" in item
            else shapes,
            Path(check.string(item["weights"], key + ".weights")) if "weights" in item else None,
            check.string(item["finetune"], key + ".finetune") if "finetune" in item else None,
            base,
            check.choice(item["export"], key + ".export", EXPORTS) if "export" in item else "onnx",
        )
    except ValueError as exc:
        raise check.error(key, str(exc)) from None


def _models(
    check: Checker,
    value: Any,
    variants: Optional[Tuple[str, ...]],
    path: Callable[..., Path],
    base: Path,
    shapes: Mapping[str, Any],
) -> Tuple[PlanModel, ...]:
    if not isinstance(value, list) or not value:
        raise check.error("models", "expected a list of model paths or {path:, variants:}")
    models: List[PlanModel] = []
    for i, item in enumerate(value):
        key = "models[%d]" % i
        torch = None
        if isinstance(item, Mapping) and "torch" in item:
            torch = _torch_model(check, item, key, base, shapes)
            model = Path("%s.%s" % (torch.name, torch.format))
            own = (
                _variants(check, item["variants"], key + ".variants")
                if "variants" in item
                else None
            )
        elif isinstance(item, Mapping):
            check.keys(item, key, ("path", "variants"), required=("path",))
            model = path(key + ".path", item["path"])
            own = (
                _variants(check, item["variants"], key + ".variants")
                if "variants" in item
                else None
            )
        else:
            model, own = path(key, item), None
        if model.suffix.lower() not in FORMATS:
            raise check.error(
                key,
                "unknown model format %r (expected %s)"
                % (model.suffix, " or ".join(sorted(FORMATS))),
            )
        if any(m.path.name == model.name for m in models):
            raise check.error(
                key, "a second model named %r; results are keyed by file name" % model.name
            )
        chosen = own if own is not None else variants
        models.append(
            PlanModel(
                model,
                chosen
                if chosen is not None
                else DEFAULT_VARIANTS[FORMATS[model.suffix.lower()]]
                + (STRUCTURED_DEFAULTS if torch else ()),
                torch,
            )
        )
    return tuple(models)


def _optimize(check: Checker, value: Any, key: str) -> Dict[str, str]:
    choices = {
        "calib_method": CALIB_METHODS,
        "prune_scope": PRUNE_SCOPES,
        "activations": ACTIVATIONS,
    }
    check.keys(value, key, tuple(choices))
    return {k: check.choice(v, "%s.%s" % (key, k), choices[k]) for k, v in value.items()}


def _shapes(check: Checker, value: Any, key: str) -> Dict[str, List[int]]:
    if not isinstance(value, Mapping):
        raise check.error(key, "expected a mapping of input names to dimension lists")
    shapes = {}
    for name, dims in value.items():
        where = "%s.%s" % (key, name)
        if not isinstance(dims, list) or not dims:
            raise check.error(where, "expected a list of positive integers, e.g. [1, 3, 224, 224]")
        shapes[str(name)] = [check.integer(d, "%s[%d]" % (where, i), 1) for i, d in enumerate(dims)]
    return shapes


def _settings(check: Checker, value: Any, key: str) -> Dict[str, Any]:
    """Every setting the command line takes, through the agent's own validator."""
    check.keys(value, key, SETTINGS)
    try:
        parse_settings(value, lambda k: "%s.%s" % (key, k))
    except JobError as exc:
        raise check.error("", str(exc)) from None
    return dict(value)


def build(
    plan: Plan, variants_dir: Path, echo: Callable[[str], None], watch: Watch
) -> Tuple[List[Artifact], List[Dict[str, Any]]]:
    """Build every model's variants (once; later runs hit the cache).  Returns the artifacts to
    measure -- each original as variant ``fp32``, then its variants -- and one build entry per
    variant for run.json.  ``watch`` hears how the builds go (and reports each variant); a
    model that cannot be used is an ``echo``ed error, and its variants are left out."""
    artifacts: List[Artifact] = []
    builds: List[Dict[str, Any]] = []
    for model in plan.models:
        try:
            if model.torch is None:
                original = Artifact.from_path(model.path)
                artifacts.append(dataclasses.replace(original, variant="fp32"))  # the parent
                parent, outcomes = build_variants(
                    model.path, model.variants, variants_dir, plan.options, watch
                )
            else:
                from .optimize.torch_intake import build_torch_variants

                path, parent, outcomes = build_torch_variants(
                    model.torch, model.variants, variants_dir, plan.options, watch
                )
                original = Artifact.from_path(path)  # the fp32 export
                artifacts.append(dataclasses.replace(original, variant="fp32"))
        except BuildError as exc:
            if model.torch is not None:  # no export: nothing of this model to measure
                echo("error: %s; it is not measured" % exc)
                builds += [
                    {"model": model.path.name, "variant": v, "status": "error", "message": str(exc)}
                    for v in ["fp32", *model.variants]
                ]
                continue
            echo("error: %s; its variants are not built" % exc)
            builds += [
                {"model": original.name, "variant": v, "status": "error", "message": str(exc)}
                for v in model.variants
            ]
            continue
        builds.append(dict(parent, model=original.name, variant="fp32", status="original"))
        for outcome in outcomes:
            builds.append(dict(outcome.to_dict(), model=original.name))
            if outcome.ok:
                artifacts.append(
                    dataclasses.replace(
                        Artifact.from_path(outcome.path),  # type: ignore[arg-type]
                        variant=outcome.variant,
                        parent_sha256=original.sha256,
                    )
                )
    return artifacts, builds
