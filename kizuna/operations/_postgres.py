"""The operational records in a PostgreSQL database: `PostgresOperations` (psycopg 3).

For a workspace served by several web servers and a cron host (``[operations] url`` in
kizuna.toml). The tables, their unique keys and the code that writes them are those of the
SQLite file; what differs is how a write is serialised: each write transaction first takes one
transaction-level advisory lock (``pg_advisory_xact_lock``), as SQLite's ``BEGIN IMMEDIATE``
takes its file's write lock, so that a read-then-write inside `write` (a claim, the workspace
secret made once, a survey answered once) sees no other writer in between, on any host.
Readers never wait (MVCC). A writer waits up to `LOCK_TIMEOUT_S` for the lock, then gives up
with one line, like SQLite's busy timeout.

The psycopg connections are per thread (and per process: a forked child opens its own).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from kizuna._errors import StoreError
from kizuna.operations._store import Operations, _redact

__all__ = ["PostgresOperations"]

LOCK_TIMEOUT_S = 30
WRITE_LOCK = 0x6B697A756E61  # "kizuna": the one advisory lock every writer of the records takes
RUN_LOCK = WRITE_LOCK + 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    ref TEXT NOT NULL UNIQUE,
    scenario TEXT NOT NULL,
    step INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    occasion TEXT NOT NULL,
    occasion_ts BIGINT NOT NULL,
    detail TEXT,
    channel TEXT NOT NULL,
    grp TEXT NOT NULL,
    transactional INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    due_ts BIGINT NOT NULL,
    deferrals INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    batch TEXT,
    provider_id TEXT,
    note TEXT,
    created_ts BIGINT NOT NULL,
    updated_ts BIGINT NOT NULL,
    sent_ts BIGINT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, due_ts);
CREATE INDEX IF NOT EXISTS deliveries_customer ON deliveries (customer_id, sent_ts);
CREATE INDEX IF NOT EXISTS deliveries_scenario ON deliveries (scenario, step);
-- a run reads the keys of the occasions it found (a span of days): without it, every row of the scenario
CREATE INDEX IF NOT EXISTS deliveries_occasion ON deliveries (scenario, occasion_ts);
CREATE TABLE IF NOT EXISTS consents (
    channel TEXT NOT NULL,
    subject TEXT NOT NULL,
    opted_in INTEGER NOT NULL,
    source TEXT NOT NULL,
    changed_ts BIGINT NOT NULL,
    PRIMARY KEY (channel, subject)
);
CREATE TABLE IF NOT EXISTS memberships (
    scenario TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    since TEXT NOT NULL,
    seen TEXT NOT NULL,
    PRIMARY KEY (scenario, customer_id)
);
CREATE TABLE IF NOT EXISTS survey_links (
    ref TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    touchpoint TEXT NOT NULL,
    scenario TEXT,
    created_ts BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS survey_answers (
    ref TEXT PRIMARY KEY REFERENCES survey_links (ref),
    customer_id TEXT NOT NULL,
    answered_ts BIGINT NOT NULL,
    score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment TEXT,
    touchpoint TEXT NOT NULL,
    merged INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    received_ts BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator')),
    password_hash TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS web_sessions (
    id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions ("user");
CREATE TABLE IF NOT EXISTS scenario_switches (
    scenario TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('on', 'paused', 'off')),
    changed_by TEXT NOT NULL,
    changed_ts BIGINT NOT NULL,
    fresh_from TEXT,
    baseline INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS audit (
    at_ts BIGINT NOT NULL,
    "user" TEXT NOT NULL,
    action TEXT NOT NULL,
    what TEXT NOT NULL,
    count INTEGER
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ts);
CREATE TABLE IF NOT EXISTS user_contacts (
    name TEXT PRIMARY KEY,
    email TEXT,
    line_user_id TEXT
);
CREATE TABLE IF NOT EXISTS message_links (
    ref TEXT NOT NULL,
    link INTEGER NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (ref, link)
);
CREATE TABLE IF NOT EXISTS clicks (
    ref TEXT NOT NULL,
    link INTEGER NOT NULL,
    agent TEXT NOT NULL,
    first_ts BIGINT NOT NULL,
    last_ts BIGINT NOT NULL,
    clicks INTEGER NOT NULL,
    PRIMARY KEY (ref, link, agent)
);
CREATE TABLE IF NOT EXISTS login_failures (
    client TEXT NOT NULL,
    at_ts DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_client ON login_failures (client, at_ts);
"""
TABLES = ("meta", "deliveries", "consents", "memberships", "survey_links", "survey_answers", "webhook_events",
          "users", "web_sessions", "message_links", "clicks", "login_failures")

_PLACEHOLDER = re.compile(r"%|\?")


def _postgres_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` doubled)."""
    return _PLACEHOLDER.sub(lambda m: "%s" if m.group() == "?" else "%%", sql)


def _statement(sql: str, params: Iterable[Any]) -> tuple[str, tuple | None]:
    # without parameters psycopg sends the text as it is (several statements allowed)
    params = tuple(params)
    return (_postgres_sql(sql), params) if params else (sql, None)


class Row(tuple):
    """A row read back: ``row[0]`` and ``row["column"]``, like sqlite3.Row; `dict(row)` works."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    index = {column.name: n for n, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


class _Writer:
    """A write transaction on one psycopg connection (the `Transaction` of `Operations.write`)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.connection.cursor(row_factory=_row_factory)
        return cursor.execute(*_statement(sql, params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        rows = [tuple(r) for r in rows]
        if not rows:
            return 0
        with self.connection.cursor() as cursor:
            cursor.executemany(_postgres_sql(sql), rows)
            return max(cursor.rowcount, 0)


class PostgresOperations(Operations):
    """The operational records in one PostgreSQL database (see the module docstring)."""

    kind = "postgres"

    def __init__(self, url: str) -> None:
        try:
            import psycopg  # noqa: F401  (the postgres extra)
        except ImportError:
            raise StoreError.keyed("error.operations_needs_psycopg") from None
        self.url = url.replace("postgresql://", "postgres://", 1)
        self._local = threading.local()
        with self.write() as db:  # serialised: two processes creating the tables at once would collide
            db.execute(SCHEMA)

    @property
    def name(self) -> str:
        return _redact(self.url)

    # -- connections and transactions ---------------------------------------------------------
    @property
    def connection(self) -> Any:
        """The calling thread's connection (autocommit; `write` opens its transactions)."""
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            import psycopg

            try:
                connection = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError.keyed("error.operations_unopened", name=self.name,
                                       problem=str(exc).strip().splitlines()[0]) from None
            self._local.connection = connection
        return connection

    def forget_connections(self) -> None:
        self._local = threading.local()

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    @contextlib.contextmanager
    def write(self) -> Iterator[_Writer]:
        """One write transaction that takes the writers' lock first, committed or rolled back."""
        import psycopg

        connection = self.connection
        with connection.transaction():
            try:
                connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'")
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            except psycopg.errors.LockNotAvailable:
                raise StoreError.keyed("error.operations_locked", name=self.name, seconds=LOCK_TIMEOUT_S,
                                       detail="") from None
            yield _Writer(connection)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        with self.connection.cursor(row_factory=_row_factory) as cursor:
            return cursor.execute(*_statement(sql, params)).fetchall()

    @contextlib.contextmanager
    def run_lock(self) -> Iterator[bool]:
        """Whether this process holds the workspace's run lock (one `kizuna run` at a time, on any
        host) for the block; released when the block ends or the process dies."""
        import psycopg

        connection = psycopg.connect(self.url, autocommit=True)
        try:
            held = connection.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK,)).fetchone()[0]
            yield bool(held)
        finally:
            connection.close()

    # -- erasure ------------------------------------------------------------------------------
    def compact(self) -> tuple[str, bool]:
        """``"vacuum_full"``: each table rewritten into new files by ``VACUUM FULL`` (the old ones
        removed). The server's WAL and backups are the database administrator's."""
        for table in TABLES:
            self.connection.execute(f"VACUUM FULL {table}")  # autocommit: outside a transaction
        return "vacuum_full", True
