"""The send ledger: every message of every channel, from enrolment to its last state.

States of a row::

    scheduled ──► sending ──► (committing) ──► sent         the server said yes (2xx)
      │ ▲ ▲          │              ├──► scheduled          it said "later" (4xx): again after a back-off
      ▼ │ │          │              ├──► failed             it said no (5xx), its reply in `note`
    deferred         │              ├──► resend ──► …       no answer to the final "." (the connection
                     │              │                       was lost): sent once more, same Message-ID
                     │              └──► unconfirmed        no answer to that resend either, or the run
                     │                                      was killed after the point of no return
                     ├──► failed                            refused for good before the message went
                     └──► scheduled                         refused for now, or the channel was refused
    deferred     (quiet hours, a holiday, the frequency cap: tried again later, never dropped)
    suppressed   (opted out, no address)      holdout   (control group: evaluated, never sent)
    cancelled    (the goal was reached before this step)
    merged       (a later occasion of the same step for the same customer was due at the same
                  time and went instead; never sent, its `note` names that occasion; the later
                  steps of a merged occasion are merged with it)

`unconfirmed` means only "the server may have it": every answer the server gave is acted on.
A row is marked `sending` (committed) before the channel is called and `sent` after, so a
run killed in between finds it at the next start: an e-mail still `sending` never reached the
final "." of DATA and is sent again; one in `committing` may have and is not (it is counted
`unconfirmed`); a LINE message is sent again with the same retry key, which LINE answers with
409 if it had accepted it; an offline list row is sent when its batch file exists. A `resend`
row stays `resend` while it goes (not `sending`), so that it is resent once however often a
run is killed before its final ".". `attempts` counts the tries; `due_ts` is the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kizuna.operations._store import Operations, now_ts

__all__ = ["Delivery", "DueRow", "Enrolment", "Ledger", "MERGED", "RECOVERABLE", "WAITING", "rename_customers",
           "retry_delay"]

WAITING = ("scheduled", "deferred", "resend")
RECOVERABLE = ("sending", "committing")
MERGED = "merged"
_UNTRIED = "('scheduled', 'deferred')"  # what may still be merged: it never went
RETRY_FIRST = 300  # seconds before the first retry after a temporary refusal; doubled with each attempt
RETRY_MAX = 6 * 3600


def retry_delay(attempts: int) -> int:
    """Seconds to wait after the `attempts`-th try of a message was refused for now (or not answered).

    >>> [retry_delay(n) for n in (1, 2, 3, 10)]
    [300, 600, 1200, 21600]
    """
    return min(RETRY_MAX, RETRY_FIRST * 2 ** min(max(attempts, 1) - 1, 20))


@dataclass(frozen=True)
class Delivery:
    """One message of the ledger: which scenario step, to whom, for which occasion, when."""

    key: str  # scenario / step / customer / occasion
    ref: str
    scenario: str
    step: int
    customer_id: str
    occasion: str
    occasion_ts: int
    detail: str | None
    channel: str
    transactional: bool
    due_ts: int


@dataclass(frozen=True)
class Enrolment(Delivery):
    """A message of a new occasion, with the customer's group (treated, holdout, global_control)."""

    grp: str = "treated"


@dataclass(frozen=True)
class DueRow(Delivery):
    """A message to act on now, with its state (a killed run leaves some `sending`)."""

    status: str = "scheduled"
    batch: str | None = None
    attempts: int = 0  # tries before this one

    @classmethod
    def from_row(cls, row: Any) -> DueRow:
        return cls(**{name: row[name] for name in _DUE_COLUMNS}, transactional=bool(row["transactional"]))


_EVER_DEFERRED = "SUM(CASE WHEN deferrals > 0 THEN 1 ELSE 0 END) AS ever_deferred"
_DUE_COLUMNS = ("key", "ref", "scenario", "step", "customer_id", "occasion", "occasion_ts", "detail", "channel",
                "due_ts", "status", "batch", "attempts")


class Ledger:
    """The ledger's reads and writes; each write is one short transaction."""

    def __init__(self, operations: Operations) -> None:
        self.ops = operations

    def known_keys(self, keys: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.ops.query(f"SELECT key FROM deliveries WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            known.update(r[0] for r in rows)
        return known

    def enrol(self, rows: Iterable[Enrolment],
              memberships: Sequence[tuple[str, Sequence[str], Sequence[str], str]] = ()) -> int:
        """Record the messages of new occasions (those already known are left as they are).

        `memberships`: (scenario, entered, left, day) of "entering" triggers, recorded in the same
        transaction, so that a customer is never counted as entered without being enrolled.
        """
        now = now_ts()
        # a generator: a first run's millions of enrolments go to the database as they are made
        values = ((e.key, e.ref, e.scenario, e.step, e.customer_id, e.occasion, e.occasion_ts, e.detail, e.channel,
                   e.grp,
                   int(e.transactional), "holdout" if e.grp != "treated" else "scheduled", e.due_ts, now, now)
                  for e in rows)
        with self.ops.write() as db:
            # the key is unique: an occasion evaluated again (or by a second run) adds nothing
            added = db.executemany(
                "INSERT INTO deliveries (key, ref, scenario, step, customer_id, occasion, occasion_ts, "
                "detail, channel, grp, transactional, status, due_ts, created_ts, updated_ts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", values)
            for scenario, entered, left, day in memberships:
                db.executemany("INSERT INTO memberships VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                               [(scenario, c, day, day) for c in entered])
                db.executemany("DELETE FROM memberships WHERE scenario = ? AND customer_id = ?",
                               [(scenario, c) for c in left])
            return added

    def due(self, now: int, *, limit: int | None = None, after: tuple[int, str] | None = None) -> list[DueRow]:
        """Rows to act on now: waiting and due, and those a killed run left in flight, by due time and key;
        `after` (due_ts, key): those that come after that row (a page of `limit` rows at a time)."""
        sql = f"SELECT * FROM deliveries WHERE ((status IN {WAITING} AND due_ts <= ?) OR status IN {RECOVERABLE})"
        params: tuple = (now,)
        if after is not None:
            sql += " AND (due_ts > ? OR (due_ts = ? AND key > ?))"
            params += (after[0], after[0], after[1])
        sql += " ORDER BY due_ts, key"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [DueRow.from_row(r) for r in self.ops.query(sql, params)]

    def states(self, keys: Sequence[str]) -> dict[str, tuple[str, int, int | None]]:
        """key -> (status, due_ts, sent_ts) for the rows that exist."""
        found: dict[str, tuple[str, int, int | None]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.ops.query(
                f"SELECT key, status, due_ts, sent_ts FROM deliveries WHERE key IN ({','.join('?' * len(chunk))})",
                chunk)
            found.update({key: (status, due, sent) for key, status, due, sent in rows})
        return found

    def recent_sends(self, customer_ids: Iterable[str], since: int) -> dict[str, list[int]]:
        """customer -> times of marketing messages sent since `since` (the frequency cap's count)."""
        ids = list(set(customer_ids))
        sent: dict[str, list[int]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.ops.query(
                "SELECT customer_id, sent_ts FROM deliveries WHERE status IN ('sent', 'unconfirmed') "
                "AND transactional = 0 AND channel != 'insert' AND sent_ts > ? "
                f"AND customer_id IN ({','.join('?' * len(chunk))})", (since, *chunk))
            for customer, at in rows:
                sent.setdefault(customer, []).append(at)
        return sent

    # -- transitions ----------------------------------------------------------------------
    def sending(self, key: str, *, batch: str | None = None) -> None:
        """About to call the channel; a `resend` row keeps its state (it goes once more, at most)."""
        with self.ops.write() as db:
            db.execute("UPDATE deliveries SET status = CASE WHEN status = 'resend' THEN 'resend' ELSE 'sending' END, "
                       "attempts = attempts + 1, batch = ?, updated_ts = ? WHERE key = ?", (batch, now_ts(), key))

    def sending_many(self, keys: Sequence[str], batch: str) -> None:
        now = now_ts()
        with self.ops.write() as db:
            db.executemany("UPDATE deliveries SET status = 'sending', attempts = attempts + 1, batch = ?, "
                           "updated_ts = ? WHERE key = ?", [(batch, now, k) for k in keys])

    def committing(self, key: str) -> None:
        with self.ops.write() as db:
            db.execute("UPDATE deliveries SET status = 'committing', updated_ts = ? WHERE key = ?", (now_ts(), key))

    def sent(self, keys: Sequence[str], *, provider_id: str | None = None, note: str | None = None,
             at: int | None = None) -> None:
        """Mark rows sent at `at` (the run's clock; now by default)."""
        now = now_ts() if at is None else at
        with self.ops.write() as db:
            db.executemany("UPDATE deliveries SET status = 'sent', sent_ts = ?, provider_id = COALESCE(?, "
                           "provider_id), note = ?, updated_ts = ? WHERE key = ?",
                           [(now, provider_id, note, now, k) for k in keys])

    def settle(self, key: str, status: str, note: str | None = None, *, due_ts: int | None = None,
               at: int | None = None) -> None:
        """Move a row to `status` (failed, suppressed, cancelled, deferred, unconfirmed, scheduled, resend).

        `due_ts`: when a deferred, scheduled or resend row is to be tried next (default: as it was).
        """
        now = now_ts() if at is None else at
        with self.ops.write() as db:
            if status == "deferred":
                db.execute("UPDATE deliveries SET status = 'deferred', deferrals = deferrals + 1, due_ts = ?, "
                           "note = ?, updated_ts = ? WHERE key = ?", (due_ts, note, now, key))
            else:
                db.execute("UPDATE deliveries SET status = ?, note = ?, updated_ts = ?, due_ts = COALESCE(?, due_ts), "
                           "sent_ts = CASE WHEN ? = 'unconfirmed' THEN ? ELSE sent_ts END WHERE key = ?",
                           (status, note, now, due_ts, status, now, key))

    def merge(self, rows: Sequence[tuple[Delivery, str]], *, at: int | None = None) -> int:
        """Mark rows `merged` with their note ("merged into order:O9"), and the later steps of their
        occasions with them; rows that went meanwhile are left as they are. Returns the rows marked."""
        now = now_ts() if at is None else at
        with self.ops.write() as db:
            marked = db.executemany(
                f"UPDATE deliveries SET status = '{MERGED}', note = ?, updated_ts = ? "
                f"WHERE key = ? AND status IN {_UNTRIED}", [(note, now, row.key) for row, note in rows])
            marked += db.executemany(
                f"UPDATE deliveries SET status = '{MERGED}', note = ?, updated_ts = ? WHERE scenario = ? "
                f"AND customer_id = ? AND occasion = ? AND step > ? AND status IN {_UNTRIED}",
                [(note, now, row.scenario, row.customer_id, row.occasion, row.step) for row, note in rows])
            return marked

    # -- reading for results --------------------------------------------------------------
    def counts(self, scenario: str | None = None) -> list[Any]:
        """Per scenario, step, channel and status: rows, and rows ever deferred."""
        where, params = ("WHERE scenario = ?", (scenario,)) if scenario else ("", ())
        return self.ops.query(
            f"SELECT scenario, step, channel, status, COUNT(*) AS n, {_EVER_DEFERRED} "
            f"FROM deliveries {where} GROUP BY scenario, step, channel, status ORDER BY scenario, step", params)

    def result_counts(self, now: int, scenario: str | None = None) -> list[Any]:
        """The counts of `kizuna results`: rows (`n`) and rows ever deferred (`ever_deferred`) per
        scenario, step, channel, status, `future` (not due yet at `now`) and `attempted` (tried before)."""
        return self.ops.query(
            "SELECT scenario, step, channel, status, CASE WHEN due_ts > ? THEN 1 ELSE 0 END AS future, "
            f"CASE WHEN attempts > 0 THEN 1 ELSE 0 END AS attempted, COUNT(*) AS n, {_EVER_DEFERRED} FROM deliveries "
            + ("WHERE scenario = ? " if scenario else "")
            + "GROUP BY scenario, step, channel, status, future, attempted ORDER BY scenario, step",
            (now, scenario) if scenario else (now,))

    def enrolments(self, scenario: str | None = None) -> list[Any]:
        """One row per (scenario, customer, occasion): its group and when the occasion was."""
        where, params = ("AND scenario = ?", (scenario,)) if scenario else ("", ())
        return self.ops.query(
            f"SELECT scenario, customer_id, occasion, occasion_ts, grp FROM deliveries WHERE step = 1 {where}",
            params)

    def step_windows(self, scenario: str, now: int) -> list[Any]:
        """Per step, the messages delivered to the treated (`at_ts`: when sent) and the control's rows
        due by `now` (`at_ts`: when theirs would have gone): step, customer_id, grp, at_ts."""
        return self.ops.query(
            "SELECT step, customer_id, grp, CASE WHEN grp = 'treated' THEN sent_ts ELSE due_ts END AS at_ts "
            "FROM deliveries WHERE scenario = ? AND ((grp = 'treated' AND status = 'sent') "
            "OR (grp != 'treated' AND status = 'holdout' AND due_ts <= ?))", (scenario, now))

    def sent_by_channel(self, scenario: str, since: int, until: int) -> dict[str, int]:
        """channel -> messages of `scenario` sent in [since, until), the unconfirmed too (what they cost)."""
        rows = self.ops.query("SELECT channel, COUNT(*) AS n FROM deliveries WHERE scenario = ? "
                              "AND status IN ('sent', 'unconfirmed') AND sent_ts >= ? AND sent_ts < ? GROUP BY channel",
                              (scenario, since, until))
        return {r["channel"]: int(r["n"]) for r in rows}

    def members(self, scenario: str) -> set[str]:
        return {r[0] for r in self.ops.query("SELECT customer_id FROM memberships WHERE scenario = ?", (scenario,))}


def rename_customers(ops: Operations, renames: Mapping[str, str], *, consents: bool = True) -> dict[str, int]:
    """Rename customers (old id -> new id) in the operational records, in one transaction; rows per table.

    A ledger row takes the new id in its `customer_id` and in its key (scenario / step /
    customer / occasion), also a row that has the new id already but still the old one in its
    key (an erasure interrupted after `Operations.forget`). Survey links and answers and
    memberships follow; with `consents`, so do the opt-ins and opt-outs recorded under the old
    id (LINE's are recorded by LINE user id, and stay).
    """
    changed: dict[str, int] = {}
    pairs = list(renames.items())
    with ops.write() as db:
        for start in range(0, len(pairs), 400):
            chunk = dict(pairs[start:start + 400])
            ids = [*chunk, *chunk.values()]
            rows = db.execute(
                f"SELECT key, scenario, step, customer_id FROM deliveries WHERE customer_id IN "
                f"({','.join('?' * len(ids))})", ids).fetchall()
            new_of = {**{n: n for n in chunk.values()}, **chunk}
            back = {n: o for o, n in chunk.items()}
            updates = []
            for key, scenario, step, customer in rows:
                old = customer if customer in chunk else back[customer]
                new = new_of[customer]
                moved = _renamed_key(key, f"{scenario}/{step}/", old, new)
                if moved != key or customer != new:
                    updates.append((moved, new, key))
            db.executemany("UPDATE deliveries SET key = ?, customer_id = ? WHERE key = ?", updates)
            changed["deliveries"] = changed.get("deliveries", 0) + len(updates)
            tables = ["survey_links", "survey_answers", "memberships"]
            for table in tables:
                n = db.executemany(f"UPDATE {table} SET customer_id = ? WHERE customer_id = ?",
                                   [(n, o) for o, n in chunk.items()])
                changed[table] = changed.get(table, 0) + n
            if consents:
                n = db.executemany("UPDATE consents SET subject = ? WHERE subject = ? AND channel != 'line'",
                                   [(n, o) for o, n in chunk.items()])
                changed["consents"] = changed.get("consents", 0) + n
    return {table: n for table, n in changed.items() if n}


def _renamed_key(key: str, prefix: str, old: str, new: str) -> str:
    """`key` with the customer `old` replaced by `new` (also where a key was made otherwise)."""
    if key.startswith(prefix + old + "/"):
        return prefix + new + key[len(prefix + old):]
    return key.replace(old, new)
