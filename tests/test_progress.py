"""The live display of a run: per-job lines under an overall line, plain text for names."""

import io

from rich.console import Console
from test_report import failed_record, ok_record

from edgebench.harness.run.progress import Display, overall


def test_the_overall_line_counts_jobs_and_estimates_the_time_left():
    assert overall(0, 4, 0.0) == "overall: 0/4 jobs done"
    assert overall(1, 4, 10.0) == "overall: 1/4 jobs done, about 0:30 left"
    assert overall(4, 4, 3725.0) == "overall: 4/4 jobs done in 1:02:05"


def feed(display):
    for artifact in ("digits.onnx", "digits.int8.tflite"):
        display.event("local", artifact, "queued", None)
    display.event("local", "digits.int8.tflite", "start", None)
    display.event("local", "digits.int8.tflite", "done", ok_record(name="digits.int8.tflite"))
    display.event("local", "digits.onnx", "start", None)


def test_on_a_terminal_the_overall_line_heads_the_jobs_and_names_print_plain(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")  # rich renders a dumb terminal plainly
    console = Console(record=True, force_terminal=True, file=io.StringIO(), width=120)
    with Display(console=console) as display:
        feed(display)
    styled = console.export_text(styles=True)
    assert "overall: 0/2 jobs done" in styled
    assert "overall: 1/2 jobs done, about " in styled
    assert "local / digits.onnx: starting" in styled
    # the finished job's line, without the highlighter's colours on "8" or "12.320"
    assert "local / digits.int8.tflite: p50 12.320 ms\n" in styled


def test_off_a_terminal_each_finished_job_is_followed_by_the_count(capsys):
    with Display() as display:  # pytest's stderr is no terminal
        feed(display)
        display.event("local", "digits.onnx", "done", failed_record(device="local"))
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == [
        "local / digits.int8.tflite: starting",
        "local / digits.int8.tflite: p50 12.320 ms",
    ]
    assert lines[2].startswith("overall: 1/2 jobs done, about ") and lines[2].endswith(" left")
    assert lines[3:5] == [
        "local / digits.onnx: starting",
        "local / digits.onnx: error: model-invalid",
    ]
    assert lines[5].startswith("overall: 2/2 jobs done in ")


def test_quiet_says_nothing(capsys):
    with Display(quiet=True) as display:
        feed(display)
    assert capsys.readouterr().err == ""
