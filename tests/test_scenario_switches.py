"""Scenario switches (on / paused / off), due counts and test sends (issue #23 item 3): against the real
SMTP server (aiosmtpd), the LINE server, the command line and the web app in-process, on the
three-customer shop of test_run (C1 may get e-mail and LINE, C2 gave no e-mail consent, C3
unsubscribed; each ordered on Saturday 2026-11-28 at 15:00)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from test_run import LINE_USER, at, email_only, shop

from kizuna._errors import KizunaError
from kizuna.delivery import LineTransport
from kizuna.operations import (
    OPERATIONS_FILE,
    Enrolment,
    Ledger,
    Operations,
    SwitchRecord,
    audit_lines,
    record_audit,
    record_switch,
    set_user_contact,
    switch_records,
    take_baselines,
    user_contact,
)
from kizuna.web import create_app, hash_password
from kizuna.workspace import Workspace

from factories import arrow_rows, day
from line_server import LineServer
from smtp_server import SmtpServer

KIZUNA = [sys.executable, "-m", "kizuna"]
OPERATOR, VIEWER = ("ops", "operator-password"), ("look", "viewer-password")
OPS_MAIL, OPS_LINE = "ops@mizunomori.example.jp", "U" + "b" * 32

# an e-mail two days after each order (due 2026-11-30 15:00 for the orders of the 28th), then LINE
TWO_STEPS = """\
title: {ja: 購入後のご案内, en: After your order}
trigger: {after_order: {days: 2}}
goal: {kind: order, days: 30}
steps:
  - channel: email
    subject: {ja: "{{ name }}様、その後いかがですか", en: "How is it going, {{ name }}?"}
    body: {ja: "{{ name }}様\\n{{ orders_so_far }}回目のご注文ありがとうございました。", en: "Dear {{ name }}"}
  - channel: line
    body: {ja: "{{ name }}様、LINEでもご案内します。", en: "Hello {{ name }}"}
"""
# for what runs at the machine's clock (the CLI's dry run, the web pages' due counts): no quiet hours or
# holidays, or at night in Japan nothing would (rightly) be due
ANY_HOUR = {"quiet_start": "00:00", "quiet_end": "00:00", "skip_holidays": False}
# an e-mail on the day of each order, and another three days later
FOLLOW_UP = """\
title: {ja: フォロー, en: Follow-up}
trigger: {after_order: {days: 0}}
goal: {kind: referral, days: 30}
steps:
  - channel: email
    subject: {ja: "{{ name }}様 ご注文ありがとうございます", en: "Thanks"}
    body: {ja: "{{ detail }}", en: "{{ detail }}"}
  - channel: email
    wait_days: 3
    subject: {ja: "{{ name }}様 その後いかがですか", en: "How is it"}
    body: {ja: "{{ detail }} のその後", en: "{{ detail }}"}
"""
UNCAPPED = {"cap_messages": 100}


def _order(order_id: str, customer: str, moment: dt.datetime):
    return arrow_rows("orders", [{"order_id": order_id, "customer_id": customer, "ordered_at": moment,
                                  "amount": 1000}])


def _as_of(ws: Workspace, day_text: str) -> None:
    """Move the workspace's day ([analysis] as_of): the day a switch dates itself by, and a run's."""
    ws.save_settings(ws.settings.replace(analysis={"as_of": day_text}))


def _keys(ws: Workspace) -> dict[str, str]:
    return {r["key"]: r["status"] for r in ws.operations.query("SELECT key, status FROM deliveries ORDER BY key")}


# -- off, on -----------------------------------------------------------------------------------------------
def test_an_off_scenario_sends_nothing_and_sends_again_once_switched_on(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, scenarios={"after": TWO_STEPS})
        off = ws.switch_scenario("after", "off", user="hanako")
        assert (off.state, off.cancelled) == ("off", 0)
        quiet = ws.run(now=at("2026-11-30 16:00"), transports=email_only(ws))
        assert server.count == 0 and quiet.tallies == {}
        assert _keys(ws) == {}  # not even evaluated: nothing enrolled

        ws.switch_scenario("after", "on", user="hanako")
        report = ws.run(now=at("2026-11-30 16:00"), transports=email_only(ws))
        mails = server.wait_for(1)
    # switched on on the day the e-mail is due: it is today's occasion, not a caught-up one
    counts = report.tallies[("after", 1)].counts
    assert (counts["enrolled"], counts["sent"], counts["suppressed"]) == (3, 1, 2)
    assert [m.rcpt_tos for m in mails] == [("hanako@example.jp",)]
    assert str(mails[0].message()["Subject"]) == "佐藤 花子様、その後いかがですか"
    lines = [(r["user"], r["action"], r["what"], r["count"]) for r in audit_lines(ws.operations)]
    assert lines == [("hanako", "scenario.on", "after", None), ("hanako", "scenario.off", "after", 0)]


def test_switching_off_cancels_what_never_went_and_on_again_starts_afresh(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, scenarios={"follow": FOLLOW_UP}, delivery=UNCAPPED,
                  analysis={"as_of": "2026-11-28"})
        ws.run(now=at("2026-11-28 16:00"), transports=email_only(ws))
        server.wait_for(1)
        # the second e-mails of the three orders are scheduled for 2026-12-01 15:00 (C2's and C3's would be
        # suppressed when due: a step's rules are its own)
        assert [s for k, s in _keys(ws).items() if k.startswith("follow/2/")] == ["scheduled"] * 3
        _as_of(ws, "2026-11-29")
        off = ws.switch_scenario("follow", "off", user="hanako")
        assert off.cancelled == 3
        row = ws.operations.query("SELECT status, note FROM deliveries WHERE key = 'follow/2/C1/order:O1'")[0]
        assert (row["status"], row["note"]) == ("cancelled", "switched off")

        ws.store.append("orders", _order("O9", "C1", day("2026-11-30", 10)))
        _as_of(ws, "2026-12-01")
        ws.switch_scenario("follow", "on", user="hanako")
        ws.store.append("orders", _order("O10", "C1", day("2026-12-01", 9)))
        report = ws.run(now=at("2026-12-01 16:00"), transports=email_only(ws))
        server.wait_for(2)
    # the cancelled step never goes; O9 (while off) is not caught up; O10 (the day it came back) is sent
    assert report.total("sent") == 1
    assert str(server.messages[1].message()["Subject"]) == "佐藤 花子様 ご注文ありがとうございます"
    keys = _keys(ws)
    assert keys["follow/2/C1/order:O1"] == "cancelled"
    assert not any("O9" in key for key in keys)
    assert keys["follow/1/C1/order:O10"] == "sent"
    assert [(r["action"], r["count"]) for r in audit_lines(ws.operations, what="follow")] == [
        ("scenario.on", None), ("scenario.off", 3)]


# -- paused ------------------------------------------------------------------------------------------------
def _paused_story(tmp_path: Path, server: SmtpServer, *, pause: bool) -> Workspace:
    """C1 orders on the 28th (an e-mail that day, the second three days later), pauses or not on the 29th,
    orders again on the 29th, resumes on 1 December and orders that morning; runs on the 30th and the 1st."""
    ws = shop(tmp_path / ("paused" if pause else "kept"), server, scenarios={"follow": FOLLOW_UP},
              delivery=UNCAPPED, analysis={"as_of": "2026-11-28"})
    ws.run(now=at("2026-11-28 16:00"), transports=email_only(ws))
    _as_of(ws, "2026-11-29")
    if pause:
        ws.switch_scenario("follow", "paused", user="hanako")
    ws.store.append("orders", _order("O9", "C1", day("2026-11-29", 10)))
    _as_of(ws, "2026-11-30")
    ws.run(now=at("2026-11-30 16:00"), transports=email_only(ws))
    _as_of(ws, "2026-12-01")
    if pause:
        ws.switch_scenario("follow", "on", user="hanako")
    ws.store.append("orders", _order("O10", "C1", day("2026-12-01", 9)))
    ws.run(now=at("2026-12-01 16:00"), transports=email_only(ws))
    return ws


@pytest.mark.slow
def test_a_paused_scenario_keeps_what_was_enrolled_and_does_not_catch_up(tmp_path):
    with SmtpServer() as server:
        kept = _paused_story(tmp_path, server, pause=False)
        sent_unpaused = server.wait_for(4)
    with SmtpServer() as server:
        paused = _paused_story(tmp_path, server, pause=True)
        sent_paused = server.wait_for(3)

    def sent(ws: Workspace) -> list[str]:
        return sorted(k for k, status in _keys(ws).items() if status == "sent")

    # never paused: O1's two e-mails, O9's first (the 29th) and, on the 1st, O10's first
    assert sent(kept) == ["follow/1/C1/order:O1", "follow/1/C1/order:O10", "follow/1/C1/order:O9",
                          "follow/2/C1/order:O1"]
    assert len(sent_unpaused) == 4
    # paused from the 29th to the 1st: O9 (the 29th) is never enrolled, not caught up; O1's second e-mail,
    # enrolled before the pause and due on the 1st at 15:00, goes when it is on again; O10 goes
    assert sent(paused) == ["follow/1/C1/order:O1", "follow/1/C1/order:O10", "follow/2/C1/order:O1"]
    assert not any("O9" in key for key in _keys(paused))
    assert len(sent_paused) == 3


DORMANT = """\
title: {ja: 休眠のお知らせ, en: We miss you}
trigger: {segment: {name: dormant}}
goal: {kind: order, days: 30}
steps:
  - channel: email
    subject: "{{ name }}様"
    body: "お久しぶりです"
"""


def _entering_story(tmp_path: Path, *, pause: bool) -> set[str]:
    """Dormant after two days without an order: last orders C1 on the 28th, C2 the 29th, C3 the 30th, so C1
    enters on 1 December, C2 on the 2nd, C3 on the 3rd. Paused on the 30th (or not), on again on the 2nd.
    Returns the customers enrolled."""
    ws = shop(tmp_path / ("paused" if pause else "kept"), scenarios={"dormant": DORMANT},
              analysis={"as_of": "2026-11-30", "dormant_days": 2})
    ws.store.append("orders", _order("O4", "C2", day("2026-11-29", 10)))
    ws.store.append("orders", _order("O5", "C3", day("2026-11-30", 10)))
    for today in ("2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03"):
        _as_of(ws, today)
        if pause and today == "2026-11-30":
            ws.switch_scenario("dormant", "paused", user="hanako")
        if pause and today == "2026-12-02":
            ws.switch_scenario("dormant", "on", user="hanako")
        ws.analyze()
        ws.run(now=at(f"{today} 10:00"), transports={})
    return {row["customer_id"] for row in ws.operations.query("SELECT customer_id FROM deliveries")}


@pytest.mark.slow
def test_an_entering_trigger_after_a_pause_takes_its_members_as_they_are(tmp_path):
    assert _entering_story(tmp_path, pause=False) == {"C1", "C2", "C3"}
    # paused: C1 entered while paused, C2 on the day it came back, before its first run: both are taken
    # as members without a message; C3, who entered after that run, is an occasion
    assert _entering_story(tmp_path, pause=True) == {"C3"}


@pytest.mark.slow
def test_the_state_survives_reopening_and_cron_obeys_it(tmp_path):
    ws = shop(tmp_path, scenarios={"after": TWO_STEPS}, delivery=ANY_HOUR)
    path = ws.path
    ws.switch_scenario("after", "paused", user="hanako")
    ws.close()
    with Workspace.open(path) as again:
        [state] = again.scenario_states()
        assert (state.name, state.state, state.changed_by) == ("after", "paused", "hanako")
        report = again.run(now=at("2026-11-30 16:00"), dry_run=True)
        assert report.tallies == {}  # `kizuna run --dry-run` leaves it out
        with pytest.raises(KizunaError, match=r"after is paused \(hanako, 2026-"):
            again.run(now=at("2026-11-30 16:00"), dry_run=True, only="after")

    listed = _kizuna("scenario", "list", "--dir", str(path), "-f", "json")
    assert [(r["name"], r["title"], r["state"], r["steps"], r["changed_by"]) for r in json.loads(listed.stdout)] == [
        ("after", "購入後のご案内", "paused", "メール → LINE", "hanako")]
    on = _kizuna("scenario", "on", "after", "--dir", str(path))
    assert on.stdout.strip() == "「購入後のご案内」をオンにしました。"
    cron = _kizuna("run", "--dry-run", "--dir", str(path), "-f", "json")
    steps = {(s["scenario"], s["step"]): s["would_send"] for s in json.loads(cron.stdout)["steps"]}
    assert steps == {("after", 1): 1, ("after", 2): 1}
    off = _kizuna("scenario", "off", "after", "--dir", str(path), "--lang", "en")
    assert off.stdout.strip() == "After your order is now off."
    [by_cli] = [r for r in json.loads(_kizuna("scenario", "list", "--dir", str(path), "-f", "json").stdout)]
    assert by_cli["state"] == "off" and re.fullmatch(r".+@.+", by_cli["changed_by"])
    refused = subprocess.run([*KIZUNA, "scenario", "pause", "nope", "--dir", str(path)], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 1 and "nope" in refused.stderr and "Traceback" not in refused.stderr


def test_a_scenario_off_in_its_file_cannot_be_switched_on(tmp_path):
    ws = shop(tmp_path, scenarios={"after": "enabled: false\n" + TWO_STEPS})
    [state] = ws.scenario_states()
    assert (state.state, state.in_file) == ("off", False)
    with pytest.raises(KizunaError, match="enabled: false"):
        ws.switch_scenario("after", "on", user="hanako")


def _kizuna(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*KIZUNA, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


# -- due counts --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_due_counts_per_step_as_the_dry_run_counts_them(tmp_path):
    ws = shop(tmp_path, scenarios={"after": TWO_STEPS})
    # by hand: the three orders of the 28th are due on the 30th, step 1 (e-mail) and step 2 (LINE, same
    # day): C1 gets both; C2 has no e-mail consent, C3 unsubscribed, neither has a LINE user id
    expected = {1: {"enrolled": 3, "would_send": 1, "suppressed": 2}, 2: {"enrolled": 3, "would_send": 1,
                                                                          "suppressed": 2}}
    for state in ("on", "paused"):
        if state == "paused":
            ws.switch_scenario("after", "paused", user="hanako")
        report = ws.run(now=at("2026-11-30 16:00"), dry_run=True, as_if_on=True)
        found = {step: {k: t.counts[k] for k in ("enrolled", "would_send", "suppressed")}
                 for (_, step), t in report.tallies.items()}
        assert found == expected, state
    assert _keys(ws) == {}  # a dry run records nothing


# -- test sends --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_test_send_reaches_the_operator_only_marked_and_outside_the_ledger(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, scenarios={"after": TWO_STEPS}, delivery={"cap_messages": 1})
        done = ws.send_test("after", user="hanako", email=OPS_MAIL, customer_id="C1",
                            transports=email_only(ws))
        [mail] = server.wait_for(1)
        assert list(mail.rcpt_tos) == [OPS_MAIL]
        message = mail.message()
        assert str(message["Subject"]) == "【テスト】佐藤 花子様、その後いかがですか"
        assert str(message["X-Kizuna-Test"]) == "test/after/1"
        assert "1回目のご注文ありがとうございました" in message.get_body(("plain",)).get_content()
        assert (done.customer_id, done.address, done.channel) == ("C1", OPS_MAIL, "email")
        assert _keys(ws) == {} and ws.results() == []
        # it counts against no frequency cap: with a cap of one message, C1 still gets the real one
        report = ws.run(now=at("2026-11-30 16:00"), transports=email_only(ws))
        mails = server.wait_for(2)
    assert report.tallies[("after", 1)].counts["sent"] == 1
    assert list(mails[1].rcpt_tos) == ["hanako@example.jp"] and "X-Kizuna-Test" not in mails[1].message()
    assert [(r["user"], r["action"], r["what"], r["count"]) for r in audit_lines(ws.operations)] == [
        ("hanako", "scenario.test", "after/1", 1)]


@pytest.mark.slow
def test_kizuna_scenario_test_from_the_command_line(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, scenarios={"after": TWO_STEPS})
        path = ws.path
        ws.close()
        done = _kizuna("scenario", "test", "after", "--to", OPS_MAIL, "--customer", "C2", "--dir", str(path))
        [mail] = server.wait_for(1)
        wrong = subprocess.run([*KIZUNA, "scenario", "test", "after", "--step", "2", "--to", OPS_MAIL, "--dir",
                                str(path)], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == (f"テストを {OPS_MAIL} に送りました (「購入後のご案内」ステップ1、顧客 C2 の内容)。")
    # C2 gave no e-mail consent: a test shows their message all the same, to the operator only
    assert list(mail.rcpt_tos) == [OPS_MAIL]
    assert str(mail.message()["Subject"]) == "【テスト】鈴木 一郎様、その後いかがですか"
    assert wrong.returncode == 1 and "--line" in wrong.stderr and server.count == 1
    with Workspace.open(path) as again:
        assert _keys(again) == {}
        assert [r["action"] for r in audit_lines(again.operations)] == ["scenario.test"]
        assert re.fullmatch(r".+@.+", audit_lines(again.operations)[0]["user"])


@pytest.mark.slow
def test_a_line_test_send_goes_to_the_operators_line_id(tmp_path, monkeypatch):
    with LineServer() as line:
        monkeypatch.setenv("KIZUNA_LINE_TOKEN", line.token)
        ws = shop(tmp_path, scenarios={"after": TWO_STEPS}, line={"api_base": line.api_base})
        transports = {"line": lambda: LineTransport.from_settings(ws.settings.line)}
        done = ws.send_test("after", user="hanako", step=2, line_user_id=OPS_LINE, transports=transports)
        pushes = line.pushes
    assert [(p.to, p.text) for p in pushes] == [(OPS_LINE, "【テスト】佐藤 花子様、LINEでもご案内します。")]
    assert done.customer_id == "C1"  # no customer named: the first of the store (no audience)
    assert LINE_USER not in [p.to for p in pushes] and _keys(ws) == {}
    with pytest.raises(KizunaError, match="LINE"):
        ws.send_test("after", user="hanako", step=2, email=OPS_MAIL, transports=transports)


# -- the web app -------------------------------------------------------------------------------------------
class Browser:
    """The web app in-process (httpx.ASGITransport), keeping its cookies from one request to the next."""

    def __init__(self, app) -> None:
        self.app = app
        self.cookies = httpx.Cookies()

    def request(self, method: str, url: str, **options) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                         cookies=self.cookies) as http:
                response = await http.request(method, url, **options)
                self.cookies = httpx.Cookies(http.cookies)
                return response

        return anyio.run(go)

    def csrf(self, url: str = "/scenarios") -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.request("GET", url).text).group(1)

    def login(self, user: tuple[str, str]) -> Browser:
        page = self.request("GET", "/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        done = self.request("POST", "/login", data={"csrf": token, "name": user[0], "password": user[1], "next": "/"})
        assert done.status_code == 303, done.text
        return self


def _site(ws: Workspace) -> Path:
    ops = Operations(ws.path / OPERATIONS_FILE)
    ops.add_user(OPERATOR[0], "operator", hash_password(OPERATOR[1]))
    ops.add_user(VIEWER[0], "viewer", hash_password(VIEWER[1]))
    ops.close()
    path = ws.path
    ws.close()
    return path


def _state(path: Path) -> str:
    """The scenario's state as the operational records keep it (the web app holds the store meanwhile)."""
    from kizuna.scenarios import load_scenarios, scenario_states

    ops = Operations(path / OPERATIONS_FILE)
    try:
        return scenario_states(ops, load_scenarios(path / "scenarios"))[0].state
    finally:
        ops.close()


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.slow
def test_the_web_pages_operator_switches_viewer_sees_csrf_required(tmp_path):
    with SmtpServer() as server:
        path = _site(shop(tmp_path, server, scenarios={"after": TWO_STEPS}, delivery=ANY_HOUR))
        app = create_app(path, warm=False, logins_per_minute=10_000)
        try:
            anonymous = Browser(app)
            for method, url in (("GET", "/scenarios"), ("GET", "/scenarios/after"),
                                ("POST", "/scenarios/after/switch")):
                answer = anonymous.request(method, url, data={"state": "off"} if method == "POST" else None)
                assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), url
            operator, viewer = Browser(app).login(OPERATOR), Browser(app).login(VIEWER)
            listing = operator.request("GET", "/scenarios")
            assert listing.status_code == 200
            assert "購入後のご案内" in listing.text and "after.yaml" not in listing.text
            assert re.search(r'data-step="1">1\. メール — 送信予定 1件', listing.text)
            page = operator.request("GET", "/scenarios/after")
            row = re.search(r'<tr data-step="1">.*?</tr>', page.text, re.S).group(0)
            counts = dict(re.findall(r'data-count="(\w+)">([\d,]+)<', row))
            assert {k: counts[k] for k in ("enrolled", "would_send", "suppressed")} == {
                "enrolled": "3", "would_send": "1", "suppressed": "2"}

            # a viewer sees, never acts: no switch, and a POST with a valid token is refused
            seen = viewer.request("GET", "/scenarios")
            assert seen.status_code == 200 and "data-switch" not in seen.text
            refused = viewer.request("POST", "/scenarios/after/switch", data={"csrf": viewer.csrf(), "state": "off"})
            assert refused.status_code == 403
            # an operator without the form's token is refused too
            forged = operator.request("POST", "/scenarios/after/switch", data={"state": "off"})
            assert forged.status_code == 403
            assert _state(path) == "on"

            done = operator.request("POST", "/scenarios/after/switch",
                                    data={"csrf": operator.csrf(), "state": "paused", "next": "/scenarios/after"})
            assert (done.status_code, done.headers["location"]) == (303, "/scenarios/after")
            after = operator.request("GET", "/scenarios/after")
            assert 'id="state"' in after.text and "一時停止" in _text(after.text)
            assert "今オンにした場合の件数" in after.text  # paused: what it would do if switched on now
            assert _state(path) == "paused"
            ops = Operations(path / OPERATIONS_FILE)
            assert [(r["user"], r["action"]) for r in audit_lines(ops)] == [("ops", "scenario.paused")]
            ops.close()

            # a viewer's preview masks contact data; an operator's shows it
            assert "●●●様、その後いかがですか" in viewer.request("GET", "/scenarios/after?customer=C1").text
            assert "佐藤 花子様、その後いかがですか" in operator.request("GET", "/scenarios/after?customer=C1").text

            # send me a test: to the operator's own address, kept on their account
            ops = Operations(path / OPERATIONS_FILE)
            set_user_contact(ops, OPERATOR[0], email=OPS_MAIL, line_user_id=None)
            ops.close()
            page = operator.request("GET", "/scenarios/after?customer=C1")
            assert f"送信先: {OPS_MAIL}" in page.text
            sent = operator.request("POST", "/scenarios/after/test",
                                    data={"csrf": operator.csrf(), "step": "1", "customer": "C1"})
            assert sent.status_code == 303, sent.text
            [mail] = server.wait_for(1)
            assert list(mail.rcpt_tos) == [OPS_MAIL]
            assert str(mail.message()["Subject"]).startswith("【テスト】")
            assert viewer.request("POST", "/scenarios/after/test",
                                  data={"csrf": viewer.csrf(), "step": "1"}).status_code == 403
            bad = operator.request("POST", "/me/contact", data={"csrf": operator.csrf(), "email": "not an address"})
            assert bad.status_code == 400
        finally:
            app.state.kizuna.reader.close()
    assert server.count == 1
    with Workspace.open(path) as ws:
        assert _keys(ws) == {}


@pytest.mark.slow
def test_every_label_of_the_pages_is_in_both_languages(tmp_path):
    path = _site(shop(tmp_path, scenarios={"after": TWO_STEPS}))
    app = create_app(path, warm=False, lang="en", logins_per_minute=10_000)
    try:
        operator = Browser(app).login(OPERATOR)
        page = _text(operator.request("GET", "/scenarios/after?customer=C1").text)
    finally:
        app.state.kizuna.reader.close()
    assert "switch." not in page and "run_" not in page
    assert "Due at the next run" in page and "Send me a test" in page and "Give your own e-mail address" in page


# -- the records on both engines ---------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def records(request: pytest.FixtureRequest, tmp_path: Path):
    location = request.getfixturevalue("postgres_database") if request.param == "postgres" else \
        str(tmp_path / OPERATIONS_FILE)
    ops = Operations(location)
    yield ops
    ops.close()


def test_switches_audit_and_test_addresses_read_back_the_same_on_both_engines(records: Operations):
    Ledger(records).enrol([Enrolment(key=f"s/2/C{i}/o", ref=f"{i:032x}", scenario="s", step=2, customer_id=f"C{i}",
                                     occasion="o", occasion_ts=1, detail=None, channel="email", transactional=False,
                                     due_ts=10) for i in (1, 2)])
    records.query("SELECT 1")  # a read between writes, as the web app does
    cancelled = record_switch(records, SwitchRecord("s", "off", "hanako", 100), cancel_note="switched off")
    record_switch(records, SwitchRecord("t", "on", "jiro", 200, "2026-12-01", True))
    assert cancelled == 2
    assert switch_records(records) == {"s": SwitchRecord("s", "off", "hanako", 100),
                                       "t": SwitchRecord("t", "on", "jiro", 200, "2026-12-01", True)}
    assert {r["status"] for r in records.query("SELECT status FROM deliveries")} == {"cancelled"}
    take_baselines(records, ["t"])
    assert not switch_records(records)["t"].baseline
    record_audit(records, "hanako", "scenario.off", "s", 2, at=100)
    record_audit(records, "hanako", "scenario.test", "s/1", 1, at=101)
    record_audit(records, "jiro", "campaign.send", "spring", 500, at=102)
    assert [tuple(r) for r in audit_lines(records, what="s")] == [(101, "hanako", "scenario.test", "s/1", 1),
                                                                   (100, "hanako", "scenario.off", "s", 2)]
    assert [r["what"] for r in audit_lines(records, prefix="campaign.")] == ["spring"]
    set_user_contact(records, "hanako", email=OPS_MAIL, line_user_id="")
    assert user_contact(records, "hanako") == {"email": OPS_MAIL, "line_user_id": None}
    assert user_contact(records, "nobody") == {"email": None, "line_user_id": None}
