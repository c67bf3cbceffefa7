"""Third-party output kept off the user's terminal: file descriptors 1 and 2 into a log file."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def captured(log: Path) -> Iterator[None]:
    """For the duration, whatever is written to stdout or stderr -- by Python (tqdm bars,
    logging, warnings) or by native code (onnxruntime, LiteRT, absl) -- goes to ``log``, at
    the descriptor level; ``log`` is removed again when nothing was written."""
    streams = sys.stdout, sys.stderr
    for stream in streams:
        stream.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log, "w", buffering=1, encoding="utf-8", errors="backslashreplace") as fh:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            sys.stdout = sys.stderr = fh  # replaced streams (pytest's capsys) are kept out too
            try:
                yield
            finally:
                fh.flush()
                sys.stdout, sys.stderr = streams
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)
        with contextlib.suppress(OSError):
            if log.stat().st_size == 0:
                log.unlink()
