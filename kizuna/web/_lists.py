"""Customer lists: a page of a segment's or an R × F cell's members, and the whole list for an export.

Both are `kizuna.analytics.member_page` / `member_list` over the workspace's tables, run in the
engine, the same on every engine: the page's fifty rows and its total come back, with contact data
masked for a viewer. Nothing is kept between requests.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from kizuna.analytics import MemberQuery, member_list, member_page
from kizuna.web._auth import mask_row
from kizuna.web._figures import PAGE_SIZE, PREDICTIONS, mask_table

__all__ = ["list_export", "list_page"]


def _tables(ws: Any) -> tuple[Any, Any, Any]:
    predictions = ws.store.table(PREDICTIONS) if ws.store.has_table(PREDICTIONS) else None
    return ws.scores(), ws.store.table("customers"), predictions


def list_page(ws: Any, query: MemberQuery, page: int, *, operator: bool) -> tuple[str, int, list[dict[str, Any]]]:
    """(list key, customers on the list, rows of page `page` (1-based), masked unless `operator`)."""
    scores, customers, predictions = _tables(ws)
    with ws.store.engine_errors():
        found = member_page(scores, customers, query, predictions, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        total = int(found.total.to_pyarrow().as_py())
        rows = found.rows.to_pyarrow().to_pylist() if total > (page - 1) * PAGE_SIZE else []
    return found.key, total, [mask_row(row, operator) for row in rows]


def list_export(ws: Any, query: MemberQuery, *, operator: bool) -> tuple[str, pa.Table]:
    """(list key, every customer of the list with every export column, masked unless `operator`)."""
    scores, customers, predictions = _tables(ws)
    with ws.store.engine_errors():
        key, members = member_list(scores, customers, query, predictions)
        return key, mask_table(members.to_pyarrow(), operator)
