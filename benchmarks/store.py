#!/usr/bin/env python3
"""The shared store under load: concurrent writers, and readers over a large history.

1. ``--writers`` separate processes (default 8) each create a run and store ``--records``
   records (default 50: real Records on synthetic samples, the way the runner stores them:
   record, then the job's status), all at once, into PostgreSQL and into a local results
   directory.  Checked: every record stored exactly once (PostgreSQL: rows and distinct keys;
   local: files), each with the p50 its writer gave it.  Reported: wall time per backend.
2. A store holding ``--history-records`` records (default 10 000: runs of 2 devices x 5
   artifacts, tagged ``main``): wall time of ``edgebench history --json`` (first call, which
   builds the per-run cache, and the next) and ``edgebench check LATEST --baseline tag:main``,
   as the CLI runs them (a fresh process each), for both backends.  The database copy is
   made by ``edgebench store import`` (also timed).

A PostgreSQL server is started on loopback for the benchmark (tests/pg.py) and stopped.

    pip install -e '.[postgres]'
    python benchmarks/store.py [--writers 8] [--records 50] [--history-records 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pg import start_postgres  # noqa: E402
from synthetic_runs import ok  # noqa: E402

from edgebench.harness.store import open_store  # noqa: E402

EDGEBENCH = [sys.executable, "-m", "edgebench.harness"]
DEVICES = ("pi4", "jetson")
ARTIFACTS = tuple("model%d.onnx" % i for i in range(5))


def writer(location: str, index: int, count: int, start: Any) -> Tuple[str, List[float]]:
    """One harness process: a run of ``count`` records; returns its id and the p50s."""
    store = open_store(location)
    run = store.create()
    start.wait()
    p50s = []
    for i in range(count):
        name = "w%d-m%d.onnx" % (index, i)
        record = ok(name, device="board%d" % (i % 4), p50_ms=1.0 + index + i / 1000, seed=i)
        run.write_record(record)
        run.set_status(record.device, name, "ok")
        p50s.append(record.stats["p50_ms"])
    return run.run_id, p50s


def concurrent(location: str, writers: int, records: int) -> Tuple[float, List[Any]]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Manager().Event()
    with ctx.Pool(writers) as pool:
        pending = [pool.apply_async(writer, (location, i, records, start)) for i in range(writers)]
        time.sleep(3)  # every writer connected and holding its run
        t0 = time.perf_counter()
        start.set()
        results = [p.get(600) for p in pending]
        return time.perf_counter() - t0, results


def verify(location: str, results: List[Any], records: int) -> int:
    """How many records each run holds, checked against what its writer wrote."""
    store = open_store(location)
    total = 0
    for run_id, p50s in results:
        stored = store.open(run_id).records()
        assert len(stored) == records, (run_id, len(stored))
        got = sorted(r.stats["p50_ms"] for r in stored)
        assert all(abs(a - b) < 1e-9 * b for a, b in zip(got, sorted(p50s))), run_id
        total += len(stored)
    return total


def cli(args: List[str], cwd: Path) -> str:
    """``edgebench ARGS`` in a fresh process: "wall s (CPU s)"; the CPU time (user +
    system) is what a shared, loaded machine does not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(EDGEBENCH + args, cwd=str(cwd), capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode in (0, 1), proc.stderr
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return "%.2f s (CPU %.2f s)" % (elapsed, cpu)


def fill(root: Path, total: int) -> str:
    """Runs of len(DEVICES) x len(ARTIFACTS) records under ``root``; the last run's id."""
    per_run = len(DEVICES) * len(ARTIFACTS)
    store = open_store(str(root))
    last = ""
    for n in range(total // per_run):  # one series point per run
        run = store.create()
        run.update_meta(
            created_at="2026-01-01T%02d:%02d:%02d+00:00" % (n // 3600, n // 60 % 60, n % 60),
            tag="main",
            devices={d: {"kind": "ssh", "tags": []} for d in DEVICES},
            status={d: dict.fromkeys(ARTIFACTS, "ok") for d in DEVICES},
        )
        for d in DEVICES:
            for i, name in enumerate(ARTIFACTS):
                run.write_record(ok(name, device=d, p50_ms=5.0 + i, seed=n, n=200))
        last = run.run_id
    return last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--records", type=int, default=50)
    ap.add_argument("--history-records", type=int, default=10_000)
    opts = ap.parse_args()
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    server = start_postgres()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            url = server.database()
            open_store(url)  # the schema, before the clock starts
            for label, location in (("postgresql", url), ("local dir", str(work / "w"))):
                wall, results = concurrent(location, opts.writers, opts.records)
                stored = verify(location, results, opts.records)
                expect = opts.writers * opts.records
                assert stored == expect, (stored, expect)
                print(
                    "%d writers x %d records, %s: %d stored exactly once, wall %.2f s"
                    % (opts.writers, opts.records, label, stored, wall)
                )
            import psycopg

            with psycopg.connect(url) as conn:
                rows, keys = conn.execute(
                    "SELECT count(*), count(DISTINCT (run_id, device, artifact)) FROM records"
                ).fetchone()
            print("postgresql rows %d, distinct keys %d" % (rows, keys))

            local = work / "results"
            t0 = time.perf_counter()
            last = fill(local, opts.history_records)
            print("filled local store: %.1f s" % (time.perf_counter() - t0))
            big = server.database()
            print(
                "store import of %d records: %s"
                % (opts.history_records, cli(["--store", big, "store", "import", str(local)], work))
            )
            runs = opts.history_records // (len(DEVICES) * len(ARTIFACTS))
            for label, store in (
                ("local dir", ["--store", str(local)]),
                ("postgresql", ["--store", big]),
            ):
                first = cli(store + ["history", "--json"], work)
                second = cli(store + ["history", "--json"], work)
                one = cli(store + ["history", "--device", "pi4", "--artifact", ARTIFACTS[0]], work)
                check = cli(store + ["check", last, "--baseline", "tag:main", "--json"], work)
                print(
                    "%s, %d records: history --json %s first (builds the cache), %s next; "
                    "one series (%d points) %s; check --baseline tag:main %s"
                    % (label, opts.history_records, first, second, runs, one, check)
                )
    finally:
        server.stop()
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
