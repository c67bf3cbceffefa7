"""``edgebench lab``: the boards the store has seen, their last fingerprint, health and who
holds their lease -- read from the board's own agent over a real SSH server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
from conftest import edgebench
from sshd import Sshd, free_port, skip_reason
from synthetic_runs import FINGERPRINT, failed, make_run, ok

from edgebench.agent.lease import acquire, holder
from edgebench.harness.analysis.identity import device_identity

needs_sshd = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

JETSON = dict(
    FINGERPRINT,
    hostname="orin",
    machine_id="f" * 32,
    board_model="NVIDIA Jetson AGX Orin",
    governor="schedutil",
    kernel="5.15.136-tegra",
    board={"jetson": {"nvpmodel": {"mode": "MODE_30W", "id": 2}, "clocks": {"locked": True}}},
)
PI = dict(FINGERPRINT, machine_id="a" * 32, governor="performance", kernel="6.6.31")


def results(root: Path) -> Path:
    """Two boards: the Pi measured fine twice (first as "pi-old", then as "board"); the
    Jetson measured, then failed unreachable."""
    make_run(root, [ok("a.onnx", "pi-old", fingerprint=PI)], created_at="2026-01-01T00:00:00Z")
    make_run(root, [ok("a.onnx", "dead", fingerprint=JETSON)], created_at="2026-01-02T00:00:00Z")
    make_run(
        root,
        [ok("a.onnx", "board", fingerprint=PI), ok("b.tflite", "board", fingerprint=PI)],
        created_at="2026-01-03T00:00:00Z",
    )
    make_run(root, [failed("a.onnx", "dead", "unreachable")], created_at="2026-01-04T00:00:00Z")
    return root


def lab(tmp_path: Path, *args: str) -> Dict[str, Any]:
    proc = edgebench(
        ["--devices-file", str(tmp_path / "devices.yaml"), "lab", "--json"]
        + ["--root", str(tmp_path / "results")]
        + list(args),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return {b["devices"][-1]: b for b in json.loads(proc.stdout)}


@needs_sshd
def test_lab_lists_boards_with_fingerprint_health_and_lease(
    server: Sshd, tmp_path: Path, home: Path
) -> None:
    results(tmp_path / "results")
    workdir = tmp_path / "wd"
    (tmp_path / "devices.yaml").write_text(
        "devices:\n"
        + server.device_yaml("board", python=sys.executable, workdir=str(workdir))
        + server.device_yaml("dead", port=free_port(), workdir=str(tmp_path / "wd2"))
    )
    with acquire(str(workdir), "harness-A run 42", 0):
        rows = lab(tmp_path)
    assert set(rows) == {"board", "dead"}
    pi, jetson = rows["board"], rows["dead"]
    assert pi["identity"] == device_identity(ok("a.onnx", fingerprint=PI))
    assert pi["devices"] == ["pi-old", "board"]  # one board under two names
    assert pi["last_seen"] == "2026-01-03T00:00:00Z"
    assert (pi["runtimes"], pi["governor"], pi["kernel"]) == (
        "onnxruntime 1.17.1",
        "performance",
        "6.6.31",
    )
    assert pi["health"] == "ok" and pi["power_mode"] == ""
    assert pi["lease"]["held"] is True and "harness-A run 42" in pi["lease"]["holder"]
    # the Jetson: its last fingerprint is from the run before it failed
    assert (jetson["power_mode"], jetson["governor"]) == ("MODE_30W, clocks locked", "schedutil")
    assert jetson["health"] == "unknown" and "unreachable" in jetson["health_detail"]
    assert jetson["lease"]["error"] == "unreachable", jetson["lease"]

    assert lab(tmp_path)["board"]["lease"] == {"held": False, "holder": None}  # released
    assert lab(tmp_path, "--no-leases")["board"]["lease"] is None

    table = edgebench(
        ["--devices-file", str(tmp_path / "devices.yaml"), "lab", "--no-leases"]
        + ["--root", str(tmp_path / "results")],
        cwd=tmp_path,
        env={"TERM": "xterm", "COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(home)},
    )
    assert table.returncode == 0, table.stderr
    assert "MODE_30W" in table.stdout and "Lease" not in table.stdout


def test_lease_holder_asks_the_kernel(tmp_path: Path) -> None:
    assert holder(str(tmp_path)) is None  # never taken
    with acquire(str(tmp_path), "me", 0):
        assert "for me" in (holder(str(tmp_path)) or "")
    assert holder(str(tmp_path)) is None  # the file still names "me"; nobody holds it
    assert json.loads((tmp_path / "lease").read_text())["harness"] == "me"


def test_lab_on_an_empty_store_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    proc = edgebench(["lab", "--root", str(tmp_path / "results")], cwd=tmp_path)
    assert proc.returncode == 2 and "no board measured yet" in proc.stderr


def test_lab_reads_the_lease_of_local_too(tmp_path: Path, home: Path) -> None:
    """No devices.yaml: the built-in `local` device, its workdir under (this test's) home."""
    make_run(tmp_path / "results", [ok("a.onnx", "local", fingerprint=PI)])
    workdir = home / ".cache" / "edgebench"
    with acquire(str(workdir), "harness-L", 0):
        proc = edgebench(["lab", "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["devices"] == ["local"] and row["lease"]["held"] is True
    assert "for harness-L" in row["lease"]["holder"]
