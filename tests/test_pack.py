import json
import subprocess
import sys
import zipfile

from edgebench.harness.run.pack import build


def test_zipapp_is_named_by_content_and_built_once(tmp_path):
    first = build(tmp_path)
    mtime = first.stat().st_mtime_ns
    second = build(tmp_path)
    assert first == second and second.stat().st_mtime_ns == mtime
    assert first.name.startswith("edgebench-agent-") and first.suffix == ".pyz"
    names = zipfile.ZipFile(first).namelist()
    assert "__main__.py" in names and "agent/record.py" in names
    assert not any(n.startswith("harness") for n in names)


def test_zipapp_runs_isolated_without_the_harness(tmp_path):
    pyz = build(tmp_path)
    # -I: isolated mode, the repo is not on sys.path; the archive alone must suffice.
    out = subprocess.run(
        [sys.executable, "-I", str(pyz), "version"],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["protocol"] == 1
