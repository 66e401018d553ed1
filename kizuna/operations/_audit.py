"""Audit lines: who did what to the workspace's sending, when, and to how many messages.

An operator's act in the web app or from the command line — a scenario switched, a test sent, a
campaign sent — is one line in the operational records (table ``audit``), written by
`record_audit`, read back by `audit_lines`. A line names a scenario or a campaign, never a
customer: the audit outlives an erasure (`kizuna forget`) without holding anyone's data.
"""

from __future__ import annotations

from typing import Any

from kizuna.operations._store import Operations, now_ts

__all__ = ["audit_lines", "record_audit"]


def record_audit(ops: Operations, user: str, action: str, what: str, count: int | None = None, *,
                 at: int | None = None) -> None:
    """Record that `user` did `action` ("scenario.off", "scenario.test", "campaign.send") to `what`
    (a scenario's or campaign's name, a step), concerning `count` messages when it concerned some.

    >>> record_audit(ops, "hanako", "scenario.off", "thank-you", 12)   # doctest: +SKIP
    """
    with ops.write() as db:
        db.execute('INSERT INTO audit (at_ts, "user", action, what, count) VALUES (?, ?, ?, ?, ?)',
                   (now_ts() if at is None else at, user, action, what, count))


def audit_lines(ops: Operations, *, what: str | None = None, prefix: str | None = None,
                limit: int = 50) -> list[Any]:
    """The latest audit lines, newest first (columns at_ts, user, action, what, count): those about
    `what` (exactly, or what starts with `what` and "/"), of actions starting with `prefix`."""
    where, params = [], []
    if what is not None:
        where.append("(what = ? OR substr(what, 1, ?) = ?)")
        params += [what, len(what) + 1, what + "/"]
    if prefix is not None:
        where.append("substr(action, 1, ?) = ?")
        params += [len(prefix), prefix]
    sql = 'SELECT at_ts, "user", action, what, count FROM audit'
    if where:
        sql += " WHERE " + " AND ".join(where)
    return ops.query(sql + f" ORDER BY at_ts DESC LIMIT {int(limit)}", params)
