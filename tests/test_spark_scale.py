"""Spark keeps the customers in the executors (issue 24): `Store.create_mapped` maps Arrow batches
where the rows are, `predict` fits on a sample on the driver and scores every customer in the
executors, and the rows brought to the driver (`collected_rows`) stay bounded."""

from __future__ import annotations

import datetime as dt
import functools
import math
import zoneinfo

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kizuna.demo import build_demo
from kizuna.i18n import say
from kizuna.prediction import customer_features, predict_in_engine
from kizuna.store import Store, collected_rows, copy_store

AS_OF = dt.date(2026, 11, 1)
ZONE = zoneinfo.ZoneInfo("Asia/Tokyo")
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


@pytest.fixture
def duckdb_store(tmp_path):
    store = Store.connect(str(tmp_path / "k.duckdb"))
    yield store
    store.close()


def test_create_mapped_on_duckdb(duckdb_store):
    rows = _mapped(duckdb_store)
    assert len(rows) == 2_500
    assert rows[3] == {"customer_id": "c0003", "twice": 6, "day": dt.date(2026, 1, 4)}


@pytest.mark.spark
def test_create_mapped_in_the_executors_gives_what_the_driver_gives(spark_store, duckdb_store):
    expected = _mapped(duckdb_store)
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
    assert any("fitted on a sample" in say(note, "en") for note in result.notes)
    # what the executors computed is what the driver computes from the same models and rows
    for row in result.table.to_pylist():
        got = stored[row["customer_id"]]
        assert all(_close(value, got[column]) for column, value in row.items()), row["customer_id"]
    # no collect brought more than the sample's rows (and a few of the hash's spread) to the driver
    assert collected.largest <= 1.3 * sample < CUSTOMERS


GROUP_IDS = pa.table({"customer_id": [f"C{i:05d}" for i in range(3_000)] + ["顧客-1", "", "a/b"]})


def _engine_groups(store: Store) -> dict[str, str]:
    from kizuna.scenarios._enrolments import group_column

    store.create("ids", GROUP_IDS)
    ids = store.table("ids")
    grp = group_column(ids.customer_id, "thanks", secret="s3cret", holdout=0.1, global_control=0.05)
    return {r["customer_id"]: r["grp"] for r in ids.select("customer_id", grp=grp).to_pyarrow().to_pylist()}


def _python_groups() -> dict[str, str]:
    from kizuna.scenarios import group_of

    return {c: group_of(c, "thanks", secret="s3cret", holdout=0.1, global_control=0.05)
            for c in GROUP_IDS.column("customer_id").to_pylist()}


def test_control_groups_worked_out_by_duckdb_are_group_of(duckdb_store):
    groups = _engine_groups(duckdb_store)
    assert groups == _python_groups()
    assert {"treated", "holdout", "global_control"} == set(groups.values())


def test_control_groups_worked_out_by_postgres_are_group_of(postgres_database):
    store = Store.connect(postgres_database)
    try:
        assert _engine_groups(store) == _python_groups()
    finally:
        store.close()


@pytest.mark.spark
def test_control_groups_worked_out_by_spark_are_group_of(spark_store):
    assert _engine_groups(spark_store) == _python_groups()


THANKS = """\
title: {ja: お礼, en: Thank you}
trigger: {after_order: {days: 1, catch_up_days: 6}}
goal: {kind: order, days: 30}
steps:
  - channel: email
    subject: {ja: "{{ name }}様", en: "Dear {{ name }}"}
    body: {ja: "{{ orders_so_far }}回目のご注文", en: "Order number {{ orders_so_far }}"}
  - channel: email
    wait_days: 14
    subject: {ja: "その後いかがですか", en: "How is it going?"}
    body: {ja: "{{ name }}様", en: "Dear {{ name }}"}
"""
WELCOME_LOYAL = """\
title: {ja: ロイヤルの方へ, en: To the loyal}
trigger: {segment: loyal}
goal: {kind: order, days: 60}
steps:
  - channel: email
    subject: {ja: "{{ name }}様", en: "Dear {{ name }}"}
    body: {ja: "いつもありがとうございます", en: "Thank you"}
"""


def _twins(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """`table`'s rows again, the id columns prefixed: as many customers (or orders) once more."""
    for name in columns:
        at = table.column_names.index(name)
        table = table.set_column(at, name, pc.binary_join_element_wise("Z-", table.column(name).cast(pa.string()), ""))
    return table


@pytest.mark.spark
def test_a_dry_run_on_spark_collects_the_messages_due_not_the_customers(demo, spark_store, tmp_path, monkeypatch):
    """Twice the customers, none with a new message due (the new ones' segment memberships and orders are
    known to the ledger): the dry run brings as many rows to the driver as before and decides the same."""
    from kizuna.operations import Enrolment, Ledger
    from kizuna.scenarios._enrolments import local_to_unix
    from kizuna.scenarios._evaluate import occasions
    from kizuna.scenarios._model import load_scenario
    from kizuna.workspace import Workspace

    copy_store(demo.store, spark_store)
    home = Workspace.init(tmp_path / "ws")
    home.close()
    ws = Workspace(home.path, home.settings, spark_store)
    ws.analyze(AS_OF)
    (ws.path / "scenarios").mkdir(exist_ok=True)
    for old in (ws.path / "scenarios").glob("*.yaml"):
        old.unlink()
    (ws.path / "scenarios" / "thanks.yaml").write_text(THANKS)
    (ws.path / "scenarios" / "loyal.yaml").write_text(WELCOME_LOYAL)
    now = dt.datetime.combine(AS_OF, dt.time(10), ZONE)

    def dry_run():
        with collected_rows() as collected:
            report = ws.run(AS_OF, now=now, dry_run=True, transports={})
        return collected, {key: dict(t.counts) for key, t in report.tallies.items()}

    first, decided = dry_run()
    acted = sum(n for counts in decided.values() for status, n in counts.items()
                if status not in ("enrolled", "holdout"))
    assert acted > 20 and {key[0] for key in decided} == {"thanks", "loyal"}
    # what came back: the messages due, with what the rules and templates need about their customers (up to
    # three related products each), and a few counts
    assert first.largest <= 3 * acted
    # in slices of a third of the rows: what the executors worked out once for all of them, read a slice at a
    # time (no slice brings the whole run's rows), and the same decisions
    with monkeypatch.context() as patch:
        patch.setattr("kizuna.scenarios._run.SLICE_ROWS", acted // 3 + 1)
        sliced, decided_in_slices = dry_run()
    assert decided_in_slices == decided
    assert sliced.largest < first.largest

    # as many customers again: twins of everyone, with twins of their scores and orders
    for name, ids in (("customers", ("customer_id",)), ("customer_scores", ("customer_id",)),
                      ("orders", ("customer_id", "order_id"))):
        spark_store.append(name, _twins(spark_store.table(name).to_pyarrow(), ids))
    # ... whose occasions the ledger knows already: the loyal twins were members before, the thanks
    # for their orders enrolled (held out: nothing due)
    tables = ws.tables()
    thanks = load_scenario(ws.path / "scenarios" / "thanks.yaml")
    found = occasions(thanks, tables, AS_OF).to_pyarrow()
    found = found.filter(pc.starts_with(found.column("customer_id"), "Z-"))
    at = local_to_unix(found.column("occasion_at").cast(pa.timestamp("us")), ZONE).to_pylist()
    known = [Enrolment(key=f"thanks/{step}/{c}/{o}", ref=f"{n:016x}{step:016x}", scenario="thanks", step=step,
                       customer_id=c, occasion=o, occasion_ts=t, detail=None, channel="email", transactional=False,
                       due_ts=t, grp="holdout")
             for n, (c, o, t) in enumerate(zip(found.column("customer_id").to_pylist(),
                                               found.column("occasion").to_pylist(), at, strict=True))
             for step in (1, 2)]
    scores = spark_store.table("customer_scores")
    loyal = scores.filter(scores.customer_id.startswith("Z-") & (scores.matrix_cell == "loyal"))
    members = loyal.select("customer_id").to_pyarrow().column("customer_id").to_pylist()
    assert len(known) > 20 and len(members) > 20
    Ledger(ws.operations).enrol(known, [("loyal", members, [], AS_OF.isoformat())])

    second, decided_again = dry_run()
    assert decided_again == decided
    # the new customers' occasions met the ledger's keys in the engine: none of them came back
    assert second.total <= first.total + 30  # catalog look-ups may list a few more names
    assert second.largest == first.largest
