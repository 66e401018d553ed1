"""The contact centre's call lists (docs/measures.md#call-list, 002 §6-5, 004), each within the day's capacity:

* ``keep`` (解約防止): customers active or at risk (`KEEP_STATES`), by value at risk — the expected
  value kept if the call keeps them — each with what to say (the suggested action) and the
  reasons behind the risk;
* ``winback`` (掘り起こし): customers lost or whose subscription was cancelled within
  `[prediction] winback_days`, by their lifetime revenue, with their lost reason's action (004:
  疎遠 → reminder, 状況変化 → new offer, 課題未解決 → hearing call).

Both obey the rules of `_call_rules`: only customers with a telephone number are called (those
without go to the e-mail / DM list of the same action), nobody called within the cooldown.
A list is one Ibis expression (predictions ⋈ customers ⋈ customer_scores, filtered, ordered and cut
in the engine); only its rows come back to Python, to be given their action.

Value at risk (and CLV, P(alive)) is NULL when BG/NBD did not fit the data: those customers come
after the others, and among them the highest churn risk comes first, so a list without any value
at risk is the list by churn risk. A NaN left by an older kizuna counts as NULL.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc

from kizuna._errors import KizunaError
from kizuna._sheets import write_table
from kizuna.analytics import KEEP_STATES, LOST_STATES, nps_class_of
from kizuna.i18n import label
from kizuna.prediction._call_rules import CallRules, fresh_answer, has_phone, recently_called

__all__ = ["ACTIONS", "LISTS", "PRIORITY_COLUMNS", "WINBACK_ACTIONS", "CallList", "call_list", "call_list_rows",
           "call_lists", "missing_value_at_risk", "priority_list", "suggested_action", "write_call_list"]

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
    "lifecycle_state", "lost_since", "nps_answered_at", "ltv_revenue",
)
LISTS = ("keep", "winback")
# The win-back list's action by lost reason (seed 004).
WINBACK_ACTIONS = {"drifted": "reminder", "situation_changed": "new_offer", "unresolved": "hearing_call"}


@dataclass
class CallList:
    """One list of the day: the calls (at most the capacity, each with a telephone number) and the
    customers of the same ranking without one, who get the same action by e-mail or DM instead."""

    kind: str  # "keep" or "winback"
    as_of: dt.date
    capacity: int
    calls: pa.Table  # PRIORITY_COLUMNS + suggested_action
    mail: pa.Table  # the same columns: no telephone number
    candidates: int  # customers the list is drawn from (state, window), before the rules
    cooled_down: int  # left off: called within the cooldown
    ranking: str  # "value_at_risk" (keep) or "ltv_revenue" (winback)
    rules: CallRules = field(default_factory=CallRules)

    def summary(self) -> dict[str, Any]:
        actions = Counter(self.calls["suggested_action"].to_pylist())
        mail_actions = Counter(self.mail["suggested_action"].to_pylist())
        return {
            "list": self.kind, "as_of": self.as_of.isoformat(), "capacity": self.capacity, "ranking": self.ranking,
            "candidates": self.candidates, "calls": self.calls.num_rows, "mail": self.mail.num_rows,
            "cooled_down": self.cooled_down, "cooldown_days": self.rules.cooldown_days,
            "follow_up_days": self.rules.follow_up_days,
            "calls_by_action": dict(actions), "mail_by_action": dict(mail_actions),
        }


def priority_list(
    predictions: ibis.Table, customers: ibis.Table, scores: ibis.Table | None, capacity: int
) -> pa.Table:
    """The `capacity` customers with the highest value at risk, with contact details and segments.

    `opted_out` lists the channels a customer declined (email, line, dm): they stay on the list,
    marked, so that the agent knows before calling.
    """
    listed = _listed(predictions, customers, scores)
    order = [ibis.desc("value_at_risk", nulls_first=False), ibis.desc("churn_risk", nulls_first=False), "customer_id"]
    return listed.order_by(order).limit(capacity).to_pyarrow()


def _listed(predictions: ibis.Table, customers: ibis.Table, scores: ibis.Table | None) -> ibis.Table:
    """predictions ⋈ customers ⋈ customer_scores with the columns of a list (`PRIORITY_COLUMNS`)."""
    # NaN (an older kizuna stored it) is no number: NULL, so that it sorts last and reads as missing
    p = predictions.mutate(**{col: _number_or_null(predictions[col]) for col in _NUMBERS})
    if "lifecycle_state" not in p.columns:  # an older kizuna's predictions
        p = p.mutate(lifecycle_state=ibis.null("string"), lost_since=ibis.null("date"))
    c = customers.select("customer_id", "name", "phone", "email", "email_opt_in", "line_opt_in", "dm_opt_in")
    if scores is None:  # no `analyze` yet: the segment columns stay empty
        s = p.select("customer_id", matrix_cell=ibis.null("string"), rfm_rank=ibis.null("string"),
                     nps_score=ibis.null("int64"), lost_reason=ibis.null("string"), near_loyal=ibis.null("boolean"),
                     nps_answered_at=ibis.null("timestamp"), ltv_revenue=ibis.null("int64"))
    else:  # text, not DuckDB's ENUMs, so that the list has one type on every engine
        s = scores.select("customer_id", matrix_cell=scores.matrix_cell.cast("string"),
                          rfm_rank=scores.rfm_rank.cast("string"), nps_score=scores.nps_score,
                          lost_reason=scores.lost_reason.cast("string"), near_loyal=scores.near_loyal,
                          nps_answered_at=scores.nps_answered_at, ltv_revenue=scores.ltv_revenue)
    j = p.left_join(c, "customer_id").left_join(s, "customer_id")
    opted = [ibis.cases((j[flag] == False, name), else_=ibis.null("string"))  # noqa: E712 (SQL: NULL is unknown)
             for flag, name in (("email_opt_in", "email"), ("line_opt_in", "line"), ("dm_opt_in", "dm"))]
    columns = {col: j[col] for col in PRIORITY_COLUMNS if col != "opted_out"}
    columns["lifecycle_state"] = j.lifecycle_state.cast("string")
    return j.select(**columns, opted_out=_join_names(opted))


def call_list(
    predictions: ibis.Table, customers: ibis.Table, scores: ibis.Table | None, capacity: int
) -> pa.Table:
    """`priority_list`, each row with its `suggested_action` (see `ACTIONS`)."""
    rows = priority_list(predictions, customers, scores, capacity)
    actions = [suggested_action(row) for row in rows.to_pylist()]
    return rows.append_column("suggested_action", pa.array(actions, pa.string()))


def call_lists(
    predictions: ibis.Table, customers: ibis.Table, scores: ibis.Table | None, *, as_of: dt.date,
    kind: str = "keep", rules: CallRules | None = None, calls: ibis.Table | None = None, winback_days: int = 180,
) -> CallList:
    """The day's `kind` list ("keep" or "winback") as of `as_of`, within `rules.capacity` (see the module
    docstring); `calls` is the calls table (None: nobody has been called)."""
    if kind not in LISTS:
        raise KizunaError(f"unknown list {kind!r}; choose one of {', '.join(LISTS)}.")
    rules = rules or CallRules()
    if "lifecycle_state" not in predictions.columns:
        raise KizunaError("customer_predictions was written by an older kizuna, without lifecycle states: "
                          "run `kizuna predict` again.")
    listed = _listed(predictions, customers, scores)
    if kind == "keep":
        pool = listed.filter(listed.lifecycle_state.isin(KEEP_STATES))
        order = [ibis.desc("value_at_risk", nulls_first=False), ibis.desc("churn_risk", nulls_first=False),
                 "customer_id"]
    else:
        start = ibis.literal(as_of - dt.timedelta(days=winback_days))
        pool = listed.filter(listed.lifecycle_state.isin(LOST_STATES), listed.lost_since >= start)
        order = [ibis.desc("ltv_revenue", nulls_first=False), "customer_id"]
    candidates = int(pool.count().to_pyarrow().as_py())
    cooled = recently_called(calls, as_of, rules.cooldown_days)
    cooled_down = 0
    if cooled is not None:
        cooled_down = int(pool.semi_join(cooled, "customer_id").count().to_pyarrow().as_py())
        pool = pool.anti_join(cooled, "customer_id")
    phone = ibis.cases((has_phone(pool.phone), 1), else_=0)
    pool = pool.mutate(_phone=phone)
    # the telephone rows ranked above each row: the list runs until `capacity` of them are taken
    before = pool._phone.sum().over(ibis.window(order_by=order, rows=(None, -1)))
    pool = pool.mutate(_before=before.fill_null(0))
    rows = pool.filter(pool._before < rules.capacity).order_by(order).to_pyarrow()
    actions = [_action(row, kind, as_of, rules) for row in rows.to_pylist()]
    rows = rows.append_column("suggested_action", pa.array(actions, pa.string()))
    with_phone = rows["_phone"].to_pylist()
    keep_columns = [c for c in rows.column_names if not c.startswith("_")]
    mask = pa.array([v == 1 for v in with_phone])
    table = rows.select(keep_columns)
    return CallList(kind, as_of, rules.capacity, table.filter(mask), table.filter(pc.invert(mask)),
                    candidates, cooled_down, "value_at_risk" if kind == "keep" else "ltv_revenue", rules)


def _action(row: dict[str, Any], kind: str, as_of: dt.date, rules: CallRules) -> str:
    fresh = fresh_answer(row.get("nps_answered_at"), as_of, rules.follow_up_days)
    if kind == "winback":
        if fresh and nps_class_of(row.get("nps_score")) == "detractor":
            return "detractor_follow_up"
        return WINBACK_ACTIONS.get(row.get("lost_reason") or "drifted", "reminder")
    return suggested_action(row, fresh_answer=fresh)


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


def suggested_action(row: dict[str, Any], *, fresh_answer: bool = True) -> str:
    """The first action of `ACTIONS` whose condition holds for a call-list row.

    The 48-hour follow-up of a detractor only while their answer is fresh (`fresh_answer`: within
    `[calls] follow_up_days`); an older detractor answer is a problem to hear about (hearing call).
    """
    detractor = nps_class_of(row.get("nps_score")) == "detractor"
    if detractor and fresh_answer:
        return "detractor_follow_up"
    if detractor or row.get("lost_reason") == "unresolved" or (row.get("open_contacts") or 0) > 0:
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
