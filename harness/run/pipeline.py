"""The plan's on-device pipeline on the host: its keys checked, its files sent to the board.

Plan keys (paths relative to the plan)::

    pipeline:
      pre: pipeline/prep.py:preprocess     # file.py:function, run on the board
      post: pipeline/prep.py:postprocess   # optional; the same file
      inputs: pipeline/raw                 # a folder of .png/.npy (subfolder = class), or .npz

A folder of raw inputs travels as one zip (stored, fixed timestamps: its sha256 depends on
the content only), packed into the local cache; the code file and the inputs are staged
like a model and checked by sha256 on the board (agent/pipeline.py).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from edgebench.agent.verify import sha256_file

from ..config import Checker, ConfigError
from ..transport.base import Transport
from .pack import archive, cached

KEYS = ("pre", "post", "inputs")
RAW_SUFFIXES = (".npy", ".png")


@dataclass(frozen=True)
class PipelineSpec:
    code: Path
    pre: str  # function names in ``code``
    inputs: Path  # an .npz file or a folder
    post: Optional[str] = None

    def describe(self) -> Dict[str, Any]:
        return {
            "code": str(self.code),
            "pre": self.pre,
            "post": self.post,
            "inputs": str(self.inputs),
        }

    @classmethod
    def from_description(cls, desc: Mapping[str, Any]) -> PipelineSpec:
        return cls(Path(desc["code"]), desc["pre"], Path(desc["inputs"]), desc.get("post"))

    def entry(self, func: str) -> str:
        return "%s:%s" % (self.code.name, func)


def parse(check: Checker, value: Any, key: str, base: Path) -> PipelineSpec:
    """The plan's ``pipeline:`` mapping; a bad key or a missing file is a ConfigError."""
    check.keys(value, key, KEYS, required=("pre", "inputs"))
    files, funcs = [], []
    for name in ("pre", "post"):
        if name not in value:
            continue
        text = check.string(value[name], "%s.%s" % (key, name))
        path, sep, func = text.rpartition(":")
        if not sep or not path.endswith(".py") or not func.isidentifier():
            raise check.error("%s.%s" % (key, name), "expected file.py:function, got %r" % text)
        code = base / os.path.expanduser(path)
        if not code.is_file():
            raise check.error("%s.%s" % (key, name), "file not found: %s" % code)
        files.append(code.resolve())
        funcs.append(func)
    if len(set(files)) > 1:
        raise check.error(key + ".post", "pre and post must be functions of one file")
    inputs = base / os.path.expanduser(check.string(value["inputs"], key + ".inputs"))
    if inputs.is_dir():
        if not any(p.suffix.lower() in RAW_SUFFIXES for p in inputs.rglob("*")):
            raise check.error(key + ".inputs", "%s holds no .npy or .png files" % inputs)
    elif inputs.suffix.lower() != ".npz" or not inputs.is_file():
        raise check.error(
            key + ".inputs", "expected a folder of .npy/.png files or an .npz file: %s" % inputs
        )
    return PipelineSpec(files[0], funcs[0], inputs, funcs[1] if len(funcs) > 1 else None)


def pack_folder(folder: Path, cache_dir: Path) -> Path:
    """The folder's .npy/.png files (with their subfolders) as one zip in ``cache_dir``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in RAW_SUFFIXES)
    sources = [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in files]
    return cached(cache_dir, "pipeline-inputs-", ".zip", archive(sources, zipfile.ZIP_STORED))


class Shipment:
    """The pipeline's two files as the board gets them, hashed once per run."""

    def __init__(self, spec: PipelineSpec, cache_dir: Path) -> None:
        self.spec = spec
        try:
            self.inputs = (
                spec.inputs if spec.inputs.is_file() else pack_folder(spec.inputs, cache_dir)
            )
            self.code_sha256 = sha256_file(spec.code)
            self.inputs_sha256 = sha256_file(self.inputs)
        except OSError as exc:
            raise ConfigError("pipeline: cannot read %s" % exc) from None

    def stage(self, transport: Transport) -> Dict[str, Any]:
        """The job's ``pipeline`` section, once both files are on the board."""
        return {
            "code": transport.stage(self.spec.code, self.code_sha256),
            "code_sha256": self.code_sha256,
            "pre": self.spec.entry(self.spec.pre),
            "post": self.spec.entry(self.spec.post) if self.spec.post else None,
            "inputs": transport.stage(self.inputs, self.inputs_sha256),
            "inputs_sha256": self.inputs_sha256,
        }
