"""The store on real PostgreSQL and Spark: workspace creation, imports, and copy_store between engines."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from kizuna._errors import StoreError
from kizuna.store import TABLES, Store, copy_store
from kizuna.store._copy import same_dtype
from kizuna.workspace import Settings, Workspace

from factories import arrow_rows

LATE = dt.datetime(2024, 1, 5, 23, 30)  # late evening: UTC-vs-local mistakes move it to another day

CUSTOMERS_CSV = (
    "顧客ID,氏名,メールアドレス,メール配信\n"
    "C1,山田 太郎,taro@example.jp,はい\n"
    "C2,鈴木 花子,,いいえ\n"
    "C3,佐藤 一郎,ichiro@example.jp,\n"
)
ORDERS_CSV = (
    "受注番号,顧客ID,購入日,金額,ステータス\n"
    "O1,C1,2024/1/5 23:30,\"￥1,200\",完了\n"
    "O2,C2,2024-02-01 09:00:00,3000,完了\n"
    "O3,C3,2024年3月1日,500,返品\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rows(store: Store, name: str) -> list[dict[str, Any]]:
    """All rows of a table in key order, as Python values.

    Spark is read through its own Arrow export: Ibis reads it through pandas, which turns
    nullable int64 into float64 and so misreads integers past 2**53 (an Ibis limitation).
    """
    ordered = store.table(name).order_by(list(TABLES[name].key))
    if store.engine == "pyspark":
        table = store.backend._session.sql(store.backend.compile(ordered)).toArrow()
        return table.cast(TABLES[name].schema.to_pyarrow()).to_pylist()
    return ordered.to_pyarrow().to_pylist()


def assert_canonical_schema(store: Store, name: str) -> None:
    got, want = store.table(name).schema(), TABLES[name].schema
    assert got.names == want.names, name
    assert all(same_dtype(got[c], t) for c, t in want.items()), f"{name}: {got}"


# -- PostgreSQL: workspace and import ----------------------------------------------------


@pytest.mark.postgres
def test_workspace_init_on_postgres_creates_the_canonical_tables(postgres_database, tmp_path):
    with Workspace.init(tmp_path / "ws", store_url=postgres_database) as ws:
        assert ws.store.engine == "postgres"
        assert set(TABLES) <= set(ws.store.backend.list_tables())
        for name in TABLES:
            assert_canonical_schema(ws.store, name)
        assert ws.counts() == dict.fromkeys(TABLES, 0)
    # Opening again finds the tables (ensure_tables must not fail on existing ones).
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.store.engine == "postgres"


@pytest.mark.postgres
def test_import_on_postgres_japanese_headers_cancellation_and_reimport(postgres_database, tmp_path):
    with Workspace.init(tmp_path / "ws", store_url=postgres_database) as ws:
        customers = ws.import_file("customers", write(tmp_path / "customers.csv", CUSTOMERS_CSV))
        assert (customers.added, customers.rejected) == (3, 0)
        orders_csv = write(tmp_path / "orders.csv", ORDERS_CSV)
        first = ws.import_file("orders", orders_csv)
        assert (first.added, first.updated, first.unchanged, first.rejected) == (3, 0, 0, 0)

        stored = [(r["order_id"], r["customer_id"], r["ordered_at"], r["amount"], r["status"])
                  for r in rows(ws.store, "orders")]
        assert stored == [
            ("O1", "C1", LATE, 1200, "completed"),
            ("O2", "C2", dt.datetime(2024, 2, 1, 9), 3000, "completed"),
            ("O3", "C3", dt.datetime(2024, 3, 1), 500, "returned"),
        ]
        assert_canonical_schema(ws.store, "orders")
        orders = ws.store.table("orders")
        day = orders.filter(orders.order_id == "O1").ordered_at.date().to_pyarrow().to_pylist()
        assert day == [dt.date(2024, 1, 5)]
        customers = [(r["customer_id"], r["name"], r["email"], r["email_opt_in"])
                     for r in rows(ws.store, "customers")]
        assert customers == [
            ("C1", "山田 太郎", "taro@example.jp", True),
            ("C2", "鈴木 花子", None, False),
            ("C3", "佐藤 一郎", "ichiro@example.jp", None),
        ]

        # The same file again changes nothing.
        again = ws.import_file("orders", orders_csv)
        assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
        assert ws.store.count("orders") == 3

        # O1 cancelled later: replaced in place (in one transaction), not duplicated.
        cancelled = write(tmp_path / "cancelled.csv", "受注番号,顧客ID,購入日,金額,ステータス\n"
                          "O1,C1,2024/1/5 23:30,\"￥1,200\",キャンセル\n")
        update = ws.import_file("orders", cancelled)
        assert (update.added, update.updated, update.unchanged, update.rejected) == (0, 1, 0, 0)
        o1 = [r for r in rows(ws.store, "orders") if r["order_id"] == "O1"]
        assert [(r["status"], r["ordered_at"], r["amount"]) for r in o1] == [("cancelled", LATE, 1200)]
        assert ws.store.count("orders") == 3
        # No staging table is left behind.
        assert not [t for t in ws.store.backend.list_tables() if t.startswith("_kizuna")]


@pytest.mark.postgres
def test_import_on_postgres_rejects_orders_of_unknown_customers(postgres_database, tmp_path):
    with Workspace.init(tmp_path / "ws", store_url=postgres_database) as ws:
        ws.import_file("customers", write(tmp_path / "customers.csv", CUSTOMERS_CSV))
        text = ORDERS_CSV + "O4,C9,2024/4/1,100,完了\n"
        summary = ws.import_file("orders", write(tmp_path / "orders.csv", text))
        assert (summary.added, summary.rejected) == (3, 1)
        assert ws.store.count("orders") == 3


# -- copy_store ----------------------------------------------------------------------------


def sample_tables(n_orders: int = 2_500) -> dict[str, pa.Table]:
    """Every canonical table, with the values engines get wrong: nulls in every nullable
    column, empty strings, quotes, commas and newlines, Japanese, microseconds, times
    before 1970 and just before midnight, large integers and awkward floats."""
    odd_text = [None, "", '引用符"と,カンマ', "改行\nあり", "末尾\\", "  空白  "]
    customers = [
        {
            "customer_id": f"C{i:04d}", "name": None if i % 7 == 0 else f"顧客 {i}",
            "name_kana": f"コキャク {i}", "email": odd_text[i % len(odd_text)],
            "phone": f"090-0000-{i:04d}", "postal_code": "100-0001", "address": "東京都千代田区1-1",
            "signed_up_at": None if i % 11 == 0 else dt.datetime(1969, 12, 31, 23, 59, 59, 999_999)
            + dt.timedelta(days=i * 37, microseconds=i),
            "email_opt_in": (True, False, None)[i % 3], "line_opt_in": i % 2 == 0,
            "birthday": None if i % 5 == 0 else dt.date(1950, 1, 1) + dt.timedelta(days=i * 101),
        }
        for i in range(300)
    ]
    products = [
        {"product_id": "P1", "name": "化粧水", "category": "skin", "price": 3_300, "cycle_days": 30,
         "volume_l": 0.1},
        {"product_id": "P2", "name": "乳液", "category": None, "price": None, "cycle_days": None,
         "volume_l": 1 / 3},
        {"product_id": "P3", "name": "", "category": "", "price": 2**53 + 1, "cycle_days": 0,
         "volume_l": None},
    ]
    orders = [
        {
            "order_id": f"O{i:05d}", "customer_id": f"C{i % 300:04d}",
            "ordered_at": LATE if i == 0 else dt.datetime(2023, 1, 1) + dt.timedelta(minutes=i * 211),
            "amount": 2**40 + i if i == 1 else 1_000 + i,
            "status": ("completed", "cancelled", "returned", None)[i % 4],
            "refund_amount": i if i % 9 == 0 else None, "channel": odd_text[i % len(odd_text)],
            "shipped_at": None if i % 2 else dt.datetime(2023, 1, 2, 0, 0, 1) + dt.timedelta(minutes=i * 211),
        }
        for i in range(n_orders)
    ]
    items = [
        {"order_id": f"O{i:05d}", "product_id": p, "quantity": 1 + i % 3, "unit_price": 3_300}
        for i in range(n_orders) for p in (("P1", "P2") if i % 3 == 0 else ("P1",))
    ]
    nps = [
        {"customer_id": f"C{i:04d}", "answered_at": LATE + dt.timedelta(days=i), "score": i % 11,
         "comment": odd_text[i % len(odd_text)], "touchpoint": "mail"}
        for i in range(40)
    ]
    support = [
        {"contact_id": f"S{i}", "customer_id": f"C{i:04d}", "opened_at": LATE, "channel": "phone",
         "resolved_at": None if i % 2 else LATE + dt.timedelta(hours=1),
         "status": ("open", "resolved")[i % 2],
         "category": "返品", "is_complaint": (True, False, None)[i % 3]}
        for i in range(12)
    ]
    events = [
        {"customer_id": f"C{i:04d}", "occurred_at": LATE, "kind": "review",
         "detail": odd_text[i % len(odd_text)]}
        for i in range(12)
    ]
    calls = [
        {"customer_id": f"C{i:04d}", "called_at": LATE + dt.timedelta(minutes=i), "agent": odd_text[i % len(odd_text)],
         "script": ("A", None)[i % 2], "outcome": ("reached", "no_answer", "kept", "cancelled", "callback")[i % 5],
         "next_call_at": None if i % 3 else LATE + dt.timedelta(days=7), "note": odd_text[(i + 1) % len(odd_text)]}
        for i in range(10)
    ]
    data = {"customers": customers, "products": products, "orders": orders, "order_items": items,
            "nps_answers": nps, "support_contacts": support, "events": events, "calls": calls}
    return {name: arrow_rows(name, data[name]) for name in TABLES}


@pytest.fixture(scope="module")
def sample() -> dict[str, pa.Table]:
    return sample_tables()


@pytest.fixture
def duckdb_store(tmp_path, sample) -> Iterator[Store]:
    store = Store.connect(str(tmp_path / "source.duckdb"))
    for name, table in sample.items():
        store.append(name, table)
    yield store
    store.close()


def assert_same_contents(a: Store, b: Store) -> None:
    for name in TABLES:
        assert_canonical_schema(b, name)
        assert rows(b, name) == rows(a, name), name


def late_order_day(store: Store) -> list[tuple[dt.datetime, dt.date]]:
    orders = store.table("orders")
    late = orders.filter(orders.order_id == "O00000")
    return [(r["ordered_at"], r["day"]) for r in late.select("ordered_at", day=late.ordered_at.date())
            .to_pyarrow().to_pylist()]


@pytest.mark.postgres
def test_copy_duckdb_to_postgres_and_back_is_exact(duckdb_store, sample, postgres_database, tmp_path):
    target = Store.connect(postgres_database)
    target.append("orders", arrow_rows("orders", [{"order_id": "STALE", "customer_id": "X",
                                                    "ordered_at": LATE, "amount": 1}]))
    try:
        counts = copy_store(duckdb_store, target, batch_rows=1_000)  # several batches for orders
        assert counts == {name: table.num_rows for name, table in sample.items()}
        assert {name: target.count(name) for name in TABLES} == counts  # the stale row is gone
        assert_same_contents(duckdb_store, target)
        assert late_order_day(target) == [(LATE, dt.date(2024, 1, 5))]

        # Copying again replaces, never appends.
        assert copy_store(duckdb_store, target, ["orders"]) == {"orders": sample["orders"].num_rows}
        assert target.count("orders") == sample["orders"].num_rows

        # A table outside the canonical ones keeps the source's own schema.
        extra = pa.table({"customer_id": ["C1", "C2"], "as_of": [dt.date(2024, 1, 5), None],
                          "share": [0.25, None], "loyal": [True, None],
                          "orders": pa.array([3, None], pa.int32())})
        duckdb_store.create("extra_scores", extra)
        assert copy_store(duckdb_store, target, ["extra_scores"]) == {"extra_scores": 2}
        copied = target.table("extra_scores")
        assert copied.schema() == duckdb_store.table("extra_scores").schema()
        assert copied.order_by("customer_id").to_pyarrow().to_pylist() == extra.to_pylist()

        # PostgreSQL as the source (a server-side cursor) gives the same rows back.
        back = Store.connect(str(tmp_path / "back.duckdb"))
        assert copy_store(target, back) == counts
        assert_same_contents(duckdb_store, back)
        back.close()
    finally:
        target.close()


@pytest.mark.spark
def test_copy_duckdb_to_spark_keeps_values_timestamps_and_days(duckdb_store, sample, spark_store, tmp_path):
    counts = copy_store(duckdb_store, spark_store, batch_rows=1_000)
    assert counts == {name: table.num_rows for name, table in sample.items()}
    assert_same_contents(duckdb_store, spark_store)  # every row of every table (so the counts too)
    # 23:30 stays 23:30 and its day stays the 5th, though the driver JVM runs in Asia/Tokyo.
    assert late_order_day(spark_store) == [(LATE, dt.date(2024, 1, 5))]
    # The same when Python's own local time zone is Tokyo (pyspark converts through it).
    with local_timezone("Asia/Tokyo"):
        assert late_order_day(spark_store) == [(LATE, dt.date(2024, 1, 5))]

    # Copying again replaces; Spark as the source gives the same rows back.
    assert copy_store(duckdb_store, spark_store, ["orders"]) == {"orders": sample["orders"].num_rows}
    assert spark_store.count("orders") == sample["orders"].num_rows
    back = Store.connect(str(tmp_path / "back.duckdb"))
    assert copy_store(spark_store, back) == counts
    assert_same_contents(duckdb_store, back)
    back.close()


def test_copy_store_refuses_to_copy_a_store_onto_itself(duckdb_store):
    with pytest.raises(StoreError, match="two different stores"):
        copy_store(duckdb_store, duckdb_store)
    with pytest.raises(StoreError, match="two different stores"):
        copy_store(duckdb_store, type(duckdb_store)(duckdb_store.backend, "another name"))


@pytest.mark.spark
def test_copy_store_refuses_two_stores_on_one_spark_database(spark_store, spark_backend):
    import ibis

    other = Store.from_backend(ibis.pyspark.connect(spark_backend._session))
    with pytest.raises(StoreError, match="two different stores"):
        copy_store(spark_store, other)


@contextlib.contextmanager
def local_timezone(name: str) -> Iterator[None]:
    """Run with Python's local time zone set to `name` (TZ), then restore it."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.spark
def test_import_on_spark_keeps_nulls_and_nullable_amounts(spark_store, tmp_path):
    orders = "受注番号,顧客ID,購入日,金額,返金額\nO1,C1,2024/1/5 23:30,1200,300\nO2,C2,2024/2/1,3000,\n"
    with Workspace.init(tmp_path / "ws", store_url="pyspark://local") as ws:
        ws.import_file("customers", write(tmp_path / "customers.csv", CUSTOMERS_CSV))
        ws.import_file("orders", write(tmp_path / "orders.csv", orders))
        emails = [r["email"] for r in rows(ws.store, "customers")]
        assert emails == ["taro@example.jp", None, "ichiro@example.jp"]
        assert [(r["ordered_at"], r["refund_amount"]) for r in rows(ws.store, "orders")] == [
            (LATE, 300), (dt.datetime(2024, 2, 1), None)
        ]


@pytest.mark.spark
def test_local_spark_workspace_keeps_its_tables_between_commands(tmp_path):
    # Each `kizuna` command is a new process with a new Spark session: the workspace's
    # warehouse and metastore must carry the tables from one to the next.
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "kizuna.toml").write_text(Settings().replace(store={"url": "pyspark://local"}).to_toml(), encoding="utf-8")
    orders = ("受注番号,顧客ID,購入日,金額,返金額\n"
              "O1,C1,2024/1/5 23:30,1200,300\nO2,C2,2024/2/1,3000,\nO3,C1,2024/3/1,5000,\n")
    exports = tmp_path / "exports"  # one command imports both files: a Spark session costs seconds to start
    exports.mkdir()
    write(exports / "customers.csv", CUSTOMERS_CSV)
    write(exports / "orders.csv", orders)
    steps = [("import", str(exports)), ("kpi", "--as-of", "2024-06-30")]
    outputs = []
    for step in steps:
        done = subprocess.run([sys.executable, "-m", "kizuna", *step, "--dir", str(ws), "--format", "json"],
                              capture_output=True, text=True, cwd=tmp_path, check=False)
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    assert [(summary["kind"], summary["added"]) for summary in outputs[0]] == [("customers", 3), ("orders", 3)]
    headline = outputs[1]["headline"]
    assert (headline["customers"], headline["orders"], headline["revenue"]) == (3, 3, 900 + 3_000 + 5_000)
    assert (ws / "spark-warehouse").is_dir() and (ws / "spark-metastore").is_dir()
    assert not (tmp_path / "derby.log").exists()  # Derby's log stays in the workspace
