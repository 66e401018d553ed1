"""What the manager's report shows for one period, computed in the engine from the tables passed in.

Every figure is a function of `kizuna.analytics`, `kizuna.prediction` and `kizuna.scenarios`
already defined in docs/measures.md; only small aggregates come back. The scenario results need
the send ledger: the caller (the workspace) passes their rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa
from ibis import _

from kizuna.analytics import (
    KEEP_STATES,
    MATRIX_CELLS,
    AsOf,
    KpiComparison,
    Period,
    counted_orders,
    kpi_by,
    kpi_comparison,
    lost_by_reason,
    migration_headline,
    segment_migration,
)

if TYPE_CHECKING:
    from kizuna.analytics import AnalysisSettings

__all__ = ["TREND_MONTHS", "ReportFigures", "report_figures", "value_at_risk_summary"]

TREND_MONTHS = 13  # the month, and the twelve before it: the same month last year is on the chart


@dataclass(frozen=True)
class ReportFigures:
    """Everything `kizuna report` shows for `period` (see `report_figures`)."""

    period: Period
    comparison: KpiComparison
    monthly: list[dict[str, Any]]  # month, orders, revenue … of the last TREND_MONTHS months
    migration: pa.Table  # segment_migration by matrix cell, from the end of the previous period to its end
    migration_headline: dict[str, Any]
    matrix: list[dict[str, Any]]  # cell, before, after, change (customers)
    lost: list[dict[str, Any]]  # lost_reason, customers, ltv_revenue: lost in the period
    value_at_risk: dict[str, Any] | None  # None: no predictions
    scenarios: list[dict[str, Any]]  # each scenario's total row of `kizuna results`
    calls: dict[str, Any]  # "total": the centre's row, "scripts": per talk script (script_results)
    made: dt.datetime = field(default_factory=lambda: dt.datetime.now().replace(microsecond=0))


def report_figures(tables: dict[str, ibis.Table], *, period: Period, analysis: AnalysisSettings,
                   predictions: ibis.Table | None = None, scores: ibis.Table | None = None,
                   scenario_rows: Sequence[dict[str, Any]] = (), high_risk: float = 0.5) -> ReportFigures:
    """The figures of the manager's report for `period` (a calendar month, or any days).

    Parameters
    ----------
    tables : the canonical tables.
    period : the days reported on; compared with the period before and the same period last year.
    analysis : the [analysis] settings (NPS validity, the segments, lost reasons, lifecycle).
    predictions, scores : `customer_predictions` and `customer_scores` of the last `kizuna predict` /
        `analyze`, for the value at risk (None: the report says to run `kizuna predict`).
    scenario_rows : the rows of `kizuna results` as of the period's end (`scenario_results`).
    high_risk : [prediction] high_risk, the churn risk from which a customer counts as at high risk.
    """
    comparison = kpi_comparison(tables, period, nps_validity_days=analysis.nps_validity_days)
    before = period.start - dt.timedelta(days=1)
    migration = segment_migration(tables, analysis, before, period.end, by="cell")
    return ReportFigures(
        period=period, comparison=comparison, monthly=_monthly(tables["orders"], period),
        migration=migration, migration_headline=migration_headline(migration), matrix=_matrix(migration),
        lost=lost_by_reason(tables, analysis, period).to_pylist(),
        value_at_risk=None if predictions is None else value_at_risk_summary(predictions, scores, high_risk),
        scenarios=[r for r in scenario_rows if r.get("step") is None],
        calls=_calls(tables["calls"], period),
    )


def _monthly(orders: ibis.Table, period: Period) -> list[dict[str, Any]]:
    index = period.end.year * 12 + period.end.month - TREND_MONTHS
    first = dt.datetime(index // 12, index % 12 + 1, 1)
    counted = counted_orders(orders, AsOf(period.end))
    return kpi_by(counted.filter(counted.ordered_at >= ibis.literal(first, type="timestamp")), "month").to_pylist()


def _matrix(migration: pa.Table) -> list[dict[str, Any]]:
    rows = migration.to_pylist()
    out = []
    for cell in MATRIX_CELLS:
        before = sum(r["customers"] for r in rows if r["from_segment"] == cell)
        after = sum(r["customers"] for r in rows if r["to_segment"] == cell)
        out.append({"cell": cell, "before": before, "after": after, "change": after - before})
    return out


def value_at_risk_summary(predictions: ibis.Table, scores: ibis.Table | None, high_risk: float) -> dict[str, Any]:
    """The value at risk (docs/measures.md#value-at-risk) of the customers who can still be kept (active or at
    risk): customers, high_risk (churn risk ≥ `high_risk`), value_at_risk (yen), as_of and horizon_days of the
    predictions, and `by_cell` (per matrix cell of `scores`, most yen first; empty without scores)."""
    keep = predictions
    if "lifecycle_state" in predictions.columns:  # an older kizuna's predictions have no state
        keep = predictions.filter(predictions.lifecycle_state.isin(KEEP_STATES))
    head = keep.aggregate(customers=_.count(), high_risk=(_.churn_risk >= high_risk).sum(),
                          value_at_risk=_.value_at_risk.sum(), as_of=_.as_of.max(),
                          horizon_days=_.horizon_days.max()).to_pyarrow().to_pylist()[0]
    by_cell: list[dict[str, Any]] = []
    if scores is not None:
        joined = keep.select("customer_id", "value_at_risk").inner_join(
            scores.select("customer_id", "matrix_cell"), "customer_id")
        grouped = joined.group_by(cell=joined.matrix_cell.cast("string")).aggregate(
            customers=_.count(), value_at_risk=_.value_at_risk.sum())
        by_cell = sorted(grouped.to_pyarrow().to_pylist(), key=lambda r: -(r["value_at_risk"] or 0))
    return {
        "customers": int(head["customers"] or 0), "high_risk": int(head["high_risk"] or 0),
        "high_risk_threshold": high_risk, "value_at_risk": head["value_at_risk"],
        "as_of": head["as_of"], "horizon_days": head["horizon_days"], "by_cell": by_cell,
    }


def _calls(calls: ibis.Table, period: Period) -> dict[str, Any]:
    """The call centre's month: per talk script (`script_results`), and the whole centre as one script."""
    from kizuna.scenarios import script_results  # here: the workspace's settings import this package

    scripts = script_results(calls, since=period.start, as_of=period.end)
    total = script_results(calls.mutate(script=ibis.null("string")), since=period.start, as_of=period.end)
    return {"total": total[0] if total else None, "scripts": scripts}
