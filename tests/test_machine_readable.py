"""``--json`` on check, compare, history and decide (one document, the verdicts the text
shows), and JUnit test cases with their time and verdict text."""

import json
import xml.etree.ElementTree as ET

from synthetic_runs import failed, make_run, ok

from edgebench.harness.analysis.budgets import parse_budgets
from edgebench.harness.analysis.gate import gate, verdict_text
from edgebench.harness.cli import main

BUDGETS = "budgets: [{artifact: a.onnx, p50_ms: 20}, {artifact: c.onnx, p50_ms: 1}]"


def timed(record, seconds):
    return record.replace(
        started_at="2026-01-01T00:00:00.000+00:00",
        finished_at="2026-01-01T00:00:%06.3f+00:00" % seconds,
    )


def gated_run(tmp_path):
    records = [timed(ok("a.onnx", p50_ms=10), 2.5), timed(ok("c.onnx", p50_ms=5), 1.25)]
    store = make_run(tmp_path / "res", records + [failed("b.tflite")])
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    return store, budgets


def test_check_json_holds_the_verdicts_of_the_table(tmp_path, capsys):
    store, budgets = gated_run(tmp_path)
    assert main(["check", str(store.path), "--budgets", str(budgets), "--json"]) == 1
    out = capsys.readouterr().out
    doc = json.loads(out)  # one document, no table around it
    expected = gate(store, parse_budgets(BUDGETS, "b"))
    assert doc["run_id"] == store.run_id and doc["verdict"] == "fail"
    assert doc["counts"] == {"pass": 3, "fail": 2, "skip": 0}
    assert [(v["device"], v["artifact"], v["check"], v["verdict"]) for v in doc["verdicts"]] == [
        (v.device, v.artifact, v.check, v.verdict) for v in expected
    ]
    over = next(v for v in doc["verdicts"] if v["artifact"] == "c.onnx" and v["check"] == "p50_ms")
    assert (
        over["verdict"] == "fail" and over["limit"] == "≤ 1 ms" and over["source"] == "budgets[1]"
    )
    assert over["text"].startswith("fail: measured 5") and "limit ≤ 1 ms" in over["text"]


def test_check_json_errors_stay_one_line_on_stderr(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing"), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1


def test_junit_cases_carry_time_and_the_verdict_text(tmp_path, capsys):
    store, budgets = gated_run(tmp_path)
    junit = tmp_path / "junit.xml"
    assert main(["check", str(store.path), "--budgets", str(budgets), "--junit", str(junit)]) == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["a.onnx: measured"].get("time") == "2.500"
    assert cases["c.onnx: p50_ms budgets[1]"].get("time") == "1.250"
    assert cases["b.tflite: measured"].get("time") == "0.000"  # no agent time: it never ran
    assert suite.get("time") == "3.750"
    texts = {name: case.find("system-out").text for name, case in cases.items()}
    for v in gate(store, parse_budgets(BUDGETS, "b")):
        assert texts["%s: %s" % (v.artifact, v.label)] == verdict_text(v)
    assert texts["a.onnx: p50_ms budgets[0]"].startswith("pass: measured 10")
    failure = cases["c.onnx: p50_ms budgets[1]"].find("failure")
    assert failure is not None and failure.text.startswith("fail: measured 5")


def test_compare_json(tmp_path, capsys):
    store = make_run(
        tmp_path,
        [
            ok("a.onnx", "pi4", p50_ms=20),
            ok("a.onnx", "jetson", p50_ms=5),
            failed("b.tflite", "jetson", "runtime-missing", "no tflite runtime"),
        ],
    )
    assert main(["compare", str(store.path), "--reference", "jetson", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["columns"] == ["jetson", "pi4"] and doc["reference"] == "jetson"
    rows = {r["label"]: r["cells"] for r in doc["rows"]}
    jetson, pi4 = rows["a.onnx"]
    assert 0.2 < pi4["speedup"] < 0.3 and "speedup" not in jetson  # 5 ms / 20 ms
    assert rows["b.tflite"][0]["reason"] == "runtime-missing"
    assert rows["b.tflite"][1]["status"] == "not-measured"
    assert doc["failures"] == ["jetson / b.tflite: error: runtime-missing — no tflite runtime"]


def test_history_json_marks_the_same_steps_as_the_table(tmp_path, capsys):
    root = tmp_path / "results"
    for day, p50 in ((1, 10.0), (2, 10.2), (3, 12.0)):
        make_run(root, [ok("a.onnx", p50_ms=p50)], created_at="2026-01-0%dT00:00:00+00:00" % day)
    assert main(["history", "--root", str(root), "--threshold", "0.1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [line] = doc["series"]
    assert line["artifact"] == "a.onnx" and "Raspberry Pi 4" in line["machine"]
    assert [p["marker"] for p in line["points"]] == ["", "", "▲ slower"]
    assert line["points"][0]["step"] is None and 1.15 < line["points"][2]["step"] < 1.2
    assert main(["history", "--root", str(root), "--device", "nano", "--json"]) == 2
    assert capsys.readouterr().out == ""


def test_decide_json_names_the_choice_and_the_reasons(tmp_path, capsys):
    records = [
        ok("net.onnx", p50_ms=20, top1=0.80),
        ok("net.int8.onnx", p50_ms=8, top1=0.79, variant="int8", parent="net.onnx"),
    ]
    store = make_run(tmp_path / "res", records)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets: [{p50_ms: 16}]")
    assert main(["decide", str(store.path), "--budgets", str(budgets), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["manifest"] == str(store.path / "manifest.json") and doc["signature"] is None
    [choice] = doc["choices"]
    assert choice["chosen"] == "net.int8.onnx" and set(choice["pareto"]) == {
        "net.onnx",
        "net.int8.onnx",
    }
    by_name = {v["artifact"]: v for v in choice["variants"]}
    parent, int8 = by_name["net.onnx"], by_name["net.int8.onnx"]
    assert parent["decision"] == "rejected" and parent["why"].startswith("p50_ms 20")
    assert int8["decision"] == "chosen" and int8["pareto"] and int8["stable"] is True
