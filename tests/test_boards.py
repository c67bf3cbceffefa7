"""Vendor probes and samplers (agent/board/boards.py, agent/board/power.py) against fixture
board trees (tests/fixtures/boards/<board>) and stand-in vendor tools
(tests/fixtures/bin/<board>)."""

import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, agent_run

from edgebench.agent.board import boards, fingerprint, power, sysfs

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def board(tmp_path: Path, name: str) -> Path:
    """A private copy of a fixture board tree (stand-ins change their state files);
    ``iio_deviceN`` directories get their sysfs name ``iio:deviceN``."""
    root = tmp_path / name
    shutil.copytree(str(FIXTURES / "boards" / name), str(root))
    for path in sorted(root.rglob("iio_device*"), reverse=True):
        path.rename(path.with_name(path.name.replace("iio_device", "iio:device")))
    return root


def board_env(root: Path, name: str) -> dict:
    """The environment a devices.yaml ``env:`` gives the agent for this fixture board."""
    return {
        "EDGEBENCH_PROBE_ROOT": str(root),
        "PATH": str(FIXTURES / "bin" / name) + os.pathsep + os.environ["PATH"],
    }


@pytest.fixture
def on_board(tmp_path, monkeypatch):
    """In-process: point the probes at a fixture board (root and PATH)."""

    def use(name: str) -> Path:
        root = board(tmp_path, name)
        for key, value in board_env(root, name).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(sysfs, "ROOT", str(root))
        return root

    return use


# --- Raspberry Pi ----------------------------------------------------------------------------


def test_get_throttled_bits_are_decoded():
    assert boards.parse_throttled("throttled=0x0") == {"raw": "0x0", "now": [], "since_boot": []}
    decoded = boards.parse_throttled("throttled=0x50005\n")
    assert decoded["now"] == ["under-voltage", "throttled"]
    assert decoded["since_boot"] == ["under-voltage", "throttled"]
    decoded = boards.parse_throttled("throttled=0xa000a")
    assert decoded["now"] == ["arm-frequency-capped", "soft-temperature-limit"]
    assert decoded["since_boot"] == ["arm-frequency-capped", "soft-temperature-limit"]
    assert boards.parse_throttled("throttled=0x80000")["since_boot"] == ["soft-temperature-limit"]
    assert boards.parse_throttled('error=2 error_msg="Command not registered"') is None
    assert boards.parse_temp("temp=47.2'C") == 47.2
    assert boards.parse_clock("frequency(48)=1500345728") == pytest.approx(1500.345728)


def test_pi_probe_reads_vcgencmd_and_device_tree(on_board):
    root = on_board("pi5")
    (root / "fake-vcgencmd" / "throttled").write_text("0x50000\n")
    info = boards.probe(fingerprint.static()["board_model"])
    assert info["family"] == "raspberry-pi"
    assert info["raspberry_pi"] == {
        "throttled": {"raw": "0x50000", "now": [], "since_boot": ["under-voltage", "throttled"]},
        "temp_c": 52.6,
        "arm_mhz": pytest.approx(2400.033792),
    }
    assert fingerprint.static()["board_model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert fingerprint.governor() == "ondemand" and fingerprint.freqs_mhz() == [2400.0] * 4


def test_fingerprint_names_the_board_by_machine_id_and_serial(on_board):
    root = on_board("pi5")
    static = fingerprint.static()
    raw = "3f1c0a9e5b7d4c2a8e6f1b0d9c7a5e31"  # only a hash of it leaves the board
    assert static["machine_id"] == hashlib.sha256(b"edgebench:" + raw.encode()).hexdigest()[:32]
    assert static["board_serial"] == "100000004a5b6c7d"
    (root / "etc" / "machine-id").unlink()  # D-Bus's copy where systemd has none
    (root / "var" / "lib" / "dbus").mkdir(parents=True)
    (root / "var" / "lib" / "dbus" / "machine-id").write_text("0123abcd\n")
    assert (
        fingerprint.static()["machine_id"] == hashlib.sha256(b"edgebench:0123abcd").hexdigest()[:32]
    )
    assert on_board("jetson-nano") and fingerprint.static()["machine_id"] is None


def test_failing_tool_is_reported_not_raised(on_board, tmp_path):
    on_board("pi5")
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    tool = broken / "vcgencmd"
    tool.write_text("#!/bin/sh\necho 'VCHI initialization failed' >&2\nexit 1\n")
    tool.chmod(0o755)
    os.environ["PATH"] = str(broken) + os.pathsep + os.environ["PATH"]
    info = boards.probe("Raspberry Pi 4 Model B Rev 1.4")
    assert info["raspberry_pi"] == {}
    assert "VCHI initialization failed" in info["errors"]["vcgencmd get_throttled"]


# --- Jetson ------------------------------------------------------------------------------------


def test_nvpmodel_and_jetson_clocks_are_parsed():
    assert boards.parse_nvpmodel("NV Power Mode: MAXN\n0") == {"mode": "MAXN", "id": 0}
    assert boards.parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: 15W\n2\n") == {
        "mode": "15W",
        "id": 2,
    }
    assert boards.parse_nvpmodel("nvpmodel: not found") is None


def test_jetson_probes_on_orin_nano(on_board):
    on_board("orin-nano")
    info = boards.probe(fingerprint.static()["board_model"])
    assert info["family"] == "jetson"
    jetson = info["jetson"]
    assert jetson["l4t"] == "R36.3.0"
    assert jetson["nvpmodel"] == {"mode": "MAXN_SUPER", "id": 2}
    assert jetson["clocks"]["locked"] is True  # EMC: FreqOverride=1 counts as locked
    assert jetson["clocks"]["gpu_mhz"] == {"min": 1020.0, "max": 1020.0, "cur": 1020.0}
    # the "sum of shunt voltages" channel is not a rail
    assert info["power_rails"] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert info["tegrastats"] is True


def test_jetson_probes_on_jetpack4_nano(on_board):
    on_board("jetson-nano")
    info = boards.probe(fingerprint.static()["board_model"])
    jetson = info["jetson"]
    assert jetson["l4t"] == "R32.7.4"
    assert jetson["nvpmodel"] == {"mode": "5W", "id": 1}
    # offline cores are left out; the online ones and the GPU scale
    assert jetson["clocks"]["locked"] is False
    assert jetson["clocks"]["dynamic"] == ["cpu0", "cpu1", "GPU", "EMC"]
    assert info["power_rails"] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    # the fixed PMIC-Die zone (100 °C) is not a temperature
    assert power.max_temp_c(fingerprint.temperatures_c()) == 28.5


def test_power_rails_from_hwmon_and_iio(on_board):
    on_board("orin-nano")
    rails = {r.name: r.read_mw() for r in power.find_rails()}
    assert rails == {"VDD_IN": 4500.0, "VDD_CPU_GPU_CV": 500.0, "VDD_SOC": 1200.0}
    on_board("jetson-nano")
    rails = {r.name: r.read_mw() for r in power.find_rails()}
    assert rails == {"POM_5V_IN": 3000.0, "POM_5V_GPU": 120.0, "POM_5V_CPU": 450.0}


TEGRASTATS_JP6 = (
    "11-23-2025 10:22:01 RAM 2448/7620MB (lfb 4x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [12%@1728,8%@1728,off,off] EMC_FREQ 3%@3199 GR3D_FREQ 41%@[1020,918] "
    "NVDEC off VIC off APE 200 cpu@45.5C soc0@-256C gpu@44.5C tj@45.5C "
    "VDD_IN 4500mW/4400mW VDD_CPU_GPU_CV 500mW/480mW VDD_SOC 1200mW/1190mW"
)
TEGRASTATS_JP4 = (
    "RAM 2130/3957MB (lfb 406x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [2%@102,1%@102,0%@102,0%@102] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 "
    "PLL@23.5C CPU@24.5C PMIC@100C GPU@23C AO@28.5C thermal@24C "
    "POM_5V_IN 1004/1004 POM_5V_GPU 0/0 POM_5V_CPU 123/123"
)
TEGRASTATS_SHARED_FREQ = (
    "RAM 1018/3995MB (lfb 1x4MB) CPU [1%,2%,3%,4%]@1224 EMC_FREQ 0% GR3D_FREQ 0% VDD_IN 3000/3000"
)


def test_tegrastats_lines_of_every_layout():
    new = power.parse_tegrastats(TEGRASTATS_JP6)
    assert new["ram_mb"] == [2448, 7620] and new["swap_mb"] == [0, 3810]
    assert new["cpu"] == [[12, 1728], [8, 1728], None, None]
    assert new["emc"] == {"load_pct": 3, "mhz": 3199}
    assert new["gpu"] == {"load_pct": 41, "mhz": 1020}  # one frequency per GPC: the top one
    assert new["temps_c"] == {"cpu": 45.5, "soc0": -256.0, "gpu": 44.5, "tj": 45.5}
    assert new["rails_mw"] == {
        "VDD_IN": [4500, 4400],
        "VDD_CPU_GPU_CV": [500, 480],
        "VDD_SOC": [1200, 1190],
    }
    old = power.parse_tegrastats(TEGRASTATS_JP4)
    assert old["gpu"] == {"load_pct": 0, "mhz": 76} and old["emc"]["mhz"] == 1600
    assert old["temps_c"]["PMIC"] == 100.0 and old["temps_c"]["thermal"] == 24.0
    assert old["rails_mw"] == {
        "POM_5V_IN": [1004, 1004],
        "POM_5V_GPU": [0, 0],
        "POM_5V_CPU": [123, 123],
    }
    shared = power.parse_tegrastats(TEGRASTATS_SHARED_FREQ)
    assert shared["cpu"] == [[1, 1224], [2, 1224], [3, 1224], [4, 1224]]
    assert shared["gpu"] == {"load_pct": 0, "mhz": None}
    assert shared["rails_mw"] == {"VDD_IN": [3000, 3000]}


def test_energy_integrates_power_over_exactly_the_window():
    s = 1_000_000_000
    flat = [(0, 4000.0), (2 * s, 4000.0)]
    assert power.integrate_mj(flat, s // 2, s + s // 2) == pytest.approx(4000.0)  # 4 W x 1 s
    ramp = [(0, 0.0), (s, 1000.0), (2 * s, 1000.0)]
    assert power.integrate_mj(ramp, 0, 2 * s) == pytest.approx(500.0 + 1000.0)
    # the edges are interpolated: [0.5 s, 1 s] under the ramp is 0.5 s x 750 mW
    assert power.integrate_mj(ramp, s // 2, s) == pytest.approx(375.0)
    # held flat beyond the series' ends
    assert power.integrate_mj([(s, 2000.0)], 0, 3 * s) == pytest.approx(6000.0)
    assert power.integrate_mj([], 0, s) is None


def test_board_sampler_energy_from_hwmon_fixture(on_board):
    on_board("orin-nano")
    with power.BoardSampler(interval_ms=10) as sampler:
        t0 = power.perf_ns()
        import time

        time.sleep(0.2)
        t1 = power.perf_ns()
    energy = sampler.energy(t0, t1)
    seconds = (t1 - t0) / 1e9
    assert energy["source"] == "ina3221" and energy["rail"] == "VDD_IN"
    assert energy["energy_mj"] == pytest.approx(4500.0 * seconds)
    assert energy["rails_mean_mw"] == {"VDD_IN": 4500.0, "VDD_CPU_GPU_CV": 500.0, "VDD_SOC": 1200.0}
    assert energy["samples"] >= 5
    assert sampler.peak_temp_c(t0, t1) == 45.5


def test_tegrastats_sampler_runs_the_tool_and_summarises_the_window(on_board):
    on_board("jetson-nano")
    with power.Tegrastats(20, boards.which("tegrastats")) as tegra:
        import time

        time.sleep(0.3)
        t0 = power.perf_ns()
        time.sleep(0.3)
        t1 = power.perf_ns()
    summary = tegra.summary(t0, t1)
    assert summary["samples"] >= 3 and summary["interval_ms"] == 20
    assert summary["gpu_mhz"] == [76, 76] and summary["emc_load_pct_mean"] == 0.0
    assert summary["ram_used_mb_max"] == 2130 and summary["ram_total_mb"] == 3957
    assert "PMIC" not in summary["temps_c_max"] and summary["temps_c_max"]["AO"] == 28.5
    energy = tegra.energy(t0, t1)
    assert energy["source"] == "tegrastats" and energy["rail"] == "POM_5V_IN"
    assert energy["mean_mw"] == pytest.approx(3000.0)


def test_energy_per_inference_end_to_end_on_orin_fixture(tmp_path):
    root = board(tmp_path, "orin-nano")
    doc = agent_run(
        {
            "artifact": {"path": str(EXAMPLES / "digits.onnx")},
            # 2 s: the stand-in tegrastats (a Python process) must print within the window
            # even on a loaded machine
            "settings": {"min_seconds": 2, "min_iterations": 20, "warmup_seconds": 0.05},
        },
        env=board_env(root, "orin-nano"),
    )
    rec = doc["record"]
    assert rec["status"] == "ok"
    timing = rec["timing"]
    inferences = rec["stats"]["n"]  # batch 1
    assert timing["power"]["rail"] == "VDD_IN"
    assert timing["energy_mj"] == pytest.approx(4500.0 * timing["measure_s"] / inferences, rel=1e-6)
    assert timing["tegrastats"]["gpu_load_pct_mean"] == 41.0
    assert timing["tegrastats"]["temps_c_max"]["tj"] == 45.5
    assert "soc0" not in timing["tegrastats"]["temps_c_max"]  # -256 °C: an offline sensor
    fp = rec["fingerprint"]
    assert fp["board"]["jetson"]["nvpmodel"]["mode"] == "MAXN_SUPER"
    assert rec["validity"]["warnings"] == []  # clocks locked, MAXN: nothing to fix


# --- Coral ------------------------------------------------------------------------------------


def test_edgetpu_devices_usb_and_pcie(on_board):
    on_board("coral-usb")
    assert boards.edgetpu_devices() == [
        {"bus": "usb", "id": "1a6e:089a", "sysfs": "1-1.3", "state": "unprovisioned"},
        {"bus": "usb", "id": "18d1:9302", "sysfs": "2-1", "state": "provisioned"},
    ]
    on_board("coral-pcie")
    assert boards.edgetpu_devices() == [{"bus": "pcie", "device": "/dev/apex_0"}]
    assert boards.probe(None)["edgetpu"] == [{"bus": "pcie", "device": "/dev/apex_0"}]


def edgetpu_model(path: Path) -> Path:
    """A tiny model whose only operator is the custom op edgetpu_compiler emits (it cannot
    run here: libedgetpu is not installed -- it is only read)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from tflite_writer import TFLiteWriter
    finally:
        sys.path.remove(str(EXAMPLES))
    w = TFLiteWriter()
    x = w.add_tensor("input", [1, 8, 8, 1], np.uint8, scale=1 / 255.0, zero_point=0)
    y = w.add_tensor("logits", [1, 10], np.uint8, scale=0.1, zero_point=0)
    w.add_operator("CUSTOM", [x], [y])
    w.model.operatorCodes[0].customCode = boards.EDGETPU_CUSTOM_OP
    w.set_io([x], [y])
    w.save(path)
    return path


def test_edgetpu_custom_op_detection(tmp_path):
    assert boards.tflite_custom_ops(str(EXAMPLES / "digits.tflite")) == []
    assert boards.has_edgetpu_op(str(EXAMPLES / "digits.tflite")) is False
    assert boards.has_edgetpu_op(str(EXAMPLES / "digits.int8.tflite")) is False
    compiled = edgetpu_model(tmp_path / "digits_edgetpu.tflite")
    assert boards.tflite_custom_ops(str(compiled)) == ["edgetpu-custom-op"]
    assert boards.has_edgetpu_op(str(compiled)) is True
    # not a TFLite flatbuffer, or cut short: unknown, never an exception
    assert boards.has_edgetpu_op(str(EXAMPLES / "digits.onnx")) is None
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(compiled.read_bytes()[:40])
    assert boards.has_edgetpu_op(str(cut)) is None
    assert boards.is_edgetpu_delegate("libedgetpu.so.1")
    assert boards.is_edgetpu_delegate("/usr/lib/libedgetpu.1.dylib")
    assert not boards.is_edgetpu_delegate("libtensorflowlite_gpu_delegate.so")


def test_probe_document_carries_the_board(tmp_path):
    root = board(tmp_path, "pi5")
    probe = agent_run({}, command="probe", env=board_env(root, "pi5"))["probe"]
    assert probe["board"]["family"] == "raspberry-pi"
    assert probe["board"]["raspberry_pi"]["throttled"]["raw"] == "0x0"
    assert probe["governor"] == "ondemand"
    assert "echo performance | sudo tee" in probe["warnings"][0]
