"""Copying tables from one store to another (DuckDB, PostgreSQL, Spark), batch by batch.

The rows travel as Arrow record batches, so memory holds one batch at a time (except
when Spark is the source: Ibis collects a Spark table whole). Each engine is written
through its fastest exact path:

* DuckDB: the batch is registered and inserted in place (`Store.append`);
* PostgreSQL: ``COPY … FROM STDIN`` in CSV written by Arrow, all tables in one
  transaction, so a failure leaves the target as it was;
* Spark: ``createDataFrame`` straight from Arrow, appended to the table (`Store.append`).

The target tables get the canonical schema (`kizuna.store.TABLES`) whatever the source
engine returns: local wall-clock timestamps without a timezone, amounts as int64.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator

import ibis
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlglot as sg

from kizuna._errors import StoreError
from kizuna.store._engine import Store
from kizuna.store._schema import TABLES

__all__ = ["copy_store", "same_dtype"]

BATCH_ROWS = 200_000

Writer = Callable[[pa.Table], None]


def copy_store(
    source: Store,
    target: Store,
    tables: Iterable[str] | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, int]:
    """Replace the contents of `tables` in `target` by those of `source`; return rows copied per table.

    `tables` defaults to the canonical tables; other tables of the source (e.g.
    ``customer_scores``) may be named too and keep the source's schema. Source and target
    must be different databases: the target table is dropped before the source is read.
    """
    if _same_database(source, target):
        raise StoreError("copy_store needs two different stores: the target tables are replaced.")
    names = list(TABLES) if tables is None else list(dict.fromkeys(tables))
    for name in names:
        if not source.has_table(name):
            raise StoreError(f"table {name!r} is not in the source store {source.url}.")
    counts: dict[str, int] = {}
    with _target_transaction(target):
        for name in names:
            schema = TABLES[name].schema if name in TABLES else source.table(name).schema()
            rows = _conformed(source.table(name), schema)
            target.create(name, schema=schema)
            with _writer(target, name, schema) as write:
                counts[name] = _stream(_batches(source, rows, batch_rows), schema, write)
            _check_schema(target, name, schema)
    return counts


def _same_database(a: Store, b: Store) -> bool:
    if a is b or a.backend is b.backend:
        return True
    if a.engine == b.engine == "pyspark":  # two Ibis backends may share one session and database
        same_session = a.backend._session is b.backend._session
        return same_session and a.backend.current_database == b.backend.current_database
    return a.url == b.url and a.url != a.engine  # Store.from_backend has only the engine name


def _conformed(table: ibis.Table, schema: ibis.Schema) -> ibis.Table:
    """The source table with exactly the target columns, in order, cast where the engine differs."""
    missing = [c for c in schema.names if c not in table.columns]
    if missing:
        raise StoreError(f"the source table lacks the columns {', '.join(missing)}.")
    return table.select(*[table[c] if same_dtype(table[c].type(), t) else table[c].cast(t)
                          for c, t in schema.items()])


def same_dtype(a: ibis.DataType, b: ibis.DataType) -> bool:
    """Equal types, whatever their nullability; a timestamp without scale is microseconds
    (PostgreSQL reports scale 6 for what DuckDB and Spark leave unspecified)."""
    a, b = a.copy(nullable=True), b.copy(nullable=True)
    if a.is_timestamp() and b.is_timestamp():
        return a.timezone == b.timezone and {a.scale, b.scale} <= {None, 6}
    return a == b


def _batches(source: Store, rows: ibis.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
    if source.engine == "pyspark":
        # Ibis reads Spark through pandas, where a nullable int64 becomes float64 and loses
        # digits past 2**53; Spark's own Arrow export is exact (and collects the table whole,
        # as Ibis would). Its timestamps come tagged UTC, the session's zone: the cast drops it.
        table = source.backend._session.sql(source.backend.compile(rows)).toArrow()
        yield from table.to_batches(max_chunksize=batch_rows)
    else:
        yield from rows.to_pyarrow_batches(chunk_size=batch_rows)


def _stream(batches: Iterable[pa.RecordBatch], schema: ibis.Schema, write: Writer) -> int:
    arrow_schema = schema.to_pyarrow()
    copied = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        # Engines hand back e.g. large_string or UTC-tagged timestamps: cast to the exact types.
        write(pa.Table.from_batches([batch]).rename_columns(schema.names).cast(arrow_schema))
        copied += batch.num_rows
    return copied


def _check_schema(target: Store, name: str, schema: ibis.Schema) -> None:
    got = target.table(name).schema()
    if got.names != schema.names or not all(same_dtype(got[c], t) for c, t in schema.items()):
        raise StoreError(f"{name} on {target.engine} came out as {got}, not {schema}.")


@contextlib.contextmanager
def _target_transaction(target: Store) -> Iterator[None]:
    # PostgreSQL: all or nothing. Ibis' own statements become savepoints inside it.
    if target.engine == "postgres":
        with target.backend.con.transaction():
            yield
    else:
        yield


@contextlib.contextmanager
def _writer(target: Store, name: str, schema: ibis.Schema) -> Iterator[Writer]:
    if target.engine == "postgres":
        with _postgres_copy(target, name, schema) as write:
            yield write
    else:
        yield lambda batch: target.append(name, batch)


@contextlib.contextmanager
def _postgres_copy(target: Store, name: str, schema: ibis.Schema) -> Iterator[Writer]:
    """One COPY for the whole table (cheaper than one per batch), fed CSV that Arrow writes."""
    columns = ", ".join(sg.to_identifier(c, quoted=True).sql("postgres") for c in schema.names)
    table = sg.to_identifier(name, quoted=True).sql("postgres")
    options = pacsv.WriteOptions(include_header=False)
    with target.backend.con.cursor() as cursor, cursor.copy(
        f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)"
    ) as copy:
        def write(batch: pa.Table) -> None:
            buffer = io.BytesIO()
            pacsv.write_csv(batch, buffer, options)
            copy.write(buffer.getbuffer())

        yield write
