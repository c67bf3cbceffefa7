import csv
import io
import json

import pytest
from rich.console import Console

from edgebench.agent.record import Record, error_record
from edgebench.agent.stats import summarize
from edgebench.harness.formatting import fmt_mb, fmt_ms, fmt_pct
from edgebench.harness.report import markdown as report
from edgebench.harness.report.markdown import render, run_report
from edgebench.harness.store import RunMeta, RunStore
from edgebench.harness.summary import COLUMNS

SETTINGS = {
    "threads": None,
    "warmup_iterations": 10,
    "warmup_seconds": 0.5,
    "min_iterations": 50,
    "min_seconds": 2.0,
    "max_seconds": 60.0,
    "max_iterations": 100000,
    "memory_interval_ms": 50.0,
}
FINGERPRINT = {
    "hostname": "raspberrypi",
    "arch": "aarch64",
    "board_model": "Raspberry Pi 4 Model B",
    "kernel": "6.1.0-rpi7",
    "os": "Debian GNU/Linux 12",
    "python": "3.11.2",
    "numpy": "1.26.4",
    "runtimes": {"onnxruntime": "1.17.1", "tflite_runtime": "2.14.0"},
    "cpu_count": 4,
    "cpu_model": "Cortex-A72",
    "governor": "ondemand",
    "freqs_mhz": [1800, 1800, 1800, 600],
    "temps_c_before": {"cpu-thermal": 45.26},
    "temps_c_after": {"cpu-thermal": 51.0},
    "loadavg": [0.12, 0.3, 0.25],
    "mem_available_mb": 3456.4,
}


def ok_record(
    name="mobilenet.onnx",
    device="pi4",
    samples=None,
    started="2026-01-01T00:00:01",
    fingerprint=FINGERPRINT,
) -> Record:
    samples = samples or [12_300_000 + 10_000 * (i % 5) for i in range(40)]
    return Record(
        status="ok",
        device=device,
        artifact={"name": name, "sha256": "ab" * 32, "size_bytes": 14_200_000, "format": "onnx"},
        runtime={
            "name": "onnxruntime",
            "version": "1.17.1",
            "threads": 4,
            "providers_active": ["CPUExecutionProvider"],
        },
        settings=SETTINGS,
        timing={"load_ms": 123.456, "first_ms": 45.678},
        samples_ns=samples,
        stats=summarize(samples),
        memory={"rss_after_import_mb": 50.0, "rss_after_load_mb": 80.0, "peak_rss_mb": 91.234},
        accuracy={"top1": 0.7612, "top5": 0.93, "n": 1000},
        fingerprint=fingerprint,
        started_at=started,
    )


def failed_record(device="pi4") -> Record:
    return error_record(
        device,
        {"name": "broken.tflite", "size_bytes": 1_000_000},
        "model-invalid",
        "op CUSTOM is | not supported",
        started_at="2026-01-01T00:00:00",
    )


def unstable_record() -> Record:
    samples = [1_000_000] * 10 + [9_000_000] * 10
    return ok_record(
        name="jittery.onnx",
        samples=samples,
        started="2026-01-01T00:00:02",
        fingerprint=dict(FINGERPRINT, temps_c_after={"cpu-thermal": 60.5}),
    )


def table_lines(text):
    return [line for line in text.splitlines() if line.startswith("|")]


def test_formatting():
    assert [fmt_ms(v) for v in (0.0523, 1.234, 12.34, 123.4, None)] == [
        "0.052",
        "1.23",
        "12.3",
        "123",
        "",
    ]
    assert fmt_mb(14.2) == "14.20" and fmt_mb(None) == ""
    assert fmt_pct(0.7612) == "76.1%" and fmt_pct(None) == ""


def test_markdown_ok_record():
    text = run_report(RunMeta("20260101-000000-ab12"), [ok_record()])
    assert text.startswith("# edgebench run 20260101-000000-ab12\n")
    assert "## pi4" in text
    for fact in (
        "**Hostname:** raspberrypi",
        "**Board:** Raspberry Pi 4 Model B",
        "**Architecture:** aarch64",
        "**Kernel:** 6.1.0-rpi7",
        "**Python:** 3.11.2",
        "**numpy:** 1.26.4",
        "onnxruntime 1.17.1, tflite_runtime 2.14.0",
        "**CPU count:** 4",
        "**Governor:** ondemand",
        "**Frequencies (MHz):** 1800 ×3, 600",
        "cpu-thermal 45.3 → 51.0",
        "**Load average:** 0.12 0.30 0.25",
        "**Available memory (MB):** 3456",
    ):
        assert fact in text
    header, _, row = table_lines(text)
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Artifact",
        "Runtime",
        "Size (MB)",
        "p50 (ms)",
        "p90 (ms)",
        "p99 (ms)",
        "Throughput (inf/s)",
        "Load (ms)",
        "First (ms)",
        "Peak RSS (MB)",
        "Top-1",
        "Stable",
    ]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == [
        "mobilenet.onnx",
        "onnxruntime 1.17.1 (CPU)",
        "14.20",
        "12.3",
        "12.3",
        "12.3",
        "81.2",
        "123",
        "45.7",
        "91.23",
        "76.1%",
        "yes",
    ]
    assert (
        "How measured: warm-up 10 iterations / 0.5 s; then at least 50 iterations and "
        "2.0 s (at most 60.0 s or 100000 iterations) per artifact; threads: runtime default"
    ) in text


def test_markdown_error_record_shows_reason_not_zeros():
    text = run_report(RunMeta("r"), [failed_record()])
    (row,) = table_lines(text)[2:]
    assert "error: model-invalid — op CUSTOM is \\| not supported" in row  # pipe escaped
    assert len(row.split(" | ")) == 12  # the escaped pipe does not add a column
    assert "0.000" not in text and "| 0 " not in text and "0.0%" not in text
    assert "No fingerprint" in text


def test_markdown_unstable_footnote_and_temperatures_span_the_run():
    records = [unstable_record(), ok_record(), failed_record()]
    text = run_report(RunMeta("r"), records)
    rows = table_lines(text)[2:]
    # ordered by start time: the failure, the stable one, then the jittery one
    assert [r.split("|")[1].strip() for r in rows] == [
        "broken.tflite",
        "mobilenet.onnx",
        "jittery.onnx",
    ]
    assert rows[2].rstrip(" |").endswith("no [1]")
    reasons = "; ".join(records[0].stats["stability_reasons"])
    assert "- [1] jittery.onnx: " + reasons in text
    assert "coefficient of variation" in reasons
    assert "cpu-thermal 45.3 → 60.5" in text  # before the first, after the last


def test_markdown_devices_and_unfinished_jobs():
    meta = RunMeta(
        "r",
        status={
            "pi4": {"mobilenet.onnx": "ok", "big.onnx": "running"},
            "jetson": {"x.onnx": "pending"},
        },
    )
    text = run_report(meta, [ok_record(), ok_record(device="local", fingerprint={})])
    assert text.index("## pi4") < text.index("## jetson") < text.index("## local")
    assert "Not measured: big.onnx (running)" in text
    assert "Not measured: x.onnx (pending)" in text
    assert text.count("How measured") == 1  # identical settings are described once


def test_fingerprint_lists_every_runtime_the_device_loaded():
    onnx = ok_record(fingerprint=dict(FINGERPRINT, runtimes={"onnxruntime": "1.17.1"}))
    tflite = ok_record(
        name="m.tflite",
        started="2026-01-01T00:00:02",
        fingerprint=dict(FINGERPRINT, runtimes={"tflite_runtime": "2.14.0"}),
    )
    text = run_report(RunMeta("r"), [tflite, onnx])
    assert "- **Runtimes:** onnxruntime 1.17.1, tflite_runtime 2.14.0\n" in text


def test_sections_render_as_markdown():
    from edgebench.harness.report.sections import (
        TEXT,
        Charts,
        Column,
        Facts,
        Notes,
        Section,
        Table,
        markdown,
    )

    doc = [
        Section("Run", [], level=1),
        Section(
            "pi4",
            [
                Facts([("Board", "Pi 4")]),
                Table([Column("Name", TEXT), Column("p50")], [["a|b", "1.2"]]),
                Notes("Unstable:", ["[1] a: noisy"]),
                Notes("Gone.", emphasis=True),
                Charts([ok_record()]),
            ],
        ),
        Section("", [Notes("How measured: somehow.")]),
    ]
    assert markdown(doc) == (
        "# Run\n\n## pi4\n\n- **Board:** Pi 4\n\n| Name | p50 |\n|---|---:|\n| a\\|b | 1.2 |\n\n"
        "Unstable:\n\n- [1] a: noisy\n\n_Gone._\n\nHow measured: somehow.\n"
    )


def test_terminal_table_with_rich(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    report.terminal_table([ok_record(), failed_record(), unstable_record()])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "Device",
        "Artifact",
        "Runtime",
        "p50",
        "ms",
        "p90",
        "ms",
        "p99",
        "ms",
        "inf/s",
        "RSS",
        "MB",
        "Top-1",
        "Status",
    ]
    rows = {line.split()[1]: line.split() for line in lines if line.startswith("pi4 ")}
    assert rows["mobilenet.onnx"] == [
        "pi4",
        "mobilenet.onnx",
        "onnxruntime",
        "(CPU)",
        "12.3",
        "12.3",
        "12.3",
        "81.2",
        "91.23",
        "76.1%",
        "ok",
    ]
    assert rows["broken.tflite"] == ["pi4", "broken.tflite", "error"]
    assert rows["jittery.onnx"][-1] == "unstable"
    assert lines[-1] == "pi4/broken.tflite: error: model-invalid — op CUSTOM is | not supported"


def test_terminal_table_names_print_plain_and_figures_include_p90(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")  # a dumb terminal is 80 columns to rich
    console = Console(record=True, force_terminal=True, color_system="truecolor", width=200)
    report.terminal_table([ok_record(name="digits.int8.tflite")], console)
    header = console.export_text(clear=False).splitlines()[0]
    assert header.split()[3:6] == ["p50", "ms", "p90"]  # budgets hold p90: the table shows it
    styled = console.export_text(styles=True)
    assert "digits.int8.tflite" in styled  # one run of plain text: no highlighter spans
    assert "\x1b[" not in styled[styled.index("pi4") : styled.index("digits.int8.tflite") + 18]


def test_render(tmp_path):
    store = RunStore.create(tmp_path)
    store.write_record(ok_record())
    store.write_record(failed_record())
    md = render(store, "md")
    assert md.startswith("# edgebench run %s\n" % store.run_id)
    assert "error: model-invalid" in md
    text = render(store, "csv")
    assert text == (store.path / "summary.csv").read_text()
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["artifact"] for r in parsed] == ["broken.tflite", "mobilenet.onnx"]
    rows = json.loads(render(store, "json"))
    assert [list(r) for r in rows] == [COLUMNS, COLUMNS]
    assert rows[0]["p50_ms"] is None and rows[0]["reason"] == "model-invalid"
    assert rows[1]["top1"] == pytest.approx(0.7612)
    with pytest.raises(ValueError, match="unknown report format 'html'"):
        render(store, "html")
