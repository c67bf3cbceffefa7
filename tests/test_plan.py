"""Plans: parsing with one-line errors, and `edgebench run PLAN.yaml` end to end."""

import json
import shutil

import numpy as np
import pytest
from conftest import EXAMPLES, FAST, edgebench
from yolo_like import write_yolo_like

from edgebench.harness.config import ConfigError
from edgebench.harness.optimize.variants import Watch
from edgebench.harness.plan import build, load_plan, parse_plan


def test_the_example_plan_resolves_paths_against_its_folder():
    plan = load_plan(str(EXAMPLES / "plan.yaml"))
    [model] = plan.models
    assert model.path == EXAMPLES / "digits.onnx"
    assert model.variants == (
        "fp16",
        "int8-dynamic",
        "int8-static",
        "prune-50",
        "prune-50+int8-static",
    )
    assert plan.eval_path == plan.options.calib == EXAMPLES / "digits_eval.npz"
    assert plan.devices == "local" and plan.settings["threads"] == 1
    assert plan.describe()["budgets"][0]["top1_vs_parent"] == 0.98


@pytest.fixture
def folder(tmp_path):
    for name in ("digits.onnx", "digits.tflite", "digits_eval.npz"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path


def parse(folder, text):
    return parse_plan(text, folder / "plan.yaml")


def test_models_take_their_own_variants_or_the_shared_ones(folder):
    plan = parse(
        folder,
        "models: [digits.onnx, {path: digits.tflite, variants: [fp16]}]\n"
        "variants: [' prune-20 + int8-static ', fp16, fp16]\n"
        "devices: pi5\nbudgets: {anything: [1, 2]}\n",
    )
    assert [m.variants for m in plan.models] == [("prune-20+int8-static", "fp16"), ("fp16",)]
    assert plan.budgets == {"anything": [1, 2]} and plan.devices == "pi5"
    default = parse(folder, "models: [digits.tflite]\n").models[0]
    assert default.variants == ("fp16", "int8-dynamic", "int8-static")


@pytest.mark.parametrize(
    "text, where, problem",
    [
        ("", "", "the plan is empty"),
        ("modles: [digits.onnx]", "modles", "did you mean 'models'"),
        ("variants: [fp16]", "", "missing required key 'models'"),
        ("models: [missing.onnx]", "models[0]", "file not found"),
        ("models: [digits_eval.npz]", "models[0]", "unknown model format '.npz'"),
        ("models: [{path: digits.onnx, variant: [fp16]}]", "models[0].variant", "unknown key"),
        ("models: [digits.onnx]\nvariants: [fp16, int9]", "variants[1]", "unknown variant step"),
        ("models: [digits.onnx, digits.onnx]", "models[1]", "a second model named"),
        ("models: [digits.onnx]\ncalibration: calib.npz", "calibration", "file not found"),
        ("models: [digits.onnx]\neval: .", "eval", "a directory, not a file"),
        (
            "models: [digits.onnx]\noptimize: {calib_method: kl}",
            "optimize.calib_method",
            "expected one of minmax, entropy, percentile",
        ),
        (
            "models: [digits.onnx]\nsettings: {threads: two}",
            "settings.threads",
            "expected an integer",
        ),
        ("models: [digits.onnx]\nsettings: {min_secs: 1}", "settings.min_secs", "unknown key"),
        (
            "models: [digits.onnx]\nsettings: {min_seconds: .nan}",
            "settings.min_seconds",
            "expected a finite number, got nan",
        ),
        (
            "models: [digits.onnx]\nsettings: {threads: -2}",
            "settings.threads",
            "must be at least 1, got -2",
        ),
        (
            "models: [digits.onnx]\nsettings: {min_iterations: 100, max_iterations: 10}",
            "",
            "settings.max_iterations (10) must be at least settings.min_iterations (100)",
        ),
        (
            "models: [digits.onnx]\ninput_shapes: {input: [1, 0]}",
            "input_shapes.input[1]",
            "expected an integer from 1 up",
        ),
        ("models: [digits.onnx]\ndevices: [local, 3]", "devices[1]", "non-empty string"),
        ("models: [digits.onnx]\nmodels: [digits.tflite]", "", "duplicate key 'models'"),
    ],
)
def test_plan_errors_name_the_file_and_the_key(folder, text, where, problem):
    with pytest.raises(ConfigError) as info:
        parse(folder, text)
    message = str(info.value)
    assert message.startswith(str(folder / "plan.yaml") + ": ")
    assert ("%s: " % where if where else "") in message and problem in message
    assert "\n" not in message


def test_a_plan_takes_every_setting_the_command_line_takes(folder):
    settings = {
        "threads": 2,
        "min_seconds": 0.5,
        "min_iterations": 10,
        "max_seconds": 9,
        "max_iterations": 100,
        "warmup_seconds": 0,
        "warmup_iterations": 3,
    }
    text = "models: [digits.onnx]\nsettings: %s\n" % json.dumps(settings)
    assert parse(folder, text).settings == settings


def test_a_plans_input_shapes_are_the_dims_its_dynamic_models_are_built_at(tmp_path):
    write_yolo_like(tmp_path / "yolo.onnx")
    np.savez(tmp_path / "calib.npz", inputs=np.ones((4, 3, 32, 32), dtype=np.float32))
    text = "models: [yolo.onnx]\nvariants: [int8-static]\ncalibration: calib.npz\n"
    without, given = (
        build(parse_plan(text + shapes, tmp_path / "plan.yaml"), tmp_path / "v", print, Watch())[1]
        for shapes in ("", "input_shapes: {images: [1, 3, 32, 32]}\n")
    )
    assert without[-1]["status"] == "error"
    assert "--input-shape images:1,3,HEIGHT,WIDTH" in without[-1]["message"]
    assert given[-1]["status"] == "built"
    assert given[-1]["recipe"][0]["input_shapes"] == {"images": [1, 3, 32, 32]}


def test_bad_plan_settings_are_exit_2_before_anything_is_built(folder):
    plan = write_plan(folder, "variants: [fp16]\n")
    plan.write_text(plan.read_text().replace("threads: 1", "threads: 1, min_seconds: .nan"))
    proc = edgebench(["run", str(plan), "--out", "res"], cwd=folder)
    assert proc.returncode == 2 and "settings.min_seconds: expected a finite" in proc.stderr
    assert not (folder / "res").exists()


def write_plan(folder, body):
    (folder / "plan.yaml").write_text(
        "models: [digits.onnx]\neval: digits_eval.npz\nsettings: {threads: 1}\n" + body
    )
    return folder / "plan.yaml"


def test_run_builds_the_variants_and_reports_the_trade_offs(folder):
    plan = write_plan(
        folder,
        "variants: [int8-static, prune-50]\ncalibration: digits_eval.npz\n"
        "budgets: [{artifact: '*', top1_vs_parent: 0.98}]\n",
    )
    proc = edgebench(["run", str(plan)] + FAST + ["--out", "res"], cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert "built  digits.int8-static.onnx" in proc.stderr
    assert (folder / "res" / "variants" / "digits.int8-static.json").is_file()
    run_dir = folder / "res" / "latest"
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["plan"]["budgets"] == [{"artifact": "*", "top1_vs_parent": 0.98}]
    assert (
        meta["request"]["settings"]["threads"] == 1
        and meta["request"]["settings"]["min_seconds"] == 0.2
    )  # the command line overrides the plan
    builds = {b["variant"]: b for b in meta["plan"]["builds"]}
    assert builds["fp32"]["status"] == "original" and builds["int8-static"]["status"] == "built"
    records = {
        p.name: json.loads(p.read_text())["artifact"] for p in (run_dir / "raw" / "local").iterdir()
    }
    parent = records.pop("digits.onnx.json")
    assert (parent["variant"], parent["parent_sha256"]) == ("fp32", None)
    assert {a["variant"] for a in records.values()} == {"int8-static", "prune-50"}
    assert {a["parent_sha256"] for a in records.values()} == {parent["sha256"]}
    report = (run_dir / "report.md").read_text()
    assert "## Trade-offs" in report and "| int8-static | 0.05 |" in report
    assert "Pareto set" in report and "only the compressed (gzip) size" in report
    assert "Trade-offs: local — digits.onnx" in proc.stdout


def test_a_variant_that_cannot_be_built_is_reported_and_the_rest_is_measured(folder):
    plan = write_plan(folder, "variants: [int8-static, fp16]\n")
    proc = edgebench(["run", str(plan), "--quiet"] + FAST + ["--out", "res"], cwd=folder)
    assert proc.returncode == 1
    assert "error: digits.int8-static.onnx: int8-static needs a calibration set" in proc.stderr
    assert "built" not in proc.stderr  # --quiet keeps only the errors
    raw = sorted(p.name for p in (folder / "res" / "latest" / "raw" / "local").iterdir())
    assert raw == ["digits.fp16.onnx.json", "digits.onnx.json"]


def test_plan_and_model_options_conflict_and_unknown_devices_name_the_plan(folder):
    plan = write_plan(folder, "devices: [nowhere]\n")
    proc = edgebench(["run", str(plan), "--model", "digits.onnx"], cwd=folder)
    assert proc.returncode == 2 and "drop --model" in proc.stderr
    proc = edgebench(["run", str(plan)], cwd=folder)
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "edgebench: error: %s: devices: unknown device or tag 'nowhere'" % plan
    )


def test_plan_require_accelerator_refuses_cpu_numbers(folder):
    plan = write_plan(folder, "variants: []\nrequire_accelerator: true\n")
    proc = edgebench(["run", str(plan), "--quiet"] + FAST + ["--out", "res"], cwd=folder)
    assert proc.returncode == 1
    record = json.loads(
        (folder / "res" / "latest" / "raw" / "local" / "digits.onnx.json").read_text()
    )
    assert record["reason"] == "accelerator-not-used" and not record["samples_ns"]
    assert (
        json.loads((folder / "res" / "latest" / "run.json").read_text())["request"][
            "require_accelerator"
        ]
        is True
    )
