"""Messages per occasion (issue #22 item 5): the personal fields are those of the occasion's moment,
not of the run's day, and a customer with several occasions of one scenario step due in one run
gets one message (the latest occasion's); the others are `merged` in the ledger and never sent.

Delivered to a real SMTP server (aiosmtpd, tests/smtp_server.py) and checked by what arrived.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from pathlib import Path

import pyarrow as pa
import pytest

from kizuna.delivery._smtp import SmtpTransport
from kizuna.operations import DueRow
from kizuna.scenarios._fields import day_end, occasion_fields, personal_fields
from kizuna.scenarios._run import merge_occasions
from kizuna.workspace import Settings, Workspace

from factories import day, workspace_with
from smtp_server import SmtpServer

JST = zoneinfo.ZoneInfo("Asia/Tokyo")

THANK_YOU = """\
title: {ja: お礼, en: Thank you}
trigger: {after_order: {days: 1}}
goal: {kind: order, days: 30}
steps:
  - channel: email
    subject: {ja: "ご注文ありがとうございました", en: "Thank you for your order"}
    body:
      ja: "{{ name }}様\\n{{ orders_so_far }}回目のご注文です。これまで{{ spent_so_far | yen }}。({{ detail }})"
      en: "Order number {{ orders_so_far }}."
"""

# The same, with a second e-mail five days after the first.
THANK_YOU_TWICE = THANK_YOU + """\
  - channel: email
    wait_days: 5
    subject: {ja: "その後いかがですか", en: "How is it going?"}
    body:
      ja: "{{ name }}様\\n{{ orders_so_far }}回目のご注文のその後はいかがですか。({{ detail }})"
      en: "How is order number {{ orders_so_far }}?"
"""

SIGN_UP_ANNIVERSARY = """\
title: {ja: 登録記念日, en: Sign-up anniversary}
trigger: {anniversary: {of: signed_up}}
goal: {kind: order, days: 30}
steps:
  - channel: email
    subject: {ja: "登録{{ tenure_years }}周年", en: "{{ tenure_years }} year(s)"}
    body:
      ja: "{{ name }}様\\nご登録から{{ tenure_days }}日、{{ orders_so_far }}回のご注文、{{ spent_so_far | yen }}。"
      en: "{{ tenure_days }} days."
"""

# C1 ordered four times. A thank-you is due a day after each order, and cron missed 27 to 29
# November: on 30 November at 13:00 the thank-yous of O2 (26 Nov, due 27 Nov) and O3 (29 Nov,
# due 30 Nov 12:00) are both due; O4 (30 Nov 09:00) is due only on 1 December. C2 ordered once.
ORDERS = [
    {"order_id": "O1", "customer_id": "C1", "ordered_at": day("2026-11-20"), "amount": 1_000},
    {"order_id": "O2", "customer_id": "C1", "ordered_at": day("2026-11-26"), "amount": 2_000},
    {"order_id": "O3", "customer_id": "C1", "ordered_at": day("2026-11-29"), "amount": 3_000},
    {"order_id": "O4", "customer_id": "C1", "ordered_at": day("2026-11-30", 9), "amount": 4_000},
    {"order_id": "P1", "customer_id": "C2", "ordered_at": day("2026-11-29", 10), "amount": 5_000},
]
CUSTOMERS = [
    {"customer_id": "C1", "name": "佐藤 花子", "email": "hanako@example.jp", "email_opt_in": True,
     "signed_up_at": day("2025-11-27", 9)},
    {"customer_id": "C2", "name": "鈴木 一郎", "email": "ichiro@example.jp", "email_opt_in": True,
     "signed_up_at": day("2026-11-29", 9)},
]


def at(text: str) -> dt.datetime:
    """A moment in Japan: '2026-11-30 13:00'."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=JST)


def shop(tmp_path: Path, server: SmtpServer, scenarios: dict[str, str]) -> Workspace:
    ws = workspace_with(tmp_path / "shop", customers=CUSTOMERS, orders=ORDERS)
    folder = ws.path / "scenarios"
    for old in folder.glob("*.yaml"):
        old.unlink()
    for name, text in scenarios.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    ws.save_settings(Settings().replace(
        # the frequency cap is not the subject here: it would hold the later mails back
        delivery={"holdout_share": 0.0, "global_control_share": 0.0, "cap_messages": 10},
        web={"public_url": "https://shop.example.jp/k"},
        email={"sender": "水の森 <info@mizunomori.example.jp>", "sender_address": "東京都港区1-2-3",
               "sender_contact": "0120-000-000", "smtp_url": server.url}))
    return ws


def run(ws: Workspace, now: str, **options):
    moment = at(now)
    return ws.run(moment.date(), now=moment,
                  transports={"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)}, **options)


def texts(server: SmtpServer) -> dict[str, list[str]]:
    """recipient -> the plain texts received, in order."""
    found: dict[str, list[str]] = {}
    for mail in server.messages:
        text = mail.message().get_body(("plain",)).get_content().replace("\r\n", "\n")
        found.setdefault(mail.rcpt_tos[0], []).append(text)
    return found


def ledger(ws: Workspace) -> dict[str, tuple[str, str | None]]:
    return {r["key"]: (r["status"], r["note"]) for r in ws.operations.query("SELECT key, status, note FROM deliveries")}


@pytest.mark.slow
def test_two_due_orders_of_one_customer_give_one_thank_you_with_the_count_of_the_latest(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, {"thank-you": THANK_YOU})
        first = run(ws, "2026-11-30 13:00")
        server.wait_for(2)
        again = run(ws, "2026-11-30 14:00")
        time.sleep(0.2)
        assert server.count == 2  # the second run sends nothing, the merged O2 included
        got = texts(server)
        # O4 is due on 1 December 09:00: the next day's run thanks for it, as the 4th order
        later = run(ws, "2026-12-01 10:00")
        server.wait_for(3)
        final = texts(server)

    # O3 is C1's 3rd order: O1 + O2 + O3 = ¥6,000; O4 (30 Nov, before the run) is not counted in it
    assert len(got["hanako@example.jp"]) == 1
    assert "3回目のご注文です。これまで¥6,000。(O3)" in got["hanako@example.jp"][0]
    assert "1回目のご注文です。これまで¥5,000。(P1)" in got["ichiro@example.jp"][0]
    counts = first.tallies[("thank-you", 1)].counts
    assert (counts["enrolled"], counts["sent"], counts["merged"]) == (3, 2, 1)
    assert again.total("sent") == 0 and again.total("merged") == 0
    assert ledger(ws)["thank-you/1/C1/order:O2"] == ("merged", "merged into order:O3")
    assert "4回目のご注文です。これまで¥10,000。(O4)" in final["hanako@example.jp"][1]
    assert later.total("sent") == 1 and later.total("merged") == 0
    statuses = sorted(status for status, _ in ledger(ws).values())
    assert statuses == ["merged", "sent", "sent", "sent"]
    results = {(r["scenario"], r["step"]): r for r in ws.results()}
    step = results[("thank-you", 1)]  # a merged row is not a message of its own
    assert (step["due"], step["sent"], step["waiting"]) == (3, 3, 0)


@pytest.mark.slow
def test_the_later_steps_of_a_merged_occasion_are_merged_with_it(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, {"thank-you": THANK_YOU_TWICE})
        run(ws, "2026-11-30 13:00")
        server.wait_for(2)
        # O2's second e-mail would have been due on 2 December; this run thanks for O4 (step 1) only
        quiet = run(ws, "2026-12-03 10:00")
        server.wait_for(3)
        # O3's and P1's second e-mails are due on 5 December (12:00 and 10:00)
        second = run(ws, "2026-12-05 14:00")
        server.wait_for(5)
        got = texts(server)

    assert quiet.tallies[("thank-you", 1)].counts["sent"] == 1 and quiet.tallies[("thank-you", 2)].counts["sent"] == 0
    assert ledger(ws)["thank-you/2/C1/order:O2"] == ("merged", "merged into order:O3")
    assert second.tallies[("thank-you", 2)].counts["sent"] == 2
    assert [t.split("\n")[1] for t in got["hanako@example.jp"]] == [
        "3回目のご注文です。これまで¥6,000。(O3)",
        "4回目のご注文です。これまで¥10,000。(O4)",
        "3回目のご注文のその後はいかがですか。(O3)",
    ]
    assert got["ichiro@example.jp"][1].split("\n")[1] == "1回目のご注文のその後はいかがですか。(P1)"


def test_an_anniversary_caught_up_is_as_of_its_own_day(tmp_path):
    # C1 signed up on 27 November 2025; the run on 30 November catches the anniversary up (catch_up_days 3).
    # On 27 November 2026: 365 days, and the orders up to that day, O1 and O2 (¥3,000); not O3 and O4.
    with SmtpServer() as server:
        ws = shop(tmp_path, server, {"anniversary": SIGN_UP_ANNIVERSARY})
        report = run(ws, "2026-11-30 13:00")
        mail = server.wait_for(1)[0]
    text = mail.message().get_body(("plain",)).get_content()
    assert str(mail.message()["Subject"]) == "登録1周年"
    assert "ご登録から365日、2回のご注文、¥3,000。" in text
    assert report.total("sent") == 1


def test_occasion_fields_are_those_of_their_moment(tmp_path):
    """Each (customer, moment) sees what happened up to that moment; the end of a day is `personal_fields`."""
    with workspace_with(tmp_path / "ws", customers=CUSTOMERS, orders=ORDERS) as ws:
        tables = ws.tables()
        cuts = pa.table({
            "customer_id": ["C1", "C1", "C1", "C2"],
            "seen_until": pa.array([day("2026-11-26"), day_end(dt.date(2026, 11, 29)), day("2026-11-26", 11),
                                    day("2026-11-29", 10)], pa.timestamp("us")),
        })
        rows = occasion_fields(tables, cuts, alternative_yen_per_l=100).to_pyarrow().to_pylist()
        got = {(r["customer_id"], r["seen_until"]): r for r in rows}
        whole_day = {r["customer_id"]: r for r in personal_fields(tables, dt.date(2026, 11, 29),
                                                                  alternative_yen_per_l=100).to_pyarrow().to_pylist()}
    at_o2 = got[("C1", day("2026-11-26"))]
    # O2's own moment: O1 and O2; 364 days after the sign-up on 27 November 2025
    assert (at_o2["orders_so_far"], at_o2["spent_so_far"], at_o2["tenure_days"], at_o2["tenure_years"]) == \
        (2, 3_000, 364, 0)
    assert at_o2["last_order_at"] == day("2026-11-26")
    before_o2 = got[("C1", day("2026-11-26", 11))]  # an hour before O2
    assert (before_o2["orders_so_far"], before_o2["spent_so_far"]) == (1, 1_000)
    end_29 = got[("C1", day_end(dt.date(2026, 11, 29)))]
    assert (end_29["orders_so_far"], end_29["spent_so_far"], end_29["tenure_years"]) == (3, 6_000, 1)
    assert {k: v for k, v in end_29.items() if k != "seen_until"} == whole_day["C1"]
    assert got[("C2", day("2026-11-29", 10))]["orders_so_far"] == 1
    assert len(rows) == 4


def row(occasion: str, ts: int, *, step: int = 1, status: str = "scheduled", customer: str = "C1") -> DueRow:
    return DueRow(key=f"s/{step}/{customer}/{occasion}", ref="r", scenario="s", step=step, customer_id=customer,
                  occasion=occasion, occasion_ts=ts, detail=None, channel="email", transactional=False, due_ts=ts,
                  status=status)


def test_merging_keeps_the_latest_occasion_and_never_a_row_that_may_have_gone():
    rows = [row("o:1", 100), row("o:2", 300), row("o:3", 200, status="sending"), row("o:9", 50, customer="C2"),
            row("o:1", 100, step=2), row("o:2", 300, step=2, status="deferred")]
    kept, merged = merge_occasions(rows)
    # o:3 was left `sending` by a killed run: it may have reached the customer and keeps its course;
    # o:1's second step goes with its first; o:2's goes (C1's latest occasion)
    assert [r.key for r in kept] == ["s/1/C1/o:2", "s/1/C1/o:3", "s/1/C2/o:9", "s/2/C1/o:2"]
    assert {k: note for k, (_, note) in merged.items()} == {"s/1/C1/o:1": "merged into o:2",
                                                           "s/2/C1/o:1": "merged into o:2"}
