"""Small stores built from Python rows, for hand-computed expectations."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from kizuna.store import TABLES
from kizuna.workspace import Workspace

_ARROW = {
    "string": pa.string(), "timestamp": pa.timestamp("us"), "date": pa.date32(), "int64": pa.int64(),
    "float64": pa.float64(), "boolean": pa.bool_(),
}


def arrow_rows(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of a canonical table; absent columns are null."""
    spec = TABLES[table]
    return pa.table(
        {c.name: pa.array([r.get(c.name) for r in rows], _ARROW[c.dtype]) for c in spec.columns}
    )


def workspace_with(path: Path, **tables: list[dict[str, Any]]) -> Workspace:
    """A DuckDB workspace holding exactly these rows (customers are added for every order)."""
    ws = Workspace.init(path)
    ids = {r["customer_id"] for rows in tables.values() for r in rows if "customer_id" in r}
    known = {r["customer_id"] for r in tables.get("customers", [])}
    customers = list(tables.get("customers", [])) + [{"customer_id": c} for c in sorted(ids - known)]
    ws.store.append("customers", arrow_rows("customers", customers))
    for name, rows in tables.items():
        if name != "customers" and rows:
            ws.store.append(name, arrow_rows(name, rows))
    return ws


def day(text: str, hour: int = 12) -> dt.datetime:
    """A local timestamp at noon of an ISO date, for readable fixtures."""
    return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(hour))


def days_before(as_of: str, *offsets: int) -> list[str]:
    base = dt.date.fromisoformat(as_of)
    return [(base - dt.timedelta(days=o)).isoformat() for o in offsets]


def orders_for(customer: str, dates: list[str], amount: int | list[int], **extra: Any) -> list[dict]:
    amounts = amount if isinstance(amount, list) else [amount] * len(dates)
    return [
        {"order_id": f"{customer}-{i}", "customer_id": customer, "ordered_at": day(d), "amount": a, **extra}
        for i, (d, a) in enumerate(zip(dates, amounts, strict=True))
    ]


def write(path: Path, text: str | bytes, encoding: str = "utf-8") -> Path:
    """A file with `text` in `encoding` (bytes as they are), as a user's export would be."""
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return path


def rejects_of(summary) -> list[dict[str, str]]:
    """The rows of an import's rejects file (none when nothing was rejected), keyed file, row, column,
    value, reason whatever the language of its headers."""
    from kizuna.i18n import text

    if summary.rejects_path is None:
        return []
    keys = {text(f"header.reject_{key}", lang): key for key in ("file", "row", "column", "value", "reason")
            for lang in ("ja", "en")}
    with summary.rejects_path.open(encoding="utf-8-sig", newline="") as handle:
        return [{keys.get(k, k): v for k, v in row.items()} for row in csv.DictReader(handle)]


def stored(ws: Workspace, table: str, order_by: str) -> list[dict]:
    """Every row of a store table, in `order_by` order."""
    return ws.store.table(table).order_by(order_by).to_pyarrow().to_pylist()
