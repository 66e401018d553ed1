"""The contact centre's call list (docs/measures.md §3, 002 §6-5): customers in order of value at risk, each with
what to say — the suggested action of docs/measures.md §2 / §4 — and the reasons behind the risk.

The list is one Ibis expression (predictions ⋈ customers ⋈ customer_scores, ordered and cut in
the engine); only the rows of the list come back to Python, to be given their action.

Value at risk (and CLV, P(alive)) is NULL when BG/NBD did not fit the data: those customers come
after the others, and among them the highest churn risk comes first, so a list without any value
at risk is the list by churn risk. A NaN left by an older kizuna counts as NULL.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa

from kizuna._sheets import write_table
from kizuna.analytics import nps_class_of
from kizuna.i18n import label

__all__ = ["ACTIONS", "PRIORITY_COLUMNS", "call_list", "call_list_rows", "missing_value_at_risk", "priority_list",
           "suggested_action", "write_call_list"]

# Suggested actions, most specific first (docs/measures.md §2 lost reasons, §4 scenarios).
ACTIONS = (
    "detractor_follow_up",   # NPS detractor: call within 48 hours, close the loop (002 §3-2)
    "hearing_call",          # an unresolved problem: ヒアリング, solve it before anything else (004)
    "new_offer",             # the customer's situation changed: a new offer, channel and frequency (004)
    "loyal_programme",       # churn candidate: the seed-000 programme to make them loyal (000)
    "near_loyal_treatment",  # one step from loyal: special treatment (002 §6-5)
    "reminder",              # drifted away or lapsing: a reminder by e-mail or phone (004)
    "check_in",              # anyone else at risk: a thank-you and check-in call
)

PRIORITY_COLUMNS = (
    "customer_id", "name", "phone", "email", "matrix_cell", "rfm_rank", "churn_risk", "value_at_risk", "clv",
    "p_alive", "cancel_probability", "nps_score", "lost_reason", "near_loyal", "open_contacts",
    "days_since_life_event", "churn_reasons_ja", "churn_reasons_en", "opted_out",
)


def priority_list(
    predictions: ibis.Table, customers: ibis.Table, scores: ibis.Table | None, capacity: int
) -> pa.Table:
    """The `capacity` customers with the highest value at risk, with contact details and segments.

    `opted_out` lists the channels a customer declined (email, line, dm): they stay on the list,
    marked, so that the agent knows before calling.
    """
    # NaN (an older kizuna stored it) is no number: NULL, so that it sorts last and reads as missing
    p = predictions.mutate(**{col: _number_or_null(predictions[col]) for col in _NUMBERS})
    c = customers.select("customer_id", "name", "phone", "email", "email_opt_in", "line_opt_in", "dm_opt_in")
    if scores is None:  # no `analyze` yet: the segment columns stay empty
        s = p.select("customer_id", matrix_cell=ibis.null("string"), rfm_rank=ibis.null("string"),
                     nps_score=ibis.null("int64"), lost_reason=ibis.null("string"), near_loyal=ibis.null("boolean"))
    else:  # text, not DuckDB's ENUMs, so that the list has one type on every engine
        s = scores.select("customer_id", matrix_cell=scores.matrix_cell.cast("string"),
                          rfm_rank=scores.rfm_rank.cast("string"), nps_score=scores.nps_score,
                          lost_reason=scores.lost_reason.cast("string"), near_loyal=scores.near_loyal)
    j = p.left_join(c, "customer_id").left_join(s, "customer_id")
    opted = [ibis.cases((j[flag] == False, name), else_=ibis.null("string"))  # noqa: E712 (SQL: NULL is unknown)
             for flag, name in (("email_opt_in", "email"), ("line_opt_in", "line"), ("dm_opt_in", "dm"))]
    listed = j.select(*(col for col in PRIORITY_COLUMNS if col != "opted_out"), opted_out=_join_names(opted))
    order = [ibis.desc("value_at_risk", nulls_first=False), ibis.desc("churn_risk", nulls_first=False), "customer_id"]
    return listed.order_by(order).limit(capacity).to_pyarrow()


def call_list(
    predictions: ibis.Table, customers: ibis.Table, scores: ibis.Table | None, capacity: int
) -> pa.Table:
    """`priority_list`, each row with its `suggested_action` (see `ACTIONS`)."""
    rows = priority_list(predictions, customers, scores, capacity)
    actions = [suggested_action(row) for row in rows.to_pylist()]
    return rows.append_column("suggested_action", pa.array(actions, pa.string()))


def write_call_list(listed: pa.Table, path: Path, fmt: str = "csv", lang: str = "ja") -> int:
    """Write a `call_list` to a CSV or .xlsx file for the contact centre (`call_list_rows`); returns its rows."""
    headers, rows = call_list_rows(listed, lang)
    return write_table(path, headers, rows, fmt=fmt, sheet=label("title_priority", lang))


_NUMBERS = ("churn_risk", "value_at_risk", "clv", "p_alive", "cancel_probability")


def _number_or_null(column: ibis.Value) -> ibis.Value:
    return ibis.cases((column.isnan() | column.isinf(), ibis.null("float64")), else_=column)


def _join_names(parts: list[ibis.Value]) -> ibis.Value:
    # "email,dm": concat_ws-like on every engine (a NULL part is left out)
    text = ibis.literal("")
    for part in parts:
        text = ibis.cases(
            (part.isnull(), text), (text == "", part), else_=text + ibis.literal(",") + part
        )
    return ibis.cases((text == "", ibis.null("string")), else_=text)


def suggested_action(row: dict[str, Any]) -> str:
    """The first action of `ACTIONS` whose condition holds for a call-list row."""
    if nps_class_of(row.get("nps_score")) == "detractor":
        return "detractor_follow_up"
    if row.get("lost_reason") == "unresolved" or (row.get("open_contacts") or 0) > 0:
        return "hearing_call"
    if row.get("lost_reason") == "situation_changed" or row.get("days_since_life_event") is not None:
        return "new_offer"
    if row.get("matrix_cell") == "churn_candidate":
        return "loyal_programme"
    if row.get("near_loyal"):
        return "near_loyal_treatment"
    if row.get("lost_reason") == "drifted" or (row.get("churn_risk") or 0) >= 0.5:
        return "reminder"
    return "check_in"


def call_list_rows(listed: pa.Table, lang: str = "ja") -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the call list as people read it (labels in `lang`, risk in %, yen rounded)."""
    from kizuna.i18n import label, segment_label

    headers = ["#", label("customer_id", lang), label("name", lang), label("phone_number", lang),
               label("segment", lang), "RFM",
               label("churn_risk", lang), label("value_at_risk", lang), label("clv", lang),
               label("reasons", lang), label("suggested_action", lang), label("opted_out", lang)]
    rows = []
    for rank, row in enumerate(listed.to_pylist(), start=1):
        rows.append([
            rank, row["customer_id"], row["name"], row["phone"], segment_label(row["matrix_cell"], lang),
            segment_label(f"rank_{row['rfm_rank']}", lang) if row["rfm_rank"] else None,
            _rounded(row["churn_risk"], 100, 1), _rounded(row["value_at_risk"]), _rounded(row["clv"]),
            row[f"churn_reasons_{lang}"], label(f"action_{row['suggested_action']}", lang), row["opted_out"],
        ])
    return headers, rows


def _rounded(value: float | None, scale: float = 1, digits: int | None = None) -> float | int | None:
    """round(scale × value, digits); None (an empty cell) when there is no number."""
    if value is None or not math.isfinite(value):
        return None
    return round(scale * value, digits) if digits is not None else round(scale * value)


def missing_value_at_risk(listed: pa.Table) -> bool:
    """True when no row of the list has a value at risk (BG/NBD did not fit): it is by churn risk."""
    return listed.num_rows > 0 and listed["value_at_risk"].null_count == listed.num_rows
