"""``edgebench export RUN --to mlflow``: one MLflow run per device x artifact.

Settings and provenance are params, the figures metrics (p50/p90/p95/p99, peak RSS,
top-1/top-5, energy, throughput, load and first-inference time: whatever the record has),
every timed iteration the ``latency_ms`` metric series (step = iteration), the record and
the run's report artifacts (``record.json``, ``report.md``), and tags name the board, the
device, the artifact and its variant.  A failed record is an MLflow run with status FAILED
and its reason and message as tags -- no figures.

Re-exporting is idempotent: each MLflow run carries ``edgebench.key`` (run id, device,
artifact) and ``edgebench.record_sha256``; an exported record that has not changed is left
as it is, one that changed since (``run --resume`` measured it again) replaces the old
MLflow run, which is deleted.

The ``mlflow`` client library (``edgebench[mlflow]``) is imported only here, and this module
only by ``export --to mlflow``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List

from mlflow.entities import Metric, Param, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from edgebench.agent.record import Record

from ..analysis.identity import device_identity
from ..report.markdown import run_report
from ..store import Run
from ..summary import row
from . import ExportError

DEFAULT_EXPERIMENT = "edgebench"
BATCH = 1000  # MLflow takes at most 1000 metrics per log_batch
METRICS = (
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "cv",
    "throughput_ips",
    "peak_rss_mb",
    "model_rss_mb",
    "top1",
    "top5",
    "energy_mj",
    "load_ms",
    "first_ms",
)
RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
QUIET = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"  # or set_terminated prints the run's URL
PARAM_MAX = 6000  # characters MLflow keeps of a param value


@dataclass(frozen=True)
class Exported:
    device: str
    artifact: str
    mlflow_run_id: str
    action: str  # "created", "replaced" or "unchanged"
    status: str  # the record's: ok or error


def record_digest(record: Record) -> str:
    return hashlib.sha256(
        json.dumps(record.to_dict(), sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()


def _flat(prefix: str, value: Any, out: Dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat("%s.%s" % (prefix, key), inner, out)
    elif value is not None:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[prefix] = text[:PARAM_MAX]


def params(record: Record) -> Dict[str, str]:
    """The measurement settings and what was measured with what."""
    out: Dict[str, str] = {}
    _flat("settings", dict(record.settings), out)
    artifact = record.artifact
    for key in ("sha256", "format", "size_bytes", "variant", "parent_sha256"):
        _flat("artifact." + key, artifact.get(key), out)
    for key in ("name", "version"):
        _flat("runtime." + key, record.runtime.get(key), out)
    figures = row(record)
    for key in ("providers", "input_shape", "agent_version"):
        if figures.get(key):
            out[key] = str(figures[key])[:PARAM_MAX]
    return out


def metrics(record: Record) -> Dict[str, float]:
    figures = row(record)
    return {
        key: float(figures[key])
        for key in METRICS
        if isinstance(figures.get(key), (int, float)) and not isinstance(figures[key], bool)
    }


def tags(record: Record, run_id: str) -> Dict[str, str]:
    fp = record.fingerprint
    out = {
        "edgebench.run_id": run_id,
        "edgebench.key": "%s/%s/%s" % (run_id, record.device, record.artifact["name"]),
        "edgebench.record_sha256": record_digest(record),
        "device": record.device,
        "board": device_identity(record) or "",
        "board_model": str(fp.get("board_model") or fp.get("cpu_model") or ""),
        "artifact": str(record.artifact["name"]),
        "variant": str(record.artifact.get("variant") or "original"),
        "status": record.status,
    }
    if not record.ok:
        out.update(reason=str(record.reason), message=record.message[:PARAM_MAX])
    return out


def export(
    store: Run,
    tracking_uri: str,
    experiment: str = DEFAULT_EXPERIMENT,
) -> List[Exported]:
    """Export every record of ``store`` to the tracking server at ``tracking_uri``."""
    records = store.records()
    for name, value in RETRIES.items():  # an unreachable server: an error soon, not in minutes
        os.environ.setdefault(name, value)
    os.environ[QUIET] = "true"  # stdout is ours (--json)
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id if found is not None else client.create_experiment(experiment)
        )
        previous = {
            r.data.tags.get("edgebench.key"): r
            for r in client.search_runs(
                [experiment_id],
                "tags.`edgebench.run_id` = '%s'" % store.run_id,
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=10000,
            )
        }
        report = run_report(store.meta(), records)
        out = []
        for record in records:
            labels = tags(record, store.run_id)
            old = previous.get(labels["edgebench.key"])
            if (
                old is not None
                and old.info.status in ("FINISHED", "FAILED")  # not an export cut short
                and old.data.tags.get("edgebench.record_sha256")
                == labels["edgebench.record_sha256"]
            ):
                out.append(_done(record, old.info.run_id, "unchanged"))
                continue
            if old is not None:
                client.delete_run(old.info.run_id)
            stamp = int(time.time() * 1000)
            run = client.create_run(
                experiment_id,
                tags=labels,
                run_name="%s / %s" % (record.device, record.artifact["name"]),
            )
            rid = run.info.run_id
            client.log_batch(rid, params=[Param(k, v) for k, v in sorted(params(record).items())])
            series = [Metric(k, v, stamp, 0) for k, v in sorted(metrics(record).items())]
            series += [
                Metric("latency_ms", ns / 1e6, stamp, step)
                for step, ns in enumerate(record.samples_ns)
            ]
            for start in range(0, len(series), BATCH):
                client.log_batch(rid, metrics=series[start : start + BATCH])
            client.log_text(rid, json.dumps(record.to_dict(), indent=2), "record.json")
            client.log_text(rid, report, "report.md")
            client.set_terminated(rid, "FINISHED" if record.ok else "FAILED")
            out.append(_done(record, rid, "created" if old is None else "replaced"))
        return out
    except (MlflowException, OSError) as exc:
        raise ExportError("%s: %s" % (tracking_uri, " ".join(str(exc).split())[:300])) from None


def _done(record: Record, mlflow_run_id: str, action: str) -> Exported:
    return Exported(
        record.device, str(record.artifact["name"]), mlflow_run_id, action, record.status
    )
