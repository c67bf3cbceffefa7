"""The trade-off table: figures against fp32, the Pareto set, failures and the pruning note."""

from edgebench.agent.record import Record, error_record
from edgebench.agent.stats import summarize
from edgebench.harness.report import tradeoff
from edgebench.harness.store import RunMeta

PARENT = "ab" * 32


def variant(name, p50_ms, top1, size_mb=1.0, device="pi4", variant_of="fp32"):
    samples = [int(p50_ms * 1e6)] * 30
    return Record(
        status="ok",
        device=device,
        artifact={
            "name": name,
            "sha256": PARENT if variant_of == "fp32" else name,
            "size_bytes": int(size_mb * 1e6),
            "format": "onnx",
            "variant": variant_of,
            "parent_sha256": None if variant_of == "fp32" else PARENT,
        },
        samples_ns=samples,
        stats=summarize(samples),
        memory={"peak_rss_mb": 90.0},
        accuracy={"top1": top1} if top1 is not None else {},
    )


def run(records, builds=()):
    meta = RunMeta(
        "r",
        request={"artifacts": [{"name": r.artifact["name"]} for r in records]},
        plan={"builds": list(builds)},
    )
    return meta, records


RECORDS = [
    variant("m.onnx", 10.0, 0.90, 14.0),
    variant("m.fp16.onnx", 9.0, 0.90, 7.0, variant_of="fp16"),
    variant("m.int8-static.onnx", 4.0, 0.885, 3.5, variant_of="int8-static"),
    variant("m.int8-dynamic.onnx", 20.0, 0.88, 3.5, variant_of="int8-dynamic"),
]


def test_rows_compare_each_variant_with_fp32_and_name_the_pareto_set():
    [section] = tradeoff.sections(*run(RECORDS))
    assert section.title == "pi4 — m.onnx"
    rows = {row[0]: row for row in section.rows}
    assert [row[0] for row in section.rows] == ["fp32", "fp16", "int8-static", "int8-dynamic"]
    assert rows["fp32"][6:] == ["—", "1.00×"]
    assert rows["int8-static"][1:3] == ["3.50", "4.00 / 4.00"]
    assert rows["int8-static"][6:] == ["-1.5 pt", "2.50×"]
    assert rows["int8-dynamic"][7] == "0.50×"  # slower is shown as it is
    assert section.pareto.endswith(": fp16, int8-static.")  # fp32 is beaten by fp16


def test_without_accuracy_there_is_no_pareto_set_and_size_is_no_criterion():
    records = [
        variant("m.onnx", 10.0, None, 14.0),
        variant("m.int8-static.onnx", 4.0, None, 3.5, variant_of="int8-static"),
        variant("m.fp16.onnx", 12.0, None, 7.0, variant_of="fp16"),
    ]
    [section] = tradeoff.sections(*run(records))
    assert section.pareto.endswith(": none, no top-1 was measured (run with an eval set).")
    assert section.rows[1][6] == ""  # no Δ top-1 without accuracy


def test_a_failed_variant_shows_its_reason_and_no_figures():
    broken = error_record(
        "pi4",
        {
            "name": "m.fp16.onnx",
            "size_bytes": 7_000_000,
            "variant": "fp16",
            "parent_sha256": PARENT,
        },
        "model-invalid",
        "no kernel for Conv(fp16)",
    )
    [section] = tradeoff.sections(*run([RECORDS[0], broken]))
    row = section.rows[1]
    assert row[1] == "7.00" and "model-invalid" in row[2] and row[3:] == [""] * 5
    assert section.pareto.endswith(": fp32.")


def test_groups_by_device_and_pruning_is_explained():
    pruned = variant("m.prune-50.onnx", 10.1, 0.89, 14.0, variant_of="prune-50")
    other = variant("m.onnx", 30.0, 0.90, 14.0, device="pi5")
    builds = [
        {"file": "m.onnx", "gzip_bytes": 13e6, "sparsity": 0.0},
        {"file": "m.prune-50.onnx", "gzip_bytes": 7e6, "sparsity": 0.5},
    ]
    sections = tradeoff.sections(*run([RECORDS[0], pruned, other], builds))
    assert [s.title for s in sections] == ["pi4 — m.onnx", "pi5 — m.onnx"]
    assert sections[0].notes[0] == (
        "prune-50: 50.0% of weights are zero; gzip 7.00 MB against 13.00 MB for fp32."
    )
    assert "not faster" in sections[0].notes[1] and sections[1].notes == []


def test_markdown_and_text_render_the_same_rows_and_nothing_without_variants():
    meta, records = run(RECORDS)
    md = tradeoff.markdown(meta, records)
    assert md.startswith("## Trade-offs") and "| int8-static | 3.50 | 4.00 / 4.00 |" in md
    assert md.count("\n|") == 2 + len(RECORDS)
    text = tradeoff.text(meta, records)
    assert text.startswith("Trade-offs: pi4 — m.onnx") and "Pareto set" in text
    plain = [Record.from_dict(dict(r.to_dict(), artifact={"name": "x.onnx"})) for r in records]
    assert tradeoff.markdown(meta, plain) == "" and tradeoff.text(meta, plain) == ""
