"""``edgebench export``: a stored run into a real MLflow tracking server (started here on
loopback, stopped by its PID) and as Bencher Metric Format JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from conftest import edgebench
from sshd import free_port
from synthetic_runs import failed, make_run, ok

from edgebench.harness.analysis.identity import device_identity

SERVER_START_S = 240.0  # a loaded machine has taken 50 s
MLFLOW_SERVER = importlib.util.find_spec("mlflow") is not None and (
    importlib.util.find_spec("sqlalchemy") is not None  # the server, not only the client
)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of a real MLflow tracking server with a SQLite store and served artifacts."""
    if not MLFLOW_SERVER:
        pytest.skip("the MLflow server is not installed (pip install mlflow)")
    where = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(where / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
        + ["--port", str(port), "--workers", "1"]
        + ["--backend-store-uri", "sqlite:///%s" % (where / "mlflow.db")]
        + ["--artifacts-destination", str(where / "artifacts")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: the workers go with it
        cwd=str(where),
    )
    uri = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (where / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def a_run(root: Path):
    variant = ok("m.int8.onnx", p50_ms=4.0, n=1500, variant="int8-dynamic", parent="m.onnx")
    variant = variant.replace(timing=dict(variant.timing, energy_mj=1.5))
    return make_run(root, [ok("m.onnx", p50_ms=10.0, n=1500), variant, failed("x.onnx")])


def test_export_to_mlflow_makes_one_run_per_record_and_is_idempotent(
    tracking: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    store = a_run(tmp_path / "results")
    args = ["export", str(store.path), "--to", "mlflow", "--tracking-uri", tracking]
    proc = edgebench(args + ["--experiment", "lab", "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)  # stdout is the document alone
    assert {d["action"] for d in done} == {"created"} and len(done) == 3

    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("lab")
    runs = {
        r.data.tags["artifact"]: r
        for r in client.search_runs(
            [experiment.experiment_id], "tags.`edgebench.run_id` = '%s'" % store.run_id
        )
    }
    assert set(runs) == {"m.onnx", "m.int8.onnx", "x.onnx"}
    records = {str(r.artifact["name"]): r for r in store.records()}
    int8, record = runs["m.int8.onnx"], records["m.int8.onnx"]
    assert int8.info.status == "FINISHED" and int8.info.run_name == "pi4 / m.int8.onnx"
    assert int8.data.tags["variant"] == "int8-dynamic" and int8.data.tags["device"] == "pi4"
    assert int8.data.tags["board"] == device_identity(record)
    assert runs["m.onnx"].data.tags["variant"] == "original"
    metrics = int8.data.metrics
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        assert metrics[key] == pytest.approx(record.stats[key])
    assert metrics["peak_rss_mb"] == 80.0 and metrics["top1"] == 0.9
    assert metrics["energy_mj"] == 1.5
    assert int8.data.params["artifact.sha256"] == record.artifact["sha256"]
    assert int8.data.params["runtime.version"] == "1.17.1"
    history = client.get_metric_history(int8.info.run_id, "latency_ms")
    assert len(history) == 1500
    assert sorted(m.step for m in history) == list(range(1500))
    by_step = {m.step: m.value for m in history}
    assert by_step[7] == pytest.approx(record.samples_ns[7] / 1e6)
    names = {a.path for a in client.list_artifacts(int8.info.run_id)}
    assert names == {"record.json", "report.md"}
    fetched = Path(client.download_artifacts(int8.info.run_id, "record.json", str(tmp_path)))
    assert json.loads(fetched.read_text()) == record.to_dict()

    broken = runs["x.onnx"]  # what it is: a failure, with no figure at all
    assert broken.info.status == "FAILED"
    assert broken.data.tags["reason"] == "timeout" and broken.data.metrics == {}

    again = edgebench(args + ["--experiment", "lab"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("unchanged") == 3

    # a record measured again (run --resume) replaces its MLflow run; the others stay
    store.write_record(ok("x.onnx", p50_ms=3.0))
    third = edgebench(args + ["--experiment", "lab", "--json"], cwd=tmp_path)
    actions = {d["artifact"]: d["action"] for d in json.loads(third.stdout)}
    assert actions == {"m.onnx": "unchanged", "m.int8.onnx": "unchanged", "x.onnx": "replaced"}
    live = client.search_runs(
        [experiment.experiment_id], "tags.`edgebench.run_id` = '%s'" % store.run_id
    )
    assert len(live) == 3
    assert client.get_run(broken.info.run_id).info.lifecycle_stage == "deleted"


def test_export_to_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("the MLflow client is not installed (pip install 'edgebench[mlflow]')")
    store = a_run(tmp_path / "results")
    uri = "http://127.0.0.1:%d" % free_port()
    proc = edgebench(
        ["export", str(store.path), "--to", "mlflow", "--tracking-uri", uri],
        cwd=tmp_path,
        env=dict(os.environ, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"),
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("edgebench: error: %s" % uri)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_export_to_bencher(tmp_path: Path) -> None:
    store = a_run(tmp_path / "results")
    store.mark_latest()  # RUN may be a results root: its latest run
    proc = edgebench(["export", str(tmp_path / "results"), "--to", "bencher"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"pi4/m.onnx", "pi4/m.int8.onnx"}  # the failure is not a zero
    assert "not exported: pi4/x.onnx: timeout" in proc.stderr
    record = {str(r.artifact["name"]): r for r in store.records()}["m.onnx"]
    latency = doc["pi4/m.onnx"]["latency"]
    assert latency["value"] == pytest.approx(record.stats["p50_ms"] * 1e6)
    low, high = record.stats["p50_ci_ms"]
    assert (latency["lower_value"], latency["upper_value"]) == pytest.approx(
        (low * 1e6, high * 1e6)
    )
    assert doc["pi4/m.onnx"]["latency-p99"]["value"] == pytest.approx(record.stats["p99_ms"] * 1e6)
    assert doc["pi4/m.int8.onnx"]["energy-mj"] == {"value": 1.5}
    assert "energy-mj" not in doc["pi4/m.onnx"]
    for measures in doc.values():  # every metric as BMF's schema wants it
        for metric in measures.values():
            assert set(metric) <= {"value", "lower_value", "upper_value"}
            assert all(isinstance(v, float) for v in metric.values())

    only_failures = make_run(tmp_path / "other", [failed("x.onnx")])
    proc = edgebench(["export", str(only_failures.path), "--to", "bencher"], cwd=tmp_path)
    assert proc.returncode == 2 and "no successful measurement" in proc.stderr
    assert proc.stdout == ""
