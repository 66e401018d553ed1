"""Who is due for a scenario on a day: its trigger's occasions, narrowed by its audience.

Each trigger gives rows (customer_id, occasion, occasion_at, detail): `occasion` names what
happened so that the same event never enrols a customer twice ("order:O123",
"anniversary:subscription_start:2026-11-30"); `occasion_at` is when (local wall-clock time, as
the store keeps it); `detail` is what a template may mention (the product to replenish, the NPS
score). Triggers are Ibis expressions over the store's tables, so they run on every engine;
"entering" triggers (a segment, lapsing, churn risk) compare today's members with the last
evaluation's, kept in the operational records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import ibis
import pyarrow as pa

from kizuna._errors import KizunaError
from kizuna.analytics import segment_filter
from kizuna.scenarios._model import Scenario, ScenarioError
from kizuna.scenarios._segments_saved import scenario_segment
from kizuna.scenarios._where import where_filter

__all__ = ["OCCASION_SCHEMA", "audience_filter", "entering_members", "occasions"]

OCCASION_SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("occasion", pa.string()), ("occasion_at", pa.timestamp("us")),
    ("detail", pa.string()),
])
_DAY_START = dt.time()


def _day_number(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def _window(as_of: dt.date, catch_up: int) -> tuple[int, int]:
    # a trigger due on a day that cron missed (machine off at the weekend) is still due
    return _day_number(as_of) - catch_up, _day_number(as_of)


def _result(expr: ibis.Table) -> pa.Table:
    return expr.select("customer_id", "occasion", "occasion_at", "detail").to_pyarrow().cast(OCCASION_SCHEMA)


def occasions(scenario: Scenario, tables: dict[str, ibis.Table], as_of: dt.date, *,
              members: Callable[[str, pa.Array], pa.Table] | None = None,
              scores: ibis.Table | None = None, predictions: ibis.Table | None = None,
              survey_answers: pa.Table | None = None) -> pa.Table:
    """The occasions of `scenario`'s trigger up to `as_of` (see the module docstring).

    `members(kind, customer_ids)` turns today's members of an "entering" trigger into the ones
    who entered since the last evaluation (rows customer_id, since); `survey_answers` are the
    web survey's answers not yet in nps_answers (customer_id, answered_at, score).
    """
    params = scenario.trigger.params
    kind = scenario.trigger.kind
    orders = tables["orders"]
    completed = orders.filter(orders.status.isnull() | (orders.status == "completed"))
    if kind == "after_order":
        low, high = _window(as_of, params["catch_up_days"])
        day = completed.ordered_at.date().epoch_days() + params["days"]
        due = completed.filter((day >= low) & (day <= high))
        # the occasion is the moment the message is meant for: `days` after the order
        return _result(due.mutate(occasion="order:" + due.order_id.cast("string"),
                                  occasion_at=due.ordered_at + ibis.interval(days=params["days"]),
                                  detail=due.order_id.cast("string")))
    if kind == "anniversary":
        return _anniversaries(params["of"], tables, completed, as_of, params["catch_up_days"])
    if kind == "replenishment":
        return _replenishments(tables, completed, as_of, params["days_before"], params["catch_up_days"])
    if kind == "nps":
        return _nps(tables["nps_answers"], survey_answers, as_of, params)
    # entering triggers: today's members, of whom the new ones are the occasions
    if kind == "segment":
        if scores is None:
            raise KizunaError.keyed("scenario.needs_scores", name=scenario.name)
        try:
            _, condition = segment_filter(scores, params["name"])
        except KizunaError as exc:
            raise ScenarioError(scenario.path, scenario.lines.get("trigger"), "trigger.segment.name",
                                exc.phrase or str(exc)) from None
        current = scores.filter(condition)
    elif kind == "lapse":
        if scores is None:
            raise KizunaError.keyed("scenario.needs_scores", name=scenario.name)
        current = scores.filter(scores.lapsing.fill_null(False))
    elif kind == "churn_risk":
        if predictions is None:
            raise KizunaError.keyed("scenario.needs_predictions", name=scenario.name)
        current = predictions.filter(predictions.churn_risk > params["above"])
    else:  # pragma: no cover - the model admits only the kinds above
        raise AssertionError(kind)
    ids = current.select("customer_id").to_pyarrow().column("customer_id").combine_chunks()
    entered = members(kind, ids) if members is not None else pa.table({"customer_id": ids, "since": [as_of] * len(ids)})
    since = entered.column("since").to_pylist()
    return pa.table({
        "customer_id": entered.column("customer_id"),
        "occasion": [f"enter:{kind}:{day}" for day in since],
        "occasion_at": pa.array([dt.datetime.combine(day, _DAY_START) for day in since], pa.timestamp("us")),
        "detail": [params.get("name") or kind] * len(since),
    }, schema=OCCASION_SCHEMA)


def _anniversaries(of: str, tables: dict[str, ibis.Table], completed: ibis.Table, as_of: dt.date,
                   catch_up: int) -> pa.Table:
    if of == "signed_up":
        c = tables["customers"]
        dates = c.filter(c.signed_up_at.notnull()).select("customer_id", first=c.signed_up_at)
    elif of == "first_order":
        dates = completed.group_by("customer_id").aggregate(first=completed.ordered_at.min())
    else:
        e = tables["events"]
        e = e.filter(e.kind == of)
        dates = e.group_by("customer_id").aggregate(first=e.occurred_at.min())
    days = [as_of - dt.timedelta(days=n) for n in range(catch_up + 1)]
    first = dates["first"]
    found = []
    for day in days:  # at most a few: one comparison of month and day each
        hit = (first.month() == day.month) & (first.day() == day.day) & (first.year() < day.year)
        on_day = dates.filter(hit)
        found.append(on_day.mutate(
            occasion=ibis.literal(f"anniversary:{of}:{day}"),
            occasion_at=ibis.literal(dt.datetime.combine(day, _DAY_START), type="timestamp"),
            detail=(day.year - first.year()).cast("string"),  # the years completed
        ))
    union = found[0] if len(found) == 1 else ibis.union(*found)
    return _result(union)


def _replenishments(tables: dict[str, ibis.Table], completed: ibis.Table, as_of: dt.date, days_before: int,
                    catch_up: int) -> pa.Table:
    items, products = tables["order_items"], tables["products"]
    bought = completed.select("order_id", "customer_id", "ordered_at").join(
        items.select("order_id", "product_id"), "order_id")
    last = bought.group_by(["customer_id", "product_id"]).aggregate(
        last_at=bought.ordered_at.max(), last_order=bought.order_id.cast("string").max())
    last = last.join(products.filter(products.cycle_days > 0).select("product_id", "cycle_days", "name"), "product_id")
    due_day = last.last_at.date().epoch_days() + last.cycle_days - days_before
    low, high = _window(as_of, catch_up)
    due = last.filter((due_day >= low) & (due_day <= high))
    return _result(due.mutate(
        occasion="replenish:" + due.product_id.cast("string") + ":" + due.last_order,
        occasion_at=due.last_at,
        detail=due.name,
    ))


def _nps(answers: ibis.Table, survey_answers: pa.Table | None, as_of: dt.date, params: dict) -> pa.Table:
    low, high = _window(as_of, params["catch_up_days"])
    day = answers.answered_at.date().epoch_days()
    hits = answers.filter((day >= low) & (day <= high) & (answers.score >= params["min"])
                          & (answers.score <= params["max"]))
    stored = hits.select("customer_id", "answered_at", "score").to_pyarrow()
    if survey_answers is not None and survey_answers.num_rows:
        stored = pa.concat_tables([stored.cast(survey_answers.schema), survey_answers.select(stored.column_names)])
    rows: dict[str, dict] = {}
    for row in stored.to_pylist():
        at: dt.datetime = row["answered_at"]
        if not (low <= _day_number(at.date()) <= high and params["min"] <= row["score"] <= params["max"]):
            continue
        occasion = f"nps:{at.isoformat(timespec='seconds')}"
        rows[row["customer_id"] + "\0" + occasion] = {"customer_id": row["customer_id"], "occasion": occasion,
                                                     "occasion_at": at, "detail": str(row["score"])}
    return pa.Table.from_pylist(list(rows.values()), schema=OCCASION_SCHEMA)


def audience_filter(scenario: Scenario, audience: ibis.Table, tables: dict[str, ibis.Table] | None = None,
                    consents: dict[str, dict[str, bool]] | None = None) -> ibis.Table:
    """`audience` (scores, with prediction columns when there are any) narrowed by the scenario.

    `tables` (the canonical tables) and `consents` (channel -> subject -> opted in, from the
    operational records) serve the fields a saved segment knows besides the audience's columns."""
    result = audience
    if scenario.segments:
        any_of = None
        for name in scenario.segments:
            try:
                _, condition = segment_filter(audience, name)
            except KizunaError as exc:
                raise ScenarioError(scenario.path, scenario.lines.get("audience"), "audience.segments",
                                    exc.phrase or str(exc)) from None
            any_of = condition if any_of is None else (any_of | condition)
        result = result.filter(any_of)
    result = where_filter(result, scenario.conditions, source=scenario, tables=tables, consents=consents)
    if scenario.segment is not None:  # audience.segment: a saved segment's conditions as well
        saved = scenario_segment(scenario)
        result = where_filter(result, saved.conditions, source=saved, tables=tables, consents=consents)
    return result


def entering_members(previous: set[str], current: pa.Array, as_of: dt.date) -> tuple[pa.Table, list[str]]:
    """(rows customer_id, since for those not members before; the members who left)."""
    now = set(current.to_pylist())
    new = sorted(now - previous)
    left = sorted(previous - now)
    entered = pa.table({"customer_id": pa.array(new, pa.string()), "since": pa.array([as_of] * len(new), pa.date32())})
    return entered, left
