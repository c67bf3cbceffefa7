"""``edgebench report --format html``: one offline file, checked in headless Chromium."""

import html
import itertools
import json
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
MODEL = "mobilenet_v3_large_224_imagenet_classifier_exported_from_keras.onnx"
VARIANTS = (
    "fp32",
    "int8-dynamic",
    "int8-static",
    "fp16",
    "prune-50",
    "prune-75",
    "prune-50+int8-static",
    "prune-75+int8-static",
    "prune-50+fp16",
    "int8-static-per-channel-calibrated-on-500-images",
)
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


@pytest.fixture
def plan_run(tmp_path):
    return make_run(tmp_path / "plan", plan_records())


def plan_records() -> list:
    """A plan's run: ten variants of one long-named model on two boards, memory near 101 MB
    (the axis once read "101, 102, 102, 102, 103"), both runtimes in the fingerprints."""
    records = []
    for d, device in enumerate(("pi4", "jetson-orin-nano-devkit-lab-3")):
        for i, variant in enumerate(VARIANTS):
            name = MODEL if variant == "fp32" else MODEL.replace(".onnx", ".%s.onnx" % variant)
            runtime = "tflite_runtime" if i % 2 else "onnxruntime"
            fingerprint = dict(FINGERPRINT, runtimes={runtime: "2.14.0" if i % 2 else "1.17.1"})
            record = ok(
                name,
                device,
                p50_ms=(40 - 3 * i + (i % 3)) / (1 + 3 * d),
                top1=0.80 - 0.004 * i - 0.01 * (i % 4),
                size_bytes=16_000_000 // (1 + i % 4),
                variant=variant,
                parent=None if variant == "fp32" else MODEL,
                fingerprint=fingerprint,
                started_at="2026-01-01T00:%02d:%02d" % (d, i),
                seed=i,
            )
            series = [[0.05 * t, 101.2 + 0.1 * ((t + i) % 17)] for t in range(40)]
            records.append(record.replace(memory=dict(record.memory, series=series)))
    return records


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


# Measures the laid-out page from inside a copy of the report (the report itself runs no script)
PROBE = """<script>
const box = (e) => e.getBoundingClientRect();
const clipped = [];
for (const svg of document.querySelectorAll("svg.chart")) {
  const frame = box(svg);
  for (const t of svg.querySelectorAll("text")) {
    const b = box(t);
    if (b.left < frame.left - 1 || b.right > frame.right + 1 || b.top < frame.top - 1
        || b.bottom > frame.bottom + 1) clipped.push(t.textContent);
  }
}
const overlaps = [];
for (const svg of document.querySelectorAll("svg[data-chart=pareto]")) {
  const labels = [...svg.querySelectorAll("text.tag")].map(box);
  labels.forEach((a, i) => labels.slice(i + 1).forEach((b) => {
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
      overlaps.push([a.left, a.top]);
  }));
}
document.body.dataset.probe = JSON.stringify({
  inner: window.innerWidth, page: document.documentElement.scrollWidth,
  height: document.documentElement.scrollHeight, clipped, overlaps,
  text: document.body.innerText});
</script>"""


def probe(tmp_path: Path, page: str, width: int) -> dict:
    """The page's layout at ``width`` px, measured in headless Chromium."""
    copy = tmp_path / "probe.html"
    copy.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace(
            "</body>", PROBE + "</body>"
        )
    )
    dom = chromium(tmp_path, copy.as_uri(), "--dump-dom", "--window-size=%d,900" % width)
    assert dom.returncode == 0 and console(dom) == [], dom.stderr[-2000:]
    return json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dom.stdout).group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_plan_report_reads_at_1400_and_800_px(plan_run, tmp_path):
    assert main(["report", str(plan_run.path), "--format", "html"]) == 0
    page = (plan_run.path / "report.html").read_text()
    assert "<h2>Trade-offs</h2>" in page and page.count("<h3>") == 2  # one per board
    assert "onnxruntime 1.17.1, tflite_runtime 2.14.0" in page  # every runtime, not the first
    names = {str(r.artifact["name"]) for r in plan_run.records()}
    kept = ROOT / "results" / "test-artifacts"
    kept.mkdir(parents=True, exist_ok=True)
    for width in (1400, 800):
        seen = probe(tmp_path, page, width)
        assert seen["inner"] == width
        assert seen["page"] <= width, "the page scrolls sideways at %d px" % width
        assert seen["clipped"] == [] and seen["overlaps"] == []
        assert all(name in seen["text"] for name in names)
        assert all(variant in seen["text"] for variant in VARIANTS)
        shot = tmp_path / ("report-%d.png" % width)
        proc = chromium(
            tmp_path,
            (plan_run.path / "report.html").as_uri(),
            "--screenshot=%s" % shot,
            "--window-size=%d,%d" % (width, seen["height"]),
            "--hide-scrollbars",
        )
        assert proc.returncode == 0 and console(proc) == []
        shutil.copy(shot, kept / shot.name)


def test_every_block_of_the_report_sections_is_in_the_page(plan_run):
    from edgebench.harness.report.markdown import run_sections
    from edgebench.harness.report.sections import Facts, Notes, Table

    page = html.unescape(render_html(plan_run).replace("<wbr>", ""))
    sections = run_sections(plan_run.meta(), plan_run.records())
    assert any(s.title == "Trade-offs" for s in sections)
    for section in sections:
        assert section.title in page
        for block in section.blocks:
            if isinstance(block, Table):
                texts = [c.header for c in block.columns] + [c for r in block.rows for c in r]
            elif isinstance(block, Facts):
                texts = ["%s:</strong> %s" % item for item in block.items]
            elif isinstance(block, Notes):
                texts = [block.text] + block.bullets
            else:
                texts = []
            missing = [t for t in texts if t and ">%s<" % t not in page]
            assert missing == [], section.title


def test_tick_labels_are_distinct_with_the_decimals_their_step_needs():
    from edgebench.harness.report.svg import axis

    memory = axis([101.2, 102.8], "MB").tick_labels()  # was "101, 101, 102, 102, 103"
    assert memory == ["%.1f" % (101.2 + 0.2 * i) for i in range(9)]
    assert axis([0.0, 100.0]).tick_labels() == ["0", "20", "40", "60", "80", "100"]
    assert axis([0.0, 0.3]).tick_labels() == ["0.00", "0.05", "0.10", "0.15", "0.20", "0.25"] + [
        "0.30"
    ]


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


def test_labels_sit_at_their_points_without_overlap():
    from edgebench.harness.report.svg import Axis, Chart, text_px

    chart = Chart("pareto", "t", Axis(0, 10), Axis(0, 10))
    points = [(5, 5), (5.2, 5.1), (5.1, 4.8), (4.9, 5.2), (9.8, 9.8), (0.2, 0.2)]
    for i, (x, y) in enumerate(points):
        chart.dot(chart.px(x), chart.py(y), "#000")
        chart.label(chart.px(x), chart.py(y), "variant-%d" % i)
    found = re.findall(r'<text class="tag" x="([\d.]+)" y="([\d.]+)">variant-(\d)<', chart.render())
    boxes = []
    for x, y, i in found:
        x0, y1 = float(x), float(y) + 3
        box = (x0, y1 - 12, x0 + text_px("variant-0"), y1)
        px, py = chart.px(points[int(i)][0]), chart.py(points[int(i)][1])
        # the nearest edge of its label is close to the dot
        assert abs(min(max(px, box[0]), box[2]) - px) + abs(min(max(py, box[1]), box[3]) - py) < 60
        assert chart.left <= box[0] and box[2] <= chart.width and 0 <= box[1]
        boxes.append(box)
    assert sorted(int(i) for _, _, i in found) == list(range(len(points)))
    for a, b in itertools.combinations(boxes, 2):
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


def test_long_names_lose_their_shared_prefix_and_keep_a_full_tooltip():
    from edgebench.harness.report.svg import Axis, Chart, tails

    names = [MODEL, MODEL.replace(".onnx", ".int8-static.onnx")]
    assert tails(names, 40) == ["…keras.onnx", "…keras.int8-static.onnx"]
    assert tails(["a.onnx", "b.onnx"], 40) == ["a.onnx", "b.onnx"]  # short: kept whole
    assert tails(["x" * 50], 10) == ["xxxxx…xxxx"]
    svg = Chart("box", "t", Axis(1, 2), categories=names).render()
    assert ">…keras.onnx<title>%s</title></text>" % MODEL in svg
