"""The KPI report of `kizuna kpi`: docs/measures.md §1 over a period, as small Arrow tables.

Every figure is computed in the engine and comes back already aggregated; medians and
shares use integer rank arithmetic so that DuckDB, PostgreSQL and Spark agree exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import ibis
import pyarrow as pa
from ibis import _

from kizuna.analytics._base import AsOf, counted_orders, latest_nps, ratio, subscribed_at, subscription_spells
from kizuna.analytics._kpi import nps_summary, top_share
from kizuna.store import to_arrow

__all__ = [
    "LTV_BUCKETS", "KpiReport", "cohort_retention", "cohort_table", "concentration_curve", "decile_revenue",
    "f2_conversion", "headline", "headline_figures", "kpi_by", "kpi_report", "kpi_table", "last_complete_month",
    "lorenz_curve", "ltv_distribution", "newcomers_f2", "nps_by_channel", "subscription_churn",
]

LTV_BUCKETS = (0, 10_000, 30_000, 50_000, 100_000, 300_000, 500_000, 1_000_000)


@dataclass
class KpiReport:
    """What `kizuna kpi` shows. Tables are small (one row per month, channel, cohort …)."""

    as_of: dt.date
    start: dt.date
    headline: dict[str, float | int | None]
    nps: dict[str, float | int | None]
    by: pa.Table  # per month or channel
    ltv_distribution: pa.Table
    concentration: pa.Table  # Lorenz curve by decile of customers
    cohorts: pa.Table
    f2: dict[str, float | int | None]
    nps_by_channel: pa.Table
    subscription_churn: pa.Table


def _month(ts: ibis.Value) -> ibis.Value:
    return ts.truncate("M").date()


def _period_orders(tables: dict[str, ibis.Table], cut: AsOf, start: dt.date) -> ibis.Table:
    orders = counted_orders(tables["orders"], cut)
    return orders.filter(orders.ordered_at >= ibis.literal(start, type="timestamp"))


def headline(period: ibis.Table) -> dict[str, float | int | None]:
    """Repeat rate and purchase frequency exactly as docs/measures.md §1, with AOV, over one period."""
    per_customer = period.group_by("customer_id").aggregate(n=_.count(), revenue=_.revenue.sum())
    row = to_arrow(per_customer.aggregate(
        ordering_customers=_.count(), repeaters=(_.n >= 2).sum(), orders=_.n.sum(), revenue=_.revenue.sum()
    )).to_pylist()[0]
    return headline_figures(row)


def headline_figures(row: dict[str, Any]) -> dict[str, float | int | None]:
    """`headline`'s figures from its sums: ordering_customers, repeaters, orders, revenue."""
    ordering, orders = int(row["ordering_customers"] or 0), int(row["orders"] or 0)
    revenue = int(row["revenue"] or 0)
    return {
        "ordering_customers": ordering, "orders": orders, "revenue": revenue,
        "aov": revenue / orders if orders else None,
        "repeat_rate": int(row["repeaters"] or 0) / ordering if ordering else None,
        "purchase_frequency": orders / ordering if ordering else None,
    }


def kpi_by(period: ibis.Table, by: str) -> pa.Table:
    """Orders, customers, revenue, AOV, repeat rate and purchase frequency per month or channel."""
    key = _month(period.ordered_at) if by == "month" else period.channel.fill_null("(none)")
    keyed = period.mutate(key=key)
    per_customer = keyed.group_by(["key", "customer_id"]).aggregate(n=_.count(), revenue=_.revenue.sum())
    return kpi_table(per_customer, by)


def kpi_table(per_customer: ibis.Table, by: str) -> pa.Table:
    """`kpi_by`'s table from one row per key and customer: key, customer_id, n (orders), revenue."""
    out = per_customer.group_by("key").aggregate(
        ordering_customers=_.count(), repeaters=(_.n >= 2).sum(), orders=_.n.sum(), revenue=_.revenue.sum()
    )
    out = out.mutate(
        aov=ratio(out.revenue, out.orders),
        repeat_rate=ratio(out.repeaters, out.ordering_customers),
        purchase_frequency=ratio(out.orders, out.ordering_customers),
    ).order_by("key")
    return to_arrow(out.rename({by: "key"}))


def ltv_distribution(lifetime: ibis.Table) -> pa.Table:
    """Customers and revenue per lifetime-revenue band (yen lower bounds of LTV_BUCKETS)."""
    band = ibis.literal(LTV_BUCKETS[0])
    for bound in LTV_BUCKETS[1:]:
        band = ibis.cases((lifetime.ltv >= bound, bound), else_=band)
    counts = lifetime.mutate(band=band).group_by("band").aggregate(customers=_.count(), revenue=_.ltv.sum())
    return to_arrow(counts.order_by("band"))


def concentration_curve(lifetime: ibis.Table, points: int = 10) -> pa.Table:
    """Lorenz curve: cumulative revenue share of the top 10 %, 20 % … of customers by revenue."""
    return lorenz_curve(to_arrow(decile_revenue(lifetime, points)), points)


def decile_revenue(lifetime: ibis.Table, points: int = 10, top: float | None = None) -> ibis.Table:
    """`concentration_curve`'s sums per decile of the customers by revenue (decile, revenue, customers),
    and with `top` a share, the revenue of that top share of customers in each decile (`top`: what
    `top_share` sums, ties being of equal revenue)."""
    ranked = lifetime.mutate(
        _pos=ibis.row_number().over(order_by=[ibis.desc(lifetime.ltv), lifetime.customer_id]),
        _n=lifetime.count().over(),
    )
    # customer at 0-based position p falls in decile ceil((p + 1) * points / n)
    ranked = ranked.mutate(decile=((ranked._pos + 1) * points + ranked._n - 1) // ranked._n)
    more = {} if top is None else {"top": ranked.ltv.sum(where=ranked._pos < (ranked._n * top).ceil())}
    return ranked.group_by("decile").aggregate(revenue=_.ltv.sum(), customers=_.count(), **more).order_by("decile")


def lorenz_curve(table: pa.Table, points: int = 10) -> pa.Table:
    """`concentration_curve` from the sums of `decile_revenue`."""
    total = sum(v or 0 for v in table["revenue"].to_pylist()) or 1
    running, shares = 0, []
    for value in table["revenue"].to_pylist():
        running += value or 0
        shares.append(running / total)
    return pa.table({
        "customer_share": [d / points for d in table["decile"].to_pylist()],
        "revenue_share": shares,
    })


def last_complete_month(day: dt.date) -> dt.date:
    """The first day of the last calendar month that has fully ended by the end of `day`."""
    this_month = day.replace(day=1)
    if (day + dt.timedelta(days=1)).month != day.month:  # `day` closes its month
        return this_month
    return (this_month - dt.timedelta(days=1)).replace(day=1)


def _month_number(value: ibis.Value) -> ibis.Value:
    return value.year() * 12 + value.month()  # counts months on any engine


def cohort_retention(orders: ibis.Table, cut: AsOf, months: int = 12) -> pa.Table:
    """Share of each first-order-month cohort ordering again in month k (k = 1 … months).

    Every cohort gets a row for each k whose month has fully ended by the as-of date (a
    month still running would understate retention), with 0 where nobody came back.
    """
    firsts = orders.group_by("customer_id").aggregate(first=_.ordered_at.min())
    # a cohort's size from one row per customer; who came back in month k from one row per
    # (customer, k): counting distinct customers over every order costs several times more
    sizes = firsts.group_by(cohort=_month(firsts.first)).aggregate(cohort_size=_.count())
    joined = orders.inner_join(firsts, "customer_id")
    active = joined.select("customer_id", cohort=_month(joined.first),
                           k=_month_number(joined.ordered_at) - _month_number(joined.first))
    back = active.filter((active.k >= 1) & (active.k <= months)).distinct()
    back = back.group_by(["cohort", "k"]).aggregate(customers=_.count())
    return cohort_table(sizes, back, cut, months)


def cohort_table(sizes: ibis.Table, back: ibis.Table, cut: AsOf, months: int) -> pa.Table:
    """`cohort_retention`'s table from the cohorts' sizes (cohort, cohort_size) and the customers back in
    month k (cohort, k, customers)."""
    complete = last_complete_month(cut.day)
    grid = sizes.cross_join(ibis.memtable({"k": list(range(1, months + 1))}))
    grid = grid.filter(_month_number(grid.cohort) + grid.k <= complete.year * 12 + complete.month)
    out = grid.left_join(back, ["cohort", "k"]).select("cohort", "k", "cohort_size", customers=_.customers.fill_null(0))
    return to_arrow(out.mutate(share=ratio(out.customers, out.cohort_size)).order_by(["cohort", "k"]))


def f2_conversion(orders: ibis.Table, start: dt.date, window_days: int) -> dict[str, float | int | None]:
    """Of customers whose first order falls in the period, the share ordering again within N days."""
    # only the orders of customers whose first order falls in the period are numbered: the
    # numbering is per customer, and the others are most of the orders
    first_orders = orders.group_by("customer_id").aggregate(_first=_.ordered_at.min())
    newcomers = first_orders.filter(first_orders._first >= ibis.literal(start, type="timestamp"))
    return newcomers_f2(orders, newcomers.select("customer_id"), window_days)


def newcomers_f2(orders: ibis.Table, newcomers: ibis.Table, window_days: int) -> dict[str, float | int | None]:
    """`f2_conversion` of the customers in `newcomers` (customer_id), the first-time buyers."""
    theirs = orders.semi_join(newcomers, "customer_id")
    ranked = theirs.mutate(
        _nth=ibis.row_number().over(group_by=theirs.customer_id, order_by=[theirs.ordered_at, theirs.order_id])
    )
    pairs = ranked.filter(ranked._nth <= 1).group_by("customer_id").aggregate(
        first=_.ordered_at.min(where=_._nth == 0), second=_.ordered_at.max(where=_._nth == 1))
    days = pairs.second.date().epoch_days() - pairs.first.date().epoch_days()
    pairs = pairs.mutate(days=days, converted=pairs.second.notnull() & (days <= window_days))
    # the median is the lower middle of the converted customers by days, numbered in the same query
    pairs = pairs.mutate(_pos=ibis.row_number().over(group_by=pairs.converted, order_by=pairs.days),
                         _n=pairs.count().over(group_by=pairs.converted))
    row = to_arrow(pairs.aggregate(
        first_time_buyers=_.count(), converted=_.converted.sum(),
        mean_days=_.days.cast("float64").mean(where=_.converted),
        median_days=_.days.max(where=_.converted & (_._pos == (_._n - 1) // 2)),
    )).to_pylist()[0]
    buyers, converted = int(row["first_time_buyers"] or 0), int(row["converted"] or 0)
    return {
        "first_time_buyers": buyers, "converted": converted,
        "conversion": converted / buyers if buyers else None,
        "mean_days_to_second": row["mean_days"], "median_days_to_second": row["median_days"],
        "window_days": window_days,
    }


def nps_by_channel(tables: dict[str, ibis.Table], cut: AsOf, validity_days: int) -> pa.Table:
    """NPS of customers grouped by the support channel of their last contact."""
    contacts = tables["support_contacts"].filter(cut.before_end(tables["support_contacts"].opened_at))
    last = contacts.mutate(
        _n=ibis.row_number().over(group_by=_.customer_id, order_by=[ibis.desc(_.opened_at), ibis.desc(_.contact_id)])
    )
    last = last.filter(last._n == 0).select("customer_id", "channel")
    answers = latest_nps(tables["nps_answers"], cut, validity_days).inner_join(last, "customer_id")
    out = answers.group_by("channel").aggregate(
        answered=_.count(),
        promoters=(_.nps_class == "promoter").sum(),
        passives=(_.nps_class == "passive").sum(),
        detractors=(_.nps_class == "detractor").sum(),
    )
    out = out.mutate(nps=100.0 * ratio(out.promoters - out.detractors, out.answered))
    return to_arrow(out.order_by("channel"))


def subscription_churn(events: ibis.Table, cut: AsOf, months: int = 12) -> pa.Table:
    """Cancellations in the month ÷ subscriptions active at the start of the month.

    For the last `months` calendar months that have fully ended by the as-of date.
    """
    first_month = last_complete_month(cut.day)
    starts = []
    for _i in range(months):
        starts.append(first_month)
        first_month = (first_month - dt.timedelta(days=1)).replace(day=1)
    calendar = ibis.memtable({"month": sorted(starts)})
    # a spell active at the month's start is cancelled in the month when the cancellation ending it is
    grid = subscription_spells(events, cut).cross_join(calendar)
    month_start = grid.month.cast("timestamp")
    month_end = (grid.month + ibis.interval(months=1)).cast("timestamp")
    active = subscribed_at(grid, month_start)
    out = grid.group_by("month").aggregate(
        active_at_start=active.sum(),
        cancellations=(active & grid.ended.notnull() & (grid.ended < month_end)).sum(),
    )
    out = out.mutate(churn_rate=ibis.cases((out.active_at_start > 0, ratio(out.cancellations, out.active_at_start))))
    return to_arrow(out.order_by("month"))


def kpi_report(
    tables: dict[str, ibis.Table], as_of: dt.date, *, start: dt.date | None = None, by: str = "month",
    nps_validity_days: int = 365, f2_window_days: int = 90, cohort_months: int = 12,
) -> KpiReport:
    """All of docs/measures.md §1 for the period `start` … `as_of` (default: the year up to `as_of`)."""
    cut = AsOf(as_of)
    start = start or as_of - dt.timedelta(days=365)
    orders = counted_orders(tables["orders"], cut)
    period = _period_orders(tables, cut, start)
    lifetime = orders.group_by("customer_id").aggregate(ltv=_.revenue.sum())
    figures = headline(period)
    figures["customers"] = int(to_arrow(tables["customers"].count()).as_py())
    figures["top20_revenue_share"] = top_share(lifetime.ltv, 0.2)
    figures["mean_ltv"] = to_arrow(lifetime.ltv.cast("float64").mean()).as_py()
    return KpiReport(
        as_of=as_of, start=start,
        headline=figures,
        nps=nps_summary(latest_nps(tables["nps_answers"], cut, nps_validity_days)),
        by=kpi_by(period, by),
        ltv_distribution=ltv_distribution(lifetime),
        concentration=concentration_curve(lifetime),
        cohorts=cohort_retention(orders, cut, cohort_months),
        f2=f2_conversion(orders, start, f2_window_days),
        nps_by_channel=nps_by_channel(tables, cut, nps_validity_days),
        subscription_churn=subscription_churn(tables["events"], cut),
    )
