"""Reading a few rows quickly: one customer's rows of a table, for a page about that customer, and
one page of a long sorted list.

On DuckDB the rows are read with parameterised statements: compiling an Ibis expression for
each of a customer page's seven tables would take longer than running them. A customer's rows are
a range read when the table is stored in customer order: DuckDB skips every row group whose
smallest and largest customer id (its zone map) leave the customer out. `cluster_by_customer`
rewrites a table in that order when its customers' rows lie spread over its row groups (after an
import, or a table built from a hash aggregate). A zone map narrows a read to one row group
(about 120,000 rows), which a table of one row per customer (the customers, their scores and
predictions) still scans whole for one customer: those get an index on `customer_id`
(`index_by_customer`, made by the command that writes them, as a file opened read-only cannot be
given one). Other engines take the Ibis expression.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Hashable, Sequence

import ibis
import pyarrow as pa
import sqlglot as sg

from kizuna.store._engine import Store

__all__ = ["cluster_by_customer", "count_rows", "customer_rows", "index_by_customer", "page_at", "page_starts",
           "rows_of_customers", "sorted_page"]

# Row groups a lookup of one customer may read, on average, before the table is rewritten in
# customer order (rows appended since the last rewrite add a few row groups that every lookup reads).
CLUSTER_SPREAD = 4.0
_ZONE = re.compile(r"\[Min: (.*?), Max: (.*?), Has ")
_COMPILED: dict[Hashable, str] = {}  # a list's SQL by (store, key); few lists, so a small cache
_COMPILED_KEPT = 256


@functools.lru_cache(maxsize=1024)
def _quoted(name: str) -> str:  # a page quotes the same few names on each request
    return sg.to_identifier(name, quoted=True).sql("duckdb")


def customer_rows(store: Store, name: str, customer_id: str, *, newest_by: str | None = None,
                  limit: int = 200, tables: Collection[str] | None = None) -> pa.Table:
    """The rows of table `name` about one customer, newest first by column `newest_by` when given,
    `limit` at most; an empty table when the store has no table `name` (`tables`: the store's tables,
    when the caller knows them)."""
    if name not in tables if tables is not None else not store.has_table(name):
        return pa.table({})
    with store.engine_errors():
        if store.engine == "duckdb":
            # no ORDER BY nor LIMIT in the statement: either turns DuckDB from the index on customer_id
            # to a scan of the table; a customer's few rows are sorted here (nulls last, as DuckDB does)
            statement = f"SELECT * FROM {_quoted(name)} WHERE customer_id = ?"
            found = store.backend.con.execute(statement, [customer_id]).to_arrow_table()
            if newest_by and found.num_rows > 1:
                found = found.sort_by([(newest_by, "descending")])
            return found.slice(0, limit)
        rows = store.table(name)
        rows = rows.filter(rows.customer_id == customer_id)
        if newest_by:
            rows = rows.order_by(ibis.desc(newest_by))
        return rows.limit(limit).to_pyarrow()


def customer_spread(store: Store, name: str) -> float:
    """How many row groups of DuckDB table `name` a lookup of one customer reads, on average over the
    customers that open a row group (from the zone maps of its `customer_id` column); 0 when unknown."""
    found = store.backend.con.execute(
        "SELECT row_group_id, stats FROM pragma_storage_info(?) WHERE column_name = 'customer_id'", [name]
    ).fetchall()
    zones: dict[int, tuple[str, str]] = {}
    for group, stats in found:
        match = _ZONE.search(stats or "")
        if match is None:  # the column's validity mask, or a segment without statistics
            continue
        low, high = match.groups()
        known = zones.get(group)
        zones[group] = (min(low, known[0]), max(high, known[1])) if known else (low, high)
    if len(zones) < 2:
        return float(len(zones))
    ranges = list(zones.values())
    return sum(sum(low <= first <= high for low, high in ranges) for first, _ in ranges) / len(ranges)


def cluster_by_customer(store: Store, names: Sequence[str]) -> list[str]:
    """Rewrite those of tables `names` whose customers' rows are spread over many row groups in
    customer order (each in one transaction, the same rows and columns), so that a customer page reads
    a range; the names rewritten. On DuckDB only: PostgreSQL and Spark plan their own reads."""
    if store.engine != "duckdb":
        return []
    done = []
    with store.engine_errors():
        for name in names:
            if not store.has_table(name) or "customer_id" not in store.table(name).columns:
                continue
            if customer_spread(store, name) <= CLUSTER_SPREAD:
                continue
            table = _quoted(name)
            with store.transaction():
                store.backend.con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table} "
                                          "ORDER BY customer_id")
            done.append(name)
    return done


def index_by_customer(store: Store, names: Sequence[str]) -> list[str]:
    """Give those of tables `names` that have none an index on `customer_id` (DuckDB's ART), so that
    a customer page finds a customer's row without scanning a row group (and a list page its fifty
    customers' contact data, `rows_of_customers`); the names indexed. The
    index goes with its table when the table is replaced, and is made again by the next call. On
    DuckDB only, like `cluster_by_customer`."""
    if store.engine != "duckdb":
        return []
    con = store.backend.con
    done = []
    with store.engine_errors():
        indexed = {row[0] for row in con.execute(
            "SELECT DISTINCT table_name FROM duckdb_indexes() WHERE database_name = current_database() "
            "AND expressions = '[customer_id]'").fetchall()}
        for name in names:
            if name in indexed or not store.has_table(name) or "customer_id" not in store.table(name).columns:
                continue
            con.execute(f"CREATE INDEX {_quoted(f'kizuna_{name}_customer_id')} ON {_quoted(name)} (customer_id)")
            done.append(name)
    return done


def _compiled(store: Store, rows: Callable[[], ibis.Table], key: Hashable | None) -> str:
    """The DuckDB SQL of `rows()`, compiled once per `key` (None: each time): compiling a list's Ibis
    expression takes longer than DuckDB takes to run it. The expression holds no in-memory table."""
    cache_key = None if key is None else (store.url, key)
    sql = _COMPILED.get(cache_key) if cache_key is not None else None
    if sql is None:
        sql = store.backend.compiler.to_sqlglot(rows()).sql("duckdb")
        if cache_key is not None:
            if len(_COMPILED) >= _COMPILED_KEPT:
                _COMPILED.clear()
            _COMPILED[cache_key] = sql
    return sql


def sorted_page(store: Store, rows: Callable[[], ibis.Table], order: Sequence[tuple[str, bool]], *, offset: int,
                limit: int, total: int, key: Hashable | None = None) -> pa.Table:
    """Rows `offset` … `offset + limit` of `rows()` in `order` ((column, descending) pairs, NULLs last,
    the last column unique), of `total` rows in all; `key` names the expression for `_compiled`.

    A page past the middle is read from the other end, in the reverse order (NULLs first), and
    turned around: the engine then keeps `total - offset` rows while it sorts rather than `offset`,
    and the deepest page is as quick as the first.
    """
    limit = max(0, min(limit, total - offset))
    backwards = offset > total - offset - limit
    if backwards:
        offset = max(0, total - offset - limit)
    keys = [(column, descending != backwards) for column, descending in order]
    if store.engine == "duckdb":
        nulls = "FIRST" if backwards else "LAST"
        by = ", ".join(f"{_quoted(c)} {'DESC' if d else 'ASC'} NULLS {nulls}" for c, d in keys)
        statement = (f"SELECT * FROM ({_compiled(store, rows, key)}) AS page ORDER BY {by} "
                     f"LIMIT {int(limit)} OFFSET {int(offset)}")
        found = store.backend.con.execute(statement).to_arrow_table()
    else:
        table = rows()
        ordered = table.order_by([table[c].desc(nulls_first=backwards) if d else table[c].asc(nulls_first=backwards)
                                  for c, d in keys])
        # selected again after the cut: Spark's offset adds a column of row numbers of its own
        found = ordered.limit(limit, offset=offset).select(*table.columns).to_pyarrow()
    return found.take(pa.array(range(found.num_rows - 1, -1, -1), pa.int64())) if backwards else found


def page_starts(store: Store, rows: Callable[[], ibis.Table], order: Sequence[tuple[str, bool]], *, every: int,
                key: Hashable | None = None) -> list[tuple] | None:
    """Where each page of `rows()` in `order` begins (as `sorted_page` orders them): the `order` columns'
    values of rows 0, `every`, 2 × `every`, …, for `page_at`. One sort of the whole list, so that a page
    deep inside a long list is then read without sorting it again. None on engines other than DuckDB
    (`sorted_page` serves them)."""
    if store.engine != "duckdb":
        return None
    columns = ", ".join(_quoted(c) for c, _ in order)
    by = ", ".join(f"{_quoted(c)} {'DESC' if d else 'ASC'} NULLS LAST" for c, d in order)
    statement = (f"SELECT {columns} FROM (SELECT {columns}, row_number() OVER (ORDER BY {by}) - 1 AS kizuna_row "
                 f"FROM ({_compiled(store, rows, key)}) AS listed) AS numbered "
                 f"WHERE kizuna_row % {int(every)} = 0 ORDER BY kizuna_row")
    with store.engine_errors():
        return [tuple(row) for row in store.backend.con.execute(statement).fetchall()]


def page_at(store: Store, rows: Callable[[], ibis.Table], order: Sequence[tuple[str, bool]], start: Sequence[object],
            *, limit: int, key: Hashable | None = None) -> pa.Table:
    """`limit` rows of `rows()` in `order` from the row whose `order` values are `start` on (one of
    `page_starts`): the rows before it are left out by a condition on the sort columns, not sorted and
    skipped, so a page deep inside a long list costs what the first one does. DuckDB only."""
    condition, params = _at_or_after(order, start)
    by = ", ".join(f"{_quoted(c)} {'DESC' if d else 'ASC'} NULLS LAST" for c, d in order)
    statement = (f"SELECT * FROM ({_compiled(store, rows, key)}) AS page WHERE {condition} ORDER BY {by} "
                 f"LIMIT {int(limit)}")
    with store.engine_errors():
        return store.backend.con.execute(statement, params).to_arrow_table()


def _at_or_after(order: Sequence[tuple[str, bool]], start: Sequence[object]) -> tuple[str, list[object]]:
    """The condition (SQL and its parameters) "at or after the row whose `order` values are `start`" in
    `order` (NULLs last; the last column unique). Built from the last column out: beyond `start` on a
    column, or equal to it there and at or after it on the columns that follow."""
    condition, params = "", []
    for (column, descending), value in reversed(list(zip(order, start, strict=True))):
        name = _quoted(column)
        if value is None:  # NULLs come last: only NULLs are at or after it on this column
            beyond, equal, values = "FALSE", f"{name} IS NULL", []
        else:
            beyond, equal, values = f"({name} IS NULL OR {name} {'<' if descending else '>'} ?)", f"{name} = ?", [value]
        if not condition:  # the last column: at or after
            condition, params = f"({beyond} OR {equal})", values + values
        else:
            condition, params = f"({beyond} OR ({equal} AND {condition}))", values + values + params
    return condition, params


def count_rows(store: Store, rows: Callable[[], ibis.Table], *, key: Hashable | None = None) -> int:
    """How many rows `rows()` has (on DuckDB one statement, compiled once per `key`)."""
    if store.engine == "duckdb":
        statement = f"SELECT count(*) FROM ({_compiled(store, rows, key)}) AS counted"
        return int(store.backend.con.execute(statement).fetchone()[0])
    return int(rows().count().to_pyarrow().as_py())


def rows_of_customers(store: Store, name: str, customer_ids: Sequence[str], columns: Sequence[str]) -> pa.Table:
    """`columns` (`customer_id` first) of table `name` for a page's few customers, in no particular order."""
    with store.engine_errors():
        if store.engine == "duckdb":
            listed = ", ".join(_quoted(c) for c in columns)
            marks = ", ".join("?" for _ in customer_ids) or "NULL"
            statement = f"SELECT {listed} FROM {_quoted(name)} WHERE customer_id IN ({marks})"
            return store.backend.con.execute(statement, list(customer_ids)).to_arrow_table()
        table = store.table(name)
        return table.filter(table.customer_id.isin(list(customer_ids))).select(*columns).to_pyarrow()
