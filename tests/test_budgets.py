import pytest
from synthetic_runs import failed, ok, sha

from edgebench.harness.analysis.budgets import (
    FAIL,
    PASS,
    SKIP,
    BudgetError,
    judge,
    load_budgets,
    parse_budgets,
)
from edgebench.harness.analysis.families import find_parent
from edgebench.harness.store import RunMeta

FILE = """
budgets:
  - device: pi*
    artifact: "*.tflite"
    p50_ms: 12
    top1: 0.9
  - device: coral
    p99_ms: 5.5
    peak_rss_mb: 100
    size_mb: 8
    regression: 0.1
  - top1_vs_parent: 0.98
    regression: 0.02
"""


def test_parse_and_match_names_tags_and_globs():
    budgets = parse_budgets(FILE, "b.yaml")
    first, second, third = budgets.entries
    assert first.where == "budgets[0]" and first.limits == (("p50_ms", 12.0), ("top1", 0.9))
    assert first.matches("pi4", [], "m.int8.tflite")
    assert not first.matches("pi4", [], "m.onnx")
    assert second.matches("board7", ["coral", "tpu"], "m.onnx")  # by tag
    assert third.device == "*" and third.artifact == "*"
    assert budgets.regression("board7", ["coral"], "m.onnx") == 0.02  # the strictest
    assert budgets.regression("pi4", [], "x") == 0.02
    assert (
        parse_budgets("budgets: [{device: a, p50_ms: 1}]", "f").regression("a", [], "x") == 0.05
    )  # the default
    assert second.to_dict() == {
        "device": "coral",
        "artifact": "*",
        "p99_ms": 5.5,
        "peak_rss_mb": 100.0,
        "size_mb": 8.0,
        "regression": 0.1,
    }


def test_a_plan_with_other_sections_is_fine(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("models: [a.onnx]\noptimize: {int8: true}\n" + FILE)
    assert len(load_budgets(str(plan), RunMeta("r")).entries) == 3


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "budgets: [{device: pi, p50ms: 3}]",
            "b.yaml: budgets[0].p50ms: unknown key 'p50ms' (did you mean 'p50_ms'?)",
        ),
        (
            "budgets:\n  - p50_ms: 3\n  - p90_ms: fast",
            "b.yaml: budgets[1].p90_ms: expected a positive number, got 'fast'",
        ),
        (
            "budgets: [{top1: 95}]",
            "b.yaml: budgets[0].top1: expected a fraction up to 1 (0.98 means 98%), got 95",
        ),
        (
            "budgets: [{regression: 1.05}]",
            "b.yaml: budgets[0].regression: expected a fraction up to 1 (0.05 means 5% slower)",
        ),
        ("budgets: [{device: pi}]", "b.yaml: budgets[0]: no limits"),
        (
            "budgets: [{device: 3, p50_ms: 1}]",
            "b.yaml: budgets[0].device: expected a non-empty string",
        ),
        ("devices: {}", "b.yaml: expected a mapping with a 'budgets:' list"),
        ("budgets: []", "b.yaml: budgets: expected a non-empty list"),
        ("budgets: [{p50_ms: 1, p50_ms: 2}]", "b.yaml: line 1: invalid YAML (duplicate key"),
        ("budgets: [", "b.yaml: line 1: invalid YAML"),
    ],
)
def test_errors_name_the_file_and_key(text, message):
    with pytest.raises(BudgetError) as err:
        parse_budgets(text, "b.yaml")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_without_a_file_the_budgets_of_the_runs_plan_apply():
    plan = {"file": "plan.yaml", "budgets": [{"artifact": "*", "top1_vs_parent": 0.98}]}
    budgets = load_budgets(None, RunMeta("r", plan=plan))
    assert budgets.source == "plan.yaml" and budgets.entries[0].limits == (
        ("top1_vs_parent", 0.98),
    )
    assert load_budgets(None, RunMeta("r", plan={"file": "p.yaml"})) is None
    assert load_budgets(None, RunMeta("r")) is None
    with pytest.raises(BudgetError, match=r"^p.yaml: budgets\[0\].top1: expected"):
        load_budgets(None, RunMeta("r", plan={"file": "p.yaml", "budgets": [{"top1": "high"}]}))


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(BudgetError, match="nope.yaml: cannot read the budgets"):
        load_budgets(str(tmp_path / "nope.yaml"), RunMeta("r"))


def verdicts(record, text, same_device=()):
    entries = parse_budgets(text, "b.yaml").entries
    return {v.check: v for v in judge(record, entries, list(same_device) + [record])}


def test_maxima_minima_and_what_was_measured():
    record = ok("m.onnx", p50_ms=10.0, top1=0.91, size_bytes=4_000_000, rss_mb=80)
    out = verdicts(
        record,
        "budgets: [{p50_ms: 10.5, p99_ms: 10.1, size_mb: 4.0, "
        "peak_rss_mb: 79.99, top1: 0.9, top5: 0.995}]",
    )
    assert out["measured"].verdict == PASS
    assert out["p50_ms"].verdict == PASS and out["p50_ms"].limit == "≤ 10.5 ms"
    assert out["p99_ms"].verdict == FAIL
    assert out["size_mb"].verdict == PASS  # 4.0 MB is within 4.0
    assert out["peak_rss_mb"].verdict == FAIL
    assert (out["peak_rss_mb"].measured, out["peak_rss_mb"].limit) == ("80 MB", "≤ 79.99 MB")
    assert out["top1"].verdict == PASS and out["top5"].verdict == FAIL
    assert out["top5"].source == "budgets[0]"


def test_unmeasured_figures_and_failed_records_fail():
    no_eval = verdicts(ok("m.onnx", top1=None), "budgets: [{top1: 0.5}]")
    assert no_eval["top1"].verdict == FAIL and no_eval["top1"].detail == "not measured"
    (only,) = judge(failed("m.onnx"), parse_budgets("budgets: [{p50_ms: 1}]", "b").entries, [])
    assert only.verdict == FAIL and only.check == "measured"
    assert only.detail == "error: timeout — no result in 600 s"


def test_relative_accuracy_against_the_parent():
    parent = ok("net.onnx", top1=0.80)
    good = ok("net.int8.onnx", top1=0.79, variant="int8", parent="net.onnx")
    bad = ok("net.pruned.onnx", top1=0.70, variant="pruned", parent="net.onnx")
    rule = "budgets: [{top1_vs_parent: 0.98}]"
    assert verdicts(good, rule, [parent])["top1_vs_parent"].verdict == PASS
    worse = verdicts(bad, rule, [parent])["top1_vs_parent"]
    assert worse.verdict == FAIL and worse.measured == "87.5%"
    assert worse.detail == "70.0% vs 80.0% of net.onnx"
    assert verdicts(parent, rule)["top1_vs_parent"].verdict == SKIP  # it is the reference
    original = ok("net.onnx", variant="fp32", parent="net.onnx")  # as a plan records it
    assert verdicts(original, rule)["top1_vs_parent"].verdict == SKIP
    assert verdicts(good, rule)["top1_vs_parent"].detail == "parent not measured in this run"
    gone = failed("net.onnx")
    assert (
        "parent net.onnx failed: timeout" in verdicts(good, rule, [gone])["top1_vs_parent"].detail
    )


def test_parent_by_sha_else_the_fp32_variant_of_the_same_stem():
    fp32 = ok("net.fp32.tflite", variant="fp32")
    int8 = ok("net.int8.tflite", variant="int8", parent="unknown.onnx")
    other = ok("other.fp32.tflite", variant="fp32")
    assert find_parent(int8, [other, fp32, int8]) is fp32
    exact = ok("net.onnx", digest=sha("unknown.onnx"))
    assert find_parent(int8, [fp32, exact, int8]) is exact
