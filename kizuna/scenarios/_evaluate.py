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
from collections.abc import Callable, Collection

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


def _result(expr: ibis.Table) -> ibis.Table:
    return expr.select(customer_id=expr.customer_id.cast("string"), occasion=expr.occasion.cast("string"),
                       occasion_at=expr.occasion_at.cast("timestamp"), detail=expr.detail.cast("string"))


def occasions(scenario: Scenario, tables: dict[str, ibis.Table], as_of: dt.date, *,
              members: Callable[[str, ibis.Table], ibis.Table] | None = None,
              scores: ibis.Table | None = None, predictions: ibis.Table | None = None,
              survey_answers: pa.Table | None = None) -> ibis.Table:
    """The occasions of `scenario`'s trigger up to `as_of` (see the module docstring), as an expression
    (`OCCASION_SCHEMA`'s columns): it runs where the store is, and only what a caller collects comes back.

    `members(kind, current)` turns today's members of an "entering" trigger (a table of
    customer_id) into the ones who entered since the last evaluation (the same columns);
    `survey_answers` are the web survey's answers not yet in nps_answers (customer_id, answered_at, score).
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
    current = current.select(customer_id=current.customer_id.cast("string"))
    entered = members(kind, current) if members is not None else current
    return _result(entered.mutate(
        occasion=ibis.literal(f"enter:{kind}:{as_of}"),
        occasion_at=ibis.literal(dt.datetime.combine(as_of, _DAY_START), type="timestamp"),
        detail=ibis.literal(params.get("name") or kind),
    ))


def _anniversaries(of: str, tables: dict[str, ibis.Table], completed: ibis.Table, as_of: dt.date,
                   catch_up: int) -> ibis.Table:
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
        found.append(_result(on_day.mutate(
            occasion=ibis.literal(f"anniversary:{of}:{day}"),
            occasion_at=ibis.literal(dt.datetime.combine(day, _DAY_START), type="timestamp"),
            detail=(day.year - first.year()).cast("string"),  # the years completed
        )))
    return found[0] if len(found) == 1 else ibis.union(*found)


def _replenishments(tables: dict[str, ibis.Table], completed: ibis.Table, as_of: dt.date, days_before: int,
                    catch_up: int) -> ibis.Table:
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


def _two(value: ibis.IntegerValue, width: int = 2) -> ibis.StringValue:
    return value.cast("string").lpad(width, "0")


def _nps(answers: ibis.Table, survey_answers: pa.Table | None, as_of: dt.date, params: dict) -> ibis.Table:
    """One occasion per customer and second answered ("nps:" + the answer's ISO time to the second); a web
    survey answer not yet merged into nps_answers wins over a stored one of the same second."""
    low, high = _window(as_of, params["catch_up_days"])
    day = answers.answered_at.date().epoch_days()
    hits = answers.filter((day >= low) & (day <= high) & (answers.score >= params["min"])
                          & (answers.score <= params["max"]))
    rows = hits.select(customer_id=hits.customer_id.cast("string"), answered_at=hits.answered_at.cast("timestamp"),
                       score=hits.score.cast("int64"), _web=ibis.literal(0, type="int64"))
    if survey_answers is not None and survey_answers.num_rows:
        web = [r for r in survey_answers.to_pylist()
               if low <= _day_number(r["answered_at"].date()) <= high and params["min"] <= r["score"] <= params["max"]]
        if web:
            pushed = ibis.memtable(pa.table({
                "customer_id": pa.array([r["customer_id"] for r in web], pa.string()),
                "answered_at": pa.array([r["answered_at"] for r in web], pa.timestamp("us")),
                "score": pa.array([r["score"] for r in web], pa.int64()),
                "_web": pa.array([1] * len(web), pa.int64())}))
            rows = rows.union(pushed.cast(rows.schema()))
    at = rows.answered_at
    stamp = (_two(at.year(), 4) + "-" + _two(at.month()) + "-" + _two(at.day()) + "T" + _two(at.hour()) + ":"
             + _two(at.minute()) + ":" + _two(at.second()))
    rows = rows.mutate(occasion="nps:" + stamp, _rank=rows._web * 100 + rows.score)
    # a stored answer and the web's of one second: the web's (then the higher score), the same on every engine
    best = rows.group_by(["customer_id", "occasion"]).aggregate(_best=rows._rank.max())
    chosen = rows.inner_join(best, ["customer_id", "occasion"]).filter(lambda t: t._rank == t._best)
    chosen = chosen.group_by(["customer_id", "occasion"]).aggregate(
        occasion_at=chosen.answered_at.min(), detail=chosen.score.max().cast("string"))
    return _result(chosen)


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


def entering_members(previous: Collection[str], current: ibis.Table) -> tuple[ibis.Table, ibis.Table | None]:
    """(today's members who were not members before, the members before who are not any more: None when
    there were none), both as expressions of customer_id: the members before go to the engine, not
    today's members to this process."""
    if not previous:
        return current, None
    before = ibis.memtable(pa.table({"customer_id": pa.array(sorted(previous), pa.string())}))
    return current.anti_join(before, "customer_id"), before.anti_join(current, "customer_id")
