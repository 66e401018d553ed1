"""One batch of text columns -> typed canonical columns, and the problems of each row."""

from __future__ import annotations

import collections
import concurrent.futures
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from kizuna.importing import _parse
from kizuna.importing._mapping import ColumnMapping
from kizuna.importing._prepare import Grouped, Preparer
from kizuna.importing._sources import ROW, Problem
from kizuna.importing._values import ENUMS
from kizuna.store import Column, TableSpec

__all__ = ["BatchResult", "REJECT_SCHEMA", "convert_batch", "convert_batches", "problem_rejects"]

REJECT_SCHEMA = pa.schema(
    [("row", pa.int64()), ("column", pa.string()), ("value", pa.string()), ("reason", pa.string())]
)


@dataclass
class BatchResult:
    accepted: pa.Table  # canonical columns + _row, only rows without a problem
    rejects: pa.Table  # REJECT_SCHEMA, one line per problem
    rejected_rows: int


def convert_batches(
    batches: Iterable[pa.RecordBatch], prepare: Preparer, mapping: ColumnMapping, timezone: str,
) -> Iterator[tuple[int, BatchResult]]:
    """(rows read, converted batch) for each of `batches`, in file order: the import's convert stage.

    Batches are grouped into orders in file order (an order's lines may span two batches), then
    prepared and parsed on every core (Arrow releases the GIL) while the caller stores the
    previous one; at most `workers` + 1 batches are in memory. Close the iterator (e.g. with
    `contextlib.closing`) when stopping early, so that the threads end with it.
    """
    spec, keep = prepare.spec, prepare.keep

    def convert(grouped: Grouped) -> BatchResult:
        prepared = prepare.finish(grouped)
        headers = {c: c for c in prepared.batch.schema.names if c in spec.column_names}
        return convert_batch(prepared.batch, spec, headers, mapping, timezone,
                             problems=prepared.problems, keep=keep)

    workers = max(1, min(4, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kizuna-import") as pool:
        queued: collections.deque = collections.deque()
        for batch in batches:
            queued.append((batch.num_rows, pool.submit(convert, prepare(batch))))
            while len(queued) > workers:
                rows, future = queued.popleft()
                yield rows, future.result()
        while queued:
            rows, future = queued.popleft()
            yield rows, future.result()


def problem_rejects(problems: list[Problem]) -> pa.Table:
    """The reject lines of the rows the reader could not split into fields (a ragged row, a stray quote)."""
    return pa.table(
        {"row": [p.row for p in problems], "column": [p.column for p in problems],
         "value": [p.value for p in problems], "reason": [p.reason for p in problems]},
        schema=REJECT_SCHEMA,
    )


def convert_batch(
    batch: pa.RecordBatch, spec: TableSpec, headers: dict[str, str],
    mapping: ColumnMapping, timezone: str, *,
    problems: list[tuple[str, pa.Array]] = (), keep: tuple[str, ...] = (),
) -> BatchResult:
    """`headers`: batch column name -> canonical column (see `_presets.plan_import`).

    `problems`: (column, reason or null per row) found before parsing; `keep`: batch
    columns passed through as they are (for the accepted rows).
    """
    found = list(problems)
    rows = batch.column(ROW)
    typed: dict[str, pa.Array] = {}
    raw_by_column: dict[str, pa.Array] = {}
    text_by_column: dict[str, pa.Array] = {}
    problems: list[tuple[str, pa.Array]] = []  # (column, reasons array)
    for header, name in headers.items():
        raw = batch.column(header)
        if not pa.types.is_string(raw.type):
            raw = raw.cast(pa.string())
        raw_by_column[name] = raw
        kind = spec.column(name).kind
        text = _parse.clean_prose(raw) if kind == "prose" else _parse.clean_text(raw)
        text = _map_values(text, mapping.values.get(name))
        text_by_column[name] = text
        values, reasons = _parse_column(text, spec.column(name), timezone)
        typed[name] = values
        problems.append((name, reasons))
    for name in spec.required:
        missing = pc.is_null(text_by_column[name])
        problems.append((name, pc.if_else(missing, f"missing {name}", pa.scalar(None, pa.string()))))
    problems.extend(_row_rules(typed))
    problems.extend(found)

    bad = pa.repeat(pa.scalar(False), batch.num_rows)
    reject_parts = []
    for name, reasons in problems:
        has = pc.is_valid(reasons)
        if not pc.any(has).as_py():
            continue
        bad = pc.or_(bad, has)
        raw = raw_by_column.get(name, pa.nulls(batch.num_rows, pa.string()))
        reject_parts.append(pa.table(
            [pc.filter(rows, has), pa.array([name] * pc.sum(has).as_py(), pa.string()),
             pc.filter(raw, has), pc.filter(reasons, has)],
            schema=REJECT_SCHEMA,
        ))
    good = pc.invert(bad)
    n_good = pc.sum(good).as_py() or 0
    columns = {
        c.name: pc.filter(typed[c.name], good) if c.name in typed
        else pa.nulls(n_good, _arrow_type(c))
        for c in spec.columns
    }
    for name in keep:
        columns[name] = pc.filter(batch.column(name), good)
    columns[ROW] = pc.filter(rows, good)
    accepted = pa.table(columns)
    rejects = (pa.concat_tables(reject_parts) if reject_parts
               else REJECT_SCHEMA.empty_table())
    return BatchResult(accepted, rejects, batch.num_rows - n_good)


def _map_values(text: pa.Array, table: dict[str, str] | None) -> pa.Array:
    if not table:
        return text
    index = pc.index_in(text, pa.array(list(table)))
    return pc.coalesce(pc.take(pa.array(list(table.values())), index), text)


# Where messages are sent: a line break or NUL in one is stored, then fails (or adds a mail
# header) only when a message goes out, so such a value is rejected at import.
_ADDRESSES = ("email", "phone", "line_user_id")


def _parse_column(text: pa.Array, column: Column, timezone: str) -> tuple[pa.Array, pa.Array]:
    kind = column.kind
    if column.name in _ADDRESSES:
        return text, _parse.control_characters(text, column.name)
    if kind in ("id", "text", "prose"):
        return text, pa.nulls(len(text), pa.string())
    if kind == "timestamp":
        return _parse.parse_timestamp(text, timezone)
    if kind == "date":
        return _parse.parse_date(text)
    if kind == "yen":
        return _parse.parse_int(text, "an amount in whole yen")
    if kind == "score":
        return _parse.parse_score(text)
    if kind == "int":
        return _parse.parse_int(text)
    if kind == "float":
        return _parse.parse_float(text)
    if kind == "bool":
        return _parse.parse_bool(text)
    return _parse.parse_enum(text, ENUMS[kind], column.name)


def _below(values: pa.Array, limit: int) -> pa.Array:
    return pc.fill_null(pc.less(values, limit), False)


def _row_rules(typed: dict[str, pa.Array]) -> list[tuple[str, pa.Array]]:
    """Rules on parsed values: signs, ranges and consistency between columns."""
    none = pa.scalar(None, pa.string())
    rules: list[tuple[str, pa.Array]] = []
    for name in ("amount", "refund_amount", "price", "unit_price", "cycle_days", "volume_l"):
        if name in typed:
            rules.append((name, pc.if_else(_below(typed[name], 0), f"negative {name}", none)))
    if "quantity" in typed:
        rules.append(("quantity", pc.if_else(_below(typed["quantity"], 1),
                                             "quantity must be 1 or more", none)))
    if "score" in typed:
        outside = pc.fill_null(pc.or_(pc.less(typed["score"], 0), pc.greater(typed["score"], 10)),
                               False)
        rules.append(("score", pc.if_else(outside, "NPS score outside 0-10", none)))
    if "refund_amount" in typed and "amount" in typed:
        over = pc.fill_null(pc.greater(typed["refund_amount"], typed["amount"]), False)
        rules.append(("refund_amount", pc.if_else(over, "refund larger than the order amount", none)))
    return rules


def _arrow_type(column: Column) -> pa.DataType:
    return {
        "string": pa.string(), "timestamp": pa.timestamp("us"), "date": pa.date32(),
        "int64": pa.int64(), "float64": pa.float64(), "boolean": pa.bool_(),
    }[column.dtype]
