"""The operational records in one SQLite file in WAL mode (the default): `SQLiteOperations`.

SQLite in WAL mode takes writers from several processes of one machine (one at a time, each
waiting up to `BUSY_TIMEOUT_MS` for the other), while readers never block. Every write is a
short ``BEGIN IMMEDIATE`` transaction, so a writer takes the lock up front instead of failing
halfway.

The file holds the workspace secret and the web app's password hashes: it is created 0600
(SQLite gives its -wal and -shm files the same mode), whatever the process's umask.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kizuna._errors import StoreError
from kizuna.operations._store import Operations

__all__ = ["BUSY_TIMEOUT_MS", "SQLiteOperations"]

BUSY_TIMEOUT_MS = 30_000
PRIVATE_FILE_MODE = 0o600

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per message kizuna is to send: (scenario, step, customer, occasion) is its key, so a
-- message is enrolled once however often the scenario is evaluated; the row is marked `sending`
-- before the channel is called and `sent` after.
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    ref TEXT NOT NULL UNIQUE,            -- opaque id: links, Message-ID, LINE retry key
    scenario TEXT NOT NULL,
    step INTEGER NOT NULL,               -- 1, 2, … in the scenario's order
    customer_id TEXT NOT NULL,
    occasion TEXT NOT NULL,              -- what triggered it, e.g. "anniversary:2026-11-30"
    occasion_ts INTEGER NOT NULL,        -- when the occasion happened (unix seconds)
    detail TEXT,                         -- what the occasion was about: a product, a score, years
    channel TEXT NOT NULL,
    grp TEXT NOT NULL,                   -- treated / holdout / global_control
    transactional INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,                -- scheduled deferred sending committing sent failed
                                         -- suppressed holdout cancelled unconfirmed
    due_ts INTEGER NOT NULL,             -- not before this moment (unix seconds)
    deferrals INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    batch TEXT,                          -- offline channels: the list file the row went into
    provider_id TEXT,
    note TEXT,                           -- why deferred / failed / suppressed
    created_ts INTEGER NOT NULL,
    updated_ts INTEGER NOT NULL,
    sent_ts INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, due_ts);
CREATE INDEX IF NOT EXISTS deliveries_customer ON deliveries (customer_id, sent_ts);
CREATE INDEX IF NOT EXISTS deliveries_scenario ON deliveries (scenario, step);
-- a run reads the keys of the occasions it found (a span of days): without it, every row of the scenario
CREATE INDEX IF NOT EXISTS deliveries_occasion ON deliveries (scenario, occasion_ts);
-- Consent changes after import: an unsubscribe, a LINE follow or unfollow. `subject` is the
-- customer id, or the LINE user id for channel "line" (the webhook knows only that).
CREATE TABLE IF NOT EXISTS consents (
    channel TEXT NOT NULL,
    subject TEXT NOT NULL,
    opted_in INTEGER NOT NULL,
    source TEXT NOT NULL,
    changed_ts INTEGER NOT NULL,
    PRIMARY KEY (channel, subject)
);
-- "Entering a segment" triggers: who was in a scenario's audience when it was last evaluated.
CREATE TABLE IF NOT EXISTS memberships (
    scenario TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    since TEXT NOT NULL,                 -- the day the customer entered (YYYY-MM-DD)
    seen TEXT NOT NULL,                  -- the last evaluation that still found them
    PRIMARY KEY (scenario, customer_id)
);
CREATE TABLE IF NOT EXISTS survey_links (
    ref TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    touchpoint TEXT NOT NULL,
    scenario TEXT,
    created_ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS survey_answers (
    ref TEXT PRIMARY KEY REFERENCES survey_links (ref),   -- once per link
    customer_id TEXT NOT NULL,
    answered_ts INTEGER NOT NULL,
    score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment TEXT,
    touchpoint TEXT NOT NULL,
    merged INTEGER NOT NULL DEFAULT 0    -- copied into the store's nps_answers
);
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id TEXT PRIMARY KEY,           -- LINE's webhookEventId: a redelivery changes nothing
    kind TEXT NOT NULL,
    received_ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator')),
    password_hash TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0  -- +1 at each new password: ends the sessions made before
);
-- The web app's logged-in sessions: the cookie names one by its random id. Logging out deletes
-- the row; a new password bumps users.generation, which ends every session made before it.
CREATE TABLE IF NOT EXISTS web_sessions (
    id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_ts INTEGER NOT NULL,
    expires_ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions ("user");
-- A scenario switched on, paused or off from the web app or `kizuna scenario on|pause|off`; no
-- row: as its file says (kizuna.scenarios: switches).
CREATE TABLE IF NOT EXISTS scenario_switches (
    scenario TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('on', 'paused', 'off')),
    changed_by TEXT NOT NULL,
    changed_ts INTEGER NOT NULL,
    fresh_from TEXT,                     -- switched on again that day (YYYY-MM-DD): not caught up before it
    baseline INTEGER NOT NULL DEFAULT 0  -- 1: the next run takes an entering trigger's members as they are
);
-- Who did what, when, to how many: a switch, a test send, a campaign (`record_audit`).
CREATE TABLE IF NOT EXISTS audit (
    at_ts INTEGER NOT NULL,
    "user" TEXT NOT NULL,
    action TEXT NOT NULL,                -- e.g. scenario.off, scenario.test, campaign.send
    what TEXT NOT NULL,                  -- e.g. the scenario's name and step; never a customer's data
    count INTEGER                        -- the messages it concerned, when it concerned some
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ts);
-- A user's own addresses, where "send me a test" goes (never a customer's).
CREATE TABLE IF NOT EXISTS user_contacts (
    name TEXT PRIMARY KEY,
    email TEXT,
    line_user_id TEXT
);
-- The links of each message sent, as `kizuna run` rewrote them to {public_url}/c/{token}: a click
-- goes on to `url` (the template's link with its UTM parameters), never to a URL the request names.
CREATE TABLE IF NOT EXISTS message_links (
    ref TEXT NOT NULL,                   -- the message's ref in deliveries
    link INTEGER NOT NULL,               -- 0, 1, … in the order the message shows its links
    url TEXT NOT NULL,
    PRIMARY KEY (ref, link)
);
-- Clicks on those links: one row per message, link and kind of browser; no address is kept.
CREATE TABLE IF NOT EXISTS clicks (
    ref TEXT NOT NULL,
    link INTEGER NOT NULL,
    agent TEXT NOT NULL,                 -- mobile, desktop, bot (link scanners, previews), other
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    clicks INTEGER NOT NULL,
    PRIMARY KEY (ref, link, agent)
);
-- The web app's failed logins of the last minute, per client address: its limit on password guessing
-- holds across the processes of `kizuna serve --workers N`. Rows older than a minute are deleted by
-- the next failed or successful login.
CREATE TABLE IF NOT EXISTS login_failures (
    client TEXT NOT NULL,
    at_ts REAL NOT NULL                  -- unix seconds
);
CREATE INDEX IF NOT EXISTS login_failures_client ON login_failures (client, at_ts);
"""


def _create_private(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists: SQLite would create it with the umask's mode
    (0644, readable by every user of the machine), and gives the -wal and -shm files the main
    file's mode."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    except OSError:  # a folder that does not exist: sqlite3 says so, as before
        return
    os.close(fd)


class _Writer:
    """A write transaction on one SQLite connection (the `Transaction` of `Operations.write`)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        before = self.db.total_changes
        self.db.executemany(sql, rows)
        return self.db.total_changes - before


_INHERITED: list[sqlite3.Connection] = []  # a forked child's copies of its parent's connections


def _close_all(opened: list[tuple[threading.Thread, sqlite3.Connection]], lock: threading.Lock) -> None:
    with lock:
        for _, db in opened:
            db.close()
        opened.clear()


class SQLiteOperations(Operations):
    """The operational records in one SQLite file (see the module docstring)."""

    kind = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        # Every connection this object opened, with its thread: closed when the thread has ended
        # (found at the next connect), by close(), or when the object is collected — never left to
        # the garbage collector, which Python 3.13 reports as a leak (ResourceWarning).
        self._opened: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._opened_lock = threading.Lock()
        weakref.finalize(self, _close_all, self._opened, self._opened_lock)
        _create_private(self.path)
        self.db.executescript(SCHEMA)  # IF NOT EXISTS: two processes may both run it
        self._migrate()

    def _migrate(self) -> None:
        """Columns added after the first release, for files made before them."""
        if "generation" in {row[1] for row in self.db.execute("PRAGMA table_info(users)")}:
            return
        with self.write() as db:
            if "generation" not in {row[1] for row in db.execute("PRAGMA table_info(users)")}:
                db.execute("ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")

    @property
    def name(self) -> str:
        return self.path.name

    def files(self) -> list[Path]:
        return [self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")]

    # -- connections and transactions ---------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """The calling thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                # check_same_thread off only so that close() may close other threads' connections;
                # each is used by the thread that opened it alone (thread-local)
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=False)
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                db.execute("PRAGMA journal_mode = WAL")
                # NORMAL: a commit survives the process being killed (it is in the OS's cache);
                # only a power cut may lose the last commits. FULL would fsync every message.
                db.execute("PRAGMA synchronous = NORMAL")
                db.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                raise StoreError.keyed("error.operations_unopened", name=str(self.path), problem=str(exc)) from None
            self._local.db = db
            with self._opened_lock:
                for thread, old in [(t, c) for t, c in self._opened if not t.is_alive()]:
                    old.close()
                    self._opened.remove((thread, old))
                self._opened.append((threading.current_thread(), db))
        return db

    def forget_connections(self) -> None:
        """After a fork: the parent's connections must not be used, nor closed, in the child (SQLite
        would release the parent's locks); they are kept aside, unused, for the child's life."""
        with self._opened_lock:
            _INHERITED.extend(db for _, db in self._opened)
            self._opened.clear()
        self._local = threading.local()

    def close(self) -> None:
        """Close every connection this object opened, in any thread."""
        _close_all(self._opened, self._opened_lock)
        self._local = threading.local()

    @contextlib.contextmanager
    def write(self) -> Iterator[_Writer]:
        """One write transaction, taken at once (BEGIN IMMEDIATE), committed or rolled back."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # another writer held the lock beyond the timeout
            raise StoreError.keyed("error.operations_locked", name=str(self.path), seconds=BUSY_TIMEOUT_MS // 1000,
                                   detail=f" ({exc})") from None
        try:
            yield _Writer(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        db = self.db
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql, tuple(params)).fetchall()
        finally:
            db.row_factory = None

    # -- erasure ------------------------------------------------------------------------------
    def erase_securely(self) -> None:
        self.db.execute("PRAGMA secure_delete = ON")

    def compact(self) -> tuple[str, bool]:
        """``"vacuum"``: a new file (no free page or cell keeps what was deleted or overwritten),
        and the WAL emptied; ``"vacuum_wal_busy"`` (not finished) when another process held the
        file beyond the busy timeout or was reading it: the next command tries again."""
        db = self.db
        db.execute("PRAGMA secure_delete = ON")
        try:
            db.execute("VACUUM")
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.OperationalError:
            busy = 1
        return ("vacuum_wal_busy", False) if busy else ("vacuum", True)
