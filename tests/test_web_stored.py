"""What `kizuna analyze` and `predict` store for the web app, and the pages that read it: the overview's
figures (the same as computed from every order), the lists' rows (the same pages, in the same order, as
`member_page` over scores and predictions, from either end of a list), and tables kept in customer order
for a customer page (`cluster_by_customer`: the same rows, a customer's rows in few row groups), the
tables of one row per customer indexed by customer id (`index_by_customer`).
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from test_web import build_web_demo

from kizuna.analytics import MEMBER_SORTS, MemberQuery, member_page, overview_from_rows, overview_rows
from kizuna.store import Store, cluster_by_customer, customer_rows, index_by_customer
from kizuna.store._paging import customer_spread
from kizuna.web import _figures, _lists
from kizuna.workspace import Workspace


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_web_demo(tmp_path_factory.mktemp("stored") / "ws", customers=900).path


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


def test_a_search_still_reads_scores_and_customers(demo: Path) -> None:
    with Workspace.open(demo, read_only=True) as ws:
        query = MemberQuery(segment="unanswered_low", search="C00", contacts=True, sort="value_at_risk")
        assert _lists.list_page(ws, query, 1, operator=True) == _reference(ws, query, 1)


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


def test_the_one_row_per_customer_tables_are_read_by_their_index(demo: Path, tmp_path: Path) -> None:
    shutil.copytree(demo, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        store = ws.store
        some = store.table("customers").customer_id.min().to_pyarrow().as_py()
        for table in ("customers", "nps_answers", "customer_scores", "customer_predictions"):
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


def test_the_lists_rows_are_stored_in_matrix_cell_order(demo: Path) -> None:
    # a cell's page then reads a range of row groups (their zone maps on matrix_cell), not all of them
    with Workspace.open(demo, read_only=True) as ws:
        con = ws.store.backend.con
        stored = con.execute("SELECT matrix_cell, r_score, f_score FROM _kizuna_list_members").fetchall()
        ordered = con.execute("SELECT matrix_cell, r_score, f_score FROM _kizuna_list_members "
                              "ORDER BY matrix_cell, r_score, f_score").fetchall()
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
        # the same rows as a connection of its own, the tables as listed once on the kept connection
        assert ws.store.table_names() == alone.store.table_names() == kept.table_names()
        assert ws.store.tables() == alone.store.tables()
        assert (customer_rows(ws.store, "orders", customer, newest_by="ordered_at")
                == customer_rows(alone.store, "orders", customer, newest_by="ordered_at"))
        assert ws.store.backend.con.execute("SELECT current_setting('timezone')").fetchone()[0] == "UTC"
        assert ws.settings == alone.settings
    # a page's connection closes with the page; the kept one stays open for the next
    assert kept.backend.con.execute("SELECT count(*) FROM customers").fetchone()[0] > 0
    reader.close()



def test_deep_pages_of_a_long_list_read_from_where_they_start(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import kizuna.store
    from kizuna.web._store import Reader

    monkeypatch.setattr(_lists, "LONG_LIST_ROWS", 1)  # every list is long, every page far from the ends
    monkeypatch.setattr(_lists, "NEAR_END_ROWS", 0)
    started = []
    page_at = kizuna.store.page_at
    monkeypatch.setattr(kizuna.store, "page_at", lambda *a, **k: started.append(1) or page_at(*a, **k))
    reader = Reader(demo)
    try:
        with reader.workspace() as ws:
            for segment, sort, descending in [("unanswered_low", "value_at_risk", True),
                                              ("unanswered_low", "nps_score", False),
                                              ("churn_candidate", "last_order_at", False),
                                              ("unanswered_low", "customer_id", True)]:
                query = MemberQuery(segment=segment, sort=sort, descending=descending, contacts=True)
                key, total, _rows = _lists.list_page(ws, query, 1, operator=True)
                order = [(sort, descending)] + ([] if sort == "customer_id" else [("customer_id", False)])
                # the first request starts sorting the whole list in the background; the pages after it start
                # from where they begin in that order: the same rows as member_page's
                deadline = time.monotonic() + 120
                while _lists._page_starts(reader, query, key, order) is None:
                    assert time.monotonic() < deadline, "the page starts were never computed"
                    time.sleep(0.05)
                last = max(1, math.ceil(total / 50))
                for page in sorted(p for p in {2, last // 2, last - 1, last} if 1 < p <= last):
                    started.clear()
                    assert _lists.list_page(ws, query, page, operator=True, reader=reader) == \
                        _reference(ws, query, page), (segment, sort, descending, page)
                    assert started, (segment, sort, page)
    finally:
        reader.close()
