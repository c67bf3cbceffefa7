import re
import sys
from pathlib import Path

import pytest

from edgebench.harness.config import (
    BUILTIN,
    ConfigError,
    Delegate,
    load_inventory,
    parse_input_shapes,
)

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    return str(path)


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(path + ": ")
    return message[len(path) + 2 :]


FULL = """
devices:
  local:
    kind: local
    tags: [host]
  pi4:
    host: 192.168.1.50
    port: 2222
    user: pi
    key: keys/pi
    known_hosts: /etc/kh
    trust_on_first_use: true
    workdir: /tmp/eb
    python: /usr/bin/python3
    tags: [pi, arm64]
    timeout_s: 90
    env: {OMP_NUM_THREADS: 4, FOO: bar}
  jetson:
    host: jetson.local
    tags: [jetson, gpu, arm64]
    onnx:
      providers: [CUDAExecutionProvider, CPUExecutionProvider]
      graph_optimization_level: extended
      inter_op_threads: 2
  coral:
    host: coral.local
    tflite:
      delegate:
        library: libedgetpu.so.1
        options: {device: "usb:0", priority: 1}
"""


def test_full_inventory(tmp_path):
    inv = load_inventory(write(tmp_path, FULL))
    assert inv.source == str(tmp_path / "devices.yaml")
    local, pi, jetson, coral = inv.devices
    assert (local.kind, local.python, local.host) == ("local", sys.executable, None)
    assert pi.kind == "ssh" and pi.port == 2222 and pi.user == "pi"
    assert pi.key == str(tmp_path / "keys" / "pi")  # relative to the file, not the CWD
    assert pi.known_hosts == "/etc/kh"
    assert pi.trust_on_first_use is True and pi.workdir == "/tmp/eb"
    assert pi.python == "/usr/bin/python3" and pi.timeout_s == 90.0
    assert pi.tags == ("pi", "arm64")
    assert dict(pi.env) == {"OMP_NUM_THREADS": "4", "FOO": "bar"}
    assert jetson.python == "python3" and jetson.port == 22 and jetson.timeout_s == 600.0
    assert jetson.workdir == "~/.cache/edgebench" and jetson.trust_on_first_use is False
    assert jetson.onnx.to_dict() == {
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "graph_optimization_level": "extended",
        "inter_op_threads": 2,
    }
    assert jetson.tflite.to_dict() == {}
    assert coral.tflite.delegate == Delegate(
        "libedgetpu.so.1", (("device", "usb:0"), ("priority", 1))
    )
    assert coral.tflite.to_dict() == {
        "delegate": {"library": "libedgetpu.so.1", "options": {"device": "usb:0", "priority": 1}}
    }
    assert coral.onnx.to_dict() == {}
    with pytest.raises(AttributeError):
        pi.port = 22  # frozen
    hash(inv)  # every field is immutable, so the whole inventory hashes


def test_builtin_default_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inv = load_inventory(None)
    assert inv.source == BUILTIN
    assert [(d.name, d.kind, d.python) for d in inv.devices] == [("local", "local", sys.executable)]


def test_cwd_file_is_used_when_no_path(tmp_path, monkeypatch):
    write(tmp_path, "devices:\n  bench:\n    kind: local\n")
    monkeypatch.chdir(tmp_path)
    inv = load_inventory(None)
    assert inv.source == "devices.yaml"
    assert [d.name for d in inv.devices] == ["bench"]


def test_explicit_missing_path_is_an_error(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=re.escape(missing) + ": cannot read"):
        load_inventory(missing)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "devices:\n  pi4:\n    host: h\n    prot: 22\n",
            "devices.pi4.prot: unknown key 'prot' (did you mean 'port'?)",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    port: abc\n",
            "devices.pi4.port: expected an integer, got 'abc'",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    port: 70000\n",
            "devices.pi4.port: expected an integer from 1 to 65535, got 70000",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    port: true\n",
            "devices.pi4.port: expected an integer, got True",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    tags: pi\n",
            "devices.pi4.tags: expected a list of strings, got 'pi'",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    tags: [pi, 'a,b']\n",
            "devices.pi4.tags[1]: tag 'a,b' must be letters, digits",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    timeout_s: -1\n",
            "devices.pi4.timeout_s: expected a positive number, got -1",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    timeout_s: .nan\n",
            "devices.pi4.timeout_s: expected a positive number, got nan",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    timeout_s: .inf\n",
            "devices.pi4.timeout_s: expected a positive number, got inf",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    cooldown: {max_temp_c: .nan}\n",
            "devices.pi4.cooldown.max_temp_c: expected a positive number, got nan",
        ),
        (
            'devices:\n  pi4:\n    host: h\n    env: {"A=B": 1}\n',
            "devices.pi4.env.A=B: 'A=B' is not a valid environment variable name",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    env: {9LIVES: 1}\n",
            "devices.pi4.env.9LIVES: '9LIVES' is not a valid environment variable name",
        ),
        (
            'devices:\n  pi4:\n    host: h\n    env: {A: "x\\0y"}\n',
            "devices.pi4.env.A: the value contains a NUL character",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    trust_on_first_use: 'yes'\n",
            "devices.pi4.trust_on_first_use: expected true or false, got 'yes'",
        ),
        (
            "devices:\n  pi4:\n    host: 12\n",
            "devices.pi4.host: expected a non-empty string, got 12",
        ),
        (
            "devices:\n  pi4:\n    host: h\n    env: {A: [1]}\n",
            "devices.pi4.env.A: expected a string or a number, got a list",
        ),
        (
            "devices:\n  pi4:\n    user: pi\n",
            "devices.pi4: missing required key 'host' (or add 'kind: local'",
        ),
        (
            "devices:\n  pi4:\n    kind: ssh\n",
            "devices.pi4: missing required key 'host' (ssh devices need one)",
        ),
        (
            "devices:\n  pi4:\n    kind: sshh\n    host: h\n",
            "devices.pi4.kind: expected one of local, ssh; got 'sshh' (did you mean 'ssh'?)",
        ),
        (
            "devices:\n  box:\n    kind: local\n    host: h\n",
            "devices.box.host: only ssh devices take 'host'",
        ),
        (
            "devices:\n  j:\n    host: h\n    onnx: {graph_optimization_level: extnded}\n",
            "devices.j.onnx.graph_optimization_level: expected one of disabled, basic, extended, "
            "all; got 'extnded' (did you mean 'extended'?)",
        ),
        (
            "devices:\n  j:\n    host: h\n    onnx: {provider: [CPUExecutionProvider]}\n",
            "devices.j.onnx.provider: unknown key 'provider' (did you mean 'providers'?)",
        ),
        (
            "devices:\n  j:\n    host: h\n    onnx: {inter_op_threads: 0}\n",
            "devices.j.onnx.inter_op_threads: expected an integer from 1 up, got 0",
        ),
        (
            "devices:\n  c:\n    host: h\n    tflite: {delegate: {options: {}}}\n",
            "devices.c.tflite.delegate: missing required key 'library'",
        ),
        (
            "devices:\n  c:\n    host: h\n"
            "    tflite: {delegate: {library: x, options: {a: 1.5}}}\n",
            "devices.c.tflite.delegate.options.a: expected a string or an integer, got 1.5",
        ),
        (
            "devices:\n  c:\n    host: h\n    tflite: [1]\n",
            "devices.c.tflite: expected a mapping, got a list",
        ),
        (
            "device:\n  local: {kind: local}\n",
            "device: unknown key 'device' (did you mean 'devices'?)",
        ),
        ("devices: []\n", "devices: expected a mapping of device names to settings, got a list"),
        (
            "devices:\n  my pi:\n    kind: local\n",
            "devices.my pi: device name 'my pi' must be letters",
        ),
        ("", "the file is empty"),
        (
            "devices:\n  a:\n    host: b: c\n",
            "line 3: invalid YAML (mapping values are not allowed here)",
        ),
        (
            "devices:\n  a:\n    kind: local\n  a:\n    kind: local\n",
            "line 4: invalid YAML (duplicate key 'a')",
        ),
    ],
)
def test_errors_name_file_key_and_fix(tmp_path, text, expected):
    assert error_of(tmp_path, text).startswith(expected)


def test_select(tmp_path):
    inv = load_inventory(write(tmp_path, FULL))
    assert [d.name for d in inv.select(None)] == ["local"]
    assert [d.name for d in inv.select("arm64")] == ["pi4", "jetson"]
    assert [d.name for d in inv.select("coral, arm64 ,pi4")] == ["coral", "pi4", "jetson"]
    assert [d.name for d in inv.select("gpu,jetson")] == ["jetson"]


def test_select_without_local_means_all(tmp_path):
    inv = load_inventory(write(tmp_path, "devices:\n  a: {host: x}\n  b: {host: y}\n"))
    assert [d.name for d in inv.select(None)] == ["a", "b"]


def test_select_unknown_suggests(tmp_path):
    inv = load_inventory(write(tmp_path, FULL))
    with pytest.raises(ConfigError) as info:
        inv.select("local,jetsn")
    assert str(info.value) == (
        "unknown device or tag 'jetsn' (did you mean 'jetson'?; "
        "known: local, pi4, jetson, coral; "
        "tags: arm64, gpu, host, jetson, pi)"
    )
    with pytest.raises(ConfigError, match=r"^unknown device or tag 'zzz' \(known: local"):
        inv.select("zzz")
    with pytest.raises(ConfigError, match="no devices selected"):
        inv.select(" , ")


def test_parse_input_shapes():
    assert parse_input_shapes([]) == {}
    assert parse_input_shapes(["images:1,3,224,224", "input:0:1,10"]) == {
        "images": [1, 3, 224, 224],
        "input:0": [1, 10],
    }


@pytest.mark.parametrize("value", ["images", ":1,2", "x:1,,2", "x:1,-3", "x:0", "x:a"])
def test_parse_input_shapes_rejects(value):
    with pytest.raises(ConfigError, match=r"^--input-shape '.*': expected NAME:DIM"):
        parse_input_shapes([value])


def test_parse_input_shapes_rejects_duplicates():
    with pytest.raises(ConfigError, match="given twice"):
        parse_input_shapes(["x:1", "x:2"])


def test_repo_devices_yaml_loads_with_examples_uncommented(tmp_path):
    path = REPO / "devices.yaml"
    inv = load_inventory(str(path))
    assert [d.name for d in inv.select(None)] == ["local"]
    # the commented-out board examples must stay valid when a user uncomments them
    text = re.sub(r"(?m)^  # (?=[\w-]+:$|  )", "  ", path.read_text())
    examples = load_inventory(write(tmp_path, text))
    by_name = {d.name: d for d in examples.devices}
    assert set(by_name) == {"local", "pi4", "jetson", "coral"}
    assert by_name["pi4"].python == "/usr/bin/python3"
    assert "TensorrtExecutionProvider" in by_name["jetson"].onnx.providers
    assert by_name["coral"].tflite.to_dict()["delegate"] == {
        "library": "libedgetpu.so.1",
        "options": {"device": "usb:0"},
    }
    assert [d.name for d in examples.select("gpu")] == ["jetson"]
