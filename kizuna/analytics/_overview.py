"""The overview's figures (what `kizuna analyze` stores for the web app's first page), computed from one
summary of the orders instead of from every order once per figure.

The summary is one row per customer and calendar month of the counted orders (`order_months`), and one
row per customer made from it (`customer_totals`); both are kept in the engine (Ibis' `cache`, a
temporary table) while the figures read them. Each figure is the one of the KPI report (`kpi_report`,
`kpi_comparison`, `monthly_ltv`), which reads the orders themselves: the same figures, since every figure
the overview shows needs no finer time than a month (its periods are whole months) except the period of
the KPI report's headline, which the summary counts apart, and F2, which reads the orders of the
period's first-time buyers only. `tests/test_web_stored.py` compares the two.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ibis
from ibis import _

from kizuna.analytics._base import AsOf, counted_orders, latest_nps
from kizuna.analytics._dashboard import TREND_MONTHS, ltv_trend, monthly_nps, rf_grid
from kizuna.analytics._kpi import KpiComparison, Period, comparison, nps_summary, period_figures
from kizuna.analytics._reports import (
    cohort_table,
    decile_revenue,
    headline_figures,
    kpi_table,
    lorenz_curve,
    newcomers_f2,
    subscription_churn,
)
from kizuna.store import scratch_table, to_arrow

if TYPE_CHECKING:
    import pyarrow as pa

    from kizuna.analytics._settings import AnalysisSettings

__all__ = ["customer_totals", "order_months", "overview_from_orders", "overview_from_scores"]

COHORT_MONTHS = 12  # as `kpi_report`'s


def _month(ts: ibis.Value) -> ibis.Value:
    return ts.truncate("M").date()


def _month_number(value: ibis.Value) -> ibis.Value:
    return value.year() * 12 + value.month()


def order_months(orders: ibis.Table, cut: AsOf, start: dt.date) -> ibis.Table:
    """The counted orders (`counted_orders`) up to `cut` per customer and calendar month: customer_id, month
    (its first day), orders, revenue, and period_orders, period_revenue of those on or after `start`."""
    counted = counted_orders(orders, cut)
    in_period = counted.ordered_at >= ibis.literal(start, type="timestamp")
    return counted.group_by("customer_id", month=_month(counted.ordered_at)).aggregate(
        orders=_.count(), revenue=_.revenue.sum(),
        period_orders=_.count(where=in_period), period_revenue=_.revenue.sum(where=in_period),
    )


def customer_totals(months: ibis.Table) -> ibis.Table:
    """One row per customer of `order_months`: customer_id, first_month, orders, ltv (lifetime revenue),
    period_orders, period_revenue."""
    return months.group_by("customer_id").aggregate(
        first_month=_.month.min(), orders=_.orders.sum(), ltv=_.revenue.sum(),
        period_orders=_.period_orders.sum(), period_revenue=_.period_revenue.sum(),
    )


def overview_from_orders(tables: dict[str, ibis.Table], settings: AnalysisSettings, as_of: dt.date) -> dict[str, Any]:
    """The overview's figures as of `as_of` that the orders and the other imported tables give: the KPIs of
    the last full month with their changes against the month before and the same month last year, their
    monthly trends up to that month, the concentration curve and the cohorts; plain Python values and lists
    of rows (what `overview_rows` stores, with `overview_from_scores`). They read no score, so that `analyze`
    can compute them while it writes the scores (`Store.beside`)."""
    cut, start = AsOf(as_of), as_of - dt.timedelta(days=365)  # `kpi_report`'s year
    period = Period.month_before(as_of)  # the tiles' month: a running month would compare badly
    with (scratch_table(order_months(tables["orders"], cut, start), "_kizuna_order_months") as months,
          scratch_table(customer_totals(months), "_kizuna_customer_totals") as customers):
        headline, mean_ltv = _headline(customers)
        # the top 20 % share from the sums per decile, which rank the customers once for both
        deciles = to_arrow(decile_revenue(customers.select("customer_id", "ltv"), top=0.2))
        total, top = (sum(v or 0 for v in deciles[c].to_pylist()) for c in ("revenue", "top"))
        headline["customers"] = int(to_arrow(tables["customers"].count()).as_py())
        headline["top20_revenue_share"], headline["mean_ltv"] = top / total if total else None, mean_ltv
        by_month = kpi_table(months.filter(months.period_orders > 0).select(
            key=_.month, customer_id=_.customer_id, n=_.period_orders, revenue=_.period_revenue), "month")
        comparison_ = _comparison(tables, months, customers, period, settings.nps_validity_days)
        last = period.start
        ltv = ltv_trend(months.filter(months.month <= last).group_by("month").aggregate(revenue=_.revenue.sum()),
                        customers.filter(customers.first_month <= last).group_by(month=_.first_month).aggregate(
                            new=_.count()), TREND_MONTHS)
        concentration = lorenz_curve(deciles)
        cohorts = _cohorts(months, customers, cut, COHORT_MONTHS)
        # a first-time buyer of the period has all their orders in it: only the period's orders are read
        newcomers = customers.filter(customers.orders == customers.period_orders).select("customer_id")
        counted = counted_orders(tables["orders"], cut)
        f2 = newcomers_f2(counted.filter(counted.ordered_at >= ibis.literal(start, type="timestamp")), newcomers,
                          settings.f2_window_days)
    churn = subscription_churn(tables["events"], cut)
    return {
        "as_of": as_of,
        "start": start,
        "period": period,
        "comparison": comparison_,
        "headline": headline,
        "nps": nps_summary(latest_nps(tables["nps_answers"], cut, settings.nps_validity_days)),
        "by_month": [r for r in by_month.to_pylist() if r["month"] <= period.start][-TREND_MONTHS:],
        "nps_by_month": monthly_nps(tables["nps_answers"], period.end, TREND_MONTHS).to_pylist(),
        "ltv_by_month": ltv.to_pylist(),
        "churn_by_month": [r for r in churn.to_pylist() if r["month"] <= period.start][-TREND_MONTHS:],
        "concentration": concentration.to_pylist(),
        "cohorts": cohorts.to_pylist(),
        "f2": f2,
    }


def overview_from_scores(scores: ibis.Table, settings: AnalysisSettings) -> dict[str, Any]:
    """The overview's figures of the customers' scores (`customer_scores`): the matrix, ranks, named segments
    and R × F grid."""
    from kizuna.analytics._segments import matrix_table, rank_table, rfm_segment_table

    return {
        "matrix": matrix_table(scores).to_pylist(),
        "ranks": rank_table(scores, tuple(r.label for r in settings.rfm_ranks)).to_pylist(),
        "rfm_segments": rfm_segment_table(scores).to_pylist(),
        "rf": rf_grid(scores).to_pylist(),
    }


def _headline(customers: ibis.Table) -> tuple[dict[str, Any], float | None]:
    """`kpi_report`'s headline over its period and the mean lifetime revenue, in one query."""
    active = customers.period_orders > 0
    row = to_arrow(customers.aggregate(
        ordering_customers=customers.count(where=active), repeaters=(customers.period_orders >= 2).sum(),
        orders=customers.period_orders.sum(), revenue=customers.period_revenue.sum(where=active),
        mean_ltv=customers.ltv.cast("float64").mean(),
    )).to_pylist()[0]
    return headline_figures(row), row["mean_ltv"]


def _cohorts(months: ibis.Table, customers: ibis.Table, cut: AsOf, n: int) -> pa.Table:
    """`cohort_retention`: a customer-month row is a customer back in month k of the cohort."""
    sizes = customers.group_by(cohort=_.first_month).aggregate(cohort_size=_.count())
    joined = months.select("customer_id", "month").inner_join(customers.select("customer_id", "first_month"),
                                                                 "customer_id")
    active = joined.select(cohort=joined.first_month,
                           k=_month_number(joined.month) - _month_number(joined.first_month))
    back = active.filter((active.k >= 1) & (active.k <= n)).group_by(["cohort", "k"]).aggregate(customers=_.count())
    return cohort_table(sizes, back, cut, n)


def _comparison(tables: dict[str, ibis.Table], months: ibis.Table, customers: ibis.Table, period: Period,
                nps_validity_days: int) -> KpiComparison:
    """`kpi_comparison` of the whole month `period` (ending by the summary's day) from the summary."""
    periods = (period, period.previous(), period.last_year())
    return comparison(periods, _month_period_kpis(tables, months, customers, periods, nps_validity_days))


def _month_period_kpis(tables: dict[str, ibis.Table], months: ibis.Table, customers: ibis.Table,
                       periods: Sequence[Period], nps_validity_days: int) -> list[dict[str, float | int | None]]:
    """`period_kpis` of periods of whole months."""
    bounds = ibis.memtable({"p": list(range(len(periods))), "p_first": [p.start for p in periods],
                            "p_last": [p.end.replace(day=1) for p in periods]})
    joined = months.cross_join(bounds)
    inside = joined.filter(joined.month >= joined.p_first, joined.month <= joined.p_last)
    per = inside.group_by(["p", "customer_id"]).aggregate(n=_.orders.sum(), revenue=_.revenue.sum())
    # who had ordered by a period's end: the customers whose first month is not after it
    revenue = months.group_by("month").aggregate(revenue=_.revenue.sum()).cross_join(bounds)
    revenue = revenue.filter(revenue.month <= revenue.p_last).group_by("p").aggregate(lifetime_revenue=_.revenue.sum())
    firsts = customers.group_by("first_month").aggregate(customers=_.count()).cross_join(bounds)
    counts = firsts.group_by("p").aggregate(
        buyers=_.customers.sum(where=_.first_month <= _.p_last),
        new_buyers=_.customers.sum(where=(_.first_month >= _.p_first) & (_.first_month <= _.p_last)))
    lifetime = counts.left_join(revenue, "p").select("p", "lifetime_revenue", "buyers")
    new = counts.select("p", "new_buyers")
    return period_figures(tables, periods, per, lifetime, new, nps_validity_days=nps_validity_days)
