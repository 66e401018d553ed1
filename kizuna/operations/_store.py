"""The workspace's operational records: send ledger, consents, survey links and answers,
webhook events, users — in one SQLite file in WAL mode.

Why not the analytics store: DuckDB lets one process write a file at a time, and these records
are written by `kizuna run` (from cron) while `kizuna serve` records an unsubscribe or a survey
answer. SQLite in WAL mode takes writers from several processes (one at a time, each waiting
up to `BUSY_TIMEOUT_MS` for the other), while readers never block. Every write is a short
`BEGIN IMMEDIATE` transaction, so a writer takes the lock up front instead of failing halfway.
The same file works whatever engine holds the analytics (DuckDB, PostgreSQL, Spark).

The file holds the workspace secret and the web app's password hashes: it is created 0600
(SQLite gives its -wal and -shm files the same mode), whatever the process's umask.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from kizuna._errors import StoreError

__all__ = ["OPERATIONS_FILE", "Operations", "now_ts"]

OPERATIONS_FILE = "kizuna-ops.sqlite3"
BUSY_TIMEOUT_MS = 30_000
ERASED = "erased:"  # the prefix of a consent's subject kept after its customer was erased
PRIVATE_FILE_MODE = 0o600

_SCHEMA = """
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
    user TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_ts INTEGER NOT NULL,
    expires_ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (user);
"""


def now_ts() -> int:
    return int(time.time())


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


def _erased_subject(secret: str, subject: str) -> str:
    digest = hmac.new(secret.encode(), b"kizuna.erased\0" + subject.encode(), hashlib.sha256)
    return ERASED + digest.hexdigest()[:32]


class _Consents(dict):
    """subject -> opted in, whose `get` also looks a subject up under its erased form."""

    def __init__(self, found: dict[str, bool], erased: Callable[[str], str]) -> None:
        super().__init__(found)
        self._erased = erased

    def get(self, subject: str, default: bool | None = None) -> bool | None:  # type: ignore[override]
        if subject in self:
            return self[subject]
        return super().get(self._erased(subject), default)


class Operations:
    """Operational records of one workspace (see the module docstring).

    Connections are per thread (sqlite3 objects must stay in their thread), opened on first
    use; `close` closes the calling thread's.

    >>> ops = Operations(Path("shop") / OPERATIONS_FILE)        # doctest: +SKIP
    >>> ops.set_consent("email", "C001", False, source="unsubscribe")  # doctest: +SKIP
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        _create_private(self.path)
        self.db.executescript(_SCHEMA)  # IF NOT EXISTS: two processes may both run it
        self._migrate()

    def _migrate(self) -> None:
        """Columns added after the first release, for files made before them."""
        if "generation" in {row[1] for row in self.db.execute("PRAGMA table_info(users)")}:
            return
        with self.write() as db:
            if "generation" not in {row[1] for row in db.execute("PRAGMA table_info(users)")}:
                db.execute("ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")

    # -- connections and transactions ---------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=True)
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                db.execute("PRAGMA journal_mode = WAL")
                # NORMAL: a commit survives the process being killed (it is in the OS's cache);
                # only a power cut may lose the last commits. FULL would fsync every message.
                db.execute("PRAGMA synchronous = NORMAL")
                db.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot open the operational records ({exc}).") from None
            self._local.db = db
        return db

    def forget_connections(self) -> None:
        """In a forked process: drop the parent's connections (never use them) and open anew."""
        self._local = threading.local()

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE), committed or rolled back."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # another writer held the lock beyond the timeout
            raise StoreError(
                f"{self.path}: the operational records stayed locked for {BUSY_TIMEOUT_MS // 1000} s "
                f"by another kizuna process ({exc}); try again."
            ) from None
        try:
            yield db
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

    # -- the workspace secret (signs links and sessions) --------------------------------------
    def secret(self) -> str:
        """A random secret made on first use and kept in this file: links stay valid across runs."""
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))
            return db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0]

    # -- the ledger, as the web app reads it --------------------------------------------------
    def delivery(self, ref: str) -> sqlite3.Row | None:
        """The ledger row of the message with this ref (an unsubscribe link names it)."""
        rows = self.query("SELECT key, ref, scenario, step, customer_id, channel, status, sent_ts "
                          "FROM deliveries WHERE ref = ?", (ref,))
        return rows[0] if rows else None

    def deliveries_of(self, customer_id: str) -> list[sqlite3.Row]:
        """Every message kizuna sent, deferred or held back for one customer, newest first."""
        return self.query("SELECT scenario, step, channel, grp, status, due_ts, sent_ts, note "
                          "FROM deliveries WHERE customer_id = ? ORDER BY COALESCE(sent_ts, due_ts) DESC",
                          (customer_id,))

    # -- consents -----------------------------------------------------------------------------
    def set_consent(self, channel: str, subject: str, opted_in: bool, *, source: str,
                    at: int | None = None) -> None:
        """Record an opt-in or opt-out for `channel`; the latest change wins."""
        at = now_ts() if at is None else at
        with self.write() as db:
            db.execute(
                "INSERT INTO consents VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, subject) DO UPDATE "
                "SET opted_in = excluded.opted_in, source = excluded.source, changed_ts = excluded.changed_ts "
                "WHERE excluded.changed_ts >= consents.changed_ts",
                (channel, subject, int(opted_in), source, at),
            )

    def consents(self, channel: str) -> dict[str, bool]:
        """subject -> opted in, for every change recorded on `channel`; `get` also finds the
        choice of an erased customer, kept under `erased_subject`."""
        rows = self.db.execute("SELECT subject, opted_in FROM consents WHERE channel = ?", (channel,))
        found = {subject: bool(opted_in) for subject, opted_in in rows}
        if not any(subject.startswith(ERASED) for subject in found):
            return found
        return _Consents(found, functools.partial(_erased_subject, self.secret()))

    def consent(self, channel: str, subject: str) -> bool | None:
        query = "SELECT opted_in FROM consents WHERE channel = ? AND subject = ?"
        row = self.db.execute(query, (channel, subject)).fetchone()
        if row is None and not subject.startswith(ERASED):
            row = self.db.execute(query, (channel, self.erased_subject(subject))).fetchone()
        return None if row is None else bool(row[0])

    def erased_subject(self, subject: str) -> str:
        """What a consent is kept under once its customer was erased (`kizuna forget`): a keyed
        hash of the customer id or LINE user id, so that an opt-out still holds for an old export
        imported again while the records no longer name the customer."""
        return _erased_subject(self.secret(), subject)

    # -- surveys ------------------------------------------------------------------------------
    def survey_link(self, customer_id: str, touchpoint: str, *, scenario: str | None = None,
                    ref: str | None = None) -> str:
        """The ref of a survey link for `customer_id` (made once per ref); sign it with `Links`."""
        ref = ref or secrets.token_hex(16)
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO survey_links VALUES (?, ?, ?, ?, ?)",
                       (ref, customer_id, touchpoint, scenario, now_ts()))
        return ref

    def survey(self, ref: str) -> sqlite3.Row | None:
        """The link and, when answered, its answer (columns score, answered_ts are null if not)."""
        rows = self.query(
            "SELECT l.ref, l.customer_id, l.touchpoint, l.scenario, a.score, a.answered_ts "
            "FROM survey_links l LEFT JOIN survey_answers a USING (ref) WHERE l.ref = ?", (ref,))
        return rows[0] if rows else None

    def answer_survey(self, ref: str, score: int, comment: str | None, *, at: int | None = None) -> bool:
        """Store the answer to the link `ref`; False if it was answered before (once per link)."""
        if not 0 <= score <= 10:
            raise ValueError(f"an NPS score is 0 to 10, got {score}")
        with self.write() as db:
            link = db.execute("SELECT customer_id, touchpoint FROM survey_links WHERE ref = ?", (ref,)).fetchone()
            if link is None:
                raise KeyError(ref)
            done = db.execute(
                "INSERT OR IGNORE INTO survey_answers (ref, customer_id, answered_ts, score, comment, touchpoint) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (ref, link[0], now_ts() if at is None else at, score, comment, link[1]),
            )
            return done.rowcount == 1

    def unmerged_answers(self) -> list[sqlite3.Row]:
        return self.query("SELECT ref, customer_id, answered_ts, score, comment, touchpoint "
                          "FROM survey_answers WHERE merged = 0 ORDER BY answered_ts, ref")

    def mark_merged(self, refs: Iterable[str]) -> None:
        with self.write() as db:
            db.executemany("UPDATE survey_answers SET merged = 1 WHERE ref = ?", [(r,) for r in refs])

    # -- webhook events -----------------------------------------------------------------------
    def seen_event(self, event_id: str) -> bool:
        """Whether a webhook event with this id was recorded (a redelivery of it changes nothing)."""
        return self.db.execute("SELECT 1 FROM webhook_events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def first_delivery_of(self, event_id: str, kind: str) -> bool:
        """Record a webhook event; False when the same event id was recorded before (a redelivery)."""
        with self.write() as db:
            done = db.execute("INSERT OR IGNORE INTO webhook_events VALUES (?, ?, ?)", (event_id, kind, now_ts()))
            return done.rowcount == 1

    # -- users and their web sessions ---------------------------------------------------------
    def add_user(self, name: str, role: str, password_hash: str) -> None:
        """Add a user, or change an existing one's role and password (which ends their sessions)."""
        with self.write() as db:
            db.execute(
                "INSERT INTO users (name, role, password_hash, created_ts) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash, "
                "generation = generation + 1",
                (name, role, password_hash, now_ts()),
            )
            db.execute("DELETE FROM web_sessions WHERE user = ?", (name,))

    def set_password(self, name: str, password_hash: str) -> bool:
        """Change a user's password and end every session of theirs; False if there is no such user."""
        with self.write() as db:
            done = db.execute("UPDATE users SET password_hash = ?, generation = generation + 1 WHERE name = ?",
                              (password_hash, name))
            db.execute("DELETE FROM web_sessions WHERE user = ?", (name,))
            return done.rowcount == 1

    def user(self, name: str) -> sqlite3.Row | None:
        rows = self.query("SELECT name, role, password_hash, generation FROM users WHERE name = ?", (name,))
        return rows[0] if rows else None

    def start_session(self, name: str, seconds: int) -> str:
        """A new session of user `name` for `seconds`: its random id, for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = now_ts()
        with self.write() as db:
            db.execute("DELETE FROM web_sessions WHERE expires_ts <= ?", (now,))  # keeps the table small
            row = db.execute("SELECT generation FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(name)
            db.execute("INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?)",
                       (session_id, name, row[0], now, now + seconds))
        return session_id

    def session_user(self, session_id: str) -> sqlite3.Row | None:
        """The user (name, role, generation) of a live session: None when it was ended, has expired,
        or was made before the user's password last changed."""
        rows = self.query(
            "SELECT u.name, u.role, u.generation FROM web_sessions s JOIN users u ON u.name = s.user "
            "WHERE s.id = ? AND s.expires_ts > ? AND s.generation = u.generation", (session_id, now_ts()))
        return rows[0] if rows else None

    def end_session(self, session_id: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM web_sessions WHERE id = ?", (session_id,))

    # -- erasure ------------------------------------------------------------------------------
    def forget(self, customer_id: str, pseudonym: str | None = None) -> None:
        """Erase what these records hold about a customer that could identify them.

        Delivery and survey rows stay (results keep their counts) under a pseudonym; survey
        comments are dropped. Consents stay as they are: an opt-out must outlive the erasure,
        so that a customer re-imported from an old export is not written to again.
        """
        pseudonym = pseudonym or "forgotten-" + secrets.token_hex(8)
        with self.write() as db:
            db.execute("UPDATE deliveries SET customer_id = ? WHERE customer_id = ?", (pseudonym, customer_id))
            db.execute("UPDATE survey_links SET customer_id = ? WHERE customer_id = ?", (pseudonym, customer_id))
            db.execute("UPDATE survey_answers SET customer_id = ?, comment = NULL WHERE customer_id = ?",
                       (pseudonym, customer_id))
            db.execute("DELETE FROM memberships WHERE customer_id = ?", (customer_id,))
