"""Nothing runs on a board unless it is exactly what was sent, the agent writes nothing
outside its workdir, and text from a board cannot drive the operator's terminal.

Real sshd, real agent, real runtimes; the "board" is this machine, tampered with by hand."""

from __future__ import annotations

import ast
import hashlib
import io
import os
import shlex
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from conftest import FAST, edgebench
from sshd import Sshd, skip_reason, start_sshd
from test_compat import NO_PY38, _python38
from test_ssh import needs_sshd, write_devices

from edgebench.agent import receive
from edgebench.agent.loader import REFUSED
from edgebench.agent.verify import sha256_file
from edgebench.harness.store import open_run
from edgebench.harness.transport.base import interpret, printable
from edgebench.harness.transport.ssh import RECEIVE, SSHTransport


def run_args(inventory: Path, out: Path, models: List[Path], *extra: str) -> List[str]:
    args = (
        [
            "--devices-file",
            str(inventory),
            "run",
            "--devices",
            "board",
            "--quiet",
            "--out",
            str(out),
        ]
        + FAST
        + list(extra)
    )
    for model in models:
        args += ["--model", str(model)]
    return args


def flip_byte(path: Path, offset: int = 200) -> None:
    """Change one byte in place: same size, other sha256."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def same_size_zipapp(code: str, size: int) -> bytes:
    """A zipapp running ``code``, padded with a stored entry to exactly ``size`` bytes."""

    def archive(pad: int) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("__main__.py", code)
            zf.writestr("pad", b"x" * pad)
        return buf.getvalue()

    data = archive(0)
    data = archive(size - len(data))
    assert len(data) == size
    return data


# -- tampering on the board --------------------------------------------------------------


@needs_sshd
def test_tampered_blob_is_detected_resent_and_measured_correctly(
    server: Sshd, tmp_path: Path, home: Path, examples: Path
) -> None:
    model = examples / "digits.onnx"
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [server.device_yaml("board", python=sys.executable, workdir=str(tmp_path / "wd"))],
    )
    args = run_args(
        inventory, tmp_path / "results", [model], "--eval", str(examples / "digits_eval.npz")
    )
    first = edgebench(args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    top1 = open_run(tmp_path / "results").records()[0].accuracy["top1"]

    blob = tmp_path / "wd" / "blobs" / (sha256_file(model) + ".onnx")
    flip_byte(blob)  # the size still matches
    again = edgebench(args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    run = open_run(tmp_path / "results")
    record = run.records()[0]
    assert record.ok and record.accuracy["top1"] == top1
    assert run.meta().bytes_sent["board"] == model.stat().st_size  # that file only
    assert sha256_file(blob) == sha256_file(model)

    unchanged = edgebench(args, cwd=tmp_path)
    assert unchanged.returncode == 0, unchanged.stderr
    assert open_run(tmp_path / "results").meta().bytes_sent["board"] == 0


IMPOSTOR = "open(%r, 'w').write('executed')\n"


@needs_sshd
def test_swapped_agent_is_resent_by_a_run_and_never_executed(
    server: Sshd, tmp_path: Path, home: Path, examples: Path
) -> None:
    model = examples / "digits.int8.tflite"
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [server.device_yaml("board", python=sys.executable, workdir=str(tmp_path / "wd"))],
    )
    args = run_args(inventory, tmp_path / "results", [model])
    first = edgebench(args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (agent,) = (tmp_path / "wd" / "agents").iterdir()
    mark = tmp_path / "MARK"
    agent.write_bytes(same_size_zipapp(IMPOSTOR % str(mark), agent.stat().st_size))

    again = edgebench(args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    run = open_run(tmp_path / "results")
    assert run.records()[0].ok and not mark.exists()
    assert run.meta().bytes_sent["board"] == agent.stat().st_size  # the agent only


@needs_sshd
def test_agent_swapped_after_deploy_is_refused(server: Sshd, tmp_path: Path, home: Path) -> None:
    from edgebench.harness.run.pack import build

    t = SSHTransport(server.device(tmp_path / "wd"))
    t.deploy(build(tmp_path / "cache"))
    mark = tmp_path / "MARK"
    agent = Path(t.agent_path)
    agent.write_bytes(same_size_zipapp(IMPOSTOR % str(mark), agent.stat().st_size))
    out = t.run_agent("run", {}, 30)
    t.close()
    assert out.returncode == REFUSED and not mark.exists()
    record = interpret(out, "board", {"name": "m.onnx"}, 30)
    assert record.reason == "transfer-failed" and "not the one that was sent" in record.message


# A board whose Python damages the model right before every agent start (or only the first):
# the agent's own check is what stands between that and a measurement.
SABOTEUR = """#!/bin/sh
if [ "$1" = "-c" ] && [ ! -e {done} ]; then
  {python} -S -c 'import glob, sys
for path in glob.glob(sys.argv[1] + "/blobs/*.onnx"):
    data = bytearray(open(path, "rb").read()); data[200] ^= 0xFF; open(path, "wb").write(data)
' {workdir}
  {once}
fi
exec {python} "$@"
"""


@needs_sshd
@pytest.mark.parametrize("once", [True, False])
def test_blob_damaged_before_each_run_is_transfer_failed_never_measured(
    server: Sshd, tmp_path: Path, home: Path, examples: Path, once: bool
) -> None:
    model = examples / "digits.onnx"
    workdir, done = tmp_path / "wd", tmp_path / "damaged-once"
    python = tmp_path / "python3"
    python.write_text(
        SABOTEUR.format(
            python=sys.executable,
            workdir=workdir,
            done=done,
            once="touch %s" % done if once else "",
        )
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [server.device_yaml("board", python=str(python), workdir=str(workdir))],
    )
    proc = edgebench(run_args(inventory, tmp_path / "results", [model]), cwd=tmp_path)
    run = open_run(tmp_path / "results")
    (record,) = run.records()
    sent = run.meta().bytes_sent["board"]
    agent_size = next((workdir / "agents").iterdir()).stat().st_size
    assert sent == agent_size + 2 * model.stat().st_size  # sent, damaged, sent again
    if once:
        assert proc.returncode == 0 and record.ok, record.message
    else:
        assert proc.returncode == 1
        assert record.reason == "transfer-failed" and "sha256" in record.message
        assert not record.samples_ns and not record.stats  # nothing measured


# -- nothing written outside the workdir -------------------------------------------------


def snapshot(root: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in root.rglob("*")
    }


@pytest.fixture
def board_with_home(tmp_path: Path) -> Iterator[Sshd]:
    """An sshd whose sessions get HOME pointing at a temp dir (the board user's home)."""
    if skip_reason():
        pytest.skip(skip_reason())
    board_home = tmp_path / "board-home"
    (board_home / ".cache").mkdir(parents=True)
    (board_home / "notes.txt").write_text("the user's own file")
    sshd = start_sshd(tmp_path / "sshd", extra_config="SetEnv HOME=%s" % board_home)
    yield sshd
    sshd.stop()


def test_a_run_over_ssh_leaves_the_board_users_home_untouched(
    board_with_home: Sshd, tmp_path: Path, home: Path, examples: Path
) -> None:
    board_home = tmp_path / "board-home"
    before = snapshot(board_home)
    workdir = tmp_path / "wd"
    t = SSHTransport(board_with_home.device(workdir))
    chan = t._channel('echo "$HOME"')
    assert chan.makefile("rb").read().decode().strip() == str(board_home)
    t.close()
    inventory = write_devices(
        tmp_path / "devices.yaml",
        [board_with_home.device_yaml("board", python=sys.executable, workdir=str(workdir))],
    )
    proc = edgebench(
        run_args(
            inventory,
            tmp_path / "results",
            [examples / "digits.onnx", examples / "digits.tflite"],
            "--eval",
            str(examples / "digits_eval.npz"),
        ),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert snapshot(board_home) == before
    # the runtime's own cache went to the workdir instead (ONNX Runtime's telemetry)
    assert (workdir / "cache").is_dir()


# -- board text cannot drive the terminal ------------------------------------------------

HOSTILE = r"""#!/bin/sh
cat >/dev/null
printf '\033[2J\033]0;owned\007 clear screen\n' >&2
printf '@progress {"phase": "\\u001b[31mred"}\n' >&2
printf '{"record": {"status": "error", "reason": "model-invalid", "device": "x", '
printf '"message": "bad \\u001b[2J\\u009b", "artifact": {"name": "\\u001b]0;t\\u0007"}, '
printf '"runtime": {"name": "\\u001b[5m"}}}\n'
"""


def test_control_characters_from_a_board_are_escaped(tmp_path: Path, examples: Path) -> None:
    python = tmp_path / "python3"
    python.write_text(HOSTILE)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    inventory = tmp_path / "devices.yaml"
    inventory.write_text("devices:\n  board:\n    kind: local\n    python: %s\n" % python)
    proc = edgebench(
        [
            "--devices-file",
            str(inventory),
            "run",
            "--devices",
            "board",
            "--model",
            str(examples / "digits.onnx"),
            "--out",
            str(tmp_path / "results"),
        ]
        + FAST,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert "\x1b" not in proc.stderr + proc.stdout and "\x07" not in proc.stderr
    assert "bad \\x1b[2J\\x9b" in proc.stderr  # the failure line, escaped
    (record,) = open_run(tmp_path / "results").records()
    assert record.message == "bad \\x1b[2J\\x9b"
    assert record.runtime["name"] == "\\x1b[5m"
    assert record.stderr_tail.splitlines()[0] == "\\x1b[2J\\x1b]0;owned\\x07 clear screen"


def test_printable_keeps_text_and_escapes_controls() -> None:
    assert printable("tab\tand\nnewline, µs °C ✓") == "tab\tand\nnewline, µs °C ✓"
    assert printable("\r\x00\x7f\u202e") == "\\x0d\\x00\\x7f\\u202e"
    assert printable({"k\x1b": ["\x1b", 1, None]}) == {"k\\x1b": ["\\x1b", 1, None]}


def test_local_agent_is_started_through_the_verifying_loader(
    tmp_path: Path, dynamic_onnx: Path
) -> None:
    """The local transport takes the same path: a zipapp changed after deploy is refused."""
    from edgebench.harness.config import Device
    from edgebench.harness.run.pack import build
    from edgebench.harness.transport.base import LocalTransport

    t = LocalTransport(Device(name="dev", kind="local", python=sys.executable))
    zip_path = tmp_path / "agent.pyz"
    zip_path.write_bytes(build(tmp_path / "cache").read_bytes())
    t.deploy(zip_path)
    mark = tmp_path / "MARK"
    zip_path.write_bytes(same_size_zipapp(IMPOSTOR % str(mark), zip_path.stat().st_size))
    out = t.run_agent("version", {}, 30)
    assert out.returncode == REFUSED and not mark.exists()
    assert interpret(out, "dev", {"name": "m.onnx"}, 30).reason == "transfer-failed"


# -- the upload receiver (agent/receive.py) ------------------------------------------------


@needs_sshd
def test_the_receiver_that_runs_on_the_board_is_agent_receive(
    server: Sshd, tmp_path: Path, home: Path
) -> None:
    """What the board runs is the module vermin and ruff check, byte for byte."""
    sent = tmp_path / "sent.py"
    python = tmp_path / "python3"  # the board's Python, noting the code it is given
    python.write_text(
        '#!/bin/sh\n[ "$2" = -c ] && printf %%s "$3" > %s\nexec %s "$@"\n'
        % (shlex.quote(str(sent)), shlex.quote(sys.executable))
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    data = tmp_path / "m.onnx"
    data.write_bytes(b"model bytes")
    t = SSHTransport(server.device(tmp_path / "wd", python=str(python)))
    try:
        remote = t.stage(data, sha256_file(data))
    finally:
        t.close()
    assert Path(remote).read_bytes() == b"model bytes"
    assert sent.read_bytes() == Path(receive.__file__).read_bytes()


@pytest.mark.parametrize("which", ["host", "3.8"])
def test_receiver_stores_only_verified_bytes_on_python_3_8(tmp_path: Path, which: str) -> None:
    """Run as the board runs it (``python -S -c``, the home as the current directory, where
    a hashlib.py must not be imported): stored, found again, short and damaged uploads."""
    python = sys.executable if which == "host" else _python38()
    if python is None:
        pytest.skip(NO_PY38)
    cwd = tmp_path / "home"
    cwd.mkdir()
    mark = tmp_path / "MARK"
    (cwd / "hashlib.py").write_text("open(%r, 'w').close()\n" % str(mark))
    data = os.urandom(2 * receive.BLOCK + 5)  # whole blocks and a rest
    want = hashlib.sha256(data).hexdigest()

    def upload(name: str, payload: bytes) -> Tuple[int, List[str]]:
        proc = subprocess.run(
            [python, "-S", "-c", RECEIVE, str(tmp_path / "wd"), "blobs", name, want]
            + [str(len(data))],
            input=payload,
            cwd=str(cwd),
            capture_output=True,
        )
        replies = [ast.literal_eval(line)[1] for line in proc.stdout.decode().splitlines()]
        return proc.returncode, replies

    assert upload("m.bin", data) == (0, ["send", "ok"])
    assert upload("m.bin", b"") == (0, ["have"])
    assert upload("short.bin", data[:-1]) == (receive.SHORT, ["send", "short"])
    damaged = bytes([data[0] ^ 0xFF]) + data[1:]
    assert upload("damaged.bin", damaged) == (receive.MISMATCH, ["send", "mismatch"])
    assert os.listdir(tmp_path / "wd" / "blobs") == ["m.bin"]  # no partial file left
    assert (tmp_path / "wd" / "blobs" / "m.bin").read_bytes() == data
    assert not mark.exists()
