"""A line-item platform export with members and guests imports alike on PostgreSQL and Spark."""

from __future__ import annotations

import datetime as dt

import pytest
from test_platforms import write_ec4

from kizuna import Workspace
from kizuna.importing import guest_id


def check_ec4(ws: Workspace, tmp_path) -> None:
    members, orders = write_ec4(tmp_path)
    assert ws.import_file(members).added == 2
    summary = ws.import_file(orders)
    assert (summary.preset, summary.rows_read, summary.rejected) == ("EC-CUBE 4 受注CSV", 8, 0)
    assert {t: (c.added, c.updated, c.unchanged) for t, c in summary.tables.items()} == {
        "customers": (1, 0, 2), "products": (2, 0, 0), "orders": (5, 0, 0), "order_items": (5, 0, 0)}
    hana = guest_id("hana@example.jp", key=ws.operations.secret())
    orders_stored = sorted(ws.store.table("orders").select("order_id", "customer_id", "ordered_at", "amount", "status")
                           .to_pyarrow().to_pylist(), key=lambda r: r["order_id"])
    assert [tuple(r.values()) for r in orders_stored] == [
        ("1001", "5", dt.datetime(2024, 1, 5, 10, 30), 3500, "completed"),
        ("1002", "5", dt.datetime(2024, 1, 3, 9, 0), 1200, "completed"),
        ("1003", hana, dt.datetime(2024, 2, 1, 12, 0), 1900, "completed"),
        ("1004", hana, dt.datetime(2024, 2, 10, 12, 0), 1500, "cancelled"),
        ("1005", "6", dt.datetime(2024, 3, 1, 12, 0), 1500, "returned"),
    ]
    items = ws.store.table("order_items").to_pyarrow().to_pylist()
    assert sorted((r["order_id"], r["product_id"], r["quantity"], r["unit_price"]) for r in items) == [
        ("1001", "W-001", 2, 1500), ("1002", "W-001", 1, 1200), ("1003", "C-010", 2, 1000),
        ("1004", "W-001", 1, 1500), ("1005", "W-001", 1, 1500)]
    again = ws.import_file(orders)
    assert (again.added, again.updated, again.unchanged, again.rejected) == (0, 0, 5, 0)
    assert ws.store.count("customers") == 3


@pytest.mark.postgres
def test_ec_cube_line_items_and_guests_on_postgres(postgres_database, tmp_path):
    with Workspace.init(tmp_path / "ws", store_url=postgres_database) as ws:
        check_ec4(ws, tmp_path)


@pytest.mark.spark
def test_ec_cube_line_items_and_guests_on_spark(spark_store, tmp_path):
    with Workspace.init(tmp_path / "ws", store_url="pyspark://local") as ws:
        check_ec4(ws, tmp_path)
