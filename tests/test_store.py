import csv
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path

import pytest
from synthetic_runs import V1_RUN

from edgebench.agent.record import Record, error_record
from edgebench.agent.stats import summarize
from edgebench.harness.report.markdown import render
from edgebench.harness.store import META_VERSION, RunStore, StoreError, atomic_write, open_run
from edgebench.harness.summary import COLUMNS


def _v1_run(tmp_path: Path) -> Path:
    """A copy of the stored run of schema version 1 (tests/fixtures/README.md)."""
    return Path(shutil.copytree(V1_RUN, tmp_path / V1_RUN.parent.name / V1_RUN.name))


def ok_record(device: str = "local", name: str = "m.onnx", base_ns: int = 1_000_000) -> Record:
    samples = [base_ns + 1000 * i for i in range(30)]
    return Record(
        status="ok",
        device=device,
        artifact={"name": name, "sha256": "ab" * 32, "size_bytes": 2_500_000, "format": "onnx"},
        runtime={
            "name": "onnxruntime",
            "version": "1.17.1",
            "providers_active": ["CPUExecutionProvider"],
        },
        samples_ns=samples,
        stats=summarize(samples),
    )


def summary_rows(store: RunStore):
    with open(store.path / "summary.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def leftovers(root: Path):
    return [
        p
        for p in root.rglob("*")
        if p.name.endswith(".tmp") or (p.name.startswith(".") and p.name != ".")
    ]


def test_create_makes_unique_run_dirs(tmp_path):
    stores = [RunStore.create(tmp_path / "results") for _ in range(20)]
    ids = {s.run_id for s in stores}
    assert len(ids) == 20
    for store in stores:
        assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", store.run_id)
        assert store.path == tmp_path / "results" / store.run_id
        assert json.loads((store.path / "run.json").read_text()) == {
            "run_id": store.run_id,
            "schema_version": META_VERSION,
            "status": {},
        }


def test_meta_and_status(tmp_path):
    store = RunStore.create(tmp_path)
    store.update_meta(argv=("run", "--quiet"), devices={"local": {}})
    store.set_status("local", "a.onnx", "running")
    store.set_status("local", "a.onnx", "ok")
    store.set_status("pi4", "b.tflite", "error")
    on_disk = json.loads((store.path / "run.json").read_text())
    assert on_disk == {
        "argv": ["run", "--quiet"],
        "devices": {"local": {}},
        "run_id": store.run_id,
        "schema_version": META_VERSION,
        "status": {"local": {"a.onnx": "ok"}, "pi4": {"b.tflite": "error"}},
    }
    assert store.meta().to_dict() == on_disk
    assert open_run(store.path).meta() == store.meta()
    with pytest.raises(TypeError):
        store.update_meta(asked=1)  # only RunMeta's fields


def test_run_json_of_before_schema_version_loads_and_reports_the_same(tmp_path):
    run = _v1_run(tmp_path)
    meta = open_run(run).meta()
    assert meta.schema_version == 1 and meta.run_id == run.name and meta.interrupted is False
    assert meta.status["local"]["digits.tflite"] == "ok" and meta.bytes_sent == {"local": 0}
    assert meta.devices["local"] == {"kind": "local", "host": None, "tags": ["host"]}
    before = json.loads((run / "run.json").read_text())
    assert dict(meta.to_dict(), schema_version=None) == dict(before, schema_version=None)
    assert render(open_run(run), "md") == (run / "report.md").read_text()
    assert render(open_run(run), "csv") == (run / "summary.csv").read_text()


@pytest.mark.parametrize(
    "change, says",
    [
        (dict(schema_version=2), "unsupported schema_version 2 (this edgebench reads 1 to 1"),
        (dict(asked=1), "unknown field 'asked'"),
        (dict(argv="run"), "argv: expected a list"),
        (dict(bytes_sent={"local": "0"}), "bytes_sent.local: expected a number"),
    ],
)
def test_a_run_json_it_cannot_read_is_one_line(tmp_path, change, says):
    run = _v1_run(tmp_path)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(meta, **change)))
    with pytest.raises(StoreError) as err:
        open_run(run)
    assert str(err.value).startswith("%s: %s" % (run / "run.json", says))


def test_a_record_of_a_newer_schema_is_one_line(tmp_path):
    run = _v1_run(tmp_path)
    raw = run / "raw" / "local" / "digits.onnx.json"
    raw.write_text(json.dumps(dict(json.loads(raw.read_text()), schema_version=3)))
    with pytest.raises(StoreError) as err:
        open_run(run).records()
    assert str(err.value) == (
        "%s: not a valid record (unsupported schema_version 3 (this code reads 1 to 2; a newer "
        "edgebench wrote it)); fix it, or delete it and `edgebench run --resume %s` measures "
        "it again" % (raw, run)
    )


def test_concurrent_set_status(tmp_path):
    store = RunStore.create(tmp_path)

    def work(device):
        for i in range(25):
            store.set_status(device, "a%d.onnx" % i, "ok")

    threads = [threading.Thread(target=work, args=("d%d" % n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = json.loads((store.path / "run.json").read_text())["status"]
    assert {d: len(a) for d, a in status.items()} == {"d0": 25, "d1": 25, "d2": 25, "d3": 25}
    assert leftovers(tmp_path) == []


def test_write_record_and_summary(tmp_path):
    store = RunStore.create(tmp_path)
    ok = ok_record()
    bad = error_record("local", {"name": "broken.onnx"}, "model-invalid", "bad graph")
    path = store.write_record(ok)
    assert path == store.path / "raw" / "local" / "m.onnx.json"
    assert json.loads(path.read_text()) == ok.to_dict()
    store.write_record(bad)
    fields, rows = summary_rows(store)
    assert fields == COLUMNS
    assert [(r["artifact"], r["status"], r["reason"]) for r in rows] == [
        ("broken.onnx", "error", "model-invalid"),
        ("m.onnx", "ok", ""),
    ]
    assert rows[0]["p50_ms"] == ""  # a failure has no figures, not zeros
    assert float(rows[1]["p50_ms"]) == pytest.approx(ok.stats["p50_ms"])
    assert store.records() == [bad, ok]
    assert leftovers(tmp_path) == []


def test_rewrite_replaces_earlier_record(tmp_path):
    store = RunStore.create(tmp_path)
    store.write_record(error_record("local", {"name": "m.onnx"}, "timeout", "too slow"))
    store.write_record(ok_record())
    _, rows = summary_rows(store)
    assert [(r["artifact"], r["status"]) for r in rows] == [("m.onnx", "ok")]
    assert [r.status for r in store.records()] == ["ok"]


def test_unsafe_names_stay_unique_and_inside_the_run(tmp_path):
    store = RunStore.create(tmp_path)
    names = ["a b.onnx", "a_b.onnx", "../../evil.onnx", "sub/dir.onnx"]
    paths = [store.write_record(ok_record(device="my/dev", name=n)) for n in names]
    assert len(set(paths)) == 4
    raw = store.path / "raw"
    for path in paths:
        assert path.resolve().parent.parent == raw.resolve()
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*\.json", path.name)
    assert sorted(r.artifact["name"] for r in store.records()) == sorted(names)
    assert len(summary_rows(store)[1]) == 4


@pytest.fixture
def eager_thread_switching():
    """Switch threads very often, so a missing lock shows up as lost rows."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_concurrent_write_record(tmp_path, eager_thread_switching):
    store = RunStore.create(tmp_path)
    errors = []
    start = threading.Barrier(4)

    def work(device):
        try:
            start.wait()
            for i in range(10):
                store.write_record(ok_record(device=device, name="m%02d.onnx" % i))
                # a returned write is in summary.csv, and stays there
                written = {(r["device"], r["artifact"]) for r in summary_rows(store)[1]}
                assert {(device, "m%02d.onnx" % j) for j in range(i + 1)} <= written
        except Exception as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=("dev%d" % n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    fields, rows = summary_rows(store)
    assert fields == COLUMNS
    assert sorted((r["device"], r["artifact"]) for r in rows) == sorted(
        ("dev%d" % n, "m%02d.onnx" % i) for n in range(4) for i in range(10)
    )
    assert len(store.records()) == 40
    assert leftovers(tmp_path) == []


def test_reopened_run_keeps_earlier_rows(tmp_path):
    first = RunStore.create(tmp_path)
    first.write_record(ok_record(name="a.onnx"))
    again = open_run(first.path)
    again.write_record(ok_record(name="b.onnx"))
    assert [r["artifact"] for r in summary_rows(again)[1]] == ["a.onnx", "b.onnx"]


def test_latest_points_to_newest(tmp_path):
    old = RunStore.create(tmp_path)
    old.mark_latest()
    new = RunStore.create(tmp_path)
    new.mark_latest()
    link = tmp_path / "latest"
    assert link.is_symlink()
    assert os.readlink(link) == new.run_id  # relative, so the results tree can move
    assert open_run(link).run_id == new.run_id
    assert open_run(link).path == new.path.resolve()
    assert open_run(tmp_path).run_id == new.run_id  # the results root means its latest
    assert leftovers(tmp_path) == []


def test_open_run_errors(tmp_path):
    with pytest.raises(StoreError) as info:
        open_run(tmp_path / "nope")
    assert str(info.value) == "%s: no such run directory" % (tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match=r"plain: not a run directory \(no run.json\)$"):
        open_run(tmp_path / "plain")
    store = RunStore.create(tmp_path / "r")
    (store.path / "run.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"run.json: cannot read \("):
        open_run(store.path)


@pytest.mark.parametrize(
    "content, why",
    [
        ('{"status": "ok", "dev', "cannot read"),
        (
            '{"status": "ok", "device": "local", "artifact": {"name": "m.onnx"}}',
            "not a valid record",
        ),
        ("[1, 2]", "not a valid record"),
    ],
)
def test_corrupt_raw_file(tmp_path, content, why):
    store = RunStore.create(tmp_path)
    good = store.write_record(ok_record(name="good.onnx"))
    bad = good.with_name("bad.onnx.json")
    bad.write_text(content)
    with pytest.raises(StoreError) as info:
        store.records()
    assert str(info.value).startswith("%s: %s" % (bad, why))
    assert "\n" not in str(info.value)


def test_write_text(tmp_path):
    store = RunStore.create(tmp_path)
    assert store.write_text("report.md", "# hi\n").read_text() == "# hi\n"
    assert store.write_text("report.md", "# again\n").read_text() == "# again\n"
    for bad in ("../x.md", "sub/x.md", "", ".hidden"):
        with pytest.raises(ValueError):
            store.write_text(bad, "x")
    assert leftovers(tmp_path) == []


def test_failed_atomic_write_keeps_old_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []
