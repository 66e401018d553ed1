"""KPI report, segment tables and customer-list exports on hand-computed cases."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys

import ibis
import openpyxl
import pytest

from kizuna import KizunaError
from kizuna.analytics import kpi_report
from kizuna.analytics._base import AsOf, subscribed_at, subscription_spells
from kizuna.analytics._reports import last_complete_month

from factories import day, orders_for, workspace_with

AS_OF = dt.date(2026, 6, 30)


def _nps(customer: str, score: int, when: str = "2026-06-01") -> dict:
    return {"customer_id": customer, "answered_at": day(when), "score": score}


def test_nps_score_is_promoters_minus_detractors_the_specs_example(tmp_path):
    # docs/measures.md §1: 50 % promoters − 30 % detractors → NPS 20
    scores = [9, 10, 9, 10, 9, 7, 8, 0, 3, 6]
    answers = [_nps(f"C{i}", s) for i, s in enumerate(scores)]
    ws = workspace_with(tmp_path / "ws", nps_answers=answers, orders=orders_for("C0", ["2026-06-01"], 100))
    report = kpi_report(ws.tables(), AS_OF)
    assert report.nps == {"promoter": 5, "passive": 2, "detractor": 3, "answered": 10, "score": pytest.approx(20.0)}


def test_repeat_rate_frequency_aov_and_the_2_8_share(tmp_path):
    # In the period: A orders 3 times, B twice, C once, D once (D's second order is before the period).
    orders = (orders_for("A", ["2026-01-10", "2026-02-10", "2026-03-10"], 10_000)
              + orders_for("B", ["2026-01-05", "2026-05-05"], 5_000)
              + orders_for("C", ["2026-04-01"], 2_000)
              + orders_for("D", ["2025-01-01", "2026-06-01"], 1_000))
    ws = workspace_with(tmp_path / "ws", orders=orders)
    report = kpi_report(ws.tables(), AS_OF, start=dt.date(2026, 1, 1))
    h = report.headline
    # period revenue: A 30,000 + B 10,000 + C 2,000 + D 1,000
    assert (h["ordering_customers"], h["orders"], h["revenue"]) == (4, 7, 43_000)
    assert h["repeat_rate"] == pytest.approx(2 / 4)       # A and B of four
    assert h["purchase_frequency"] == pytest.approx(7 / 4)
    assert h["aov"] == pytest.approx(43_000 / 7)
    # lifetime revenue: A 30,000, B 10,000, D 2,000, C 2,000; top 20 % of 4 = 1 customer (A)
    assert h["top20_revenue_share"] == pytest.approx(30_000 / 44_000)
    curve = report.concentration.to_pylist()
    assert [round(p["customer_share"], 2) for p in curve] == [0.3, 0.5, 0.8, 1.0]
    assert curve[-1]["revenue_share"] == pytest.approx(1.0)
    assert curve[0]["revenue_share"] == pytest.approx(30_000 / 44_000)


@pytest.mark.slow
def test_breakdown_by_month_and_by_channel(tmp_path):
    orders = (orders_for("A", ["2026-05-01", "2026-05-20"], 1_000, channel="web")
              + orders_for("B", ["2026-05-03"], 3_000, channel="phone")
              + orders_for("C", ["2026-06-03"], 2_000, channel="web"))
    ws = workspace_with(tmp_path / "ws", orders=orders)
    by_month = {r["month"]: r for r in kpi_report(ws.tables(), AS_OF, by="month").by.to_pylist()}
    may = by_month[dt.date(2026, 5, 1)]
    assert (may["ordering_customers"], may["orders"], may["revenue"], may["repeat_rate"]) == (2, 3, 5_000, 0.5)
    by_channel = {r["channel"]: r for r in kpi_report(ws.tables(), AS_OF, by="channel").by.to_pylist()}
    assert (by_channel["web"]["orders"], by_channel["web"]["revenue"], by_channel["phone"]["orders"]) == (3, 4_000, 1)


@pytest.mark.slow
def test_cohort_retention_and_f2_conversion(tmp_path):
    # January cohort: A, B, C. A orders again in Feb (k=1) and Apr (k=3); B in Feb; C never.
    orders = (orders_for("A", ["2026-01-05", "2026-02-05", "2026-04-05"], 1_000)
              + orders_for("B", ["2026-01-20", "2026-02-25"], 1_000)
              + orders_for("C", ["2026-01-31"], 1_000)
              + orders_for("D", ["2026-03-01", "2026-06-20"], 1_000))  # second order after 111 days
    ws = workspace_with(tmp_path / "ws", orders=orders)
    report = kpi_report(ws.tables(), AS_OF, start=dt.date(2026, 1, 1))
    jan = {r["k"]: r for r in report.cohorts.to_pylist() if r["cohort"] == dt.date(2026, 1, 1)}
    # Every month up to June (closed by the as-of date 30 June) has a row, 0 where nobody came back.
    assert {k: (r["customers"], r["cohort_size"]) for k, r in jan.items()} == {
        1: (2, 3), 2: (0, 3), 3: (1, 3), 4: (0, 3), 5: (0, 3)
    }
    assert jan[1]["share"] == pytest.approx(2 / 3)
    march = {r["k"]: r["customers"] for r in report.cohorts.to_pylist() if r["cohort"] == dt.date(2026, 3, 1)}
    assert march == {1: 0, 2: 0, 3: 1}  # D's June order
    # As of 29 June, June is still running: no cohort shows it.
    running = kpi_report(ws.tables(), dt.date(2026, 6, 29), start=dt.date(2026, 1, 1)).cohorts.to_pylist()
    assert max(r["k"] for r in running if r["cohort"] == dt.date(2026, 1, 1)) == 4
    assert not [r for r in running if r["cohort"] == dt.date(2026, 3, 1) and r["k"] == 3]
    f2 = report.f2
    # four first-time buyers; A (31 days) and B (36 days) reorder within 90 days; D's 111 days is too late
    assert (f2["first_time_buyers"], f2["converted"]) == (4, 2)
    assert f2["conversion"] == pytest.approx(0.5)
    assert f2["mean_days_to_second"] == pytest.approx(33.5) and f2["median_days_to_second"] == 31


def test_nps_by_channel_of_last_support_contact(tmp_path):
    contacts = [
        {"contact_id": "T1", "customer_id": "A", "opened_at": day("2026-03-01"), "channel": "chat"},
        {"contact_id": "T2", "customer_id": "A", "opened_at": day("2026-05-01"), "channel": "phone"},
        {"contact_id": "T3", "customer_id": "B", "opened_at": day("2026-05-02"), "channel": "phone"},
        {"contact_id": "T4", "customer_id": "C", "opened_at": day("2026-05-03"), "channel": "chat"},
    ]
    answers = [_nps("A", 10), _nps("B", 2), _nps("C", 9)]
    ws = workspace_with(tmp_path / "ws", support_contacts=contacts, nps_answers=answers,
                        orders=orders_for("A", ["2026-06-01"], 100))
    rows = {r["channel"]: r for r in kpi_report(ws.tables(), AS_OF).nps_by_channel.to_pylist()}
    assert (rows["phone"]["answered"], rows["phone"]["nps"]) == (2, 0.0)  # A promoter, B detractor
    assert (rows["chat"]["answered"], rows["chat"]["nps"]) == (1, 100.0)  # A's chat was not the last


def test_subscription_spells_restart_ties_and_orphan_cancellations():
    # A: cancels and starts again; B: starts and cancels at the same moment (never active); C: a
    # cancellation no start led to; D: two starts, one cancellation (one spell from the first start)
    at = dt.datetime.fromisoformat
    events = ibis.memtable({
        "customer_id": ["A", "A", "A", "B", "B", "C", "D", "D", "D"],
        "kind": ["subscription_start", "cancellation", "subscription_start", "subscription_start", "cancellation",
                 "cancellation", "subscription_start", "subscription_start", "cancellation"],
        "occurred_at": [at("2026-01-10 09:00"), at("2026-03-05 09:00"), at("2026-04-01 09:00"),
                        at("2026-02-01 10:00"), at("2026-02-01 10:00"), at("2026-02-10 09:00"),
                        at("2026-01-05 09:00"), at("2026-01-20 09:00"), at("2026-02-15 09:00")],
    })
    spells = subscription_spells(events, AsOf(dt.date(2026, 6, 30)))

    def active(moment: str) -> list[str]:
        on = spells.filter(subscribed_at(spells, ibis.literal(at(moment))))
        return sorted(on.customer_id.to_pyarrow().to_pylist())

    assert active("2026-02-01 00:00") == ["A", "D"]
    assert active("2026-02-01 12:00") == ["A", "D"]  # B's start and cancellation cancel out
    assert active("2026-02-20 00:00") == ["A"]  # D's spell ended on 15 February
    assert active("2026-03-10 00:00") == []  # A cancelled on 5 March, has not started again
    assert active("2026-04-02 00:00") == ["A"]
    assert spells.filter(spells.customer_id == "D").count().to_pyarrow().as_py() == 1


@pytest.mark.slow
def test_subscription_churn_per_month(tmp_path):
    events = [
        {"customer_id": c, "occurred_at": day("2026-01-10"), "kind": "subscription_start"} for c in "ABCD"
    ] + [
        {"customer_id": "A", "occurred_at": day("2026-05-15"), "kind": "cancellation"},
        {"customer_id": "B", "occurred_at": day("2026-06-01"), "kind": "cancellation"},
        {"customer_id": "C", "occurred_at": day("2026-06-02"), "kind": "cancellation"},
    ]
    ws = workspace_with(tmp_path / "ws", events=events, orders=orders_for("A", ["2026-06-01"], 100))
    rows = {r["month"]: r for r in kpi_report(ws.tables(), AS_OF).subscription_churn.to_pylist()}
    may, june = rows[dt.date(2026, 5, 1)], rows[dt.date(2026, 6, 1)]
    assert (may["active_at_start"], may["cancellations"], may["churn_rate"]) == (4, 1, 0.25)
    assert (june["active_at_start"], june["cancellations"]) == (3, 2)
    assert june["churn_rate"] == pytest.approx(2 / 3)
    assert len(rows) == 12 and min(rows) == dt.date(2025, 7, 1)  # the last twelve whole months
    # On 15 July, July is not over: the table still ends with June.
    mid_july = kpi_report(ws.tables(), dt.date(2026, 7, 15)).subscription_churn.to_pylist()
    assert mid_july[-1]["month"] == dt.date(2026, 6, 1)


@pytest.mark.parametrize(("day", "month"), [
    ("2026-06-30", "2026-06-01"), ("2026-06-29", "2026-05-01"), ("2026-01-01", "2025-12-01"),
    ("2024-02-29", "2024-02-01"), ("2025-12-31", "2025-12-01"),
])
def test_last_complete_month(day, month):
    assert last_complete_month(dt.date.fromisoformat(day)) == dt.date.fromisoformat(month)


@pytest.fixture
def analysed(tmp_path):
    # ten customers, C01 richest; top 20 % = C01, C02. C01 detractor (churn candidate), C02 promoter (loyal)
    customers = [{"customer_id": f"C{k:02}", "name": f"顧客{k}", "phone": f"03-0000-00{k:02}"} for k in range(1, 11)]
    orders = [o for k in range(1, 11) for o in orders_for(f"C{k:02}", ["2026-06-01"], (11 - k) * 10_000)]
    ws = workspace_with(tmp_path / "ws", customers=customers, orders=orders,
                        nps_answers=[_nps("C01", 2), _nps("C02", 10), _nps("C03", 10)])
    assert ws.analyze(AS_OF) == 10
    yield ws
    ws.close()


@pytest.mark.slow
def test_segment_tables_count_customers_and_revenue_share(analysed):
    tables = analysed.segments()
    matrix = {r["segment"]: r for r in tables["matrix"].to_pylist()}
    assert (matrix["churn_candidate"]["customers"], matrix["churn_candidate"]["revenue"]) == (1, 100_000)
    assert matrix["churn_candidate"]["revenue_share"] == pytest.approx(100_000 / 550_000)
    assert (matrix["loyal"]["customers"], matrix["advocate"]["customers"]) == (1, 1)
    assert matrix["unanswered_low"]["customers"] == 7
    assert sum(r["customers"] for r in matrix.values()) == 10
    ranks = {r["segment"]: r["customers"] for r in tables["ranks"].to_pylist()}
    assert ranks == {"rank_loyal": 0, "rank_a": 0, "rank_b": 0, "rank_other": 10}


@pytest.mark.slow
def test_export_a_call_list_in_csv_and_xlsx(analysed, tmp_path):
    assert analysed.export_segment("離脱候補者", tmp_path / "cc.csv") == 1
    with (tmp_path / "cc.csv").open(encoding="utf-8-sig", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["顧客ID"], row["氏名"], row["電話番号"], row["LTV (円)"]) == ("C01", "顧客1", "03-0000-0001", "100000")
    assert row["リスト掲載理由"] == "離脱候補者 / 不足: NPS / NPS 2"
    assert analysed.export_segment("unanswered_low", tmp_path / "u.xlsx", fmt="xlsx", lang="en") == 7
    sheet = openpyxl.load_workbook(tmp_path / "u.xlsx").active
    values = list(sheet.values)
    assert values[1][0] == "customer id" and len(values) == 9  # below the title row
    assert [v[0] for v in values[2:4]] == ["C04", "C05"]  # best LTV first (C03 answered, so not here)
    with pytest.raises(KizunaError, match="unknown segment"):
        analysed.export_segment("nobody", tmp_path / "x.csv")


@pytest.mark.slow
def test_cli_segments_json_and_analyze_required(analysed, tmp_path):
    analysed.close()  # a DuckDB file has one writer: the CLI process opens it next
    run = [sys.executable, "-m", "kizuna"]
    out = subprocess.run([*run, "segments", "--dir", str(analysed.path), "--format", "json"],
                         capture_output=True, text=True, check=True)
    matrix = {r["segment"]: r for r in json.loads(out.stdout)["matrix"]}
    assert matrix["loyal"]["label"] == "ロイヤルカスタマー" and matrix["loyal"]["customers"] == 1
    fresh = workspace_with(tmp_path / "fresh", orders=orders_for("A", ["2026-06-01"], 100))
    fresh.close()
    failed = subprocess.run([*run, "segments", "--dir", str(tmp_path / "fresh")], capture_output=True, text=True)
    assert failed.returncode == 1 and "kizuna analyze" in failed.stderr and "Traceback" not in failed.stderr
