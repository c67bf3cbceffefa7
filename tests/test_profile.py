"""Placement and per-operator profiles (agent/profile.py, agent/placement.py,
agent/runtimes/*_profile.py, tflite_carve.py) and where they show (harness/report/ops.py):
the real agent with real onnxruntime and LiteRT, the real CLI, a real sshd."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from conftest import EXAMPLES, FAST, FAST_SETTINGS, agent_run, edgebench
from sshd import Sshd, skip_reason

from edgebench.agent.faults import Fault
from edgebench.agent.placement import require_full, summarize
from edgebench.agent.protocol import JobError, parse_job, parse_settings
from edgebench.agent.runtimes.tflite_carve import Model
from edgebench.harness.store import open_run

needs_sshd = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
SIDE = 64  # input side of the conv nets below: a few milliseconds per inference


def conv_onnx(path: Path) -> Path:
    """Conv 3->32, two Conv 32->32 (ReLU after each), global average pool, Gemm to 10."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes = [], []
    x = "input"
    for i, cin in enumerate((3, 32, 32)):
        w = rng.normal(0, (2 / (9 * cin)) ** 0.5, (32, cin, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(w, "w%d" % i)]
        inits += [numpy_helper.from_array(np.zeros(32, np.float32), "b%d" % i)]
        nodes += [
            helper.make_node("Conv", [x, "w%d" % i, "b%d" % i], ["c%d" % i], pads=[1] * 4),
            helper.make_node("Relu", ["c%d" % i], ["r%d" % i]),
        ]
        x = "r%d" % i
    inits += [numpy_helper.from_array(rng.normal(0, 0.1, (32, 10)).astype(np.float32), "fc")]
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def conv_tflite(path: Path) -> Path:
    """The same network as :func:`conv_onnx`, NHWC, written with examples/tflite_writer."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import tflite_writer as tw
    finally:
        sys.path.remove(str(EXAMPLES))
    rng = np.random.default_rng(0)
    w = tw.TFLiteWriter()
    x = inp = w.add_tensor("input", [1, SIDE, SIDE, 3], np.float32)
    for i, cin in enumerate((3, 32, 32)):
        kernel = rng.normal(0, (2 / (9 * cin)) ** 0.5, (32, 3, 3, cin)).astype(np.float32)
        k = w.add_tensor("conv%d/w" % i, data=kernel)
        b = w.add_tensor("conv%d/b" % i, data=np.zeros(32, np.float32))
        y = w.add_tensor("conv%d/out" % i, [1, SIDE, SIDE, 32], np.float32)
        w.add_operator("CONV_2D", [x, k, b], [y], tw.conv2d_options("SAME", 1, "RELU"))
        x = y
    axes = w.add_tensor("mean/axes", data=np.array([1, 2], np.int32))
    pooled = w.add_tensor("mean/out", [1, 32], np.float32)
    w.add_operator("MEAN", [x, axes], [pooled], tw.reducer_options(keep_dims=False))
    fc = w.add_tensor("fc/w", data=rng.normal(0, 0.1, (10, 32)).astype(np.float32))
    bias = w.add_tensor("fc/b", data=np.zeros(10, np.float32))
    logits = w.add_tensor("logits", [1, 10], np.float32)
    w.add_operator("FULLY_CONNECTED", [pooled, fc, bias], [logits], tw.fully_connected_options())
    w.set_io([inp], [logits])
    w.save(path)
    return path


@pytest.fixture(scope="module")
def convnets(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    where = tmp_path_factory.mktemp("convnets")
    return {
        "onnx": conv_onnx(where / "convnet.onnx"),
        "tflite": conv_tflite(where / "convnet.tflite"),
    }


def record_of(path: Path, tmp_path: Path, **settings: Any) -> Dict[str, Any]:
    """The real agent's record for ``path``; anything it writes goes below ``tmp_path``."""
    doc = agent_run(
        {"artifact": {"path": str(path)}, "settings": dict(FAST_SETTINGS, **settings)},
        env={"XDG_CACHE_HOME": str(tmp_path)},
    )
    record: Dict[str, Any] = doc["record"]
    assert record["status"] == "ok", record["message"]
    return record


def check_adds_up(record: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The profile's rows are the placement's nodes, their shares make 1, and the ratio it
    states is its per-op total over the record's p50."""
    profile, placement = record["profile"], record["runtime"]["placement"]
    rows = profile["rows"]
    assert len(rows) == placement["nodes"] > 0
    assert len({r["name"] for r in rows}) == len(rows)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert all(r["p50_ms"] > 0 and r["mean_ms"] > 0 and r["calls"] == 1 for r in rows)
    assert profile["total_ms"] > 0
    assert profile["p50_ms"] == record["stats"]["p50_ms"]
    assert profile["ratio_to_p50"] == pytest.approx(profile["total_ms"] / profile["p50_ms"])
    assert sum(e["share"] for e in placement["by"]) == pytest.approx(1.0)
    return rows


@pytest.mark.parametrize("model", ["digits.onnx", "convnet.onnx"])
def test_onnx_profile_adds_up_and_leaves_the_timed_window_alone(
    model: str, convnets: Dict[str, Path], tmp_path: Path
) -> None:
    path = EXAMPLES / model if model.startswith("digits") else convnets["onnx"]
    fixed = {"min_iterations": 40, "max_iterations": 40, "min_seconds": 0}
    plain = record_of(path, tmp_path, **fixed)
    profiled = record_of(path, tmp_path, profile_ops=True, **fixed)
    # the profile is a pass of its own: the timed window keeps its samples
    assert plain["stats"]["n"] == profiled["stats"]["n"] == 40
    assert "profile" not in plain
    assert plain["runtime"]["placement"]["text"] == profiled["runtime"]["placement"]["text"]
    rows = check_adds_up(profiled)
    assert {r["provider"] for r in rows} == {"CPUExecutionProvider"}
    assert "Conv" in {r["op_type"] for r in rows}
    assert profiled["profile"]["estimate"] is False and profiled["profile"]["runs"] >= 20
    placement = profiled["runtime"]["placement"]
    n = placement["nodes"]
    assert placement["text"] == "CPU %d of %d" % (n, n) and placement["partial"] is False
    # the profiler's JSON was written here (ORT's telemetry cache lives here too) and deleted
    assert [p for p in tmp_path.rglob("*") if "profile" in p.name] == []


@pytest.mark.parametrize("model", ["digits.tflite", "digits.int8.tflite", "convnet.tflite"])
def test_tflite_estimate_from_carved_ops(
    model: str, convnets: Dict[str, Path], tmp_path: Path
) -> None:
    path = EXAMPLES / model if model.startswith("digits") else convnets["tflite"]
    record = record_of(path, tmp_path, profile_ops=True)
    rows = check_adds_up(record)
    profile = record["profile"]
    assert profile["estimate"] is True and "estimate" in profile["method"]
    assert len(rows) == len(Model(path.read_bytes()).operators)
    assert profile["total_ms"] == pytest.approx(sum(r["p50_ms"] * r["calls"] for r in rows))
    # no delegate configured: LiteRT's default CPU delegate takes every op
    assert record["runtime"]["placement"]["text"] == "XNNPACK %d of %d" % (len(rows), len(rows))
    assert record["runtime"]["placement"]["accelerator"] is None


def test_every_record_has_a_placement_without_a_profile(tmp_path: Path) -> None:
    for model in ("digits.onnx", "digits.tflite"):
        record = record_of(EXAMPLES / model, tmp_path)
        placement = record["runtime"]["placement"]
        assert placement["nodes"] == sum(e["nodes"] for e in placement["by"]) == 6
        assert "share" not in placement["by"][0]  # no time shares without a profile
        assert "profile" not in record


def test_carved_ops_compute_what_they_compute_inside_the_model(
    convnets: Dict[str, Path],
) -> None:
    """Each op carved out alone, fed its inputs' values from a run of the whole model,
    gives the whole model's value of its output."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    for path in (EXAMPLES / "digits.tflite", EXAMPLES / "digits.int8.tflite", convnets["tflite"]):
        full = Interpreter(
            model_path=str(path),
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        full.allocate_tensors()
        spec = full.get_input_details()[0]
        rng = np.random.default_rng(1)
        if spec["dtype"] == np.float32:
            x = rng.random(spec["shape"], dtype=np.float32)
        else:
            x = rng.integers(-128, 127, spec["shape"]).astype(spec["dtype"])
        full.set_tensor(spec["index"], x)
        full.invoke()
        model = Model(path.read_bytes())
        for op in range(len(model.operators)):
            alone = Interpreter(model_content=model.carve(op))
            alone.allocate_tensors()
            for tensor, d in zip(model.carve_inputs(op), alone.get_input_details()):
                alone.set_tensor(d["index"], full.get_tensor(tensor))
            alone.invoke()
            (out,) = model.op_outputs[op]
            np.testing.assert_allclose(
                alone.get_tensor(alone.get_output_details()[0]["index"]),
                full.get_tensor(out),
                rtol=1e-5,
                atol=1e-6,
            )


def test_placement_text_flag_and_full_demand() -> None:
    trt = summarize(
        ["TensorrtExecutionProvider"] * 61 + ["CPUExecutionProvider"] * 17,
        "TensorrtExecutionProvider",
        "test",
    )
    assert trt["text"] == "TensorRT 61 / CPU 17 of 78"
    assert trt["partial"] is True and trt["accelerator_nodes"] == 61
    tpu = summarize(
        ["Edge TPU", "CPU", "CPU", "CPU"],
        "Edge TPU",
        "test",
        [4.0, 1, 1, 1],
        {"Edge TPU": "custom op"},
    )
    assert tpu["text"] == "Edge TPU 1 custom op / CPU 3 of 4"
    assert [e["share"] for e in tpu["by"]] == [pytest.approx(4 / 7), pytest.approx(3 / 7)]
    cpu = summarize(["CPUExecutionProvider"] * 78, None, "test")
    assert cpu["text"] == "CPU 78 of 78" and cpu["partial"] is False

    job = {"protocol": 1, "artifact": {"path": "m.onnx"}}
    full = parse_job(dict(job, require_accelerator="full"))
    with pytest.raises(Fault) as info:
        require_full(trt, full)
    assert info.value.reason == "accelerator-not-used"
    assert "61 of the 78" in info.value.message
    require_full(
        summarize(["TensorrtExecutionProvider"] * 3, "TensorrtExecutionProvider", "t"), full
    )
    with pytest.raises(Fault, match="placement could not be found: no profiler"):
        require_full({"error": "no profiler"}, full)  # an unknown placement is no success
    require_full(trt, parse_job(dict(job, require_accelerator=True)))  # only "full" demands all
    for bad in ("partial", 1, "yes"):
        with pytest.raises(JobError, match="true or false, or 'full'"):
            parse_job(dict(job, require_accelerator=bad))


def test_profile_ops_setting_is_a_boolean() -> None:
    assert parse_settings({"profile_ops": True}).profile_ops is True
    assert parse_settings({}).profile_ops is False
    for bad in (1, "yes", None):
        with pytest.raises(JobError, match="settings.profile_ops: expected true or false"):
            parse_settings({"profile_ops": bad})


def test_report_and_compare_show_slowest_ops_and_the_int8_diff(tmp_path: Path) -> None:
    """A plan (fp32 and int8-dynamic) on two boards, profiled: report.md shows the
    placement, the slowest ops and the op types side by side (int8-dynamic's
    DynamicQuantizeLinear/ConvInteger against fp32, one board against the other), the HTML
    a stacked bar per variant, and compare the op types that changed."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "models: [%s]\nvariants: [int8-dynamic]\ndevices: [local, twin]\n"
        "settings: {profile_ops: true}\n" % (EXAMPLES / "digits.onnx")
    )
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n  local:\n    kind: local\n  twin:\n    kind: local\n")
    out = tmp_path / "results"
    proc = edgebench(
        ["--devices-file", str(devices), "run", str(plan), "--quiet", "--out", str(out)] + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run = open_run(out)
    assert all(r.profile.get("rows") for r in run.records())
    report = (run.path / "report.md").read_text()
    where = report[report.index("## Where the time goes") :]
    assert "| local | digits.onnx | CPU " in where
    assert "local / digits.int8-dynamic.onnx — slowest ops (profile)" in where
    assert "the timed p50" in where
    sides = where[where.index("### Op types side by side") :]
    assert "local: digits.int8-dynamic.onnx vs digits.onnx" in sides
    assert "digits.onnx: twin vs local" in sides
    variant = sides[: sides.index("twin: digits.int8-dynamic.onnx vs digits.onnx")]
    assert "| DynamicQuantizeLinear | — |" in variant and "| new |" in variant
    assert edgebench(["report", str(run.path), "--format", "html"], cwd=tmp_path).returncode == 0
    html = (run.path / "report.html").read_text()
    assert html.count('data-chart="ops"') == 2  # one per device
    assert "DynamicQuantizeLinear" in html

    compared = edgebench(["compare", str(run.path)], cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "twin / digits.int8-dynamic.onnx: op types vs local:" in compared.stdout
    doc = json.loads(edgebench(["compare", str(run.path), "--json"], cwd=tmp_path).stdout)
    assert {d["column"] for d in doc["op_diff"]} == {"twin"}
    assert all(d["op_types"] for d in doc["op_diff"])


@needs_sshd
def test_profile_over_ssh(server: Sshd, tmp_path: Path, home: Path) -> None:
    workdir = tmp_path / "wd"
    devices = tmp_path / "devices.yaml"
    devices.write_text(
        "devices:\n" + server.device_yaml("board", python=sys.executable, workdir=str(workdir))
    )
    args = ["--devices-file", str(devices), "run", "--devices", "board", "--profile-ops"]
    for model in ("digits.onnx", "digits.tflite"):
        args += ["--model", str(EXAMPLES / model)]
    out = tmp_path / "results"
    proc = edgebench(args + ["--quiet", "--out", str(out)] + FAST, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = open_run(out).records()
    assert len(records) == 2
    for record in records:
        check_adds_up(record.to_dict())
    leftovers = [p for p in workdir.rglob("*") if "profile" in p.name]
    assert leftovers == []


def test_carving_keeps_the_edgetpu_custom_op(tmp_path: Path) -> None:
    """An Edge TPU model's custom op is found per operator and survives carving (the
    delegate that runs it is not installed here)."""
    from test_boards import edgetpu_model

    from edgebench.agent.board import boards

    model = Model(edgetpu_model(tmp_path / "m_edgetpu.tflite").read_bytes())
    assert model.op_custom == [boards.EDGETPU_CUSTOM_OP]
    carved = tmp_path / "op0.tflite"
    carved.write_bytes(model.carve(0))
    assert boards.tflite_custom_ops(str(carved)) == [boards.EDGETPU_CUSTOM_OP]
    assert Model(carved.read_bytes()).carve_inputs(0) == model.carve_inputs(0) == [0]


def test_devices_yaml_takes_full_placement() -> None:
    from edgebench.harness.config import ConfigError, parse_inventory

    base = "devices:\n  jetson:\n    host: j\n    onnx: {providers: [TensorrtExecutionProvider]}\n"
    inventory = parse_inventory(base + "    require_accelerator: full\n", "devices.yaml")
    assert inventory.devices[0].require_accelerator == "full"
    with pytest.raises(ConfigError, match="require_accelerator: expected true, false or full"):
        parse_inventory(base + "    require_accelerator: partly\n", "devices.yaml")
