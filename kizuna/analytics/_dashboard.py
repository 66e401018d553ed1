"""The dashboard's trends and grid (docs/measures.md §1–§2), as small Arrow tables computed in the
engine, the same on every engine: NPS and mean LTV month by month, and customers per R × F cell.
(Cohorts, the concentration curve and the headline KPIs are in the KPI report, `kpi_report`.)
"""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
from ibis import _

from kizuna.analytics._base import AsOf, counted_orders, nps_class, ratio

__all__ = ["TREND_MONTHS", "monthly_ltv", "monthly_nps", "rf_grid"]

TREND_MONTHS = 12


def _month_start(day: dt.date, back: int) -> dt.date:
    month = day.year * 12 + day.month - 1 - back
    return dt.date(month // 12, month % 12 + 1, 1)


def monthly_nps(answers: ibis.Table, as_of: dt.date, months: int = TREND_MONTHS) -> pa.Table:
    """NPS of the answers given in each of the last `months` calendar months up to `as_of` (each
    month's own answers, not a running score): month, answered, promoters, detractors, nps (−100…100).
    Months without an answer have no row."""
    cut = AsOf(as_of)
    start = ibis.literal(dt.datetime.combine(_month_start(as_of, months - 1), dt.time()), type="timestamp")
    recent = answers.filter(cut.before_end(answers.answered_at), answers.answered_at >= start)
    recent = recent.mutate(month=recent.answered_at.truncate("M").date(), nps_class=nps_class(recent.score))
    per = recent.group_by("month").aggregate(answered=_.count(), promoters=(_.nps_class == "promoter").sum(),
                                             detractors=(_.nps_class == "detractor").sum())
    per = per.mutate(nps=ratio(100 * (per.promoters - per.detractors), per.answered))
    return per.order_by("month").to_pyarrow()


def monthly_ltv(orders: ibis.Table, as_of: dt.date, months: int = TREND_MONTHS) -> pa.Table:
    """Mean lifetime revenue per customer at the end of each month (of the customers who had
    ordered by then): month, ltv; the last `months` months with an order or a first order."""
    counted = counted_orders(orders, AsOf(as_of))
    revenue = counted.group_by(month=counted.ordered_at.truncate("M").date()).aggregate(revenue=_.revenue.sum())
    firsts = counted.group_by("customer_id").aggregate(first=_.ordered_at.min())
    newcomers = firsts.group_by(month=firsts.first.truncate("M").date()).aggregate(new=_.count())
    joined = revenue.outer_join(newcomers, "month").select(
        month=ibis.coalesce(_.month, _.month_right), revenue=_.revenue.fill_null(0), new=_.new.fill_null(0))
    running = ibis.window(order_by="month", preceding=None, following=0)
    totals = joined.select("month", revenue=joined.revenue.sum().over(running),
                           customers=joined.new.sum().over(running))
    latest = totals.order_by(ibis.desc("month")).limit(months)
    trend = latest.select("month", ltv=ibis.cases((latest.customers > 0, ratio(latest.revenue, latest.customers))))
    return trend.order_by("month").to_pyarrow()


def rf_grid(scores: ibis.Table) -> pa.Table:
    """Customers and their lifetime revenue per R × F cell of `customer_scores` (cells with customers)."""
    scored = scores.filter(scores.r_score.notnull() & scores.f_score.notnull())
    grid = scored.group_by(["r_score", "f_score"]).aggregate(customers=_.count(), revenue=_.ltv_revenue.sum())
    return grid.order_by(["r_score", "f_score"]).to_pyarrow()
