"""The installed package: ``edgebench.agent`` and ``edgebench.harness`` from a wheel, no
top-level ``agent``/``harness``, and one version number."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

from edgebench.agent import __version__


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("edgebench-*.whl")
    return found


def test_the_wheel_holds_every_module_under_edgebench(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        "edgebench/%s/%s" % (folder, p.relative_to(ROOT / folder).as_posix())
        for folder in ("agent", "harness")
        for p in (ROOT / folder).rglob("*.py")
    }
    assert sources - names == set()  # a subpackage missing from pyproject's list shows here
    assert {n.split("/")[0] for n in names} == {"edgebench", "edgebench-%s.dist-info" % __version__}


def test_the_installed_wheel_imports_as_edgebench_only(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import importlib.util as u, edgebench.agent, edgebench.harness\n"
        "print(edgebench.agent.__file__, edgebench.harness.__file__)\n"
        "print(u.find_spec('agent'), u.find_spec('harness'))\n"
    )
    # -S: not the editable install of this checkout, only what the wheel put in `target`
    proc = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=str(tmp_path),
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    files, specs = proc.stdout.splitlines()
    assert files.split() == [
        str(target / "edgebench" / "agent" / "__init__.py"),
        str(target / "edgebench" / "harness" / "__init__.py"),
    ]
    assert specs == "None None"


def test_edgebench_version_prints_the_one_version_number():
    script = Path(sys.executable).parent / "edgebench"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "edgebench %s" % __version__
    meta = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('edgebench'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert meta.stdout.strip() == __version__  # pyproject reads the agent's __version__
