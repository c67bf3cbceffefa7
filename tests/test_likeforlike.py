"""Like for like, through the CLI on real runs (``local``, the bundled digits model): a
baseline is paired by board and model slot, refused only when the measurement definition
differs, and a changed model file is compared and named."""

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
from conftest import EXAMPLES, FAST, edgebench

# A/A runs in separate processes on a loaded machine differ by far more than noise (+89 %
# seen with the FAST settings); these tests judge the pairing, not the statistics, so the
# regression threshold is the widest budgets allow.
BUDGETS = "budgets:\n  - artifact: '*'\n    regression: 1\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs of one model slot, ``digits.onnx``: the baseline and an A/A repeat at
    ``--threads 2``, a changed file under the same name, and ``--threads 1``."""
    import onnx

    cwd = tmp_path_factory.mktemp("likeforlike")
    (cwd / "budgets.yaml").write_text(BUDGETS)
    same, changed = cwd / "same", cwd / "changed"
    same.mkdir()
    changed.mkdir()
    shutil.copy(str(EXAMPLES / "digits.onnx"), str(same / "digits.onnx"))
    model = onnx.load(str(EXAMPLES / "digits.onnx"))
    model.doc_string = "rebuilt by this commit"
    onnx.save(model, str(changed / "digits.onnx"))
    out = {}
    for name, folder, threads in (
        ("base", same, 2),
        ("aa", same, 2),
        ("changed", changed, 2),
        ("one", same, 1),
    ):
        args = ["run", "--quiet", "--model", str(folder / "digits.onnx"), "--threads"]
        args += [str(threads)] + FAST + ["--out", name]
        proc = edgebench(args, cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        out[name] = cwd / name / "latest"
    out["cwd"] = cwd
    return out


def check(runs, candidate, *extra):
    """``edgebench check`` against the baseline run; the regression verdict's full text is
    read from the JUnit file (the table folds long cells)."""
    args = ["check", str(runs[candidate]), "--baseline", str(runs["base"]), "--junit", "j.xml"]
    proc = edgebench(args + ["--budgets", "budgets.yaml"] + list(extra), cwd=runs["cwd"])
    if proc.returncode != 2:
        (case,) = [
            c
            for c in ET.parse(runs["cwd"] / "j.xml").getroot().iter("testcase")
            if c.get("name") == "digits.onnx: regression"
        ]
        why = [e.get("message") or "" for e in case if e.tag in ("failure", "skipped")]
        proc.verdict = " ".join(why) or case.findtext("system-out", "")
    return proc


def test_a_a_comparison_passes(runs):
    proc = check(runs, "aa")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "limit ≤ +100%" in proc.verdict and "not comparable" not in proc.verdict
    assert "model changed" not in proc.verdict


def test_a_changed_model_under_the_same_name_is_compared_and_named(runs):
    proc = check(runs, "changed")
    assert "not comparable" not in proc.verdict and "regression" in proc.stdout
    before = json.loads(next(runs["base"].glob("raw/*/digits.onnx.json")).read_text())
    after = json.loads(next(runs["changed"].glob("raw/*/digits.onnx.json")).read_text())
    old, new = before["artifact"]["sha256"], after["artifact"]["sha256"]
    assert old != new and "model changed %.8s→%.8s" % (old, new) in proc.verdict


def test_a_different_thread_count_is_not_comparable_unless_allowed(runs):
    proc = check(runs, "one")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.verdict == "not comparable: threads 2 → 1" and "1 failed" in proc.stdout
    allowed = check(runs, "one", "--allow-different", "threads")
    assert "not comparable" not in allowed.verdict
    assert allowed.verdict.endswith("; threads 2 → 1 (allowed)")
    bad = check(runs, "one", "--allow-different", "hostname")
    assert bad.returncode == 2 and "invalid choice: 'hostname'" in bad.stderr


def test_compare_and_history_pair_the_slot_across_runs(runs):
    proc = edgebench(
        ["compare", "--by", "run", str(runs["base"]), str(runs["changed"]), str(runs["one"])],
        cwd=runs["cwd"],
    )
    assert proc.returncode == 0, proc.stderr
    assert "not comparable: threads 2 → 1" in proc.stdout and "model changed" in proc.stdout
    root = runs["cwd"] / "all"
    root.mkdir()
    for name in ("base", "changed", "one"):
        target = runs[name].resolve()
        shutil.copytree(str(target), str(root / target.name))
    proc = edgebench(["history", "--root", str(root)], cwd=runs["cwd"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("digits.onnx") == 1  # one series: one slot on one board
    assert "model changed" in proc.stdout and "not comparable: threads 2 → 1" in proc.stdout
    allowed = edgebench(
        ["history", "--root", str(root), "--allow-different", "threads"], cwd=runs["cwd"]
    )
    assert "not comparable" not in allowed.stdout


def test_a_new_hostname_is_the_same_board(runs, tmp_path):
    """A CI container gets a new hostname every run; the baseline still pairs."""
    base = tmp_path / "base"
    shutil.copytree(str(runs["base"].resolve()), str(base))
    (path,) = base.glob("raw/*/digits.onnx.json")
    record = json.loads(path.read_text())
    if not (record["fingerprint"].get("machine_id") or record["fingerprint"].get("board_serial")):
        pytest.skip("this machine has neither a machine-id nor a board serial")
    record["fingerprint"]["hostname"] = "runner-7f3a"
    path.write_text(json.dumps(record))
    args = ["check", str(runs["aa"]), "--baseline", str(base), "--budgets", "budgets.yaml"]
    proc = edgebench(args, cwd=runs["cwd"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "device not in the baseline" not in proc.stdout


def test_settings_that_act_after_the_timed_window_are_not_part_of_the_definition():
    """A profile pass, cold starts and idle gaps come after the window: a record with them
    compares with one without; a thread count still does not."""
    from synthetic_runs import ok

    from edgebench.harness.analysis.definition import definition, differences

    plain = ok("m.onnx")
    base = plain.replace(settings=dict(plain.settings, threads=1))
    extras = base.replace(
        settings=dict(base.settings, profile_ops=True, cold_starts=3, idle_gaps=[1.0])
    )
    assert differences(definition(base), definition(extras)) == []
    threads = base.replace(settings=dict(base.settings, threads=2))
    assert differences(definition(extras), definition(threads)) != []
