"""Spark keeps the customers in the executors (issue 24): `Store.create_mapped` maps Arrow batches
where the rows are, `predict` fits on a sample on the driver and scores every customer in the
executors, and the rows brought to the driver (`collected_rows`) stay bounded."""

from __future__ import annotations

import datetime as dt
import functools
import math

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kizuna.demo import build_demo
from kizuna.prediction import customer_features, predict_in_engine
from kizuna.store import Store, collected_rows, copy_store

AS_OF = dt.date(2026, 11, 1)
CUSTOMERS = 1_500


def _doubling():
    # defined in a function so that it is pickled whole: the executors cannot import this test module
    def double(batch: pa.RecordBatch) -> pa.Table:
        table = pa.Table.from_batches([batch])
        return pa.table({"customer_id": table["customer_id"], "twice": pc.multiply(table["amount"], 2),
                         "day": pc.cast(table["at"], pa.date32())})
    return double


def _rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["customer_id"])


ROWS = pa.table({"customer_id": [f"c{i:04d}" for i in range(2_500)], "amount": list(range(2_500)),
                 "at": pa.array([dt.datetime(2026, 1, 1, 23, 30) + dt.timedelta(days=i % 40) for i in range(2_500)],
                                pa.timestamp("us"))})
SCHEMA = ibis.schema({"customer_id": "string", "twice": "int64", "day": "date"})


def _mapped(store: Store) -> list[dict]:
    store.create("source", ROWS)
    out = store.create_mapped("mapped", store.table("source"), _doubling(), SCHEMA, batch_rows=700)
    return _rows(out.to_pyarrow())


def test_create_mapped_on_duckdb(tmp_path):
    store = Store.connect(str(tmp_path / "k.duckdb"))
    try:
        rows = _mapped(store)
    finally:
        store.close()
    assert len(rows) == 2_500
    assert rows[3] == {"customer_id": "c0003", "twice": 6, "day": dt.date(2026, 1, 4)}


@pytest.mark.spark
def test_create_mapped_in_the_executors_gives_what_the_driver_gives(spark_store, tmp_path):
    reference = Store.connect(str(tmp_path / "k.duckdb"))
    try:
        expected = _mapped(reference)
    finally:
        reference.close()
    with collected_rows() as collected:
        spark_store.create("source", ROWS)
        spark_store.create_mapped("mapped", spark_store.table("source"), _doubling(), SCHEMA, batch_rows=700)
    # the wall-clock time of a timestamp reaches the function as it was written (23:30 stays on its day)
    assert collected.largest < 100  # catalog look-ups only: the 2,500 rows stayed in the executors
    assert _rows(spark_store.table("mapped").to_pyarrow()) == expected


@pytest.mark.spark
def test_collected_rows_counts_what_comes_to_the_driver(spark_store):
    spark_store.create("source", ROWS)
    with collected_rows() as collected:
        spark_store.table("source").to_pyarrow()
        spark_store.table("source").count().to_pyarrow()
    assert 2_500 in collected.collects
    assert collected.total >= 2_501


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    result = build_demo(tmp_path_factory.mktemp("scale") / "ws", customers=CUSTOMERS, seed=11, as_of=AS_OF)
    yield result.workspace
    result.workspace.close()


def _close(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return a is None and b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, float):
        return b == pytest.approx(a, rel=1e-9, abs=1e-9)
    return a == b


@pytest.mark.spark
def test_predict_fits_on_a_sample_and_scores_every_customer_in_the_executors(demo, spark_store):
    copy_store(demo.store, spark_store)
    tables = {name: spark_store.table(name) for name in ("customers", "orders", "nps_answers", "support_contacts",
                                                           "events", "products", "order_items", "calls")
              if spark_store.has_table(name)}
    sample = 500
    with collected_rows() as collected:
        result = predict_in_engine(tables, AS_OF, create=functools.partial(spark_store.create_mapped, "predicted"),
                                   sample_customers=sample, horizon_days=90)
    stored = {r["customer_id"]: r for r in spark_store.table("predicted").to_pyarrow().to_pylist()}
    ordered = int(customer_features(demo.tables(), AS_OF).count().to_pyarrow().as_py())
    assert len(stored) == ordered > 2 * result.table.num_rows  # everyone scored; the models saw a sample
    assert any("sample" in note for note in result.notes)
    # what the executors computed is what the driver computes from the same models and rows
    for row in result.table.to_pylist():
        got = stored[row["customer_id"]]
        assert all(_close(value, got[column]) for column, value in row.items()), row["customer_id"]
    # no collect brought more than the sample's rows (and a few of the hash's spread) to the driver
    assert collected.largest <= 1.3 * sample < CUSTOMERS
