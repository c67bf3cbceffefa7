"""Several boards at once, each a network namespace with its own sshd: concurrent runs, a
link cut mid-run, and a bandwidth-limited link."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import netns
import pytest
import sshd
from conftest import FAST, ROOT

pytestmark = pytest.mark.skipif(
    bool(netns.skip_reason() or sshd.skip_reason()),
    reason=str(netns.skip_reason() or sshd.skip_reason()),
)


@pytest.fixture
def hosts(tmp_path):
    made = []
    try:
        for i in range(3):
            made.append(netns.make_host(i + 1, tmp_path / ("host%d" % i)))
        yield made
    finally:
        for host in made:
            host.remove()


def devices_file(path: Path, hosts, workdir: Path) -> Path:
    text = "devices:\n" + "".join(
        h.sshd.device_yaml(
            "board%d" % h.index,
            python=sys.executable,
            tags=["fleet"],
            workdir=str(workdir / ("board%d" % h.index)),
            timeout_s=120,
        )
        for h in hosts
    )
    path.write_text(text)
    return path


def start_run(cwd: Path, inventory: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgebench.harness",
            "--devices-file",
            str(inventory),
            "run",
            "--devices",
            "fleet",
            "--model",
            str(ROOT / "examples" / "digits.onnx"),
            "--out",
            "res",
            "--quiet",
        ]
        + list(extra),
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )


def rows(run_dir: Path):
    with open(run_dir / "summary.csv", newline="") as fh:
        return {r["device"]: r for r in csv.DictReader(fh)}


def test_cut_link_is_reported_within_the_deadline_and_others_finish(tmp_path, hosts):
    inventory = devices_file(tmp_path / "devices.yaml", hosts, tmp_path / "wd")
    proc = start_run(tmp_path, inventory, "--min-seconds", "8", "--warmup-seconds", "0")
    # wait until every board holds its lease, i.e. every agent is measuring
    leases = [tmp_path / "wd" / ("board%d" % h.index) / "lease" for h in hosts]
    deadline = time.monotonic() + 60
    while not all(p.exists() and p.stat().st_size for p in leases):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
        time.sleep(0.1)
    cut = hosts[1]
    cut.link(False)
    start = time.monotonic()
    _, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - start
    print("cut link noticed after %.1f s" % elapsed)
    result = rows(tmp_path / "res" / "latest")
    assert result["board1"]["status"] == "ok" and result["board3"]["status"] == "ok"
    assert result["board2"]["status"] == "error"
    assert result["board2"]["reason"] == "unreachable", result["board2"]["message"]
    assert elapsed < 60, "the lost link took %.0f s to notice" % elapsed
    assert proc.returncode == 1 and "board2" in err


def test_bandwidth_limited_link_still_completes(tmp_path, hosts):
    inventory = devices_file(tmp_path / "devices.yaml", hosts[:2], tmp_path / "wd")
    hosts[0].limit("2mbit")
    proc = start_run(tmp_path, inventory, *FAST)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = rows(tmp_path / "res" / "latest")
    assert {r["status"] for r in result.values()} == {"ok"}
    meta = json.loads((tmp_path / "res" / "latest" / "run.json").read_text())
    zipapp_and_model = (ROOT / "examples" / "digits.onnx").stat().st_size
    assert meta["bytes_sent"]["board1"] > zipapp_and_model  # everything went over the slow link


def test_link_lost_mid_transfer_is_unreachable_and_the_rest_finish(tmp_path, hosts):
    big = tmp_path / "big.onnx"  # 3 MB: ~25 s through a 1 Mbit/s link, cut after ~2 s
    big.write_bytes(os.urandom(3 * 10**6))
    inventory = devices_file(tmp_path / "devices.yaml", hosts[:2], tmp_path / "wd")
    hosts[1].limit("1mbit")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgebench.harness",
            "--devices-file",
            str(inventory),
            "run",
            "--devices",
            "fleet",
            "--model",
            str(big),
            "--out",
            "res",
        ]
        + FAST,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    seen = []
    for line in proc.stderr:  # plain progress lines, one per quarter: the 2nd means under way
        seen.append(line)
        if sum("board2 / big.onnx: uploading" in s for s in seen) == 2:
            break
    assert proc.poll() is None, "".join(seen)
    hosts[1].link(False)
    start = time.monotonic()
    proc.communicate(timeout=120)
    elapsed = time.monotonic() - start
    print("cut link noticed after %.1f s" % elapsed)
    result = rows(tmp_path / "res" / "latest")
    assert result["board2"]["reason"] == "unreachable", result["board2"]["message"]
    assert result["board1"]["reason"] == "model-invalid"  # random bytes: uploaded, refused
    assert elapsed < 60, "the lost link took %.0f s to notice" % elapsed
