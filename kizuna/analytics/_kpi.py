"""NPS score and the 2:8 share, the two docs/measures.md §1 measures other reports build on; a
period's KPIs against the previous period and the same period last year (docs/measures.md#kpi-compare).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa
from ibis import _

from kizuna._errors import KizunaError
from kizuna.analytics._base import AsOf, counted_orders, latest_nps, subscribed_at, subscription_spells
from kizuna.store import to_arrow

if TYPE_CHECKING:
    from kizuna.analytics._settings import AnalysisSettings

__all__ = ["COMPARED_KPIS", "LOWER_IS_BETTER", "POINT_KPIS", "KpiComparison", "Period", "change", "comparison",
           "kpi_comparison", "lost_by_reason", "nps_summary", "period_figures", "period_kpis", "top_share"]


def nps_summary(latest: ibis.Table) -> dict[str, float | int | None]:
    """NPS = % promoters − % detractors among answering customers (−100…100)."""
    counts = to_arrow(latest.aggregate(
        promoter=(latest.nps_class == "promoter").sum(),
        passive=(latest.nps_class == "passive").sum(),
        detractor=(latest.nps_class == "detractor").sum(),
        n=latest.count(),
    )).to_pylist()[0]
    n = int(counts["n"] or 0)
    result: dict[str, float | int | None] = {k: int(counts[k] or 0) for k in ("promoter", "passive", "detractor")}
    result["answered"] = n
    result["score"] = (
        100.0 * (int(result["promoter"] or 0) - int(result["detractor"] or 0)) / n if n else None
    )
    return result


def top_share(values: ibis.Column, share: float) -> float | None:
    """Share of the total held by the top `share` of rows (ties broken by rank order)."""
    table = values.name("v").as_table()
    ranked = table.mutate(_rank=ibis.row_number().over(order_by=ibis.desc(table.v)), _n=table.count().over())
    row = to_arrow(ranked.aggregate(
        top=ranked.v.sum(where=ranked._rank < (ranked._n * share).ceil()),
        total=ranked.v.sum(),
    )).to_pylist()[0]
    total = row["total"] or 0
    return (row["top"] or 0) / total if total else None


# -- a period's KPIs against the previous period and the same period last year -------------------------------------
@dataclass(frozen=True)
class Period:
    """The days `start` … `end`, both included, each to its end (docs/measures.md#as-of).

    >>> Period.month(2026, 3).previous()
    Period(start=datetime.date(2026, 2, 1), end=datetime.date(2026, 2, 28))
    >>> Period.month(2026, 3).last_year()
    Period(start=datetime.date(2025, 3, 1), end=datetime.date(2025, 3, 31))
    """

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise KizunaError.keyed("error.period_reversed", start=str(self.start), end=str(self.end))

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        """The calendar month `year`-`month`."""
        first = dt.date(year, month, 1)
        return cls(first, _add_months(first, 1) - dt.timedelta(days=1))

    @classmethod
    def month_before(cls, day: dt.date) -> Period:
        """The last calendar month that has fully ended by the end of `day` (`day`'s own when it closes it)."""
        after = day + dt.timedelta(days=1)
        first = after.replace(day=1) if after.day == 1 else day.replace(day=1)
        last = _add_months(first, -1)
        return cls.month(last.year, last.month)

    @property
    def months(self) -> int | None:
        """How many calendar months the period is, when it is whole months; None otherwise."""
        if self.start.day != 1 or (self.end + dt.timedelta(days=1)).day != 1:
            return None
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    def previous(self) -> Period:
        """Whole months: as many months just before; otherwise as many days just before."""
        if (months := self.months) is not None:
            first = _add_months(self.start, -months)
            return Period(first, self.start - dt.timedelta(days=1))
        length = self.end - self.start
        return Period(self.start - length - dt.timedelta(days=1), self.start - dt.timedelta(days=1))

    def last_year(self) -> Period:
        """The same days a year earlier (whole months: the same months; 29 February: the 28th)."""
        if self.months is not None:
            first = _add_months(self.start, -12)
            return Period(first, _add_months(self.end + dt.timedelta(days=1), -12) - dt.timedelta(days=1))
        return Period(_year_before(self.start), _year_before(self.end))


def _add_months(first: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after the month of `first` (a first of a month)."""
    index = first.year * 12 + first.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _year_before(day: dt.date) -> dt.date:
    return day.replace(year=day.year - 1) if (day.month, day.day) != (2, 29) else dt.date(day.year - 1, 2, 28)


COMPARED_KPIS = ("revenue", "orders", "ordering_customers", "new_buyers", "aov", "repeat_rate",
                 "purchase_frequency", "mean_ltv", "nps", "subscription_churn")
# changes of a share or of the NPS are differences in points (2 % → 3 % is +1.0 pt, not +50 %);
# the others are relative changes
POINT_KPIS = frozenset({"repeat_rate", "nps", "subscription_churn"})
SHARE_KPIS = frozenset({"repeat_rate", "subscription_churn"})  # fractions: their points are × 100
LOWER_IS_BETTER = frozenset({"subscription_churn"})


def period_kpis(tables: dict[str, ibis.Table], periods: Sequence[Period], *,
                nps_validity_days: int = 365) -> list[dict[str, float | int | None]]:
    """The KPIs of docs/measures.md#kpi-compare for each period, in the engine: one dict per period.

    Flows over the period's days: revenue, orders, ordering_customers, new_buyers (first counted
    order ever in the period), aov, repeat_rate, purchase_frequency; subscription_churn
    (cancellations in the period ÷ subscriptions active at its start, with active_subscriptions
    and cancellations). At the end of the period: mean_ltv (lifetime revenue ÷ customers who had
    ordered by then) and the NPS score (nps, with nps_answered).
    """
    latest = AsOf(max(p.end for p in periods))
    bounds = _bounds(periods)
    orders = counted_orders(tables["orders"], latest).select("customer_id", "ordered_at", "revenue")
    joined = orders.cross_join(bounds)
    inside = joined.filter(joined.ordered_at >= joined.p_start, joined.ordered_at < joined.p_end)
    per = inside.group_by(["p", "customer_id"]).aggregate(n=_.count(), revenue=_.revenue.sum())
    upto = joined.filter(joined.ordered_at < joined.p_end)
    lifetime = upto.group_by("p").aggregate(lifetime_revenue=_.revenue.sum(), buyers=_.customer_id.nunique())
    firsts = orders.group_by("customer_id").aggregate(first=_.ordered_at.min()).cross_join(bounds)
    new = firsts.filter(firsts.first >= firsts.p_start, firsts.first < firsts.p_end).group_by("p").aggregate(
        new_buyers=_.count())
    return period_figures(tables, periods, per, lifetime, new, nps_validity_days=nps_validity_days)


def period_figures(tables: dict[str, ibis.Table], periods: Sequence[Period], per: ibis.Table, lifetime: ibis.Table,
                   new: ibis.Table, *, nps_validity_days: int) -> list[dict[str, float | int | None]]:
    """`period_kpis` from the orders' figures per period `p` (its index in `periods`): `per`, one row per
    period and ordering customer (p, customer_id, n, revenue); `lifetime` (p, lifetime_revenue, buyers) up to
    the period's end; `new` (p, new_buyers); the subscriptions and the NPS come from `tables`."""
    flows = per.group_by("p").aggregate(ordering=_.count(), repeaters=(_.n >= 2).sum(), orders=_.n.sum(),
                                        revenue=_.revenue.sum())
    churn = _period_churn(tables["events"], periods)
    rows = {name: {r["p"]: r for r in to_arrow(table).to_pylist()}
            for name, table in (("flows", flows), ("lifetime", lifetime), ("new", new), ("churn", churn))}
    out = []
    for i, period in enumerate(periods):
        f, life = rows["flows"].get(i, {}), rows["lifetime"].get(i, {})
        ordering, count = int(f.get("ordering") or 0), int(f.get("orders") or 0)
        revenue, buyers = int(f.get("revenue") or 0), int(life.get("buyers") or 0)
        churned = rows["churn"].get(i, {})
        active, cancelled = int(churned.get("active_at_start") or 0), int(churned.get("cancellations") or 0)
        nps = nps_summary(latest_nps(tables["nps_answers"], AsOf(period.end), nps_validity_days))
        out.append({
            "revenue": revenue, "orders": count, "ordering_customers": ordering,
            "new_buyers": int(rows["new"].get(i, {}).get("new_buyers") or 0),
            "aov": revenue / count if count else None,
            "repeat_rate": int(f.get("repeaters") or 0) / ordering if ordering else None,
            "purchase_frequency": count / ordering if ordering else None,
            "mean_ltv": int(life.get("lifetime_revenue") or 0) / buyers if buyers else None,
            "nps": nps["score"], "nps_answered": nps["answered"],
            "subscription_churn": cancelled / active if active else None,
            "active_subscriptions": active, "cancellations": cancelled,
        })
    return out


def _bounds(periods: Sequence[Period]) -> ibis.Table:
    """One row per period: p (its index), p_start and p_end (the moments it starts and ends)."""
    return ibis.memtable({
        "p": list(range(len(periods))),
        "p_start": [dt.datetime.combine(p.start, dt.time()) for p in periods],
        "p_end": [AsOf(p.end).end for p in periods],
    })


def _period_churn(events: ibis.Table, periods: Sequence[Period]) -> ibis.Table:
    """Per period: subscriptions active at its start (docs/measures.md#subscription-churn) and those cancelled in it."""
    bounds = _bounds(periods)
    grid = subscription_spells(events, AsOf(max(p.end for p in periods))).cross_join(bounds)
    active = subscribed_at(grid, grid.p_start)
    return grid.group_by("p").aggregate(
        active_at_start=active.sum(), cancellations=(active & grid.ended.notnull() & (grid.ended < grid.p_end)).sum())


@dataclass(frozen=True)
class KpiComparison:
    """A period's KPIs beside the previous period's and the same period last year's (`kpi_comparison`).

    `rows`: one dict per KPI of `COMPARED_KPIS`: key, value, previous, previous_change,
    last_year, last_year_change, unit ("percent": the change is a fraction, 0.05 = +5 %;
    "points": a difference in percentage points, or NPS points), better ("higher" or "lower").
    A change is None when there is nothing to compare with (no prior figure, or a prior of 0).
    """

    period: Period
    previous: Period
    last_year: Period
    figures: dict[str, float | int | None]
    previous_figures: dict[str, float | int | None]
    last_year_figures: dict[str, float | int | None]
    rows: list[dict[str, Any]]


def change(key: str, value: float | int | None, prior: float | int | None) -> float | None:
    """The change of KPI `key` from `prior` to `value`: points for `POINT_KPIS`, else relative."""
    if value is None or prior is None:
        return None
    if key in POINT_KPIS:
        return (value - prior) * (100 if key in SHARE_KPIS else 1)
    return (value - prior) / abs(prior) if prior else None


def kpi_comparison(tables: dict[str, ibis.Table], period: Period, *, nps_validity_days: int = 365) -> KpiComparison:
    """`period_kpis` of `period`, the period before it and the same period a year earlier, with the changes.

    >>> kpi_comparison(ws.tables(), Period.month(2026, 10)).rows[0]  # doctest: +SKIP
    {'key': 'revenue', 'value': 41200000, 'previous': 39800000, 'previous_change': 0.0352, ...}
    """
    compared = (period, period.previous(), period.last_year())
    return comparison(compared, period_kpis(tables, compared, nps_validity_days=nps_validity_days))


def comparison(periods: Sequence[Period], figures: Sequence[dict[str, float | int | None]]) -> KpiComparison:
    """The `KpiComparison` of the figures (`period_kpis`) of a period, the period before it and the same period
    a year earlier, in that order."""
    (period, previous, last_year), (now, before, year_ago) = periods, figures
    rows = [{
        "key": key, "value": now[key],
        "previous": before[key], "previous_change": change(key, now[key], before[key]),
        "last_year": year_ago[key], "last_year_change": change(key, now[key], year_ago[key]),
        "unit": "points" if key in POINT_KPIS else "percent",
        "better": "lower" if key in LOWER_IS_BETTER else "higher",
    } for key in COMPARED_KPIS]
    return KpiComparison(period, previous, last_year, now, before, year_ago, rows)


def lost_by_reason(tables: dict[str, ibis.Table], settings: AnalysisSettings, period: Period) -> pa.Table:
    """The customers who became lost in `period` (lifecycle state lost or subscription_cancelled at its end,
    `lost_since` within it; docs/measures.md#lifecycle-state) by lost reason (docs/measures.md#lost-reasons):
    lost_reason, customers, ltv_revenue (their lifetime revenue), most customers first."""
    from kizuna.analytics._lifecycle import LOST_STATES, lifecycle_states
    from kizuna.analytics._scores import customer_scores

    states = lifecycle_states(tables, period.end, settings)
    newly = states.filter(states.lifecycle_state.isin(LOST_STATES), states.lost_since >= ibis.literal(period.start),
                          states.lost_since <= ibis.literal(period.end))
    scores = customer_scores(tables, settings, period.end, gross_margin_rate=1.0)
    joined = newly.select("customer_id").inner_join(scores.select("customer_id", "lost_reason", "ltv_revenue"),
                                                    "customer_id")
    out = joined.group_by("lost_reason").aggregate(customers=_.count(), ltv_revenue=_.ltv_revenue.sum())
    rows = sorted(to_arrow(out).to_pylist(), key=lambda r: (-r["customers"], str(r["lost_reason"])))
    return pa.Table.from_pylist(
        [{"lost_reason": r["lost_reason"], "customers": int(r["customers"]), "ltv_revenue": int(r["ltv_revenue"] or 0)}
         for r in rows],
        schema=pa.schema([("lost_reason", pa.string()), ("customers", pa.int64()), ("ltv_revenue", pa.int64())]))
