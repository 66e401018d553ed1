"""Lifecycle states (docs/measures.md#lifecycle-state) on a small hand-made business, with the
expected state of every customer worked out by hand; the same on PostgreSQL and Spark."""

from __future__ import annotations

import datetime as dt

import pytest

from kizuna.analytics import LIFECYCLE_STATES, lifecycle_states
from kizuna.i18n import label
from kizuna.store import Store, copy_store
from kizuna.workspace import Workspace

from factories import day, days_before, orders_for, workspace_with

AS_OF = "2026-06-30"
D = dt.date.fromisoformat(AS_OF)


def _at(offset: int, hour: int = 12) -> dt.datetime:
    return day(days_before(AS_OF, offset)[0], hour)


def _event(customer: str, offset: int, kind: str, hour: int = 12) -> dict:
    return {"customer_id": customer, "occurred_at": _at(offset, hour), "kind": kind}


# [analysis] defaults: dormant 90 days, lapse factor 2.0, NPS valid 365 days
EXPECTED = {
    # interval 30, 10 days since the last order
    "A-active": ("active", None, None),
    # interval 20, 40 days since: late (40 > 20) but not by more than 2 × 20
    "B-overdue": ("at_risk", None, None),
    # one order 20 days ago, a complaint still open
    "C-complaint": ("at_risk", None, None),
    # interval 30, 20 days since, latest answer 3 (detractor) 5 days ago
    "D-detractor": ("at_risk", None, None),
    # interval 20, 70 days since: 70 > 2 × 20, not yet 90
    "E-lapsed": ("lapsed", None, None),
    # one order 200 days ago: lost since the 91st day after it
    "F-lost": ("lost", None, D - dt.timedelta(days=200) + dt.timedelta(days=91)),
    # subscribed 300 days ago, last order 30 days ago, cancelled 20 days ago: gone
    "G-cancelled": ("subscription_cancelled", D - dt.timedelta(days=20), D - dt.timedelta(days=20)),
    # cancelled 100 days ago, subscribed again 50 days ago, interval 30, 10 days since: active
    "H-resumed": ("active", None, None),
    # cancelled 60 days ago, ordered 30 days ago (after it): the orders decide; interval 60 → active
    "I-ordered-since": ("active", D - dt.timedelta(days=60), None),
    # cancelled on the day of the last order (later that day): no order on a day after it
    "M-same-day": ("subscription_cancelled", D - dt.timedelta(days=30), D - dt.timedelta(days=30)),
    # a complaint resolved before the as-of date, and a detractor answer 400 days old: active
    "K-resolved-old-answer": ("active", None, None),
    # cancelled five days after the as-of date: not seen yet
    "N-later": ("active", None, None),
    # buys every 120 days, 100 days since: not lost at 91 days (lost after 2 × 120)
    "O-long-cycle": ("active", None, None),
    # every 120 days, 170 days since: late, not lost yet
    "P-long-late": ("at_risk", None, None),
    # every 120 days, 250 days since: lost since the 241st day after the last order
    "Q-long-lost": ("lost", None, D - dt.timedelta(days=250) + dt.timedelta(days=241)),
    # signed up, never ordered: no state
    "J-no-order": (None, None, None),
}


def business(path):
    orders = (
        orders_for("A-active", days_before(AS_OF, 70, 40, 10), 5000)
        + orders_for("B-overdue", days_before(AS_OF, 100, 80, 60, 40), 3000)
        + orders_for("C-complaint", days_before(AS_OF, 20), 8000)
        + orders_for("D-detractor", days_before(AS_OF, 50, 20), 4000)
        + orders_for("E-lapsed", days_before(AS_OF, 130, 110, 90, 70), 3000)
        + orders_for("F-lost", days_before(AS_OF, 200), 9000)
        + orders_for("G-cancelled", days_before(AS_OF, 90, 60, 30), 4000)
        + orders_for("H-resumed", days_before(AS_OF, 40, 10), 4000)
        + orders_for("I-ordered-since", days_before(AS_OF, 90, 30), 4000)
        + [{"order_id": "M-0", "customer_id": "M-same-day", "ordered_at": _at(60), "amount": 4000},
           {"order_id": "M-1", "customer_id": "M-same-day", "ordered_at": _at(30, 9), "amount": 4000}]
        + orders_for("K-resolved-old-answer", days_before(AS_OF, 40, 10), 4000)
        + orders_for("N-later", days_before(AS_OF, 40, 10), 4000)
        + orders_for("O-long-cycle", days_before(AS_OF, 460, 340, 220, 100), 6000)
        + orders_for("P-long-late", days_before(AS_OF, 530, 410, 290, 170), 6000)
        + orders_for("Q-long-lost", days_before(AS_OF, 610, 490, 370, 250), 6000)
        # an order cancelled by the shop does not count
        + orders_for("A-active", days_before(AS_OF, 1), 5000, status="cancelled", order_id="A-cancelled")
    )
    events = [
        _event("G-cancelled", 300, "subscription_start"), _event("G-cancelled", 20, "cancellation"),
        _event("H-resumed", 300, "subscription_start"), _event("H-resumed", 100, "cancellation"),
        _event("H-resumed", 50, "subscription_start"),
        _event("I-ordered-since", 300, "subscription_start"), _event("I-ordered-since", 60, "cancellation"),
        _event("M-same-day", 200, "subscription_start"), _event("M-same-day", 30, "cancellation", hour=18),
        _event("N-later", 200, "subscription_start"), _event("N-later", -5, "cancellation"),
    ]
    contacts = [
        {"contact_id": "c1", "customer_id": "C-complaint", "opened_at": _at(15), "channel": "phone",
         "status": "open", "is_complaint": True},
        {"contact_id": "c2", "customer_id": "K-resolved-old-answer", "opened_at": _at(30), "channel": "phone",
         "status": "resolved", "resolved_at": _at(29), "is_complaint": True},
    ]
    answers = [
        {"customer_id": "D-detractor", "answered_at": _at(5), "score": 3},
        {"customer_id": "K-resolved-old-answer", "answered_at": _at(400), "score": 2},
    ]
    return workspace_with(path, customers=[{"customer_id": "J-no-order", "signed_up_at": _at(100)}],
                          orders=orders, events=events, support_contacts=contacts, nps_answers=answers)


def states_of(tables) -> dict[str, tuple]:
    rows = lifecycle_states(tables, D).to_pyarrow().to_pylist()
    return {r["customer_id"]: (r["lifecycle_state"], r["cancelled_on"], r["lost_since"]) for r in rows}


@pytest.fixture
def ws(tmp_path):
    with business(tmp_path / "ws") as workspace:
        yield workspace


def test_every_state_as_worked_out_by_hand(ws):
    found = states_of(ws.tables())
    assert found == EXPECTED
    assert {s for s, _, _ in found.values() if s} == set(LIFECYCLE_STATES)


def test_the_state_follows_the_day(ws):
    # 30 days earlier G had not cancelled yet (its order of that day makes it active), and F's
    # order was 170 days old: still lost
    earlier = {k: v[0] for k, v in
               {r["customer_id"]: (r["lifecycle_state"],) for r in
                lifecycle_states(ws.tables(), D - dt.timedelta(days=30)).to_pyarrow().to_pylist()}.items()}
    assert earlier["G-cancelled"] == "active" and earlier["F-lost"] == "lost"
    assert earlier["M-same-day"] == "subscription_cancelled"


def test_state_labels_in_both_languages():
    for state in LIFECYCLE_STATES:
        assert label(f"lifecycle_{state}", "ja") and label(f"lifecycle_{state}", "en")
    assert label("lifecycle_subscription_cancelled", "ja") == "定期解約済み"


@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres),
                                    pytest.param("spark", marks=pytest.mark.spark)])
def test_the_same_states_on_postgres_and_spark(ws, engine, request):
    if engine == "postgres":
        store = Store.connect(request.getfixturevalue("postgres_database"))
    else:
        store = request.getfixturevalue("spark_store")
    try:
        copy_store(ws.store, store)
        assert states_of(Workspace(ws.path, ws.settings, store).tables()) == EXPECTED
    finally:
        if engine == "postgres":
            store.close()
