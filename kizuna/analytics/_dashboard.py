"""The dashboard's trends and grid (docs/measures.md §1–§2), as small Arrow tables computed in the
engine, the same on every engine: NPS and mean LTV month by month, and customers per R × F cell.
(Cohorts, the concentration curve and the headline KPIs are in the KPI report, `kpi_report`.)

`overview_from_orders` and `overview_from_scores` (_overview.py) give everything the overview shows;
`kizuna analyze` stores it (`overview_rows`) beside the scores it was computed from, so that the web app's
first overview after an analysis reads a small table instead of every order. `list_members` is the table
the customer lists page through: the scores with the two prediction columns they sort by.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
from typing import Any

import ibis
import pyarrow as pa
from ibis import _

from kizuna.analytics._base import AsOf, counted_orders, nps_class, ratio
from kizuna.analytics._members import PREDICTION_SORTS
from kizuna.store import to_arrow

__all__ = ["LIST_CONTACTS", "TREND_MONTHS", "list_members", "list_predictions", "ltv_trend", "monthly_ltv",
           "monthly_nps", "overview_from_rows", "overview_rows", "rf_grid"]

TREND_MONTHS = 12
LIST_CONTACTS = ("name", "email", "phone")  # what a list page shows of a customer's contact data


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
    return to_arrow(per.order_by("month"))


def monthly_ltv(orders: ibis.Table, as_of: dt.date, months: int = TREND_MONTHS) -> pa.Table:
    """Mean lifetime revenue per customer at the end of each month (of the customers who had
    ordered by then): month, ltv; the last `months` months with an order or a first order."""
    counted = counted_orders(orders, AsOf(as_of))
    revenue = counted.group_by(month=counted.ordered_at.truncate("M").date()).aggregate(revenue=_.revenue.sum())
    firsts = counted.group_by("customer_id").aggregate(first=_.ordered_at.min())
    newcomers = firsts.group_by(month=firsts.first.truncate("M").date()).aggregate(new=_.count())
    return ltv_trend(revenue, newcomers, months)


def ltv_trend(revenue: ibis.Table, newcomers: ibis.Table, months: int) -> pa.Table:
    """`monthly_ltv`'s table from the revenue per month (month, revenue) and the first-time buyers per
    month (month, new)."""
    joined = revenue.outer_join(newcomers, "month").select(
        month=ibis.coalesce(_.month, _.month_right), revenue=_.revenue.fill_null(0), new=_.new.fill_null(0))
    running = ibis.window(order_by="month", preceding=None, following=0)
    totals = joined.select("month", revenue=joined.revenue.sum().over(running),
                           customers=joined.new.sum().over(running))
    latest = totals.order_by(ibis.desc("month")).limit(months)
    trend = latest.select("month", ltv=ibis.cases((latest.customers > 0, ratio(latest.revenue, latest.customers))))
    return to_arrow(trend.order_by("month"))


def rf_grid(scores: ibis.Table) -> pa.Table:
    """Customers and their lifetime revenue per R × F cell of `customer_scores` (cells with customers)."""
    scored = scores.filter(scores.r_score.notnull() & scores.f_score.notnull())
    grid = scored.group_by(["r_score", "f_score"]).aggregate(customers=_.count(), revenue=_.ltv_revenue.sum())
    return to_arrow(grid.order_by(["r_score", "f_score"]))


# -- the overview, computed once per analysis (`overview_from_orders`, `overview_from_scores`) ----------------
def overview_rows(figures: dict[str, Any]) -> pa.Table:
    """`figures` as a small table to store beside the scores: one row per figure (`part`, and `body`, its
    value as JSON text, dates and periods marked), the same on every engine."""
    parts = sorted(figures)
    return pa.table({"part": parts, "body": [json.dumps(figures[p], default=_encode, ensure_ascii=False)
                                             for p in parts]})


def overview_from_rows(rows: pa.Table) -> dict[str, Any]:
    """The figures `overview_rows` stored, as `overview_from_orders` and `overview_from_scores` gave them."""
    return {part: json.loads(body, object_hook=_decode)
            for part, body in zip(rows["part"].to_pylist(), rows["body"].to_pylist(), strict=True)}


def _encode(value: Any) -> Any:
    from kizuna.analytics._kpi import KpiComparison, Period

    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, Period):
        return {"$period": [value.start.isoformat(), value.end.isoformat()]}
    if isinstance(value, KpiComparison):
        return {"$comparison": {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"cannot store {type(value).__name__} among the overview's figures")


def _decode(value: dict[str, Any]) -> Any:
    from kizuna.analytics._kpi import KpiComparison, Period

    if len(value) != 1:
        return value
    (key, body), = value.items()
    if key == "$datetime":
        return dt.datetime.fromisoformat(body)
    if key == "$date":
        return dt.date.fromisoformat(body)
    if key == "$period":
        return Period(dt.date.fromisoformat(body[0]), dt.date.fromisoformat(body[1]))
    if key == "$comparison":
        return KpiComparison(**body)
    return value


# -- the lists' rows -------------------------------------------------------------------------------
def list_predictions(predictions: ibis.Table) -> ibis.Table:
    """customer_id and the predictions the lists sort by (`PREDICTION_SORTS`) as `list_members` joins
    them: NULL where a prediction is no finite number."""
    return predictions.select("customer_id", **{
        c: ibis.cases((predictions[c].isnan() | predictions[c].isinf(), ibis.null("float64")),
                      else_=predictions[c].cast("float64"))
        for c in PREDICTION_SORTS})


def list_members(scores: ibis.Table, predictions: ibis.Table | None,
                 customers: ibis.Table | None = None) -> ibis.Table:
    """`customer_scores` with the churn risk and value at risk of `predictions` (NULL without a
    prediction, and where the prediction is no finite number): what the customer lists filter and sort
    by, stored so that a list sorted by a prediction needs no join of every customer. With `customers`,
    also the name, e-mail and phone a list page shows (`LIST_CONTACTS`), so that a page is one read."""
    if predictions is None:
        members = scores.mutate(churn_risk=ibis.null("float64"), value_at_risk=ibis.null("float64"))
    else:
        joined = scores.left_join(list_predictions(predictions), "customer_id")
        members = joined.select(*scores.columns, *PREDICTION_SORTS)
    if customers is None:
        return members
    joined = members.left_join(customers.select("customer_id", *LIST_CONTACTS), "customer_id")
    return joined.select(*members.columns, *LIST_CONTACTS)
