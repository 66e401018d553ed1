"""The contact centre's call lists (docs/measures.md#call-list, 002 §6-5, 004), each within the day's capacity:

* ``keep`` (解約防止): customers active or at risk (`KEEP_STATES`), by value at risk — the expected
  value kept if the call keeps them — or, once `[calls] min_outcomes` call outcomes are known, by
  the expected value kept by calling (uplift × CLV, `kizuna.prediction._uplift`), each with what to
  say (the suggested action) and the reasons behind the risk;
* ``winback`` (掘り起こし): customers lost or whose subscription was cancelled within
  `[prediction] winback_days`, taken by their lifetime revenue, shown grouped by lost reason
  (`WINBACK_REASONS`: 疎遠, 状況変化, 課題未解決; by revenue within each) with the reason's action
  (004: 疎遠 → reminder, 状況変化 → new offer, 課題未解決 → hearing call) and the words that gave it.

Both obey the rules of `_call_rules`: only customers with a telephone number are called (those
without go to the e-mail / DM list of the same action), nobody called within the cooldown; the
customers of the call holdout (`holdout`, `call_holdout`) are left uncalled, and the list runs on
until `capacity` others are taken.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc

from kizuna._errors import KizunaError
from kizuna._sheets import Column, heading, write_table
from kizuna.analytics import KEEP_STATES, LOST_STATES, nps_class_of
from kizuna.i18n import label
from kizuna.prediction._call_rules import CallRules, fresh_answer, has_phone, recently_called
from kizuna.prediction._uplift import KEEP_ORDERS, keep_ranking

__all__ = ["ACTIONS", "LISTS", "PRIORITY_COLUMNS", "WINBACK_ACTIONS", "WINBACK_REASONS", "CallList", "call_list",
           "call_list_rows", "call_lists", "missing_value_at_risk", "priority_list", "suggested_action",
           "write_call_list"]

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
    "lifecycle_state", "lost_since", "nps_answered_at", "ltv_revenue", "lost_reason_matched", "uplift", "value_kept",
)
LISTS = ("keep", "winback")
# The win-back list's action by lost reason (seed 004).
WINBACK_ACTIONS = {"drifted": "reminder", "situation_changed": "new_offer", "unresolved": "hearing_call"}
# The win-back list's groups, in seed 004's order (何となく疎遠 / 状況が変化 / 課題が解決できなくて).
WINBACK_REASONS = ("drifted", "situation_changed", "unresolved")


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
    ranking: str  # "value_at_risk" or "uplift" (keep), "ltv_revenue" (winback)
    rules: CallRules = field(default_factory=CallRules)
    held_out: int = 0  # left uncalled, ranked above the last call: the call holdout
    outcomes: int = 0  # call outcomes known when predicted (the keep list ranks by uplift from min_outcomes)
    min_outcomes: int | None = None

    def summary(self) -> dict[str, Any]:
        actions = Counter(self.calls["suggested_action"].to_pylist())
        mail_actions = Counter(self.mail["suggested_action"].to_pylist())
        by_reason = {}
        if self.kind == "winback":  # per lost reason, in WINBACK_REASONS' order
            for name, table in (("calls_by_reason", self.calls), ("mail_by_reason", self.mail)):
                found = Counter(table["lost_reason"].to_pylist())
                by_reason[name] = {reason: found[reason] for reason in WINBACK_REASONS}
        return {
            **by_reason,
            "list": self.kind, "as_of": self.as_of.isoformat(), "capacity": self.capacity, "ranking": self.ranking,
            "candidates": self.candidates, "calls": self.calls.num_rows, "mail": self.mail.num_rows,
            "cooled_down": self.cooled_down, "cooldown_days": self.rules.cooldown_days,
            "follow_up_days": self.rules.follow_up_days, "held_out": self.held_out, "outcomes": self.outcomes,
            "min_outcomes": self.min_outcomes,
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
    if "value_kept" not in predictions.columns:  # an older kizuna's predictions: no effect of a call
        predictions = predictions.mutate(uplift=ibis.null("float64"), value_kept=ibis.null("float64"))
    # NaN (an older kizuna stored it) is no number: NULL, so that it sorts last and reads as missing
    p = predictions.mutate(**{col: _number_or_null(predictions[col]) for col in _NUMBERS})
    if "lifecycle_state" not in p.columns:  # an older kizuna's predictions
        p = p.mutate(lifecycle_state=ibis.null("string"), lost_since=ibis.null("date"))
    c = customers.select("customer_id", "name", "phone", "email", "email_opt_in", "line_opt_in", "dm_opt_in")
    if scores is None:  # no `analyze` yet: the segment columns stay empty
        s = p.select("customer_id", matrix_cell=ibis.null("string"), rfm_rank=ibis.null("string"),
                     nps_score=ibis.null("int64"), lost_reason=ibis.null("string"), near_loyal=ibis.null("boolean"),
                     nps_answered_at=ibis.null("timestamp"), ltv_revenue=ibis.null("int64"),
                     lost_reason_matched=ibis.null("string"))
    else:  # text, not DuckDB's ENUMs, so that the list has one type on every engine
        s = scores.select("customer_id", matrix_cell=scores.matrix_cell.cast("string"),
                          rfm_rank=scores.rfm_rank.cast("string"), nps_score=scores.nps_score,
                          lost_reason=scores.lost_reason.cast("string"), near_loyal=scores.near_loyal,
                          nps_answered_at=scores.nps_answered_at, ltv_revenue=scores.ltv_revenue,
                          lost_reason_matched=scores.lost_reason_matched)
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
    holdout: Callable[[str], bool] | None = None, min_outcomes: int | None = None,
) -> CallList:
    """The day's `kind` list ("keep" or "winback") as of `as_of`, within `rules.capacity` (see the module
    docstring); `calls` is the calls table (None: nobody has been called); `holdout` says whether a
    customer is in the call holdout (None: nobody is); from `min_outcomes` call outcomes (as stored with
    the predictions) the keep list ranks by the expected value kept by calling (None: never)."""
    if kind not in LISTS:
        raise KizunaError.keyed("error.call_list_unknown", kind=repr(kind), choices=", ".join(LISTS))
    rules = rules or CallRules()
    if "lifecycle_state" not in predictions.columns:
        raise KizunaError.keyed("error.predictions_without_states")
    listed = _listed(predictions, customers, scores)
    outcomes = 0
    if kind == "keep":
        pool = listed.filter(listed.lifecycle_state.isin(KEEP_STATES))
        outcomes, known = _outcomes(predictions)
        ranking = keep_ranking(outcomes, min_outcomes, known) if min_outcomes is not None else "value_at_risk"
        order = [*(ibis.desc(column, nulls_first=False) for column in KEEP_ORDERS[ranking]), "customer_id"]
    else:
        ranking = "ltv_revenue"
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
    rows, held_out = _taken(pool, order, rules.capacity, holdout)
    actions = [_action(row, kind, as_of, rules) for row in rows.to_pylist()]
    rows = rows.append_column("suggested_action", pa.array(actions, pa.string()))
    with_phone = rows["_phone"].to_pylist()
    keep_columns = [c for c in rows.column_names if not c.startswith("_")]
    mask = pa.array([v == 1 for v in with_phone])
    table = rows.select(keep_columns)
    calls_table, mail_table = table.filter(mask), table.filter(pc.invert(mask))
    if kind == "winback":
        calls_table, mail_table = _by_reason(calls_table), _by_reason(mail_table)
    ranked = pa.array([ranking] * calls_table.num_rows, pa.string())
    calls_table = calls_table.append_column("ranking", ranked)
    mail_table = mail_table.append_column("ranking", pa.array([ranking] * mail_table.num_rows, pa.string()))
    return CallList(kind, as_of, rules.capacity, calls_table, mail_table, candidates, cooled_down, ranking, rules,
                    held_out, outcomes, min_outcomes)


def _outcomes(predictions: ibis.Table) -> tuple[int, bool]:
    """The call outcomes the predictions were made with, and whether they carry the effect of a call
    (an uplift for every customer, when the uplift model was fitted)."""
    if "call_outcomes" not in predictions.columns:  # an older kizuna's predictions
        return 0, False
    found = predictions.aggregate(outcomes=predictions.call_outcomes.max(),
                                  known=predictions.uplift.count()).to_pyarrow().to_pylist()[0]
    return int(found["outcomes"] or 0), bool(found["known"])


def _taken(pool: ibis.Table, order: list, capacity: int, holdout: Callable[[str], bool] | None
           ) -> tuple[pa.Table, int]:
    """The rows of the list, in order, until `capacity` customers with a telephone number outside the
    holdout are taken; and how many held-out customers with one were ranked among them (left out)."""
    limit = capacity if holdout is None else capacity + capacity // 4 + 10
    while True:
        rows = pool.filter(pool._before < limit).order_by(order).to_pyarrow()
        if holdout is None:
            return rows, 0
        phones, ids = rows["_phone"].to_pylist(), rows["customer_id"].to_pylist()
        keep, calls, held = [], 0, 0
        for i, (phone, customer) in enumerate(zip(phones, ids, strict=True)):
            if calls == capacity:
                break
            if phone == 1 and holdout(customer):
                held += 1
                continue
            keep.append(i)
            calls += phone == 1
        if calls == capacity or sum(phones) < limit:  # full, or nobody else to call
            return rows.take(pa.array(keep, pa.int64())), held
        limit += 2 * (capacity - calls) + 10


def _by_reason(table: pa.Table) -> pa.Table:
    """The win-back rows grouped by lost reason (`WINBACK_REASONS`, then none), by revenue within each."""
    rows = table.to_pylist()
    rank = {reason: i for i, reason in enumerate(WINBACK_REASONS)}
    order = sorted(range(len(rows)), key=lambda i: (rank.get(rows[i]["lost_reason"], len(rank)),
                                                    -(rows[i]["ltv_revenue"] or 0), rows[i]["customer_id"]))
    return table.take(pa.array(order, pa.int64()))


def _action(row: dict[str, Any], kind: str, as_of: dt.date, rules: CallRules) -> str:
    fresh = fresh_answer(row.get("nps_answered_at"), as_of, rules.follow_up_days)
    if kind == "winback":
        if fresh and nps_class_of(row.get("nps_score")) == "detractor":
            return "detractor_follow_up"
        return WINBACK_ACTIONS.get(row.get("lost_reason") or "drifted", "reminder")
    return suggested_action(row, fresh_answer=fresh)


def write_call_list(listed: pa.Table, path: Path | None, fmt: str = "csv", lang: str = "ja", *,
                    as_of: dt.date | None = None, business: str = "", kind: str | None = None) -> int:
    """Write a `call_list` to a CSV or .xlsx file for the contact centre (`path` None: csv on standard
    output); returns its rows. The workbook's sheet is 架電リスト (Call list); with `as_of`, a title row
    names the business, the list (`kind`: keep or winback) and the day."""
    from kizuna.i18n import text

    columns = _call_columns(lang)
    sheet = text("sheet.call_list", lang)
    title = None
    if as_of is not None:
        title = heading(business, sheet, label(f"list_{kind}", lang) if kind else "",
                        text("sheet.as_of", lang, day=as_of.strftime("%Y/%m/%d")))
    return write_table(path, columns, _call_cells(listed, lang), fmt=fmt, sheet=sheet, title=title)


_NUMBERS = ("churn_risk", "value_at_risk", "clv", "p_alive", "cancel_probability", "uplift", "value_kept")


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
    columns = _call_columns(lang)
    rows = [[column.csv(value) for column, value in zip(columns, row, strict=True)]
            for row in _call_cells(listed, lang)]
    return [c.header for c in columns], rows


def _call_columns(lang: str) -> list[Column]:
    """The call list's columns: headers in `lang`, and what each holds (kizuna._sheets)."""
    return [Column("#", "integer"), Column(label("customer_id", lang)), Column(label("name", lang)),
            Column(label("phone_number", lang)), Column(label("segment", lang)), Column("RFM"),
            Column(label("churn_risk", lang), "percent"), Column(label("value_at_risk", lang), "yen"),
            Column(label("clv", lang), "yen"), Column(label("reasons", lang)),
            Column(label("suggested_action", lang)), Column(label("opted_out", lang))]


def _call_cells(listed: pa.Table, lang: str) -> list[list[Any]]:
    """The call list's rows with their figures unrounded (a fraction for churn risk): each format
    rounds them as its reader reads them. Codes become words: segments, actions, the channels opted out of."""
    from kizuna.i18n import segment_label, text

    rows = []
    for rank, row in enumerate(listed.to_pylist(), start=1):
        opted = [label(f"channel_{c}", lang) for c in (row["opted_out"] or "").split(",") if c]
        rows.append([
            rank, row["customer_id"], row["name"], row["phone"], segment_label(row["matrix_cell"], lang),
            segment_label(f"rank_{row['rfm_rank']}", lang) if row["rfm_rank"] else None,
            _finite(row["churn_risk"]), _finite(row["value_at_risk"]), _finite(row["clv"]),
            row[f"churn_reasons_{lang}"], label(f"action_{row['suggested_action']}", lang),
            text("list.and", lang).join(opted) or None,
        ])
    return rows


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def missing_value_at_risk(listed: pa.Table) -> bool:
    """True when no row of the list has a value at risk (BG/NBD did not fit): it is by churn risk."""
    return listed.num_rows > 0 and listed["value_at_risk"].null_count == listed.num_rows
