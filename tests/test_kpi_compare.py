"""`kizuna kpi --compare` and the yen a manager reads (docs/measures.md#kpi-compare, #money).

A small business worked out by hand: March 2026 against February 2026 and March 2025, through the
command line as a user runs it, and the same figures on PostgreSQL and Spark.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kizuna.analytics import Period, kpi_comparison, lost_by_reason
from kizuna.i18n import change_text, money
from kizuna.store import Store, copy_store
from kizuna.workspace import Workspace

from factories import day, workspace_with

KIZUNA = [sys.executable, "-m", "kizuna"]
AS_OF = "2026-04-15"  # the last full month before it: March 2026


def order(oid: str, customer: str, when: str, amount: int, **extra) -> dict:
    return {"order_id": oid, "customer_id": customer, "ordered_at": day(when), "amount": amount, **extra}


ORDERS = [
    order("a1", "A", "2025-03-10", 10_000), order("a2", "A", "2026-02-05", 20_000),
    order("a3", "A", "2026-03-03", 30_000), order("a4", "A", "2026-03-20", 10_000),
    order("b1", "B", "2026-03-15", 5_000), order("b2", "B", "2026-03-25", 9_999, status="cancelled"),
    order("c1", "C", "2025-03-05", 8_000), order("c2", "C", "2025-03-25", 8_000),
    order("c3", "C", "2026-02-10", 12_000),
    # February's last half hour
    {**order("d1", "D", "2026-02-28", 6_000), "ordered_at": dt.datetime(2026, 2, 28, 23, 30)},
    order("d2", "D", "2026-04-02", 7_000),  # after March: in no period, and not in March's LTV
]
ANSWERS = [
    {"customer_id": "A", "answered_at": day("2026-03-10"), "score": 10},
    {"customer_id": "A", "answered_at": day("2025-06-01"), "score": 3},
    {"customer_id": "B", "answered_at": day("2026-02-20"), "score": 8},
    {"customer_id": "C", "answered_at": day("2026-01-15"), "score": 4},
]
EVENTS = [
    {"event_id": "e1", "customer_id": "A", "kind": "subscription_start", "occurred_at": day("2025-01-10")},
    {"event_id": "e2", "customer_id": "C", "kind": "subscription_start", "occurred_at": day("2025-02-01")},
    {"event_id": "e3", "customer_id": "C", "kind": "cancellation", "occurred_at": day("2026-03-12")},
    {"event_id": "e4", "customer_id": "D", "kind": "subscription_start", "occurred_at": day("2026-02-28")},
    {"event_id": "e5", "customer_id": "B", "kind": "subscription_start", "occurred_at": day("2025-03-05")},
    {"event_id": "e6", "customer_id": "B", "kind": "cancellation", "occurred_at": day("2025-03-20")},
]

# By hand. March 2026: A 30,000 + 10,000, B 5,000 (B's cancelled order does not count): 3 orders,
# ¥45,000, 2 ordering customers, A twice (repeat rate 1/2), B's first order ever (1 new buyer).
# February 2026: A 20,000, C 12,000, D 6,000 (23:30 on the 28th): 3 orders by 3 customers, D new.
# March 2025: A 10,000, C 8,000 twice: 3 orders by 2 customers, C twice, A and C new.
# Mean LTV at each end: (70,000 + 5,000 + 28,000 + 6,000) / 4; (30,000 + 28,000 + 6,000) / 3;
# (10,000 + 16,000) / 2 (D's April order is after every end).
# NPS at the end of March 2026: A 10, B 8, C 4 → (1 − 1) / 3 = 0; of February: A's 3 of June 2025
# (within 365 days), B 8, C 4 → (0 − 2) / 3; of March 2025: nobody had answered → none.
# Subscriptions active on 1 March 2026: A, C, D; C cancels on the 12th → 1/3. On 1 February: A, C
# (D starts on the 28th), nobody cancels → 0. On 1 March 2025: A, C (B starts on the 5th, so B's
# cancellation on the 20th is not of a subscription active at the start) → 0.
EXPECTED = {
    "revenue": (45_000, 38_000, 26_000),
    "orders": (3, 3, 3),
    "ordering_customers": (2, 3, 2),
    "new_buyers": (1, 1, 2),
    "aov": (15_000, 38_000 / 3, 26_000 / 3),
    "repeat_rate": (0.5, 0.0, 0.5),
    "purchase_frequency": (1.5, 1.0, 1.5),
    "mean_ltv": (109_000 / 4, 64_000 / 3, 13_000),
    "nps": (0.0, -200 / 3, None),
    "subscription_churn": (1 / 3, 0.0, 0.0),
}
# changes: relative for amounts and counts, points for shares and the NPS; none without a prior figure
CHANGES = {
    "revenue": (7 / 38, 19 / 26), "orders": (0.0, 0.0), "ordering_customers": (-1 / 3, 0.0),
    "new_buyers": (0.0, -0.5), "aov": (15_000 / (38_000 / 3) - 1, 15_000 / (26_000 / 3) - 1),
    "repeat_rate": (50.0, 0.0), "purchase_frequency": (0.5, 0.0),
    "mean_ltv": ((109_000 / 4) / (64_000 / 3) - 1, (109_000 / 4) / 13_000 - 1),
    "nps": (200 / 3, None), "subscription_churn": (100 / 3, 100 / 3),
}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop"
    with workspace_with(path, orders=ORDERS, nps_answers=ANSWERS, events=EVENTS):
        pass
    return path


def kizuna(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *args], capture_output=True, text=True, cwd=cwd, check=False)


def close(a, b) -> bool:
    return a is None and b is None or a is not None and b is not None and abs(a - b) < 1e-9


def check(rows: list[dict]) -> None:
    assert [r["key"] for r in rows] == list(EXPECTED)
    for r in rows:
        value, previous, last_year = EXPECTED[r["key"]]
        assert close(r["value"], value) and close(r["previous"], previous) and close(r["last_year"], last_year), r
        assert close(r["previous_change"], CHANGES[r["key"]][0]), r
        assert close(r["last_year_change"], CHANGES[r["key"]][1]), r


@pytest.mark.slow
def test_kpi_compare_json_is_last_month_against_the_month_before_and_last_year(shop: Path):
    done = kizuna("kpi", "--compare", "--dir", str(shop), "--as-of", AS_OF, "-f", "json", cwd=shop.parent)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["period"] == {"start": "2026-03-01", "end": "2026-03-31"}
    assert found["previous"] == {"start": "2026-02-01", "end": "2026-02-28"}
    assert found["last_year"] == {"start": "2025-03-01", "end": "2025-03-31"}
    check(found["kpis"])
    units = {r["key"]: (r["unit"], r["better"]) for r in found["kpis"]}
    assert units["repeat_rate"] == ("points", "higher") and units["subscription_churn"] == ("points", "lower")
    assert units["revenue"] == ("percent", "higher")


@pytest.mark.slow
def test_kpi_compare_table_shows_arrows_points_and_a_dash_without_a_prior_figure(shop: Path):
    done = kizuna("kpi", "--compare", "--dir", str(shop), "--as-of", AS_OF, cwd=shop.parent)
    assert done.returncode == 0, done.stderr
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in done.stdout.splitlines() if line.startswith("│")}
    assert "前月 (2026年2月)" in done.stdout and "前年同月 (2025年3月)" in done.stdout
    assert lines["売上 (¥)"] == ["45,000", "38,000", "↑ +18.4%", "26,000", "↑ +73.1%"]
    assert lines["購入顧客数"] == ["2", "3", "↓ -33.3%", "2", "→ ±0.0%"]
    assert lines["リピート率 %"] == ["50.0", "0.0", "↑ +50.0pt", "50.0", "→ ±0.0pt"]
    assert lines["NPS"] == ["0.00", "-66.67", "↑ +66.7pt", "-", "—"]
    assert lines["定期解約率 %"] == ["33.3", "0.0", "↑ +33.3pt", "0.0", "↑ +33.3pt"]


@pytest.mark.slow
def test_kpi_compare_csv_and_a_period_of_days(shop: Path):
    done = kizuna("kpi", "--compare", "--dir", str(shop), "--from", "2026-03-01", "--to", "2026-03-15", "-f", "json",
                  cwd=shop.parent)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    # fifteen days: the fifteen days before, and the same days a year earlier
    assert found["previous"] == {"start": "2026-02-14", "end": "2026-02-28"}
    assert found["last_year"] == {"start": "2025-03-01", "end": "2025-03-15"}
    revenue = next(r for r in found["kpis"] if r["key"] == "revenue")
    assert (revenue["value"], revenue["previous"], revenue["last_year"]) == (35_000, 6_000, 18_000)
    csv_out = kizuna("kpi", "--compare", "--dir", str(shop), "--as-of", AS_OF, "-f", "csv", cwd=shop.parent).stdout
    assert csv_out.splitlines()[0] == "key,value,previous,previous_change,last_year,last_year_change,unit,better"
    assert csv_out.splitlines()[1] == f"revenue,45000,38000,{7 / 38},26000,{19 / 26},percent,higher"


@pytest.mark.slow
def test_a_period_that_ends_before_it_starts_is_one_line(shop: Path):
    done = kizuna("kpi", "--compare", "--dir", str(shop), "--from", "2026-03-20", "--to", "2026-03-01",
                  cwd=shop.parent)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == ("エラー: 期間の開始 2026-03-20 が終了 2026-03-01 より後です。"
                           "もっと前の開始日を指定してください。\n")


# Lost in March 2026, by hand: C cancels on the 12th and orders no more (subscription cancelled, lost
# since the 12th); its detractor answer of January (within 180 days before its last order) makes the
# reason "unresolved"; C's lifetime revenue 8,000 + 8,000 + 12,000. B's cancellation of 2025 was
# followed by an order; A, B and D ordered within 90 days.
LOST_IN_MARCH = [{"lost_reason": "unresolved", "customers": 1, "ltv_revenue": 28_000}]


@pytest.mark.slow
def test_customers_lost_in_the_month_by_reason(shop: Path):
    with Workspace.open(shop, read_only=True) as ws:
        assert lost_by_reason(ws.tables(), ws.settings.analysis, Period.month(2026, 3)).to_pylist() == LOST_IN_MARCH
        assert lost_by_reason(ws.tables(), ws.settings.analysis, Period.month(2026, 2)).to_pylist() == []


def test_periods_step_by_whole_months_and_by_days():
    assert Period.month_before(dt.date(2026, 4, 15)) == Period.month(2026, 3)
    assert Period.month_before(dt.date(2026, 3, 31)) == Period.month(2026, 3)  # the day closes its month
    assert Period.month(2026, 1).previous() == Period.month(2025, 12)
    assert Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31)).previous() == Period(dt.date(2025, 10, 1),
                                                                                  dt.date(2025, 12, 31))
    assert Period.month(2024, 2).last_year() == Period.month(2023, 2)
    assert Period(dt.date(2024, 2, 29), dt.date(2024, 3, 1)).last_year() == Period(dt.date(2023, 2, 28),
                                                                                  dt.date(2023, 3, 1))


@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres),
                                    pytest.param("spark", marks=pytest.mark.spark)])
def test_the_same_figures_on_postgres_and_spark(shop: Path, engine: str, request):
    store = (Store.connect(request.getfixturevalue("postgres_database")) if engine == "postgres"
             else request.getfixturevalue("spark_store"))
    try:
        with Workspace.open(shop, read_only=True) as ws:
            copy_store(ws.store, store)
        tables = Workspace(shop, ws.settings, store).tables()
        check(kpi_comparison(tables, Period.month(2026, 3)).rows)
        assert lost_by_reason(tables, ws.settings.analysis, Period.month(2026, 3)).to_pylist() == LOST_IN_MARCH
    finally:
        if engine == "postgres":
            store.close()


# -- yen as a manager reads it, and changes ---------------------------------------------------------------------------
def test_money_in_man_and_oku_yen_above_a_million_and_exact_below():
    assert money(999_999) == "¥999,999"
    assert money(1_000_000) == "100万円"
    assert money(12_345_678) == "1,235万円"  # 1,234.5678万: half up
    assert money(123_456_789) == "1.2億円"
    assert money(400_488_728) == "4.0億円"
    assert money(99_994_999) == "9,999万円"
    assert money(99_995_000) == "1.0億円"  # 9,999.5万 rounds to 1億: shown in 億
    assert money(15_000) == "¥15,000" and money(14_999.5) == "¥15,000"  # half a yen up, not to even
    assert money(-12_345_678) == "-1,235万円" and money(None) == ""
    assert money(400_488_728, exact=True) == "¥400,488,728"


def test_money_in_english_is_millions_and_billions():
    assert money(999_999, "en") == "¥999,999"
    assert money(1_000_000, "en") == "¥1.0M"
    assert money(400_488_728, "en") == "¥400.5M"
    assert money(12_345_678, "en") == "¥12.3M"
    assert money(999_950_000, "en") == "¥1.0B"  # 999.95M rounds to 1,000.0M: shown in billions
    assert money(1_234_567_890, "en") == "¥1.2B"


def test_changes_in_words():
    assert change_text(7 / 38, "percent") == "↑ +18.4%"
    assert change_text(-1 / 3, "percent", "en") == "↓ -33.3%"
    assert change_text(200 / 3, "points") == "↑ +66.7pt" and change_text(-0.04, "points", "en") == "→ ±0.0 pt"
    assert change_text(None, "percent") == "—"
