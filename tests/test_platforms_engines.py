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


# -- relay e-mails matched by phone, then name + postal code; BASE's amount summed from its lines ----------------
# (issue #21): the matching and the summing run as queries against the store, so each engine runs them.

def check_relay_buyers_and_line_sums(ws: Workspace, tmp_path) -> None:
    from test_platform_exports import BASE_ORDERS, RAKUTEN_PAY, base_line, write
    from test_platform_exports import test_rakuten_pay_orders_lines_statuses_and_relay_buyers as rakuten_pay

    # 楽天ペイ: five orders from two buyers, a new relay address each; one buyer has no phone
    rakuten_pay(ws, tmp_path)
    assert len(RAKUTEN_PAY) == 110  # RakutenVO positions 0-109
    # the same buyers again, later: joined to the customers already stored, not new ones
    again = [dict(zip(RAKUTEN_PAY, row, strict=True)) for row in _rows_of(tmp_path / "rakuten_pay.csv")]
    for row, number in zip(again, ("0000011", "0000011", "0000012", "0000013", "0000014", "0000015"), strict=True):
        row["注文番号"] = row["注文番号"][:-7] + number
        row["注文者メールアドレス"] = "new-" + row["注文者メールアドレス"]
    summary = ws.import_file(write(tmp_path / "rakuten_pay_2.csv", RAKUTEN_PAY, again))
    assert (summary.added, summary.rejected) == (5, 0)
    assert ws.store.count("customers") == 2
    by_customer: dict[str, int] = {}
    for row in ws.store.table("orders").select("customer_id", "amount").to_pyarrow().to_pylist():
        by_customer[row["customer_id"]] = by_customer.get(row["customer_id"], 0) + row["amount"]
    assert sorted(by_customer.values()) == [2 * (3000 + 3000), 2 * (4000 + 1500 + 1500)]

    # BASE: the order's amount = Σ 合計金額 of its lines + 送料 + 代引き手数料 + 調整金額
    water, coffee = ("11111", "天然水 12L"), ("22222", "コーヒー豆")
    path = write(tmp_path / "base_orders.csv", BASE_ORDERS, [
        base_line("B1", "2024-01-05 10:30:00", "taro", water, 1500, 2, 500, 0, "発送済み"),
        base_line("B1", "2024-01-05 10:30:00", "taro", coffee, 800, 1, 500, 0, "発送済み"),
        base_line("B2", "2024-01-09 08:00:00", "taro", coffee, 800, 3, 500, 330, "未発送", -100),
    ])
    assert ws.import_file(path).rejected == 0
    amounts = {r["order_id"]: r["amount"] for r in
               ws.store.table("orders").select("order_id", "amount").to_pyarrow().to_pylist()}
    assert (amounts["B1"], amounts["B2"]) == (3000 + 800 + 500, 2400 + 500 + 330 - 100)


def _rows_of(path) -> list[list[str]]:
    import csv

    with path.open(encoding="cp932", newline="") as f:
        return list(csv.reader(f))[1:]


@pytest.mark.postgres
def test_relay_buyers_and_line_sums_on_postgres(postgres_database, tmp_path):
    with Workspace.init(tmp_path / "ws", store_url=postgres_database) as ws:
        check_relay_buyers_and_line_sums(ws, tmp_path)


@pytest.mark.spark
def test_relay_buyers_and_line_sums_on_spark(spark_store, tmp_path):
    with Workspace.init(tmp_path / "ws", store_url="pyspark://local") as ws:
        check_relay_buyers_and_line_sums(ws, tmp_path)


@pytest.mark.slow
def test_relay_buyers_and_line_sums_on_duckdb(tmp_path):
    with Workspace.init(tmp_path / "ws") as ws:
        check_relay_buyers_and_line_sums(ws, tmp_path)
