"""The call lists (docs/measures.md#call-list): capacity, phone only, cooldown, callbacks, the
follow-up window, the win-back list's reasons and actions — on a hand-made business whose lists
are worked out by hand; the same lists on PostgreSQL and Spark; and `kizuna run`'s call lists
under the same rules."""

from __future__ import annotations

import datetime as dt
import shutil

import pyarrow as pa
import pytest

from kizuna.prediction import PREDICTION_COLUMNS, CallRules, call_blocker, call_lists, fresh_answer
from kizuna.store import Store, copy_store
from kizuna.workspace import Workspace

from factories import day, days_before, orders_for, workspace_with

AS_OF = "2026-06-30"
D = dt.date.fromisoformat(AS_OF)
RULES = CallRules(capacity=3, cooldown_days=14, follow_up_days=7)


def _at(offset: int, hour: int = 12) -> dt.datetime:
    return day(days_before(AS_OF, offset)[0], hour)


# customer -> (lifecycle state, value at risk, phone)
KEEP = {
    "k1": ("active", 900.0, "03-0000-0001"),   # fresh detractor answer (3 days): 48-hour follow-up
    "k2": ("at_risk", 800.0, None),            # no phone: the e-mail / DM list
    "k3": ("at_risk", 700.0, "03-0000-0003"),  # called 5 days ago: cooldown
    "k4": ("active", 600.0, "03-0000-0004"),   # called 20 days ago: callable; detractor answer 30 days old
    "k5": ("active", 500.0, "03-0000-0005"),   # called 3 days ago, asked to be called back yesterday
    "k6": ("active", 400.0, "03-0000-0006"),   # the fourth with a phone: over the capacity of 3
    "k9": ("at_risk", 450.0, " "),             # blank phone, ranked after the list is full: on neither
    "k7": ("lapsed", 5000.0, "03-0000-0007"),  # lapsed: on neither list
}
# lost customers: (state, lost since (days before), phone); reasons come from their data
LOST = {
    "w1": ("subscription_cancelled", 20, "03-1000-0001"),  # no signal: drifted → reminder, ¥30,000
    "w2": ("lost", 99, "03-1000-0002"),                   # moved: situation changed → new offer, ¥40,000
    "w3": ("lost", 309, "03-1000-0003"),                  # lost too long ago (> 180 days): not listed
    "w4": ("lost", 59, "03-1000-0004"),                   # complaint: unresolved → hearing call, ¥50,000
}


def _predictions() -> pa.Table:
    rows = []
    for cid, (state, var, _) in KEEP.items():
        rows.append({"customer_id": cid, "lifecycle_state": state, "value_at_risk": var, "churn_risk": 0.5,
                     "clv": 2 * var})
    for cid, (state, since, _) in LOST.items():
        rows.append({"customer_id": cid, "lifecycle_state": state, "value_at_risk": 0.0, "churn_risk": 1.0,
                     "lost_since": D - dt.timedelta(days=since), "clv": 0.0})
    types = {"customer_id": pa.string(), "as_of": pa.date32(), "horizon_days": pa.int64(),
             "expected_next_order_on": pa.date32(), "churn_reasons_ja": pa.string(), "churn_reasons_en": pa.string(),
             "open_contacts": pa.int64(), "days_since_life_event": pa.int64(), "lifecycle_state": pa.string(),
             "lost_since": pa.date32()}
    return pa.table({c: pa.array([r.get(c, D if c == "as_of" else None) for r in rows], types.get(c, pa.float64()))
                     for c in PREDICTION_COLUMNS})


def business(path) -> Workspace:
    customers = [{"customer_id": cid, "phone": phone} for cid, (_, _, phone) in {**KEEP, **LOST}.items()]
    orders = (orders_for("k1", days_before(AS_OF, 40, 10), 5000)
              + orders_for("w1", days_before(AS_OF, 90, 60, 30), 10000)
              + orders_for("w2", days_before(AS_OF, 250, 190), 20000)
              + orders_for("w3", days_before(AS_OF, 400), 90000)
              + orders_for("w4", days_before(AS_OF, 150), 50000))
    events = [{"customer_id": "w1", "occurred_at": _at(300), "kind": "subscription_start"},
              {"customer_id": "w1", "occurred_at": _at(20), "kind": "cancellation"},
              {"customer_id": "w2", "occurred_at": _at(200), "kind": "moved"}]
    contacts = [{"contact_id": "c4", "customer_id": "w4", "opened_at": _at(160), "channel": "phone",
                 "status": "open", "is_complaint": True}]
    answers = [{"customer_id": "k1", "answered_at": _at(3), "score": 2},
               {"customer_id": "k4", "answered_at": _at(30), "score": 1}]
    calls = [{"customer_id": "k3", "called_at": _at(5), "outcome": "no_answer"},
             {"customer_id": "k4", "called_at": _at(20), "outcome": "reached"},
             {"customer_id": "k5", "called_at": _at(3), "outcome": "callback", "next_call_at": _at(1)},
             {"customer_id": "k6", "called_at": _at(-2), "outcome": "reached"}]  # after the as-of date
    ws = workspace_with(path, customers=customers, orders=orders, events=events, support_contacts=contacts,
                        nps_answers=answers, calls=calls)
    ws.analyze(D)
    ws.store.create("customer_predictions", _predictions())
    return ws


def lists_of(ws: Workspace, kind: str, rules: CallRules = RULES):
    tables = ws.tables()
    return call_lists(ws.store.table("customer_predictions"), tables["customers"], ws.scores(), as_of=D, kind=kind,
                      rules=rules, calls=tables["calls"], winback_days=180)


def _rows(table: pa.Table) -> list[tuple[str, str]]:
    return [(r["customer_id"], r["suggested_action"]) for r in table.to_pylist()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """The business, analysed once for the module: each test opens a copy of its folder."""
    path = tmp_path_factory.mktemp("call-lists") / "ws"
    with business(path):
        pass
    return path


@pytest.fixture
def ws(built, tmp_path):
    shutil.copytree(built, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as workspace:
        yield workspace


@pytest.mark.slow
def test_keep_list_capacity_phone_cooldown_callback_and_follow_up(ws):
    listed = lists_of(ws, "keep")
    # k1 (fresh detractor), k2 no phone → mail, k3 cooled down, k4 (old detractor answer → hearing call),
    # k5 (callback due): three calls, the capacity; k6 and k9 after it; k7 is lapsed. Churn risk 0.5
    # without another signal: a reminder
    assert _rows(listed.calls) == [("k1", "detractor_follow_up"), ("k4", "hearing_call"), ("k5", "reminder")]
    assert _rows(listed.mail) == [("k2", "reminder")]
    summary = listed.summary()
    assert (summary["candidates"], summary["cooled_down"], summary["calls"], summary["mail"]) == (7, 1, 3, 1)
    assert summary["ranking"] == "value_at_risk"


@pytest.mark.slow
def test_no_cooldown_and_a_larger_capacity(ws):
    listed = lists_of(ws, "keep", CallRules(capacity=10, cooldown_days=0, follow_up_days=7))
    assert [r for r, _ in _rows(listed.calls)] == ["k1", "k3", "k4", "k5", "k6"]
    assert [r for r, _ in _rows(listed.mail)] == ["k2", "k9"] and listed.cooled_down == 0


@pytest.mark.slow
def test_the_follow_up_window(ws):
    wide = lists_of(ws, "keep", CallRules(capacity=3, cooldown_days=14, follow_up_days=30))
    assert _rows(wide.calls)[:2] == [("k1", "detractor_follow_up"), ("k4", "detractor_follow_up")]
    narrow = lists_of(ws, "keep", CallRules(capacity=3, cooldown_days=14, follow_up_days=2))
    assert _rows(narrow.calls)[0] == ("k1", "hearing_call")  # answered 3 days ago: too late for 48 hours
    assert fresh_answer(_at(7), D, 7) and not fresh_answer(_at(8), D, 7)


@pytest.mark.slow
def test_winback_list_by_value_with_the_reasons_action(ws):
    listed = lists_of(ws, "winback")
    # taken by value (w4 ¥50,000, w2 ¥40,000, w1 ¥30,000), shown by reason: 疎遠, 状況変化, 課題未解決
    assert _rows(listed.calls) == [("w1", "reminder"), ("w2", "new_offer"), ("w4", "hearing_call")]
    assert [r["lost_reason"] for r in listed.calls.to_pylist()] == ["drifted", "situation_changed", "unresolved"]
    assert listed.summary()["candidates"] == 3 and listed.ranking == "ltv_revenue"


def test_the_rule_kizuna_run_uses():
    rules = CallRules(capacity=5, cooldown_days=14)
    assert call_blocker({"phone": ""}, D, rules) == "no telephone number"
    assert call_blocker({"phone": "03", "last_called_at": _at(13)}, D, rules).startswith("called on")
    assert call_blocker({"phone": "03", "last_called_at": _at(14)}, D, rules) is None
    assert call_blocker({"phone": "03", "last_called_at": _at(2), "callback_due": True}, D, rules) is None


@pytest.mark.slow
def test_without_a_calls_table_nobody_is_cooled_down(ws):
    tables = ws.tables()
    listed = call_lists(ws.store.table("customer_predictions"), tables["customers"], ws.scores(), as_of=D,
                        kind="keep", rules=RULES, calls=None)
    assert [r for r, _ in _rows(listed.calls)] == ["k1", "k3", "k4"] and listed.cooled_down == 0


@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres),
                                    pytest.param("spark", marks=pytest.mark.spark)])
def test_the_same_lists_on_postgres_and_spark(ws, engine, request):
    expected = {kind: (_rows(lists_of(ws, kind).calls), _rows(lists_of(ws, kind).mail)) for kind in ("keep", "winback")}
    if engine == "postgres":
        store = Store.connect(request.getfixturevalue("postgres_database"))
    else:
        store = request.getfixturevalue("spark_store")
    try:
        copy_store(ws.store, store)
        other = Workspace(ws.path, ws.settings, store)  # the canonical tables: analysed and predicted there
        other.analyze(D)
        store.create("customer_predictions", _predictions())
        for kind in ("keep", "winback"):
            found = lists_of(other, kind)
            assert (_rows(found.calls), _rows(found.mail)) == expected[kind], (engine, kind)
    finally:
        if engine == "postgres":
            store.close()


def test_kizuna_run_writes_call_lists_under_the_same_rules(tmp_path):
    """A call step for five customers who ordered on 28 November: P5 has no phone, P2 was called 5 days
    before (cooldown 14), P4 was called 3 days before but asked for a callback on the 29th; with a
    capacity of 2 the run calls P1 and P3 (by value at risk: none stored, so by customer id) and
    defers P4 to the next day."""
    import textwrap
    import zoneinfo

    from kizuna.workspace import Settings

    ordered = day("2026-11-28", 15)
    ws = workspace_with(
        tmp_path / "shop",
        customers=[{"customer_id": f"P{n}", "name": f"客{n}", "phone": None if n == 5 else f"03-0000-000{n}"}
                   for n in range(1, 6)],
        orders=[{"order_id": f"O{n}", "customer_id": f"P{n}", "ordered_at": ordered, "amount": 1000}
                for n in range(1, 6)],
        calls=[{"customer_id": "P2", "called_at": day("2026-11-25", 10), "outcome": "reached"},
               {"customer_id": "P4", "called_at": day("2026-11-27", 10), "outcome": "callback",
                "next_call_at": day("2026-11-29", 10)}],
    )
    folder = ws.path / "scenarios"
    for old in folder.glob("*.yaml"):
        old.unlink()
    (folder / "thanks.yaml").write_text(textwrap.dedent("""\
        trigger: {after_order: {days: 1}}
        goal: {kind: order, days: 30}
        steps:
          - channel: call
            body: "{{ name }}様にお礼のお電話"
        """), encoding="utf-8")
    ws.save_settings(Settings().replace(
        delivery={"holdout_share": 0.0, "global_control_share": 0.0}, analysis={"as_of": "2026-11-30"},
        prediction={"call_capacity": 2}, calls={"cooldown_days": 14}))
    with ws:
        now = dt.datetime(2026, 11, 30, 10, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
        report = ws.run(now=now)
        listed = [p for p in report.files if p.suffix == ".csv"]
        rows = listed[0].read_text(encoding="utf-8-sig").splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["P1", "P3"]
    assert report.total("suppressed") == 2 and report.total("deferred") == 1  # P2, P5; P4
