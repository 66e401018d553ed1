"""Segment tables (`kizuna segments`) and segment members (`kizuna export`) from customer_scores."""

from __future__ import annotations

import ibis
import pyarrow as pa
from ibis import _

from kizuna._errors import KizunaError, Phrase
from kizuna.analytics._lifecycle import LIFECYCLE_STATES
from kizuna.analytics._scores import MATRIX_CELLS, RFM_SEGMENTS
from kizuna.i18n import segment_key
from kizuna.store import to_arrow

__all__ = ["EXPORT_COLUMNS", "LIFECYCLE_SEGMENTS", "PREDICTION_EXPORT_COLUMNS", "lifecycle_table", "matrix_table",
           "rank_table", "rfm_segment_table", "segment_filter", "segment_members", "SEGMENTS"]

_FLAGS = {
    "near_loyal": lambda t: t.near_loyal,
    "dormant": lambda t: t.dormant,
    "lapsing": lambda t: t.lapsing,
    "lost_customers": lambda t: t.lost,
    "good_customer": lambda t: t.loyalty == "good_customer",
    "loyal_customer": lambda t: t.loyalty == "loyal",
    "lost_unresolved": lambda t: t.lost_reason == "unresolved",
    "lost_situation_changed": lambda t: t.lost_reason == "situation_changed",
    "lost_drifted": lambda t: t.lost_reason == "drifted",
}
# The lifecycle states as segments (docs/measures.md#lifecycle-state): ids `lifecycle_<state>`, as
# the RFM ranks are `rank_<label>`, since `at_risk` and `lost` name RFM segments too.
LIFECYCLE_SEGMENTS = tuple(f"lifecycle_{state}" for state in LIFECYCLE_STATES)

SEGMENTS = (
    *MATRIX_CELLS, "rank_loyal", "rank_a", "rank_b", "rank_other", *RFM_SEGMENTS, *_FLAGS, *LIFECYCLE_SEGMENTS,
)

EXPORT_COLUMNS = (
    "customer_id", "name", "name_kana", "email", "phone", "postal_code", "address", "ltv_revenue",
    "orders", "last_order_at", "recency_days", "nps_score", "nps_class", "matrix_cell", "rfm_rank",
    "near_loyal_missing", "lost_reason", "mean_interval_days", "lifecycle_state",
)


def segment_filter(scores: ibis.Table, name: str) -> tuple[str, ibis.Value]:
    """(segment id, boolean expression) for a segment given by id or label, e.g. 離脱候補者."""
    key = segment_key(name)
    if key is None or key not in SEGMENTS:
        raise KizunaError.keyed("error.unknown_segment", name=repr(name),
                                known=[Phrase.of(f"segment.{key}") for key in SEGMENTS])
    if key in MATRIX_CELLS:
        return key, scores.matrix_cell == key
    if key.startswith("rank_"):
        return key, scores.rfm_rank == key.removeprefix("rank_")
    if key in RFM_SEGMENTS:
        return key, scores.rfm_segment == key
    if key in LIFECYCLE_SEGMENTS:
        return key, (scores.lifecycle_state == key.removeprefix("lifecycle_")).fill_null(False)
    return key, _FLAGS[key](scores).fill_null(False)


def _shares(table: ibis.Table, key: str, order: tuple[str, ...]) -> pa.Table:
    counts = to_arrow(table.group_by(key).aggregate(customers=_.count(), revenue=_.ltv_revenue.sum()))
    found = {r[key]: r for r in counts.to_pylist()}
    total = sum(int(r["revenue"] or 0) for r in found.values()) or 1
    rows = [
        {"segment": k, "customers": int(found.get(k, {}).get("customers") or 0),
         "revenue": int(found.get(k, {}).get("revenue") or 0)}
        for k in order
    ]
    for row in rows:
        row["revenue_share"] = row["revenue"] / total
    return pa.Table.from_pylist(rows)


def matrix_table(scores: ibis.Table) -> pa.Table:
    """The NPS × LTV matrix: customers, revenue and revenue share per cell (unanswered too)."""
    return _shares(scores, "matrix_cell", MATRIX_CELLS)


def rank_table(scores: ibis.Table, labels: tuple[str, ...]) -> pa.Table:
    """Customers and revenue per RFM rank, best first."""
    table = _shares(scores, "rfm_rank", (*labels, "other"))
    return table.set_column(0, "segment", pa.array([f"rank_{s}" for s in table["segment"].to_pylist()]))


def rfm_segment_table(scores: ibis.Table) -> pa.Table:
    return _shares(scores.filter(scores.rfm_segment.notnull()), "rfm_segment", RFM_SEGMENTS)


def lifecycle_table(scores: ibis.Table) -> pa.Table:
    """Customers, revenue and revenue share per lifecycle state (ids `lifecycle_<state>`), in
    `LIFECYCLE_STATES` order; customers without a state (no counted order) are left out."""
    table = _shares(scores.filter(scores.lifecycle_state.notnull()), "lifecycle_state", LIFECYCLE_STATES)
    return table.set_column(0, "segment", pa.array([f"lifecycle_{s}" for s in table["segment"].to_pylist()]))


# From customer_predictions, when there are predictions (docs/measures.md §3): the list shows them too.
PREDICTION_EXPORT_COLUMNS = ("churn_risk", "value_at_risk", "churn_reasons_ja", "churn_reasons_en")


def segment_members(
    scores: ibis.Table, customers: ibis.Table, name: str, predictions: ibis.Table | None = None
) -> tuple[str, ibis.Table]:
    """The customers of one segment with what a call centre or warehouse needs, best LTV first
    (with their churn risk, value at risk and its reasons when `predictions` are given)."""
    key, condition = segment_filter(scores, name)
    members = scores.filter(condition).inner_join(customers, "customer_id")
    columns: list[str] = list(EXPORT_COLUMNS)
    if predictions is not None:
        members = members.left_join(predictions.select("customer_id", *PREDICTION_EXPORT_COLUMNS), "customer_id")
        columns += PREDICTION_EXPORT_COLUMNS
    return key, members.select(*columns).order_by([ibis.desc("ltv_revenue"), "customer_id"])


