"""One lifecycle state per customer as of a day (docs/measures.md#lifecycle-state), the one definition.

The first that holds, for a customer with a counted order by the as-of date:

* ``subscription_cancelled``: their latest ``cancellation`` event is not followed by a later
  ``subscription_start``, and they have placed no counted order on a day after it;
* ``lost``: no counted order for more than `dormant_days` ([analysis], 90) and, for a customer
  with two or more orders, for more than `lapse_factor` (2.0) × their own mean interval too (a
  customer who buys every 120 days is not lost after 91 days, but after 241);
* ``lapsed``: two or more orders and late by more than `lapse_factor` × their own mean interval
  (not yet lost);
* ``at_risk``: late against their own mean interval (more days since the last order than it), or
  a complaint still open on the as-of date, or a latest valid NPS answer of 0–6;
* ``active``: otherwise.

A customer without a counted order has no state (NULL), unless their subscription was cancelled.
`cancelled_on` is the date of the cancellation in force (NULL when none, or when the customer
subscribed again afterwards); `lost_since` the first day the customer counts as lost: the
cancellation's date, or the last order's date + max(`dormant_days`, ⌊`lapse_factor` × interval⌋) + 1.

An Ibis expression over the canonical tables: the same on every engine.
"""

from __future__ import annotations

import datetime as dt

import ibis

from kizuna.analytics._base import AsOf, counted_orders, latest_nps, ratio
from kizuna.analytics._settings import AnalysisSettings

__all__ = ["KEEP_STATES", "LIFECYCLE_STATES", "LOST_STATES", "lifecycle_states"]

LIFECYCLE_STATES = ("active", "at_risk", "lapsed", "lost", "subscription_cancelled")
KEEP_STATES = ("active", "at_risk")  # customers who can still be kept: the churn model's population
LOST_STATES = ("lost", "subscription_cancelled")  # the win-back list's


def lifecycle_states(tables: dict[str, ibis.Table], as_of: dt.date,
                     settings: AnalysisSettings | None = None, *, summary: ibis.Table | None = None) -> ibis.Table:
    """customer_id, lifecycle_state, cancelled_on, lost_since, days_since_last_order for every customer.

    `summary`: `order_summary(...)` for the same day, when the caller has it (`customer_scores`), so
    that the orders are not read again.
    """
    settings = settings or AnalysisSettings()
    cut = AsOf(as_of)
    today = ibis.literal(as_of).epoch_days()
    if summary is None:
        orders = counted_orders(tables["orders"], cut)
        per = orders.group_by("customer_id").aggregate(
            _first=orders.ordered_at.min(), _last=orders.ordered_at.max(), _orders=orders.count()
        )
    else:
        per = summary.select("customer_id", _first=summary.first_order_at, _last=summary.last_order_at,
                             _orders=summary.orders)
    first_day, last_day = per._first.date().epoch_days(), per._last.date().epoch_days()
    per = per.select(
        "customer_id", "_orders", _last_day=last_day, _last_date=per._last.date(),
        _interval=ibis.cases((per._orders >= 2, ratio(last_day - first_day, per._orders - 1)),
                             else_=ibis.null("float64")),
    )

    events = tables["events"].filter(cut.before_end(tables["events"].occurred_at))
    subs = events.filter(events.kind.isin(("subscription_start", "cancellation"))).group_by("customer_id").aggregate(
        _start=events.occurred_at.max(where=events.kind == "subscription_start"),
        _cancel=events.occurred_at.max(where=events.kind == "cancellation"),
    )
    subs = subs.filter(subs._cancel.notnull() & (subs._start.isnull() | (subs._cancel >= subs._start)))
    subs = subs.select("customer_id", _cancel_day=subs._cancel.date().epoch_days(), cancelled_on=subs._cancel.date())

    contacts = tables["support_contacts"].filter(cut.before_end(tables["support_contacts"].opened_at))
    resolved = contacts.resolved_at.notnull() & cut.before_end(contacts.resolved_at)
    still_open = ~resolved & (contacts.status.fill_null("open") != "resolved")
    complaints = contacts.filter(still_open & contacts.is_complaint.fill_null(False))
    complaints = complaints.select("customer_id").distinct().mutate(_complaint=ibis.literal(True))
    nps = latest_nps(tables["nps_answers"], cut, settings.nps_validity_days)
    detractors = nps.filter(nps.nps_class == "detractor").select("customer_id", _detractor=ibis.literal(True))

    c = tables["customers"].select("customer_id")
    j = (c.left_join(per, "customer_id").left_join(subs, "customer_id")
         .left_join(complaints, "customer_id").left_join(detractors, "customer_id"))
    recency = (today - j._last_day).cast("int64")
    ordered = j._orders.notnull()
    cancelled = j._cancel_day.notnull() & (j._last_day.isnull() | (j._last_day <= j._cancel_day))
    interval = j._interval
    late = (j._orders >= 2) & (recency.cast("float64") > interval)
    # days without an order after which the customer is lost: dormant_days, or more for a long cycle
    patience = ibis.greatest(ibis.literal(settings.dormant_days, type="int64"),
                             (settings.lapse_factor * interval).floor().cast("int64").fill_null(0))
    state = ibis.cases(
        (cancelled, "subscription_cancelled"),
        (~ordered, ibis.null("string")),
        (recency > patience, "lost"),
        (late.fill_null(False) & (recency.cast("float64") > settings.lapse_factor * interval).fill_null(False),
         "lapsed"),
        (late.fill_null(False) | j._complaint.fill_null(False) | j._detractor.fill_null(False), "at_risk"),
        else_="active",
    )
    lost_since = ibis.cases(
        (cancelled, j.cancelled_on),
        (ordered & (recency > patience), j._last_date + (patience + 1).as_interval("D")),
        else_=ibis.null("date"),
    )
    return j.select(
        customer_id=c.customer_id,
        lifecycle_state=state,
        cancelled_on=j.cancelled_on,
        lost_since=lost_since,
        days_since_last_order=recency,
    )
