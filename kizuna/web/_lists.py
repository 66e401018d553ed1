"""Customer lists: a page of a segment's or an R × F cell's members, the whole list for an export, and
the day's call lists.

The first two are `kizuna.analytics.member_page` / `member_list` over the workspace's tables, run in
the engine, the same on every engine: the page's fifty rows and its total come back, with contact data
masked for a viewer. A page without a search reads the lists' rows that `kizuna analyze` and `predict`
store (the scores with the two prediction columns a list sorts by), in the same order and with the same
rows as `member_page`; of a long list, the app keeps where each page begins per sort (`_stored_page`),
nothing else between requests. The call lists are `Workspace.call_lists` (keep
or win-back, within the day's capacity), each call with its customer's last call.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from kizuna._errors import KizunaError
from kizuna.analytics import PAGE_COLUMNS, SEGMENTS, AsOf, MemberQuery, member_list, member_page, segment_filter
from kizuna.i18n import segment_key
from kizuna.web._auth import mask_row
from kizuna.web._figures import MEMBERS, PAGE_SIZE, PREDICTIONS, SORTS, mask_table

__all__ = ["CALL_LISTS", "call_list_view", "last_calls", "list_export", "list_page"]

CALL_LISTS = ("keep", "winback")
_PREDICTION_SORTS = ("churn_risk", "value_at_risk")
_CONTACTS = ("name", "email", "phone")  # a page's contact columns, from customers
_STORED_COLUMNS = tuple(c for c in PAGE_COLUMNS if c not in _CONTACTS)
# Lists this long read a page far from both ends from where it starts (`_stored_page`); a page within
# NEAR_END_ROWS of an end is a short sort from that end.
LONG_LIST_ROWS = 50_000
NEAR_END_ROWS = 2_000


def _tables(ws: Any) -> tuple[Any, Any, Any]:
    predictions = ws.store.table(PREDICTIONS) if ws.store.has_table(PREDICTIONS) else None
    return ws.scores(), ws.store.table("customers"), predictions


def list_page(ws: Any, query: MemberQuery, page: int, *, operator: bool,
              reader: Any = None) -> tuple[str, int, list[dict[str, Any]]]:
    """(list key, customers on the list, rows of page `page` (1-based), masked unless `operator`).

    `reader` (the app's `Reader`): where a long list's page starts are computed and kept (`_stored_page`)."""
    tables = ws.store.table_names()
    if not query.search.strip() and MEMBERS in tables:
        return _stored_page(ws, query, page, tables, operator=operator, reader=reader)
    scores, customers, predictions = _tables(ws)
    with ws.store.engine_errors():
        found = member_page(scores, customers, query, predictions, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        total = int(found.total.to_pyarrow().as_py())
        rows = found.rows.to_pyarrow().to_pylist() if total > (page - 1) * PAGE_SIZE else []
    return found.key, total, [mask_row(row, operator) for row in rows]


def _stored_page(ws: Any, query: MemberQuery, page: int, tables: frozenset[str], *, operator: bool,
                 reader: Any = None) -> tuple[str, int, list[dict[str, Any]]]:
    """`list_page` from the lists' rows `kizuna analyze` and `predict` store (`analytics.list_members`):
    no join with the predictions; the page's rows sorted from the nearer end of the list
    (`store.sorted_page`), their contact data read for those fifty customers alone.

    A page far from both ends of a long list (`LONG_LIST_ROWS`) would sort a large part of it on every
    request: there the page starts from where it begins in the list's order (`store.page_at`), once
    the app has sorted that list that way (`store.page_starts`, in the background, once per store
    version; meanwhile `sorted_page` serves it)."""
    from kizuna.store import count_rows, page_at, rows_of_customers, sorted_page

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
        return _members_of(ws, query)

    if query.segment and key not in SEGMENTS:
        narrowed()  # an unknown segment: its error, before anything runs
    order = [(sort, query.descending)] + ([] if sort == "customer_id" else [("customer_id", False)])
    offset = (page - 1) * PAGE_SIZE
    with ws.store.engine_errors():
        total = count_rows(ws.store, narrowed, key=("list", key))
        starts = None
        if reader is not None and total >= LONG_LIST_ROWS and min(offset, total - offset) > NEAR_END_ROWS:
            starts = _page_starts(reader, query, key, order)
        if starts is not None and page - 1 < len(starts):
            found = page_at(ws.store, narrowed, order, starts[page - 1], limit=PAGE_SIZE, key=("list", key))
        else:
            found = sorted_page(ws.store, narrowed, order, offset=offset, limit=PAGE_SIZE, total=total,
                                key=("list", key))
        rows = found.to_pylist()
        contacts = rows_of_customers(ws.store, "customers", [r["customer_id"] for r in rows],
                                     ("customer_id", *_CONTACTS)).to_pylist() if rows else []
    known = {c["customer_id"]: c for c in contacts}
    empty = dict.fromkeys(_CONTACTS)
    shown = [{c: {**r, **known.get(r["customer_id"], empty)}[c] for c in PAGE_COLUMNS} for r in rows]
    return key, total, [mask_row(row, operator) for row in shown]


def _members_of(ws: Any, query: MemberQuery) -> Any:
    """The stored rows of the list `query` names (an Ibis expression)."""
    members = ws.store.table(MEMBERS)
    if query.segment:
        _key, condition = segment_filter(members, query.segment)
    else:
        condition = (members.r_score == query.r) & (members.f_score == query.f)
    return members.filter(condition).select(*_STORED_COLUMNS)


def _page_starts(reader: Any, query: MemberQuery, key: str,
                 order: list[tuple[str, bool]]) -> list[tuple] | None:
    """Where each page of list `key` in `order` begins, for the store's current version; None while the
    app computes it (in the background, from this first request) or where the engine has none."""
    from kizuna.store import page_starts
    from kizuna.web._store import Pending

    def compute(ws: Any) -> list[tuple] | None:
        return page_starts(ws.store, lambda: _members_of(ws, query), order, every=PAGE_SIZE, key=("list", key))

    name = "page-starts " + key + " " + " ".join(f"{c}:{int(d)}" for c, d in order)
    try:
        starts, _stale = reader.cached(name, compute, wait=0.0, stale_ok=False)
    except (Pending, KizunaError):  # not yet, or the sort failed (the store busy): the page sorts as before
        return None
    return starts


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
