"""Creating derived tables: categories (DuckDB ENUMs), replacing atomically, and the
two-step create that `kizuna analyze` uses (an intermediate table, then the result)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import duckdb
import ibis
import pytest

from kizuna.store import Store

CELLS = ("advocate", "loyal", "indifferent")


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    store = Store.connect(str(tmp_path / "kizuna.duckdb"))
    yield store
    store.close()


def cells(*values: str | None) -> ibis.Table:
    return ibis.memtable({"id": list(range(1, len(values) + 1)), "cell": list(values)})


def column_type(store: Store, table: str, column: str) -> str:
    return store.backend.con.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_name = ? AND column_name = ?", [table, column]
    ).fetchone()[0]


def test_category_columns_are_enums_on_duckdb_and_read_back_as_the_same_text(store):
    table = store.create("cells", cells("loyal", None, "advocate"), categories={"cell": CELLS})

    assert column_type(store, "cells", "cell") == "ENUM('advocate', 'loyal', 'indifferent')"
    assert table.schema()["cell"] == ibis.dtype("string")
    got = table.order_by("id").to_pyarrow()
    assert got.schema.field("cell").type == "string"
    assert got.column("cell").to_pylist() == ["loyal", None, "advocate"]
    # comparing with a label that is a category but unused, or not one at all, is no error
    assert table.filter(table.cell == "indifferent").count().to_pyarrow().as_py() == 0
    assert table.filter(table.cell == "未知").count().to_pyarrow().as_py() == 0
    assert table.filter(table.cell.isin(["loyal", "未知"])).count().to_pyarrow().as_py() == 1
    assert store.count("cells") == 3


def test_a_value_outside_the_categories_fails_and_keeps_the_previous_table(store):
    store.create("cells", cells("loyal", "advocate"), categories={"cell": CELLS})

    with pytest.raises(duckdb.ConversionException, match="churn"):
        store.create("cells", cells("loyal", "churn"), categories={"cell": CELLS})

    assert store.count("cells") == 2
    assert store.table("cells").order_by("id").cell.to_pyarrow().to_pylist() == ["loyal", "advocate"]


def test_create_without_overwrite_refuses_an_existing_table(store):
    store.create("cells", cells("loyal"))
    with pytest.raises(duckdb.CatalogException):
        store.create("cells", cells("advocate", "loyal"), overwrite=False)
    assert store.count("cells") == 1


def test_create_from_intermediate_builds_on_the_stored_step_and_drops_it(store):
    orders = ibis.memtable({"customer_id": ["C1", "C1", "C2"], "amount": [100, 250, 40]})
    step = orders.group_by("customer_id").aggregate(revenue=orders.amount.sum(), orders=orders.count())
    seen = []

    def build(summary: ibis.Table) -> ibis.Table:
        seen.append(summary.get_name())
        return summary.mutate(
            cell=ibis.cases((summary.revenue >= 300, "loyal"), else_="advocate"),
            share=summary.revenue / summary.revenue.sum(),
        )

    result = store.create_from_intermediate("result", ("_step", step), build, categories={"cell": CELLS})

    assert seen == ["_step"]
    assert "_step" not in store.backend.list_tables()
    assert column_type(store, "result", "cell").startswith("ENUM(")
    rows = sorted(result.to_pyarrow().to_pylist(), key=lambda r: r["customer_id"])
    assert rows == [
        {"customer_id": "C1", "revenue": 350, "orders": 2, "cell": "loyal", "share": pytest.approx(350 / 390)},
        {"customer_id": "C2", "revenue": 40, "orders": 1, "cell": "advocate", "share": pytest.approx(40 / 390)},
    ]


def test_create_from_intermediate_that_fails_drops_the_step_and_keeps_the_previous_result(store):
    store.create("result", cells("loyal"))
    step = cells("loyal", "advocate")

    with pytest.raises(duckdb.ConversionException):
        store.create_from_intermediate("result", ("_step", step), lambda s: s, categories={"cell": ("loyal",)})

    assert "_step" not in store.backend.list_tables()
    assert store.table("result").cell.to_pyarrow().to_pylist() == ["loyal"]


@pytest.mark.postgres
def test_create_from_intermediate_on_postgres_stores_text(postgres_database):
    store = Store.connect(postgres_database)
    try:
        step = cells("loyal", None)
        result = store.create_from_intermediate("result", ("_step", step), lambda s: s.mutate(twice=s.id * 2),
                                                categories={"cell": CELLS})
        assert "_step" not in store.backend.list_tables()
        assert result.schema()["cell"] == ibis.dtype("string")
        rows = sorted(result.to_pyarrow().to_pylist(), key=lambda r: r["id"])
        assert rows == [{"id": 1, "cell": "loyal", "twice": 2}, {"id": 2, "cell": None, "twice": 4}]
    finally:
        store.close()


def test_duckdb_draws_no_progress_bar(store):
    # DuckDB draws a bar on stdout for any query over 2 s, into the middle of a command's JSON
    # output (and setting `progress_bar_time` would switch it back on, so the setting is checked)
    enabled = store.backend.con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    assert enabled is False


def test_opening_a_store_makes_no_second_duckdb_database(tmp_path, monkeypatch):
    # a new DuckDB database sets DuckDB's allocator for the whole process anew, its background threads off, so
    # what the store's queries freed stayed with the process: `kizuna predict` at 1M peaked 500 MiB higher
    # when the default memory limit was read from a fresh in-memory database
    opened: list[str] = []
    connect = duckdb.connect

    def counted(database: str = ":memory:", *args: object, **kwargs: object) -> duckdb.DuckDBPyConnection:
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counted)
    store = Store.connect(str(tmp_path / "kizuna.duckdb"))
    try:
        assert opened == [str(tmp_path / "kizuna.duckdb")]
    finally:
        store.close()


def test_work_beside_a_transaction_runs_meanwhile_and_reads_what_was_committed(store):
    # `analyze` works out the overview's figures from the orders this way while it writes the lists' rows
    store.create("cells", cells("loyal", "advocate"))
    written = threading.Event()

    def work(side: Store) -> tuple[int, bool, bool]:
        # waits for the block's writes: run in line, when its result is asked for, it would see them
        assert written.wait(timeout=30), "the block did not go on while the work waited"
        no_bar = side.backend.con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False
        return side.count("cells"), side.has_table("fresh"), no_bar

    with store.beside(work) as result, store.transaction():
        store.create("fresh", cells("loyal"))
        store.append("cells", cells("indifferent").mutate(id=3).to_pyarrow())
        written.set()
        assert result() == (2, False, True)  # the block's writes are not yet committed, and its bar is off too
    assert store.count("cells") == 3 and store.has_table("fresh")


def test_an_error_beside_comes_out_where_the_result_is_asked_for(store):
    def work(side: Store) -> int:
        return side.count("no_such_table")

    with pytest.raises(duckdb.CatalogException, match="no_such_table"), store.beside(work) as result:
        result()


def test_a_block_that_fails_stops_the_work_beside_and_its_own_error_comes_out(store):
    started = threading.Event()

    def work(side: Store) -> int:
        started.set()
        time.sleep(0.2)  # the block fails meanwhile: an interrupt before a query, which DuckDB forgets
        # a query of minutes unless interrupted (of minutes, not hours: should that fail)
        return side.backend.con.execute("SELECT sum(hash(range)) FROM range(20_000_000_000)").fetchone()[0]

    begun = time.monotonic()
    with pytest.raises(RuntimeError, match="the block's"), store.beside(work), store.transaction():
        store.create("fresh", cells("loyal"))
        assert started.wait(timeout=30)
        raise RuntimeError("the block's error")
    assert time.monotonic() - begun < 30
    assert not store.has_table("fresh")


def test_create_from_intermediate_whose_build_fails_stops_and_cleans_up(store):
    store.create("result", cells("loyal"))
    big = ibis.memtable({"n": list(range(200_000))})
    step = big.group_by(k=big.n % 1000).aggregate(total=big.n.sum())

    def build(summary: ibis.Table) -> ibis.Table:
        raise ValueError("no such measure")

    with pytest.raises(ValueError, match="no such measure"):
        store.create_from_intermediate("result", ("_step", step), build)

    assert "_step" not in store.backend.list_tables()
    assert store.table("result").cell.to_pyarrow().to_pylist() == ["loyal"]
    assert store.count("result") == 1  # the connection still works after the interrupted query


def test_a_new_duckdb_store_is_its_users_alone_whatever_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        store = Store.connect(str(tmp_path / "new" / "kizuna.duckdb"))
    finally:
        os.umask(old)
    try:
        assert type(store).__name__ == "DuckDBStore"
        assert stat.S_IMODE((tmp_path / "new" / "kizuna.duckdb").stat().st_mode) == 0o600
    finally:
        store.close()


def test_batches_appended_in_whole_row_groups_keep_their_order_and_copy_without_partial_groups(store):
    # an import stages its file's batches (any size) and copies them into the canonical table: DuckDB starts a
    # row group at each append, and partial ones copied along are merged by the next checkpoint (a rewrite)
    import pyarrow as pa

    from kizuna.store._duckdb import ROW_GROUP

    sizes = [50_001, 70_000, 3, 120_000, 66_666]  # 306,670 rows: two whole row groups and the rest
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    batches = [pa.table({"n": pa.array(range(start, start + size), pa.int64())})
               for start, size in zip(starts, sizes, strict=True)]
    store.create("staged", schema=ibis.schema({"n": "int64"}))
    store.append_batches("staged", iter(batches))
    store.create("copied", store.table("staged"))

    con = store.backend.con
    for table in ("staged", "copied"):
        groups = [count for (count,) in con.execute(
            "SELECT max(count) FROM pragma_storage_info(?) GROUP BY row_group_id ORDER BY row_group_id", [table]
        ).fetchall()]
        assert groups == [ROW_GROUP, ROW_GROUP, sum(sizes) - 2 * ROW_GROUP], table
        assert con.execute(f"SELECT list(n ORDER BY rowid) = range({sum(sizes)}) FROM {table}").fetchone()[0]


@pytest.mark.parametrize("given", ["shuffled", "sorted"])
def test_create_in_order_stores_the_rows_by_their_key_whether_given_sorted_or_not(store, given):
    # predictions are written in customer order (a customer's row is a range read): rows given out of order are
    # put in order a row group at a time; rows given in order are written as they are, in one statement
    import numpy as np
    import pyarrow as pa

    from kizuna.store._duckdb import ROW_GROUP

    n = 2 * ROW_GROUP + 1_234  # more than one row group: the order holds across them
    ids = np.array([f"C{i:07d}" for i in range(n)])
    rows = np.random.default_rng(7).permutation(n) if given == "shuffled" else np.arange(n)
    table = pa.table({"customer_id": ids[rows], "value": pa.array(rows * 3, pa.int64()),
                      "note": pa.array([None if i % 5 == 0 else f"n{i}" for i in rows], pa.string())})
    store.create_in_order("ordered", table, by=["customer_id"])

    stored = store.backend.con.execute("SELECT customer_id, value, note FROM ordered ORDER BY rowid").fetchall()
    assert [row[0] for row in stored] == list(ids)  # in key order, as stored
    assert [row[1] for row in stored] == [3 * i for i in range(n)]  # each key with its own row's values
    assert [row[2] for row in stored] == [None if i % 5 == 0 else f"n{i}" for i in range(n)]
