"""Customer lists: a page of a segment's or an R × F cell's members, the whole list for an export, and
the day's call lists.

The first two are `kizuna.analytics.member_page` / `member_list` over the workspace's tables, run in
the engine, the same on every engine: the page's fifty rows and its total come back, with contact data
masked for a viewer. Nothing is kept between requests. A page without a search reads the lists' rows
that `kizuna analyze` and `predict` store (the scores with the two prediction columns a list sorts by),
in the same order and with the same rows as `member_page`. The call lists are `Workspace.call_lists` (keep
or win-back, within the day's capacity), each call with its customer's last call.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from kizuna.analytics import PAGE_COLUMNS, SEGMENTS, AsOf, MemberQuery, member_list, member_page, segment_filter
from kizuna.i18n import segment_key
from kizuna.web._auth import mask_row
from kizuna.web._figures import MEMBERS, PAGE_SIZE, PREDICTIONS, SORTS, mask_table

__all__ = ["CALL_LISTS", "call_list_view", "last_calls", "list_export", "list_page"]

CALL_LISTS = ("keep", "winback")
_PREDICTION_SORTS = ("churn_risk", "value_at_risk")
_CONTACTS = ("name", "email", "phone")  # a page's contact columns, from customers
_STORED_COLUMNS = tuple(c for c in PAGE_COLUMNS if c not in _CONTACTS)


def _tables(ws: Any) -> tuple[Any, Any, Any]:
    predictions = ws.store.table(PREDICTIONS) if ws.store.has_table(PREDICTIONS) else None
    return ws.scores(), ws.store.table("customers"), predictions


def list_page(ws: Any, query: MemberQuery, page: int, *, operator: bool) -> tuple[str, int, list[dict[str, Any]]]:
    """(list key, customers on the list, rows of page `page` (1-based), masked unless `operator`)."""
    tables = ws.store.table_names()
    if not query.search.strip() and MEMBERS in tables:
        return _stored_page(ws, query, page, tables, operator=operator)
    scores, customers, predictions = _tables(ws)
    with ws.store.engine_errors():
        found = member_page(scores, customers, query, predictions, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        total = int(found.total.to_pyarrow().as_py())
        rows = found.rows.to_pyarrow().to_pylist() if total > (page - 1) * PAGE_SIZE else []
    return found.key, total, [mask_row(row, operator) for row in rows]


def _stored_page(ws: Any, query: MemberQuery, page: int, tables: frozenset[str], *,
                 operator: bool) -> tuple[str, int, list[dict[str, Any]]]:
    """`list_page` from the lists' rows `kizuna analyze` and `predict` store (`analytics.list_members`):
    no join with the predictions; the page's rows sorted from the nearer end of the list
    (`store.sorted_page`), their contact data read for those fifty customers alone."""
    from kizuna.store import count_rows, rows_of_customers, sorted_page

    sort = query.sort if query.sort in SORTS else "ltv_revenue"
    if sort in _PREDICTION_SORTS and PREDICTIONS not in tables:
        sort = "ltv_revenue"  # as `member_page` without predictions
    if query.segment:
        key = segment_key(query.segment) or query.segment
    elif query.r is not None and query.f is not None:
        key = f"R{query.r}F{query.f}"
    else:
        raise ValueError("a list needs a segment or an R and F score")

    def narrowed() -> Any:
        members = ws.store.table(MEMBERS)
        if query.segment:
            _key, condition = segment_filter(members, query.segment)
        else:
            condition = (members.r_score == query.r) & (members.f_score == query.f)
        return members.filter(condition).select(*_STORED_COLUMNS)

    if query.segment and key not in SEGMENTS:
        narrowed()  # an unknown segment: its error, before anything runs
    order = [(sort, query.descending)] + ([] if sort == "customer_id" else [("customer_id", False)])
    with ws.store.engine_errors():
        total = count_rows(ws.store, narrowed, key=("list", key))
        found = sorted_page(ws.store, narrowed, order, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, total=total,
                            key=("list", key))
        rows = found.to_pylist()
        contacts = rows_of_customers(ws.store, "customers", [r["customer_id"] for r in rows],
                                     ("customer_id", *_CONTACTS)).to_pylist() if rows else []
    known = {c["customer_id"]: c for c in contacts}
    empty = dict.fromkeys(_CONTACTS)
    shown = [{c: {**r, **known.get(r["customer_id"], empty)}[c] for c in PAGE_COLUMNS} for r in rows]
    return key, total, [mask_row(row, operator) for row in shown]


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
