"""A real PostgreSQL server on loopback for tests and benchmarks.

initdb into a fresh directory under /tmp, then ``postgres`` in the foreground on a free
port of 127.0.0.1 (trust authentication, fsync off: a throwaway cluster), stopped by its
PID.  As root it runs as the ``postgres`` user (the server refuses root); otherwise as the
current user.  Each test takes a fresh database from :meth:`Postgres.database`.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from sshd import free_port


def bindir() -> Optional[Path]:
    """The folder holding initdb and postgres, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(os.path.realpath(initdb)).parent if initdb else None


def skip_reason() -> Optional[str]:
    """Why PostgreSQL tests cannot run here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install -e '.[postgres]')"
    if bindir() is None:
        return "PostgreSQL server not installed (apt-get install postgresql, as root)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


@dataclass
class Postgres:
    proc: subprocess.Popen
    port: int
    folder: Path

    def url(self, database: str = "postgres") -> str:
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, database)

    def database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE %s" % name)
        return self.url(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(str(self.folder), ignore_errors=True)


def start_postgres() -> Postgres:
    """A new cluster and its server, ready for connections."""
    import psycopg

    binaries = bindir()
    assert binaries is not None
    folder = Path(tempfile.mkdtemp(prefix="edgebench-pg-"))
    as_user: Dict[str, Any] = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(str(folder), entry.pw_uid, entry.pw_gid)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    data = folder / "data"
    subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        cwd=str(folder),
        **as_user,
    )
    port = free_port()
    with open(str(folder / "server.log"), "wb") as log:  # the server keeps its copy
        proc = subprocess.Popen(
            [
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(folder),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=100",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=str(folder),
            **as_user,
        )
    server = Postgres(proc, port, folder)
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(server.url(), connect_timeout=2).close()
            return server
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (folder / "server.log").read_text(errors="replace")
                server.stop()
                raise RuntimeError("PostgreSQL did not start:\n" + log) from None
            time.sleep(0.2)
