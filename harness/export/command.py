"""``edgebench export RUN --to bencher|mlflow``: the command, printing what it exported."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Optional

from ..store import Store
from . import ExportError


def export_run(
    runs: Store, run: str, to: str, tracking_uri: Optional[str], experiment: str, as_json: bool
) -> int:
    """Export run ``run`` of ``runs`` (an id, a directory or a results root: its latest)
    ``to`` "bencher" (BMF on stdout, failures named on stderr) or "mlflow" (a line, or a JSON
    object, per record)."""
    store = runs.open(run)
    if to == "bencher":
        from .bencher import benchmark_name, bmf

        records = store.records()
        for r in records:
            if not r.ok:
                print(
                    "not exported: %s: %s: %s" % (benchmark_name(r), r.reason, r.message),
                    file=sys.stderr,
                )
        doc = bmf(records)
        if not doc:
            raise ExportError("%s: no successful measurement to export" % store.run_id)
        print(json.dumps(doc, indent=2))
        return 0
    if not tracking_uri:
        raise ExportError("export --to mlflow needs --tracking-uri URI")
    try:
        from .mlflow_runs import export
    except ImportError:
        raise ExportError(
            "export --to mlflow needs the MLflow client: pip install 'edgebench[mlflow]'"
        ) from None
    done = export(store, tracking_uri, experiment)
    if as_json:
        print(json.dumps([dataclasses.asdict(d) for d in done], indent=2, ensure_ascii=False))
        return 0
    for d in done:
        print(
            "%-9s %s / %s (%s): mlflow run %s"
            % (d.action, d.device, d.artifact, d.status, d.mlflow_run_id)
        )
    return 0
