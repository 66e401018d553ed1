"""`kizuna run` against an SMTP server that refuses or breaks at the end of a transaction (#18):
what the ledger records for each answer — or for no answer — and what the next run sends.

A reply is an answer: 2xx sent, 4xx scheduled again with back-off, 5xx failed with the server's
text. A connection lost after the final dot is the one case in which the server may have the
message: it is sent once more with the same Message-ID, then left `unconfirmed`. Refusals about
the channel rather than the recipient (relay denied, authentication required) keep the messages
waiting, and three troubles in a row stop the channel for the run.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from pathlib import Path

import pytest

from kizuna.delivery._smtp import SmtpTransport
from kizuna.scenarios._dispatch import MAX_TROUBLES
from kizuna.workspace import Settings, Workspace

from factories import day, workspace_with
from smtp_server import SmtpServer

JST = zoneinfo.ZoneInfo("Asia/Tokyo")
CUSTOMERS = 6
THANK_YOU = """\
title: {ja: お礼, en: Thank you}
trigger: {after_order: {days: 1}}
goal: {kind: order, days: 30}
steps:
  - channel: email
    subject: {ja: "{{ name }}様、ありがとうございます", en: "Thank you, {{ name }}"}
    body: {ja: "{{ name }}様\\n{{ orders_so_far }}回目のご注文です。", en: "Dear {{ name }}"}
"""


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=JST)


def address(n: int) -> str:
    return f"c{n}@example.jp"


def shop(tmp_path: Path, server: SmtpServer) -> Workspace:
    """Six customers who ordered on 2026-11-28 and may all get e-mail: one thank-you each."""
    ws = workspace_with(
        tmp_path / "shop",
        customers=[{"customer_id": f"C{n}", "name": f"顧客{n}", "email": address(n), "email_opt_in": True}
                   for n in range(CUSTOMERS)],
        orders=[{"order_id": f"O{n}", "customer_id": f"C{n}", "ordered_at": day("2026-11-28", 15), "amount": 1000}
                for n in range(CUSTOMERS)],
    )
    for old in (ws.path / "scenarios").glob("*.yaml"):
        old.unlink()
    (ws.path / "scenarios" / "thank-you.yaml").write_text(THANK_YOU, encoding="utf-8")
    ws.save_settings(Settings().replace(
        delivery={"holdout_share": 0.0, "global_control_share": 0.0, "cap_messages": 10},
        email={"sender": "Shop <info@shop.example.jp>", "sender_address": "Tokyo", "sender_contact": "03",
               "smtp_url": server.url},
        analysis={"as_of": "2026-11-30"}, web={"public_url": "https://shop.example.jp/k"}))
    return ws


def run(ws: Workspace, when: str):
    transport = {"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path, timeout=5)}
    return ws.run(now=at(when), transports=transport)


def ledger(ws: Workspace) -> dict[str, dict]:
    """customer → its ledger row."""
    return {r["customer_id"]: dict(r) for r in ws.operations.query("SELECT * FROM deliveries")}


def states(ws: Workspace) -> Counter:
    return Counter(r["status"] for r in ledger(ws).values())


def message_ids(server: SmtpServer) -> Counter:
    return Counter(m.message()["Message-ID"] for m in server.messages)


def expected_ids(ws: Workspace) -> set[str]:
    return {f"<{r['ref']}@shop.example.jp>" for r in ledger(ws).values()}


@pytest.mark.slow
def test_a_451_after_the_final_dot_is_tried_again_later_and_the_next_run_delivers_all_once(tmp_path):
    with SmtpServer(refuse_data={"*": "451 4.3.0 queue full, try again later"}) as server:
        ws = shop(tmp_path, server)
        busy = run(ws, "2026-11-30 10:00")
        assert server.count == 0
        rows = ledger(ws)
        retried = [r for r in rows.values() if r["attempts"] == 1]
        # a reply is an answer: scheduled again with back-off, neither failed nor unconfirmed
        assert states(ws) == {"scheduled": CUSTOMERS}
        assert len(retried) == MAX_TROUBLES  # three temporary refusals in a row stop the channel for the run
        for row in retried:
            assert row["note"] == "end of DATA: 451 4.3.0 queue full, try again later"
            assert row["due_ts"] > int(at("2026-11-30 10:00").timestamp())  # not before the back-off
        assert (busy.total("failed"), busy.total("unconfirmed"), busy.total("waiting")) == (0, 0, CUSTOMERS)
        assert any("451 4.3.0" in str(p) for p in busy.problems)

        server.refuse_data = {}  # healthy again
        healthy = run(ws, "2026-11-30 11:00")
        server.wait_for(CUSTOMERS)
        again = run(ws, "2026-11-30 12:00")
    assert healthy.total("sent") == CUSTOMERS and again.total("sent") == 0
    assert states(ws) == {"sent": CUSTOMERS}
    ids = message_ids(server)
    assert set(ids) == expected_ids(ws) and set(ids.values()) == {1}  # every message, each once
    step = next(r for r in ws.results() if r["step"] == 1)
    assert (step["sent"], step["delivered"], step["failed"], step["unconfirmed"]) == (CUSTOMERS, CUSTOMERS, 0, 0)


@pytest.mark.slow
def test_the_back_off_grows_with_the_attempts(tmp_path):
    with SmtpServer(refuse_data={address(0): "452 4.2.2 mailbox full"}) as server:
        ws = shop(tmp_path, server)
        dues = []
        moment = at("2026-11-30 10:00")
        for _ in range(3):
            run(ws, moment.isoformat(sep=" ")[:16])
            row = ledger(ws)["C0"]
            dues.append(row["due_ts"] - int(moment.timestamp()))
            moment = dt.datetime.fromtimestamp(row["due_ts"], JST)
        assert server.count == CUSTOMERS - 1
    assert ledger(ws)["C0"]["attempts"] == 3 and ledger(ws)["C0"]["status"] == "scheduled"
    assert dues[0] > 0 and dues[1] == 2 * dues[0] and dues[2] == 2 * dues[1]


@pytest.mark.slow
def test_a_5xx_after_the_final_dot_fails_the_message_with_the_servers_text_and_it_is_never_resent(tmp_path):
    refused = {address(1): "554 5.6.0 message content rejected", address(4): "550 5.7.1 spam suspected"}
    with SmtpServer(refuse_data=refused) as server:
        ws = shop(tmp_path, server)
        first = run(ws, "2026-11-30 10:00")
        server.wait_for(CUSTOMERS - 2)
        server.refuse_data = {}
        again = run(ws, "2026-11-30 11:00")
        later = run(ws, "2026-12-01 10:00")
    assert (first.total("sent"), first.total("failed"), first.total("unconfirmed")) == (CUSTOMERS - 2, 2, 0)
    assert again.total("sent") == later.total("sent") == 0
    assert server.count == CUSTOMERS - 2
    rows = ledger(ws)
    assert (rows["C1"]["status"], rows["C1"]["note"]) == ("failed", "end of DATA: 554 5.6.0 message content rejected")
    assert (rows["C4"]["status"], rows["C4"]["note"]) == ("failed", "end of DATA: 550 5.7.1 spam suspected")
    step = next(r for r in ws.results() if r["step"] == 1)
    assert (step["sent"], step["delivered"], step["failed"]) == (CUSTOMERS, CUSTOMERS - 2, 2)


@pytest.mark.slow
def test_a_server_refusing_every_message_after_the_dot_fails_three_and_the_rest_wait(tmp_path):
    with SmtpServer(refuse_data={"*": "554 5.7.1 DKIM signature invalid"}) as server:
        ws = shop(tmp_path, server)
        report = run(ws, "2026-11-30 10:00")
        assert states(ws) == {"failed": MAX_TROUBLES, "scheduled": CUSTOMERS - MAX_TROUBLES}
        assert report.total("waiting") == CUSTOMERS - MAX_TROUBLES
        server.refuse_data = {}
        fixed = run(ws, "2026-11-30 11:00")
        server.wait_for(CUSTOMERS - MAX_TROUBLES)
    assert fixed.total("sent") == CUSTOMERS - MAX_TROUBLES


@pytest.mark.parametrize("stored", [False, True], ids=["lost", "stored-before-the-drop"])
@pytest.mark.slow
def test_a_connection_dropped_after_the_dot_is_resent_once_with_the_same_message_id(tmp_path, stored):
    with SmtpServer(drop_after_dot={"*"}, store_dropped=stored) as server:
        ws = shop(tmp_path, server)
        dropped = run(ws, "2026-11-30 10:00")
        taken = message_ids(server)
        rows = ledger(ws)
        resend = {c for c, r in rows.items() if r["status"] == "resend"}
        assert len(resend) == MAX_TROUBLES and states(ws) == {"resend": MAX_TROUBLES,
                                                               "scheduled": CUSTOMERS - MAX_TROUBLES}
        assert (dropped.total("unconfirmed"), dropped.total("failed")) == (0, 0)
        assert dropped.total("resend") == MAX_TROUBLES and dropped.total("waiting") == CUSTOMERS
        assert all("after the final dot" in rows[c]["note"] for c in resend)

        server.drop_after_dot = frozenset()  # healthy again
        healthy = run(ws, "2026-11-30 11:00")
        server.wait_for(len(taken) + CUSTOMERS)
        again = run(ws, "2026-11-30 12:00")
    assert healthy.total("sent") == CUSTOMERS and again.total("sent") == 0
    assert states(ws) == {"sent": CUSTOMERS}
    ids = message_ids(server)
    assert set(ids) == expected_ids(ws)  # each message arrived, by Message-ID …
    resent_ids = {f"<{rows[c]['ref']}@shop.example.jp>" for c in resend}
    # … once, and once more with the same Message-ID when the dropping server had kept it
    assert {i: n for i, n in ids.items() if n > 1} == ({i: 2 for i in resent_ids} if stored else {})
    assert set(taken) == (resent_ids if stored else set())


@pytest.mark.slow
def test_a_message_dropped_after_the_dot_twice_is_left_unconfirmed_and_never_sent_again(tmp_path):
    with SmtpServer(drop_after_dot={address(2)}, store_dropped=True) as server:
        ws = shop(tmp_path, server)
        first = run(ws, "2026-11-30 10:00")
        second = run(ws, "2026-11-30 11:00")  # the one resend, dropped again
        third = run(ws, "2026-11-30 12:00")
        server.drop_after_dot = frozenset()
        healthy = run(ws, "2026-11-30 13:00")
    assert (first.total("sent"), first.total("resend")) == (CUSTOMERS - 1, 1)
    assert (second.total("sent"), second.total("unconfirmed")) == (0, 1)
    assert third.total("sent") == healthy.total("sent") == 0
    row = ledger(ws)["C2"]
    assert row["status"] == "unconfirmed" and row["attempts"] == 2
    assert message_ids(server)[f"<{row['ref']}@shop.example.jp>"] == 2  # the first try and its one resend
    step = next(r for r in ws.results() if r["step"] == 1)
    assert (step["delivered"], step["unconfirmed"], step["failed"]) == (CUSTOMERS - 1, 1, 0)


@pytest.mark.slow
def test_no_answer_to_the_dot_within_the_timeout_is_the_same_ambiguous_case(tmp_path):
    with SmtpServer(answer_after=1.5) as server:
        ws = shop(tmp_path, server)
        transport = {"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path, timeout=0.3)}
        slow = ws.run(now=at("2026-11-30 10:00"), transports=transport)
        assert slow.total("resend") == MAX_TROUBLES and slow.total("unconfirmed") == 0
        server.answer_after = 0
        healthy = run(ws, "2026-11-30 11:00")
    assert healthy.total("sent") == CUSTOMERS
    assert set(message_ids(server)) == expected_ids(ws)


@pytest.mark.parametrize("reply", ["550 5.7.1 <{}>: Relay access denied", "530 5.7.0 Authentication required",
                                   "554 relaying denied"])
@pytest.mark.slow
def test_a_channel_wide_refusal_at_rcpt_stops_the_channel_and_keeps_every_message_waiting(tmp_path, reply):
    with SmtpServer(refuse={"*": reply.format("x@example.jp")}) as server:
        ws = shop(tmp_path, server)
        denied = run(ws, "2026-11-30 10:00")
        assert server.count == 0
        assert states(ws) == {"scheduled": CUSTOMERS}  # not one failed
        tried = [r for r in ledger(ws).values() if r["attempts"]]
        assert len(tried) == MAX_TROUBLES and all(r["note"].startswith("RCPT TO: 5") for r in tried)
        assert (denied.total("failed"), denied.total("waiting")) == (0, CUSTOMERS)
        assert any("the rest wait for the next run" in str(p) for p in denied.problems)

        server.refuse = {}  # the relay or the login was fixed
        fixed = run(ws, "2026-11-30 10:05")  # at once: no back-off after a refusal of the channel
        server.wait_for(CUSTOMERS)
    assert fixed.total("sent") == CUSTOMERS and states(ws) == {"sent": CUSTOMERS}
    assert set(message_ids(server).values()) == {1}


def test_an_unknown_recipient_fails_only_its_message(tmp_path):
    refuse = {address(n): f"550 5.1.1 <{address(n)}>: Recipient address rejected: User unknown" for n in (1, 2, 3)}
    with SmtpServer(refuse=refuse) as server:
        ws = shop(tmp_path, server)
        report = run(ws, "2026-11-30 10:00")
        server.wait_for(CUSTOMERS - 3)
    # three in a row, each about its recipient: failed, and the channel goes on
    assert (report.total("sent"), report.total("failed"), report.problems) == (CUSTOMERS - 3, 3, [])
    assert ledger(ws)["C2"]["note"] == "RCPT TO: 550 5.1.1 <c2@example.jp>: Recipient address rejected: User unknown"


@pytest.mark.slow
def test_a_resend_interrupted_by_a_killed_run_is_still_the_one_resend(tmp_path):
    from kizuna.operations._ledger import Ledger

    with SmtpServer(drop_after_dot={address(0), address(3)}) as server:
        ws = shop(tmp_path, server)
        run(ws, "2026-11-30 10:00")
        keys = {c: r["key"] for c, r in ledger(ws).items()}
        assert {c for c, r in ledger(ws).items() if r["status"] == "resend"} == {"C0", "C3"}
        # a run killed during the resend: C0 before its final dot, C3 after it (the point of no return)
        Ledger(ws.operations).sending(keys["C0"])
        Ledger(ws.operations).sending(keys["C3"])
        Ledger(ws.operations).committing(keys["C3"])
        assert (ledger(ws)["C0"]["status"], ledger(ws)["C3"]["status"]) == ("resend", "committing")
        server.drop_after_dot = frozenset({address(0)})  # C0's resend is dropped as well
        after = run(ws, "2026-11-30 11:00")
        later = run(ws, "2026-11-30 12:00")
    assert (after.total("sent"), after.total("unconfirmed"), later.total("sent")) == (0, 2, 0)
    rows = ledger(ws)
    assert (rows["C0"]["status"], rows["C0"]["attempts"]) == ("unconfirmed", 3)  # first try, killed resend, resend
    assert rows["C3"]["status"] == "unconfirmed"  # killed after its dot: never a third time
    assert server.count == CUSTOMERS - 2
