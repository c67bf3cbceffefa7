"""``edgebench report --format html``: one offline file, checked in headless Chromium."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from synthetic_runs import FINGERPRINT, failed, make_run, ok

from edgebench.harness.cli import main
from edgebench.harness.report.html import render_html

CHARTS = ("box", "cdf", "memory", "temperatures", "pareto")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def run(tmp_path):
    jetson = dict(
        FINGERPRINT,
        hostname="nano",
        board_model="Jetson Nano",
        temps_c_before={"cpu": 40.0, "gpu": 38.5},
        temps_c_after={"cpu": 47.0, "gpu": 44.0},
    )
    records = [
        ok("net.onnx", p50_ms=20, top1=0.80, started_at="2026-01-01T00:00:01"),
        ok(
            "net.int8.onnx",
            p50_ms=8,
            top1=0.79,
            variant="int8",
            parent="net.onnx",
            started_at="2026-01-01T00:00:02",
        ),
        ok(
            "net.pruned.onnx",
            p50_ms=9,
            top1=0.70,
            variant="pruned",
            parent="net.onnx",
            started_at="2026-01-01T00:00:03",
        ),
        ok("net.onnx", "jetson", p50_ms=4, top1=0.80, fingerprint=jetson),
        ok(
            "net.int8.onnx",
            "jetson",
            p50_ms=2.5,
            top1=0.79,
            variant="int8",
            parent="net.onnx",
            fingerprint=jetson,
        ),
        failed("net.pruned.onnx", "jetson", "model-invalid", "op <Sparse> unsupported"),
    ]
    return make_run(tmp_path / "res", records)


def test_self_contained_with_every_chart(run):
    page = render_html(run)
    assert page.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in page
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == ["data:,"]  # fetches nothing
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    for device in ("pi4", "jetson"):
        section = page[page.index('id="device-%s"' % device) :]
        section = section[: section.index("</section>")]
        kinds = re.findall(r'data-chart="(\w+)"', section)
        assert kinds == list(CHARTS), device
    assert "error: model-invalid — op &lt;Sparse&gt; unsupported" in page  # escaped
    assert "<h2>Devices side by side</h2>" in page and "pi4 speed-up vs jetson" in page
    assert "<strong>Board:</strong> Jetson Nano" in page


def test_cli_writes_report_html_into_the_run(run, capsys):
    assert main(["report", str(run.path), "--format", "html"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == run.path / "report.html" and path.read_text() == render_html(run)


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--user-data-dir=%s" % (tmp_path / "profile"),
            "--enable-logging=stderr",
            "--v=0",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def console(proc: subprocess.CompletedProcess) -> list:
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed "
    "(apt-get install -y chromium); the HTML report is not browser-tested",
)
def test_opens_in_headless_chromium_without_errors(run, tmp_path):
    bad = tmp_path / "bad.html"  # first prove that console errors would be seen
    bad.write_text("<script>undefinedFunction()</script>")
    assert any(
        "undefinedFunction" in line
        for line in console(chromium(tmp_path, bad.as_uri(), "--dump-dom"))
    )

    assert main(["report", str(run.path), "--format", "html"]) == 0
    url = (run.path / "report.html").as_uri()
    dom = chromium(tmp_path, url, "--dump-dom")
    assert dom.returncode == 0 and console(dom) == []
    assert len(re.findall(r'<svg class="chart"', dom.stdout)) == 2 * len(CHARTS)
    assert len(re.findall(r"<polyline", dom.stdout)) > 20
    shot = tmp_path / "report.png"
    proc = chromium(
        tmp_path, url, "--screenshot=%s" % shot, "--window-size=1280,2600", "--hide-scrollbars"
    )
    assert proc.returncode == 0 and console(proc) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    kept = ROOT / "results" / "test-artifacts"
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, kept / "report.png")


def test_axes_go_logarithmic_when_values_spread_widely():
    from edgebench.harness.report.svg import Axis, axis

    wide = axis([0.002, 0.5], "ms")
    assert wide.log and [round(t, 6) for t in wide.ticks()] == [
        0.002,
        0.005,
        0.01,
        0.02,
        0.05,
        0.1,
        0.2,
        0.5,
    ]
    assert Axis(0.001, 50, log=True).ticks() == [0.001, 0.01, 0.1, 1.0, 10.0]
    narrow = axis([38.0, 47.0], "°C")
    assert not narrow.log and narrow.ticks() == [38, 40, 42, 44, 46]
    assert narrow.frac(narrow.lo) == 0 and narrow.frac(narrow.hi) == 1
