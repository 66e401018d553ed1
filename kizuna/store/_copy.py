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

from collections.abc import Callable, Iterable

import ibis
import pyarrow as pa

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
    if source.same_database(target) or target.same_database(source):
        raise StoreError("copy_store needs two different stores: the target tables are replaced.")
    names = list(TABLES) if tables is None else list(dict.fromkeys(tables))
    for name in names:
        if not source.has_table(name):
            raise StoreError(f"table {name!r} is not in the source store {source.url}.")
    counts: dict[str, int] = {}
    with target.loading():
        for name in names:
            schema = TABLES[name].schema if name in TABLES else source.table(name).schema()
            rows = _conformed(source.table(name), schema)
            target.create(name, schema=schema)
            with target.bulk_writer(name, schema) as write:
                counts[name] = _stream(source.arrow_batches(rows, batch_rows), schema, write)
            _check_schema(target, name, schema)
    return counts


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
