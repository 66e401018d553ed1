"""Issue #10 end to end on real DuckDB workspaces: hand-computed features and labels on tiny stores,
then predict, backtest and the call list on the demo business, through the API and the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path

import openpyxl
import pyarrow.compute as pc
import pytest

from kizuna.demo import build_demo
from kizuna.prediction import (
    ACTIONS,
    CALL_EFFECT_COLUMNS,
    PREDICTION_COLUMNS,
    PredictionError,
    call_holdout,
    churn_labels,
    customer_features,
    suggested_action,
)
from kizuna.workspace import Workspace

from factories import day, orders_for, workspace_with

KIZUNA = [sys.executable, "-m", "kizuna"]
AS_OF = dt.date(2026, 11, 1)


def kizuna(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *args], capture_output=True, text=True, cwd=cwd, check=False)


# -- features and labels, by hand --------------------------------------------------------------------

def test_features_count_purchase_days_and_read_support_nps_and_events_as_of_the_date(tmp_path):
    # K1: orders on 2026-01-01 (two that day), 2026-03-01 and 2026-05-01; an order after the as-of
    # date and a cancelled one do not count.
    orders = orders_for("K1", ["2026-01-01", "2026-01-01", "2026-03-01", "2026-05-01"], [1000, 500, 2000, 4000])
    orders += [{"order_id": "late", "customer_id": "K1", "ordered_at": day("2026-07-01"), "amount": 9},
               {"order_id": "void", "customer_id": "K1", "ordered_at": day("2026-04-01"), "amount": 9,
                "status": "cancelled"}]
    support = [
        {"contact_id": "S1", "customer_id": "K1", "opened_at": day("2026-04-10"), "channel": "phone",
         "is_complaint": True},  # never resolved
        {"contact_id": "S2", "customer_id": "K1", "opened_at": day("2026-02-01", 10), "channel": "chat",
         "resolved_at": day("2026-02-01", 16), "status": "resolved"},
    ]
    nps = [{"customer_id": "K1", "answered_at": day("2026-02-01"), "score": 9},
           {"customer_id": "K1", "answered_at": day("2026-05-10"), "score": 3}]
    events = [{"customer_id": "K1", "occurred_at": day("2025-12-20"), "kind": "subscription_start"},
              {"customer_id": "K1", "occurred_at": day("2026-05-20"), "kind": "moved"}]
    with workspace_with(tmp_path / "ws", orders=orders, support_contacts=support, nps_answers=nps,
                        events=events) as ws:
        (row,) = customer_features(ws.tables(), dt.date(2026, 6, 1)).to_pyarrow().to_pylist()
    assert (row["frequency"], row["recency"], row["T"]) == (2, 120, 151)  # days 01-01, 03-01, 05-01
    assert row["monetary_value"] == (2000 + 4000) / 2  # the repeat days, not the first
    assert (row["orders"], row["revenue"], row["days_since_last_order"]) == (4, 7500, 31)
    assert row["mean_interval_days"] == 60.0 and math.isclose(row["overdue_ratio"], 31 / 60)
    assert row["tenure_days"] == 151  # no sign-up date: from the first order
    assert (row["nps_score"], row["nps_change"]) == (3, -6)
    assert (row["contacts_365d"], row["open_contacts"], row["complaints_365d"]) == (2, 1, 1)
    assert row["resolution_hours"] == 6.0 and row["days_since_contact"] == 52
    assert row["open_complaint_since"] == dt.date(2026, 4, 10)
    assert (row["is_subscriber"], row["subscription_days"]) == (1, 163)
    assert (row["life_event"], row["days_since_life_event"]) == ("moved", 12)


def test_features_count_the_last_year_from_midnight_and_take_the_first_day_off_the_repeat_revenue(tmp_path):
    # as of 2026-06-01 the last 365 days start at 2025-06-02 00:00: an order at 00:00 that day is in them,
    # one a minute before is not. The first day has two orders (one returned, part refunded); the repeat
    # days' revenue is the rest. K3 ordered on one day only: no repeat revenue.
    orders = [
        {"order_id": "a", "customer_id": "K2", "ordered_at": dt.datetime(2025, 6, 1, 23, 59), "amount": 1000},
        {"order_id": "b", "customer_id": "K2", "ordered_at": dt.datetime(2025, 6, 1, 8), "amount": 500,
         "status": "returned", "refund_amount": 200},
        {"order_id": "c", "customer_id": "K2", "ordered_at": dt.datetime(2025, 6, 2, 0, 0), "amount": 2000},
        {"order_id": "d", "customer_id": "K2", "ordered_at": day("2026-01-01"), "amount": 4000},
        {"order_id": "e", "customer_id": "K2", "ordered_at": day("2026-01-01", 18), "amount": 100,
         "status": "returned"},  # no refund figure: the whole amount back
        *orders_for("K3", ["2026-05-01", "2026-05-01"], [300, 700]),
    ]
    with workspace_with(tmp_path / "ws", orders=orders) as ws:
        features = customer_features(ws.tables(), dt.date(2026, 6, 1)).to_pyarrow()
    rows = {r["customer_id"]: r for r in features.to_pylist()}
    k2, k3 = rows["K2"], rows["K3"]
    assert (k2["orders"], k2["orders_365d"]) == (5, 3)
    assert (k2["revenue"], k2["revenue_365d"]) == (1000 + 300 + 2000 + 4000, 2000 + 4000)
    assert (k2["frequency"], k2["recency"]) == (2, 214)  # days 2025-06-01, 2025-06-02, 2026-01-01
    assert k2["monetary_value"] == (2000 + 4000) / 2
    assert (k3["frequency"], k3["monetary_value"], k3["orders"], k3["orders_365d"]) == (0, 0.0, 2, 2)
    assert k3["mean_interval_days"] is None and k3["overdue_ratio"] is None


def test_churn_labels_say_who_ordered_or_cancelled_in_the_window(tmp_path):
    orders = (orders_for("A", ["2026-01-10", "2026-02-10", "2026-02-10"], 100)  # ordered twice on one day after
              + orders_for("B", ["2026-01-10"], 100)  # nothing after: churned
              + orders_for("C", ["2026-01-10", "2026-02-15"], 100)  # ordered, but cancelled too
              + orders_for("D", ["2026-02-20"], 100))  # first order after the cut-off: not labelled
    events = [{"customer_id": "C", "occurred_at": day("2026-03-01"), "kind": "cancellation"}]
    with workspace_with(tmp_path / "ws", orders=orders, events=events) as ws:
        labels = churn_labels(ws.tables(), dt.date(2026, 1, 31), 60).to_pyarrow().to_pylist()
    rows = {r["customer_id"]: r for r in labels}
    assert set(rows) == {"A", "B", "C"}
    assert (rows["A"]["orders_after"], rows["A"]["purchase_days_after"], rows["A"]["churned"]) == (2, 1, 0)
    assert (rows["B"]["ordered"], rows["B"]["churned"]) == (0, 1)
    assert (rows["C"]["ordered"], rows["C"]["cancelled"], rows["C"]["churned"]) == (1, 1, 1)


def test_too_little_data_is_said_plainly(tmp_path):
    orders = [o for i in range(10) for o in orders_for(f"K{i}", ["2026-01-01", "2026-02-01"], 100)]
    with workspace_with(tmp_path / "ws", orders=orders) as ws, pytest.raises(PredictionError) as caught:
        ws.predict(dt.date(2026, 6, 1))
    assert str(caught.value).startswith("Only 10 customers have ordered on more than one day: too few repeat buyers")


def test_suggested_actions_follow_the_spec_order():
    assert suggested_action({"nps_score": 4, "open_contacts": 2}) == "detractor_follow_up"
    assert suggested_action({"nps_score": 8, "open_contacts": 1}) == "hearing_call"
    assert suggested_action({"lost_reason": "situation_changed"}) == "new_offer"
    assert suggested_action({"matrix_cell": "churn_candidate", "churn_risk": 0.9}) == "loyal_programme"
    assert suggested_action({"near_loyal": True}) == "near_loyal_treatment"
    assert suggested_action({"churn_risk": 0.7}) == "reminder"
    assert suggested_action({"churn_risk": 0.1}) == "check_in"
    assert len(ACTIONS) == 7


# -- the demo business ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = build_demo(tmp_path_factory.mktemp("predict") / "ws", customers=3000, as_of=AS_OF)
    with result.workspace as ws:
        ws.analyze(AS_OF)
        ws.predict(AS_OF)
    return result.workspace.path


@pytest.mark.slow
def test_predictions_are_stored_one_row_per_ordering_customer_and_consistent(demo: Path):
    with Workspace.open(demo) as ws:
        table = ws.predictions().to_pyarrow()
        ordering = ws.scores().filter(lambda t: t.orders > 0).count().to_pyarrow().as_py()
    assert tuple(table.column_names) == PREDICTION_COLUMNS + CALL_EFFECT_COLUMNS  # no calls: NULL uplift, 0 outcomes
    assert table.num_rows == ordering and pc.count_distinct(table["customer_id"]).as_py() == ordering
    rows = table.to_pylist()
    assert all(0 <= r["p_alive"] <= 1 and 0 <= r["churn_risk"] <= 1 and r["expected_orders"] >= 0 for r in rows)
    assert all(math.isclose(r["value_at_risk"], r["churn_risk"] * r["clv"]) for r in rows)
    assert all(math.isclose(r["clv_profit"], 0.4 * r["clv"]) for r in rows)
    assert all(r["expected_next_order_on"] is None or r["expected_next_order_on"] > AS_OF for r in rows)
    risky = [r for r in rows if r["churn_risk"] >= 0.5]
    assert risky and all(r["churn_reasons_ja"] and r["churn_reasons_en"] for r in risky)
    # subscribers (and only they) get the sBG probability of cancelling
    assert any(r["cancel_probability"] is not None for r in rows)
    assert all(r["cancel_probability"] is None or 0 <= r["cancel_probability"] <= 1 for r in rows)


@pytest.mark.slow
def test_churn_reasons_are_looked_for_where_the_customer_has_not_left(demo: Path):
    """Lost customers and cancelled subscribers read that their reasons were not looked for (their lost
    reason says why they left); every other customer has the model's reasons or the typical text."""
    from kizuna.i18n import label

    with Workspace.open(demo) as ws:
        rows = ws.predictions().to_pyarrow().to_pylist()
    left = [r for r in rows if r["lifecycle_state"] in ("lost", "subscription_cancelled")]
    staying = [r for r in rows if r["lifecycle_state"] not in ("lost", "subscription_cancelled")]
    assert left and staying
    assert {(r["churn_reasons_ja"], r["churn_reasons_en"]) for r in left} == {
        (label("reason.already_left", "ja"), label("reason.already_left", "en"))}
    assert not any(r["churn_reasons_ja"] == label("reason.already_left", "ja") for r in staying)
    typical = label("reason.typical", "ja")
    assert sum(r["churn_reasons_ja"] != typical for r in staying) > len(staying) // 2


@pytest.mark.slow
def test_backtest_ranks_at_least_as_well_as_the_baselines_on_the_demo_and_writes_the_chart(demo: Path, tmp_path: Path):
    with Workspace.open(demo) as ws:
        result, chart = ws.backtest(dt.date(2026, 8, 1), horizon_days=90, report_dir=tmp_path, lang="en")
    auc = {name: figures["auc"] for name, figures in result.churn.items()}
    assert auc["model"] > auc["recency"] and auc["model"] > auc["bg_nbd"], auc
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "backtest-2026-08-01-90d.json").read_text(encoding="utf-8"))
    assert report["churn"]["model"]["auc"] == auc["model"]
    purchases = result.purchases
    assert abs(purchases["predicted"] - purchases["actual"]) < 0.15 * purchases["actual"]
    # the purchases are of every predicted customer; the churn figures of those active or at risk on the day
    assert sum(r["customers"] for r in result.holdout) == result.population["predicted"] > result.customers
    assert result.population["states"] == ["active", "at_risk"]
    assert result.customers == report["population"]["customers"]
    model, recency, bg_nbd = (result.churn[name] for name in ("model", "recency", "bg_nbd"))
    # at a day's capacity the good rankings call nearly the same customers, and a few calls' difference is
    # chance (docs/measures.md#backtest): the model finds more churners than BG/NBD's 1 - P(alive), and
    # not fewer than any baseline beyond chance
    assert model["precision_at_capacity"] > bg_nbd["precision_at_capacity"]
    verdicts = {report["comparison"][name]["verdict"] for name in ("recency", "bg_nbd_orders")}
    assert verdicts <= {"better", "no_difference"}
    # the same precisions in the comparison, with the interval of each difference around it
    for name in ("recency", "bg_nbd", "bg_nbd_orders"):
        compared = report["comparison"][name]
        assert compared["precision"] == model["precision_at_capacity"]
        assert compared["other_precision"] == result.churn[name]["precision_at_capacity"]
        assert compared["low"] <= compared["difference"] <= compared["high"]
        assert compared["verdict"] in {"better", "worse", "no_difference"}
    assert report["capacity"] == 100 and 0 < report["base_rate"] < 0.5  # the kept population: most stay
    assert model["brier"] < result.churn_rate * (1 - result.churn_rate)  # better than the base rate
    assert len(model["calibration"]) == 10 and recency["brier"] is None


def test_a_backtest_whose_holdout_runs_past_the_data_is_refused(demo: Path):
    with Workspace.open(demo) as ws, pytest.raises(PredictionError, match="runs past the last order in the data"):
        ws.backtest(dt.date(2026, 10, 1), horizon_days=90)


def test_the_call_list_is_ordered_by_value_at_risk_and_marks_opted_out_customers(demo: Path, tmp_path: Path):
    with Workspace.open(demo) as ws:
        listed = ws.priority(50).to_pylist()
        everyone = ws.predictions().to_pyarrow()
        held = call_holdout(everyone["customer_id"].to_pylist(), ws.operations.secret(),
                            ws.settings.calls.holdout_share)
        opted_out = {r["customer_id"] for r in ws.store.table("customers").filter(
            lambda t: t.email_opt_in == False).select("customer_id").to_pyarrow().to_pylist()}  # noqa: E712
        written = ws.write_priority(tmp_path / "calls.xlsx", fmt="xlsx", lang="ja", capacity=20)
    risks = [r["value_at_risk"] for r in listed]
    assert len(listed) == 50 and risks == sorted(risks, reverse=True)
    kept = [r for r in everyone.to_pylist() if r["lifecycle_state"] in ("active", "at_risk")
            and r["customer_id"] not in held]  # the call holdout is left uncalled
    assert risks[0] == max(r["value_at_risk"] for r in kept)
    # the keep list: only customers who can still be kept, each with a phone number
    assert {r["lifecycle_state"] for r in listed} <= {"active", "at_risk"} and all(r["phone"] for r in listed)
    # the hard rule: a cancelled subscriber who has not ordered since is gone
    gone = [r for r in everyone.to_pylist() if r["lifecycle_state"] == "subscription_cancelled"]
    assert len(gone) > 100 and all(r["churn_risk"] == 1 and r["p_alive"] == 0 and r["clv"] == 0 for r in gone)
    assert all(r["suggested_action"] in ACTIONS for r in listed)
    marked = [r for r in listed if r["customer_id"] in opted_out]
    assert all("email" in (r["opted_out"] or "") for r in marked)
    sheet = openpyxl.load_workbook(tmp_path / "calls.xlsx").active
    cells = list(sheet.iter_rows(values_only=False))
    assert written == 20 and len(cells) == 22 and cells[1][1].value == "顧客ID"  # below the title row
    assert not any(c.data_type == "f" for row in cells for c in row)


@pytest.mark.slow
def test_cli_predict_priority_and_backtest(demo: Path, tmp_path: Path):
    done = kizuna("predict", "--dir", str(demo), "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))  # NaN is not JSON
    assert summary["customers"] > 0 and summary["model_fit"]["bg_nbd"]["params"]["r"] > 0
    assert summary["problems"] == [] and summary["value_at_risk"] > 0  # every model fitted the demo
    assert {r["segment"] for r in summary["value_at_risk_by_segment"]} >= {"churn_candidate", "loyal"}
    # each segment's customers and value at risk, summed here from the stored tables
    with Workspace.open(demo, read_only=True) as ws:
        cells = dict(zip(*ws.scores().select("customer_id", "matrix_cell").to_pyarrow().to_pydict().values(),
                         strict=True))
        expected: dict[str, list] = {}
        for row in ws.predictions().select("customer_id", "value_at_risk").to_pyarrow().to_pylist():
            each = expected.setdefault(cells[row["customer_id"]], [0, 0.0])
            each[0] += 1
            each[1] += row["value_at_risk"] or 0.0
    by_segment = summary["value_at_risk_by_segment"]
    assert {r["segment"]: r["customers"] for r in by_segment} == {k: v[0] for k, v in expected.items()}
    assert all(math.isclose(r["value_at_risk"], expected[r["segment"]][1], rel_tol=1e-9) for r in by_segment)
    assert [r["value_at_risk"] for r in by_segment] == sorted((r["value_at_risk"] for r in by_segment), reverse=True)
    done = kizuna("priority", "--dir", str(demo), "-f", "csv", "-o", "calls.csv", "--capacity", "5", "--lang", "en",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with (tmp_path / "calls.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["#", "customer id", "name"] and len(rows) == 6
    done = kizuna("backtest", "--dir", str(demo), "--as-of", "2026-10-15", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("エラー: 検証期間 2026-10-16 – 2027-01-13 がデータの最後の注文")
    assert "--as-of を最後の注文の 90 日以上前にするか" in done.stderr


def test_segment_exports_carry_the_predictions(demo: Path, tmp_path: Path):
    with Workspace.open(demo) as ws:
        count = ws.export_segment("churn_candidate", tmp_path / "churn.csv", fmt="csv", lang="en")
        risk = {r["customer_id"]: r["churn_risk"] for r in ws.predictions().to_pyarrow().to_pylist()}
    with (tmp_path / "churn.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert count == len(rows) > 0
    assert all(float(r["churn risk %"]) == round(100 * risk[r["customer id"]], 1) for r in rows)
    assert all(r["main reasons for the risk"] for r in rows)


def test_predictions_are_written_in_customer_order_and_left_as_they_are(demo: Path):
    """Stored sorted by customer as they are written (a customer page's read is a range of rows), so that
    the store has nothing to rewrite in that order afterwards."""
    from kizuna.store import cluster_by_customer

    with Workspace.open(demo) as ws:
        # a DuckDB table read without ORDER BY gives its rows in the order they were stored
        stored = ws.store.backend.con.execute("SELECT customer_id FROM customer_predictions").fetchall()
        ids = [row[0] for row in stored]
        assert len(ids) > 1000 and ids == sorted(ids)
        assert cluster_by_customer(ws.store, ["customer_predictions"]) == []


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_overdue_reasons_read_as_the_catalogue_words_each_customer(lang: str):
    """The overdue texts, built column-wise, are the catalogue's pattern filled for each customer alone:
    thousands separators, one day, ratios on and next to a half tenth, no ratio, no last order."""
    import numpy as np
    import pyarrow as pa

    from kizuna.i18n import pattern, text
    from kizuna.prediction import CHURN_FEATURES
    from kizuna.prediction._reasons import reason_texts

    rng = np.random.default_rng(24)
    days = [float(d) for d in rng.integers(0, 4000, 3000)] + [1.0, 1.0, 3.0, 7.0, 1.0, 45.0, 30.0, 1234.0, None, None]
    intervals = [float(m) for m in rng.uniform(0.5, 400, 3000)] + [None, 4.0, 2.0, 20.0, 0.0, 30.0, 20.0, None, 10.0,
                                                                   None]
    days += [float(d) for d in rng.integers(1, 200, 2000)]
    intervals += [d / (k / 20) for d, k in zip(days[-2000:], rng.integers(1, 60, 2000), strict=True)]  # x.x5 ratios
    table = pa.table({"days_since_last_order": pa.array(days, pa.float64()),
                      "mean_interval_days": pa.array(intervals, pa.float64())})

    def alone(d: float | None, m: float | None) -> str:
        if d is None:
            return text("reason.last_order_unknown", lang)
        if m is not None and m > 0:
            return pattern("reason.overdue", lang, count=d).format(days=f"{round(d):,}", ratio=d / m)
        return pattern("reason.overdue_single_order", lang, count=d).format(days=f"{round(d):,}")

    for feature in ("days_since_last_order", "overdue_ratio"):
        reasons = np.array([[CHURN_FEATURES.index(feature), -1, -1]] * len(days))
        texts = reason_texts(table, reasons, CHURN_FEATURES, lang)
        assert texts == [alone(d, m) for d, m in zip(days, intervals, strict=True)]


def test_an_earlier_days_summary_from_the_same_grouping_is_that_days_own(demo: Path):
    """The churn model's training rows read the summary as of the cut-off from the grouping of the orders
    made for the as-of date: the same customers and figures as a summary made for the cut-off alone."""
    from kizuna.prediction._features import earlier_summary, purchase_summary

    cutoff = AS_OF - dt.timedelta(days=90)
    with Workspace.open(demo) as ws:
        tables = ws.tables()
        both = purchase_summary(tables, AS_OF, earlier=cutoff)
        shared = earlier_summary(both).to_pyarrow().sort_by("customer_id")
        alone = purchase_summary(tables, cutoff).to_pyarrow().sort_by("customer_id")
        now = both.select(*purchase_summary(tables, AS_OF).columns).to_pyarrow().sort_by("customer_id")
        assert now.equals(purchase_summary(tables, AS_OF).to_pyarrow().sort_by("customer_id"))
    assert 0 < shared.num_rows < now.num_rows
    assert shared.equals(alone)


def test_the_lists_rows_written_a_row_group_at_a_time_are_the_rows_with_their_places_in_cell_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`create_list_rows` over several row groups: every row once with the places `list_positions` finds,
    stored in the order asked (an ENUM in its values' order, NULLs last) and then customer order."""
    import random

    import pyarrow as pa

    import kizuna.store._paging
    from kizuna.store import Store, create_list_rows, list_positions, position_column

    monkeypatch.setattr(kizuna.store._paging, "ROW_GROUP", 1000)  # rows written at a time: several batches
    rng = random.Random(7)
    count = 5_500
    ids = [f"C{i:07d}" for i in range(count)]
    rng.shuffle(ids)
    cells = ["unanswered", "low", "high"]  # the ENUM's order, not the text's
    store = Store.connect(str(tmp_path / "s.duckdb"))
    store.create("rows", pa.table({
        "customer_id": ids,
        "cell": [rng.choice(cells) for _ in ids],
        "r": [rng.choice([1, 2, None]) for _ in ids],
        "value": [rng.choice([None, 0.5, 1.5, float(rng.randint(0, 9))]) for _ in ids],
        "note": [rng.choice(["a", None, "ccc"]) for _ in ids],
    }), categories={"cell": cells})
    rows = store.table("rows")
    with store.transaction():
        create_list_rows(store, "listed", rows, ["value", "customer_id"], order=["cell", "r"],
                         categories={"cell": cells})
    columns = [position_column(c, d) for c in ("value", "customer_id") for d in (False, True)]
    stored = store.backend.con.execute("SELECT * FROM listed").to_arrow_table()  # as stored
    assert stored.column_names == [*rows.columns, *columns]
    assert str(store.table("listed").schema()["cell"]) == "string"  # an ENUM, read as text
    places = list_positions(store, rows, ["value", "customer_id"], name="places").to_pyarrow()
    expected = rows.to_pyarrow().join(places, "customer_id")
    assert stored.sort_by("customer_id").to_pylist() == \
        expected.select(stored.column_names).sort_by("customer_id").to_pylist()
    order = {cell: i for i, cell in enumerate(cells)}
    keys = [(order[r["cell"]], r["r"] is None, r["r"] or 0, r["customer_id"]) for r in stored.to_pylist()]
    assert keys == sorted(keys)
    store.close()


def test_a_lists_columns_replaced_are_what_writing_the_list_again_gives(tmp_path: Path):
    """`replace_list_columns`: the new values and their places (ties in customer order, NULLs last), the
    other columns and the rows' order as they were: the table a new `create_list_rows` writes."""
    import random

    import pyarrow as pa

    from kizuna.store import Store, create_list_rows, replace_list_columns

    rng = random.Random(11)
    ids = [f"C{i:05d}" for i in range(3_000)]
    rng.shuffle(ids)
    store = Store.connect(str(tmp_path / "s.duckdb"))
    store.create("rows", pa.table({
        "customer_id": ids,
        "cell": [rng.choice(["a", "b"]) for _ in ids],
        "value": [rng.choice([None, 0.5, 1.5, float(rng.randint(0, 9))]) for _ in ids],
        "note": [rng.choice(["x", None]) for _ in ids],
    }))
    # new values for most customers (ties, NULLs, customers without one: NULL), the rest of the rows as they were
    renewed = ids[:2_500]
    store.create("values", pa.table({"customer_id": renewed,
                                     "value": [rng.choice([None, 2.0, float(rng.randint(0, 99))]) for _ in renewed]}))
    store.create("renewed", store.table("rows").drop("value").left_join(store.table("values"), "customer_id")
                 .select("customer_id", "cell", "value", "note"))
    con = store.backend.con
    with store.transaction():
        create_list_rows(store, "listed", store.table("rows"), ["value", "customer_id"], order=["cell"])
        create_list_rows(store, "expected", store.table("renewed"), ["value", "customer_id"], order=["cell"])
    before = con.execute("SELECT * FROM listed ORDER BY rowid").to_arrow_table()
    with store.transaction():
        assert replace_list_columns(store, "listed", store.table("values"), ["value"])
    after = con.execute("SELECT * FROM listed ORDER BY rowid").to_arrow_table()
    expected = con.execute("SELECT * FROM expected ORDER BY rowid").to_arrow_table()
    assert after.column("customer_id").equals(before.column("customer_id"))  # the rows stay where they were
    assert after.to_pylist() == expected.to_pylist()
    assert after.column("value") != before.column("value")
    assert not replace_list_columns(store, "rows", store.table("values"), ["value"])  # no places: written whole
    store.close()


@pytest.mark.slow
def test_the_lists_rows_after_predict_are_those_a_whole_rewrite_gives(demo: Path):
    """`predict` replaces the lists' prediction columns in place: the table is the one `_write_views`
    writes from the scores, the predictions and the customers."""
    with Workspace.open(demo) as ws:
        con = ws.store.backend.con
        after_predict = con.execute("SELECT * FROM _kizuna_list_members ORDER BY rowid").to_arrow_table()
        assert after_predict.column("churn_risk").null_count < after_predict.num_rows // 2  # the predictions are in
        with ws.store.transaction():
            ws._write_views()
        rewritten = con.execute("SELECT * FROM _kizuna_list_members ORDER BY rowid").to_arrow_table()
    assert after_predict.to_pylist() == rewritten.to_pylist()
