"""The shared store: runs in a real PostgreSQL (tests/pg.py) read back as from a results
directory; concurrent writers, a killed writer resumed, import, references, bad URLs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from conftest import FAST, ROOT, edgebench

from edgebench.harness.analysis.history import entries
from edgebench.harness.store import open_store

MODELS = ["--model", str(ROOT / "examples" / "digits.onnx")]
MODELS += ["--model", str(ROOT / "examples" / "digits.tflite")]


def ok(proc: subprocess.CompletedProcess, codes: Tuple[int, ...] = (0,)) -> str:
    assert proc.returncode in codes, proc.stderr
    return proc.stdout


def out_json(args: List[str], cwd: Path, **kwargs: Any) -> Any:
    return json.loads(ok(edgebench(args + ["--json"], cwd, **kwargs)))


def verdicts(args: List[str], cwd: Path) -> Any:
    """``check --json``: exit 1 is a verdict too (two real runs of a 10 µs model can
    differ by more than the gate allows)."""
    return json.loads(ok(edgebench(args + ["--json"], cwd), codes=(0, 1)))


def run_id(proc: subprocess.CompletedProcess) -> str:
    line = next(x for x in proc.stderr.splitlines() if x.startswith("results: "))
    return line.rsplit(" ", 1)[-1].rsplit("/", 1)[-1]


def count(url: str, query: str) -> Any:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]


def test_readers_give_the_same_results_from_both_backends(pg_url, tmp_path):
    """Two local runs imported into the database: report, compare, check --baseline,
    decide and history say what they say from the directories."""
    first = edgebench(["run", *FAST, *MODELS, "--tag", "main", "--quiet"], tmp_path)
    second = edgebench(["run", *FAST, *MODELS, "--tag", "main", "--quiet"], tmp_path)
    ok(first), ok(second)
    a, b = run_id(first), run_id(second)
    imported = ok(edgebench(["--store", pg_url, "store", "import", "results"], tmp_path))
    assert imported.startswith("imported 2 runs (4 records)")
    db = ["--store", pg_url]
    local = {}
    for store, ref_a, ref_b in (([], "results/" + a, "results/" + b), (db, a, b)):
        local[bool(store)] = [
            ok(edgebench(store + ["report", ref_b, "--format", fmt], tmp_path))
            for fmt in ("md", "csv", "json")
        ] + [
            out_json(store + ["compare", ref_a, ref_b, "--by", "run"], tmp_path),
            verdicts(store + ["check", ref_b, "--baseline", ref_a], tmp_path),
            verdicts(store + ["check", ref_b, "--baseline", "tag:main@local"], tmp_path),
            out_json(store + ["history"], tmp_path),
            out_json(store + ["history"], tmp_path),  # from the cache of per-run summaries
        ]
    assert local[True] == local[False]
    assert open_store(pg_url).run_ids() == open_store(str(tmp_path / "results")).run_ids()
    assert open_store(pg_url).run_ids() == [a, b]
    assert len(local[True][-1]["series"]) == 2 and all(
        len(s["points"]) == 2 for s in local[True][-1]["series"]
    )
    # files a run writes are kept with it: report.md by run, report.html by report
    assert ok(edgebench(db + ["report", b, "--format", "html"], tmp_path)).endswith("report.html\n")
    page = ok(edgebench(db + ["store", "get", b, "report.html"], tmp_path))
    assert page.startswith("<!DOCTYPE html>") and b in page
    # decide keeps the manifest with the run in the database, and in a file here
    doc = out_json(db + ["decide", b], tmp_path)
    manifest = (tmp_path / doc["manifest"]).read_text()
    assert ok(edgebench(db + ["store", "get", b, Path(doc["manifest"]).name], tmp_path)) == (
        manifest
    )


def test_two_writers_at_once_both_store_everything(pg_url, tmp_path):
    env = dict(os.environ, EDGEBENCH_STORE=pg_url)
    args = [sys.executable, "-m", "edgebench.harness", "run", *FAST, "--quiet"]
    procs = [
        subprocess.Popen(
            args + ["--tag", "ci"], cwd=str(tmp_path), env=env, text=True, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    ids = {e.split("results: ")[1].split()[-1] for e in errs}
    assert len(ids) == 2
    assert count(pg_url, "SELECT count(*) FROM records") == 6  # 3 example models each
    store = open_store(pg_url)
    for rid in ids:
        run = store.open(rid)
        assert len(run.records()) == 3 and all(r.ok for r in run.records())
        assert set(run.meta().status["local"].values()) == {"ok"}
    assert not (tmp_path / "results").exists()  # nothing went to a local directory
    # the other writer's run is the newest other run tagged ci
    one = sorted(ids)[0]
    assert store.open("tag:ci", exclude=one).run_id == sorted(ids)[1]


def test_a_killed_writer_leaves_a_run_resume_finishes(pg_url, tmp_path):
    store = open_store(pg_url)  # the schema, before the writer is watched
    slow = ["--min-seconds", "2", "--min-iterations", "20", "--warmup-seconds", "0.05"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgebench.harness", "--store", pg_url, "run", *slow, "--quiet"],
        cwd=str(tmp_path),
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the agent it started goes with it
    )
    deadline = time.monotonic() + 120
    while count(pg_url, "SELECT count(*) FROM records") == 0:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run = store.open("latest")
    kept = {(r.device, r.artifact["name"]): r for r in run.records()}
    assert 1 <= len(kept) < 3 and "pending" in run.meta().status["local"].values()
    (entry,) = entries(store)  # history's summary of the run, kept beside it
    assert len(entry["records"]) == len(kept)
    resumed = edgebench(["--store", pg_url, "run", "--resume", run.run_id, *FAST], tmp_path)
    ok(resumed)
    run = store.open(run.run_id)
    done = {(r.device, r.artifact["name"]): r for r in run.records()}
    assert len(done) == 3 and set(run.meta().status["local"].values()) == {"ok"}
    for key, record in kept.items():  # what the killed writer stored stays as it was
        assert done[key].to_dict() == record.to_dict()
    assert run.meta().resumed_at
    (entry,) = entries(store)  # refreshed: the run changed since
    assert len(entry["records"]) == 3


def test_import_twice_stores_each_run_once(pg_url, tmp_path):
    ok(edgebench(["run", *FAST, *MODELS, "--quiet"], tmp_path))
    again = []
    for _ in range(2):
        again.append(ok(edgebench(["--store", pg_url, "store", "import", "results"], tmp_path)))
    assert again[1].startswith("imported 1 runs (2 records)") and "1 were there already" in again[1]
    assert count(pg_url, "SELECT count(*) FROM runs") == 1
    assert count(pg_url, "SELECT count(*) FROM records") == 2
    assert count(pg_url, "SELECT count(*) FROM run_files WHERE name = 'report.md'") == 1


def test_stored_names_and_tags_name_baselines_in_both_backends(pg_url, tmp_path):
    ok(edgebench(["run", *FAST, *MODELS[:2], "--tag", "main", "--quiet"], tmp_path))
    ok(edgebench(["store", "name", "release-1", "latest"], tmp_path))
    assert (tmp_path / "results" / "release-1").is_symlink()
    ok(edgebench(["--store", pg_url, "store", "import", "results"], tmp_path))
    for store in ([], ["--store", pg_url]):
        if store:
            ok(edgebench(store + ["store", "name", "release-1", "latest"], tmp_path))
        doc = verdicts(store + ["check", "latest", "--baseline", "release-1"], tmp_path)
        assert any(v["check"] == "regression" for v in doc["verdicts"])
        # the only run tagged main is the one checked: no other to compare with
        bad = edgebench(store + ["check", "latest", "--baseline", "tag:main"], tmp_path)
        assert bad.returncode == 2 and "no run tagged main" in bad.stderr
    bad = edgebench(["--store", pg_url, "report", "nope"], tmp_path)
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr
    bad = edgebench(["--store", pg_url, "run", "--tag", "main@pi4"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--tag 'main@pi4'" in bad.stderr
    assert count(pg_url, "SELECT count(*) FROM runs") == 1  # nothing ran


@pytest.mark.parametrize(
    "url, why",
    [
        ("postgresql://postgres@127.0.0.1:1/x", "cannot connect"),
        ("postgresql://postgres@127.0.0.1:99999/x", "cannot connect"),
        ("postgresql://u:secret@127.0.0.1:1/x", "u:***@"),
    ],
)
def test_an_unusable_store_is_one_line_exit_2(tmp_path, url, why):
    proc = edgebench(["--store", url, "history"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert why in proc.stderr and "secret" not in proc.stderr


def test_without_the_driver_the_error_says_what_to_install(tmp_path):
    (tmp_path / "psycopg.py").write_text("raise ImportError('no psycopg here')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), EDGEBENCH_STORE="postgresql://127.0.0.1/x")
    proc = edgebench(["report", "latest"], tmp_path, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "edgebench[postgres]" in proc.stderr


def test_migrations_run_once_and_a_newer_schema_is_refused(pg_url, tmp_path):
    open_store(pg_url)
    open_store(pg_url)  # a second harness: nothing left to apply
    assert count(pg_url, "SELECT count(*) FROM edgebench_schema") == 1
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO edgebench_schema (version) VALUES (99)")
    proc = edgebench(["--store", pg_url, "history"], tmp_path)
    assert proc.returncode == 2 and "schema is version 99" in proc.stderr


def test_a_local_store_named_by_the_environment(tmp_path):
    env = dict(os.environ, EDGEBENCH_STORE=str(tmp_path / "mine"))
    ok(edgebench(["run", *FAST, *MODELS[:2], "--quiet"], tmp_path, env=env))
    assert not (tmp_path / "results").exists()
    (run,) = open_store(str(tmp_path / "mine")).run_ids()
    doc = out_json(["history"], tmp_path, env=env)
    assert [p["run_id"] for s in doc["series"] for p in s["points"]] == [run]
    assert out_json(["--store", str(tmp_path / "mine"), "history"], tmp_path) == doc


def test_a_writer_whose_connection_broke_connects_again(pg_url):
    import psycopg
    from synthetic_runs import ok as record

    store = open_store(pg_url)
    run = store.create()
    run.write_record(record("a.onnx"))
    with psycopg.connect(pg_url, autocommit=True) as admin:  # as a server restart would
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    run.write_record(record("b.onnx"))
    assert [r.artifact["name"] for r in store.open(run.run_id).records()] == ["a.onnx", "b.onnx"]


def test_the_views_read_the_database_as_the_directory(pg_url, tmp_path):
    """report --history, lab, export --to bencher and check --ab: the same from both stores."""
    ok(edgebench(["run", *FAST, *MODELS, "--quiet"], tmp_path))
    ok(edgebench(["--store", pg_url, "store", "import", "results"], tmp_path))
    db = ["--store", pg_url]
    for store in ([], db):
        history = out_json(store + ["report", "--history"], tmp_path)
        assert history == out_json(["report", "--history"], tmp_path)
        lab = out_json(store + ["lab", "--no-leases"], tmp_path)
        assert [b["devices"] for b in lab] == [["local"]]
        bench = json.loads(ok(edgebench(store + ["export", "latest", "--to", "bencher"], tmp_path)))
        assert any(name.startswith("local/digits.onnx") for name in bench), bench
    page = ok(edgebench(db + ["report", "--history", "--out", "h.html"], tmp_path))
    assert page.strip() == "h.html" and "<svg" in (tmp_path / "h.html").read_text()
    # an A/B check writes its run into the database, and reads its baseline run there
    run = out_json(db + ["run", *FAST, "--model", MODELS[1], "--quiet"], tmp_path)
    (base_id,) = {r["run_id"] for r in run}
    proc = edgebench(
        db
        + ["check", "--ab", MODELS[1], "--baseline", base_id, "--rounds", "2", "--json"]
        + FAST[:2]
        + ["--quiet"],
        tmp_path,
    )
    doc = json.loads(ok(proc, codes=(0, 1)))
    assert any(v["check"] == "regression" for v in doc["verdicts"])
    assert doc["run_id"] in open_store(pg_url).run_ids()
