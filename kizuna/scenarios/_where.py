"""The where-language of a scenario's `audience.where` and a saved segment's `where`, evaluated: each
condition an Ibis boolean over one row per customer, on any engine.

Conditions read the audience table (customer_scores, with the columns of customer_predictions when
`kizuna predict` has run) and these fields besides (`EXTRA_FIELDS`):

* ``products_bought in [P1, P2]`` (``not in``, ``==``, ``!=``): bought any (none) of these
  products in a completed order; ``order_channels`` the same for the orders' sales channel;
* ``has_email``, ``has_line``, ``has_address``, ``has_phone``: can be reached on that channel;
* ``email_consent``, ``line_consent``, ``dm_consent``: may be written to on it — the customers
  table's opt-in, overridden by what the operational records hold since (an unsubscribe, a LINE
  unfollow), decided as the dispatcher decides it (`Dispatcher.address`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ibis
import pyarrow as pa

from kizuna._errors import NoDataError, Phrase
from kizuna.scenarios._model import Condition, ScenarioError

__all__ = ["CONSENT_FIELDS", "CONTACT_FIELDS", "EXTRA_FIELDS", "SET_FIELDS", "SET_OPERATORS", "condition_value",
           "segment_population", "where_field", "where_filter", "where_predicate", "with_contacts"]

# Fields the where-language knows besides the audience table's columns (module docstring).
SET_FIELDS = frozenset({"products_bought", "order_channels"})
CONTACT_FIELDS = frozenset({"has_email", "has_line", "has_address", "has_phone"})
CONSENT_FIELDS = frozenset({"email_consent", "line_consent", "dm_consent"})
EXTRA_FIELDS = SET_FIELDS | CONTACT_FIELDS | CONSENT_FIELDS
SET_OPERATORS = ("in", "not in", "==", "!=")

def where_field(source: object) -> str:
    # what a condition's mistake names: a scenario's audience.where, a saved segment's where
    return getattr(source, "where_field", "audience.where")


def condition_value(scenario: Any, table: ibis.Table, condition: Condition) -> ibis.Value:
    """One condition over `table` as a boolean (null counts as false); `scenario`: what names the file in
    errors (a scenario, a saved segment: anything with a `path`)."""
    if condition.column not in table.columns:
        raise ScenarioError(scenario.path, condition.line, where_field(scenario),
                            Phrase.of("scenario.unknown_column", column=repr(condition.column),
                                      known=", ".join(table.columns)))
    column, value = table[condition.column], condition.value
    # Ibis checks the kinds of a comparison's two sides, not of an `in` list's members (DuckDB
    # would fail the whole run on them): each member is compared on its own first.
    for member in value if condition.op in ("in", "not in") else [value]:
        if member is None:
            continue
        try:
            column == member  # noqa: B015 - only the type check matters
        except (TypeError, ibis.common.exceptions.IbisTypeError):
            kind = column.type()
            wanted = "number" if kind.is_numeric() else "boolean" if kind.is_boolean() else "other"
            raise ScenarioError(scenario.path, condition.line, where_field(scenario),
                                Phrase.of(f"scenario.not_{wanted}_for", value=repr(member), column=condition.column,
                                          kind=str(kind))) from None
    try:
        if condition.op == "in":
            return column.isin(value).fill_null(False)
        if condition.op == "not in":
            return (~column.isin(value)).fill_null(False)
        compare = {"==": column.__eq__, "!=": column.__ne__, "<": column.__lt__, "<=": column.__le__,
                   ">": column.__gt__, ">=": column.__ge__}[condition.op]
        return compare(value).fill_null(False)
    except (TypeError, ibis.common.exceptions.IbisTypeError) as exc:
        raise ScenarioError(scenario.path, condition.line, where_field(scenario),
                            Phrase.of("scenario.compare_kinds", problem=str(exc),
                                      condition=f"{condition.column} {condition.op} {value!r}")) from None


def segment_population(scores: ibis.Table | None, predictions: ibis.Table | None) -> ibis.Table:
    """One row per customer that conditions are read over: customer_scores with the prediction columns."""
    if scores is None:
        raise NoDataError("customer_scores", Phrase.of("saved_segment.needs_scores"))
    if predictions is None:
        return scores
    extra = [c for c in predictions.columns if c not in scores.columns]
    joined = scores.left_join(predictions.select("customer_id", *extra), "customer_id")
    return joined.select(*scores.columns, *extra)


def where_predicate(table: ibis.Table, conditions: Iterable[Condition], *, source: Any,
                    tables: Mapping[str, ibis.Table] | None = None,
                    consents: Mapping[str, Mapping[str, bool]] | None = None) -> tuple[ibis.Table, ibis.Value]:
    """(`table` with the contact and consent columns the conditions read, all conditions as one
    boolean). `source` (a scenario, a saved segment: anything with a `path`) names the file in errors;
    `tables` are the canonical tables (products bought, sales channels, contacts); `consents` the
    operational records' changes, channel -> subject -> opted in."""
    conditions = list(conditions)
    wanted = {c.column for c in conditions} & (CONTACT_FIELDS | CONSENT_FIELDS) - set(table.columns)
    if wanted:
        table = with_contacts(table, _need(tables, "customers", source, conditions), consents or {}, wanted)
    parts = [_set_condition(table, c, tables, source) if c.column in SET_FIELDS else condition_value(source, table, c)
             for c in conditions]
    predicate = ibis.literal(True)
    for part in parts:
        predicate = predicate & part
    return table, predicate


def where_filter(table: ibis.Table, conditions: Iterable[Condition], *, source: Any,
                 tables: Mapping[str, ibis.Table] | None = None,
                 consents: Mapping[str, Mapping[str, bool]] | None = None) -> ibis.Table:
    """`table` narrowed to the rows that meet every condition (see `where_predicate`)."""
    conditions = list(conditions)
    if not conditions:
        return table
    widened, predicate = where_predicate(table, conditions, source=source, tables=tables, consents=consents)
    return widened.filter(predicate).select(*table.columns)


def _need(tables: Mapping[str, ibis.Table] | None, name: str, source: Any, conditions: list[Condition]
          ) -> ibis.Table:
    if tables is None or name not in tables:  # pragma: no cover - every caller passes the tables
        raise ScenarioError(source.path, conditions[0].line, "where", Phrase.of("saved_segment.needs_tables"))
    return tables[name]


def _set_condition(table: ibis.Table, condition: Condition, tables: Mapping[str, ibis.Table] | None,
                   source: Any) -> ibis.Value:
    """products_bought / order_channels: whether the customer has a completed order with one of the values."""
    orders = _need(tables, "orders", source, [condition])
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    values = [str(v) for v in values if v is not None]
    completed = orders.filter(orders.status.isnull() | (orders.status == "completed"))
    if condition.column == "products_bought":
        items = _need(tables, "order_items", source, [condition])
        hits = completed.select("order_id", "customer_id").inner_join(
            items.filter(items.product_id.cast("string").isin(values)).select("order_id"), "order_id")
    else:
        hits = completed.filter(completed.channel.isin(values))
    inside = table.customer_id.isin(hits.select("customer_id").distinct().customer_id)
    return ~inside if condition.op in ("not in", "!=") else inside


_CONSENT_SCHEMA = pa.schema([("channel", pa.string()), ("subject", pa.string()), ("opted_in", pa.bool_())])


def with_contacts(table: ibis.Table, customers: ibis.Table, consents: Mapping[str, Mapping[str, bool]],
                   wanted: set[str]) -> ibis.Table:
    """`table` with the contact and consent flags in `wanted` (false for a customer the customers table lacks)."""
    rows = [(channel, subject, bool(opted)) for channel in ("email", "line", "dm")
            for subject, opted in dict(consents.get(channel, {})).items()]
    own = ibis.memtable(pa.table({name: [r[i] for r in rows] for i, name in enumerate(_CONSENT_SCHEMA.names)},
                                 schema=_CONSENT_SCHEMA))

    def recorded(channel: str, key: str) -> ibis.Table:
        chosen = own.filter(own.channel == channel)
        return chosen.select(**{key: chosen.subject, f"{channel}_own": chosen.opted_in})

    c = customers.select("customer_id", "email", "line_user_id", "address", "phone", "email_opt_in", "line_opt_in",
                         "dm_opt_in")
    for channel, key in (("email", "customer_id"), ("dm", "customer_id"), ("line", "line_user_id")):
        if f"{channel}_consent" not in wanted:
            continue
        if not consents.get(channel):  # nothing recorded on the channel: no join to make
            c = c.mutate(**{f"{channel}_own": ibis.null(bool)})
            continue
        choices = recorded(channel, f"_{channel}_subject")
        c = c.left_join(choices, c[key] == choices[f"_{channel}_subject"]).drop(f"_{channel}_subject")

    def present(column: ibis.Value) -> ibis.Value:
        return (column.notnull() & (column.strip() != "")).fill_null(False)

    # as `Dispatcher.address` decides: a recorded choice wins; e-mail needs an opt-in, LINE and direct
    # mail go unless the customer said no
    flags = {
        "has_email": lambda: present(c.email), "has_line": lambda: present(c.line_user_id),
        "has_address": lambda: present(c.address), "has_phone": lambda: present(c.phone),
        "email_consent": lambda: ibis.coalesce(c.email_own, c.email_opt_in, False),
        "line_consent": lambda: ibis.coalesce(c.line_own, c.line_opt_in, True),
        "dm_consent": lambda: ibis.coalesce(c.dm_own, True) & ibis.coalesce(c.dm_opt_in, True),
    }
    contacts = c.select(_contact_id=c.customer_id, **{k: flag() for k, flag in flags.items() if k in wanted})
    joined = table.left_join(contacts, table.customer_id == contacts._contact_id)
    return joined.select(*table.columns, **{k: joined[k].fill_null(False) for k in sorted(wanted)})
