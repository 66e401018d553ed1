"""Shared building blocks: the as-of cut and the orders that count (docs/measures.md §1 'order')."""

from __future__ import annotations

import datetime as dt

import ibis
from ibis import _

__all__ = ["DETRACTOR_MAX", "PASSIVE_MAX", "AsOf", "counted_orders", "latest_nps", "nps_class", "nps_class_of",
           "ratio", "subscribed_at", "subscription_spells"]

# The NPS classes of an answer's score (0–10, docs/measures.md §1 'NPS'): the one definition.
DETRACTOR_MAX = 6  # 0–6: detractor
PASSIVE_MAX = 8  # 7–8: passive; 9–10: promoter


class AsOf:
    """Everything is computed as of the end of a day in the workspace's local time."""

    def __init__(self, day: dt.date) -> None:
        self.day = day
        # Timestamps are local wall-clock: the day ends at midnight of the next one.
        self.end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())

    @property
    def end_literal(self) -> ibis.Value:
        return ibis.literal(self.end, type="timestamp")

    def before_end(self, column: ibis.Value) -> ibis.Value:
        return column < self.end_literal

    def days_since(self, column: ibis.Value) -> ibis.Value:
        """Whole days from the date of `column` to the as-of date."""
        return (ibis.literal(self.day) - column.date()).cast("int64")


def counted_orders(orders: ibis.Table, as_of: AsOf) -> ibis.Table:
    """Orders up to the as-of date that were not cancelled, with `revenue` after refunds.

    A returned order counts, its amount reduced by the refund (the whole amount when
    the export gives no refund figure).
    """
    status = orders.status.fill_null("completed")
    refund = ibis.cases(
        (status == "returned", orders.refund_amount.fill_null(orders.amount)),
        else_=orders.refund_amount.fill_null(0),
    )
    return orders.filter(as_of.before_end(orders.ordered_at), status != "cancelled").mutate(
        revenue=(orders.amount - refund).cast("int64")
    )


def latest_nps(answers: ibis.Table, as_of: AsOf, validity_days: int) -> ibis.Table:
    """Each customer's latest answer within the validity window: customer_id, score, answered_at, nps_class."""
    start = ibis.literal(as_of.end - dt.timedelta(days=validity_days), type="timestamp")
    valid = answers.filter(as_of.before_end(answers.answered_at), answers.answered_at >= start)
    ranked = valid.mutate(
        _n=ibis.row_number().over(group_by=_.customer_id, order_by=[ibis.desc(_.answered_at), ibis.desc(_.score)])
    )
    latest = ranked.filter(ranked._n == 0).select("customer_id", "score", "answered_at")
    return latest.mutate(nps_class=nps_class(latest.score))


def nps_class(score: ibis.Value) -> ibis.Value:
    """"detractor", "passive" or "promoter" for a score column (in the engine)."""
    return ibis.cases((score <= DETRACTOR_MAX, "detractor"), (score <= PASSIVE_MAX, "passive"), else_="promoter")


def nps_class_of(score: int | None) -> str | None:
    """The same for one score in Python (a page, a call list); None for no score."""
    if score is None:
        return None
    return "detractor" if score <= DETRACTOR_MAX else "passive" if score <= PASSIVE_MAX else "promoter"


def ratio(numerator: ibis.Value, denominator: ibis.Value) -> ibis.Value:
    """A float division on every engine (PostgreSQL would divide integers, or return numeric)."""
    return numerator.cast("float64") / denominator.cast("float64")


def subscription_spells(events: ibis.Table, as_of: AsOf) -> ibis.Table:
    """The customers' subscriptions up to the as-of date as spells: customer_id, began, ended.

    A subscription is active at a moment t when the customer's latest `subscription_start` before t has
    no `cancellation` at or after it and before t (docs/measures.md#subscription-churn). Each start ends
    at the first cancellation at or after it (`ended`, NULL while none came); the starts that end at the
    same cancellation are one spell from the first of them (`began`), so a customer's spells do not
    overlap and a customer is active at t when a spell has began < t <= ended. A cancellation no start
    led to is a spell with no `began`, active at no time.
    """
    subs = events.filter(events.kind.isin(["subscription_start", "cancellation"]), as_of.before_end(events.occurred_at))
    later = ibis.window(group_by=subs.customer_id, order_by=subs.occurred_at, range=(0, None))
    marked = subs.mutate(ended=ibis.cases((subs.kind == "cancellation", subs.occurred_at)).min().over(later))
    return marked.group_by(["customer_id", "ended"]).aggregate(
        began=ibis.cases((marked.kind == "subscription_start", marked.occurred_at)).min())


def subscribed_at(spells: ibis.Table, moment: ibis.Value) -> ibis.Value:
    """Whether a spell of `subscription_spells` is active at `moment` (never NULL)."""
    return (spells.began.notnull() & (spells.began < moment)
            & (spells.ended.isnull() | (spells.ended >= moment)))
