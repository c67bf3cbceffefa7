"""Runs in PostgreSQL, shared by every harness that names the same database.

One row per run (``runs``: run.json as RunMeta's dict in ``meta``), one per device x
artifact (``records``: Record.to_dict with its raw samples and fingerprint in ``record``,
key columns beside it), the files a run writes (``run_files``: report.md, manifests) and
stored names (``names``).  Every write is its own transaction and every key is unique, so
concurrent writers never lose or duplicate a record (a retried record replaces the earlier
one, as in a run directory), and a writer killed mid-run leaves what it stored for
``--resume``.  The schema is created and upgraded by the ordered :data:`MIGRATIONS`, each
applied once under an advisory lock and noted in ``edgebench_schema``.

psycopg (``edgebench[postgres]``) is imported here only, when a database store is used.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from edgebench.agent.record import Record, RecordError

from .api import Run, check_name, newest_tagged, parse_tag
from .local import (
    LATEST,
    META_FILE,
    SUMMARY_FILE,
    MetaOwner,
    RunMeta,
    StoreError,
    _ordered,
    new_run_id,
    open_run,
)

# Ordered, append-only: a released migration is never edited, a change is a new entry.
MIGRATIONS: Tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id text PRIMARY KEY,
        created_at text NOT NULL DEFAULT '',
        tag text,
        meta jsonb NOT NULL,
        version bigint NOT NULL DEFAULT 1,      -- bumped by every write to the run
        history jsonb,                          -- history.run_entry, as of history_version
        history_version bigint
    );
    CREATE INDEX runs_created ON runs (created_at, run_id);
    CREATE INDEX runs_tag ON runs (tag, created_at);
    CREATE TABLE records (
        run_id text NOT NULL REFERENCES runs ON DELETE CASCADE,
        device text NOT NULL,
        artifact text NOT NULL,
        status text NOT NULL,
        reason text,
        sha256 text,
        p50_ms double precision,
        record jsonb NOT NULL,
        PRIMARY KEY (run_id, device, artifact)
    );
    CREATE INDEX records_device ON records (device, artifact);
    CREATE TABLE run_files (
        run_id text NOT NULL REFERENCES runs ON DELETE CASCADE,
        name text NOT NULL,
        content text NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE names (
        name text PRIMARY KEY,
        run_id text NOT NULL REFERENCES runs ON DELETE CASCADE
    );
    """,
)
_LOCK = 0x6564676562656E63  # pg_advisory_xact_lock key of the migrations ("edgebenc")


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _why(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str)


def _version(conn: Any) -> int:
    row = conn.execute("SELECT to_regclass('edgebench_schema') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM edgebench_schema").fetchone()[0])


def migrate(conn: Any) -> int:
    """Apply the migrations this database lacks; returns its schema version.  A store that
    is up to date is only read (a user without CREATE rights can use it)."""
    version = _version(conn)
    if version < len(MIGRATIONS):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS edgebench_schema ("
                " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = _version(conn)  # another harness may have migrated meanwhile
            for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
                conn.execute(sql)
                conn.execute("INSERT INTO edgebench_schema (version) VALUES (%s)", (number,))
            version = max(version, len(MIGRATIONS))
    if version > len(MIGRATIONS):
        raise StoreError(
            "the store's schema is version %d; this edgebench knows up to %d (upgrade it)"
            % (version, len(MIGRATIONS))
        )
    return version


class PgStore:
    """A PostgreSQL database holding runs; one connection, shared by the device threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = redact(url)
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "%s: the PostgreSQL driver is not installed "
                "(pip install 'edgebench[postgres]')" % self.label
            ) from None
        self._psycopg = psycopg
        self._lock = threading.RLock()
        self._conn = self._connect()
        self._guard(migrate)

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            raise StoreError("%s: cannot connect (%s)" % (self.label, _why(exc))) from None

    def _guard(self, fn: Any, *args: Any) -> Any:
        """``fn(connection, *args)`` under the connection lock; a database error is one
        StoreError line.  A connection that broke (a server restart, a network cut) is made
        again once and ``fn`` retried: every write is an idempotent upsert or a counter."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    return fn(self._conn, *args)
                except self._psycopg.OperationalError as exc:
                    if attempt == 2 or not self._conn.closed:
                        raise StoreError("%s: %s" % (self.label, _why(exc))) from None
                    self._conn = self._connect()
                except self._psycopg.Error as exc:
                    raise StoreError("%s: %s" % (self.label, _why(exc))) from None

    def sql(self, query: str, params: Any = ()) -> List[Tuple[Any, ...]]:
        """Rows of one statement (none for a statement without a result)."""

        def go(conn: Any) -> List[Tuple[Any, ...]]:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

        result: List[Tuple[Any, ...]] = self._guard(go)
        return result

    def transaction(self, statements: List[Tuple[str, Any]]) -> None:
        """All of ``statements`` or none."""

        def go(conn: Any) -> None:
            with conn.transaction():
                for query, params in statements:
                    conn.execute(query, params)

        self._guard(go)

    # --- Store -----------------------------------------------------------------------------

    def create(self) -> Run:
        while True:
            run_id = new_run_id()
            rows = self.sql(
                "INSERT INTO runs (run_id, meta) VALUES (%s, %s::jsonb) "
                "ON CONFLICT DO NOTHING RETURNING run_id",
                (run_id, _dumps(RunMeta(run_id).to_dict())),
            )
            if rows:  # else another host took the same id this second
                return PgRun(self, RunMeta(run_id))

    def _meta(self, run_id: str, meta: Any) -> RunMeta:
        try:
            return RunMeta.from_dict(meta, run_id)
        except ValueError as exc:
            raise StoreError("%s: run %s: %s" % (self.label, run_id, exc)) from None

    def open(self, ref: str, exclude: Optional[str] = None) -> Run:
        tag = parse_tag(ref)
        if tag is not None:
            label, device = tag
            rows = self.sql(
                "SELECT run_id, meta FROM runs WHERE tag = %s AND run_id <> %s",
                (label, exclude or ""),
            )
            found = newest_tagged([self._meta(r, m) for r, m in rows], label, device, exclude)
            if found is None:
                raise StoreError("%s: no run tagged %s in %s" % (ref, label, self.label))
            return PgRun(self, found)
        if ref == LATEST:
            query = "SELECT run_id, meta FROM runs ORDER BY created_at DESC, run_id DESC LIMIT 1"
            rows = self.sql(query)
        else:
            rows = self.sql(
                "SELECT run_id, meta, 0 FROM runs WHERE run_id = %s UNION ALL "
                "SELECT r.run_id, r.meta, 1 FROM names n JOIN runs r USING (run_id) "
                "WHERE n.name = %s ORDER BY 3",  # a run id before a name
                (ref, ref),
            )
        if not rows:
            raise StoreError(
                "%s: no run %r (a run id, latest, a stored name or tag:LABEL)" % (self.label, ref)
            )
        return PgRun(self, self._meta(rows[0][0], rows[0][1]))

    def run_ids(self) -> List[str]:
        """Every run, oldest first."""
        return [r for (r,) in self.sql("SELECT run_id FROM runs ORDER BY created_at, run_id")]

    def summaries(self, summarise: Callable[[Run], Dict[str, Any]]) -> List[Dict[str, Any]]:
        """``summarise(run)`` of every run, oldest first (history's entries): each is
        computed once per change of its run and kept beside it, so a reader fetches one
        small document per run."""
        out = []
        for run_id, version, entry, seen in self.sql(
            "SELECT run_id, version, history, history_version FROM runs"
        ):
            if entry is None or seen != version:
                try:
                    entry = summarise(self.open(run_id))
                except StoreError as exc:
                    print("history: skipped %s" % exc, file=sys.stderr)
                    continue
                self.sql(
                    "UPDATE runs SET history = %s::jsonb, history_version = %s "
                    "WHERE run_id = %s AND version = %s",
                    (_dumps(entry), version, run_id, version),
                )
            out.append(entry)
        out.sort(key=lambda e: (e["created_at"], e["run_id"]))
        return out

    def name(self, name: str, run: Run) -> None:
        self.sql(
            "INSERT INTO names (name, run_id) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET run_id = EXCLUDED.run_id",
            (check_name(name), run.run_id),
        )

    def read_text(self, run: Run, name: str) -> str:
        rows = self.sql(
            "SELECT content FROM run_files WHERE run_id = %s AND name = %s", (run.run_id, name)
        )
        if not rows:
            raise StoreError("%s: no file %r stored with it" % (run.where, name))
        return str(rows[0][0])

    def default_file(self, run: Run, name: str) -> Path:
        """Files a command writes for a run (a manifest) go to the current directory."""
        return Path("%s-%s" % (run.run_id, name))

    # --- import ----------------------------------------------------------------------------

    def import_dir(self, folder: Path) -> Tuple[int, int, int]:
        """Copy the runs of a results root (or one run directory) in; returns (runs,
        records, runs already stored).  Importing again stores nothing twice: the keys are
        the run id and device x artifact."""
        runs = records = known = 0
        for run_dir in _run_dirs(folder):
            run = open_run(run_dir)
            meta = run.meta()
            recs = run.records()
            exists = self.sql("SELECT 1 FROM runs WHERE run_id = %s", (run.run_id,))
            statements: List[Tuple[str, Any]] = [
                (
                    "INSERT INTO runs (run_id, created_at, tag, meta) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (run_id) DO UPDATE SET created_at = EXCLUDED.created_at,"
                    " tag = EXCLUDED.tag, meta = EXCLUDED.meta, version = runs.version + 1",
                    (run.run_id, meta.created_at or "", meta.tag, _dumps(meta.to_dict())),
                )
            ]
            statements += [_upsert_record(run.run_id, r) for r in recs]
            for path in sorted(run_dir.iterdir()):
                if path.is_file() and path.name not in (META_FILE, SUMMARY_FILE):
                    if not path.name.startswith("."):
                        statements.append(_upsert_file(run.run_id, path.name, _text(path)))
            self.transaction(statements)
            runs, records, known = runs + 1, records + len(recs), known + bool(exists)
        return runs, records, known


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError("%s: cannot read (%s)" % (path, _why(exc))) from None


def _run_dirs(folder: Path) -> Iterator[Path]:
    if (folder / META_FILE).is_file():
        yield folder
        return
    if not folder.is_dir():
        raise StoreError("%s: no such results directory" % folder)
    for path in sorted(folder.iterdir()):
        if not path.is_symlink() and (path / META_FILE).is_file():
            yield path


def _upsert_record(run_id: str, record: Record) -> Tuple[str, Any]:
    return (
        "INSERT INTO records (run_id, device, artifact, status, reason, sha256, p50_ms, record)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
        " ON CONFLICT (run_id, device, artifact) DO UPDATE SET status = EXCLUDED.status,"
        " reason = EXCLUDED.reason, sha256 = EXCLUDED.sha256, p50_ms = EXCLUDED.p50_ms,"
        " record = EXCLUDED.record",
        (
            run_id,
            record.device,
            str(record.artifact["name"]),
            record.status,
            record.reason,
            record.artifact.get("sha256"),
            record.stats.get("p50_ms"),
            _dumps(record.to_dict()),
        ),
    )


def _upsert_file(run_id: str, name: str, text: str) -> Tuple[str, Any]:
    return (
        "INSERT INTO run_files (run_id, name, content) VALUES (%s, %s, %s)"
        " ON CONFLICT (run_id, name) DO UPDATE SET content = EXCLUDED.content",
        (run_id, name, text),
    )


_BUMP = "UPDATE runs SET version = version + 1 WHERE run_id = %s"


class PgRun(MetaOwner):
    """One run in a :class:`PgStore`; the same methods as local.RunStore."""

    def __init__(self, store: PgStore, meta: RunMeta) -> None:
        super().__init__(meta)
        self.store = store
        self.run_id = meta.run_id

    @property
    def where(self) -> str:
        return "%s run %s" % (self.store.label, self.run_id)

    def _save_meta(self, meta: RunMeta) -> None:
        self._meta = meta
        self.store.sql(
            "UPDATE runs SET meta = %s::jsonb, created_at = %s, tag = %s,"
            " version = version + 1 WHERE run_id = %s",
            (_dumps(meta.to_dict()), meta.created_at or "", meta.tag, self.run_id),
        )

    def write_record(self, record: Record) -> str:
        """Store ``record``, replacing an earlier one for the same device and artifact."""
        self.store.transaction([_upsert_record(self.run_id, record), (_BUMP, (self.run_id,))])
        return "%s: %s / %s" % (self.where, record.device, record.artifact["name"])

    def records(self) -> List[Record]:
        out = []
        for device, artifact, data in self.store.sql(
            "SELECT device, artifact, record FROM records WHERE run_id = %s", (self.run_id,)
        ):
            try:
                out.append(Record.from_dict(data))
            except RecordError as exc:
                raise StoreError(
                    "%s: %s / %s: not a valid record (%s)" % (self.where, device, artifact, exc)
                ) from None
        return _ordered(out)

    def write_text(self, name: str, text: str) -> str:
        """Keep a report file (report.md, a manifest) with the run."""
        self.store.transaction([_upsert_file(self.run_id, name, text), (_BUMP, (self.run_id,))])
        return "%s: %s" % (self.where, name)

    def mark_latest(self) -> None:
        """Nothing to do: ``latest`` is the newest run by its start."""
