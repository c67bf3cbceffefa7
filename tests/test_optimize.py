"""`edgebench optimize`: real recipes on the digits example and on tiny generated models."""

import hashlib
import json
import os
import pty
import select
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import EXAMPLES, ROOT, edgebench
from onnx import TensorProto, helper, numpy_helper
from yolo_like import write_yolo_like

from edgebench.harness.optimize.capture import captured
from edgebench.harness.optimize.variants import (
    BuildError,
    Options,
    build_variants,
    logged,
    outcome_line,
    parse_variant,
)

EVAL = EXAMPLES / "digits_eval.npz"


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    """Calibration images (ranges only, no labels): the first 120 held-out images."""
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    with np.load(EVAL) as data:
        np.savez(path, inputs=data["inputs"][:120])
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, calib):
    """The default ONNX variants of the digits example, built once for the module."""
    out = tmp_path_factory.mktemp("variants")
    parent, outcomes = build_variants(EXAMPLES / "digits.onnx", None, out, Options(calib=calib))
    return out, parent, {o.variant: o for o in outcomes}


def top1(path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with np.load(EVAL) as data:
        predictions = [np.argmax(session.run(None, {"input": x[None]})[0]) for x in data["inputs"]]
        return float(np.mean(np.array(predictions) == data["labels"]))


def test_int8_static_keeps_top1_within_a_point_at_a_third_of_the_size(built):
    out, parent, outcomes = built
    assert all(o.status == "built" for o in outcomes.values()), outcomes
    static = outcomes["int8-static"].path
    assert static == out / "digits.int8-static.onnx"
    assert static.stat().st_size <= 0.35 * parent["size_bytes"]
    assert abs(top1(static) - top1(EXAMPLES / "digits.onnx")) <= 0.01
    model = onnx.load(str(static))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    weight_scales = [
        numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("weight_scale")
    ]
    assert any(s.size > 1 for s in weight_scales)  # per-channel


def test_fp16_keeps_float32_io_and_halves_the_size(built):
    _, parent, outcomes = built
    session = ort.InferenceSession(str(outcomes["fp16"].path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    assert session.get_outputs()[0].type == "tensor(float)"
    assert outcomes["fp16"].manifest["size_bytes"] < 0.55 * parent["size_bytes"]
    dynamic = onnx.load(str(outcomes["int8-dynamic"].path))
    assert "DynamicQuantizeLinear" in {n.op_type for n in dynamic.graph.node}


def test_manifest_records_parent_recipe_hashes_and_sizes(built):
    out, parent, outcomes = built
    manifest = json.loads((out / "digits.prune-50+int8-static.json").read_text())
    assert manifest == outcomes["prune-50+int8-static"].manifest
    assert manifest["parent_sha256"] == parent["sha256"] == manifest["parent"]["sha256"]
    assert [s["step"] for s in manifest["recipe"]] == ["prune-50", "int8-static"]
    assert manifest["recipe"][1]["calib_method"] == "minmax"
    assert manifest["recipe"][1]["calibration"]["samples"] == 120
    path = out / "digits.prune-50+int8-static.onnx"
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["size_bytes"] == path.stat().st_size
    assert 0 < manifest["gzip_bytes"] < manifest["size_bytes"]
    assert manifest["parameters"] == parent["parameters"] == 38282
    assert manifest["sparsity"] >= 0.5  # pruned zeros stay zero when quantized
    assert set(manifest["tools"]) >= {"onnx", "onnxruntime", "numpy"}
    assert "compressed" in manifest["note"]


def test_every_variant_records_and_shows_what_its_recipe_changed(built):
    _, parent, outcomes = built
    static = outcomes["int8-static"].manifest["census"]
    assert static["changed"]["ops"]["QuantizeLinear"][0] == 0 < static["ops"]["QuantizeLinear"]
    assert static["changed"]["tensors"]["int8"] == [0, static["tensors"]["int8"]]
    assert static["changed"]["size_bytes"][1] == outcomes["int8-static"].manifest["size_bytes"]
    fp16 = outcomes["fp16"].manifest["census"]["changed"]["tensors"]
    assert fp16["float16"][0] == 0 and fp16["float32"][1] < fp16["float32"][0]
    prune = outcomes["prune-50"].manifest["census"]
    assert set(prune["changed"]) == {"zeros"}  # the same tensors, ops and size
    assert prune["changed"]["zeros"][1] >= 0.5 * 38282 * 0.9
    line = outcome_line(outcomes["int8-static"], parent)
    assert "\n" not in line and "changed: tensors" in line and "QuantizeLinear 0->" in line


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruning_reaches_the_target_sparsity(tmp_path, scope):
    _, outcomes = build_variants(
        EXAMPLES / "digits.onnx", ["prune-70"], tmp_path, Options(prune_scope=scope)
    )
    model = onnx.load(str(outcomes[0].path))
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer if len(t.dims) >= 2]
    zeros = [np.mean(w == 0) for w in weights]
    if scope == "layer":
        assert all(abs(z - 0.7) < 0.01 for z in zeros)
    else:
        assert len({round(z, 2) for z in zeros}) > 1  # thresholds are shared, not per layer
    assert abs(outcomes[0].manifest["sparsity"] - 0.7) < 0.001
    assert outcomes[0].path.stat().st_size == (EXAMPLES / "digits.onnx").stat().st_size


def test_a_second_build_is_a_cache_hit_and_a_new_recipe_is_not(tmp_path, calib):
    first = build_variants(
        EXAMPLES / "digits.onnx", ["int8-static"], tmp_path, Options(calib=calib)
    )[1][0]
    mtime = first.path.stat().st_mtime_ns
    again = build_variants(
        EXAMPLES / "digits.onnx", ["int8-static"], tmp_path, Options(calib=calib)
    )[1][0]
    assert (again.status, again.path.stat().st_mtime_ns) == ("cached", mtime)
    other = build_variants(
        EXAMPLES / "digits.onnx",
        ["int8-static"],
        tmp_path,
        Options(calib=calib, calib_method="entropy"),
    )[1][0]
    assert other.status == "built" and other.manifest["recipe"][0]["calib_method"] == "entropy"
    first.path.write_bytes(b"tampered")
    assert (
        build_variants(
            EXAMPLES / "digits.onnx", ["int8-static-entropy"], tmp_path, Options(calib=calib)
        )[1][0].status
        == "built"
    )


def test_nhwc_calibration_sets_are_transposed_for_an_nchw_model(tmp_path):
    with np.load(EVAL) as data:
        np.savez(tmp_path / "nhwc.npz", inputs=data["inputs"][:50].transpose(0, 2, 3, 1))
    [outcome] = build_variants(
        EXAMPLES / "digits.onnx",
        ["int8-static-percentile"],
        tmp_path,
        Options(calib=tmp_path / "nhwc.npz"),
    )[1]
    assert outcome.ok, outcome.message


@pytest.fixture(scope="module")
def weightless(tmp_path_factory):
    """Relu then Softmax: nothing to prune and nothing onnxruntime quantizes dynamically."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Softmax", ["r"], ["y"])],
        "weightless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("models") / "weightless.onnx"
    onnx.save(model, str(path))
    return path


def test_a_recipe_that_does_not_apply_fails_alone(tmp_path, weightless):
    _, outcomes = build_variants(
        weightless, ["prune-50", "int8-dynamic", "fp16"], tmp_path, Options()
    )
    prune, dynamic, fp16 = outcomes
    assert not prune.ok and "nothing to prune" in prune.message and "Relu" in prune.message
    assert not dynamic.ok and "quantized no operator" in dynamic.message
    assert fp16.status == "built" and fp16.path.is_file()
    assert not (tmp_path / "weightless.prune-50.onnx").exists()


def test_without_calibration_static_variants_fail_and_the_others_are_built(tmp_path):
    proc = edgebench(
        [
            "optimize",
            str(EXAMPLES / "digits.onnx"),
            "--out",
            str(tmp_path),
            "--variants",
            "int8-static,fp16,prune-30+int8-static",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 2 and all("needs a calibration set" in e for e in errors)
    assert errors[0].startswith("error: digits.int8-static.onnx: ")
    assert "built  digits.fp16.onnx" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.fp16.json", "digits.fp16.onnx"]


def test_a_corrupt_model_is_one_clear_error(tmp_path, truncated_onnx):
    proc = edgebench(["optimize", str(truncated_onnx), "--out", str(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("edgebench: error: %s: not a valid ONNX model" % truncated_onnx)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_variant_names_are_usage_errors():
    for text in ("int9", "prune-0", "prune-100", "fp16+", "int8-static-kl"):
        with pytest.raises(ValueError, match="unknown variant step"):
            parse_variant(text)
    assert [s.kind for s in parse_variant("prune-50+int8-static-entropy")] == [
        "prune",
        "int8-static",
    ]
    with pytest.raises(ValueError, match="calib-method must be one of"):
        Options(calib_method="kl")


def test_tflite_recipes_build_with_ai_edge_quantizer(tmp_path, calib):
    pytest.importorskip("ai_edge_quantizer")
    parent, outcomes = build_variants(
        EXAMPLES / "digits.tflite", None, tmp_path, Options(calib=calib)
    )
    assert [(o.variant, o.status) for o in outcomes] == [
        ("fp16", "built"),
        ("int8-dynamic", "built"),
        ("int8-static", "built"),
    ]
    for outcome in outcomes:
        assert outcome.path.suffix == ".tflite"
        assert outcome.manifest["size_bytes"] < 0.55 * parent["size_bytes"]
        assert "ai-edge-quantizer" in outcome.manifest["tools"]
    [prune] = build_variants(EXAMPLES / "digits.tflite", ["prune-50"], tmp_path, Options())[1]
    assert "ONNX models only" in prune.message


def test_a_missing_tool_names_the_extra_to_install(tmp_path):
    code = (
        "import sys; sys.modules['ai_edge_quantizer'] = None; "
        "from edgebench.harness.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "optimize",
            str(EXAMPLES / "digits.tflite"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "edgebench: error: TFLite variants need ai-edge-quantizer "
        "(missing ai_edge_quantizer): pip install "
        "'edgebench[optimize-tflite]'"
    )


# --- what reaches the terminal ---------------------------------------------------------------


def on_a_terminal(args, cwd):
    """The CLI with stderr on a pseudo-terminal (stdout piped): (exit code, stdout, what the
    terminal received)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgebench.harness"] + args,
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=slave,
        env=dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm", COLUMNS="120"),
    )
    os.close(slave)
    screen = b""
    while select.select([master], [], [], 300)[0]:  # a hung build ends the test
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    proc.kill()  # gone already unless it hung
    out = proc.stdout.read().decode()
    return proc.wait(), out, screen.decode(errors="replace")


def test_on_a_terminal_each_variant_shows_while_it_is_built(tmp_path, calib):
    code, out, screen = on_a_terminal(
        [
            "optimize",
            str(EXAMPLES / "digits.onnx"),
            "--variants",
            "fp16,int8-static",
            "--calib",
            str(calib),
            "--out",
            str(tmp_path),
        ],
        tmp_path,
    )
    assert code == 0, screen
    assert "digits.fp16.onnx: building" in screen
    assert "digits.int8-static.onnx: preprocessing" in screen
    assert "digits.int8-static.onnx: calibrating" in screen  # with batches done of 120
    assert "digits.int8-static.onnx: verifying" in screen
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["input", "digits.onnx"],
        ["built", "digits.fp16.onnx"],
        ["built", "digits.int8-static.onnx"],
    ]


def test_tools_output_goes_to_the_variant_log_not_the_terminal(tmp_path, calib):
    pytest.importorskip("ai_edge_quantizer")
    args = ["optimize", str(EXAMPLES / "digits.tflite"), "--variants", "int8-static"]
    code, out, screen = on_a_terminal(args + ["--calib", str(calib), "--out", "v"], tmp_path)
    assert code == 0, screen
    assert "digits.int8-static.tflite: calibrating" in screen
    assert "Running Calibration" not in screen and "INFO:" not in screen  # tqdm, LiteRT
    log = (tmp_path / "v" / "digits.int8-static.log").read_text()
    assert "Running Calibration" in log  # ai-edge-quantizer's tqdm bar
    proc = edgebench(args + ["--calib", str(calib), "--out", "w"], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""  # off a terminal too
    assert "built  digits.int8-static.tflite" in proc.stdout


def test_captured_output_of_python_native_code_and_children_lands_in_the_log(tmp_path, capfd):
    log = tmp_path / "tool.log"
    with captured(log):
        print("from python")
        os.write(2, b"from native code\n")
        subprocess.run(["sh", "-c", "echo from a child >&2"], check=True)
    print("after")
    out, err = capfd.readouterr()
    assert (out, err) == ("after\n", "")
    assert log.read_text().splitlines() == ["from python", "from native code", "from a child"]
    with captured(log):
        pass
    assert not log.exists()  # nothing said, no log


def test_a_failure_names_the_log_of_what_the_tools_said(tmp_path, capfd):
    log = tmp_path / "m.int8-static.log"
    with pytest.raises(BuildError) as caught:
        with logged(log):
            os.write(2, b"calibrator: range collapsed\n")
            raise BuildError("onnxruntime quantized no operator")
    assert str(caught.value) == ("onnxruntime quantized no operator (the tools' output: %s)" % log)
    assert log.read_text() == "calibrator: range collapsed\n"
    assert capfd.readouterr().err == ""
    with pytest.raises(BuildError, match=r"^silent$"):
        with logged(tmp_path / "quiet.log"):
            raise BuildError("silent")


# --- dynamic shapes and calibration checks --------------------------------------------------


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    """The YOLO-style model with dynamic [batch,3,height,width] input and 64x64 images."""
    folder = tmp_path_factory.mktemp("yolo")
    images = np.random.default_rng(1).uniform(0, 1, (8, 3, 64, 64)).astype(np.float32)
    np.savez(folder / "calib.npz", inputs=images)
    return write_yolo_like(folder / "yolo.onnx"), folder / "calib.npz"


def test_the_yolo_style_model_defeats_symbolic_shape_inference(tmp_path, yolo, monkeypatch):
    from onnxruntime.quantization.shape_inference import quant_pre_process

    monkeypatch.chdir(tmp_path)  # where onnxruntime dumps sym_shape_infer_temp.onnx

    with pytest.raises(Exception, match="Incomplete symbolic shape inference"):
        with captured(tmp_path / "log"):
            quant_pre_process(str(yolo[0]), str(tmp_path / "pre.onnx"))


def test_int8_static_on_a_dynamic_model_builds_at_the_given_shape_and_stays_dynamic(tmp_path, yolo):
    model, calib = yolo
    args = ["optimize", str(model), "--calib", str(calib), "--out", str(tmp_path)]
    proc = edgebench(args + ["--variants", "int8-static,int8-dynamic"], cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: yolo.int8-static.onnx: input images:batch,3,height,width has dynamic "
        "dimensions; int8-static calibrates at fixed ones: give them with --input-shape "
        "images:1,3,HEIGHT,WIDTH (input_shapes: in a plan)"
    )
    assert "built  yolo.int8-dynamic.onnx" in proc.stdout  # shape inference fell back
    # onnxruntime's dump of the failed inference stays out of the user's folder
    assert not list(tmp_path.glob("sym_shape_infer_temp*")) + list(tmp_path.glob("*.data"))
    proc = edgebench(
        args + ["--variants", "int8-static", "--input-shape", "images:1,3,64,64"], cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "built  yolo.int8-static.onnx" in proc.stdout and "QuantizeLinear 0->" in proc.stdout
    manifest = json.loads((tmp_path / "yolo.int8-static.json").read_text())
    assert manifest["recipe"][0]["input_shapes"] == {"images": [1, 3, 64, 64]}
    assert manifest["inputs"] == {"images": ["batch", 3, "height", "width"]}
    fp32 = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(
        str(tmp_path / "yolo.int8-static.onnx"), providers=["CPUExecutionProvider"]
    )
    assert "QuantizeLinear" in {
        n.op_type for n in onnx.load(str(tmp_path / "yolo.int8-static.onnx")).graph.node
    }
    for shape in ((1, 3, 64, 64), (2, 3, 96, 64)):  # the given shape, and another
        x = np.random.default_rng(2).uniform(0, 1, shape).astype(np.float32)
        [want], [got] = fp32.run(None, {"images": x}), int8.run(None, {"images": x})
        assert got.shape == want.shape == (shape[0], shape[2] * shape[3] // 16, 6)
        assert np.abs(got - want).max() < 0.1 * np.abs(want).max()


@pytest.mark.parametrize(
    "samples, shape, problem",
    [
        ((4, 1, 64, 64), "images:1,3,64,64", "does not fit the model: "),
        ((4, 3, 64), "images:1,3,64,64", "rank 3 with the sample axis"),
        ((4, 3, 64, 64), "images:1,3,32,32", "does not fit the model: "),
        (
            (4, 3, 64, 64),
            "input:1,3,64,64",
            "the model has no input 'input' (its inputs: 'images')",
        ),
        ((4, 3, 64, 64), "images:1,4,64,64", "does not fit the model's input images:batch,3,"),
    ],
)
def test_calibration_sets_and_shapes_that_do_not_fit_fail_before_any_build(
    tmp_path, yolo, samples, shape, problem
):
    np.savez(tmp_path / "calib.npz", inputs=np.zeros(samples, dtype=np.float32))
    proc = edgebench(
        ["optimize", str(yolo[0]), "--calib", "calib.npz", "--input-shape", shape, "--out", "v"],
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("edgebench: error: ") and problem in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "v").exists() or not any((tmp_path / "v").glob("*.onnx"))


def test_integer_inputs_refuse_float_calibration_samples(tmp_path):
    np.savez(tmp_path / "calib.npz", inputs=np.zeros((4, 8, 8, 1), dtype=np.float32))
    with pytest.raises(BuildError, match="holds float32 samples but input .* takes int8"):
        build_variants(
            EXAMPLES / "digits.int8.tflite",
            ["fp16"],
            tmp_path,
            Options(calib=tmp_path / "calib.npz"),
        )


def test_a_tflite_recipe_that_changes_nothing_is_an_error_not_a_variant(tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_quantizer")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    from tflite_writer import TFLiteWriter, add_options, schema

    writer = TFLiteWriter()
    x = writer.add_tensor("x", [1, 10], np.float32)
    bias = writer.add_tensor("bias", data=np.linspace(-1, 1, 10, dtype=np.float32)[None])
    total, y = (
        writer.add_tensor("sum", [1, 10], np.float32),
        writer.add_tensor("y", [1, 10], np.float32),
    )
    writer.add_operator("ADD", [x, bias], [total], add_options())
    writer.add_operator("SOFTMAX", [total], [y], schema.SoftmaxOptionsT())
    writer.set_io([x], [y], signature_key=None)
    writer.save(tmp_path / "nosig.tflite")
    from ai_edge_litert.interpreter import Interpreter

    assert Interpreter(model_path=str(tmp_path / "nosig.tflite")).get_signature_list() == {}
    proc = edgebench(
        ["optimize", "nosig.tflite", "--variants", "fp16,int8-dynamic", "--out", "v"], cwd=tmp_path
    )
    assert proc.returncode == 1
    fp16, dynamic = proc.stderr.strip().splitlines()
    assert fp16.startswith("error: nosig.fp16.tflite: fp16 changed nothing: ai-edge-quantizer ")
    assert dynamic.startswith("error: nosig.int8-dynamic.tflite: int8-dynamic changed nothing: ")
    for line in (fp16, dynamic):
        assert "ops: ADD, SOFTMAX; constant tensors: float32 1" in line
        assert "no signature" in line and "build variants of its ONNX form" in line
    assert "built" not in proc.stdout
    assert sorted(p.suffix for p in (tmp_path / "v").iterdir()) in ([], [".log"], [".log", ".log"])
