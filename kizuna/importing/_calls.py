"""One call written by hand (the customer page's form): the same checks as a row of `kizuna calls import`.

The values are read as a calls file's cells are (`convert_batch`: the outcome words of `_values`,
dates as `parse_timestamp` reads them, text normalised), the customer must be known, and the row
replaces a stored call with the same key (customer, called at), as re-importing it would.
"""

from __future__ import annotations

import pyarrow as pa

from kizuna._errors import KizunaError, Phrase
from kizuna.importing._convert import convert_batch
from kizuna.importing._mapping import ColumnMapping
from kizuna.importing._reasons import reason_phrase
from kizuna.importing._sources import ROW
from kizuna.store import TABLES, Store

__all__ = ["CallError", "record_call"]

CALLS = TABLES["calls"]


class CallError(KizunaError):
    """A call that cannot be recorded: the column and why."""

    def __init__(self, column: str, reason: str) -> None:
        self.column, self.reason = column, reason  # the reason in English; said in the reader's language
        super().__init__(Phrase.of("error.column_problem", column=column, problem=reason_phrase(reason)))


def record_call(store: Store, values: dict[str, str | None], *, timezone: str) -> dict:
    """Check one call's values (text, as a form gives them) and write it to the `calls` table.

    `values` holds some of the table's columns (customer_id, called_at, agent, script, outcome,
    next_call_at, note). Returns the row as stored; raises `CallError` naming the first column at
    fault.
    """
    unknown = sorted(set(values) - set(CALLS.column_names))
    if unknown:
        raise CallError(unknown[0], "not a column of calls")
    given = {name: (value if value is None or str(value).strip() else None) for name, value in values.items()}
    batch = pa.RecordBatch.from_pydict({
        **{name: pa.array([value], pa.string()) for name, value in given.items()},
        ROW: pa.array([1], pa.int64()),
    })
    headers = {name: name for name in given}
    for name in CALLS.required:
        if name not in headers:
            raise CallError(name, f"missing {name}")
    result = convert_batch(batch, CALLS, headers, ColumnMapping(), timezone)
    if result.rejects.num_rows:
        first = result.rejects.to_pylist()[0]
        raise CallError(first["column"], first["reason"])
    row = result.accepted.drop_columns([ROW])
    customers = store.table("customers")
    customer_id = row.column("customer_id")[0].as_py()
    if not customers.filter(customers.customer_id == customer_id).count().to_pyarrow().as_py():
        raise CallError("customer_id", "unknown customer_id (not in customers)")
    with store.engine_errors():
        store.upsert_rows("calls", row, CALLS.key)
    return row.to_pylist()[0]
