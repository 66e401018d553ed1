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

import concurrent.futures
import functools
import importlib
import itertools
import re
import threading
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot as sg
import sqlglot.expressions as sge

from kizuna.store._duckdb import ROW_GROUP
from kizuna.store._engine import Store
from kizuna.store._statements import compiled

__all__ = ["cluster_by_customer", "count_rows", "create_list_rows", "customer_records", "customer_rows",
           "index_by_customer", "list_places", "list_positions", "placed_records", "placed_rows", "position_column",
           "replace_list_columns", "rows_of_customers", "sorted_page"]

# Row groups a lookup of one customer may read, on average, before the table is rewritten in
# customer order (rows appended since the last rewrite add a few row groups that every lookup reads).
CLUSTER_SPREAD = 4.0
_ZONE = re.compile(r"\[Min: (.*?), Max: (.*?), Has ")
_COMPILED: dict[Hashable, tuple[object, str]] = {}  # a list's SQL by (store, key); few lists, so a small cache
_ENUMS: dict[str, tuple[tuple, dict]] = {}  # a DuckDB file's ENUM columns (`_enum_columns`) by its URL
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


def customer_records(store: Store, name: str, customer_id: str, *, newest_by: str | None = None,
                     limit: int = 200, tables: Collection[str] | None = None) -> list[dict]:
    """`customer_rows` as a list of dicts, for a page: on DuckDB the few rows come back as Python values
    at once, without an Arrow table made only to be turned into dicts (a wide table's columns cost more
    to convert than its one row)."""
    if store.engine != "duckdb":
        return customer_rows(store, name, customer_id, newest_by=newest_by, limit=limit, tables=tables).to_pylist()
    if name not in tables if tables is not None else not store.has_table(name):
        return []
    with store.engine_errors():
        found = store.backend.con.execute(f"SELECT * FROM {_quoted(name)} WHERE customer_id = ?", [customer_id])
        names = [column[0] for column in found.description]
        rows = [dict(zip(names, row, strict=True)) for row in found.fetchall()]
    if newest_by and len(rows) > 1:  # as `customer_rows` sorts them: newest first, NULLs last, ties as read
        rows.sort(key=lambda row: (row[newest_by] is not None, row[newest_by]), reverse=True)
    return rows[:limit]


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
    """The DuckDB SQL of `rows()`, compiled once per `key` (None: each time) and version of the store's
    ENUM columns: compiling a list's Ibis expression takes longer than DuckDB takes to run it. The
    expression holds no in-memory table."""
    enums = _enum_columns(store)
    cache_key = None if key is None else (store.url, key)
    known = _COMPILED.get(cache_key) if cache_key is not None else None
    if known is not None and known[0] is enums:
        return known[1]
    sql = _typed_enums(store.backend.compiler.to_sqlglot(rows()), enums).sql("duckdb")
    if cache_key is not None:
        if len(_COMPILED) >= _COMPILED_KEPT:
            _COMPILED.clear()
        _COMPILED[cache_key] = (enums, sql)
    return sql


def _enum_columns(store: Store) -> dict[tuple[str, str], sge.DataType]:
    """(table, column) -> type of the store's ENUM columns, read from DuckDB's catalog once per version of
    its file (the same object while the file is unchanged; the categories follow the settings)."""
    files = Store.files_at(store.url)
    try:
        stamp = tuple((f.stat().st_mtime_ns, f.stat().st_size) if f.exists() else None for f in files)
    except OSError:  # the WAL folded into the file meanwhile: read the catalog again
        stamp = None
    known = _ENUMS.get(store.url)
    if files and stamp is not None and known is not None and known[0] == stamp:
        return known[1]
    listed = store.backend.con.execute("SELECT table_name, column_name, data_type FROM duckdb_columns() "
                                       "WHERE database_name = current_database() AND data_type LIKE 'ENUM(%'")
    found = {(table, column): sge.DataType.build(kind, dialect="duckdb") for table, column, kind in listed.fetchall()}
    if files and stamp is not None:
        _ENUMS[store.url] = (stamp, found)
    return found


def _typed_enums(query: sge.Expression, enums: Mapping[tuple[str, str], sge.DataType]) -> sge.Expression:
    """`query` (a select from one table) with each text its ENUM columns are compared with cast to the
    column's type: Ibis knows ENUMs as text, and DuckDB compares an ENUM with text as text, which its
    zone maps cannot answer (a list of one matrix cell read every row group of the lists' rows rather than
    the cell's). A text that is no value of the ENUM, and a query over several tables, stay as they are."""
    source = query.args.get("from") or query.args.get("from_")
    if not isinstance(query, sge.Select) or source is None or not isinstance(source.this, sge.Table) \
            or query.find(sge.Join) is not None:
        return query
    table = source.this.name

    def typed(literal: sge.Expression, kind: sge.DataType) -> sge.Expression:
        values = {value.this for value in kind.expressions}
        if isinstance(literal, sge.Literal) and literal.is_string and literal.this in values:
            return sge.Cast(this=literal.copy(), to=kind.copy())
        return literal

    def cast(node: sge.Expression) -> sge.Expression:
        if isinstance(node, (sge.EQ, sge.NEQ, sge.In)) and isinstance(node.this, sge.Column):
            kind = enums.get((table, node.this.name))
            if kind is not None and isinstance(node, sge.In):
                node.set("expressions", [typed(value, kind) for value in node.expressions])
            elif kind is not None:
                node.set("expression", typed(node.expression, kind))
        return node

    return query.transform(cast)


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


def position_column(column: str, descending: bool) -> str:
    """The column of `list_positions` that holds each row's place in the order of `column`, either way."""
    return f"_at_{column}_{'desc' if descending else 'asc'}"


def list_positions(store: Store, rows: ibis.Table, columns: Sequence[str], *, name: str) -> ibis.Table | None:
    """Scratch table `name`: `customer_id` and, for each of `columns` and either direction, each row's
    place (0, 1, …) among all of `rows` in that order as `sorted_page` orders a list (NULLs last, ties by
    customer id; `customer_id` itself has no ties) — `position_column(column, descending)`. A list, a
    subset of `rows` in the same order, then reads a page as the rows whose place lies between the
    places of its first and last row: a range condition on one integer column, no sort. None on
    engines other than DuckDB (they sort each page: `sorted_page`).

    One read of the columns in customer order and one stable sort per column (the descending order is
    the ascending one's groups of equal values turned around, each still in customer order)."""
    import numpy as np

    if store.engine != "duckdb":
        return None
    with store.engine_errors():
        values = store.backend.to_pyarrow(rows.select("customer_id", *(c for c in columns if c != "customer_id"))
                                          .order_by("customer_id"))
    count = values.num_rows
    ids = np.arange(count, dtype=np.int32)
    placed: dict[str, object] = {"customer_id": values.column("customer_id")}
    for column in columns:
        if column == "customer_id":
            placed[position_column(column, False)] = ids
            placed[position_column(column, True)] = ids[::-1].copy()
            continue
        placed[position_column(column, False)], placed[position_column(column, True)] = _column_places(
            values.column(column))
    return store.create(name, pa.table(placed), scratch=True)


def create_list_rows(store: Store, name: str, rows: ibis.Table, columns: Sequence[str], *, order: Sequence[str],
                     categories: Mapping[str, Sequence[str]] | None = None) -> ibis.Table:
    """Table `name`: `rows` (a `customer_id` each) stored in the order of the columns `order` (ascending,
    NULLs last), and on DuckDB with each row's place in both orders of each of `columns`, as
    `list_positions` places them (`position_column`); ties of `order` in customer order there.

    On DuckDB the rows are read once, placed and put in order here, and written a row group at a
    time (`DuckDBStore.create_streamed`): a join of the rows with their places and DuckDB's sort of
    those wide rows held every row twice over, and a scratch table of the places once more."""
    import numpy as np

    if store.engine != "duckdb":
        return store.create(name, rows.order_by(list(order)), categories=categories)
    # PyArrow loads pandas at its first conversion to NumPy (below); loaded on the other core while the
    # engine reads the rows
    threading.Thread(target=importlib.import_module, args=("pandas",), name="kizuna-pandas", daemon=True).start()
    # on one thread: the join's hash tables and the Arrow rows of a second thread would come on top of the rows
    with store.engine_errors(), store.threads(1):
        sql = compiled(store.backend, rows, lambda: store.backend.compiler.to_sqlglot(rows).sql("duckdb"))
        found = store.backend.con.execute(sql).to_arrow_table()
    count = found.num_rows
    by_customer = pc.sort_indices(found.column("customer_id")).to_numpy()
    rank = np.empty(count, np.int64)  # each row's place in customer order
    rank[by_customer] = np.arange(count)
    # a dictionary column (an ENUM) in the order of its values, as DuckDB orders an ENUM
    keys = {f"{i}": (pa.chunked_array([c.indices for c in found.column(c).chunks], found.column(c).type.index_type)
                     if pa.types.is_dictionary(found.schema.field(c).type) else found.column(c))
            for i, c in enumerate(order)}
    stored = pc.sort_indices(pa.table({**keys, "rank": rank}),
                             sort_keys=[(k, "ascending") for k in [*keys, "rank"]]).to_numpy()
    del keys
    customer_at = rank[stored]  # each stored row's place in customer order
    del rank
    placed: dict[str, object] = {}
    # a column's places on each core (NumPy's and Arrow's sorts let go of the GIL)
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="kizuna-places") as pool:
        for column, (ascending, descending) in zip(columns, pool.map(
                _stored_places, [None if c == "customer_id" else found.column(c) for c in columns],
                itertools.repeat(by_customer), itertools.repeat(customer_at)), strict=True):
            placed[position_column(column, False)], placed[position_column(column, True)] = ascending, descending
    del by_customer, customer_at
    # each row group made in the stored order when DuckDB reads it, let go of once written
    arrow_schema = pa.schema([*found.schema, *(pa.field(c, pa.int32()) for c in placed)])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, count, ROW_GROUP):
            taken = found.take(stored[start:start + ROW_GROUP]).combine_chunks()
            yield pa.RecordBatch.from_arrays([*(c.chunk(0) for c in taken.columns),
                                              *(pa.array(p[start:start + ROW_GROUP]) for p in placed.values())],
                                             schema=arrow_schema)

    return store.create_streamed(name, ibis.schema({**rows.schema(), **dict.fromkeys(placed, "int32")}), batches(),
                                 categories=categories)


def replace_list_columns(store: Store, name: str, values: ibis.Table, columns: Sequence[str]) -> bool:
    """The columns `columns` of the list rows `name` (made by `create_list_rows` with them among its
    sorted columns) replaced by those of `values` (one row per `customer_id`; NULL for a row whose
    customer it lacks), with their places as `create_list_rows` gives them; the rows, their order and
    every other column left as they are. False, with nothing changed, where that cannot be done (not
    DuckDB, no table `name`, or one without those columns and places): the caller writes it whole.

    On DuckDB an UPDATE of a few columns, by row id: writing every column of every row again (the
    list's scores and contacts, which `values` leaves as they were) is most of the cost of a new table."""
    import numpy as np

    if store.engine != "duckdb" or not store.has_table(name):
        return False
    placed = [position_column(c, descending) for c in columns for descending in (False, True)]
    if not {*columns, *placed} <= set(store.table(name).columns):
        return False
    con = store.backend.con
    with store.engine_errors():
        source = compiled(store.backend, values, lambda: store.backend.compiler.to_sqlglot(values).sql("duckdb"))
        wanted = ", ".join(f"v.{_quoted(c)}" for c in columns)
        found = con.execute(f"SELECT m.rowid AS row_id, m.customer_id, {wanted} FROM {_quoted(name)} AS m "
                            f"LEFT JOIN ({source}) AS v ON m.customer_id = v.customer_id").to_arrow_table()
        by_customer = pc.sort_indices(found.column("customer_id")).to_numpy()
        rank = np.empty(found.num_rows, np.int64)  # each row's place in customer order
        rank[by_customer] = np.arange(found.num_rows)
        new = {"row_id": found.column("row_id")}
        for column in columns:
            new[column] = found.column(column)
            ascending, descending = _column_places(found.column(column).take(by_customer))
            new[position_column(column, False)] = pa.array(ascending[rank])
            new[position_column(column, True)] = pa.array(descending[rank])
        replaced = f"_kizuna_replaced_{name}"
        con.register(replaced, pa.table(new))
        try:
            assigned = ", ".join(f"{_quoted(c)} = r.{_quoted(c)}" for c in [*columns, *placed])
            con.execute(f"UPDATE {_quoted(name)} AS m SET {assigned} FROM {_quoted(replaced)} AS r "
                        "WHERE m.rowid = r.row_id")
        finally:
            con.unregister(replaced)
    return True


def _stored_places(data: pa.ChunkedArray | None, by_customer: object, customer_at: object) -> tuple[object, object]:
    """`create_list_rows`' places of a column, ascending and descending, of its rows in their stored order
    (`customer_at`: each stored row's place in customer order; `by_customer`: the rows read in customer
    order); `data` None: of the customer id."""
    import numpy as np

    if data is None:
        ascending = customer_at.astype(np.int32)
        return ascending, len(ascending) - 1 - ascending
    ascending, descending = _column_places(data.take(by_customer))
    return ascending[customer_at], descending[customer_at]


def _column_places(data: pa.Array | pa.ChunkedArray) -> tuple[object, object]:
    """`_places` of an Arrow column given in customer order."""
    import numpy as np

    if pa.types.is_timestamp(data.type) or pa.types.is_date(data.type):
        data = data.cast(pa.int64())
    missing = data.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(data.type):  # small integers (counts, days, scores) sort by radix: 16 bits
        low, high = pc.min_max(data).values()
        small = low.as_py() is None or (low.as_py() >= -(2 ** 15) and high.as_py() < 2 ** 15)
        numbers = data.fill_null(0).to_numpy().astype(np.int16 if small else np.int64)
    else:
        numbers = data.cast(pa.float64()).fill_null(0.0).to_numpy()
    return _places(numbers, missing)


def _places(values: object, missing: object) -> tuple[object, object]:
    """Each row's place ascending and descending (rows given in customer order; NULLs last either way,
    ties in the given order)."""
    import numpy as np

    count = len(values)
    present = np.flatnonzero(~missing)
    ranked = present[np.argsort(values[present], kind="stable")]
    known = len(ranked)
    ascending, descending = np.empty(count, np.int32), np.empty(count, np.int32)
    ascending[ranked] = np.arange(known, dtype=np.int32)
    if known:
        ordered = values[ranked]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], known]
        sizes = ends - starts
        # a row in the group of equal values [start, end) of the ascending order: the groups above it come
        # first when descending, then its own group in the same order
        descending[ranked] = known - np.repeat(ends, sizes) + np.arange(known) - np.repeat(starts, sizes)
    nulls = np.flatnonzero(missing)
    ascending[nulls] = descending[nulls] = np.arange(known, count, dtype=np.int32)
    return ascending, descending


def list_places(store: Store, rows: Callable[[], ibis.Table], column: str, *,
                key: Hashable | None = None) -> object:
    """The values of integer column `column` (one of `list_positions`) over `rows()`, sorted: a list's
    places in one order, so that its page n holds the rows placed from its ``n × size``-th place to the
    one before the next page's (`placed_rows`). A NumPy array."""
    import numpy as np

    with store.engine_errors():
        if store.engine == "duckdb":
            statement = f"SELECT {_quoted(column)} FROM ({_compiled(store, rows, key)}) AS listed"
            found = store.backend.con.execute(statement).fetchnumpy()[column]
        else:  # a store copied from DuckDB with its lists' rows
            found = rows().select(column).to_pyarrow().column(column).to_numpy()
    return np.sort(np.asarray(found, dtype=np.int32))


def placed_rows(store: Store, rows: Callable[[], ibis.Table], column: str, first: int, last: int, *,
                key: Hashable | None = None) -> pa.Table:
    """The rows of `rows()` whose `column` (one of `list_positions`) lies between `first` and `last`, in
    that order: one page of a list whose places `list_places` gave. A range condition on one column,
    which DuckDB applies while it scans (the other columns are read for the matching rows only)."""
    with store.engine_errors():
        if store.engine == "duckdb":
            name = _quoted(column)
            statement = (f"SELECT * FROM ({_compiled(store, rows, key)}) AS page WHERE {name} BETWEEN ? AND ? "
                         f"ORDER BY {name}")
            return store.backend.con.execute(statement, [int(first), int(last)]).to_arrow_table()
        table = rows()
        return table.filter(table[column].between(int(first), int(last))).order_by(column).to_pyarrow()


def placed_records(store: Store, rows: Callable[[], ibis.Table], column: str, first: int, last: int, *,
                   key: Hashable | None = None) -> list[dict]:
    """`placed_rows` as a list of dicts, for a page: on DuckDB the page's rows come back as Python values
    and are put in order here (DuckDB's sort of fifty rows, and an Arrow table made only to be turned into
    dicts, cost more than the read of the rows)."""
    if store.engine != "duckdb":
        return placed_rows(store, rows, column, first, last, key=key).to_pylist()
    with store.engine_errors():
        statement = f"SELECT * FROM ({_compiled(store, rows, key)}) AS page WHERE {_quoted(column)} BETWEEN ? AND ?"
        found = store.backend.con.execute(statement, [int(first), int(last)])
        names = [described[0] for described in found.description]
        placed = [dict(zip(names, row, strict=True)) for row in found.fetchall()]
    placed.sort(key=lambda row: row[column])  # a place is one row's
    return placed


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
