"""Headline measures of SPEC §1 over a period, as plain numbers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis

from kizuna.analytics._base import AsOf, counted_orders, latest_nps

__all__ = ["BasicKpis", "basic_kpis", "nps_summary", "top_share"]


@dataclass(frozen=True)
class BasicKpis:
    start: dt.date
    end: dt.date
    customers: int  # all known customers
    ordering_customers: int  # customers with an order in the period
    orders: int
    revenue: int
    aov: float | None  # revenue / orders
    repeat_rate: float | None  # >= 2 orders / >= 1 order, in the period
    purchase_frequency: float | None  # orders / ordering customers, in the period
    nps: float | None
    promoters: int
    passives: int
    detractors: int
    top20_revenue_share: float | None  # 2:8 rule, over lifetime revenue to the as-of date
    mean_ltv: float | None


def basic_kpis(
    tables: dict[str, ibis.Table], as_of: dt.date, *, start: dt.date | None = None,
    nps_validity_days: int = 365, top_share_of_customers: float = 0.2,
) -> BasicKpis:
    """Counts, AOV, repeat rate, purchase frequency, NPS and the 2:8 share.

    The period runs from `start` (default: one year before `as_of`) to `as_of`, inclusive.
    """
    cut = AsOf(as_of)
    start = start or as_of - dt.timedelta(days=365)
    orders = counted_orders(tables["orders"], cut)
    period = orders.filter(orders.ordered_at >= ibis.literal(start, type="timestamp"))
    per_customer = period.group_by("customer_id").aggregate(n=period.count(), revenue=period.revenue.sum())
    row = per_customer.aggregate(
        ordering=per_customer.count(),
        repeaters=(per_customer.n >= 2).sum(),
        orders=per_customer.n.sum(),
        revenue=per_customer.revenue.sum(),
    ).to_pyarrow().to_pylist()[0]
    ordering, n_orders = int(row["ordering"] or 0), int(row["orders"] or 0)
    revenue = int(row["revenue"] or 0)
    nps = nps_summary(latest_nps(tables["nps_answers"], cut, nps_validity_days))
    lifetime = orders.group_by("customer_id").aggregate(ltv=orders.revenue.sum())
    share = top_share(lifetime.ltv, top_share_of_customers)
    mean_ltv = lifetime.ltv.mean().to_pyarrow().as_py()
    return BasicKpis(
        start=start, end=as_of,
        customers=int(tables["customers"].count().to_pyarrow().as_py()),
        ordering_customers=ordering, orders=n_orders, revenue=revenue,
        aov=revenue / n_orders if n_orders else None,
        repeat_rate=int(row["repeaters"] or 0) / ordering if ordering else None,
        purchase_frequency=n_orders / ordering if ordering else None,
        nps=nps["score"], promoters=nps["promoter"], passives=nps["passive"],
        detractors=nps["detractor"], top20_revenue_share=share, mean_ltv=mean_ltv,
    )


def nps_summary(latest: ibis.Table) -> dict[str, float | int | None]:
    """NPS = % promoters − % detractors among answering customers (−100…100)."""
    counts = latest.aggregate(
        promoter=(latest.nps_class == "promoter").sum(),
        passive=(latest.nps_class == "passive").sum(),
        detractor=(latest.nps_class == "detractor").sum(),
        n=latest.count(),
    ).to_pyarrow().to_pylist()[0]
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
    row = ranked.aggregate(
        top=ranked.v.sum(where=ranked._rank < (ranked._n * share).ceil()),
        total=ranked.v.sum(),
    ).to_pyarrow().to_pylist()[0]
    total = row["total"] or 0
    return (row["top"] or 0) / total if total else None
