"""The rules of every call list (docs/measures.md#call-list): `kizuna priority` and the call lists
`kizuna run` writes for call steps obey the same ones.

* only a customer with a telephone number is called; the others go to the e-mail / DM list of
  the same action;
* nobody called within the last `[calls] cooldown_days` is called again (unless a callback they
  asked for is due);
* at most `call_capacity` calls a day;
* a 48-hour follow-up call only for an NPS answer given within `[calls] follow_up_days`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import ibis

from kizuna.analytics import AsOf

__all__ = ["CallRules", "call_blocker", "fresh_answer", "has_phone", "last_calls", "recently_called"]


@dataclass(frozen=True)
class CallRules:
    """The day's capacity and the windows of the call lists."""

    capacity: int = 100
    cooldown_days: int = 14
    follow_up_days: int = 7

    @classmethod
    def of(cls, prediction: Any, calls: Any = None, capacity: int | None = None) -> CallRules:
        """From the [prediction] and [calls] sections (defaults when [calls] is absent)."""
        return cls(capacity=capacity or prediction.call_capacity,
                   cooldown_days=getattr(calls, "cooldown_days", cls.cooldown_days),
                   follow_up_days=getattr(calls, "follow_up_days", cls.follow_up_days))


def has_phone(phone: ibis.Value) -> ibis.Value:
    """A telephone number to call (in the engine): not empty, not blanks."""
    return (phone.notnull() & (phone.strip() != "")).fill_null(False)


def last_calls(calls: ibis.Table | None, as_of: dt.date) -> ibis.Table | None:
    """Per customer called by the end of `as_of`: last_called_at and callback_due (the latest call
    asked for a callback at or before the end of that day). None without a calls table."""
    if calls is None:
        return None
    cut = AsOf(as_of)
    seen = calls.filter(cut.before_end(calls.called_at))
    ranked = seen.mutate(_n=ibis.row_number().over(group_by=seen.customer_id, order_by=ibis.desc(seen.called_at)))
    latest = ranked.filter(ranked._n == 0)
    due = (latest.outcome == "callback") & latest.next_call_at.notnull() & cut.before_end(latest.next_call_at)
    return latest.select("customer_id", last_called_at=latest.called_at, callback_due=due.fill_null(False))


def recently_called(calls: ibis.Table | None, as_of: dt.date, cooldown_days: int) -> ibis.Table | None:
    """customer_id of those called within the last `cooldown_days` days (0 = today … cooldown_days − 1)
    whose callback is not due: they stay off the call lists. None without a calls table."""
    latest = last_calls(calls, as_of)
    if latest is None or cooldown_days <= 0:
        return None
    since = AsOf(as_of).days_since(latest.last_called_at)
    return latest.filter((since < cooldown_days) & ~latest.callback_due).select("customer_id")


def call_blocker(person: dict[str, Any], as_of: dt.date, rules: CallRules) -> str | None:
    """Why this customer may not be called as of `as_of` (None: they may): no telephone number, or
    called within the cooldown. `person` has `phone` and, when known, `last_called_at` and `callback_due`."""
    phone = person.get("phone")
    if not phone or not str(phone).strip():
        return "no telephone number"
    last = person.get("last_called_at")
    if last is not None and rules.cooldown_days > 0 and not person.get("callback_due"):
        day = last.date() if isinstance(last, dt.datetime) else last
        if 0 <= (as_of - day).days < rules.cooldown_days:
            return f"called on {day.isoformat()}, within the {rules.cooldown_days}-day cooldown"
    return None


def fresh_answer(answered_at: dt.datetime | dt.date | None, as_of: dt.date, follow_up_days: int) -> bool:
    """An NPS answer no older than `follow_up_days` days (7: answered on the as-of date or up to 7 days
    before it): still time for the 48-hour follow-up."""
    if answered_at is None:
        return False
    day = answered_at.date() if isinstance(answered_at, dt.datetime) else answered_at
    return 0 <= (as_of - day).days <= follow_up_days
