"""One variant family and one Pareto set (p50 against top-1, within one model and format)
for the trade-off table, the HTML chart, ``decide`` and budgets."""

import html
import json
import re

from synthetic_runs import make_run, ok

from edgebench.harness.analysis.families import families, family_key, pareto_set
from edgebench.harness.cli import main
from edgebench.harness.report.html import render_html
from edgebench.harness.report.markdown import run_report

ONNX = "mobilenet_v2.onnx"
TFLITE = "mobilenet_v2.tflite"


def variant(name, parent, variant_name, p50_ms, top1, size_mb):
    return ok(
        name,
        p50_ms=p50_ms,
        top1=top1,
        size_bytes=int(size_mb * 1e6),
        variant=variant_name,
        parent=None if variant_name == "fp32" else parent,
    )


def mobilenet_plan():
    """The run that once disagreed: int8-dynamic (80 ms, 57 %) is the smallest, so decide's
    (p50, top-1, size) kept it while the trade-off table's (p50, top-1) did not.  The
    TFLite family is faster than every ONNX variant: across formats it would empty the
    ONNX Pareto set."""
    return [
        variant(ONNX, ONNX, "fp32", 100, 0.72, 14),
        variant("mobilenet_v2.fp16.onnx", ONNX, "fp16", 95, 0.72, 7),
        variant("mobilenet_v2.int8-static.onnx", ONNX, "int8-static", 40, 0.70, 4),
        variant("mobilenet_v2.int8-dynamic.onnx", ONNX, "int8-dynamic", 80, 0.57, 3.5),
        variant(TFLITE, TFLITE, "fp32", 30, 0.71, 14),
        variant("mobilenet_v2.int8.tflite", TFLITE, "int8", 20, 0.71, 4),
    ]


EXPECTED = {
    ONNX: {"mobilenet_v2.fp16.onnx", "mobilenet_v2.int8-static.onnx"},
    TFLITE: {"mobilenet_v2.int8.tflite"},
}


def test_families_are_one_model_in_one_format_and_size_is_no_criterion():
    records = mobilenet_plan()
    found = families(records)
    assert [len(m) for m in found.values()] == [4, 2]
    assert family_key(records[3])[2] == "onnx" and family_key(records[5])[2] == "tflite"
    fronts = [{r.artifact["name"] for r in pareto_set(m)} for m in found.values()]
    assert fronts == [EXPECTED[ONNX], EXPECTED[TFLITE]]


def test_decide_report_md_and_report_html_name_the_same_pareto_set(tmp_path, capsys):
    store = make_run(tmp_path / "res", mobilenet_plan())
    assert main(["decide", str(store.path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    decided = {c["model"]: set(c["pareto"]) for c in doc["choices"]}
    assert decided == EXPECTED  # int8-dynamic is no longer kept by its size

    report = run_report(store.meta(), store.records())
    lines = re.findall(r"^Pareto set \([^)]*\): (.*)\.$", report, re.M)
    names = {"fp32": "", "fp16": ".fp16", "int8-static": ".int8-static", "int8": ".int8"}
    in_md = [
        {"mobilenet_v2%s.%s" % (names[v], fmt) for v in line.split(", ")}
        for line, fmt in zip(lines, ("onnx", "tflite"))
    ]
    assert in_md == [EXPECTED[ONNX], EXPECTED[TFLITE]]

    page = render_html(store)
    chart = page[page.index('data-chart="pareto"') :]
    chart = chart[: chart.index("</svg>")]
    tips = [html.unescape(t) for t in re.findall(r"<title>([^<]*)</title>", chart)]
    in_html = {t.split(":")[0] for t in tips if "(Pareto)" in t}
    assert in_html == EXPECTED[ONNX] | EXPECTED[TFLITE]


def test_unstable_measurements_are_marked_in_the_table_the_pareto_set_and_the_chart(tmp_path):
    records = mobilenet_plan()
    shaky = records[2]
    records[2] = shaky.replace(
        stats=dict(shaky.stats, stable=False, stability_reasons=["cv 0.4 > 0.1"])
    )
    store = make_run(tmp_path / "res", records)
    report = run_report(store.meta(), store.records())
    assert "| int8-static | 4.00 | 40.0 / " in report and " (unstable) |" in report
    assert "): fp16, int8-static (unstable)." in report
    page = render_html(store)
    chart = page[page.index('data-chart="pareto"') :]
    chart = html.unescape(chart[: chart.index("</svg>")])
    assert "mobilenet_v2.int8-static.onnx (unstable)" in chart
    assert "mobilenet_v2.fp16.onnx (unstable)" not in chart
