"""Per-customer inputs of the prediction models, as one Ibis expression (any engine).

Two families of columns, one row per customer who has ordered by the as-of date:

* the statistics of the customer-base models, in days, as lifetimes defines them (orders on
  the same day count as one purchase): `frequency` (repeat purchase days), `recency` (days
  from the first to the last purchase day), `T` (days from the first purchase day to the
  as-of date), `monetary_value` (mean revenue of the repeat purchase days; 0 without one);
* the churn model's features (`CHURN_FEATURES`), and the context its reasons quote
  (`REASON_CONTEXT`): the date an unresolved complaint was opened, the latest NPS answer …

`churn_labels` gives what happened next: for each customer, whether they ordered (and
whether a subscriber cancelled) in a window after a cut-off date; the churn model is trained
on features as of one date and the labels of the window that follows it.
"""

from __future__ import annotations

import datetime as dt

import ibis
from ibis import _

from kizuna.analytics import AsOf, counted_orders
from kizuna.store import first_by

__all__ = ["CHURN_FEATURES", "EARLIER", "LIFE_EVENTS", "MODEL_COLUMNS", "REASON_CONTEXT", "churn_labels",
           "customer_features", "earlier_summary", "purchase_summary"]

# Features of the churn model, in the order of its matrix. Nulls are "unknown" (no NPS answer,
# a single order): the model takes missing values as they are.
CHURN_FEATURES = (
    "days_since_last_order",    # days from the last order to the as-of date
    "orders",                   # orders over the customer's life
    "orders_365d",              # orders in the last 365 days
    "revenue",                  # lifetime revenue (yen, after refunds)
    "revenue_365d",
    "mean_interval_days",       # the customer's usual days between purchase days (null: one purchase day)
    "overdue_ratio",            # days since the last order / the usual interval
    "tenure_days",              # days since sign-up or the first order, whichever is earlier
    "nps_score",                # the latest answer (0-10) within the last 365 days
    "nps_change",               # the latest answer minus the one before it
    "contacts_365d",            # support contacts opened in the last 365 days
    "open_contacts",            # contacts still unresolved on the as-of date
    "complaints_365d",
    "resolution_hours",         # mean hours to resolve a contact, last 365 days
    "days_since_contact",       # days since the last support contact
    "is_subscriber",            # 1: a subscription started and not cancelled by the as-of date
    "subscription_days",        # days since that subscription started
    "days_since_life_event",    # days since a move, marriage, household or plan change (last 365 days)
)

# What reasons quote besides the features (dates and words a call-centre agent can read out).
REASON_CONTEXT = (
    "last_order_at",            # date of the last order
    "open_complaint_since",     # date the oldest unresolved complaint (or contact) was opened
    "life_event",               # kind of the latest life event (moved, married, …)
)

# The customer-base models' statistics (days).
MODEL_COLUMNS = ("frequency", "recency", "T", "monetary_value")

LIFE_EVENTS = ("moved", "married", "household_change", "plan_change")
_YEAR = dt.timedelta(days=365)


def customer_features(tables: dict[str, ibis.Table], as_of: dt.date, *,
                      purchases: ibis.Table | None = None) -> ibis.Table:
    """customer_id, MODEL_COLUMNS, CHURN_FEATURES and REASON_CONTEXT for customers who ordered by `as_of`.

    Only what happened by the end of `as_of` is seen, so the same call gives the features of
    any past date (the training rows of the churn model, the calibration of a backtest).
    `purchases`: `purchase_summary(tables, as_of)`, when the caller reads it for something else
    too (the lifecycle states), so that the engine computes it once.
    """
    cut = AsOf(as_of)
    year_ago = ibis.literal(cut.end - _YEAR, type="timestamp")
    p = purchase_summary(tables, as_of) if purchases is None else purchases
    frequency = (p.purchase_days - 1).cast("int64")
    recency = (p.last_day - p.first_day).cast("int64")
    base = p.select(
        "customer_id", "first_day", "last_order_at", "orders", "orders_365d", "revenue", "revenue_365d",
        frequency=frequency,
        recency=recency,
        T=(ibis.literal(as_of) - p.first_day).cast("int64"),
        monetary_value=ibis.cases(
            (frequency > 0, p.repeat_revenue.cast("float64") / frequency.cast("float64")), else_=0.0
        ),
        mean_interval_days=ibis.cases((frequency > 0, recency.cast("float64") / frequency.cast("float64")),
                                      else_=ibis.null("float64")),
    )

    nps = _nps(tables["nps_answers"], cut)
    support = _support(tables["support_contacts"], cut, year_ago)
    events = _events(tables["events"], cut, year_ago)
    customers = tables["customers"].select("customer_id", "signed_up_at")

    joined = (
        base.left_join(customers, "customer_id")
        .left_join(nps, "customer_id")
        .left_join(support, "customer_id")
        .left_join(events, "customer_id")
    )
    t = joined
    since_last = cut.days_since(t.last_order_at)
    first_seen = ibis.least(t.first_day, t.signed_up_at.date().fill_null(t.first_day))
    return t.select(
        "customer_id", *MODEL_COLUMNS,
        days_since_last_order=since_last,
        orders=t.orders.cast("int64"),
        orders_365d=t.orders_365d.fill_null(0).cast("int64"),
        revenue=t.revenue.cast("int64"),
        revenue_365d=t.revenue_365d.fill_null(0).cast("int64"),
        mean_interval_days=t.mean_interval_days,
        overdue_ratio=ibis.cases(
            (t.mean_interval_days > 0, since_last.cast("float64") / t.mean_interval_days), else_=ibis.null("float64")
        ),
        tenure_days=(ibis.literal(as_of) - first_seen).cast("int64"),
        nps_score=t.nps_score,
        nps_change=t.nps_change,
        contacts_365d=t.contacts_365d.fill_null(0).cast("int64"),
        open_contacts=t.open_contacts.fill_null(0).cast("int64"),
        complaints_365d=t.complaints_365d.fill_null(0).cast("int64"),
        resolution_hours=t.resolution_hours,
        days_since_contact=cut.days_since(t.last_contact_at),
        is_subscriber=t.is_subscriber.fill_null(0).cast("int64"),
        subscription_days=ibis.cases((t.is_subscriber == 1, cut.days_since(t.subscribed_at)),
                                     else_=ibis.null("int64")),
        days_since_life_event=cut.days_since(t.life_event_at),
        last_order_at=t.last_order_at.date(),
        open_complaint_since=t.open_since.date(),
        life_event=t.life_event,
    )


def purchase_summary(tables: dict[str, ibis.Table], as_of: dt.date, *, earlier: dt.date | None = None) -> ibis.Table:
    """Per customer who ordered by `as_of` (counted orders, `counted_orders`): first_order_at,
    last_order_at, orders (as `kizuna.analytics.lifecycle_states` reads a summary), first_day,
    last_day, purchase_days (days with an order: lifetimes' purchases), repeat_revenue (of the
    purchase days after the first), orders_365d, revenue, revenue_365d (null: none).

    Two groupings of the orders joined by customer: by customer alone for the figures that add up
    over orders (the last 365 days start at a midnight, so an order's day is in them or not), and by
    customer and day for the two that need a customer's days — how many there are and the first
    day's revenue. The day grouping has nearly a group per order, so it carries only those: the
    first grouping's many aggregates over a group per customer cost far less than the same over
    the days. The revenue of the first day is taken off the total (integers: exact) instead of
    summing the other days, which would need each customer's first day beside each of their days.

    `earlier`: a day before `as_of` whose summary is wanted too (the churn model's training cut-off):
    the same columns as of that day, prefixed ``EARLIER``, from the same groupings (the days up to it:
    an order counted by `as_of` was counted by `earlier` exactly when it was placed by then; a
    customer's first day is the same as of either day once they had ordered by `earlier`);
    `earlier_summary` reads them as a summary of their own.
    """
    cut = AsOf(as_of)
    orders = counted_orders(tables["orders"], cut)
    orders = orders.mutate(day=orders.ordered_at.date(), one=ibis.literal(1, type="int64"))
    figures = _order_figures(orders, as_of, None)
    # the orders read apart for the days (the columns they need, a relation of its own): read once for
    # both groupings, the engine would hold every counted order between them (a shared subquery is a
    # common table expression, which DuckDB materialises)
    of_days = counted_orders(tables["orders"].select("customer_id", "ordered_at", "amount", "status", "refund_amount"),
                             cut)
    of_days = of_days.select("customer_id", "revenue", day=of_days.ordered_at.date())
    days = of_days.group_by("customer_id", "day").aggregate(day_revenue=of_days.revenue.sum())
    counts = {"purchase_days": days.count(),
              # the first day's revenue, and how many days have a revenue (a day of orders without an amount has none)
              "_first_revenue": first_by(days.day_revenue, days.day),
              "_revenues": days.day_revenue.count()}
    if earlier is not None:
        seen = orders.day <= ibis.literal(earlier)
        figures |= {EARLIER + name: value for name, value in _order_figures(orders, earlier, seen).items()}
        seen_day = days.day <= ibis.literal(earlier)
        counts |= {EARLIER + "purchase_days": days.count(where=seen_day),
                   EARLIER + "_revenues": days.day_revenue.count(where=seen_day)}
    per = orders.group_by("customer_id").aggregate(**figures).inner_join(
        days.group_by("customer_id").aggregate(**counts), "customer_id")
    days_of = {prefix + "first_day": per[prefix + "first_order_at"].date() for prefix in _prefixes(earlier)}
    days_of |= {prefix + "last_day": per[prefix + "last_order_at"].date() for prefix in _prefixes(earlier)}
    if earlier is not None:
        days_of[EARLIER + "_first_revenue"] = per._first_revenue
    per = per.mutate(**days_of)
    for prefix in _prefixes(earlier):
        per = _with_repeat_revenue(per, prefix)
    return per.select("customer_id", *(prefix + name for prefix in _prefixes(earlier) for name in _SUMMARY_COLUMNS))


EARLIER = "earlier_"  # the columns of `purchase_summary(..., earlier=day)` as of that day
_SUMMARY_COLUMNS = ("first_order_at", "last_order_at", "orders", "first_day", "last_day", "purchase_days", "revenue",
                    "orders_365d", "revenue_365d", "repeat_revenue")


def _prefixes(earlier: dt.date | None) -> tuple[str, ...]:
    return ("",) if earlier is None else ("", EARLIER)


def earlier_summary(summary: ibis.Table) -> ibis.Table:
    """`purchase_summary(tables, earlier)` from `purchase_summary(tables, as_of, earlier=earlier)`: the
    customers who had ordered by then, with the figures as of then."""
    return summary.filter(summary[EARLIER + "purchase_days"] > 0).select(
        "customer_id", **{name: summary[EARLIER + name] for name in _SUMMARY_COLUMNS})


def _order_figures(orders: ibis.Table, as_of: dt.date, seen: ibis.Value | None) -> dict[str, ibis.Value]:
    """The per-customer aggregates of `purchase_summary` that add up over orders, as of `as_of`, over the
    orders `seen` (None: all). Sums, not counts, of the orders of the year: null when there is none."""
    year_ago = (AsOf(as_of).end - _YEAR).date()
    recent = orders.day >= ibis.literal(year_ago)
    if seen is not None:
        recent = recent & seen
    return {
        "first_order_at": orders.ordered_at.min(where=seen),
        "last_order_at": orders.ordered_at.max(where=seen),
        "orders": orders.one.sum(where=seen),
        "revenue": orders.revenue.sum(where=seen),
        "orders_365d": orders.one.sum(where=recent),
        "revenue_365d": orders.revenue.sum(where=recent),
    }


def _with_repeat_revenue(per: ibis.Table, prefix: str) -> ibis.Table:
    # the revenue of the days after the first: null when none of them has one, as a sum over them would be
    # a CASE, not a cast of a boolean: PostgreSQL cannot cast boolean to bigint
    first, count = per[prefix + "_first_revenue"], per[prefix + "_revenues"]
    repeats = count - ibis.cases((first.notnull(), 1), else_=0)
    repeat_revenue = ibis.cases((repeats > 0, per[prefix + "revenue"] - first.fill_null(0)),
                                else_=ibis.null(per[prefix + "revenue"].type()))
    return per.mutate(**{prefix + "repeat_revenue": repeat_revenue}).drop(prefix + "_first_revenue",
                                                                         prefix + "_revenues")


def _nps(answers: ibis.Table, cut: AsOf) -> ibis.Table:
    """The latest answer of the last 365 days and the change from the answer before it."""
    start = ibis.literal(cut.end - _YEAR, type="timestamp")
    seen = answers.filter(cut.before_end(answers.answered_at))
    ranked = seen.mutate(
        _n=ibis.row_number().over(group_by=_.customer_id, order_by=[ibis.desc(_.answered_at), ibis.desc(_.score)])
    )
    latest = ranked.filter(ranked._n == 0, ranked.answered_at >= start).select("customer_id", nps_score=_.score)
    previous = ranked.filter(ranked._n == 1).select("customer_id", _previous=_.score)
    both = latest.left_join(previous, "customer_id")
    return both.select(
        "customer_id", nps_score=both.nps_score.cast("int64"),
        nps_change=(both.nps_score - both._previous).cast("int64"),
    )


def _support(contacts: ibis.Table, cut: AsOf, year_ago: ibis.Value) -> ibis.Table:
    seen = contacts.filter(cut.before_end(contacts.opened_at))
    resolved = seen.resolved_at.notnull() & cut.before_end(seen.resolved_at)
    is_open = ~resolved & (seen.status.fill_null("open") != "resolved")
    recent = seen.opened_at >= year_ago
    complaint = seen.is_complaint.fill_null(False)
    hours = (seen.resolved_at.epoch_seconds() - seen.opened_at.epoch_seconds()).cast("float64") / 3600.0
    return seen.group_by("customer_id").aggregate(
        contacts_365d=seen.count(where=recent),
        open_contacts=seen.count(where=is_open),
        complaints_365d=seen.count(where=recent & complaint),
        resolution_hours=hours.mean(where=recent & resolved),
        last_contact_at=seen.opened_at.max(),
        # what a reason quotes: the oldest open complaint, else the oldest open contact
        open_since=ibis.coalesce(seen.opened_at.min(where=is_open & complaint), seen.opened_at.min(where=is_open)),
    )


def _events(events: ibis.Table, cut: AsOf, year_ago: ibis.Value) -> ibis.Table:
    seen = events.filter(cut.before_end(events.occurred_at))
    latest_start = seen.occurred_at.max(where=seen.kind == "subscription_start")
    latest_cancel = seen.occurred_at.max(where=seen.kind == "cancellation")
    life = seen.filter(seen.kind.isin(LIFE_EVENTS), seen.occurred_at >= year_ago)
    ranked = life.mutate(_n=ibis.row_number().over(group_by=_.customer_id, order_by=ibis.desc(_.occurred_at)))
    latest_life = ranked.filter(ranked._n == 0).select("customer_id", life_event_at=_.occurred_at, life_event=_.kind)
    subscriptions = seen.group_by("customer_id").aggregate(_start=latest_start, _cancel=latest_cancel)
    s = subscriptions
    active = s._start.notnull() & (s._cancel.isnull() | (s._cancel < s._start))
    subscriptions = s.select("customer_id", subscribed_at=s._start, is_subscriber=ibis.cases((active, 1), else_=0))
    return subscriptions.outer_join(latest_life, "customer_id").select(
        customer_id=ibis.coalesce(_.customer_id, _.customer_id_right),
        subscribed_at=_.subscribed_at, is_subscriber=_.is_subscriber,
        life_event_at=_.life_event_at, life_event=_.life_event,
    )


def churn_labels(tables: dict[str, ibis.Table], cutoff: dt.date, horizon_days: int, *,
                 purchases: ibis.Table | None = None) -> ibis.Table:
    """What happened next, for customers who had ordered by `cutoff`: customer_id, ordered (1 when
    the customer ordered in the `horizon_days` after `cutoff`), orders_after (how many),
    purchase_days_after (on how many days), cancelled (1 when a subscription was cancelled in that
    window) and churned (no order, or a cancellation). `purchases`: `purchase_summary(tables,
    cutoff)` (its customers are those who had ordered), when the caller has it.
    """
    start = AsOf(cutoff)
    end = AsOf(cutoff + dt.timedelta(days=horizon_days))
    before = (counted_orders(tables["orders"], start).select("customer_id").distinct() if purchases is None
              else purchases.select("customer_id"))
    after = counted_orders(tables["orders"], end)
    after = after.filter(after.ordered_at >= start.end_literal)
    counts = after.group_by("customer_id").aggregate(
        orders_after=after.count(), purchase_days_after=after.ordered_at.date().nunique()
    )
    events = tables["events"]
    cancels = events.filter(
        events.kind == "cancellation", events.occurred_at >= start.end_literal, end.before_end(events.occurred_at)
    ).select("customer_id").distinct().mutate(_cancelled=1)
    joined = before.left_join(counts, "customer_id").left_join(cancels, "customer_id")
    orders_after = joined.orders_after.fill_null(0).cast("int64")
    cancelled = joined._cancelled.fill_null(0).cast("int64")
    return joined.select(
        "customer_id", orders_after=orders_after,
        purchase_days_after=joined.purchase_days_after.fill_null(0).cast("int64"),
        # a CASE, not a cast of a boolean: PostgreSQL cannot cast boolean to bigint
        ordered=ibis.cases((orders_after > 0, 1), else_=0).cast("int64"), cancelled=cancelled,
        churned=ibis.cases(((orders_after == 0) | (cancelled == 1), 1), else_=0).cast("int64"),
    )
