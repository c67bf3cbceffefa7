"""Sign a deployment manifest with the user's SSH key (``ssh-keygen -Y sign``).

Anyone can then check it offline, without edgebench::

    ssh-keygen -Y verify -f allowed_signers -I IDENTITY -n edgebench-manifest \\
        -s manifest.json.sig < manifest.json
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

from ..store import StoreError, atomic_write

NAMESPACE = "edgebench-manifest"


class SignError(Exception):
    """The manifest could not be signed; ``str()`` is one line."""


def _ssh_keygen(args: List[str], key: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            ["ssh-keygen"] + args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except FileNotFoundError:
        raise SignError("ssh-keygen not found (install OpenSSH 8.1 or later)") from None
    except subprocess.TimeoutExpired:
        raise SignError(
            "%s: ssh-keygen did not finish in 120 s (waiting for a passphrase?)" % key
        ) from None


def _why(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]


def check_key(key: str) -> None:
    """Refuse, before anything is written, a key that is missing, unreadable, not a
    private key or one ssh-keygen cannot read."""
    try:
        with open(key, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        raise SignError("%s: no such key file" % key) from None
    except OSError as exc:
        raise SignError("%s: cannot read the key (%s)" % (key, exc.strerror or exc)) from None
    if b"PRIVATE KEY-----" not in head:
        raise SignError(
            "%s: not an SSH private key (give the private key file, not the .pub)" % key
        )
    proc = _ssh_keygen(["-l", "-f", key], key)
    if proc.returncode != 0:
        raise SignError("%s: ssh-keygen cannot use this key (%s)" % (key, _why(proc)))


def _remove(sig: Path) -> None:
    try:
        sig.unlink(missing_ok=True)
    except OSError as exc:
        raise StoreError(
            "%s: cannot remove the old signature (%s)" % (sig, exc.strerror or exc)
        ) from None


def write_manifest(path: Path, text: str, key: Optional[str]) -> Optional[Path]:
    """Write ``path`` and, with a key that passed :func:`check_key`, ``path``.sig; returns
    the .sig.

    The pair never disagrees: a copy is signed first (a failure changes nothing), the old
    .sig goes before the new manifest comes, then the new .sig; without a key a stale .sig
    is removed."""
    sig = path.with_name(path.name + ".sig")
    if key is None:
        _remove(sig)
        atomic_write(path, text)
        return None
    work = Path(tempfile.mkdtemp(dir=str(path.parent), prefix=".sign-"))
    try:
        copy = work / path.name
        copy.write_text(text, encoding="utf-8")
        proc = _ssh_keygen(["-Y", "sign", "-f", key, "-n", NAMESPACE, str(copy)], key)
        signed = work / sig.name
        if proc.returncode != 0 or not signed.is_file():
            raise SignError("%s: cannot sign with %s (%s)" % (path, key, _why(proc)))
        _remove(sig)
        atomic_write(path, text)
        atomic_write(sig, signed.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
    return sig
