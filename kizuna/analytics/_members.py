"""The members of a segment or an R × F cell as a list shows them: narrowed by a search, sorted
and paged in the engine, the same on every engine (the web app's lists and exports, docs/measures.md §2).

`member_list` is the whole list with every column an export writes; `member_page` is one page of
it with the columns a page shows, built so that the engine sorts and cuts `customer_scores` alone
and joins customers and predictions to that page's rows only (at a million customers, a join of
every row first would read every customer to keep fifty).

Churn risk and value at risk may be NULL (value at risk is when BG/NBD did not fit the data):
they sort last either way, and a NaN an older kizuna stored reads as NULL. Every sort puts
NULLs last and breaks ties by customer id, so that pages neither overlap nor skip a customer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import ibis

from kizuna.analytics._segments import EXPORT_COLUMNS, PREDICTION_EXPORT_COLUMNS, segment_filter

__all__ = ["MEMBER_SORTS", "PAGE_COLUMNS", "PREDICTION_SORTS", "MemberPage", "MemberQuery", "member_list",
           "member_page"]

# Columns a list may be sorted by (anything else sorts by LTV); the last two need predictions.
MEMBER_SORTS = ("ltv_revenue", "orders", "recency_days", "last_order_at", "nps_score", "customer_id", "churn_risk",
                "value_at_risk")
PREDICTION_SORTS = ("churn_risk", "value_at_risk")  # the sorts that come from the predictions
_CUSTOMER_COLUMNS = ("name", "name_kana", "email", "phone", "postal_code", "address")
_SCORE_COLUMNS = tuple(c for c in EXPORT_COLUMNS if c != "customer_id" and c not in _CUSTOMER_COLUMNS)
_SHOWN_CONTACTS = ("name", "email", "phone")
# What a page shows: the scores of the export, name and contacts, churn risk and value at risk.
PAGE_COLUMNS = ("customer_id", *_SCORE_COLUMNS, *_SHOWN_CONTACTS, *PREDICTION_SORTS)


@dataclass(frozen=True)
class MemberQuery:
    """Which customers a list holds and in which order.

    `segment` (id or label, see `segment_filter`) or an R × F cell (`r` and `f`, 1–5); `search`
    keeps customers whose id starts with it, and with `contacts` also those whose name, e-mail
    (any case) or phone contains it (an operator's search: a viewer must not find a customer by
    data it cannot see); `sort` is one of `MEMBER_SORTS`.
    """

    segment: str | None = None
    r: int | None = None
    f: int | None = None
    search: str = ""
    contacts: bool = False
    sort: str = "ltv_revenue"
    descending: bool = True


@dataclass(frozen=True)
class MemberPage:
    """One page of a list: its key (segment id or ``R5F5``), the number of customers on the whole
    list and the page's rows (`PAGE_COLUMNS`), as expressions the caller runs."""

    key: str
    total: ibis.Scalar
    rows: ibis.Table


def _condition(scores: ibis.Table, query: MemberQuery) -> tuple[str, ibis.Value]:
    if query.segment:
        return segment_filter(scores, query.segment)
    if query.r is not None and query.f is not None:
        return f"R{query.r}F{query.f}", (scores.r_score == query.r) & (scores.f_score == query.f)
    raise ValueError("a list needs a segment or an R and F score")


def _settled(query: MemberQuery, predictions: ibis.Table | None) -> MemberQuery:
    sort = query.sort if query.sort in MEMBER_SORTS else "ltv_revenue"
    if sort in PREDICTION_SORTS and predictions is None:
        sort = "ltv_revenue"
    return replace(query, sort=sort, search=query.search.strip())


def _number(column: ibis.Value) -> ibis.Value:
    """The column, NULL where it is no finite number (NaN would sort above every number)."""
    return ibis.cases((column.isnan() | column.isinf(), ibis.null("float64")), else_=column)


def _predicted(predictions: ibis.Table, *columns: str) -> ibis.Table:
    return predictions.select("customer_id", **{c: _number(predictions[c]) for c in columns})


def _order(table: ibis.Table, query: MemberQuery) -> list[ibis.Value]:
    column = table[query.sort]
    first = column.desc(nulls_first=False) if query.descending else column.asc(nulls_first=False)
    return [first] if query.sort == "customer_id" else [first, table.customer_id]


def _matches(table: ibis.Table, query: MemberQuery) -> ibis.Value:
    match = table.customer_id.startswith(query.search)
    if query.contacts:
        match = (match | table.name.contains(query.search) | table.email.lower().contains(query.search.lower())
                 | table.phone.contains(query.search))
    return match.fill_null(False)


def member_list(scores: ibis.Table, customers: ibis.Table, query: MemberQuery,
                predictions: ibis.Table | None = None) -> tuple[str, ibis.Table]:
    """(list key, every customer of the list with the columns of an export), sorted in the engine:
    `EXPORT_COLUMNS`, and `PREDICTION_EXPORT_COLUMNS` when `predictions` are given."""
    query = _settled(query, predictions)
    key, condition = _condition(scores, query)
    members = scores.filter(condition).inner_join(customers, "customer_id")
    columns = list(EXPORT_COLUMNS)
    if predictions is not None:
        numbers = [c for c in PREDICTION_EXPORT_COLUMNS if c in PREDICTION_SORTS]
        cleaned = predictions.select("customer_id", *(c for c in PREDICTION_EXPORT_COLUMNS if c not in numbers),
                                     **{c: _number(predictions[c]) for c in numbers})
        members = members.left_join(cleaned, "customer_id")
        columns += PREDICTION_EXPORT_COLUMNS
    members = members.select(*columns)
    if query.search:
        members = members.filter(_matches(members, query))
    return key, members.order_by(_order(members, query))


def member_page(scores: ibis.Table, customers: ibis.Table, query: MemberQuery,
                predictions: ibis.Table | None = None, *, offset: int = 0, limit: int = 50) -> MemberPage:
    """Rows `offset` … `offset + limit` of the list of `query` (`PAGE_COLUMNS`), and its total.

    The scores are filtered, sorted and cut first — joined with customers only for an operator's
    search, with predictions only when sorting by one of theirs — and the page's rows then take
    name, contacts, churn risk and value at risk.
    """
    query = _settled(query, predictions)
    key, condition = _condition(scores, query)
    narrowed = scores.filter(condition).select("customer_id", *_SCORE_COLUMNS)
    if query.sort in PREDICTION_SORTS:
        narrowed = narrowed.left_join(_predicted(predictions, query.sort), "customer_id")
    if query.search:
        if query.contacts:
            narrowed = narrowed.inner_join(customers.select("customer_id", *_SHOWN_CONTACTS), "customer_id")
        narrowed = narrowed.filter(_matches(narrowed, query))
    total = narrowed.count()
    picked = narrowed.order_by(_order(narrowed, query)).limit(limit, offset=offset).select("customer_id",
                                                                                           *_SCORE_COLUMNS)
    if predictions is not None:  # NaN made NULL after the join: before it, every prediction would be read
        joined = picked.left_join(predictions.select("customer_id", *PREDICTION_SORTS), "customer_id")
        picked = joined.select("customer_id", *_SCORE_COLUMNS, **{c: _number(joined[c]) for c in PREDICTION_SORTS})
    else:
        picked = picked.mutate(**{c: ibis.null("float64") for c in PREDICTION_SORTS})
    # the limit again keeps the page's rows a query of their own: without it an engine may join
    # customers with predictions first (DuckDB does: 1M × 1M to keep fifty)
    picked = picked.limit(limit)
    rows = picked.left_join(customers.select("customer_id", *_SHOWN_CONTACTS), "customer_id").select(*PAGE_COLUMNS)
    return MemberPage(key, total, rows.order_by(_order(rows, query)))
