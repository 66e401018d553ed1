"""Customer lists: a page of a segment's or an R × F cell's members, the whole list for an export, and
the day's call lists.

The first two are `kizuna.analytics.member_page` / `member_list` over the workspace's tables, run in
the engine, the same on every engine: the page's fifty rows and its total come back, with contact data
masked for a viewer. A page without a search reads the lists' rows that `kizuna analyze` and `predict`
store (the scores with the two prediction columns a list sorts by and the contact data a page shows), in
the same order and with the same rows as `member_page`; the app keeps, per list and sort, where each page
begins and ends among the rows' stored places (`_stored_page`), nothing else between requests. The call
lists are `Workspace.call_lists` (keep or win-back, within the day's capacity), each call with its
customer's last call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from kizuna.analytics import (
    LIST_CONTACTS,
    PAGE_COLUMNS,
    PREDICTION_SORTS,
    SEGMENTS,
    AsOf,
    MemberQuery,
    member_list,
    member_page,
    segment_filter,
)
from kizuna.i18n import segment_key
from kizuna.web._auth import mask_row
from kizuna.web._figures import MEMBERS, PAGE_SIZE, PREDICTIONS, SORTS, mask_table

__all__ = ["CALL_LISTS", "SHOWN_COLUMNS", "call_list_view", "last_calls", "list_export", "list_page"]

CALL_LISTS = ("keep", "winback")
# what the list page shows of a row (list.html)
SHOWN_COLUMNS = ("customer_id", "name", "phone", "email", "ltv_revenue", "orders", "last_order_at", "recency_days",
                 "nps_score", "matrix_cell", "rfm_rank", "churn_risk", "value_at_risk")


def _tables(ws: Any) -> tuple[Any, Any, Any]:
    predictions = ws.store.table(PREDICTIONS) if ws.store.has_table(PREDICTIONS) else None
    return ws.scores(), ws.store.table("customers"), predictions


def list_page(ws: Any, query: MemberQuery, page: int, *, operator: bool, reader: Any = None,
              columns: Sequence[str] = PAGE_COLUMNS) -> tuple[str, int, list[dict[str, Any]]]:
    """(list key, customers on the list, rows of page `page` (1-based) with `columns` (some of
    `PAGE_COLUMNS`), masked unless `operator`).

    `reader` (the app's `Reader`): where a long list's page starts are computed and kept (`_stored_page`).
    The list page asks for the columns it shows (`SHOWN_COLUMNS`): a page's rows lie scattered over the
    stored rows, and each column read costs a read of the compressed block around each row."""
    tables = ws.store.table_names()
    if not query.search.strip() and MEMBERS in tables:
        return _stored_page(ws, query, page, tables, operator=operator, reader=reader, columns=tuple(columns))
    scores, customers, predictions = _tables(ws)
    with ws.store.engine_errors():
        found = member_page(scores, customers, query, predictions, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        total = int(found.total.to_pyarrow().as_py())
        rows = found.rows.to_pyarrow().to_pylist() if total > (page - 1) * PAGE_SIZE else []
    return found.key, total, [mask_row({c: row[c] for c in columns}, operator) for row in rows]


def _stored_page(ws: Any, query: MemberQuery, page: int, tables: frozenset[str], *, operator: bool,
                 reader: Any = None, columns: tuple[str, ...] = PAGE_COLUMNS) -> tuple[str, int, list[dict[str, Any]]]:
    """`list_page` from the lists' rows `kizuna analyze` and `predict` store (`analytics.list_members`):
    no join with the predictions, nor with the customers where the rows hold their contact data.

    Where the rows hold each one's place in every order (`store.list_positions`, DuckDB), a page is the
    rows placed between the places of its first and last row: the list's places in that order are read
    once per store version (`_places`, kept by the app's `reader`, a few bytes a page), and a page then
    reads fifty rows by a range condition, sorting nothing. Elsewhere the page's rows are sorted from
    the nearer end of the list (`store.sorted_page`)."""
    from kizuna.store import count_rows, placed_records, position_column, rows_of_customers, sorted_page

    sort = query.sort if query.sort in SORTS else "ltv_revenue"
    if sort in PREDICTION_SORTS and PREDICTIONS not in tables:
        sort = "ltv_revenue"  # as `member_page` without predictions
    if query.segment:
        key = segment_key(query.segment) or query.segment
    elif query.r is not None and query.f is not None:
        key = f"R{query.r}F{query.f}"
    else:
        raise ValueError("a list needs a segment or an R and F score")
    if query.segment and key not in SEGMENTS:
        _members_of(ws, query, ())  # an unknown segment: its error, before anything runs
    stored = _cached(reader, ws, "list-columns", _stored_columns)
    shown = tuple(c for c in columns if c in stored)
    column = position_column(sort, query.descending)
    offset = (page - 1) * PAGE_SIZE
    with ws.store.engine_errors():
        if column in stored:  # places stored (`store.list_positions`)
            total, starts, ends = _places(reader, ws, query, key, column)
            rows = placed_records(ws.store, lambda: _members_of(ws, query, (*shown, column)), column,
                                  starts[page - 1], ends[page - 1], key=("list", key, column, shown)) \
                if page - 1 < len(starts) else []
        else:
            def narrowed() -> Any:
                return _members_of(ws, query, shown)

            order = [(sort, query.descending)] + ([] if sort == "customer_id" else [("customer_id", False)])
            total = count_rows(ws.store, narrowed, key=("list", key, shown))
            rows = sorted_page(ws.store, narrowed, order, offset=offset, limit=PAGE_SIZE, total=total,
                               key=("list", key, shown)).to_pylist()
        missing = [c for c in LIST_CONTACTS if c not in stored and c in columns]
        if rows and missing:  # lists' rows stored by an older kizuna: the page's contact data from customers
            contacts = rows_of_customers(ws.store, "customers", [r["customer_id"] for r in rows],
                                         ("customer_id", *missing)).to_pylist()
            known = {c["customer_id"]: c for c in contacts}
            empty = dict.fromkeys(missing)
            rows = [{**r, **known.get(r["customer_id"], empty)} for r in rows]
    return key, total, [mask_row({c: r[c] for c in columns}, operator) for r in rows]


def _stored_columns(ws: Any) -> frozenset[str]:
    return frozenset(ws.store.table(MEMBERS).columns)


def _cached(reader: Any, ws: Any, name: str, compute: Any) -> Any:
    """`compute(ws)` for the store's current version, kept by the app's `reader` (computed here without one)."""
    if reader is None:
        return compute(ws)
    value, _stale = reader.cached(name, compute, stale_ok=False)
    return value


def _members_of(ws: Any, query: MemberQuery, columns: tuple[str, ...]) -> Any:
    """`columns` of the stored rows of the list `query` names (an Ibis expression)."""
    members = ws.store.table(MEMBERS)
    if query.segment:
        _key, condition = segment_filter(members, query.segment)
    else:
        condition = (members.r_score == query.r) & (members.f_score == query.f)
    return members.filter(condition).select(*columns)


def _places(reader: Any, ws: Any, query: MemberQuery, key: str, column: str) -> tuple[int, Any, Any]:
    """(customers on list `key`, where each of its pages begins and where it ends in the order whose places
    `column` holds: the place of every `PAGE_SIZE`-th row and of the row before the next), for the store's
    current version."""
    from kizuna.store import list_places

    def compute(ws: Any) -> tuple[int, Any, Any]:
        places = list_places(ws.store, lambda: _members_of(ws, query, (column,)), column, key=("places", key, column))
        ends = places[PAGE_SIZE - 1::PAGE_SIZE]
        if len(places) % PAGE_SIZE:
            ends = np.append(ends, places[-1])
        return len(places), places[::PAGE_SIZE].copy(), ends.copy()

    return _cached(reader, ws, f"places {key} {column}", compute)


def list_export(ws: Any, query: MemberQuery, *, operator: bool) -> tuple[str, pa.Table]:
    """(list key, every customer of the list with every export column, masked unless `operator`)."""
    scores, customers, predictions = _tables(ws)
    with ws.store.engine_errors():
        key, members = member_list(scores, customers, query, predictions)
        return key, mask_table(members.to_pyarrow(), operator)


def call_list_view(ws: Any, kind: str) -> dict[str, Any]:
    """The day's `kind` call list as the call-list page shows it (contact data not yet masked).

    ``rows``: the calls within the capacity, each with ``last_call_at`` and ``last_call_outcome``
    (None when never called); ``summary``: `CallList.summary()` and ``over_capacity``, the candidates
    left for another day (not cooled down, not on the e-mail / DM list, not held out, not called).
    """
    lists = ws.call_lists(kind=kind)
    rows = lists.calls.to_pylist()
    calls = ws.store.table("calls") if ws.store.has_table("calls") else None
    with ws.store.engine_errors():
        last = last_calls(calls, [r["customer_id"] for r in rows], lists.as_of)
    for row in rows:
        row["last_call_at"], row["last_call_outcome"] = last.get(row["customer_id"], (None, None))
    summary = lists.summary()
    listed = summary["calls"] + summary["mail"] + summary["cooled_down"] + (summary.get("held_out") or 0)
    summary["over_capacity"] = max(0, summary["candidates"] - listed)
    return {"kind": kind, "as_of": lists.as_of, "rows": rows, "summary": summary}


def last_calls(calls: Any, customer_ids: list[str], as_of: dt.date) -> dict[str, tuple[dt.datetime, str]]:
    """customer id -> (called at, outcome) of their latest call by the end of `as_of`, for a list's customers
    (a capacity's worth: the few rows come back and the latest is picked here)."""
    if calls is None or not customer_ids:
        return {}
    mine = calls.filter(calls.customer_id.isin(customer_ids) & AsOf(as_of).before_end(calls.called_at))
    latest: dict[str, tuple[dt.datetime, str]] = {}
    for row in mine.select("customer_id", "called_at", "outcome").to_pyarrow().to_pylist():
        known = latest.get(row["customer_id"])
        if known is None or row["called_at"] > known[0]:
            latest[row["customer_id"]] = (row["called_at"], row["outcome"])
    return latest
