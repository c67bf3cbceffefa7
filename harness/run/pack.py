"""Pack ``agent/`` into one zipapp named by its content hash.

The name changes exactly when the agent's code changes, so a board that already holds
``edgebench-agent-<hash>.pyz`` never needs it again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import List, Tuple

from edgebench import agent

AGENT_DIR = Path(agent.__file__).resolve().parent
MAIN = b"import sys\nfrom agent.__main__ import main\nsys.exit(main())\n"
# Fixed timestamp so the archive bytes (and so its sha256) depend on content only.
EPOCH = (2020, 1, 1, 0, 0, 0)


def _sources() -> List[Tuple[str, bytes]]:
    files = sorted(AGENT_DIR.rglob("*.py"))
    return [("agent/" + p.relative_to(AGENT_DIR).as_posix(), p.read_bytes()) for p in files] + [
        ("__main__.py", MAIN)
    ]


def archive(sources: List[Tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``(name, data)`` whose bytes depend on the content only (fixed timestamps
    and modes)."""
    with tempfile.SpooledTemporaryFile() as buf:
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in sources:
                info = zipfile.ZipInfo(name, EPOCH)
                info.compress_type = compression
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        buf.seek(0)
        return buf.read()


def cached(cache_dir: Path, prefix: str, suffix: str, data: bytes) -> Path:
    """``data`` as ``<prefix><hash><suffix>`` in ``cache_dir``, written (atomically) only
    when no file of that content is there yet."""
    target = cache_dir / ("%s%s%s" % (prefix, hashlib.sha256(data).hexdigest()[:16], suffix))
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(cache_dir), prefix=".%s" % prefix)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)
    return target


def build(cache_dir: Path) -> Path:
    """The agent zipapp in ``cache_dir``, built only when no file of that content exists."""
    return cached(cache_dir, "edgebench-agent-", ".pyz", archive(_sources()))


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "edgebench"
