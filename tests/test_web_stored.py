"""What `kizuna analyze` and `predict` store for the web app, and the pages that read it: the overview's
figures (the same as computed from every order), the lists' rows (the same pages, in the same order, as
`member_page` over scores and predictions, from either end of a list), and tables kept in customer order
for a customer page (`cluster_by_customer`: the same rows, a customer's rows in few row groups), the
tables of one row per customer indexed by customer id (`index_by_customer`).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from test_web import build_web_demo

from kizuna.analytics import MEMBER_SORTS, MemberQuery, member_page, overview_from_rows, overview_rows
from kizuna.store import Store, cluster_by_customer, customer_records, customer_rows, index_by_customer
from kizuna.store._paging import customer_spread
from kizuna.web import _figures, _lists
from kizuna.workspace import Workspace


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_web_demo(tmp_path_factory.mktemp("stored") / "ws", customers=900).path


@pytest.mark.slow
def test_the_stored_overview_is_the_one_computed_from_every_order(demo: Path, tmp_path: Path) -> None:
    with Workspace.open(demo, read_only=True) as ws:
        stored = _figures.stored_dashboard(ws)
    assert stored is not None
    shutil.copytree(demo, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        ws.store.drop("_kizuna_overview")
        assert _figures.stored_dashboard(ws) is None
        computed = _figures.dashboard(ws)
    assert stored == computed
    assert overview_from_rows(overview_rows(computed)) == computed


def _reference(ws: Workspace, query: MemberQuery, page: int) -> tuple[str, int, list[dict]]:
    found = member_page(ws.scores(), ws.store.table("customers"), query, ws.predictions(), offset=(page - 1) * 50,
                        limit=50)
    total = int(found.total.to_pyarrow().as_py())
    rows = found.rows.to_pyarrow().to_pylist() if total > (page - 1) * 50 else []
    return found.key, total, rows


@pytest.mark.parametrize("segment", ["churn_candidate", "unanswered_low", "rank_other", "dormant", "R4F1"])
@pytest.mark.slow
def test_list_pages_from_the_stored_rows_are_member_page(demo: Path, segment: str) -> None:
    r, f = (int(segment[1]), int(segment[3])) if segment.startswith("R") and segment[1].isdigit() else (None, None)
    with Workspace.open(demo, read_only=True) as ws:
        for sort in MEMBER_SORTS:
            for descending in (True, False):
                query = MemberQuery(segment=None if r else segment, r=r, f=f, sort=sort, descending=descending,
                                    contacts=True)
                key, total, _rows = _lists.list_page(ws, query, 1, operator=True)
                last = max(1, math.ceil(total / 50))
                for page in sorted({1, 2, last // 2, last // 2 + 1, last - 1, last, last + 1} - {0}):
                    assert _lists.list_page(ws, query, page, operator=True) == _reference(ws, query, page), \
                        (sort, descending, page)


def test_a_page_of_the_columns_the_list_shows_is_the_whole_page_narrowed(demo: Path) -> None:
    shown = _lists.SHOWN_COLUMNS
    with Workspace.open(demo, read_only=True) as ws:
        some = _lists.list_page(ws, MemberQuery(segment="unanswered_low"), 1, operator=True)[2][0]["customer_id"]
        for query in (MemberQuery(segment="unanswered_low", sort="churn_risk"),  # the lists' rows
                      # a search: member_page over scores and customers
                      MemberQuery(segment="unanswered_low", sort="orders", descending=False, search=some[:-1]),
                      MemberQuery(segment="unanswered_low", sort="nps_score", descending=False)):
            for operator in (True, False):
                key, total, rows = _lists.list_page(ws, query, 1, operator=operator)
                assert rows and set(shown) < set(rows[0])
                assert _lists.list_page(ws, query, 1, operator=operator, columns=shown) == \
                    (key, total, [{c: r[c] for c in shown} for r in rows])


def test_a_search_still_reads_scores_and_customers(demo: Path) -> None:
    with Workspace.open(demo, read_only=True) as ws:
        query = MemberQuery(segment="unanswered_low", search="C00", contacts=True, sort="value_at_risk")
        assert _lists.list_page(ws, query, 1, operator=True) == _reference(ws, query, 1)


@pytest.mark.slow
def test_cluster_by_customer_keeps_the_rows_and_gathers_a_customers(tmp_path: Path) -> None:
    store = Store.connect(str(tmp_path / "s.duckdb"))
    ids = [f"C{i:07d}" for i in range(100_000)] * 7  # seven row groups, each holding every customer
    random.Random(1).shuffle(ids)
    rows = pa.table({"customer_id": ids, "n": list(range(len(ids)))})
    store.create("visits", rows)
    store.backend.con.execute("CHECKPOINT")
    assert customer_spread(store, "visits") > 4
    assert cluster_by_customer(store, ["visits", "no_such_table"]) == ["visits"]
    store.backend.con.execute("CHECKPOINT")
    assert customer_spread(store, "visits") <= 2
    assert sorted(store.table("visits").to_pyarrow().to_pylist(), key=lambda r: r["n"]) == rows.to_pylist()
    assert cluster_by_customer(store, ["visits"]) == []  # in customer order already: left as it is
    store.close()


def _plan(store: Store, table: str, customer_id: str) -> str:
    found = store.backend.con.execute(f"EXPLAIN ANALYZE SELECT * FROM {table} WHERE customer_id = ?", [customer_id])
    return found.fetchall()[0][1]


@pytest.mark.slow
def test_the_one_row_per_customer_tables_are_read_by_their_index(demo: Path, tmp_path: Path) -> None:
    shutil.copytree(demo, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        store = ws.store
        some = store.table("customers").customer_id.min().to_pyarrow().as_py()
        for table in ("customers", "nps_answers", "events", "support_contacts", "customer_scores",
                      "customer_predictions"):
            present = store.table(table).customer_id.max().to_pyarrow().as_py()
            assert "Index Scan" in _plan(store, table, present), table  # made by analyze and predict
        assert "Index Scan" not in _plan(store, "orders", some)  # a zone map narrows those enough
        assert index_by_customer(store, ["customers", "customer_scores"]) == []  # there already
        before = customer_rows(store, "customer_scores", some).to_pylist()
        ws.analyze()  # the scores are written again: the index with them
        assert "Index Scan" in _plan(store, "customer_scores", some)
        assert customer_rows(store, "customer_scores", some).to_pylist() == before
        # a forgotten customer's rows are renamed in every table (and the file rewritten): the index follows
        customers = store.table("customers").count().to_pyarrow().as_py()
        ws.forget(some)
        assert customer_rows(store, "customers", some).num_rows == 0
        assert store.table("customers").count().to_pyarrow().as_py() == customers
        other = store.table("customers").customer_id.max().to_pyarrow().as_py()
        assert "Index Scan" in _plan(store, "customers", other)
        assert customer_rows(store, "customers", other).num_rows == 1


def _same(value: object) -> object:  # NaN equal to NaN, for comparing rows
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def test_a_customers_records_are_their_rows_as_dicts(demo: Path) -> None:
    """`customer_records` (what a customer page reads: Python values straight from DuckDB) holds what
    `customer_rows` gives as an Arrow table: the same values, newest first, cut at the limit."""
    with Workspace.open(demo, read_only=True) as ws:
        store, tables = ws.store, ws.store.table_names()
        busiest = store.backend.con.execute(
            "SELECT customer_id FROM orders GROUP BY ALL ORDER BY count(*) DESC, customer_id LIMIT 1").fetchone()[0]
        everyone = store.table("customers").to_pyarrow()["customer_id"].to_pylist()
        customers = [busiest, *random.Random(5).sample(everyone, 5), "no such customer"]
        for name, newest in (("customers", None), ("customer_scores", None), ("customer_predictions", None),
                             ("orders", "ordered_at"), ("nps_answers", "answered_at"),
                             ("support_contacts", "opened_at"), ("events", "occurred_at"), ("calls", "called_at"),
                             ("not_a_table", None)):
            for customer in customers:
                for limit in (200, 2):
                    found = customer_records(store, name, customer, newest_by=newest, limit=limit, tables=tables)
                    expected = customer_rows(store, name, customer, newest_by=newest, limit=limit, tables=tables)
                    assert [{k: _same(v) for k, v in r.items()} for r in found] == \
                        [{k: _same(v) for k, v in r.items()} for r in expected.to_pylist()], (name, customer, limit)
        assert len(customer_records(store, "orders", busiest, newest_by="ordered_at", tables=tables)) > 2


def test_a_customers_records_without_a_date_come_last_in_the_order_read(tmp_path: Path) -> None:
    # rows whose sort column is NULL: newest first, then the undated ones as read, as `customer_rows`
    # orders them
    with Workspace.init(tmp_path / "ws") as ws:
        ws.store.create("notes", pa.table({
            "customer_id": ["C1"] * 4, "n": [1, 2, 3, 4],
            "noted_at": pa.array([None, dt.datetime(2026, 1, 2), None, dt.datetime(2026, 3, 4)], pa.timestamp("us"))}))
        found = customer_records(ws.store, "notes", "C1", newest_by="noted_at")
        expected = customer_rows(ws.store, "notes", "C1", newest_by="noted_at").to_pylist()
    assert [r["n"] for r in found] == [r["n"] for r in expected] == [4, 2, 1, 3]


def test_the_lists_rows_are_stored_in_matrix_cell_order(demo: Path) -> None:
    # a cell's page then reads a range of row groups (their zone maps on matrix_cell), not all of them; within
    # an R × F cell by LTV (the default order's first pages in few runs of rows)
    with Workspace.open(demo, read_only=True) as ws:
        con = ws.store.backend.con
        stored = con.execute("SELECT matrix_cell, r_score, f_score, ltv_revenue FROM _kizuna_list_members").fetchall()
        ordered = con.execute("SELECT matrix_cell, r_score, f_score, ltv_revenue FROM _kizuna_list_members "
                              "ORDER BY matrix_cell, r_score, f_score, ltv_revenue").fetchall()
    assert len(stored) > 800 and stored == ordered


def test_a_pages_connection_is_a_cursor_of_the_kept_one(demo: Path) -> None:
    from kizuna.web._store import Reader

    reader = Reader(demo)
    reader.gate.idle = 3600.0  # kept between the two requests however slow the machine
    with reader.workspace() as first:
        kept = reader.gate.kept()
        assert kept is not None  # opened with the first request, kept between requests
        customer = first.store.table("customers").to_pyarrow()["customer_id"][0].as_py()
    with reader.workspace() as ws, Workspace.open(demo, read_only=True) as alone:
        assert reader.gate.kept() is kept
        assert ws.store is first.store  # the cursor the first request gave back
        # the same rows as a connection of its own, the tables as listed once on the kept connection
        assert ws.store.table_names() == alone.store.table_names() == kept.table_names()
        assert ws.store.tables() == alone.store.tables()
        assert (customer_rows(ws.store, "orders", customer, newest_by="ordered_at")
                == customer_rows(alone.store, "orders", customer, newest_by="ordered_at"))
        assert ws.store.backend.con.execute("SELECT current_setting('timezone')").fetchone()[0] == "UTC"
        assert ws.settings == alone.settings
    # a page's connection is kept for the next page; the kept one stays open for the next
    assert kept.backend.con.execute("SELECT count(*) FROM customers").fetchone()[0] > 0
    reader.close()
    # and closed with the kept one, so that the file is let go of
    with pytest.raises(duckdb.Error):
        ws.store.backend.con.execute("SELECT 1")



@pytest.mark.slow
def test_a_page_is_the_rows_placed_between_its_first_and_last(demo: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import kizuna.store
    from kizuna.web._store import Reader

    placed, sorted_ = [], []
    for name, seen in (("placed_records", placed), ("sorted_page", sorted_)):
        function = getattr(kizuna.store, name)
        monkeypatch.setattr(kizuna.store, name, lambda *a, _f=function, _seen=seen, **k: _seen.append(1) or _f(*a, **k))
    # the lists' rows hold each one's place in every order and the contact data a page shows
    with Workspace.open(demo, read_only=True) as ws:
        columns = ws.store.table("_kizuna_list_members").columns
    assert {"name", "email", "phone"} <= set(columns)
    assert {kizuna.store.position_column(s, d) for s in MEMBER_SORTS for d in (True, False)} <= set(columns)
    reader = Reader(demo)
    try:
        with reader.workspace() as ws:
            for segment, sort, descending in [("unanswered_low", "value_at_risk", True),
                                              ("unanswered_low", "nps_score", False),
                                              ("churn_candidate", "last_order_at", False),
                                              ("unanswered_low", "customer_id", True)]:
                query = MemberQuery(segment=segment, sort=sort, descending=descending, contacts=True)
                key, total, _rows = _lists.list_page(ws, query, 1, operator=True, reader=reader)
                last = max(1, math.ceil(total / 50))
                for page in sorted({1, 2, last // 2, last - 1, last, last + 1} - {0}):
                    assert _lists.list_page(ws, query, page, operator=True, reader=reader) == \
                        _reference(ws, query, page), (segment, sort, descending, page)
    finally:
        reader.close()
    assert placed and not sorted_  # a range read, no sort
    # lists' rows an older kizuna stored (no places, no contact data): the page sorted, its contacts read
    shutil.copytree(demo, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        old = [c for c in ws.store.table("_kizuna_list_members").columns
               if not c.startswith("_at_") and c not in ("name", "email", "phone")]
        ws.store.backend.con.execute("CREATE OR REPLACE TABLE _kizuna_list_members AS SELECT "
                                     + ", ".join(f'"{c}"' for c in old) + " FROM _kizuna_list_members")
    with Workspace.open(tmp_path / "ws", read_only=True) as ws:
        query = MemberQuery(segment="unanswered_low", sort="ltv_revenue", contacts=True)
        assert _lists.list_page(ws, query, 2, operator=True) == _reference(ws, query, 2)
    assert sorted_


@pytest.mark.slow
def test_the_app_lets_go_of_the_file_when_a_writer_waits(demo: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import threading

    from kizuna.store import Store
    from kizuna.web._store import Reader

    shutil.copytree(demo, tmp_path / "ws")
    reader = Reader(tmp_path / "ws", release=0.6)
    url = str(tmp_path / "ws" / "kizuna.duckdb")
    stop = threading.Event()

    def load() -> None:  # requests without a break: the file is never idle
        while not stop.is_set():
            with reader.workspace() as ws:
                ws.store.count("customers")

    readers = [threading.Thread(target=load) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        assert not Store.writer_waiting(url)
        # a writer (another process: DuckDB) marks its wait, and the app lets go of the file
        script = ("import sys; from kizuna.store import Store; "
                  "s = Store.connect(sys.argv[1], create=False, lock_wait=30); print(s.count('customers')); s.close()")
        done = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) > 0
        assert not Store.writer_waiting(url)  # the mark goes with the wait
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        reader.close()


def test_places_are_the_sorted_orders_nulls_last_ties_by_customer() -> None:
    import numpy as np

    from kizuna.store._paging import _places

    pick = random.Random(3)
    for trial in range(300):
        values = [pick.choice([None, pick.randint(-3, 3), pick.random()]) for _ in range(pick.randint(0, 40))]
        missing = np.array([v is None for v in values], dtype=bool)
        numbers = np.array([0.0 if v is None else float(v) for v in values])
        if trial % 2 and all(v is None or float(v).is_integer() for v in values):
            numbers = numbers.astype(np.int16)
        ascending, descending = _places(numbers, missing)
        rows = range(len(values))  # in customer order
        up = sorted(rows, key=lambda i: (values[i] is None, values[i] or 0, i))
        down = sorted(rows, key=lambda i: (values[i] is None, -(values[i] or 0), i))
        assert list(ascending) == [up.index(i) for i in rows]
        assert list(descending) == [down.index(i) for i in rows]


def test_a_customers_import_refreshes_the_contacts_a_list_page_shows(demo: Path, tmp_path: Path) -> None:
    # the lists' rows keep each customer's phone for the page: a new phone must show without a new analysis
    shutil.copytree(demo, tmp_path / "ws")
    query = MemberQuery(segment="rank_other", sort="customer_id", descending=False, contacts=True)
    with Workspace.open(tmp_path / "ws") as ws:
        _key, _total, rows = _lists.list_page(ws, query, 1, operator=True)
        customer = rows[0]["customer_id"]
        summary = ws.import_file("customers", _one_phone(tmp_path, customer, "090-0000-1234"))
        assert summary.tables["customers"].updated == 1
        _key, _total, rows = _lists.list_page(ws, query, 1, operator=True)
    assert rows[0]["customer_id"] == customer and rows[0]["phone"] == "090-0000-1234"


def test_the_stored_places_are_the_ones_worked_out_whole_and_a_customers_import_keeps_them(
        demo: Path, tmp_path: Path) -> None:
    from kizuna.store import list_positions, position_column

    shutil.copytree(demo, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        columns = ["customer_id", *(position_column(s, d) for s in MEMBER_SORTS for d in (False, True))]
        stored = ws.store.table("_kizuna_list_members").select(*columns).order_by("customer_id").to_pyarrow()
        rows = ws.store.table("_kizuna_list_members").drop(*columns[1:], "name", "email", "phone")
        whole = list_positions(ws.store, rows, MEMBER_SORTS, name="whole").select(*columns)
        assert whole.order_by("customer_id").to_pyarrow() == stored
        ws.import_file("customers", _one_phone(tmp_path, stored["customer_id"][0].as_py(), "090-0000-5678"))
        after = ws.store.table("_kizuna_list_members").select(*columns).order_by("customer_id").to_pyarrow()
    assert after == stored  # a customers import keeps every place


def _one_phone(folder: Path, customer: str, phone: str) -> Path:
    changed = folder / "customers.csv"
    changed.write_text(f"customer_id,phone\n{customer},{phone}\n", encoding="utf-8")
    return changed
