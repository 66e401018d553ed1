"""The workspace's operational records: send ledger, consents, survey links and answers,
webhook events, users, web sessions — behind one interface, `Operations`.

Why not the analytics store: DuckDB lets one process write a file at a time, and these records
are written by `kizuna run` (from cron) while `kizuna serve` records an unsubscribe or a survey
answer. Two implementations keep them, chosen by ``[operations] url`` in kizuna.toml:

* `SQLiteOperations` (the default, empty url): one SQLite file in the workspace,
  ``kizuna-ops.sqlite3``, in WAL mode (``_sqlite.py``): writers from several processes of one
  machine, one at a time, readers never blocked;
* `PostgresOperations` (``postgres://…``): the same tables in a PostgreSQL database
  (``_postgres.py``), for several web servers and a cron host that share one workspace.

Both give the same guarantees: every write is one short transaction that takes the writers'
lock up front (SQLite's ``BEGIN IMMEDIATE``; PostgreSQL's transaction-level advisory lock), so
a read-then-write inside `write` sees no other writer in between; the ledger's unique keys make
enrolment exactly-once. The code here is written once, in the SQL both understand, with ``?``
placeholders; each implementation runs it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

__all__ = ["OPERATIONS_FILE", "Operations", "Transaction", "now_ts"]

OPERATIONS_FILE = "kizuna-ops.sqlite3"
ERASED = "erased:"  # the prefix of a consent's subject kept after its customer was erased
POSTGRES_SCHEMES = ("postgres://", "postgresql://")
LOGIN_WINDOW_S = 60  # failed logins count against a client address for this long


def now_ts() -> int:
    return int(time.time())


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Transaction(Protocol):
    """What `Operations.write` yields: statements in the SQL both engines understand, ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run `sql` for each row of parameters; rows changed in all."""
        ...


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

    ``Operations(location)`` opens the implementation for `location`: a ``postgres://`` URL, or
    the path of a SQLite file; `Operations.open(url, home)` does so from ``[operations] url``.
    Connections are per thread, opened on first use; `close` closes the calling thread's.
    Rows read back support ``row["column"]`` and ``row[0]``.

    >>> ops = Operations.open("", Path("shop"))                        # doctest: +SKIP
    >>> ops.set_consent("email", "C001", False, source="unsubscribe")  # doctest: +SKIP
    """

    kind: ClassVar[str] = ""  # "sqlite", "postgres"

    def __new__(cls, location: Path | str, *args: Any, **kwargs: Any) -> Operations:
        if cls is Operations:
            import importlib

            # by name, so that the interface does not import its implementations
            kind = "postgres" if str(location).startswith(POSTGRES_SCHEMES) else "sqlite"
            importlib.import_module(f"kizuna.operations._{kind}")
            cls = next(c for c in Operations.__subclasses__() if c.kind == kind)
        return super().__new__(cls)

    @staticmethod
    def open(url: str, home: Path | str) -> Operations:
        """The records of the workspace in folder `home`: `url` (``[operations] url``) when given,
        else ``kizuna-ops.sqlite3`` in the folder."""
        return Operations(url or Path(home) / OPERATIONS_FILE)

    @staticmethod
    def check_url(url: str) -> None:
        """Refuse an ``[operations] url`` that is neither empty nor PostgreSQL's (before opening)."""
        from kizuna._errors import StoreError

        if url and not url.startswith(POSTGRES_SCHEMES):
            raise StoreError.keyed("error.operations_url", url=repr(_redact(url)), file=OPERATIONS_FILE)

    # -- what each implementation provides -------------------------------------------------
    @property
    def name(self) -> str:
        """Where the records are, for people (a file name, or a URL without its password)."""
        raise NotImplementedError

    def files(self) -> list[Path]:
        """The local files the records live in (SQLite's file, WAL and shared memory), if any."""
        return []

    def write(self) -> contextlib.AbstractContextManager[Transaction]:
        """One write transaction, the writers' lock taken at once, committed or rolled back."""
        raise NotImplementedError

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Rows of one read (``?`` placeholders), each with ``row["column"]`` and ``row[0]``."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the calling thread's connection."""
        raise NotImplementedError

    def forget_connections(self) -> None:
        """In a forked process: drop the parent's connections (never use them) and open anew."""
        raise NotImplementedError

    @contextlib.contextmanager
    def run_lock(self) -> Iterator[bool]:
        """Whether this process may deliver for the workspace (one `kizuna run` at a time) while the
        block runs. SQLite: yes; its runs are kept apart on the one machine by the workspace
        folder's lock file, which the caller holds. PostgreSQL: a lock on the server, so that two
        cron hosts sharing the records never run at once."""
        yield True

    def erase_securely(self) -> None:
        """From now on, what this thread's connection deletes or overwrites is zeroed in the file."""

    def compact(self) -> tuple[str, bool]:
        """Rewrite the records' files so that no deleted or overwritten value stays readable:
        what was done, and whether it was done whole (another process may hold them: then the
        next command tries again)."""
        raise NotImplementedError

    # -- small reads ---------------------------------------------------------------------------
    def _one(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def _count(self, sql: str, params: Iterable[Any] = ()) -> int:
        return int(self.query(sql, params)[0][0])

    # -- the workspace secret (signs links and sessions), and other facts kept -----------------
    def secret(self) -> str:
        """A random secret made on first use and kept in the records: links stay valid across runs."""
        return self.keep_meta("secret", secrets.token_hex(32))

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else row[0]

    def keep_meta(self, key: str, value: str) -> str:
        """Record `value` under `key` unless a value is there already; the value kept."""
        with self.write() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            return db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (key, value))

    def delete_meta(self, key: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def meta_starting(self, prefix: str) -> list[tuple[str, str]]:
        """(key, value) of the facts whose key starts with `prefix`."""
        return [(r[0], r[1]) for r in self.query("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                                                 (len(prefix), prefix))]

    # -- the ledger, as the web app reads it --------------------------------------------------
    def delivery(self, ref: str) -> Any | None:
        """The ledger row of the message with this ref (an unsubscribe link names it)."""
        return self._one("SELECT key, ref, scenario, step, customer_id, channel, status, sent_ts "
                         "FROM deliveries WHERE ref = ?", (ref,))

    def deliveries_of(self, customer_id: str) -> list[Any]:
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
        rows = self.query("SELECT subject, opted_in FROM consents WHERE channel = ?", (channel,))
        found = {row[0]: bool(row[1]) for row in rows}
        if not any(subject.startswith(ERASED) for subject in found):
            return found
        return _Consents(found, functools.partial(_erased_subject, self.secret()))

    def consent(self, channel: str, subject: str) -> bool | None:
        query = "SELECT opted_in FROM consents WHERE channel = ? AND subject = ?"
        row = self._one(query, (channel, subject))
        if row is None and not subject.startswith(ERASED):
            row = self._one(query, (channel, self.erased_subject(subject)))
        return None if row is None else bool(row[0])

    def erased_subject(self, subject: str) -> str:
        """What a consent is kept under once its customer was erased (`kizuna forget`): a keyed
        hash of the customer id or LINE user id, so that an opt-out still holds for an old export
        imported again while the records no longer name the customer."""
        return _erased_subject(self.secret(), subject)

    def keep_consents_erased(self, subject: str, *, line: bool = False) -> int:
        """Move the consents recorded under `subject` (a customer id: every channel but LINE; a LINE
        user id with `line`: LINE's) to its `erased_subject`, the latest change winning; rows moved."""
        erased = self.erased_subject(subject)
        channels = "channel = 'line'" if line else "channel != 'line'"
        with self.write() as db:
            db.execute(
                f"INSERT INTO consents SELECT channel, ?, opted_in, source, changed_ts FROM consents "
                f"WHERE subject = ? AND {channels} ON CONFLICT (channel, subject) DO UPDATE SET "
                "opted_in = excluded.opted_in, source = excluded.source, changed_ts = excluded.changed_ts "
                "WHERE excluded.changed_ts >= consents.changed_ts", (erased, subject))
            return db.execute(f"DELETE FROM consents WHERE subject = ? AND {channels}", (subject,)).rowcount

    # -- surveys ------------------------------------------------------------------------------
    def survey_link(self, customer_id: str, touchpoint: str, *, scenario: str | None = None,
                    ref: str | None = None) -> str:
        """The ref of a survey link for `customer_id` (made once per ref); sign it with `Links`."""
        ref = ref or secrets.token_hex(16)
        with self.write() as db:
            db.execute("INSERT INTO survey_links VALUES (?, ?, ?, ?, ?) ON CONFLICT (ref) DO NOTHING",
                       (ref, customer_id, touchpoint, scenario, now_ts()))
        return ref

    def survey(self, ref: str) -> Any | None:
        """The link and, when answered, its answer (columns score, answered_ts are null if not)."""
        return self._one(
            "SELECT l.ref, l.customer_id, l.touchpoint, l.scenario, a.score, a.answered_ts "
            "FROM survey_links l LEFT JOIN survey_answers a ON a.ref = l.ref WHERE l.ref = ?", (ref,))

    def answer_survey(self, ref: str, score: int, comment: str | None, *, at: int | None = None) -> bool:
        """Store the answer to the link `ref`; False if it was answered before (once per link)."""
        if not 0 <= score <= 10:
            raise ValueError(f"an NPS score is 0 to 10, got {score}")
        with self.write() as db:
            link = db.execute("SELECT customer_id, touchpoint FROM survey_links WHERE ref = ?", (ref,)).fetchone()
            if link is None:
                raise KeyError(ref)
            done = db.execute(
                "INSERT INTO survey_answers (ref, customer_id, answered_ts, score, comment, touchpoint) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ref) DO NOTHING",
                (ref, link[0], now_ts() if at is None else at, score, comment, link[1]),
            )
            return done.rowcount == 1

    def unmerged_answers(self) -> list[Any]:
        return self.query("SELECT ref, customer_id, answered_ts, score, comment, touchpoint "
                          "FROM survey_answers WHERE merged = 0 ORDER BY answered_ts, ref")

    def mark_merged(self, refs: Iterable[str]) -> None:
        with self.write() as db:
            db.executemany("UPDATE survey_answers SET merged = 1 WHERE ref = ?", [(r,) for r in refs])

    # -- webhook events -----------------------------------------------------------------------
    def seen_event(self, event_id: str) -> bool:
        """Whether a webhook event with this id was recorded (a redelivery of it changes nothing)."""
        return self._one("SELECT 1 FROM webhook_events WHERE event_id = ?", (event_id,)) is not None

    def first_delivery_of(self, event_id: str, kind: str) -> bool:
        """Record a webhook event; False when the same event id was recorded before (a redelivery)."""
        with self.write() as db:
            done = db.execute("INSERT INTO webhook_events VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                              (event_id, kind, now_ts()))
            return done.rowcount == 1

    # -- users and their web sessions ---------------------------------------------------------
    def add_user(self, name: str, role: str, password_hash: str) -> None:
        """Add a user, or change an existing one's role and password (which ends their sessions)."""
        with self.write() as db:
            db.execute(
                "INSERT INTO users (name, role, password_hash, created_ts) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash, "
                "generation = users.generation + 1",
                (name, role, password_hash, now_ts()),
            )
            db.execute('DELETE FROM web_sessions WHERE "user" = ?', (name,))

    def set_password(self, name: str, password_hash: str) -> bool:
        """Change a user's password and end every session of theirs; False if there is no such user."""
        with self.write() as db:
            done = db.execute("UPDATE users SET password_hash = ?, generation = generation + 1 WHERE name = ?",
                              (password_hash, name))
            db.execute('DELETE FROM web_sessions WHERE "user" = ?', (name,))
            return done.rowcount == 1

    def user(self, name: str) -> Any | None:
        return self._one("SELECT name, role, password_hash, generation FROM users WHERE name = ?", (name,))

    def user_count(self) -> int:
        """How many users may log in to the web app."""
        return self._count("SELECT count(*) FROM users")

    def start_session(self, name: str, seconds: int) -> str:
        """A new session of user `name` for `seconds`: its random id, for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = now_ts()
        with self.write() as db:
            db.execute("DELETE FROM web_sessions WHERE expires_ts <= ?", (now,))  # keeps the table small
            db.execute("DELETE FROM login_failures WHERE at_ts <= ?", (now - LOGIN_WINDOW_S,))
            row = db.execute("SELECT generation FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(name)
            db.execute("INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?)",
                       (session_id, name, row[0], now, now + seconds))
        return session_id

    def session_user(self, session_id: str) -> Any | None:
        """The user (name, role, generation) of a live session: None when it was ended, has expired,
        or was made before the user's password last changed."""
        return self._one(
            'SELECT u.name, u.role, u.generation FROM web_sessions s JOIN users u ON u.name = s."user" '
            "WHERE s.id = ? AND s.expires_ts > ? AND s.generation = u.generation", (session_id, now_ts()))

    def end_session(self, session_id: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM web_sessions WHERE id = ?", (session_id,))

    # -- failed logins: the web app's limit on password guessing, shared by its processes ------
    def login_wait(self, client: str, per_minute: int, *, at: float | None = None) -> float:
        """Seconds until `client` may try to log in again: 0.0 while it failed fewer than `per_minute`
        times in the last `LOGIN_WINDOW_S` seconds, in any process that shares these records.

        >>> ops.record_login_failure("192.0.2.1", at=0.0)               # doctest: +SKIP
        >>> ops.login_wait("192.0.2.1", 1, at=20.0)                      # doctest: +SKIP
        40.0
        """
        now = time.time() if at is None else at
        rows = self.query("SELECT at_ts FROM login_failures WHERE client = ? AND at_ts > ? "
                          "ORDER BY at_ts DESC LIMIT ?", (client, now - LOGIN_WINDOW_S, per_minute))
        if len(rows) < per_minute:
            return 0.0
        # the oldest of the last `per_minute` failures leaves the window: then one attempt is free again
        return max(0.0, float(rows[-1][0]) + LOGIN_WINDOW_S - now)

    def record_login_failure(self, client: str, *, at: float | None = None) -> None:
        """Count a failed login of `client` (a wrong name or password); older failures than the window
        are deleted, so the table holds the last minute's."""
        now = time.time() if at is None else at
        with self.write() as db:
            db.execute("DELETE FROM login_failures WHERE at_ts <= ?", (now - LOGIN_WINDOW_S,))
            db.execute("INSERT INTO login_failures (client, at_ts) VALUES (?, ?)", (client, now))

    # -- erasure ------------------------------------------------------------------------------
    def knows_customer(self, customer_id: str) -> bool:
        """Whether the ledger or the surveys name this customer."""
        return bool(self.query("SELECT 1 FROM deliveries WHERE customer_id = ? UNION ALL "
                               "SELECT 1 FROM survey_links WHERE customer_id = ? LIMIT 1", (customer_id, customer_id)))

    def has_unmerged_answer(self, customer_id: str) -> bool:
        """Whether the customer answered a survey on the web that is not in the store's nps_answers yet."""
        return bool(self.query("SELECT 1 FROM survey_answers WHERE customer_id = ? AND merged = 0 LIMIT 1",
                               (customer_id,)))

    def rows_of(self, customer_id: str) -> dict[str, int]:
        """Rows naming the customer: table -> rows, for the ledger, survey links and answers, memberships."""
        return {table: self._count(f"SELECT count(*) FROM {table} WHERE customer_id = ?", (customer_id,))
                for table in ("deliveries", "survey_links", "survey_answers", "memberships")}

    def forget(self, customer_id: str, pseudonym: str | None = None) -> None:
        """Erase what these records hold about a customer that could identify them.

        Delivery and survey rows stay (results keep their counts) under a pseudonym; survey
        comments are dropped. Consents stay as they are: an opt-out must outlive the erasure,
        so that a customer re-imported from an old export is not written to again.
        """
        pseudonym = pseudonym or "forgotten-" + secrets.token_hex(8)
        with self.write() as db:
            # a tracked link's URL may carry the customer's own values; its clicks name no one and stay
            db.execute("DELETE FROM message_links WHERE ref IN (SELECT ref FROM deliveries WHERE customer_id = ?)",
                       (customer_id,))
            db.execute("UPDATE deliveries SET customer_id = ? WHERE customer_id = ?", (pseudonym, customer_id))
            db.execute("UPDATE survey_links SET customer_id = ? WHERE customer_id = ?", (pseudonym, customer_id))
            db.execute("UPDATE survey_answers SET customer_id = ?, comment = NULL WHERE customer_id = ?",
                       (pseudonym, customer_id))
            db.execute("DELETE FROM memberships WHERE customer_id = ?", (customer_id,))

    def drop_notes(self, customer_id: str, quotes_customer: Callable[[str], bool]) -> int:
        """Null the ledger notes of `customer_id`'s rows for which `quotes_customer(note)` (an SMTP
        server's refusal names the address); how many."""
        with self.write() as db:
            rows = db.execute("SELECT key, note FROM deliveries WHERE customer_id = ? AND note IS NOT NULL",
                              (customer_id,)).fetchall()
            return db.executemany("UPDATE deliveries SET note = NULL WHERE key = ?",
                                  [(row[0],) for row in rows if quotes_customer(row[1])])


def _redact(url: str) -> str:
    """A URL with its password hidden, for messages (no secrets in logs)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
