"""Compiled statements kept for the next run (`kizuna.store.kept_statements`): reused only for the very same
expression, never for one with another setting, day or column type."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import ibis
import pyarrow as pa
import pytest

from kizuna import analytics
from kizuna.store import Store, kept_statements, to_arrow
from kizuna.store import _statements as statements


@pytest.fixture(scope="module")
def store():  # read only by the tests
    store = Store.connect(":memory:")
    store.append("orders", pa.table({
        "order_id": ["o1", "o2", "o3"], "customer_id": ["c1", "c1", "c2"],
        "ordered_at": pa.array([dt.datetime(2025, 1, 5), dt.datetime(2025, 3, 1), dt.datetime(2025, 2, 2)],
                               pa.timestamp("us")),
        "amount": [1000, 2500, 400],
    }))
    yield store
    store.close()


def _revenue(orders: ibis.Table, day: dt.date) -> ibis.Table:
    kept = orders.filter(orders.ordered_at < ibis.literal(dt.datetime.combine(day, dt.time())))
    return kept.group_by("customer_id").aggregate(revenue=kept.amount.sum()).order_by("customer_id")


def test_a_statement_is_kept_for_the_same_expression_and_missed_for_another_day_or_column_type(store, tmp_path):
    orders = store.table("orders")
    same = statements.digest(_revenue(orders, dt.date(2025, 3, 1)))
    assert same is not None and same == statements.digest(_revenue(store.table("orders"), dt.date(2025, 3, 1)))
    assert statements.digest(_revenue(orders, dt.date(2025, 3, 2))) != same  # the as-of day, a setting
    retyped = ibis.table(orders.schema(), name="orders")
    assert statements.digest(retyped) != statements.digest(
        ibis.table({**orders.schema(), "amount": "int32"}, name="orders"))  # a column's type

    path = tmp_path / "statements.json"
    with kept_statements(path):
        first = to_arrow(_revenue(orders, dt.date(2025, 3, 1)))
    kept = json.loads(path.read_text(encoding="utf-8"))["statements"]
    assert len(kept) == 1 and path.stat().st_mode & 0o777 == 0o600
    # another process: nothing compiled in it yet; the kept SQL runs without compiling
    statements._KNOWN.clear()
    with kept_statements(path):
        again = to_arrow(_revenue(orders, dt.date(2025, 3, 1)))
    assert again.equals(first) and again["revenue"].to_pylist() == [1000, 400]
    statements._KNOWN.clear()
    (key,) = kept
    stale = "SELECT 'stale' AS customer_id, 0 AS revenue"
    path.write_text(json.dumps({"format": statements._FORMAT, "statements": {key: stale}}))
    with kept_statements(path):  # what the file holds is what runs for that key …
        assert to_arrow(_revenue(orders, dt.date(2025, 3, 1)))["customer_id"].to_pylist() == ["stale"]
    statements._KNOWN.clear()
    with kept_statements(path):  # … and never for another expression: another day is compiled
        assert to_arrow(_revenue(orders, dt.date(2025, 2, 1)))["revenue"].to_pylist() == [1000]
    assert list(json.loads(path.read_text(encoding="utf-8"))["statements"]) != [key]  # the block's statements only
    statements._KNOWN.clear()


def test_a_summary_with_another_setting_or_rows_in_memory_is_another_statement(store):
    settings = analytics.AnalysisSettings()
    day = analytics.AsOf(dt.date(2025, 3, 31))
    summary = statements.digest(analytics.order_summary(store.table("orders"), day, settings.rfm_window_days))
    assert summary == statements.digest(analytics.order_summary(store.table("orders"), day, settings.rfm_window_days))
    assert summary != statements.digest(analytics.order_summary(store.table("orders"), day,
                                                                settings.rfm_window_days + 1))
    # a few rows in memory go into the key by their content, not by their made-up names
    months = [ibis.memtable({"k": [1, 2, 3]}) for _ in range(2)]
    assert months[0].op().name != months[1].op().name
    assert statements.digest(months[0]) == statements.digest(months[1]) != statements.digest(
        ibis.memtable({"k": [1, 2, 4]}))


def test_a_failed_block_keeps_nothing(tmp_path: Path, store):
    path = tmp_path / "statements.json"
    with pytest.raises(ZeroDivisionError), kept_statements(path):
        to_arrow(store.table("orders").count())
        1 / 0  # noqa: B018
    assert not path.exists()
    statements._KNOWN.clear()
