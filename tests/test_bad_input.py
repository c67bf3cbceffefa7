"""Bad files and bad input, tried as a new user would: every command answers with one line
naming the file (and the key or field) and exit code 2, never a traceback."""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES
from synthetic_runs import failed, make_run, ok
from test_decide import make_key, needs_ssh_keygen, verifies

from edgebench.harness.cli import main
from edgebench.harness.store import atomic_write


def error_line(capsys) -> str:
    """The one line a failed command printed on stderr."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgebench: error: "), err
    return lines[0]


@pytest.fixture
def run(tmp_path):
    store = make_run(
        tmp_path / "res",
        [
            ok("net.onnx", variant="fp32"),
            ok("net.fp16.onnx", variant="fp16", parent="net.onnx", p50_ms=8),
            failed("x.onnx"),
        ],
    )
    store.mark_latest()
    return store


# --- Hand-written files: devices.yaml, plans, budgets -----------------------------------------


def _command(kind, path, run):
    return {
        "devices": ["--devices-file", str(path), "devices"],
        "probe": ["--devices-file", str(path), "devices", "--probe"],
        "plan": ["run", str(path)],
        "budgets": ["check", str(run.path), "--budgets", str(path)],
        "decide": ["decide", str(run.path), "--budgets", str(path)],
    }[kind]


@pytest.mark.parametrize("kind", ["devices", "probe", "plan", "budgets", "decide"])
def test_a_file_that_is_not_utf8_names_the_file_and_line(kind, run, tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("# café\nbudgets: []\n".encode("latin-1"))
    assert main(_command(kind, path, run)) == 2
    line = error_line(capsys)
    assert "%s: line 1: " % path in line and "not UTF-8" in line


@pytest.mark.parametrize("kind", ["devices", "plan", "budgets"])
@pytest.mark.parametrize(
    "text, says",
    [
        ("devices:\n  ? [a, b]\n  : {kind: local}\n", "unhashable key"),
        ("- a\n- b\n", "expected a mapping"),
        ("models: [\n", "invalid YAML"),
    ],
)
def test_yaml_faults_are_one_line(kind, text, says, run, tmp_path, capsys):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert main(_command(kind, path, run)) == 2
    line = error_line(capsys)
    assert str(path) in line and says in line


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1" + "0" * 400])
def test_a_budget_limit_must_be_a_finite_number(value, run, tmp_path, capsys):
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - p50_ms: %s\n" % value)
    assert main(["check", str(run.path), "--budgets", str(path)]) == 2
    assert "budgets.yaml: budgets[0].p50_ms: expected a positive number" in error_line(capsys)
    path.write_text("budgets:\n  - p50_ms: 5\n    regression: %s\n" % value)
    assert main(["check", str(run.path), "--budgets", str(path)]) == 2
    assert "budgets[0].regression: expected a positive number" in error_line(capsys)


def test_nan_in_devices_yaml_is_refused(tmp_path, capsys):
    path = tmp_path / "devices.yaml"
    path.write_text("devices:\n  local: {kind: local, timeout_s: .nan}\n")
    assert main(["--devices-file", str(path), "devices"]) == 2
    assert "devices.local.timeout_s: expected a positive number, got nan" in error_line(capsys)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.mkdir(),
        lambda p: p.symlink_to("nowhere.yaml"),
    ],
)
def test_a_devices_yaml_here_that_is_not_a_file_is_an_error(make, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "devices.yaml")
    assert main(["devices"]) == 2
    assert "devices.yaml: cannot read the device inventory" in error_line(capsys)


# --- Where results go ---------------------------------------------------------------------------


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("x")
    return path


def test_out_that_is_a_file(a_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--out", str(a_file), "--quiet"]) == 2
    assert error_line(capsys) == "edgebench: error: %s: not a directory" % a_file
    assert (
        main(
            [
                "optimize",
                str(EXAMPLES / "digits.onnx"),
                "--variants",
                "fp16",
                "--out",
                str(a_file / "sub"),
            ]
        )
        == 2
    )
    assert "%s: cannot write there (Not a directory)" % (a_file / "sub") in error_line(capsys)


@pytest.mark.parametrize("option", ["--junit", "--manifest"])
def test_an_output_file_that_is_a_directory_or_under_a_file(option, run, a_file, tmp_path, capsys):
    command = "check" if option == "--junit" else "decide"
    assert main([command, str(run.path), option, str(tmp_path)]) == 2
    assert "%s: is a directory" % tmp_path in error_line(capsys)
    assert main([command, str(run.path), option, str(a_file / "out.xml")]) == 2
    assert "%s: not a directory" % a_file in error_line(capsys)


READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def _in_read_only(folder: Path, cmd, cwd: Path) -> subprocess.CompletedProcess:
    """``cmd`` with ``folder`` read-only: chmod for a user, a read-only bind mount in a
    private mount namespace for root (who ignores file modes)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(
                cmd,
                cwd=str(cwd),
                capture_output=True,
                text=True,
            )
        finally:
            folder.chmod(0o755)
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", READ_ONLY, str(folder)] + cmd,
        cwd=str(cwd),
        capture_output=True,
        text=True,
    )


def _read_only_mount_reason():
    if os.geteuid() != 0:
        return None
    if not shutil.which("unshare"):
        return "root ignores file modes, and unshare (for a read-only mount) is missing"
    scratch = Path(tempfile.gettempdir())
    probe = _in_read_only(scratch, ["true"], scratch)
    return None if probe.returncode == 0 else "cannot make a read-only mount: " + probe.stderr


NO_READ_ONLY = _read_only_mount_reason()
CLI = [sys.executable, "-m", "edgebench.harness"]


@pytest.mark.skipif(NO_READ_ONLY is not None, reason=str(NO_READ_ONLY))
def test_a_read_only_folder_is_one_line(run, tmp_path):
    outputs = tmp_path / "ro"
    outputs.mkdir()
    for args in (
        ["run", "--out", outputs, "--quiet"],
        ["optimize", EXAMPLES / "digits.onnx", "--variants", "fp16", "--out", outputs],
        ["check", run.path, "--junit", outputs / "junit.xml"],
        ["decide", run.path, "--manifest", outputs / "manifest.json"],
    ):
        proc = _in_read_only(outputs, CLI + [str(a) for a in args], tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (
            "edgebench: error: %s: cannot write there (Read-only file system)" % outputs
            if os.geteuid() == 0
            else "edgebench: error: %s: cannot write there (Permission denied)" % outputs
        )
    proc = _in_read_only(run.path, CLI + ["report", str(run.path), "--format", "html"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("edgebench: error: %s: cannot write" % (run.path / "report.html"))
    assert list(outputs.iterdir()) == []


# --- Damaged stored runs ------------------------------------------------------------------------

RAW = "raw/pi4/net.onnx.json"


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


DAMAGE = [  # file, how, what the error names
    ("run.json", lambda d: d.update(status=[1, 2]), "status: expected an object, got a list"),
    ("run.json", lambda d: d["status"].update(pi4=["x"]), "status.pi4: expected an object"),
    ("run.json", lambda d: d.update(devices=["pi4"]), "devices: expected an object"),
    ("run.json", lambda d: d["devices"]["pi4"].update(tags=5), "devices.pi4.tags: expected a"),
    ("run.json", lambda d: d.update(created_at=5), "created_at: expected a string, got 5"),
    ("run.json", lambda d: d.update(plan=[1]), "plan: expected an object, got a list"),
    (
        RAW,
        lambda d: d["stats"].update(p50_ms="fast"),
        "stats.p50_ms: expected a number above 0, got 'fast'",
    ),
    (RAW, lambda d: d["stats"].pop("p90_ms"), "stats.p90_ms: missing"),
    (RAW, lambda d: d["stats"].update(stability_reasons=5), "stats.stability_reasons"),
    (RAW, lambda d: d.update(stats="x"), "stats: expected an object, got 'x'"),
    (RAW, lambda d: d["artifact"].update(size_bytes="5"), "artifact.size_bytes"),
    (RAW, lambda d: d["accuracy"].update(top1=float("nan")), "accuracy.top1"),
    (RAW, lambda d: d["memory"].update(series=[[1, 2, 3]]), "memory.series[0]"),
    (
        RAW,
        lambda d: d["fingerprint"].update(temps_c_before=[1]),
        "fingerprint.temps_c_before: expected an object",
    ),
    (RAW, lambda d: d.update(device=5), "device: expected a string, got 5"),
    (RAW, lambda d: d.update(started_at=5), "started_at: expected a string"),
    (RAW, lambda d: d.pop("status"), "missing field 'status'"),
    (RAW, lambda d: d.update(samples_ns="abc"), "samples_ns: expected a list"),
]
COMMANDS = [
    ["report", "{run}"],
    ["report", "{run}", "--format", "html"],
    ["report", "{run}", "--format", "csv"],
    ["compare", "{run}", "{good}"],
    ["check", "{run}"],
    ["check", "{good}", "--baseline", "{run}"],
    ["decide", "{run}", "--manifest", "{tmp}/m.json"],
]


@pytest.fixture
def good(tmp_path):
    return make_run(tmp_path / "other", [ok("net.onnx", variant="fp32")])


@pytest.mark.parametrize("name, change, says", DAMAGE, ids=[d[2][:30] for d in DAMAGE])
def test_a_damaged_run_file_is_one_line_naming_file_and_field(
    name, change, says, run, good, tmp_path, capsys
):
    target = run.path / name
    _edit(target, change)
    for command in COMMANDS:
        args = [a.format(run=run.path, good=good.path, tmp=tmp_path) for a in command]
        assert main(args) == 2, args
        line = error_line(capsys)
        assert line.startswith("edgebench: error: %s: " % target) and says in line, (args, line)


def test_a_truncated_record_is_one_line(run, capsys):
    target = run.path / RAW
    target.write_text(target.read_text()[:100])
    assert main(["report", str(run.path)]) == 2
    assert error_line(capsys).startswith("edgebench: error: %s: cannot read (" % target)


def test_history_skips_a_damaged_run_and_says_which(run, capsys):
    other = make_run(
        run.root,
        [ok("net.onnx", variant="fp32", p50_ms=11)],
        created_at="2026-02-01T00:00:00+00:00",
    )
    _edit(other.path / RAW, lambda d: d["stats"].update(p50_ms="fast"))
    assert main(["history", "--root", str(run.root)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(
        "history: skipped %s: not a valid record (stats.p50_ms: expected a "
        "number above 0, got 'fast'); fix it, or delete it and `edgebench "
        "run --resume %s` measures it again" % (other.path / RAW, other.path)
    )
    assert len(err.splitlines()) == 1
    assert run.run_id in out and other.run_id not in out


@pytest.mark.parametrize("value", ["fast", 0, [1]])
def test_history_rebuilds_a_damaged_index_line(value, run, capsys):
    assert main(["history", "--root", str(run.root)]) == 0
    index = run.root / "index.jsonl"
    entry = json.loads(index.read_text())
    entry["records"][0]["p50_ms"] = value  # same stamp: only its shape tells
    index.write_text(json.dumps(entry) + "\n")
    assert main(["history", "--root", str(run.root)]) == 0
    assert isinstance(json.loads(index.read_text())["records"][0]["p50_ms"], float)


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "x"])
def test_history_threshold_must_be_a_fraction(value, run, capsys):
    with pytest.raises(SystemExit) as info:
        main(["history", "--root", str(run.root), "--threshold", value])
    assert info.value.code == 2
    assert "--threshold: expected a fraction" in capsys.readouterr().err


# --- decide --sign-key ---------------------------------------------------------------------------


@pytest.fixture
def key(tmp_path):
    return make_key(tmp_path / "id_ed25519")


@needs_ssh_keygen
@pytest.mark.parametrize(
    "bad, says",
    [
        ("missing", "no such key file"),
        ("public", "not an SSH private key"),
        ("folder", "cannot read the key (Is a directory)"),
        ("garbage", "not an SSH private key"),
        ("damaged", "ssh-keygen cannot use this key"),
    ],
)
def test_a_bad_sign_key_changes_nothing(bad, says, run, key, tmp_path, capsys):
    manifest = tmp_path / "deploy" / "manifest.json"
    assert (
        main(["decide", str(run.path), "--manifest", str(manifest), "--sign-key", str(key)]) == 1
    )  # x.onnx failed: nothing fits there
    before = manifest.read_bytes(), Path(str(manifest) + ".sig").read_bytes()
    capsys.readouterr()
    other = {
        "missing": tmp_path / "nokey",
        "public": key.with_suffix(".pub"),
        "folder": tmp_path,
        "garbage": tmp_path / "garbage",
        "damaged": tmp_path / "damaged",
    }[bad]
    (tmp_path / "garbage").write_text("hello\n")
    text = key.read_text().splitlines()
    (tmp_path / "damaged").write_text("\n".join(text[:1] + text[2:]) + "\n")
    (tmp_path / "damaged").chmod(0o600)
    assert (
        main(
            [
                "decide",
                str(run.path),
                "--manifest",
                str(manifest),
                "--sign-key",
                str(other),
                "--profile",
                "fastest",
            ]
        )
        == 2
    )
    assert "%s: %s" % (other, says) in error_line(capsys)
    assert (manifest.read_bytes(), Path(str(manifest) + ".sig").read_bytes()) == before
    assert verifies(manifest, key)


@needs_ssh_keygen
def test_an_unsigned_manifest_removes_the_stale_signature(run, key, tmp_path):
    manifest = tmp_path / "manifest.json"
    assert (
        main(["decide", str(run.path), "--manifest", str(manifest), "--sign-key", str(key)]) == 1
    )  # x.onnx failed: nothing fits there
    assert verifies(manifest, key)
    assert main(["decide", str(run.path), "--manifest", str(manifest), "--profile", "fastest"]) == 1
    assert not Path(str(manifest) + ".sig").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- Files behave like files a user writes -------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_results_follow_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        store = make_run(tmp_path / "res", [ok("net.onnx")])
        atomic_write(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4  # run.json, summary.csv, the record, new.txt
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {mode}
    assert stat.S_IMODE((store.path / "run.json").stat().st_mode) == mode


def test_a_replaced_file_keeps_its_mode_and_a_link_is_written_through(tmp_path):
    target = tmp_path / "report.xml"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.xml"
    link.symlink_to(target.name)
    atomic_write(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


# --- optimize ---------------------------------------------------------------------------------


@pytest.fixture
def calibration_sets(tmp_path):
    np.save(tmp_path / "array.npy", np.zeros((4, 1, 8, 8), np.float32))
    np.savez(tmp_path / "scalar.npz", inputs=np.float32(3))
    np.savez(tmp_path / "strings.npz", inputs=np.array(["a", "b"]))
    np.savez(tmp_path / "other.npz", images=np.zeros((4, 1, 8, 8), np.float32))
    (tmp_path / "text.npz").write_text("not an archive")
    return tmp_path


@pytest.mark.parametrize(
    "calib, says",
    [
        ("missing.npz", "calibration set not found"),
        (".", "a directory, not a calibration set"),
        ("text.npz", "is not an .npz archive"),
        ("array.npy", "is not an .npz archive"),
        ("scalar.npz", "has no samples"),
        ("strings.npz", "'inputs' holds <U1, not numbers"),
        ("other.npz", "has no 'inputs' array (found: images)"),
    ],
)
def test_an_unusable_calibration_set_is_refused_before_building(
    calib, says, calibration_sets, capsys
):
    out = calibration_sets / "variants"
    assert (
        main(
            [
                "optimize",
                str(EXAMPLES / "digits.onnx"),
                "--variants",
                "fp16,int8-static",
                "--calib",
                str(calibration_sets / calib),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert says in error_line(capsys)
    assert not any(out.glob("*.onnx"))


@pytest.mark.parametrize(
    "args, says",
    [
        (["--variants", ",,"], "--variants ',,' names no variant"),
        (["--variants", "fp17"], "unknown variant step 'fp17'"),
    ],
)
def test_optimize_variant_lists(args, says, tmp_path, capsys):
    assert main(["optimize", str(EXAMPLES / "digits.onnx"), "--out", str(tmp_path)] + args) == 2
    assert says in error_line(capsys)


def test_optimize_a_model_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "m.onnx").mkdir()
    assert main(["optimize", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "v")]) == 2
    assert error_line(capsys).endswith("m.onnx: a directory, not a model file")


@pytest.mark.parametrize("taken", ["digits.fp16.onnx", "digits.fp16.json"])
def test_a_variant_that_cannot_be_written_is_its_own_error(taken, tmp_path, capsys):
    (tmp_path / taken).mkdir()
    assert (
        main(
            [
                "optimize",
                str(EXAMPLES / "digits.onnx"),
                "--variants",
                "fp16,int8-dynamic",
                "--out",
                str(tmp_path),
            ]
        )
        == 1
    )
    out, err = capsys.readouterr()
    assert err.startswith("error: digits.fp16.onnx: ") and "%s" % taken in err
    assert "cannot write" in err and "(Is a directory)" in err and len(err.splitlines()) == 1
    assert "built  digits.int8-dynamic.onnx" in out


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda d: d["stats"].update(p50_ms=0), "stats.p50_ms: expected a number above 0, got 0"),
        (lambda d: d.update(samples_ns=[10**30] * 200), "samples_ns[0]: expected an integer"),
    ],
)
def test_figures_a_report_divides_by_or_computes_with_are_checked(change, says, run, good, capsys):
    _edit(run.path / RAW, change)
    for args in (
        ["compare", str(good.path), str(run.path)],
        ["check", str(run.path), "--baseline", str(good.path)],
    ):
        assert main(args) == 2
        assert says in error_line(capsys)


def test_board_facts_missing_from_a_record_are_left_out(run, capsys):
    board = {
        "raspberry_pi": {"throttled": {"now": ["throttled"]}},
        "jetson": {"clocks": {"dynamic": ["GPU"]}},
    }
    for record in (run.path / "raw" / "pi4").glob("net.*.json"):
        _edit(record, lambda d: d["fingerprint"].update(board=board))
    assert main(["report", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert "now: throttled; since boot: none" in out and "dynamic: GPU" in out
