"""Lost reasons from what the customer said: the [lost_reasons] words (docs/measures.md#lost-reasons)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from kizuna import Workspace
from kizuna._errors import WorkspaceError
from kizuna.analytics import customer_scores
from kizuna.store import Store, copy_store
from kizuna.workspace import Settings

from factories import day, days_before, orders_for, workspace_with

AS_OF = "2026-06-30"
OLD = days_before(AS_OF, 200)  # last order 200 days ago: dormant, so lost
LATER = days_before(AS_OF, 150)[0]  # within the 180-day look-back from the last order


def scores(ws, as_of: str = AS_OF) -> dict[str, dict]:
    rows = customer_scores(ws.tables(), ws.settings.analysis, dt.date.fromisoformat(as_of),
                           gross_margin_rate=0.4, lost_reasons=ws.settings.lost_reasons)
    rows = rows.select("customer_id", "lost", "lost_reason", "lost_reason_matched").to_pyarrow().to_pylist()
    return {r["customer_id"]: r for r in rows}


def cancelled(customer: str, note: str | None, when: str = LATER) -> dict:
    return {"customer_id": customer, "occurred_at": day(when), "kind": "cancellation", "detail": note}


@pytest.fixture
def business(tmp_path):
    customers = ("MOVE", "PRICE", "LEFTOVER", "SILENT", "BROKEN", "GROWN", "OTHER", "ACTIVE")
    orders = sum((orders_for(c, OLD, 5_000) for c in customers if c != "ACTIVE"), [])
    orders += orders_for("ACTIVE", days_before(AS_OF, 5), 5_000)
    events = [
        cancelled("MOVE", "引越しのため"),
        cancelled("PRICE", "料金が高いので"),
        cancelled("LEFTOVER", "使い切れない"),
        cancelled("SILENT", None),
        cancelled("OTHER", "転職のため"),
        # a life event's detail: household_change is a situation signal, its detail the word shown
        {"customer_id": "GROWN", "occurred_at": day(LATER), "kind": "household_change", "detail": "子どもの独立"},
        # cancelled (so lost) 300 days ago, ordered 5 days ago: the note lies before the look-back
        cancelled("ACTIVE", "引越しのため", days_before(AS_OF, 300)[0]),
    ]
    answers = [  # a detractor: without the note MOVE would be unresolved (it stays situation_changed)
        {"customer_id": "MOVE", "answered_at": day(LATER), "score": 3},
    ]
    contacts = [  # a resolved contact, no complaint: only its category speaks
        {"contact_id": "T1", "customer_id": "BROKEN", "opened_at": day(LATER), "channel": "phone",
         "status": "resolved", "resolved_at": day(LATER), "category": "サーバー故障・メンテナンス"},
    ]
    ws = workspace_with(tmp_path / "ws", orders=orders, events=events, nps_answers=answers,
                        support_contacts=contacts)
    yield ws
    ws.close()


@pytest.mark.slow
def test_what_the_customer_said_decides_the_reason_and_the_word_is_kept(business):
    rows = scores(business)
    got = {c: (rows[c]["lost_reason"], rows[c]["lost_reason_matched"]) for c in sorted(rows)}
    assert got == {
        "ACTIVE": ("drifted", None),
        "BROKEN": ("unresolved", "故障"),  # support category
        "GROWN": ("situation_changed", "独立"),  # life event detail
        "LEFTOVER": ("drifted", "使い切れない"),
        "MOVE": ("situation_changed", "引越し"),  # the note wins over the detractor answer
        "OTHER": ("drifted", None),  # 転職 is no default word
        "PRICE": ("unresolved", "高い"),
        "SILENT": ("drifted", None),
    }


@pytest.mark.slow
def test_an_edited_word_table_in_kizuna_toml(business, tmp_path):
    business.close()
    toml = tmp_path / "ws" / "kizuna.toml"
    text = toml.read_text(encoding="utf-8")
    text, edited = re.subn(r"^situation_changed = \[.*?\]", 'situation_changed = ["転職", "ＳＰＬＩＴ"]', text,
                           flags=re.S | re.M)
    text, emptied = re.subn(r"^drifted = \[.*?\]", "drifted = []", text, flags=re.S | re.M)
    assert edited == emptied == 1
    toml.write_text(text, encoding="utf-8")
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.settings.lost_reasons.situation_changed == ("転職", "split")  # NFKC, lower case
        assert ws.analyze(dt.date.fromisoformat(AS_OF)) == 8
        rows = {r["customer_id"]: r for r in ws.scores().to_pyarrow().to_pylist()}
    assert (rows["OTHER"]["lost_reason"], rows["OTHER"]["lost_reason_matched"]) == ("situation_changed", "転職")
    # 引越し is no longer a word: the detractor answer decides
    assert (rows["MOVE"]["lost_reason"], rows["MOVE"]["lost_reason_matched"]) == ("unresolved", None)
    # the event kind still is a situation signal, though its detail names no word any more
    assert (rows["GROWN"]["lost_reason"], rows["GROWN"]["lost_reason_matched"]) == ("situation_changed", None)
    assert rows["PRICE"]["lost_reason"] == "unresolved"  # the other lists keep their defaults
    assert (rows["LEFTOVER"]["lost_reason"], rows["LEFTOVER"]["lost_reason_matched"]) == ("drifted", None)


def test_the_word_lists_are_checked_and_written_back():
    with pytest.raises(WorkspaceError, match=r"lost_reasons\.drifted must be a list of words"):
        Settings.from_dict({"lost_reasons": {"drifted": ["", "余って"]}})
    assert Settings.from_dict({"lost_reasons": {"drifted": []}}).lost_reasons.drifted == ()  # a list may be empty
    with pytest.raises(WorkspaceError, match=r"lost_reasons\.unresolved must be a list of words"):
        Settings.from_dict({"lost_reasons": {"unresolved": "高い"}})
    settings = Settings.from_dict({"lost_reasons": {"drifted": ["余って", "余って", "call back"]}})
    assert settings.lost_reasons.drifted == ("余って", "call back")
    import tomllib

    assert Settings.from_dict(tomllib.loads(settings.to_toml())) == settings
    assert "引越し" in Settings().lost_reasons.situation_changed and "高い" in Settings().lost_reasons.unresolved


@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres),
                                    pytest.param("spark", marks=pytest.mark.spark)])
def test_the_same_reasons_and_words_on_postgres_and_spark(business, engine, request):
    expected = {c: (r["lost_reason"], r["lost_reason_matched"]) for c, r in scores(business).items()}
    store = (Store.connect(request.getfixturevalue("postgres_database")) if engine == "postgres"
             else request.getfixturevalue("spark_store"))
    try:
        copy_store(business.store, store)
        other = scores(Workspace(business.path, business.settings, store))
        assert {c: (r["lost_reason"], r["lost_reason_matched"]) for c, r in other.items()} == expected
    finally:
        if engine == "postgres":
            store.close()
