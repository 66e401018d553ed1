"""The same analysis on DuckDB, PostgreSQL and Spark gives the same answers (issue #3).

One demo business is built on DuckDB, copied to a real PostgreSQL server and to a local
Spark session, and `analyze` + the KPI report run on each with the same code.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math

import pyarrow as pa
import pytest

from kizuna.demo import build_demo
from kizuna.store import Store, copy_store
from kizuna.workspace import Workspace

AS_OF = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def duckdb_demo(tmp_path_factory):
    result = build_demo(tmp_path_factory.mktemp("parity") / "ws", customers=1_500, seed=11, as_of=AS_OF)
    ws = result.workspace
    ws.analyze(AS_OF)
    yield ws
    ws.close()


def _same_figures(ws: Workspace, store: Store) -> Workspace:
    copy_store(ws.store, store)
    other = Workspace(ws.path, ws.settings, store)
    assert other.counts() == ws.counts()
    other.analyze(AS_OF)
    return other


def _normal(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _rows(table: pa.Table, key: str | list[str]) -> list[dict]:
    keys = [key] if isinstance(key, str) else key
    rows = [{k: _normal(v) for k, v in r.items()} for r in table.to_pylist()]
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))


def _assert_rows_equal(expected: list[dict], actual: list[dict], what: str) -> None:
    assert len(expected) == len(actual), what
    for want, got in zip(expected, actual, strict=True):
        assert set(want) == set(got), what
        for column, value in want.items():
            other = got[column]
            if isinstance(value, float) or isinstance(other, float):
                assert other == pytest.approx(value, rel=1e-9, abs=1e-9), f"{what}: {column} of {want}"
            else:
                assert other == value, f"{what}: {column} of {want}"


def _compare(reference: Workspace, other: Workspace) -> None:
    expected = _rows(reference.scores().to_pyarrow(), "customer_id")
    actual = _rows(other.scores().to_pyarrow(), "customer_id")
    _assert_rows_equal(expected, actual, f"customer_scores on {other.store.engine}")
    ref_report, report = reference.kpis(AS_OF), other.kpis(AS_OF)
    for name in ("headline", "nps", "f2"):
        _assert_rows_equal([getattr(ref_report, name)], [getattr(report, name)], f"{name} on {other.store.engine}")
    keys = {"by": "month", "ltv_distribution": "band", "concentration": "customer_share",
            "cohorts": ["cohort", "k"], "nps_by_channel": "channel", "subscription_churn": "month"}
    for name, key in keys.items():
        _assert_rows_equal(_rows(getattr(ref_report, name), key), _rows(getattr(report, name), key),
                           f"{name} on {other.store.engine}")
    for name, table in reference.segments().items():
        _assert_rows_equal(_rows(table, "segment"), _rows(other.segments()[name], "segment"), name)


def test_the_demo_has_every_segment_to_compare(duckdb_demo):
    cells = {r["segment"]: r["customers"] for r in duckdb_demo.segments()["matrix"].to_pylist()}
    assert all(cells[c] > 0 for c in ("churn_candidate", "loyal", "advocate", "unanswered_low")), cells
    lost = duckdb_demo.scores().lost_reason.value_counts().to_pyarrow().to_pylist()
    assert {r["lost_reason"] for r in lost} >= {"unresolved", "situation_changed", "drifted"}


@pytest.mark.postgres
def test_postgres_gives_the_same_scores_and_kpis(duckdb_demo, postgres_url):
    store = Store.connect(postgres_url)
    try:
        _compare(duckdb_demo, _same_figures(duckdb_demo, store))
    finally:
        store.close()


@pytest.mark.spark
def test_spark_gives_the_same_scores_and_kpis(duckdb_demo, spark_backend):
    _compare(duckdb_demo, _same_figures(duckdb_demo, Store.from_backend(spark_backend)))
