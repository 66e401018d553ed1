"""A page of a customer list on DuckDB in a few milliseconds, at a million customers.

The list of `kizuna.web._figures.list_query` joins the segment's scores with customers and
predictions; run as one query per page, DuckDB probes every customer and prediction row (a
million each) to keep fifty, and even reading fifty rows by id scans the id column (~30 ms a
table at 1M, there being no index in a file opened read-only). So a page is: count, filter,
sort and pick the page's rows from `customer_scores` in the engine (joining predictions or
contact columns only when the sort or an operator's search needs them), then add the columns
the page shows from customers and predictions out of `Lookup`, an in-memory copy of those few
columns sorted by id, made once per store version (about 100 MB and 1 s at 1M customers).
The segment's condition is compiled from the same Ibis expression (`analytics.segment_filter`)
once per store version, and recent pages are kept per store version. Other engines take the
Ibis path, and exports always do (every column, every row).

Churn risk and value at risk may be NULL (value at risk is when BG/NBD did not fit the data):
they sort last either way, and a NaN an older kizuna stored reads as NULL too.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import ibis
import numpy as np
import pyarrow as pa

from kizuna.analytics import EXPORT_COLUMNS, segment_filter
from kizuna.web import _figures
from kizuna.web._auth import mask_row

__all__ = ["Lookup", "build_lookup", "list_page"]

PREDICTIONS = "customer_predictions"
CUSTOMER_COLUMNS = ("name", "name_kana", "email", "phone", "postal_code", "address")
SCORE_COLUMNS = tuple(c for c in EXPORT_COLUMNS if c != "customer_id" and c not in CUSTOMER_COLUMNS)
# What a list page shows from customers and predictions (the export writes every column).
SHOWN = ("name", "email", "phone", "churn_risk", "value_at_risk")


class Lookup:
    """The shown columns of customers and predictions by customer id, for a page's fifty rows."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table  # sorted by customer_id
        self.ids = np.asarray(table["customer_id"].to_numpy(zero_copy_only=False), dtype=str)

    def rows(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not len(self.ids) or not ids:
            return {}
        wanted = np.asarray(ids, dtype=str)
        at = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        hit = self.ids[at] == wanted
        found = self.table.take(pa.array(at[hit])).to_pylist()
        return {row["customer_id"]: row for row in found}


def build_lookup(ws: Any) -> Lookup:
    """`Lookup` for the store's current version (computed in the background, see `Reader.cached`)."""
    con = ws.store.backend.con
    if ws.store.has_table(PREDICTIONS):
        sql = ("SELECT c.customer_id, c.name, c.email, c.phone, p.churn_risk, p.value_at_risk FROM customers c "
               f"LEFT JOIN (SELECT customer_id, {_number('churn_risk')}, {_number('value_at_risk')} "
               f"FROM {PREDICTIONS}) p USING (customer_id) ORDER BY c.customer_id")
    else:
        sql = ("SELECT customer_id, name, email, phone, NULL::DOUBLE AS churn_risk, NULL::DOUBLE AS value_at_risk "
               "FROM customers ORDER BY customer_id")
    return Lookup(con.execute(sql).to_arrow_table())


def _number(column: str) -> str:
    """The column, NULL where it is not a finite number (NaN sorts above every number in DuckDB)."""
    return f"CASE WHEN isfinite({column}) THEN {column} END AS {column}"


PAGES_KEPT = 512

_lock = threading.Lock()
_segments: dict[tuple, tuple[str, str, Any, bool]] = {}
_pages: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()


def _segment(ws: Any, version: tuple, segment: str | None, r: int | None, f: int | None) -> tuple[str, str, Any, bool]:
    """(list key, SQL of the segment's scores, as-of day, has predictions), once per store version."""
    cache_key = (version, segment, r, f)
    with _lock:
        known = _segments.get(cache_key)
    if known is not None:
        return known
    scores = ws.scores()
    if segment:
        key, condition = segment_filter(scores, segment)
    else:
        key, condition = f"R{r}F{f}", (scores.r_score == r) & (scores.f_score == f)
    sql = str(ibis.to_sql(scores.filter(condition).select("customer_id", *SCORE_COLUMNS), dialect="duckdb"))
    known = (key, sql, scores.as_of.max().to_pyarrow().as_py(), ws.store.has_table(PREDICTIONS))
    with _lock:
        if len(_segments) > 256:
            _segments.clear()
        _segments[cache_key] = known
    return known


def list_page(ws: Any, version: tuple, lookup: Lookup, *, segment: str | None, r: int | None, f: int | None, q: str,
              sort: str, descending: bool, operator: bool, page: int) -> tuple[str, int, list[dict[str, Any]], Any]:
    """(list key, total, rows of page `page`, as-of day): what `list_query` + `member_page` give."""
    if ws.store.engine != "duckdb":
        key, expr = _figures.list_query(ws, segment=segment, r=r, f=f, q=q, sort=sort, descending=descending,
                                        operator=operator)
        total, rows = _figures.member_page(expr, page, operator)
        return key, total, rows, ws.scores_as_of()
    q = q.strip()
    page_key = (version, segment, r, f, q, sort, descending, operator, page)
    with _lock:
        if page_key in _pages:
            _pages.move_to_end(page_key)
            return _pages[page_key]
    key, seg_sql, as_of, predicted = _segment(ws, version, segment, r, f)
    con = ws.store.backend.con
    joins, where, params = "", "TRUE", []
    if sort in ("churn_risk", "value_at_risk") and not predicted:
        sort = "ltv_revenue"
    if sort not in _figures.SORTS:
        sort = "ltv_revenue"
    if sort in ("churn_risk", "value_at_risk"):
        joins += f" LEFT JOIN (SELECT customer_id, {_number(sort)} FROM {PREDICTIONS}) AS p USING (customer_id)"
    if q:
        where = "(starts_with(s.customer_id, ?)"
        params.append(q)
        if operator:  # a viewer must not find a customer by data it cannot see
            joins += " JOIN (SELECT customer_id, name, email, phone FROM customers) AS c USING (customer_id)"
            where += " OR contains(c.name, ?) OR contains(lower(c.email), ?) OR contains(c.phone, ?)"
            params += [q, q.lower(), q]
        where += ")"
    source = f"FROM ({seg_sql}) AS s{joins} WHERE {where}"
    total = con.execute(f"SELECT count(*) {source}", params).fetchone()[0]
    order = f'"{sort}" {"DESC" if descending else "ASC"} NULLS LAST, s.customer_id'
    names = ", ".join(f's."{c}"' for c in ("customer_id", *SCORE_COLUMNS))
    picked = con.execute(f"SELECT {names} {source} ORDER BY {order} LIMIT ? OFFSET ?",
                         [*params, _figures.PAGE_SIZE, (page - 1) * _figures.PAGE_SIZE]).fetchall()
    extra = lookup.rows([values[0] for values in picked])
    rows = []
    for values in picked:
        row = dict(zip(("customer_id", *SCORE_COLUMNS), values, strict=True))
        shown = extra.get(row["customer_id"], {})
        row.update({c: shown.get(c) for c in SHOWN})
        rows.append(row)
    result = (key, int(total), [mask_row(row, operator) for row in rows], as_of)
    with _lock:
        _pages[page_key] = result
        while len(_pages) > PAGES_KEPT:
            _pages.popitem(last=False)
    return result
