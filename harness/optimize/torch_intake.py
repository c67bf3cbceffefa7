"""PyTorch intake: a model given as a Python entry point (``path/to/file.py:build`` or
``package.module:build``, a callable returning an ``nn.Module``), an optional weights file (a
state_dict) and example input shapes, exported to ONNX (or, with litert-torch, to TFLite) as a
cached build step.

The export ``NAME.onnx`` or ``NAME.tflite`` (NAME: the source file's or module's last name)
goes into the variants folder with ``NAME.json``, whose recipe holds the hashes of the source,
the weights and the settings; a manifest with the same recipe and a file with the recorded
hash is reused.  The export is then the parent of every variant, as a model file given
directly would be.  torch is imported only here and in ``recipes_torch`` (``pip install
'edgebench[torch]'``), litert-torch only here (``pip install 'edgebench[litert-torch]'``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from edgebench.agent.verify import sha256_file

from ..clock import utc_now
from ..store import atomic_write, writable_dir
from .variants import (
    DEFAULT_VARIANTS,
    MANIFEST_VERSION,
    STRUCTURED_DEFAULTS,
    BuildError,
    Options,
    Outcome,
    Watch,
    build_variants,
    logged,
    need_file,
    one_line,
)

OPSET = 17
EXPORTS = ("onnx", "tflite")
LITERT_TORCH = (
    "TFLite export of a PyTorch model needs litert-torch: pip install 'edgebench[litert-torch]'"
)
ENTRY_HELP = "path/to/file.py:function or package.module:function"
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class TorchModel:
    entry: str  # "/abs/path/file.py:build" or "package.module:build"
    input_shapes: Tuple[Tuple[str, Tuple[int, ...]], ...]  # in the forward's argument order
    weights: Optional[Path] = None  # a state_dict saved with torch.save
    finetune: Optional[str] = None  # an entry point: model in, model out
    format: str = "onnx"  # what it is exported to: one of EXPORTS

    @property
    def name(self) -> str:
        """The export's file stem: the source file's or module's last name."""
        where = self.entry.rsplit(":", 1)[0]
        return Path(where).stem if where.endswith(".py") else where.rsplit(".", 1)[-1]


def is_entry(text: str) -> bool:
    """Whether a model argument names a PyTorch entry point rather than a model file."""
    where, _, func = text.rpartition(":")
    return bool(where and func) and (where.endswith(".py") or bool(_MODULE.match(where)))


def parse_entry(text: str, base: Path = Path(".")) -> str:
    """``text`` checked, with a file path made absolute against ``base``; ValueError is one
    line."""
    where, _, func = text.strip().rpartition(":")
    if not where or not func.isidentifier():
        raise ValueError("%r is not a PyTorch entry point (expected %s)" % (text, ENTRY_HELP))
    if where.endswith(".py"):
        path = (base / os.path.expanduser(where)).resolve()
        if not path.is_file():
            raise ValueError("%s: source file not found (entry point %r)" % (path, text))
        return "%s:%s" % (path, func)
    if not _MODULE.match(where):
        raise ValueError("%r is not a PyTorch entry point (expected %s)" % (text, ENTRY_HELP))
    return "%s:%s" % (where, func)


def source_file(entry: str) -> Path:
    """The file an entry point's code is in (hashed into the cache key)."""
    where = entry.rsplit(":", 1)[0]
    if where.endswith(".py"):
        return Path(where)
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError) as exc:
        raise BuildError("%s: cannot find module %r (%s)" % (entry, where, one_line(exc))) from None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        raise BuildError("%s: no module %r on the Python path" % (entry, where))
    return Path(spec.origin)


def load_callable(entry: str) -> Callable[..., Any]:
    """The function an entry point names; BuildError (one line) for any failure to get it."""
    where, func = entry.rsplit(":", 1)
    try:
        if where.endswith(".py"):
            name = "_edgebench_entry_%s" % Path(where).stem
            spec = importlib.util.spec_from_file_location(name, where)
            if spec is None or spec.loader is None:
                raise BuildError("%s: cannot load %s as Python" % (entry, where))
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(Path(where).parent))  # its own helpers import as usual
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(Path(where).parent))
        else:
            module = importlib.import_module(where)
    except BuildError:
        raise
    except BaseException as exc:  # a script may raise anything, SystemExit included
        raise BuildError("%s: importing it failed (%s)" % (entry, one_line(exc))) from None
    target = getattr(module, func, None)
    if not callable(target):
        raise BuildError("%s: %s has no function %r" % (entry, where, func))
    return target  # type: ignore[no-any-return]


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise BuildError(
            "PyTorch models need torch and torch-pruning: pip install 'edgebench[torch]'"
        ) from None
    return torch


def load_model(spec: TorchModel) -> Any:
    """The entry point's ``nn.Module`` with the weights loaded, in eval mode."""
    torch = _torch()
    try:
        model = load_callable(spec.entry)()
    except BuildError:
        raise
    except Exception as exc:
        raise BuildError(
            "%s: building the model failed (%s)" % (spec.entry, one_line(exc))
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise BuildError(
            "%s: returned %s, not a torch.nn.Module" % (spec.entry, type(model).__name__)
        )
    if spec.weights is not None:
        need_file(spec.weights, "weights file")
        try:
            state = torch.load(str(spec.weights), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:
            raise BuildError(
                "%s: cannot load these weights into %s (%s)"
                % (spec.weights, spec.entry, one_line(exc)[:300])
            ) from None
    return model.eval()


def example_inputs(spec: TorchModel) -> Tuple[Any, ...]:
    torch = _torch()
    return tuple(torch.zeros(*dims) for _, dims in spec.input_shapes)


def export(model: Any, spec: TorchModel, target: Path) -> None:
    """``model`` to ``target`` in the spec's format."""
    if spec.format == "tflite":
        _export_tflite(model, spec, target)
    else:
        _export_onnx(model, spec, target)


def _export_onnx(model: Any, spec: TorchModel, target: Path) -> None:
    """ONNX with the TorchScript exporter (a plain, small graph); inputs keep the names given
    with their shapes."""
    import warnings

    torch = _torch()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecations are not the user's
            torch.onnx.export(
                model.eval(),
                example_inputs(spec),
                str(target),
                input_names=[name for name, _ in spec.input_shapes],
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:
        raise BuildError(
            "%s: ONNX export failed (%s)" % (spec.entry, one_line(exc)[:300])
        ) from None


def _export_tflite(model: Any, spec: TorchModel, target: Path) -> None:
    """TFLite with litert-torch (torch.export, then LiteRT's converter); the inputs keep the
    PyTorch layout (NCHW) and, as keyword arguments, the names given with their shapes: the
    ``serving_default`` signature's inputs are those names, its tensors
    ``serving_default_NAME``."""
    try:
        import litert_torch
    except ImportError:
        raise BuildError(LITERT_TORCH) from None
    torch = _torch()
    names = [name for name, _ in spec.input_shapes]

    class Named(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.inner = model.eval()

        def forward(self, **inputs: Any) -> Any:
            return self.inner(*[inputs[name] for name in names])

    try:
        kwargs = dict(zip(names, example_inputs(spec)))
        litert_torch.convert(Named().eval(), (), kwargs).export(str(target))
    except Exception as exc:
        raise BuildError(
            "%s: TFLite export with litert-torch failed (%s)" % (spec.entry, one_line(exc)[:300])
        ) from None


def portable(entry: str) -> str:
    """An entry point without its folder (``file.py:build``): cache keys hold the source's
    hash, not where it lies, so a moved or fresh clone finds its builds."""
    where, func = entry.rsplit(":", 1)
    return "%s:%s" % (Path(where).name, func) if where.endswith(".py") else entry


def describe(spec: TorchModel) -> Dict[str, Any]:
    """What identifies the model, by content: entry, hashes of source and weights, input
    shapes."""
    return {
        "entry": portable(spec.entry),
        "source_sha256": sha256_file(source_file(spec.entry)),
        "weights_sha256": sha256_file(spec.weights) if spec.weights else None,
        "input_shapes": {name: list(dims) for name, dims in spec.input_shapes},
    }


def tools() -> Dict[str, str]:
    """torch's version, and litert-torch's where it is installed."""
    import importlib.metadata

    found = {"torch": _torch().__version__}
    try:
        found["litert-torch"] = importlib.metadata.version("litert-torch")
    except importlib.metadata.PackageNotFoundError:
        pass
    return found


def export_step(spec: TorchModel) -> Dict[str, Any]:
    if spec.format == "tflite":
        return dict(
            {"step": "export", "tool": "litert-torch", "format": "tflite"}, **describe(spec)
        )
    return dict({"step": "export", "tool": "torch.onnx.export", "opset": OPSET}, **describe(spec))


def exported(spec: TorchModel, out_dir: Path, progress: Callable[[str], None]) -> Path:
    """The fp32 ONNX export of ``spec`` in ``out_dir``, built unless the cached one matches."""
    if spec.weights is not None:
        need_file(spec.weights, "weights file")
    writable_dir(out_dir)
    target = out_dir / ("%s.%s" % (spec.name, spec.format))
    manifest_path = out_dir / (spec.name + ".json")
    recipe = [export_step(spec)]
    try:
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        if (
            old.get("recipe") == recipe
            and target.is_file()
            and sha256_file(target) == old.get("sha256")
        ):
            return target
    except (OSError, ValueError, AttributeError):
        pass
    started = time.monotonic()
    progress("exporting %s" % target.name)
    with tempfile.TemporaryDirectory(dir=str(out_dir), prefix=".build-") as work:
        tmp = Path(work) / target.name
        with logged(out_dir / (spec.name + ".export.log")):
            export(load_model(spec), spec, tmp)
        os.replace(str(tmp), str(target))
    manifest = {
        "schema_version": MANIFEST_VERSION,
        "variant": "export",
        "format": spec.format,
        "recipe": recipe,
        "file": target.name,
        "sha256": sha256_file(target),
        "size_bytes": target.stat().st_size,
        "tools": tools(),
        "built_at": utc_now(),
        "build_seconds": round(time.monotonic() - started, 3),
    }
    atomic_write(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return target


def torch_model(
    entry: str,
    input_shapes: Mapping[str, List[int]],
    weights: Optional[Path] = None,
    finetune: Optional[str] = None,
    base: Path = Path("."),
    export: str = "onnx",
) -> TorchModel:
    """A checked :class:`TorchModel`; ValueError (one line) for what can be told before
    building: the entry points' spelling and files, the weights file, the input shapes, the
    export format and its exporter."""
    if export not in EXPORTS:
        raise ValueError(
            "cannot export a PyTorch model to %r (expected %s)" % (export, " or ".join(EXPORTS))
        )
    if export == "tflite" and importlib.util.find_spec("litert_torch") is None:
        raise ValueError(LITERT_TORCH)
    if not input_shapes:
        raise ValueError(
            "a PyTorch model needs example input shapes (--input-shape NAME:DIMS, or "
            "'input_shapes:' in a plan), e.g. input:1,3,224,224"
        )
    if weights is not None:
        weights = (base / os.path.expanduser(str(weights))).resolve()
        if not weights.is_file():
            raise ValueError("%s: weights file not found" % weights)
    return TorchModel(
        parse_entry(entry, base),
        tuple((str(k), tuple(int(d) for d in v)) for k, v in input_shapes.items()),
        weights,
        parse_entry(finetune, base) if finetune else None,
        export,
    )


def build_torch_variants(
    spec: TorchModel,
    variants: Optional[Sequence[str]],
    out_dir: Path,
    options: Options,
    watch: Optional[Watch] = None,
) -> Tuple[Path, Dict[str, Any], List[Outcome]]:
    """:func:`build_variants` for a PyTorch model: its fp32 export (built or cached), the
    export's description and one outcome per variant (default: the export format's set and
    structured pruning)."""
    watch = watch or Watch()
    if spec.format == "tflite":  # fixed at the given dims, and LiteRT names the tensors
        options = dataclasses.replace(options, input_shapes={})
    if variants is None:
        variants = DEFAULT_VARIANTS[spec.format] + STRUCTURED_DEFAULTS
    model = exported(
        spec, out_dir, functools.partial(watch.phase, "%s.%s" % (spec.name, spec.format))
    )
    parent, outcomes = build_variants(
        model, variants, out_dir, dataclasses.replace(options, torch=spec), watch
    )
    return model, parent, outcomes
