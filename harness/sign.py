"""Sign a deployment manifest with the user's SSH key (``ssh-keygen -Y sign``).

Anyone can then check it offline, without edgebench::

    ssh-keygen -Y verify -f allowed_signers -I IDENTITY -n edgebench-manifest \\
        -s manifest.json.sig < manifest.json
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

NAMESPACE = "edgebench-manifest"


class SignError(Exception):
    """The manifest could not be signed; ``str()`` is one line."""


def sign(path: Path, key: str) -> Path:
    """Write ``path``.sig, an SSH signature of ``path`` by private key file ``key``."""
    if not os.path.isfile(key):
        raise SignError("%s: no such key file" % key)
    sig = path.with_name(path.name + ".sig")
    if sig.exists():  # ssh-keygen would ask before overwriting, and keep the stale one
        sig.unlink()
    try:
        proc = subprocess.run(["ssh-keygen", "-Y", "sign", "-f", key, "-n", NAMESPACE,
                               str(path)], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=120)
    except FileNotFoundError:
        raise SignError("ssh-keygen not found (install OpenSSH 8.1 or later)") from None
    except subprocess.TimeoutExpired:
        raise SignError("%s: ssh-keygen did not finish in 120 s (waiting for a passphrase?)"
                        % key) from None
    if proc.returncode != 0 or not sig.is_file():
        why = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
        raise SignError("%s: cannot sign with %s (%s)" % (path, key, why))
    return sig
