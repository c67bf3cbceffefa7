"""``edgebench compare``: artifacts by devices (or runs) with speed-ups."""

import pytest
from synthetic_runs import failed, make_run, ok, sha

from edgebench.harness.cli import main
from edgebench.harness.config import ConfigError
from edgebench.harness.report.compare import side_by_side


@pytest.fixture
def boards(tmp_path):
    return make_run(
        tmp_path,
        [
            ok("a.onnx", "pi4", p50_ms=20),
            ok("b.tflite", "pi4", p50_ms=10),
            ok("a.onnx", "jetson", p50_ms=5),
            failed("b.tflite", "jetson", "runtime-missing", "no tflite runtime"),
            ok("a.onnx", "coral", p50_ms=40, digest="f" * 64),  # a different file, same slot
        ],
    )


def test_devices_side_by_side_with_speedups(boards):
    sbs = side_by_side([boards], reference="pi4")
    assert sbs.columns == ["coral", "jetson", "pi4"] and sbs.reference == 2
    headers, rows = sbs.table()
    assert headers == [
        "Artifact",
        "coral p50 ms",
        "coral p90 ms",
        "jetson p50 ms",
        "jetson p90 ms",
        "pi4 p50 ms",
        "pi4 p90 ms",
        "coral speed-up vs pi4",
        "jetson speed-up vs pi4",
    ]
    table = {row[0]: row for row in rows}
    a, b = table["a.onnx"], table["b.tflite"]
    assert a[3].startswith("5.0") and a[5].startswith("20.")
    assert a[7] == "0.50×"  # coral measured a different file of that name: compared, noted
    assert float(a[8].rstrip("×")) == pytest.approx(4, rel=0.05)
    assert b[1:3] == ["not measured", ""] and b[3:5] == ["error: runtime-missing", ""]
    assert b[7:] == ["", ""]
    assert sbs.failures() == ["jetson / b.tflite: error: runtime-missing — no tflite runtime"]
    assert sbs.notes() == ["coral / a.onnx: model changed %.8s→ffffffff" % sha("a.onnx")]


def test_runs_side_by_side_and_a_device_in_several_runs(tmp_path):
    first = make_run(tmp_path, [ok("a.onnx", "pi4", p50_ms=10)])
    second = make_run(tmp_path, [ok("a.onnx", "pi4", p50_ms=12)])
    by_run = side_by_side([first, second], by="run", reference=first.run_id)
    short = [r.run_id.rsplit("-", 1)[1] for r in (first, second)]
    assert by_run.columns == short
    ((label, cells),) = by_run.rows
    assert label == "pi4 / a.onnx" and by_run.speedup(cells, 1) == pytest.approx(10 / 12, rel=0.02)
    two, one = ok("a.onnx", "pi4", p50_ms=10), ok("a.onnx", "renamed", p50_ms=5)
    base = make_run(tmp_path, [two.replace(settings={"threads": 2})])
    third = make_run(tmp_path, [one.replace(settings={"threads": 1})])  # renamed, same board
    three = side_by_side([base, third], by="run", reference=base.run_id)
    ((label, cells),) = three.rows
    assert three.speedup(cells, 1) is None and three.table()[1][0][-1] == "not comparable"
    assert three.notes() == [
        "%s / pi4 / a.onnx: not comparable: threads 2 → 1" % third.run_id.rsplit("-", 1)[1]
    ]
    assert three.speedup(cells, 1, ["threads"]) == pytest.approx(2, rel=0.05)
    by_device = side_by_side([first, second], reference="pi4@" + short[1])
    assert by_device.columns == ["pi4@" + s for s in short] and by_device.reference == 1


def test_unknown_reference(boards):
    with pytest.raises(
        ConfigError, match="--reference 'nano' is not one of the columns: coral, jetson, pi4"
    ):
        side_by_side([boards], reference="nano")


def test_cli(boards, capsys):
    assert main(["compare", str(boards.path), "--reference", "jetson"]) == 0
    out = capsys.readouterr().out
    assert "pi4 speed-up vs jetson" in out and "error: runtime-missing" in out
    assert main(["compare", str(boards.path), "--reference", "nano"]) == 2
