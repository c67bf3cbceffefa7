"""``edgebench history``: the lazily built index and p50 over runs."""

import json
import shutil

import pytest
from synthetic_runs import FINGERPRINT, V1_RUN, failed, make_run, ok

from edgebench.harness.analysis import history
from edgebench.harness.analysis.history import load_index, marker, series
from edgebench.harness.analysis.identity import device_identity
from edgebench.harness.cli import main
from edgebench.harness.store import open_run

OTHER = dict(FINGERPRINT, hostname="pi4-b")


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "results"
    for day, p50 in ((1, 10.0), (2, 10.2), (3, 12.0)):
        records = [ok("a.onnx", p50_ms=p50), ok("a.onnx", "pi4-b", p50_ms=20, fingerprint=OTHER)]
        make_run(
            root, records, tags={"pi4": ["pi"]}, created_at="2026-01-0%dT00:00:00+00:00" % day
        ).mark_latest()
    make_run(
        root,
        [failed("a.onnx"), ok("a.onnx", "renamed", p50_ms=9.0)],
        created_at="2026-01-04T00:00:00+00:00",
    )
    make_run(
        root,
        [ok("a.onnx", p50_ms=9.0, digest="e" * 64)],  # a rebuilt artifact
        created_at="2026-01-05T00:00:00+00:00",
    )
    return root


def test_series_per_machine_and_artifact_hash(root):
    entries = load_index(root)
    assert len(entries) == 5 and [e["created_at"][:10] for e in entries] == [
        "2026-01-0%d" % d for d in range(1, 6)
    ]
    found = series(entries, device="pi")  # by tag; the renamed device is the same board
    ident = device_identity(ok("a.onnx"))
    assert set(found) == {(ident, "a.onnx")}  # the rebuilt artifact is the same model slot
    points = found[(ident, "a.onnx")]
    assert [p.device for p in points] == ["pi4", "pi4", "pi4", "pi4", "renamed", "pi4"]
    assert points[3].p50_ms is None and points[3].reason == "timeout"
    steps = [p.step for p in points]
    assert steps[0] is None and steps[3] is None
    assert steps[2] == pytest.approx(12 / 10.2, rel=0.02)
    assert steps[4] == pytest.approx(9 / 12, rel=0.02)  # against the last measured p50
    assert steps[5] == pytest.approx(1.0, rel=0.02)
    assert [marker(s) for s in steps] == ["", "", "▲ slower", "", "▼ faster", ""]
    assert points[5].note == "model changed %.8s→eeeeeeee" % ok("a.onnx").artifact["sha256"]
    assert [p.note for p in points[:5]] == [""] * 5
    (only,) = series(entries, device=ident[:6], artifact="eee").values()
    assert [p.run_id for p in only] == [points[5].run_id]
    assert {k[0] for k in series(entries, artifact="*.onnx")} == {
        ident,
        device_identity(ok("a.onnx", fingerprint=OTHER)),
    }


def test_a_step_across_a_different_definition_is_not_comparable(tmp_path):
    root = tmp_path / "results"
    for day, threads in ((1, 2), (2, 1)):
        record = ok("a.onnx")
        record = record.replace(settings=dict(record.settings, threads=threads))
        make_run(root, [record], created_at="2026-01-0%dT00:00:00+00:00" % day)
    entries = load_index(root)
    (points,) = series(entries).values()
    assert points[1].step is None and points[1].note == "not comparable: threads 2 → 1"
    (allowed,) = series(entries, allow=["threads"]).values()
    assert allowed[1].step == pytest.approx(1.0) and allowed[1].note == ""


def test_one_series_per_board_across_hostnames_and_the_machine_id_upgrade(tmp_path):
    root = tmp_path / "results"
    board = dict(FINGERPRINT, machine_id="3f1c0a9e")
    for day, fp in (
        (1, FINGERPRINT),  # written before edgebench read the machine-id
        (2, board),
        (3, dict(board, hostname="runner-7f3a")),  # a CI container's random hostname
    ):
        make_run(root, [ok("a.onnx", fingerprint=fp)], created_at="2026-01-0%dT00:00:00Z" % day)
    ((ident, name),) = series(load_index(root))
    assert ident == device_identity(ok("a.onnx", fingerprint=board)) and name == "a.onnx"


def test_index_is_cached_refreshed_and_pruned(root, monkeypatch):
    first = load_index(root)
    lines = (root / "index.jsonl").read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == [e["run_id"] for e in first]
    monkeypatch.setattr(history, "_entry", lambda run_dir: pytest.fail("re-read %s" % run_dir))
    assert load_index(root) == first  # nothing changed: nothing re-read
    monkeypatch.undo()
    newest = root / first[-1]["run_id"]
    from edgebench.harness.store import open_run

    open_run(newest).write_record(ok("b.onnx"))
    shutil.rmtree(root / first[0]["run_id"])
    again = load_index(root)
    assert [e["run_id"] for e in again] == [e["run_id"] for e in first[1:]]
    assert [r["artifact"] for r in again[-1]["records"]] == ["a.onnx", "b.onnx"]


def test_cli(root, capsys):
    assert (
        main(
            [
                "history",
                "--root",
                str(root),
                "--device",
                "pi4",
                "--artifact",
                "a.onnx",
                "--threshold",
                "0.1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "pi4-lab · aarch64 · Raspberry Pi 4 · Cortex-A72" in out
    assert "+17.6%" in out and "▲ slower" in out and "error: timeout" in out
    assert main(["history", "--root", str(root), "--device", "nano"]) == 2
    assert "no measurement in" in capsys.readouterr().err
    assert main(["history", "--root", str(root / "missing")]) == 2


def test_history_over_runs_of_record_schema_1_and_2_shows_both(tmp_path, capsys):
    root = tmp_path / "results"
    shutil.copytree(V1_RUN, root / V1_RUN.name)
    [v1] = [
        r for r in open_run(root / V1_RUN.name).records() if r.artifact["name"] == "digits.tflite"
    ]
    later = v1.replace(stats=dict(v1.stats, p50_ms=2 * v1.stats["p50_ms"]))
    make_run(root, [later], created_at="2026-12-02T00:00:00+00:00")
    assert main(["history", "--root", str(root), "--artifact", "digits.tflite"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "2026-12-01" in out and "2026-12-02" in out and "+100.0%" in out


def test_damaged_runs_are_skipped_with_a_note(root, capsys):
    (root / "broken").mkdir()
    (root / "broken" / "run.json").write_text("{")
    assert len(load_index(root)) == 5
    assert "history: skipped " in capsys.readouterr().err
