"""Did it work? Goal conversions of treated vs control customers, uplift with an interval (docs/measures.md §5).

* `goal_conversions` counts, in the store, the customers of each scenario (and step) and group
  who reached the goal within a window after the occasion they were enrolled on;
* `measure` turns the counts of a treated and a control group into an `Effect`: the uplift
  (difference of conversion rates) with Newcombe's hybrid score interval, "not enough data
  yet" while the interval spans zero, the customers per group needed to detect the smallest
  uplift worth detecting, and the orders and revenue the scenario added.

Newcombe's interval (method 10 of Newcombe 1998) is built from the two Wilson score intervals;
it keeps its coverage near the nominal level with small groups and rare goals, where the
textbook Wald interval is too narrow, and it is never undefined at 0 % or 100 %.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from ibis import _

from kizuna.analytics import AsOf
from kizuna.models import newcombe_interval, wilson_interval

__all__ = [
    "GOALS", "GROUPS", "Counts", "Effect", "goal_conversions", "local_wall_clock", "measure", "newcombe_interval",
    "sample_size_per_group", "wilson_interval",
]

GOALS = ("order", "stays_subscribed", "referral", "nps_answer")
GROUPS = ("treated", "holdout", "global_control")

_NORMAL = NormalDist()


def sample_size_per_group(p_control: float, min_effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Customers per group to detect an absolute uplift of `min_effect` over `p_control`.

    The normal approximation for comparing two independent proportions with a two-sided test
    at level `alpha` (Fleiss, Levin & Paik 2003, *Statistical Methods for Rates and
    Proportions*, 3rd ed., eq. 4.14, without the continuity correction):
    n = (z₁₋α/₂ √(2 p̄ q̄) + z₁₋β √(p₁q₁ + p₂q₂))² / δ², with p₁ = p_control,
    p₂ = p₁ + δ (p₁ − δ when that would pass 1), p̄ = (p₁ + p₂) / 2, q = 1 − p, rounded up.

    Examples
    --------
    >>> sample_size_per_group(0.10, 0.02)
    3841
    """
    if not 0 <= p_control <= 1:
        raise ValueError(f"p_control must lie between 0 and 1, not {p_control}.")
    if not 0 < min_effect < 1:
        raise ValueError(f"min_effect must lie between 0 and 1, not {min_effect}.")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie between 0 and 1, not {alpha} and {power}.")
    p1 = p_control
    p2 = p1 + min_effect if p1 + min_effect <= 1 else p1 - min_effect
    if not 0 <= p2 <= 1:
        raise ValueError(f"an uplift of {min_effect} cannot be detected from a rate of {p_control}.")
    mean = (p1 + p2) / 2
    z_alpha, z_beta = _NORMAL.inv_cdf(1 - alpha / 2), _NORMAL.inv_cdf(power)
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    # 1e-9 keeps an exact integer (after float noise) from being rounded up one more
    return max(1, math.ceil(root * root / (min_effect * min_effect) - 1e-9))


@dataclass(frozen=True)
class Counts:
    """What happened in one group: customers, how many reached the goal, their orders and revenue."""

    customers: int
    converted: int
    orders: int = 0
    revenue: int = 0

    def __post_init__(self) -> None:
        _check_counts(self.converted, self.customers)
        if self.orders < 0:
            raise ValueError(f"orders cannot be negative, not {self.orders}.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Counts:
        """From a row of `goal_conversions` (NULL revenue is 0)."""
        return cls(int(row["customers"]), int(row["converted"]), int(row["orders"] or 0), int(row["revenue"] or 0))

    @property
    def rate(self) -> float | None:
        return self.converted / self.customers if self.customers else None


@dataclass(frozen=True)
class Effect:
    """The effect of a scenario (or step): treated against its control group.

    `uplift`, `low`, `high`: the difference of conversion rates, treated minus control, and its
    interval (None when a group is empty). `enough_data` is False while the interval includes 0
    (or does not exist): the result then reads "not enough data yet", with `needed_per_group`
    customers per group to detect an uplift of `min_effect`. `incremental_orders` and
    `incremental_revenue`: the treated customers times the difference of orders (revenue) per
    customer between the groups — what the scenario added, on the treated.
    """

    treated: Counts
    control: Counts
    confidence: float
    min_effect: float
    uplift: float | None
    low: float | None
    high: float | None
    enough_data: bool
    needed_per_group: int | None
    incremental_orders: float | None
    incremental_revenue: float | None

    @property
    def treated_rate(self) -> float | None:
        return self.treated.rate

    @property
    def control_rate(self) -> float | None:
        return self.control.rate


def measure(
    treated: Counts,
    control: Counts,
    min_effect: float,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
) -> Effect:
    """The uplift of `treated` over `control` with its interval, and whether there is enough data.

    Parameters
    ----------
    treated, control
        The groups' `Counts` (rows of `goal_conversions`).
    min_effect
        The smallest absolute uplift worth detecting (settings ``min_effect``): sizes
        `needed_per_group`, computed at the control group's rate (the treated one's while the
        control group is empty) with `sample_size_per_group`.
    confidence, power
        Of the interval, and of the test the needed size is computed for (two-sided, α = 1 − confidence).

    Examples
    --------
    >>> effect = measure(Counts(3000, 390), Counts(3000, 300), min_effect=0.02)
    >>> round(effect.uplift, 3), effect.enough_data
    (0.03, True)
    """
    interval = newcombe_interval(treated.converted, treated.customers, control.converted, control.customers,
                                 confidence)
    uplift, low, high = interval if interval is not None else (None, None, None)
    enough = interval is not None and (low > 0 or high < 0)
    base = control.rate if control.rate is not None else treated.rate
    needed = sample_size_per_group(base, min_effect, 1 - confidence, power) if base is not None else None
    if treated.customers and control.customers:
        # n × (a / n − b / m), written so that whole numbers stay whole
        share = treated.customers / control.customers
        orders = treated.orders - share * control.orders
        revenue = treated.revenue - share * control.revenue
    else:
        orders = revenue = None
    return Effect(treated, control, confidence, min_effect, uplift, low, high, enough, needed, orders, revenue)


def goal_conversions(
    enrolments: ibis.Table | pa.Table,
    tables: dict[str, ibis.Table],
    goal: str,
    window_days: int,
    *,
    as_of: dt.date | None = None,
    timezone: str = "Asia/Tokyo",
    spread: bool = False,
) -> ibis.Table:
    """Per scenario (and step) and group: customers, converted, orders and revenue in the goal windows.

    Each enrolment is a customer put in a group (treated, holdout, global_control) on an
    occasion; its window is (occasion_at, occasion_at + window_days]. Goals:

    * ``order``: a completed order in the window;
    * ``stays_subscribed``: no cancellation event in the window;
    * ``referral``: a referral event in the window;
    * ``nps_answer``: an NPS answer in the window.

    A customer enrolled on several occasions counts once: converted when a window of theirs
    reached the goal (for ``stays_subscribed``: when none of their windows saw a cancellation).
    `orders` and `revenue` (yen) are the completed orders in the customers' windows, whatever
    the goal, each order counted once.

    Parameters
    ----------
    enrolments
        Columns scenario, step (optional: the result is then per step too), customer_id,
        occasion_at, group. occasion_at is local wall-clock time, as the store keeps it; an
        Arrow table with timezone-aware occasions is converted to `timezone` first (see
        `local_wall_clock`).
    tables
        The canonical tables (orders, events, nps_answers).
    as_of
        When given, nothing after the end of this day is seen, so past results reproduce.
    spread
        Add ``revenue_squares`` (float64): the sum over the customers of their revenue squared,
        for the variance of revenue per customer (`kizuna.scenarios._costs.revenue_difference`).

    Returns
    -------
    ibis.Table
        scenario, [step,] group, customers, converted, orders, revenue (int64)[, revenue_squares].
    """
    if goal not in GOALS:
        raise ValueError(f"unknown goal {goal!r}; choose one of {', '.join(GOALS)}.")
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, not {window_days}.")
    if isinstance(enrolments, pa.Table):
        if "occasion_at" in enrolments.column_names:
            enrolments = local_wall_clock(enrolments, "occasion_at", timezone)
        enrolments = ibis.memtable(enrolments)
    if enrolments.schema()["occasion_at"].timezone is not None:
        raise ValueError(
            "occasion_at has a timezone, the store's timestamps are local wall-clock time: convert it with "
            "local_wall_clock (or pass the Arrow table) first."
        )
    keys = ["scenario", "step", "group"] if "step" in enrolments.columns else ["scenario", "group"]
    cut = AsOf(as_of) if as_of is not None else None
    e = enrolments.select(*keys, "customer_id", "occasion_at").mutate(
        _until=_.occasion_at + ibis.interval(days=window_days)
    )

    def in_window(table: ibis.Table, at: str) -> ibis.Table:
        """Rows of `table` in some enrolment's window: the enrolment's columns, and `table`'s."""
        seen = table.filter(cut.before_end(table[at])) if cut is not None else table
        return e.inner_join(seen, [e.customer_id == seen.customer_id, seen[at] > e.occasion_at, seen[at] <= e._until])

    # per enrolment: did the goal's event happen in its window (1/0)
    if goal == "order":
        hits = _completed(tables["orders"])
        at = "ordered_at"
    elif goal == "nps_answer":
        hits, at = tables["nps_answers"], "answered_at"
    else:
        events = tables["events"]
        kind = "cancellation" if goal == "stays_subscribed" else "referral"
        hits, at = events.filter(events.kind == kind), "occurred_at"
    touched = (
        in_window(hits.select("customer_id", at), at)
        .select(*keys, "customer_id", "occasion_at")
        .distinct()
        .mutate(_hit=ibis.literal(1))
    )
    per_enrolment = e.left_join(
        touched, [e[k] == touched[k] for k in (*keys, "customer_id", "occasion_at")]
    ).select(*keys, "customer_id", _hit=_._hit.fill_null(0))
    # stays_subscribed: every window free of cancellations; the others: some window reached the goal
    hit = per_enrolment._hit
    success = (1 - hit).min() if goal == "stays_subscribed" else hit.max()
    per_customer = per_enrolment.group_by([*keys, "customer_id"]).aggregate(_converted=success)

    orders = _completed(tables["orders"]).select("customer_id", "order_id", "ordered_at", "amount")
    bought = in_window(orders, "ordered_at").select(*keys, "customer_id", "order_id", "amount").distinct()
    per_buyer = bought.group_by([*keys, "customer_id"]).aggregate(_orders=_.count(), _spent=_.amount.sum())
    spending = per_buyer.group_by(keys).aggregate(orders=_._orders.sum(), revenue=_._spent.sum(),
                                                  revenue_squares=(_._spent.cast("float64") ** 2).sum())
    counts = per_customer.group_by(keys).aggregate(customers=_.count(), converted=_._converted.sum())
    joined = counts.left_join(spending, [counts[k] == spending[k] for k in keys])
    return joined.select(
        *keys,
        customers=joined.customers.cast("int64"),
        converted=joined.converted.cast("int64"),
        orders=joined.orders.fill_null(0).cast("int64"),
        revenue=joined.revenue.fill_null(0).cast("int64"),
        **({"revenue_squares": joined.revenue_squares.fill_null(0).cast("float64")} if spread else {}),
    ).order_by(keys)


def local_wall_clock(rows: pa.Table, column: str, timezone: str) -> pa.Table:
    """`rows` with a timezone-aware timestamp `column` turned into local wall-clock time of `timezone`.

    The store keeps local wall-clock timestamps (kizuna.store); an instant from elsewhere (a
    send ledger in UTC) is compared with orders only after this conversion. Naive columns are
    returned as they are.
    """
    index = rows.column_names.index(column)
    values = rows.column(index)
    kind = values.type
    if not pa.types.is_timestamp(kind) or kind.tz is None:
        return rows
    local = pc.local_timestamp(values.cast(pa.timestamp(kind.unit, timezone)))
    return rows.set_column(index, pa.field(column, local.type), local)


def _completed(orders: ibis.Table) -> ibis.Table:
    return orders.filter(orders.status.fill_null("completed") == "completed")


def _check_counts(x: int, n: int) -> None:
    if n < 0 or x < 0 or x > n:
        raise ValueError(f"counts must satisfy 0 <= converted <= customers, not {x} of {n}.")
