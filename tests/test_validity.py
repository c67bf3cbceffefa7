"""Validity rules (agent/board/validity.py and the backends): throttling during the timed window,
cooldown, require_accelerator, Edge TPU compilation, board warnings -- through the real
agent and the real CLI on fixture boards (see test_boards.py)."""

import csv
import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import EXAMPLES, FAST, agent_run, edgebench
from test_boards import board, board_env, edgetpu_model

from edgebench.agent import bench
from edgebench.agent.board import validity
from edgebench.agent.protocol import parse_job
from edgebench.agent.record import Record
from edgebench.agent.runtimes import onnx as rt_onnx
from edgebench.agent.runtimes import tflite as rt_tflite
from edgebench.harness.config import ConfigError, Cooldown, parse_inventory

DIGITS = str(EXAMPLES / "digits.onnx")
WINDOW = {"min_seconds": 0.2, "min_iterations": 20, "warmup_seconds": 0.05}


def run_on(root: Path, name: str, **job) -> Record:
    job.setdefault("artifact", {"path": DIGITS})
    job.setdefault("settings", WINDOW)
    return Record.from_dict(agent_run(job, env=board_env(root, name))["record"])


def set_temp(root: Path, millidegrees: int) -> None:
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("%d\n" % millidegrees)


# --- throttling ------------------------------------------------------------------------------


def window(before, after):
    from edgebench.agent.board.boards import parse_throttled

    w = validity.Window()
    w.before = parse_throttled("throttled=%s" % before) if before else None
    w.after = parse_throttled("throttled=%s" % after) if after else None
    return w


def test_throttle_reasons_compare_before_and_after():
    assert window("0x0", "0x0").reasons() == []
    # occurred since boot, long before the window: a warning elsewhere, not a flag
    assert window("0x50000", "0x50000").reasons() == []
    assert window("0x0", "0x40000").reasons() == [
        "throttled occurred during the timed window (vcgencmd get_throttled 0x0 -> 0x40000)"
    ]
    assert window("0x0", "0x50005").reasons() == [
        "under-voltage occurred during the timed window and was still on at its end "
        "(vcgencmd get_throttled 0x0 -> 0x50005)",
        "throttled occurred during the timed window and was still on at its end "
        "(vcgencmd get_throttled 0x0 -> 0x50005)",
    ]
    assert window("0x80008", "0x80008").reasons() == [
        "soft-temperature-limit at the start of the timed window (vcgencmd get_throttled "
        "0x80008 -> 0x80008)"
    ]
    assert window(None, "0x2").reasons() == [
        "arm-frequency-capped at the end of the timed window (vcgencmd get_throttled 0x2)"
    ]


def test_a_throttle_during_the_window_flags_the_record(tmp_path):
    root = board(tmp_path, "pi5")
    # get_throttled is read by the board probe, then right before and after the window
    (root / "fake-vcgencmd/throttled").write_text("0x0\n0x0\n0x50000\n")
    rec = run_on(root, "pi5")
    assert rec.ok  # flagged, still measured
    v = rec.validity
    assert v["throttled"] is True and v["flags"] == ["throttled"]
    assert v["reasons"] == [
        "under-voltage occurred during the timed window (vcgencmd get_throttled 0x0 -> 0x50000)",
        "throttled occurred during the timed window (vcgencmd get_throttled 0x0 -> 0x50000)",
    ]
    assert v["get_throttled"]["after"]["since_boot"] == ["under-voltage", "throttled"]
    assert rec.fingerprint["board"]["raspberry_pi"]["throttled"]["raw"] == "0x0"


def test_a_quiet_window_is_not_flagged(tmp_path):
    root = board(tmp_path, "pi5")
    rec = run_on(root, "pi5")
    v = rec.validity
    assert v["throttled"] is False and v["flags"] == [] and v["reasons"] == []
    assert v["throttle_temp_c"] == 80.0 and v["peak_temp_c"] == 52.65  # Pi default limit


def test_temperature_over_the_limit_flags_the_record(tmp_path):
    root = board(tmp_path, "pi5")
    set_temp(root, 82000)
    v = run_on(root, "pi5").validity
    assert v["flags"] == ["throttled"]
    assert v["reasons"] == ["temperature reached 82.0 °C during the timed window (limit 80.0 °C)"]
    v = run_on(root, "pi5", throttle_temp_c=90).validity
    assert v["throttled"] is False and v["throttle_temp_c"] == 90.0


# --- cooldown -------------------------------------------------------------------------------


def test_cooldown_waits_until_the_board_is_cool_then_proceeds(tmp_path):
    root = board(tmp_path, "pi5")
    set_temp(root, 75000)
    cooler = threading.Timer(1.0, set_temp, (root, 45000))  # the fan catches up
    cooler.start()
    try:
        rec = run_on(root, "pi5", cooldown={"max_temp_c": 60, "timeout_s": 30})
    finally:
        cooler.cancel()
    assert rec.ok
    cooled = rec.fingerprint["cooldown"]
    assert cooled["cooled"] is True and cooled["start_temp_c"] == 75.0
    assert cooled["end_temp_c"] == 45.0 and 0.9 <= cooled["waited_s"] < 10
    assert rec.timing["cooldown_s"] == cooled["waited_s"]
    assert rec.fingerprint["temps_c_before"] == {"thermal_zone0:cpu-thermal": 45.0}
    assert rec.validity["flags"] == []


def test_cooldown_gives_up_after_its_timeout_and_flags_a_hot_start(tmp_path):
    root = board(tmp_path, "pi5")
    set_temp(root, 75000)
    rec = run_on(root, "pi5", cooldown={"max_temp_c": 60, "timeout_s": 0.6})
    assert rec.ok
    cooled = rec.fingerprint["cooldown"]
    assert cooled["cooled"] is False and 0.6 <= cooled["waited_s"] < 3
    v = rec.validity
    assert v["flags"] == ["hot-start"] and v["throttled"] is False  # 75 °C < 80 °C
    assert "cooldown gave up after 1 s at 75.0 °C (wanted below 60.0 °C)" in v["reasons"]


def test_cooldown_without_a_sensor_does_not_wait():
    info = validity.cooldown(10.0, 30.0)  # this machine: no thermal zones, no vcgencmd
    if info.get("error"):
        assert info["waited_s"] == 0.0 and info["cooled"] is None


# --- accelerators ----------------------------------------------------------------------------

TRT_FIRST = {"providers": ["TensorrtExecutionProvider", "CPUExecutionProvider"]}


def test_require_accelerator_with_an_unavailable_provider_is_an_error():
    rec = Record.from_dict(
        agent_run({"artifact": {"path": DIGITS}, "onnx": TRT_FIRST, "require_accelerator": True})[
            "record"
        ]
    )
    assert rec.status == "error" and rec.reason == "accelerator-not-used"
    assert rec.fault_class == "config"
    assert (
        "TensorrtExecutionProvider was requested but this onnxruntime does not have it"
        in rec.message
    )
    assert not rec.samples_ns and not rec.stats  # never a CPU number in its place


def test_cpu_fallback_without_require_accelerator_is_flagged():
    rec = Record.from_dict(agent_run({"artifact": {"path": DIGITS}, "onnx": TRT_FIRST})["record"])
    assert rec.ok and rec.runtime["providers_active"] == ["CPUExecutionProvider"]
    assert rec.runtime["accelerator"] == {
        "requested": "TensorrtExecutionProvider",
        "used": False,
        "message": "TensorrtExecutionProvider was requested but the session runs on "
        "CPUExecutionProvider",
    }
    assert rec.validity["flags"] == ["accelerator-not-used"]


def test_require_accelerator_without_any_accelerator_requested():
    rec = Record.from_dict(
        agent_run({"artifact": {"path": DIGITS}, "require_accelerator": True})["record"]
    )
    assert rec.reason == "accelerator-not-used" and "names no accelerator" in rec.message
    rec = Record.from_dict(
        agent_run(
            {"artifact": {"path": str(EXAMPLES / "digits.tflite")}, "require_accelerator": True}
        )["record"]
    )
    assert rec.reason == "accelerator-not-used" and "no tflite.delegate" in rec.message


class FakeOrt:
    """onnxruntime as it looks on a Jetson: TensorRT and CUDA available; the session is a
    real CPU one that reports ``active`` as its providers (a silent fallback, or not)."""

    def __init__(self, active):
        import onnxruntime

        self._ort, self.active, self.created = onnxruntime, active, []
        self.__version__ = onnxruntime.__version__
        self.SessionOptions = onnxruntime.SessionOptions
        self.GraphOptimizationLevel = onnxruntime.GraphOptimizationLevel

    def get_available_providers(self):
        return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

    def InferenceSession(self, path, sess_options=None, providers=None):
        self.created.append(providers)
        session = self._ort.InferenceSession(
            path, sess_options=sess_options, providers=["CPUExecutionProvider"]
        )
        return SimpleNamespace(
            get_providers=lambda: list(self.active),
            run=session.run,
            get_inputs=session.get_inputs,
            get_outputs=session.get_outputs,
        )


def jetson_job(tmp_path, **extra):
    return parse_job(
        dict(
            {
                "protocol": 1,
                "artifact": {"path": DIGITS},
                "settings": WINDOW,
                "onnx": {
                    "providers": [
                        "TensorrtExecutionProvider",
                        "CUDAExecutionProvider",
                        "CPUExecutionProvider",
                    ],
                    "provider_options": {
                        "TensorrtExecutionProvider": {
                            "trt_engine_cache_enable": True,
                            "trt_engine_cache_path": str(tmp_path / "trt-cache"),
                            "trt_fp16_enable": True,
                        }
                    },
                },
            },
            **extra,
        )
    )


def test_tensorrt_session_reports_engine_build_and_cache(tmp_path, monkeypatch):
    ort = FakeOrt(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(rt_onnx, "import_runtime", lambda job: ort)
    rec = bench.run(jetson_job(tmp_path, require_accelerator=True))
    assert rec.ok, rec.message
    # provider options reach the session as ORT takes them: (name, {str: str})
    assert ort.created == [
        [
            (
                "TensorrtExecutionProvider",
                {
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(tmp_path / "trt-cache"),
                    "trt_fp16_enable": "True",
                },
            ),
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ]
    ]
    assert (tmp_path / "trt-cache").is_dir()
    assert rec.runtime["trt_engine_cache"] == {
        "path": str(tmp_path / "trt-cache"),
        "engines_before": 0,
        "engines_after": 0,
    }
    assert rec.runtime["accelerator"]["used"] is True
    build = rec.timing["engine_build_ms"]
    assert build == pytest.approx(max(0.0, rec.timing["first_ms"] - rec.stats["p50_ms"]))
    assert rec.validity["flags"] == []


def test_tensorrt_falling_back_to_cpu_is_caught(tmp_path, monkeypatch):
    ort = FakeOrt(["CPUExecutionProvider"])  # e.g. libnvinfer missing: ORT falls back
    monkeypatch.setattr(rt_onnx, "import_runtime", lambda job: ort)
    rec = bench.run(jetson_job(tmp_path, require_accelerator=True))
    assert rec.reason == "accelerator-not-used"
    assert rec.message == (
        "TensorrtExecutionProvider was requested but the session runs on CPUExecutionProvider"
    )
    rec = bench.run(jetson_job(tmp_path))
    assert rec.ok and rec.validity["flags"] == ["accelerator-not-used"]
    assert "engine_build_ms" not in rec.timing


EDGETPU = {"delegate": {"library": "libedgetpu.so.1", "options": {"device": "usb:0"}}}


def test_edgetpu_delegate_with_an_uncompiled_model_under_require_accelerator():
    rec = Record.from_dict(
        agent_run(
            {
                "artifact": {"path": str(EXAMPLES / "digits.tflite")},
                "tflite": EDGETPU,
                "require_accelerator": True,
            }
        )["record"]
    )
    assert rec.reason == "accelerator-not-used"
    assert rec.message == (
        "digits.tflite is not compiled for the Edge TPU (no "
        "edgetpu-custom-op operator): the libedgetpu.so.1 delegate leaves "
        "it all on the CPU; compile it with edgetpu_compiler"
    )


def test_edgetpu_delegate_with_an_uncompiled_model_is_flagged(monkeypatch):
    """libedgetpu cannot load here: a stand-in delegate that the interpreter never sees."""
    name, module = rt_tflite.import_runtime(
        parse_job({"protocol": 1, "artifact": {"path": "m.tflite"}})
    )

    class Interpreter(module.Interpreter):
        def __init__(self, experimental_delegates=None, **kwargs):
            super().__init__(**kwargs)

    fake = SimpleNamespace(Interpreter=Interpreter, load_delegate=lambda lib, opts: object())
    monkeypatch.setattr(rt_tflite, "import_runtime", lambda job: (name, fake))
    rec = bench.run(
        parse_job(
            {
                "protocol": 1,
                "settings": WINDOW,
                "tflite": EDGETPU,
                "artifact": {"path": str(EXAMPLES / "digits.tflite")},
            }
        )
    )
    assert rec.ok
    assert rec.runtime["accelerator"]["used"] is False
    assert rec.runtime["accelerator"]["edgetpu_op"] is False
    assert rec.validity["flags"] == ["accelerator-not-used"]
    assert "not compiled for the Edge TPU" in rec.validity["reasons"][0]
    # where libedgetpu does not load the record is an error -- which still says both
    rec = Record.from_dict(
        agent_run({"artifact": {"path": str(EXAMPLES / "digits.tflite")}, "tflite": EDGETPU})[
            "record"
        ]
    )
    assert rec.reason == "runtime-missing"
    assert "delegate libedgetpu.so.1 did not load" in rec.message
    assert rec.message.endswith(
        "; and digits.tflite is not compiled for the Edge TPU (no "
        "edgetpu-custom-op operator): the libedgetpu.so.1 delegate "
        "leaves it all on the CPU; compile it with edgetpu_compiler"
    )


def test_edgetpu_compiled_model_passes_the_check(tmp_path):
    compiled = edgetpu_model(tmp_path / "m_edgetpu.tflite")
    job = parse_job(
        {
            "protocol": 1,
            "tflite": EDGETPU,
            "require_accelerator": True,
            "artifact": {"path": str(compiled)},
        }
    )
    assert rt_tflite.accelerator_check(job) == {
        "requested": "libedgetpu.so.1",
        "used": True,
        "message": "",
        "edgetpu_op": True,
    }
    # ...and without the delegate it cannot load, with a hint why
    rec = Record.from_dict(agent_run({"artifact": {"path": str(compiled)}})["record"])
    assert rec.reason == "model-invalid"
    assert "compiled for the Edge TPU: set tflite.delegate to libedgetpu" in rec.message


# --- warnings -----------------------------------------------------------------------------


def test_board_warnings_name_the_fix():
    pi = {
        "governor": "ondemand",
        "board": {
            "family": "raspberry-pi",
            "raspberry_pi": {
                "throttled": {
                    "raw": "0x50000",
                    "now": [],
                    "since_boot": ["under-voltage", "throttled"],
                }
            },
        },
    }
    assert validity.board_warnings(pi) == [
        "cpufreq governor is ondemand, not performance: CPU frequency varies during the run; "
        "fix: `echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/"
        "scaling_governor`",
        "vcgencmd get_throttled 0x50000: under-voltage, throttled since boot -- check the "
        "power supply and cooling",
    ]
    nano = {
        "governor": "schedutil",
        "board": {
            "family": "jetson",
            "jetson": {
                "nvpmodel": {"mode": "5W", "id": 1},
                "clocks": {"locked": False, "dynamic": ["cpu0", "GPU"]},
            },
        },
    }
    found = validity.board_warnings(nano)
    assert found[0].endswith("fix: `sudo jetson_clocks`")
    assert found[1].startswith("Jetson power mode is 5W (nvpmodel 1), not MAXN")
    assert found[2] == (
        "Jetson clocks are dynamic (cpu0, GPU): latency depends on DVFS; fix: `sudo jetson_clocks`"
    )
    locked = {
        "governor": "schedutil",
        "board": {
            "jetson": {
                "nvpmodel": {"mode": "MAXN", "id": 0},
                "clocks": {"locked": True, "dynamic": []},
            }
        },
    }
    assert validity.board_warnings(locked) == []
    assert validity.board_warnings({"governor": "performance"}) == []
    assert validity.board_warnings({"governor": None}) == []


# --- job and devices.yaml ---------------------------------------------------------------------


def test_job_validity_fields_are_checked():
    job = parse_job(
        {
            "protocol": 1,
            "artifact": {"path": "m.onnx"},
            "require_accelerator": True,
            "cooldown": {"max_temp_c": 55},
            "throttle_temp_c": 85,
        }
    )
    assert job.require_accelerator is True and job.throttle_temp_c == 85.0
    assert job.cooldown == {"max_temp_c": 55.0, "timeout_s": 300.0}
    defaults = parse_job({"protocol": 1, "artifact": {"path": "m.onnx"}, "cooldown": None})
    assert (defaults.require_accelerator, defaults.cooldown, defaults.throttle_temp_c) == (
        False,
        None,
        None,
    )
    for bad, needle in [
        ({"require_accelerator": "yes"}, "true or false"),
        ({"cooldown": {"timeout_s": 5}}, "max_temp_c"),
        ({"cooldown": {"max_temp_c": -1}}, "cooldown.max_temp_c"),
        ({"throttle_temp_c": True}, "throttle_temp_c"),
    ]:
        rec = Record.from_dict(agent_run(dict({"artifact": {"path": DIGITS}}, **bad))["record"])
        assert rec.reason == "job-invalid" and needle in rec.message


YAML = """
devices:
  jetson:
    host: jetson.lan
    timeout_s: 900
    require_accelerator: true
    cooldown: {max_temp_c: 50, timeout_s: 600}
    throttle_temp_c: 85
    onnx:
      providers: [TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider]
      provider_options:
        TensorrtExecutionProvider:
          trt_engine_cache_enable: true
          trt_engine_cache_path: ~/.cache/edgebench/trt
          trt_max_workspace_size: 1073741824
  coral:
    host: coral.lan
    require_accelerator: true
    tflite:
      delegate: {library: libedgetpu.so.1}
"""


def test_devices_yaml_validity_keys():
    inv = parse_inventory(YAML, "devices.yaml")
    jetson, coral = inv.devices
    assert jetson.require_accelerator and coral.require_accelerator
    assert jetson.cooldown == Cooldown(50.0, 600.0) and jetson.throttle_temp_c == 85.0
    assert jetson.onnx.to_dict()["provider_options"] == {
        "TensorrtExecutionProvider": {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": "~/.cache/edgebench/trt",
            "trt_max_workspace_size": 1073741824,
        }
    }
    assert coral.cooldown is None and coral.throttle_temp_c is None
    hash(inv)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "devices:\n  pi:\n    host: p\n    require_accelerator: true\n",
            "devices.pi.require_accelerator: no accelerator to require",
        ),
        (
            "devices:\n  pi:\n    host: p\n    cooldown: {max_temp_c: 50, timeout_s: 900}\n",
            "devices.pi.cooldown.timeout_s: 900 s is not less than timeout_s (600 s)",
        ),
        (
            "devices:\n  pi:\n    host: p\n    cooldown: {timeout_s: 9}\n",
            "devices.pi.cooldown: missing required key 'max_temp_c'",
        ),
        (
            "devices:\n  pi:\n    host: p\n    cooldown: {max_temp: 50}\n",
            "devices.pi.cooldown.max_temp: unknown key 'max_temp' (did you mean 'max_temp_c'?)",
        ),
        (
            "devices:\n  pi:\n    host: p\n    throttle_temp_c: hot\n",
            "devices.pi.throttle_temp_c: expected a positive number, got 'hot'",
        ),
        (
            "devices:\n  j:\n    host: j\n    onnx:\n      providers: [CUDAExecutionProvider]\n"
            "      provider_options: {TensorrtExecutionProvider: {trt_fp16_enable: true}}\n",
            "devices.j.onnx.provider_options.TensorrtExecutionProvider: "
            "'TensorrtExecutionProvider' is not in onnx.providers "
            "(providers: CUDAExecutionProvider)",
        ),
        (
            "devices:\n  j:\n    host: j\n    onnx:\n      providers: [CUDAExecutionProvider]\n"
            "      provider_options: {CUDAExecutionProvider: {device_id: [0]}}\n",
            "devices.j.onnx.provider_options.CUDAExecutionProvider.device_id: expected a string, "
            "number or true/false, got a list",
        ),
    ],
)
def test_devices_yaml_validity_errors(text, message):
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "devices.yaml")
    assert str(info.value).startswith("devices.yaml: " + message)


# --- the whole tool: edgebench run / report / devices --probe -----------------------------------


def test_cli_run_flags_reports_and_summarises(tmp_path):
    pi = board(tmp_path, "pi5")
    (pi / "fake-vcgencmd/throttled").write_text("0x0\n0x0\n0x50005\n")
    orin = board(tmp_path, "orin-nano")
    devices = {
        "devices": {
            "pi5": {"kind": "local", "env": board_env(pi, "pi5")},
            "orin": {"kind": "local", "env": board_env(orin, "orin-nano")},
            "gpu": {
                "kind": "local",
                "require_accelerator": True,
                "onnx": {"providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider"]},
            },
        }
    }
    (tmp_path / "devices.yaml").write_text(json.dumps(devices))  # JSON is YAML
    proc = edgebench(
        ["run", "--devices", "pi5,orin,gpu", "--model", DIGITS, "--out", "res", "--quiet"] + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr  # gpu: a measurement failed
    run = tmp_path / "res" / "latest"
    with open(run / "summary.csv", newline="") as fh:
        rows = {r["device"]: r for r in csv.DictReader(fh)}
    assert rows["pi5"]["status"] == "ok" and rows["pi5"]["throttled"] == "True"
    assert rows["pi5"]["flags"] == "throttled" and rows["pi5"]["energy_mj"] == ""
    assert rows["orin"]["throttled"] == "False" and rows["orin"]["flags"] == ""
    assert float(rows["orin"]["energy_mj"]) > 0
    assert rows["gpu"]["reason"] == "accelerator-not-used" and rows["gpu"]["throttled"] == ""
    report = (run / "report.md").read_text()
    pi_part = report[report.index("## pi5") : report.index("## orin")]
    assert (
        "cpufreq governor is ondemand, not performance: CPU frequency varies during the "
        "run; fix: `echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/"
        "scaling_governor`"
    ) in pi_part
    assert "⚑ throttled [F1]" in pi_part and "| Flags |" in pi_part
    assert (
        "- [F1] digits.onnx: under-voltage occurred during the timed window and was still "
        "on at its end (vcgencmd get_throttled 0x0 -> 0x50005)"
    ) in pi_part
    assert "**Throttle state (vcgencmd):** 0x0 — now: none; since boot: none" in pi_part
    orin_part = report[report.index("## orin") : report.index("## gpu")]
    assert "| Energy (mJ/inf) |" in orin_part and "Warnings:" not in orin_part
    assert "**Power mode (nvpmodel):** MAXN_SUPER (id 2)" in orin_part
    assert "**Power rails:** VDD_IN, VDD_CPU_GPU_CV, VDD_SOC" in orin_part
    gpu_part = report[report.index("## gpu") :]
    assert "error: accelerator-not-used — TensorrtExecutionProvider was requested" in gpu_part
    # re-rendering a stored run gives the same report
    again = edgebench(["report", str(run)], cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == report


def test_cli_devices_probe_shows_the_board(tmp_path):
    pi = board(tmp_path, "pi5")
    (pi / "fake-vcgencmd/throttled").write_text("0x50000\n")
    nano = board(tmp_path, "jetson-nano")
    devices = {
        "devices": {
            "pi5": {"kind": "local", "env": board_env(pi, "pi5")},
            "nano": {"kind": "local", "env": board_env(nano, "jetson-nano")},
        }
    }
    (tmp_path / "devices.yaml").write_text(json.dumps(devices))
    proc = edgebench(["devices", "--probe"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "throttled    0x50000 (now: none; since boot: under-voltage, throttled)" in out
    assert "family       raspberry-pi" in out and "arm_mhz      2400" in out
    assert "nvpmodel     5W (id 1)" in out and "l4t          R32.7.4" in out
    assert "clocks       dynamic: cpu0, cpu1, GPU, EMC" in out
    assert "power_rails  POM_5V_IN, POM_5V_GPU, POM_5V_CPU" in out
    assert "Jetson power mode is 5W" in out
