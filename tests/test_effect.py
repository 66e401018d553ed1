"""Measuring effect (docs/measures.md §5): Newcombe's interval on published values, sample sizes, simulated coverage,
and goal conversions counted in the store."""

from __future__ import annotations

import datetime as dt
import statistics

import ibis
import numpy as np
import pyarrow as pa
import pytest

from kizuna.scenarios._effect import (
    Counts,
    goal_conversions,
    local_wall_clock,
    measure,
    newcombe_interval,
    sample_size_per_group,
    wilson_interval,
)
from kizuna.store import Store, copy_store
from kizuna.workspace import Workspace

from factories import day, workspace_with

# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 ("score, no CC"), the
# paper's eight examples. Cross-checked with the tabulation of that table in DeepPSP/DBCI
# (test/test-data/newcombee.csv, row "wilson") and, for (a) and (b), with the tests of the R
# package m-Py/propint (tests/testthat/test_Two_Independent_Props_CI.R).
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "published"), NEWCOMBE_TABLE_II, ids=[f"{a}/{b}-{c}/{d}" for (a, b, c, d), _
                                                                           in NEWCOMBE_TABLE_II])
def test_newcombe_interval_reproduces_the_papers_table(counts, published):
    difference, low, high = newcombe_interval(*counts)
    x1, n1, x2, n2 = counts
    assert difference == pytest.approx(x1 / n1 - x2 / n2, abs=1e-15)
    assert (low, high) == pytest.approx(published, abs=5e-5)  # printed to 4 decimals


def test_wilson_interval_reproduces_the_single_proportion_paper():
    # Newcombe (1998), Statistics in Medicine 17:857-872, the worked examples (method 3), as in m-Py/propint
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=5e-5))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=5e-5), 1.0)


def test_the_interval_is_symmetric_in_the_groups_and_narrower_at_lower_confidence():
    d, low, high = newcombe_interval(56, 70, 48, 80)
    assert newcombe_interval(48, 80, 56, 70) == pytest.approx((-d, -high, -low))
    _, low90, high90 = newcombe_interval(56, 70, 48, 80, confidence=0.90)
    assert low < low90 < d < high90 < high


def test_edge_cases_of_the_interval():
    assert newcombe_interval(0, 0, 3, 10) is None  # nobody treated: no interval
    assert newcombe_interval(3, 10, 0, 0) is None
    assert wilson_interval(0, 0) is None
    for counts in ((0, 50, 50, 50), (50, 50, 0, 50), (0, 1, 1, 1)):
        d, low, high = newcombe_interval(*counts)
        assert -1 <= low <= d <= high <= 1
    assert newcombe_interval(0, 50, 50, 50)[0] == -1.0
    for bad in ((11, 10, 0, 10), (-1, 10, 0, 10), (0, 10, 0, -1)):
        with pytest.raises(ValueError, match="counts"):
            newcombe_interval(*bad)
    with pytest.raises(ValueError, match="confidence"):
        newcombe_interval(1, 10, 1, 10, confidence=1.0)


def test_sample_size_by_hand():
    # Fleiss, Levin & Paik (2003) eq. 4.14 without continuity correction, p1 = 0.10, p2 = 0.12:
    # p̄ = 0.11, √(2 × 0.11 × 0.89) = 0.442493, √(0.10 × 0.90 + 0.12 × 0.88) = 0.442267,
    # z(0.975) = 1.959964, z(0.80) = 0.841621:
    # (1.959964 × 0.442493 + 0.841621 × 0.442267)² / 0.02² = (0.867271 + 0.372221)² / 0.0004 = 3840.9 → 3841
    assert sample_size_per_group(0.10, 0.02) == 3841
    assert sample_size_per_group(0.10, 0.03) < sample_size_per_group(0.10, 0.02)
    assert sample_size_per_group(0.10, 0.02, power=0.9) > 3841
    assert sample_size_per_group(0.99, 0.02) == sample_size_per_group(0.97, 0.02)  # 0.99 + 0.02 would pass 1
    with pytest.raises(ValueError, match="min_effect"):
        sample_size_per_group(0.1, 0.0)


def test_measure_by_hand():
    effect = measure(Counts(3000, 390, orders=500, revenue=1_000_000), Counts(1500, 150, orders=225, revenue=450_000),
                     min_effect=0.02)
    assert effect.uplift == pytest.approx(0.13 - 0.10)
    assert (effect.low, effect.high) == pytest.approx(newcombe_interval(390, 3000, 150, 1500)[1:])
    assert effect.enough_data is True and effect.low > 0
    assert effect.needed_per_group == 3841  # at the control group's 10 %
    # 3000 treated × (500 / 3000 − 225 / 1500) orders; × (1,000,000 / 3000 − 450,000 / 1500) yen
    assert (effect.incremental_orders, effect.incremental_revenue) == (50.0, 100_000.0)
    assert (effect.treated_rate, effect.control_rate) == (0.13, 0.10)


def test_measure_without_enough_data():
    effect = measure(Counts(50, 6), Counts(50, 4), min_effect=0.03)
    assert effect.low < 0 < effect.high
    assert effect.enough_data is False
    assert effect.needed_per_group == sample_size_per_group(0.08, 0.03)
    assert (effect.incremental_orders, effect.incremental_revenue) == (0.0, 0.0)
    empty = measure(Counts(40, 4), Counts(0, 0), min_effect=0.03)
    assert (empty.uplift, empty.low, empty.high, empty.enough_data) == (None, None, None, False)
    assert empty.needed_per_group == sample_size_per_group(0.10, 0.03)  # the treated rate stands in
    assert empty.incremental_orders is None
    assert measure(Counts(0, 0), Counts(0, 0), 0.03).needed_per_group is None


def _simulate(n: int, repetitions: int, seed: int, p_control=0.10, p_treated=0.13, min_effect=0.03):
    rng = np.random.default_rng(seed)
    treated = rng.binomial(n, p_treated, repetitions)
    control = rng.binomial(n, p_control, repetitions)
    return [measure(Counts(n, int(t)), Counts(n, int(c)), min_effect) for t, c in zip(treated, control, strict=True)]


def test_the_interval_covers_the_true_uplift_95_percent_of_the_time():
    effects = _simulate(3000, 200, seed=20261130)
    coverage = sum(e.low <= 0.03 <= e.high for e in effects) / len(effects)
    assert 0.92 <= coverage <= 0.98, coverage
    # 3000 per group is well above the 1,774 needed for 0.03 at 80 % power: nearly always enough data
    assert sum(e.enough_data for e in effects) / len(effects) >= 0.85


def test_fifty_per_group_is_not_enough_data_and_says_how_many_are_needed():
    needed = sample_size_per_group(0.10, 0.03)
    assert needed == 1774
    first = _simulate(50, 1, seed=7)[0]
    assert first.enough_data is False
    assert first.needed_per_group == sample_size_per_group(first.control.rate, 0.03)
    effects = _simulate(50, 200, seed=8)
    assert sum(not e.enough_data for e in effects) / len(effects) >= 0.85
    # the control rate at n = 50 is noisy, but its median is the true 10 %
    median = statistics.median(e.needed_per_group for e in effects)
    assert abs(median - needed) / needed <= 0.1, median


# -- goal conversions in the store ------------------------------------------------------------------

def _enrol(scenario, group, customer, when, step="mail1"):
    return {"scenario": scenario, "step": step, "customer_id": customer, "occasion_at": when, "group": group}


ENROLMENTS = [
    _enrol("s1", "treated", "T1", day("2026-06-01", 10)),
    _enrol("s1", "treated", "T1", day("2026-06-03", 10)),  # a second occasion: still one customer
    _enrol("s1", "treated", "T2", day("2026-06-01", 10)),
    _enrol("s1", "treated", "T3", day("2026-06-10", 12)),
    _enrol("s1", "holdout", "H1", day("2026-06-01", 10)),
    _enrol("s1", "holdout", "H2", day("2026-06-01", 10)),
    _enrol("s2", "global_control", "G1", day("2026-06-01", 10), step="line1"),
]

ORDERS = [
    {"order_id": "t1-a", "customer_id": "T1", "ordered_at": day("2026-06-01", 10), "amount": 9_000},  # at the occasion
    {"order_id": "t1-b", "customer_id": "T1", "ordered_at": day("2026-06-05"), "amount": 3_000},  # in both windows
    {"order_id": "t1-c", "customer_id": "T1", "ordered_at": day("2026-07-03", 11), "amount": 9_000},  # 1 h late
    {"order_id": "t2-a", "customer_id": "T2", "ordered_at": day("2026-06-02"), "amount": 9_000, "status": "cancelled"},
    {"order_id": "t2-b", "customer_id": "T2", "ordered_at": day("2026-06-20"), "amount": 9_000, "status": "returned"},
    {"order_id": "t3-a", "customer_id": "T3", "ordered_at": day("2026-07-10", 12), "amount": 2_000},  # window's end
    {"order_id": "h1-a", "customer_id": "H1", "ordered_at": day("2026-06-15"), "amount": 1_000},
    {"order_id": "h1-b", "customer_id": "H1", "ordered_at": day("2026-06-16"), "amount": 500},
    {"order_id": "x-a", "customer_id": "X", "ordered_at": day("2026-06-15"), "amount": 7_000},  # not enrolled
]

EVENTS = [
    {"customer_id": "T2", "occurred_at": day("2026-06-15"), "kind": "cancellation"},
    {"customer_id": "H2", "occurred_at": day("2026-07-20"), "kind": "cancellation"},  # after H2's window
    {"customer_id": "T3", "occurred_at": day("2026-06-11"), "kind": "referral"},
    {"customer_id": "G1", "occurred_at": day("2026-06-20"), "kind": "referral"},
]

NPS = [{"customer_id": "H1", "answered_at": day("2026-06-02"), "score": 9}]

WINDOW = 30

# (scenario, step, group) -> customers, converted, orders, revenue; orders and revenue are the same for every goal:
# T1's t1-b (in both of T1's windows, counted once) and T3's t3-a; H1's two orders
SPENDING = {"s1/treated": (2, 5_000), "s1/holdout": (2, 1_500), "s2/global_control": (0, 0)}
EXPECTED = {
    "order": {"s1/treated": (3, 2), "s1/holdout": (2, 1), "s2/global_control": (1, 0)},
    "stays_subscribed": {"s1/treated": (3, 2), "s1/holdout": (2, 2), "s2/global_control": (1, 1)},
    "referral": {"s1/treated": (3, 1), "s1/holdout": (2, 0), "s2/global_control": (1, 1)},
    "nps_answer": {"s1/treated": (3, 0), "s1/holdout": (2, 1), "s2/global_control": (1, 0)},
}


@pytest.fixture
def goal_ws(tmp_path):
    ws = workspace_with(tmp_path / "ws", orders=ORDERS, events=EVENTS, nps_answers=NPS)
    yield ws
    ws.close()


def _enrolment_table(rows=ENROLMENTS, *, step=True) -> pa.Table:
    table = pa.Table.from_pylist(rows)
    return table if step else table.drop_columns(["step"])


def _results(table: ibis.Table) -> dict[str, tuple]:
    return {f"{r['scenario']}/{r['group']}": (r["customers"], r["converted"], r["orders"], r["revenue"])
            for r in table.to_pyarrow().to_pylist()}


@pytest.mark.parametrize("goal", list(EXPECTED))
def test_goal_conversions_by_hand(goal_ws, goal):
    result = goal_conversions(ibis.memtable(_enrolment_table(step=False)), goal_ws.tables(), goal, WINDOW)
    assert result.columns == ("scenario", "group", "customers", "converted", "orders", "revenue")
    expected = {key: (*counts, *SPENDING[key]) for key, counts in EXPECTED[goal].items()}
    assert _results(result) == expected


def test_goal_conversions_per_step(goal_ws):
    rows = [*ENROLMENTS, _enrol("s1", "treated", "T2", day("2026-06-01", 10), step="mail2")]
    result = goal_conversions(_enrolment_table(rows), goal_ws.tables(), "stays_subscribed", WINDOW)
    got = {(r["scenario"], r["step"], r["group"]): (r["customers"], r["converted"])
           for r in result.to_pyarrow().to_pylist()}
    assert got == {("s1", "mail1", "treated"): (3, 2), ("s1", "mail2", "treated"): (1, 0),
                   ("s1", "mail1", "holdout"): (2, 2), ("s2", "line1", "global_control"): (1, 1)}


def test_goal_conversions_as_of_a_date_do_not_see_later_orders(goal_ws):
    result = goal_conversions(_enrolment_table(step=False), goal_ws.tables(), "order", WINDOW,
                              as_of=dt.date(2026, 7, 9))
    assert _results(result)["s1/treated"] == (3, 1, 1, 3_000)  # T3's order on 2026-07-10 is not seen yet


def test_timezone_aware_occasions_are_compared_in_local_time(goal_ws):
    utc = [{**r, "occasion_at": (r["occasion_at"] - dt.timedelta(hours=9)).replace(tzinfo=dt.UTC)}
           for r in ENROLMENTS]
    aware = pa.Table.from_pylist(utc)
    assert aware.schema.field("occasion_at").type.tz == "UTC"
    local = local_wall_clock(aware, "occasion_at", "Asia/Tokyo")
    assert local.column("occasion_at").to_pylist() == [r["occasion_at"] for r in ENROLMENTS]
    expected = _results(goal_conversions(_enrolment_table(), goal_ws.tables(), "order", WINDOW))
    assert _results(goal_conversions(aware.drop_columns(["step"]), goal_ws.tables(), "order", WINDOW)) == expected
    with pytest.raises(ValueError, match="local_wall_clock"):
        goal_conversions(ibis.memtable(aware), goal_ws.tables(), "order", WINDOW)


def test_goal_conversions_reject_unknown_goals(goal_ws):
    with pytest.raises(ValueError, match="stays_subscribed"):
        goal_conversions(_enrolment_table(), goal_ws.tables(), "purchase", WINDOW)


def test_results_feed_measure(goal_ws):
    rows = {r["group"]: Counts.from_row(r) for r in
            goal_conversions(_enrolment_table(), goal_ws.tables(), "order", WINDOW).to_pyarrow().to_pylist()
            if r["scenario"] == "s1"}
    effect = measure(rows["treated"], rows["holdout"], min_effect=0.02)
    assert effect.uplift == pytest.approx(2 / 3 - 1 / 2)
    assert effect.enough_data is False
    # 3 treated × (2 / 3 − 2 / 2) orders, × (5,000 / 3 − 1,500 / 2) yen
    assert effect.incremental_orders == pytest.approx(-1.0)
    assert effect.incremental_revenue == pytest.approx(2_750.0)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow])])
def other_store(request):
    """An empty store on PostgreSQL, then on Spark."""
    if request.param == "spark":
        yield request.getfixturevalue("spark_store")
        return
    store = Store.connect(request.getfixturevalue("postgres_database"))
    yield store
    store.close()


def test_the_same_goal_conversions_on_other_engines(goal_ws, other_store):
    copy_store(goal_ws.store, other_store)
    other = Workspace(goal_ws.path, goal_ws.settings, other_store)
    for goal in EXPECTED:
        want = goal_conversions(_enrolment_table(), goal_ws.tables(), goal, WINDOW).to_pyarrow().to_pylist()
        got = goal_conversions(_enrolment_table(), other.tables(), goal, WINDOW).to_pyarrow().to_pylist()
        assert got == want, goal
    as_of = dt.date(2026, 7, 9)
    want = goal_conversions(_enrolment_table(), goal_ws.tables(), "order", WINDOW, as_of=as_of).to_pyarrow()
    got = goal_conversions(_enrolment_table(), other.tables(), "order", WINDOW, as_of=as_of).to_pyarrow()
    assert got.to_pylist() == want.to_pylist()
