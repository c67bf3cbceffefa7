"""A/B on the board: a candidate and its baseline measured in one window on every device.

Separate runs meet the board in different states (another heat, another load, a governor
that moved), and that difference reads as a change of the model.  Here both artifacts of
one model slot go into one run, their rounds interleaved and counterbalanced (B C, C B,
B C ... -- runner.Runner), so whatever the board does hits both alike; ``check`` pairs each
candidate round with the baseline round next to it (analysis/gate.py).

The baseline is a model file, or the same slot's artifact of a stored run: that run's file
when it is still on this host unchanged, else the copy the run left on each board (its
sha256 checked there before use).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from edgebench.agent.protocol import FORMATS
from edgebench.agent.verify import sha256_file

from ..config import ConfigError
from ..store import Run, Store
from .runner import Artifact

# Pairs of rounds an A/B check takes by default: with 4 degrees of freedom the interval is
# about +-1.2 pair spreads, so a 10% slowdown stands out of a few percent of pair noise.
AB_ROUNDS = 5


def ab_artifacts(candidate: Path, baseline: str, runs: Store) -> Tuple[Artifact, Artifact]:
    """The candidate's artifact and its baseline's (a model file, or a run in ``runs``),
    named for the candidate's slot."""
    cand = Artifact.from_path(candidate)
    given = Path(baseline)
    if given.suffix.lower() in FORMATS and not given.is_dir():
        base = Artifact.from_path(given)
    else:
        base = _from_run(runs.open(baseline), cand.name)
    if base.format != cand.format:
        raise ConfigError(
            "not comparable: format %s → %s (%s against %s)"
            % (base.format, cand.format, cand.path, baseline)
        )
    return cand, dataclasses.replace(base, baseline_of=cand.name)


def _from_run(run: Run, slot: str) -> Artifact:
    found = _request_artifact(run.meta().request, slot)
    if found is None:
        raise ConfigError("%s: the run measured no artifact named %r" % (run.where, slot))
    path = Path(str(found["path"]))
    if path.is_file() and sha256_file(path) == found["sha256"]:
        return dataclasses.replace(Artifact.from_path(path), variant=found.get("variant"))
    return Artifact(
        path,
        str(found["sha256"]),
        int(found["size_bytes"]),
        str(found["format"]),
        found.get("variant"),
        found.get("parent_sha256"),
        stored=True,
    )


def _request_artifact(request: Mapping[str, Any], slot: str) -> Optional[Mapping[str, Any]]:
    for item in request.get("artifacts") or []:
        if item.get("name") == slot and not item.get("baseline_of"):
            return item
    return None
