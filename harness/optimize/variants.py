"""Build variants of one model (fp16, int8, pruned, and left-to-right compositions such as
``prune-50+int8-static``) into a folder, each with a JSON manifest.

A variant ``V`` of ``model.onnx`` is ``model.V.onnx`` plus ``model.V.json`` (parent hash,
recipe, hash, sizes, parameters, sparsity, inputs, tool versions, and the census: what the
recipe changed, which must be something).  The manifest doubles as the cache:
a variant whose manifest names the same parent hash and recipe, and whose file still has the
recorded hash, is not rebuilt.  A failed variant is an :class:`Outcome` with a one-line
message; the other variants are still built.  The format-specific work is in
``recipes_onnx`` and ``recipes_tflite``, imported only when a model of that format is built;
each has check, verify, inputs, inspect, census, settings, apply, unchanged and tools.
What the tools print goes to ``model.V.log`` (``model.log`` while the model is checked), kept
when they printed something; a :class:`Watch` hears how the builds go.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from edgebench.agent.verify import sha256_file

from ..clock import utc_now
from ..store import StoreError, atomic_write, writable_dir
from .capture import captured

MANIFEST_VERSION = 1
CALIB_METHODS = ("minmax", "entropy", "percentile")
PRUNE_SCOPES = ("global", "layer")
ACTIVATIONS = ("uint8", "int8")
DEFAULT_VARIANTS = {
    "onnx": ("fp16", "int8-dynamic", "int8-static", "prune-50", "prune-50+int8-static"),
    "tflite": ("fp16", "int8-dynamic", "int8-static"),
}
# added for a PyTorch model (its export's format's set, then these): structured pruning
STRUCTURED_DEFAULTS = ("structured-50", "structured-50+int8-static")
PRUNE_NOTE = (
    "zeroed weights shrink only the compressed (gzip) size: the file keeps every "
    "weight and dense kernels do the same work, so pruning alone is not faster"
)
VARIANT_HELP = (
    "fp16, int8-dynamic, int8-static[-minmax|-entropy|-percentile], prune-N or "
    "structured-N (N from 1 to 99; structured-N first, on a PyTorch model), or steps joined "
    "with '+' (applied left to right)"
)
_STEP = re.compile(
    r"^(?:fp16|int8-dynamic|int8-static(?:-(%s))?|prune-([1-9][0-9]?)|structured-([1-9][0-9]?))$"
    % "|".join(CALIB_METHODS)
)
_RECIPES = {
    ".onnx": ("recipes_onnx", "ONNX", "onnx", "optimize"),
    ".tflite": ("recipes_tflite", "TFLite", "ai-edge-quantizer", "optimize-tflite"),
}


class BuildError(Exception):
    """A variant (or its model) cannot be built; ``str()`` is one line."""


@dataclass(frozen=True)
class Step:
    name: str  # as spelled: "int8-static-entropy", "prune-50"
    kind: str  # fp16 | int8-dynamic | int8-static | prune | structured
    method: Optional[str] = None  # calibration method when the spelling names one
    sparsity: Optional[float] = None


def parse_variant(text: str) -> Tuple[Step, ...]:
    """``"prune-50+int8-static"`` into its steps; ValueError names the bad step."""
    steps: List[Step] = []
    for name in text.strip().split("+"):
        match = _STEP.match(name.strip())
        if not match:
            raise ValueError(
                "unknown variant step %r in %r (expected %s)" % (name, text, VARIANT_HELP)
            )
        name = name.strip()
        if match.group(3):
            if steps:
                raise ValueError(
                    "%s in %r: structured pruning works on the PyTorch model, so it comes "
                    "first" % (name, text)
                )
            steps.append(Step(name, "structured", sparsity=int(match.group(3)) / 100))
            continue
        kind = (
            "prune"
            if match.group(2)
            else ("int8-static" if name.startswith("int8-static") else name)
        )
        steps.append(
            Step(name, kind, match.group(1), int(match.group(2)) / 100 if match.group(2) else None)
        )
    return tuple(steps)


def variant_name(steps: Sequence[Step]) -> str:
    return "+".join(s.name for s in steps)


@dataclass(frozen=True)
class Options:
    calib: Optional[Path] = None  # .npz with 'inputs'
    calib_method: str = "minmax"  # for int8-static spelled without a method
    # "global": one magnitude threshold over all weights; "layer": N% of each tensor, which
    # loses far more accuracy (MobileNetV2 at 50%: 2% agreement with fp32 against 84%)
    prune_scope: str = "global"
    activations: str = "uint8"  # ONNX int8-static activation type (uint8 is fastest on x86)
    # dims for inputs (``--input-shape``, a plan's ``input_shapes``): dynamic models are
    # pre-processed and calibrated at these, and keep their dynamic interface where it runs
    input_shapes: Mapping[str, Tuple[int, ...]] = field(default_factory=dict)
    torch: Optional[Any] = None  # a torch_intake.TorchModel, for structured-N

    def __post_init__(self) -> None:
        for name, choices in (
            ("calib_method", CALIB_METHODS),
            ("prune_scope", PRUNE_SCOPES),
            ("activations", ACTIVATIONS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    "%s must be one of %s, not %r"
                    % (name.replace("_", "-"), ", ".join(choices), getattr(self, name))
                )


@dataclass(frozen=True)
class Outcome:
    variant: str
    status: str  # built | cached | error
    path: Optional[Path] = None
    manifest: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "error"

    def to_dict(self) -> Dict[str, Any]:
        """The build entry kept in run.json: the manifest's figures, or the error."""
        if not self.ok:
            return {"variant": self.variant, "status": "error", "message": self.message}
        return dict(self.manifest, status=self.status)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, BuildError) else "%s: %s" % (type(exc).__name__, text)


def need_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise BuildError(
            "%s: %s"
            % (path, "a directory, not a %s" % what if path.is_dir() else "%s not found" % what)
        )


@dataclass(frozen=True)
class Input:
    """A model input: ``dims`` hold an int where fixed, else the dimension's name (or None)."""

    name: str
    dims: Tuple[Any, ...]
    dtype: str  # numpy's name: "float32", "uint8"

    @property
    def dynamic(self) -> List[int]:
        return [i for i, d in enumerate(self.dims) if not isinstance(d, int) or d <= 0]

    def spelled(self) -> str:
        """``images:batch,3,height,width``, as --input-shape takes it."""
        return "%s:%s" % (self.name, ",".join(str(d or "?") for d in self.dims))


def fixed_shapes(inputs: Sequence[Input], given: Mapping[str, Sequence[int]]) -> Dict[str, Any]:
    """The given shapes, checked against the model's inputs: known names, ranks, fixed dims."""
    names = [i.name for i in inputs]
    shapes = {}
    for name, dims in given.items():
        if name not in names:
            raise BuildError(
                "--input-shape %s: the model has no input %r (its inputs: %s)"
                % (name, name, ", ".join(map(repr, names)))
            )
        model = inputs[names.index(name)]
        if len(dims) != len(model.dims) or any(
            i not in model.dynamic and d != model.dims[i] for i, d in enumerate(dims)
        ):
            raise BuildError(
                "--input-shape %s:%s does not fit the model's input %s"
                % (name, ",".join(map(str, dims)), model.spelled())
            )
        shapes[name] = tuple(int(d) for d in dims)
    return shapes


def check_calibration(
    calib: Calibration, path: Path, inputs: Sequence[Input], shapes: Mapping[str, Any]
) -> None:
    """The calibration set against the model's inputs (count, rank, fixed dims, dtype), before
    any build; dims the model leaves dynamic take the given shape or the samples' size."""
    import numpy as np

    if len(inputs) != 1:
        raise BuildError(
            "calibration set %s holds one 'inputs' array but the model has %d inputs (%s); "
            "calibration supports one-input models"
            % (path, len(inputs), ", ".join(i.name for i in inputs))
        )
    model = inputs[0]
    samples = calib.inputs
    if np.issubdtype(np.dtype(model.dtype), np.integer) and not np.issubdtype(
        samples.dtype, np.integer
    ):
        raise BuildError(
            "calibration set %s holds %s samples but input %r takes %s; store them as %s"
            % (path, samples.dtype, model.name, model.dtype, model.dtype)
        )
    dims = shapes.get(model.name, model.dims)
    try:
        calibration_batches(samples, dims, model.name)
    except BuildError as exc:
        raise BuildError("calibration set %s does not fit the model: %s" % (path, exc)) from None


@dataclass(frozen=True)
class Calibration:
    sha256: str
    inputs: Any  # numpy array, as stored (NCHW or NHWC)


def load_calibration(path: Path) -> Calibration:
    import zipfile

    import numpy as np

    need_file(path, "calibration set")
    try:
        if not zipfile.is_zipfile(str(path)):  # np.load would try it as a pickle
            raise BuildError(
                "calibration set %s is not an .npz archive (make one with "
                "numpy.savez(FILE, inputs=ARRAY))" % path
            )
        with np.load(str(path), allow_pickle=False) as data:
            if "inputs" not in data.files:
                raise BuildError(
                    "calibration set %s has no 'inputs' array (found: %s)"
                    % (path, ", ".join(data.files) or "nothing")
                )
            inputs = data["inputs"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise BuildError(
            "cannot read calibration set %s as an .npz (%s)" % (path, one_line(exc))
        ) from None
    if inputs.ndim == 0 or len(inputs) == 0:
        raise BuildError("calibration set %s has no samples" % path)
    if not np.issubdtype(inputs.dtype, np.number):
        raise BuildError(
            "calibration set %s: 'inputs' holds %s, not numbers" % (path, inputs.dtype)
        )
    return Calibration(sha256_file(path), inputs)


def calibration_batches(inputs: Any, shape: Sequence[Any], name: str) -> List[Any]:
    """Calibration samples in the model's layout (NCHW or NHWC, as for eval sets) and
    batch size; dynamic dimensions take the samples' own size."""
    import numpy as np

    from edgebench.agent.faults import Fault
    from edgebench.agent.tensors import fit_layout

    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.ndim != len(shape):
        raise BuildError(
            "calibration samples have shape %s (rank %d with the sample axis) but input %r "
            "takes rank %d: %s"
            % (list(inputs.shape[1:]), inputs.ndim, name, len(shape), list(shape))
        )
    want = tuple(
        int(d) if isinstance(d, (int, np.integer)) and d > 0 else inputs.shape[i]
        for i, d in enumerate(shape)
    )
    batch = want[0] if isinstance(shape[0], (int, np.integer)) and shape[0] > 0 else 1
    try:
        fitted, _ = fit_layout(inputs, want, name)
    except Fault as fault:
        raise BuildError("calibration set: %s" % fault.message) from None
    if len(fitted) < batch:
        raise BuildError(
            "calibration set has %d samples; input %r takes batches of %d"
            % (len(fitted), name, batch)
        )
    return [fitted[i : i + batch] for i in range(0, len(fitted) - batch + 1, batch)]


def describe(path: Path, recipes: Any) -> Dict[str, Any]:
    """What a manifest says about one model file."""
    data = path.read_bytes()
    return dict(
        {
            "file": path.name,
            "sha256": sha256_file(path),
            "size_bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, compresslevel=6, mtime=0)),
        },
        **recipes.inspect(path),
    )


def census(path: Path, recipes: Any) -> Dict[str, Any]:
    """What a recipe's result is checked by: constant tensors by dtype, ops by type, zeros
    among the weights (the recipes' census), parameters and size."""
    return dict(
        recipes.census(path),
        parameters=recipes.inspect(path)["parameters"],
        size_bytes=path.stat().st_size,
    )


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> Dict[str, Any]:
    """What a step changed, ``[before, after]`` for each census figure that differs: tensors
    by dtype and ops by type (dicts of those), parameters, zeros, size."""
    changed: Dict[str, Any] = {}
    for key, old in before.items():
        new = after[key]
        if isinstance(old, Mapping):
            diff = {k: [old.get(k, 0), new.get(k, 0)] for k in sorted(set(old) | set(new))}
            diff = {k: v for k, v in diff.items() if v[0] != v[1]}
            if diff:
                changed[key] = diff
        elif old != new:
            changed[key] = [old, new]
    return changed


def census_text(changed: Mapping[str, Any]) -> str:
    """``tensors float32 10->2, int8 0->8; ops QuantizeLinear 0->8`` for one line."""
    parts = []
    for key, value in changed.items():
        if key == "size_bytes":
            continue
        if isinstance(value, Mapping):
            parts.append(
                "%s %s" % (key, ", ".join("%s %s->%s" % (k, b, a) for k, (b, a) in value.items()))
            )
        else:
            parts.append("%s %s->%s" % (key, format(value[0], ","), format(value[1], ",")))
    return "; ".join(parts)


def _recipes(model: Path) -> Any:
    """The recipe module for ``model``'s format; a missing tool names the extra to install."""
    import importlib

    entry = _RECIPES.get(model.suffix.lower())
    if entry is None:
        raise BuildError(
            "%s: cannot build variants of %r files (expected %s)"
            % (model, model.suffix, " or ".join(sorted(_RECIPES)))
        )
    module, label, tool, extra = entry
    try:
        return importlib.import_module("." + module, __package__)
    except ImportError as exc:
        raise BuildError(
            "%s variants need %s (missing %s): pip install 'edgebench[%s]'"
            % (label, tool, exc.name, extra)
        ) from None


class Watch:
    """Hears how a build goes (this one ignores it all)."""

    def model(self, parent: Mapping[str, Any]) -> None:
        """The model checked out; ``parent`` is its description."""

    def phase(self, file: str, text: str, done: int = 0, total: int = 0) -> None:
        """``file`` is being built and is now ``text`` (e.g. "calibrating", ``done`` of
        ``total`` batches when counted)."""

    def outcome(self, outcome: Outcome, parent: Mapping[str, Any]) -> None:
        """A variant asked for is finished: built, found in the cache, or failed."""


@contextlib.contextmanager
def logged(log: Path) -> Iterator[None]:
    """The tools' output into ``log``; a BuildError raised meanwhile says where that is."""
    try:
        with captured(log):
            yield
    except BuildError as exc:
        if log.is_file():
            raise BuildError("%s (the tools' output: %s)" % (exc, log)) from None
        raise
    except OSError as exc:  # the log itself cannot be written
        raise BuildError("cannot write %s (%s)" % (log, exc.strerror or exc)) from None


class Builder:
    """Builds the variants of one model into ``out_dir``; a composition reuses (and keeps)
    the variant of its leading steps."""

    def __init__(
        self, model: Path, out_dir: Path, options: Options, watch: Optional[Watch] = None
    ) -> None:
        need_file(model, "model file")
        self.model = model
        self.out_dir = out_dir
        self.options = options
        self.watch = watch or Watch()
        writable_dir(out_dir)  # before any build: a file or a read-only folder there is fatal
        with logged(out_dir / (model.stem + ".log")):  # LiteRT, say, greets its first model
            self.recipes = _recipes(model)
            self.recipes.check(model)
            self.parent = describe(model, self.recipes)
            self.inputs: List[Input] = self.recipes.inputs(model)
            self._census = census(model, self.recipes)
        self.shapes = fixed_shapes(self.inputs, options.input_shapes)
        # a calibration set that was given must fit, whether or not a variant needs it
        self._calib: Optional[Calibration] = None
        if options.calib:
            self._calib = load_calibration(options.calib)
            check_calibration(self._calib, options.calib, self.inputs, self.shapes)
        self._built: Dict[str, Outcome] = {}

    def build(self, variant: str) -> Outcome:
        """Build (or find in the cache) one variant; a failure is an error outcome."""
        return self._build(parse_variant(variant))

    def _calibration(self) -> Calibration:
        if self._calib is None:
            raise BuildError(
                "int8-static needs a calibration set: give --calib FILE.npz (or "
                "'calibration:' in a plan), an .npz with an 'inputs' array"
            )
        return self._calib

    def _step_recipes(self, step: Step) -> Any:
        """The recipe module for one step: structured pruning works on the PyTorch model
        (imported as the format's recipes are: recipes_torch builds on this module)."""
        if step.kind == "structured":
            import importlib

            return importlib.import_module(".recipes_torch", __package__).Structured(
                self.options.torch
            )
        return self.recipes

    def _recipe(self, step: Step) -> Dict[str, Any]:
        recipe = dict({"step": step.name}, **self._step_recipes(step).settings(step, self.options))
        if step.kind == "int8-static" or (step.kind == "structured" and self._calib):
            calib = self._calibration()
            recipe["calibration"] = {"sha256": calib.sha256, "samples": len(calib.inputs)}
            self._need_shapes()
        if step.kind.startswith("int8") and self.shapes:  # pre-processed at these dims
            recipe["input_shapes"] = {k: list(v) for k, v in self.shapes.items()}
        return recipe

    def _need_shapes(self) -> None:
        """Calibration runs at one shape: dynamic dims beyond the batch need a given one."""
        for model in self.inputs:
            if model.name not in self.shapes and any(i > 0 for i in model.dynamic):
                example = [
                    str(d) if i not in model.dynamic else "1" if i == 0 else str(d or "N").upper()
                    for i, d in enumerate(model.dims)
                ]
                raise BuildError(
                    "input %s has dynamic dimensions; int8-static calibrates at fixed ones: "
                    "give them with --input-shape %s:%s (input_shapes: in a plan)"
                    % (model.spelled(), model.name, ",".join(example))
                )

    def _paths(self, name: str) -> Tuple[Path, Path]:
        stem = "%s.%s" % (self.model.stem, name)
        return self.out_dir / (stem + self.model.suffix), self.out_dir / (stem + ".json")

    def _cached(
        self, target: Path, manifest_path: Path, recipe: List[Dict[str, Any]]
    ) -> Optional[Dict[str, Any]]:
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(manifest, dict)
            or manifest.get("recipe") != recipe
            or manifest.get("parent_sha256") != self.parent["sha256"]
            or not target.is_file()
            or sha256_file(target) != manifest.get("sha256")
        ):
            return None
        return manifest

    def _build(self, steps: Tuple[Step, ...]) -> Outcome:
        name = variant_name(steps)
        if name not in self._built:
            try:
                self._built[name] = self._outcome(name, steps)
            except (BuildError, StoreError) as exc:  # StoreError: its manifest not written
                self._built[name] = Outcome(name, "error", message=str(exc))
        return self._built[name]

    def _outcome(self, name: str, steps: Tuple[Step, ...]) -> Outcome:
        recipe = [self._recipe(s) for s in steps]  # fails early, e.g. without calibration
        target, manifest_path = self._paths(name)
        manifest = self._cached(target, manifest_path, recipe)
        if manifest is not None:
            return Outcome(name, "cached", target, manifest)
        source = self.model
        if len(steps) > 1:
            prefix = self._build(steps[:-1])
            if not prefix.ok:
                raise BuildError("%s: %s" % (prefix.variant, prefix.message))
            source = prefix.path  # type: ignore[assignment]
        try:
            manifest = self._make(name, steps[-1], source, target, recipe)
        except BuildError as exc:  # in a composition, say which step failed
            raise BuildError(
                "%s: %s" % (steps[-1].name, exc) if len(steps) > 1 else str(exc)
            ) from None
        atomic_write(manifest_path, json.dumps(manifest, indent=2) + "\n")
        return Outcome(name, "built", target, manifest)

    def _make(
        self, name: str, step: Step, source: Path, target: Path, recipe: List[Dict[str, Any]]
    ) -> Dict[str, Any]:
        """Apply the last step to ``source`` in a scratch folder; move the checked result to
        ``target`` and return its manifest."""
        started = time.monotonic()
        calib = self._calibration().inputs if "calibration" in recipe[-1] else None
        recipes = self._step_recipes(step)
        progress = functools.partial(self.watch.phase, target.name)
        progress("building")
        with tempfile.TemporaryDirectory(dir=str(self.out_dir), prefix=".build-") as work:
            tmp = Path(work) / target.name
            with logged(target.with_suffix(".log")):
                try:
                    found = recipes.apply(source, tmp, step, recipe[-1], calib, progress)
                    progress("verifying")
                    self.recipes.verify(tmp)
                    before = self._census if source == self.model else census(source, self.recipes)
                    after = census(tmp, self.recipes)
                except Exception as exc:  # the tools raise many kinds; each is one variant's
                    raise BuildError(one_line(exc)) from None  # fault
                changed = changes(before, after)
                if not set(changed) - {"size_bytes"}:
                    raise BuildError(
                        "%s changed nothing: %s" % (step.name, self.recipes.unchanged(step, source))
                    )
            manifest = dict(
                {
                    "schema_version": MANIFEST_VERSION,
                    "variant": name,
                    "format": target.suffix[1:],
                    "parent": self.parent,
                    "parent_sha256": self.parent["sha256"],
                    "recipe": recipe,
                },
                **describe(tmp, self.recipes),
            )
            manifest["census"] = dict(after, changed=changed)
            manifest["inputs"] = {i.name: list(i.dims) for i in self.recipes.inputs(tmp)}
            manifest.update(found or {})  # e.g. structured-N's parameters before and after
            manifest.update(
                tools=recipes.tools(),
                built_at=utc_now(),
                build_seconds=round(time.monotonic() - started, 3),
            )
            if any(s.kind == "prune" for s in parse_variant(name)):
                manifest["note"] = PRUNE_NOTE
            try:
                os.replace(str(tmp), str(target))
            except OSError as exc:
                raise BuildError("cannot write %s (%s)" % (target, exc.strerror or exc)) from None
        return manifest


def build_variants(
    model: Path,
    variants: Optional[Sequence[str]],
    out_dir: Path,
    options: Options,
    watch: Optional[Watch] = None,
) -> Tuple[Dict[str, Any], List[Outcome]]:
    """The model's own description and one outcome per variant (default: all recipes for its
    format).  BuildError only when the model itself is unusable."""
    builder = Builder(model, out_dir, options, watch)
    builder.watch.model(builder.parent)
    chosen = DEFAULT_VARIANTS[model.suffix.lower()[1:]] if variants is None else variants
    outcomes = []
    for variant in dict.fromkeys(chosen):
        outcomes.append(builder.build(variant))
        builder.watch.outcome(outcomes[-1], builder.parent)
    return builder.parent, outcomes


def _mb(num_bytes: float) -> str:
    return "%.2f" % (num_bytes / 1e6)


def outcome_line(outcome: Outcome, parent: Mapping[str, Any]) -> str:
    """One line per variant: size against the original, sparsity, build time, or the error."""
    if not outcome.ok:
        model = Path(parent["file"])
        return "error: %s.%s%s: %s" % (model.stem, outcome.variant, model.suffix, outcome.message)
    m = outcome.manifest
    text = "%-6s %s  %s MB (%.2fx), gzip %s MB, %s parameters, sparsity %.1f%%" % (
        outcome.status,
        m["file"],
        _mb(m["size_bytes"]),
        m["size_bytes"] / parent["size_bytes"],
        _mb(m["gzip_bytes"]),
        format(m["parameters"], ","),
        100 * m["sparsity"],
    )
    text += ", %.1f s" % m["build_seconds"] if outcome.status == "built" else ""
    changed = m.get("census", {}).get("changed")
    return text + ("; changed: " + census_text(changed) if changed else "")


def input_line(parent: Mapping[str, Any]) -> str:
    """The line ``edgebench optimize`` starts with: the model it builds from."""
    return "input  %s  %s MB, gzip %s MB, %s parameters, sparsity %.1f%%" % (
        parent["file"],
        _mb(parent["size_bytes"]),
        _mb(parent["gzip_bytes"]),
        format(parent["parameters"], ","),
        100 * parent["sparsity"],
    )


def notes(outcomes: Sequence[Outcome]) -> List[str]:
    """The lines after the variants: the pruning note when a pruned variant was built."""
    return ["note: " + PRUNE_NOTE] if any(o.ok and "note" in o.manifest for o in outcomes) else []
