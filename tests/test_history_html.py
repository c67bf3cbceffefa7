"""``edgebench report --history``: p50/p90 over runs on one offline page, with the
verdicts of history.py marked, and the same data as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import edgebench
from synthetic_runs import failed, make_run, ok


def history_root(root: Path) -> Path:
    """Runs of a.onnx on one board: steady, 20 % slower, a failure, an onnxruntime upgrade,
    then a change of threads (not comparable)."""

    def at(day: int, record, version: str = "1.17.1", threads: int = 2) -> None:
        if record.ok:
            record = record.replace(
                runtime=dict(record.runtime, version=version),
                settings=dict(record.settings, threads=threads),
            )
        make_run(root, [record], created_at="2026-01-%02dT00:00:00+00:00" % day)

    at(1, ok("a.onnx", p50_ms=10.0, seed=1))
    at(2, ok("a.onnx", p50_ms=10.1, seed=2))
    at(3, ok("a.onnx", p50_ms=12.0, seed=3))
    at(4, failed("a.onnx", "pi4", "crash", "the agent was killed by SIGSEGV"))
    at(5, ok("a.onnx", p50_ms=12.1, seed=5), version="1.18.0")
    at(6, ok("a.onnx", p50_ms=6.0, seed=6), version="1.18.0", threads=4)
    return root


def test_history_page_is_offline_and_marks_regressions_and_breaks(tmp_path: Path) -> None:
    root = history_root(tmp_path / "results")
    proc = edgebench(["report", "--history", str(root)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = Path(proc.stdout.strip())
    assert page == root / "history.html"
    html = page.read_text(encoding="utf-8")
    # self-contained: nothing to fetch, and a policy that forbids fetching anything
    assert not re.search(r"(?:https?:)?//[a-z]", html.replace("http://www.w3.org", ""))
    assert not re.search(r"""(?:src|href)=["'](?!data:)""", html)
    assert "default-src 'none'" in html
    assert html.count('<svg class="chart" data-chart="history"') == 1
    assert html.count('class="verdict slower"') == 1  # day 3: +19 %
    assert html.count('class="verdict not-comparable"') == 1  # day 6: threads
    assert html.count('class="verdict changed"') == 1  # day 5: onnxruntime 1.17.1→1.18.0
    assert html.count('class="verdict failed"') == 1
    assert "not comparable: threads" in html and "onnxruntime 1.17.1→1.18.0" in html
    assert "+1" in html  # the step, labelled

    data = edgebench(["report", "--history", str(root), "--json"], cwd=tmp_path)
    assert data.returncode == 0, data.stderr
    (only,) = json.loads(data.stdout)["series"]
    points = only["points"]
    assert [p["verdict"] for p in points] == [
        "",
        "",
        "slower",
        "failed",
        "changed",
        "not-comparable",
    ]
    assert points[3]["p50_ms"] is None and points[3]["p90_ms"] is None  # never a zero
    assert all(p["p90_ms"] > p["p50_ms"] for p in points if p["p50_ms"] is not None)


def test_history_page_of_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    proc = edgebench(["report", "--history", "results"], cwd=tmp_path)
    assert proc.returncode == 2 and "no measurement" in proc.stderr
    proc = edgebench(["report"], cwd=tmp_path)
    assert proc.returncode == 2 and "--history" in proc.stderr
    run = make_run(tmp_path / "results", [ok("a.onnx")])
    proc = edgebench(["report", str(run.path), "--json"], cwd=tmp_path)
    assert proc.returncode == 2 and "go with --history" in proc.stderr
