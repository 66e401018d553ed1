"""Reading a few rows quickly: one customer's rows of a table, for a page about that customer.

On DuckDB the rows are read with one parameterised statement: compiling an Ibis expression for
each of a customer page's seven tables would take longer than running them. Other engines take
the Ibis expression.
"""

from __future__ import annotations

import ibis
import pyarrow as pa
import sqlglot as sg

from kizuna.store._engine import Store

__all__ = ["customer_rows"]


def customer_rows(store: Store, name: str, customer_id: str, *, newest_by: str | None = None,
                  limit: int = 200) -> pa.Table:
    """The rows of table `name` about one customer, newest first by column `newest_by` when given,
    `limit` at most; an empty table when the store has no table `name`."""
    if not store.has_table(name):
        return pa.table({})
    with store.engine_errors():
        if store.engine == "duckdb":
            table = sg.to_identifier(name, quoted=True).sql("duckdb")
            order = f" ORDER BY {sg.to_identifier(newest_by, quoted=True).sql('duckdb')} DESC" if newest_by else ""
            statement = f"SELECT * FROM {table} WHERE customer_id = ?{order} LIMIT {int(limit)}"
            return store.backend.con.execute(statement, [customer_id]).to_arrow_table()
        rows = store.table(name)
        rows = rows.filter(rows.customer_id == customer_id)
        if newest_by:
            rows = rows.order_by(ibis.desc(newest_by))
        return rows.limit(limit).to_pyarrow()
