"""customer_scores on hand-computed cases: every measure and segment boundary of docs/measures.md §1-§2."""

from __future__ import annotations

import datetime as dt
import random

import ibis
import pytest

from kizuna.analytics import AsOf, customer_scores, order_summary, quintile

from factories import day, days_before, orders_for, workspace_with

AS_OF = "2026-06-30"


def scores(ws, as_of: str = AS_OF, **settings) -> dict[str, dict]:
    conf = ws.settings.replace(analysis=settings)
    rows = customer_scores(ws.tables(), conf.analysis, dt.date.fromisoformat(as_of),
                           gross_margin_rate=conf.business.gross_margin_rate).to_pyarrow().to_pylist()
    return {r["customer_id"]: r for r in rows}


def test_ltv_is_aov_times_orders_the_specs_example(tmp_path):
    # docs/measures.md §1: ¥100,000 × 10 orders = ¥1,000,000
    ws = workspace_with(tmp_path / "ws", orders=orders_for("C1", days_before(AS_OF, *range(10, 110, 10)), 100_000))
    row = scores(ws)["C1"]
    assert (row["orders"], row["aov"], row["ltv_revenue"]) == (10, 100_000, 1_000_000)
    assert row["ltv_profit"] == pytest.approx(400_000)  # gross margin 0.4
    assert (row["recency_days"], row["tenure_days"], row["mean_interval_days"]) == (10, 100, 10.0)


@pytest.mark.slow
def test_cancelled_returned_and_future_orders(tmp_path):
    orders = [
        {"order_id": "A", "customer_id": "C1", "ordered_at": day("2026-06-01"), "amount": 10_000},
        {"order_id": "B", "customer_id": "C1", "ordered_at": day("2026-06-02"), "amount": 5_000,
         "status": "cancelled"},
        {"order_id": "C", "customer_id": "C1", "ordered_at": day("2026-06-03"), "amount": 8_000,
         "status": "returned", "refund_amount": 3_000},
        {"order_id": "D", "customer_id": "C1", "ordered_at": day("2026-06-04"), "amount": 2_000,
         "status": "returned"},  # no refund figure: all of it was refunded
        {"order_id": "E", "customer_id": "C1", "ordered_at": day("2026-07-01", 0), "amount": 99_999},
    ]
    ws = workspace_with(tmp_path / "ws", orders=orders)
    row = scores(ws)["C1"]
    # A 10,000 + C (8,000 − 3,000) + D 0, three orders; B cancelled; E after the as-of date
    assert (row["orders"], row["ltv_revenue"], row["recency_days"]) == (3, 15_000, 26)
    assert scores(ws, "2026-07-01")["C1"]["ltv_revenue"] == 114_999


@pytest.mark.parametrize(
    ("recency", "count", "total", "rank"),
    [
        (30, 15, 500_000, "loyal"),  # exactly on every loyal threshold
        (31, 15, 500_000, "a"),
        (30, 14, 500_000, "a"),
        (30, 15, 499_999, "a"),
        (60, 10, 300_000, "a"),  # exactly on A
        (61, 10, 300_000, "b"),
        (90, 5, 200_000, "b"),  # exactly on B
        (91, 5, 200_000, "other"),
        (90, 4, 200_000, "other"),
        (90, 5, 199_999, "other"),
    ],
)
@pytest.mark.slow
def test_rfm_rank_boundaries(tmp_path, recency, count, total, rank):
    amounts = [total // count] * count
    amounts[0] += total - sum(amounts)
    dates = days_before(AS_OF, *[recency + i for i in range(count)])
    ws = workspace_with(tmp_path / "ws", orders=orders_for("C1", dates, amounts))
    row = scores(ws)["C1"]
    assert (row["recency_days"], row["frequency"], row["monetary"]) == (recency, count, total)
    assert row["rfm_rank"] == rank


@pytest.mark.slow
def test_rfm_window_limits_frequency_and_monetary_but_not_ltv(tmp_path):
    dates = days_before(AS_OF, 10, 3 * 365 - 1, 3 * 365 + 1)
    ws = workspace_with(tmp_path / "ws", orders=orders_for("C1", dates, 1_000))
    row = scores(ws)["C1"]
    assert (row["frequency"], row["monetary"], row["orders"], row["ltv_revenue"]) == (2, 2_000, 3, 3_000)


@pytest.mark.slow
def test_quintile_scores_over_ten_customers(tmp_path):
    # customer Ck has k orders of ¥1,000 each, the last one k days ago ... so C10 is best on F and M
    orders = []
    for k in range(1, 11):
        orders += orders_for(f"C{k:02}", days_before(AS_OF, *[11 - k + i for i in range(k)]), 1_000)
    ws = workspace_with(tmp_path / "ws", orders=orders)
    rows = scores(ws)
    expected = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4, 9: 5, 10: 5}
    assert {k: rows[f"C{k:02}"]["f_score"] for k in range(1, 11)} == expected
    assert {k: rows[f"C{k:02}"]["m_score"] for k in range(1, 11)} == expected
    assert {k: rows[f"C{k:02}"]["r_score"] for k in range(1, 11)} == expected  # C10 ordered last
    assert rows["C10"]["rfm_segment"] == "champions"
    assert rows["C01"]["rfm_segment"] == "lost"


@pytest.mark.slow
def test_quintile_ties_share_a_score(tmp_path):
    orders = []
    for k in range(1, 6):
        orders += orders_for(f"C{k}", days_before(AS_OF, 5), 1_000)  # all alike
    ws = workspace_with(tmp_path / "ws", orders=orders)
    assert {r["f_score"] for r in scores(ws).values()} == {5}


def _nps(customer: str, score: int, when: str = "2026-06-01") -> dict:
    return {"customer_id": customer, "answered_at": day(when), "score": score}


@pytest.mark.slow
def test_matrix_cells_by_ltv_top_20_percent_and_nps(tmp_path):
    # ten customers: C1 has the most revenue, C10 the least; the top 20 % are C1 and C2
    orders = [o for k in range(1, 11) for o in orders_for(f"C{k:02}", days_before(AS_OF, 5), (11 - k) * 10_000)]
    answers = [_nps("C01", 3), _nps("C02", 8), _nps("C03", 10), _nps("C04", 6), _nps("C05", 7)]
    answers += [_nps("C06", 9, "2025-06-29")]  # older than the 365-day validity: unanswered
    ws = workspace_with(tmp_path / "ws", orders=orders, nps_answers=answers)
    rows = scores(ws)
    cells = {k: rows[k]["matrix_cell"] for k in sorted(rows)}
    assert cells == {
        "C01": "churn_candidate", "C02": "loyal_candidate", "C03": "advocate", "C04": "non_cooperative",
        "C05": "indifferent", "C06": "unanswered_low", "C07": "unanswered_low", "C08": "unanswered_low",
        "C09": "unanswered_low", "C10": "unanswered_low",
    }
    assert [k for k in sorted(rows) if rows[k]["high_ltv"]] == ["C01", "C02"]
    # an absolute threshold replaces the 2:8 rule when set
    by_yen = scores(ws, high_ltv_min_yen=80_000)
    assert [k for k in sorted(by_yen) if by_yen[k]["high_ltv"]] == ["C01", "C02", "C03"]
    assert by_yen["C03"]["matrix_cell"] == "loyal"


def test_latest_answer_wins_and_nps_class_boundaries(tmp_path):
    answers = [_nps("C1", 10, "2026-01-01"), _nps("C1", 6, "2026-05-01"), _nps("C2", 7), _nps("C3", 8),
               _nps("C4", 9)]
    ws = workspace_with(tmp_path / "ws", nps_answers=answers)
    rows = scores(ws)
    assert [(rows[c]["nps_score"], rows[c]["nps_class"]) for c in ("C1", "C2", "C3", "C4")] == [
        (6, "detractor"), (7, "passive"), (8, "passive"), (9, "promoter"),
    ]


@pytest.mark.slow
def test_behavioural_and_psychological_loyalty(tmp_path):
    orders = [o for k in range(1, 6) for o in orders_for(f"C{k}", days_before(AS_OF, 5), (6 - k) * 10_000)]
    ws = workspace_with(tmp_path / "ws", orders=orders, nps_answers=[_nps("C1", 10), _nps("C3", 10)])
    rows = scores(ws)  # five customers: only C1 is in the top 20 %
    assert rows["C1"]["loyalty"] == "loyal"  # high LTV and a promoter
    rows2 = scores(ws, high_ltv_top_share=0.4)  # C1, C2 high
    assert rows2["C2"]["loyalty"] == "good_customer"  # behaviour only: no promoter answer
    assert rows["C3"]["loyalty"] is None  # a promoter who does not buy much is an advocate, not loyal


@pytest.mark.slow
def test_one_step_from_loyal_names_the_missing_dimension(tmp_path):
    def customer(cid, recency, count, total):
        amounts = [total // count] * count
        amounts[0] += total - sum(amounts)
        return orders_for(cid, days_before(AS_OF, *[recency + i for i in range(count)]), amounts)

    orders = (customer("REC", 31, 15, 600_000) + customer("FRQ", 10, 14, 600_000)
              + customer("MON", 10, 15, 499_999) + customer("TWO", 40, 14, 600_000)
              + customer("TOP", 1, 20, 900_000))
    answers = [_nps("TOP", 8)]
    ws = workspace_with(tmp_path / "ws", orders=orders, nps_answers=answers)
    rows = scores(ws)
    assert rows["REC"]["near_loyal_missing"] == "recency"
    assert rows["FRQ"]["near_loyal_missing"] == "frequency"
    assert rows["MON"]["near_loyal_missing"] == "monetary"
    assert rows["TWO"]["near_loyal"] is False  # two conditions short of the loyal rank
    assert (rows["TOP"]["rfm_rank"], rows["TOP"]["near_loyal"]) == ("loyal", False)  # already loyal
    # TOP is in the loyal rank; by the matrix it is a loyal candidate (passive), but loyal already


@pytest.mark.slow
def test_dormant_and_lapsing_boundaries(tmp_path):
    orders = (orders_for("D90", days_before(AS_OF, 90), 1_000) + orders_for("D91", days_before(AS_OF, 91), 1_000)
              + orders_for("L20", days_before(AS_OF, 20, 30, 40), 1_000)   # interval 10, late by 20 = 2x
              + orders_for("L21", days_before(AS_OF, 21, 31, 41), 1_000))  # late by 21 > 2x
    ws = workspace_with(tmp_path / "ws", orders=orders)
    rows = scores(ws)
    assert (rows["D90"]["dormant"], rows["D91"]["dormant"]) == (False, True)
    assert (rows["L20"]["lapsing"], rows["L21"]["lapsing"]) == (False, True)
    assert rows["D91"]["lapsing"] is False  # one order: no interval of its own


@pytest.mark.slow
def test_lost_customers_by_reason_in_priority_order(tmp_path):
    old = days_before(AS_OF, 200)
    orders = sum((orders_for(c, old, 5_000) for c in ("UNR", "SIT", "BOTH", "DRIFT", "STALE")), [])
    orders += orders_for("CANC", days_before(AS_OF, 3), 5_000)
    contacts = [
        {"contact_id": "T1", "customer_id": "UNR", "opened_at": day(old[0]), "channel": "phone", "status": "open"},
        {"contact_id": "T2", "customer_id": "BOTH", "opened_at": day(old[0]), "channel": "chat",
         "status": "resolved", "resolved_at": day(old[0]), "is_complaint": True},
        # resolved and long before the 180-day look-back from the last order: no signal
        {"contact_id": "T3", "customer_id": "STALE", "opened_at": day("2025-06-01"), "channel": "phone",
         "status": "open"},
    ]
    events = [
        {"customer_id": "SIT", "occurred_at": day(days_before(AS_OF, 150)[0]), "kind": "moved"},
        {"customer_id": "BOTH", "occurred_at": day(days_before(AS_OF, 150)[0]), "kind": "married"},
        {"customer_id": "CANC", "occurred_at": day("2024-01-01"), "kind": "subscription_start"},
        {"customer_id": "CANC", "occurred_at": day(days_before(AS_OF, 1)[0]), "kind": "cancellation"},
    ]
    ws = workspace_with(tmp_path / "ws", orders=orders, support_contacts=contacts, events=events)
    rows = scores(ws)
    assert {c: rows[c]["lost_reason"] for c in sorted(rows)} == {
        "BOTH": "unresolved", "CANC": "drifted", "DRIFT": "drifted", "SIT": "situation_changed",
        "STALE": "drifted", "UNR": "unresolved",
    }
    assert rows["CANC"]["lost"] is True and rows["CANC"]["dormant"] is False


@pytest.mark.slow
def test_as_of_reproduces_the_past(tmp_path):
    orders = orders_for("C1", ["2026-01-10", "2026-03-10", "2026-06-10"], 10_000)
    ws = workspace_with(tmp_path / "ws", orders=orders, nps_answers=[_nps("C1", 2, "2026-06-20")])
    past = scores(ws, "2026-03-31")["C1"]
    assert (past["orders"], past["ltv_revenue"], past["recency_days"], past["nps_class"]) == (2, 20_000, 21, None)


@pytest.mark.slow
def test_cut_value_scores_equal_rank_quintiles_with_many_ties(tmp_path):
    # customer_scores scores R, F, M and high LTV against a few cut values instead of ranking
    # every customer: the result must be the rank-based definition (`quintile`), ties included
    rng = random.Random(3)
    orders = []
    for k in range(203):
        n = rng.choice([1, 1, 1, 2, 3, 5, 8])
        dates = days_before(AS_OF, *rng.sample(range(1, 60), n))
        orders += orders_for(f"C{k:03}", dates, [rng.choice([1_000, 2_000, 5_000]) for _ in dates])
    ws = workspace_with(tmp_path / "ws", orders=orders)
    s = order_summary(ws.tables()["orders"], AsOf(dt.date.fromisoformat(AS_OF)), ws.settings.analysis.rfm_window_days)
    n = s.count().over()
    expected = s.select(
        "customer_id",
        r_score=quintile(s.last_order_at.date().epoch_days(), n),
        f_score=quintile(s.frequency, n),
        m_score=quintile(s.monetary, n),
        high_ltv=ibis.rank().over(order_by=ibis.desc(s.revenue)) < (n * 0.2).ceil(),
    ).to_pyarrow().to_pylist()
    rows = scores(ws)
    assert len(expected) == 203
    for e in expected:
        row = rows[e["customer_id"]]
        assert {k: row[k] for k in e} == e
    assert {r["r_score"] for r in rows.values()} == {1, 2, 3, 4, 5}
