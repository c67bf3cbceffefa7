"""One benchmark at a time per board: an exclusive ``flock`` on ``<workdir>/lease``.

The agent holds the lease for its whole run and writes who holds it into the file, so a
second agent -- another harness, another user -- can say whom it waited for.  A lock is
never stale: the kernel drops a ``flock`` when its holder's file descriptor closes, and
so when the holder exits or is killed, however abruptly; the leftover owner text is only
read while someone holds the lock again (and has replaced it).

Standard library only, Python 3.8 compatible: this runs on the board.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import getpass
import json
import os
import socket
import time
from typing import Any, Dict, Iterator, Optional

from .faults import Fault

LEASE_FILE = "lease"
DEFAULT_TIMEOUT_S = 300.0
POLL_S = 0.2


def _owner(harness: Optional[str]) -> Dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (containers)
        user = str(os.getuid())
    return {
        "host": socket.gethostname(),
        "user": user,
        "pid": os.getpid(),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "harness": harness,
    }


def _holder(fd: int) -> str:
    """Who holds the lease, as far as its file says."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        who = "pid %s (%s@%s) since %s" % (
            info["pid"],
            info["user"],
            info["host"],
            info["started_at"],
        )
        return who + (" for %s" % info["harness"] if info.get("harness") else "")
    except (OSError, ValueError, KeyError, TypeError):
        return "another agent"


def holder(workdir: str) -> Optional[str]:
    """Who holds the lease in ``workdir`` now (as :func:`_holder` says), or None when
    nobody does.  Asks the kernel with a shared lock it drops at once: the file's text alone
    may be a holder long gone."""
    try:
        fd = os.open(os.path.join(os.path.expanduser(workdir), LEASE_FILE), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise
        return _holder(fd)
    finally:
        os.close(fd)  # releases the shared lock, if it was taken


@contextlib.contextmanager
def acquire(
    workdir: str, owner: Optional[str] = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Iterator[Dict[str, Any]]:
    """Hold the board's lease for the ``with`` block; yields what was written into it.

    ``workdir`` may start with ``~``.  ``owner`` describes the harness side (say
    ``user@laptop run 20240101-1200``).  Waits up to ``timeout_s`` for another holder,
    then raises ``Fault("device-busy", ...)``.
    """
    workdir = os.path.expanduser(workdir)
    os.makedirs(workdir, exist_ok=True)
    fd = os.open(os.path.join(workdir, LEASE_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise Fault(
                    "device-busy",
                    "the board is busy: its lease is held by %s "
                    "(waited %.0f s)" % (_holder(fd), timeout_s),
                )
            time.sleep(POLL_S)
        info = _owner(owner)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        yield info
    finally:
        os.close(fd)  # releases the lock
