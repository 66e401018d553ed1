"""One-off campaigns (issue #23, items 1, 2, 6, 7): campaigns/NAME.yaml sent through the send ledger to a
real SMTP server (aiosmtpd) — each recipient once, the holdout and the customers without consent
never, the A/B variants by a stable hash near their shares, a second send sending nothing, quiet
hours deferring, `send_at` honoured by `kizuna run`, `[delivery] confirm_over` refusing without
--yes, a dry run sending and recording nothing — their results per variant against the holdout,
and the campaign pages in-process (operators act, viewers get 403, CSRF required, a big send
confirmed first)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import pytest
from test_segments_saved import Browser, words

from kizuna.delivery._smtp import SmtpTransport
from kizuna.operations import OPERATIONS_FILE, Operations, audit_lines
from kizuna.scenarios import ScenarioError, group_of, load_campaign
from kizuna.workspace import Settings, Workspace

from factories import arrow_rows, day, workspace_with
from smtp_server import SmtpServer

KIZUNA = [sys.executable, "-m", "kizuna"]
JST = zoneinfo.ZoneInfo("Asia/Tokyo")
CUSTOMERS = 60
NO_CONSENT, UNSUBSCRIBED = "P05", "P07"
SPRING = """\
title: {ja: 春のメルマガ, en: Spring newsletter}
segment: buyers
channel: email
subject: {ja: "{{ name }}様 春のお知らせ", en: "Spring news for {{ name }}"}
body:
  ja: "{{ name }}様\\nいつもありがとうございます。"
  en: "Dear {{ name }}, thank you."
holdout: 0.2
ab:
  - {name: A, share: 0.5}
  - {name: B, share: 0.5, subject: {ja: "【限定】{{ name }}様へ", en: "Just for you"}}
"""


def at(text: str) -> dt.datetime:
    """A moment in Japan: '2026-12-01 10:00' (a Tuesday, no holiday)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=JST)


ANY_HOUR = {"quiet_start": "00:00", "quiet_end": "00:00", "skip_holidays": False}


def shop(tmp_path: Path, server: SmtpServer | None = None, *, campaign: str = SPRING, **sections) -> Workspace:
    """60 customers P00…P59 who each ordered once in October, with e-mail; P05 gave no consent, P07
    unsubscribed since. The saved segment `buyers` is everyone who ordered; the campaign `spring`
    goes to it by e-mail in two variants, 20 % held out (no global control)."""
    ws = workspace_with(
        tmp_path / "shop",
        customers=[{"customer_id": f"P{n:02d}", "name": f"顧客{n:02d}", "email": f"p{n:02d}@example.jp",
                    "email_opt_in": f"P{n:02d}" != NO_CONSENT} for n in range(CUSTOMERS)],
        orders=[{"order_id": f"O{n:02d}", "customer_id": f"P{n:02d}", "ordered_at": day(f"2026-10-{1 + n % 28:02d}"),
                 "amount": 1000 * (1 + n % 5)} for n in range(CUSTOMERS)],
    )
    for old in (ws.path / "scenarios").glob("*.yaml"):
        old.unlink()
    # no quiet hours or holidays: what sends at the machine's clock (the CLI, the web page) would
    # otherwise wait for the morning when the tests run at night in Japan; the night test sets its own
    values = {"delivery": {"holdout_share": 0.1, "global_control_share": 0.0, **ANY_HOUR},
              "web": {"public_url": "https://shop.example.jp/k"},
              "email": {"sender": "水の森 <info@mizunomori.example.jp>", "sender_address": "東京都港区1-2-3",
                        "sender_contact": "0120-000-000"},
              "analysis": {"as_of": "2026-11-30"}}
    for name, changes in sections.items():
        values[name] = {**values.get(name, {}), **changes}
    if server is not None:
        values["email"]["smtp_url"] = server.url
    ws.save_settings(Settings().replace(**values))
    ws.analyze()
    ws.operations.set_consent("email", UNSUBSCRIBED, False, source="unsubscribe")
    ws.save_segment("buyers", ["orders >= 1"], title={"ja": "購入者", "en": "Buyers"})
    (ws.path / "campaigns").mkdir(exist_ok=True)
    (ws.path / "campaigns" / "spring.yaml").write_text(campaign, encoding="utf-8")
    return ws


def email_only(ws: Workspace) -> dict:
    return {"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)}


def groups(ws: Workspace) -> dict[str, tuple[str, int]]:
    """customer -> (group, variant) as the campaign's hashes put them, worked out apart from the send."""
    campaign = ws.campaign("spring")
    secret = ws.operations.secret()
    return {f"P{n:02d}": (group_of(f"P{n:02d}", "campaign:spring", secret=secret, holdout=0.2, global_control=0.0),
                          campaign.variant_of(f"P{n:02d}")) for n in range(CUSTOMERS)}


def ledger(ws: Workspace) -> dict[str, tuple[str, int, str]]:
    rows = ws.operations.query("SELECT customer_id, grp, step, status FROM deliveries WHERE scenario = ?",
                               ("campaign:spring",))
    return {r["customer_id"]: (r["grp"], r["step"], r["status"]) for r in rows}


@pytest.mark.slow
def test_each_recipient_gets_one_email_of_their_variant_and_a_second_send_sends_nothing(tmp_path: Path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server)
        expected = groups(ws)
        treated = {c for c, (g, _) in expected.items() if g == "treated"}
        reachable = treated - {NO_CONSENT, UNSUBSCRIBED}
        report = ws.send_campaign("spring", now=at("2026-12-01 10:00"), transports=email_only(ws), by="hanako")
        mails = server.wait_for(len(reachable))
        again = ws.send_campaign("spring", now=at("2026-12-01 11:00"), transports=email_only(ws), by="hanako")
        time.sleep(0.2)
        assert server.count == len(reachable)  # the second send found nothing new to send
    assert 0 < len(treated) < CUSTOMERS and again.total("sent") == 0 and again.total("enrolled") == 0
    assert report.total("sent") == len(reachable) and report.total("enrolled") == CUSTOMERS
    received = sorted(m.rcpt_tos[0] for m in mails)
    assert received == sorted(f"{c.lower()}@example.jp" for c in reachable)  # each once
    for mail in mails:
        customer = mail.rcpt_tos[0].split("@")[0].upper()
        message = mail.message()
        name = f"顧客{customer[1:]}"
        variant = expected[customer][1]
        assert str(message["Subject"]) == (f"{name}様 春のお知らせ" if variant == 1 else f"【限定】{name}様へ")
        assert str(message["List-Unsubscribe"]).startswith("<https://shop.example.jp/k/u/")
        assert "東京都港区1-2-3" in message.get_body(("plain",)).get_content()  # 特定電子メール法
    rows = ledger(ws)
    assert {c: (g, v) for c, (g, v, _) in rows.items()} == expected  # every member once, in its group and variant
    assert {c for c, (_, _, s) in rows.items() if s == "holdout"} == {c for c, (g, _) in expected.items()
                                                                     if g != "treated"}
    assert {c: s for c, (_, _, s) in rows.items() if c in (NO_CONSENT, UNSUBSCRIBED)} == {
        c: "suppressed" for c in (NO_CONSENT, UNSUBSCRIBED) if c in treated}
    assert [(r["user"], r["action"], r["what"], r["count"]) for r in audit_lines(ws.operations)][0] == (
        "hanako", "campaign.send", "spring", len(treated))
    assert ws.campaign_state("spring")["state"] == "sent"
    ws.close()


@pytest.mark.slow
def test_quiet_hours_defer_and_kizuna_run_sends_at_send_at_once(tmp_path: Path):
    timed = SPRING + "send_at: 2026-12-01 10:00\n"
    with SmtpServer() as server:
        ws = shop(tmp_path, server, campaign=timed)
        reachable = {c for c, (g, _) in groups(ws).items() if g == "treated"} - {NO_CONSENT, UNSUBSCRIBED}
        early = ws.run(now=at("2026-12-01 09:30"), transports=email_only(ws))
        assert early.total("enrolled") == 0 and ws.campaign_state("spring")["state"] == "scheduled"
        due = ws.run(now=at("2026-12-01 10:05"), transports=email_only(ws))
        server.wait_for(len(reachable))
        later = ws.run(now=at("2026-12-01 12:00"), transports=email_only(ws))
        time.sleep(0.2)
        assert server.count == len(reachable)
    assert due.total("sent") == len(reachable) and later.total("enrolled") == later.total("sent") == 0

    with SmtpServer() as server:
        ws = shop(tmp_path / "night", server, delivery={"quiet_start": "21:00", "quiet_end": "09:00"})
        late = ws.send_campaign("spring", now=at("2026-12-01 23:00"), transports=email_only(ws))
        time.sleep(0.2)
        assert server.count == 0 and late.total("deferred") == len(reachable)
        morning = ws.run(now=at("2026-12-02 09:05"), transports=email_only(ws))
        server.wait_for(len(reachable))
        assert morning.total("sent") == len(reachable)


def test_the_ab_split_is_a_stable_hash_near_its_shares(tmp_path: Path):
    path = tmp_path / "spring.yaml"
    path.write_text(SPRING.replace("share: 0.5}", "share: 0.7}", 1).replace("share: 0.5,", "share: 0.3,"),
                    encoding="utf-8")
    campaign = load_campaign(path)
    ids = [f"X{n:05d}" for n in range(20_000)]
    variants = [campaign.variant_of(i) for i in ids]
    assert abs(variants.count(1) / len(ids) - 0.7) < 0.02  # the standard error is 0.003
    loaded_again = load_campaign(path)
    assert [loaded_again.variant_of(i) for i in ids] == variants  # the same, whatever the day or process
    held = [group_of(i, campaign.ledger_name, secret="s", holdout=0.2, global_control=0.05) for i in ids]
    assert abs(held.count("holdout") / len(ids) - 0.2 * 0.95) < 0.02
    assert abs(held.count("global_control") / len(ids) - 0.05) < 0.01


@pytest.mark.slow
def test_confirm_over_refuses_without_yes_and_a_dry_run_sends_nothing(tmp_path: Path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, delivery={"confirm_over": 10})
        reachable = {c for c, (g, _) in groups(ws).items() if g == "treated"} - {NO_CONSENT, UNSUBSCRIBED}
        ws.close()
        home = str(tmp_path / "shop")

        def kizuna(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*KIZUNA, "campaign", *args, "--dir", home, "--lang", "en"], capture_output=True,
                                  text=True, check=False)

        refused = kizuna("send", "spring")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr == (f"error: this sends {len(reachable)} messages by e-mail, more than [delivery] "
                                  "confirm_over (10): check and run again with --yes.\n")
        dry = kizuna("send", "spring", "--dry-run", "-f", "json")
        assert dry.returncode == 0, dry.stderr
        assert '"dry_run": true' in dry.stdout
        ops = Operations(tmp_path / "shop" / OPERATIONS_FILE)
        assert ops.query("SELECT COUNT(*) AS n FROM deliveries")[0]["n"] == 0 and server.count == 0
        shown = kizuna("show", "spring")
        assert f"messages to send │ {len(reachable)}" in " ".join(shown.stdout.split())
        sent = kizuna("send", "spring", "--yes")
        assert sent.returncode == 0, sent.stderr
        server.wait_for(len(reachable))
        assert ops.query("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'sent'")[0]["n"] == len(reachable)
        assert audit_lines(ops)[0]["user"].count("@") == 1  # the machine's user@host
        ops.close()


@pytest.mark.slow
def test_results_per_variant_against_the_holdout(tmp_path: Path):
    ws = shop(tmp_path)
    ws.send_campaign("spring", now=at("2026-12-01 10:00"), transports={})  # no server: the rows wait, enrolled
    expected = groups(ws)
    first = sorted(c for c, (g, v) in expected.items() if g == "treated" and v == 1)
    second = sorted(c for c, (g, v) in expected.items() if g == "treated" and v == 2)
    held = sorted(c for c, (g, _) in expected.items() if g != "treated")
    bought = [first[0], first[1], held[0]]  # two of variant A and one held out order on 5 December
    ws.store.append("orders", arrow_rows("orders", [
        {"order_id": f"N{i}", "customer_id": c, "ordered_at": day("2026-12-05"), "amount": 3000}
        for i, c in enumerate(bought)]))
    rows = {r["step"]: r for r in ws.results("spring", as_of=dt.date(2026, 12, 10), lang="en")}
    assert set(rows) == {"A", "B", None} and all(r["kind"] == "campaign" for r in rows.values())
    a, b, total = rows["A"], rows["B"], rows[None]
    assert (a["scenario"], a["title"]) == ("spring", "Spring newsletter")
    assert (a["treated_customers"], a["control_customers"]) == (len(first), len(held))
    assert a["treated_rate"] == pytest.approx(2 / len(first)) and a["control_rate"] == pytest.approx(1 / len(held))
    assert a["uplift"] == pytest.approx(2 / len(first) - 1 / len(held))
    assert b["treated_rate"] == 0 and b["control_customers"] == len(held)
    assert total["treated_customers"] == len(first) + len(second)
    assert total["treated_rate"] == pytest.approx(2 / (len(first) + len(second)))
    assert total["holdout"] == len(held) and a["low"] < a["uplift"] < a["high"]
    assert not [r for r in ws.results(lang="en") if r["scenario"].startswith("campaign:")]  # named as people wrote it
    ws.close()


@pytest.mark.parametrize(("change", "line", "problem"), [
    (("share: 0.5}", "share: 0.6}"), 10, "ab: the variants' shares add up to 1.1; make them add up to 1 (100%)."),
    (("channel: email", "channel: fax"), 3, "channel: must be one of email, line, insert, dm, call, got 'fax'."),
    (("holdout: 0.2", "send_at: tomorrow"), 8, "send_at: 'tomorrow' is not a date and time; write it like "
                                              "2027-03-01 10:00."),
    (('  ja: "{{ name }}様\\nいつもありがとうございます。"', "  ja: |\n    {{ name 様\n    いつも"), 7,
     "body.ja: template error:"),
])
def test_a_mistake_in_a_campaign_file_names_the_file_line_and_field(tmp_path: Path, change: tuple[str, str],
                                                                    line: int, problem: str):
    path = tmp_path / "spring.yaml"
    path.write_text(SPRING.replace(*change, 1), encoding="utf-8")
    with pytest.raises(ScenarioError) as raised:
        load_campaign(path)
    assert str(raised.value).startswith(f"{path}:{line}: {problem}")


# -- the campaign pages (web, in-process) ------------------------------------------------------------------------
def with_users(path: Path) -> Path:
    from kizuna.web import hash_password

    ops = Operations(path / OPERATIONS_FILE)
    ops.add_user("ops", "operator", hash_password("operator-password"))
    ops.add_user("look", "viewer", hash_password("viewer-password"))
    ops.close()
    return path


@pytest.mark.slow
def test_an_operator_saves_previews_confirms_and_sends_from_the_page(tmp_path: Path):
    with SmtpServer() as server:
        # no quiet hours or holidays: the page's send runs now, whatever the clock says
        ws = shop(tmp_path, server, delivery={"confirm_over": 10, "quiet_start": "00:00", "quiet_end": "00:00",
                                              "skip_holidays": False})
        reachable = {c for c, (g, _) in groups(ws).items() if g == "treated"} - {NO_CONSENT, UNSUBSCRIBED}
        path = with_users(ws.path)
        ws.close()
        browser = Browser(path, ("ops", "operator-password"))
        try:
            token = browser.csrf("/campaigns/new")
            form = {"csrf": token, "name": "autumn", "title_ja": "秋のお知らせ", "title_en": "Autumn news",
                    "segment": "buyers", "channel": "email", "lang": "ja", "subject_ja": "{{ name }}様へ",
                    "body_ja": "{{ name }}様、こんにちは。", "holdout": "10", "goal_days": "14", "ab": "1",
                    "v0_name": "A", "v0_share": "60", "v1_name": "B", "v1_share": "40",
                    "v1_subject_ja": "【秋】{{ name }}様へ"}
            saved = browser.request("POST", "/campaigns/save", data=form)
            assert saved.status_code == 303 and saved.headers["location"] == "/campaigns/autumn?saved=1"
            autumn = load_campaign(path / "campaigns" / "autumn.yaml")
            assert [(v.name, v.share, v.subject["ja"]) for v in autumn.variants] == [
                ("A", 0.6, "{{ name }}様へ"), ("B", 0.4, "【秋】{{ name }}様へ")]
            assert (autumn.holdout, autumn.goal.days) == (0.1, 14)
            wrong = browser.request("POST", "/campaigns/save", data={**form, "v1_share": "50"})
            assert wrong.status_code == 400
            assert "パターンの share の合計が 1.1 です。" in words(wrong.text) and 'value="50"' in wrong.text
            preview = browser.get("/campaigns/spring?customer=P01&variant=B")
            assert "【限定】顧客01様へ" in words(preview.text)
            page = words(browser.get("/campaigns/spring").text)
            assert f"送信数 {len(reachable)} 件 (メール)" in page and "下書き" in page
            token = browser.csrf("/campaigns/spring")
            asked = browser.request("POST", "/campaigns/spring/send", data={"csrf": token})
            assert asked.status_code == 200 and "送信の確認" in words(asked.text)  # over confirm_over: asked first
            assert server.count == 0
            sent = browser.request("POST", "/campaigns/spring/send", data={"csrf": token, "confirm": len(reachable)})
            assert sent.status_code == 303 and sent.headers["location"] == "/campaigns/spring?started=1"
            server.wait_for(len(reachable), timeout=60)  # a `kizuna campaign send` process of its own
            ops = Operations(path / OPERATIONS_FILE)
            deadline = time.monotonic() + 30
            while ops.query("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'sent'")[0]["n"] < len(reachable):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            lines = [(r["user"], r["action"], r["what"]) for r in audit_lines(ops, prefix="campaign.")]
            assert lines[:2] == [("ops", "campaign.send", "spring"), ("ops", "campaign.save", "autumn")]
            shown = words(browser.get("/campaigns/spring").text)
            assert "送信済み" in shown and f"送信 {len(reachable)}" in shown and "送信 (台帳に登録)" in shown
            assert "送信済み" in words(browser.get("/campaigns").text)
        finally:
            browser.close()


@pytest.mark.slow
def test_a_viewer_sees_but_may_not_act_and_every_post_needs_the_token(tmp_path: Path):
    ws = shop(tmp_path, delivery={"confirm_over": 10})
    path = with_users(ws.path)
    ws.close()
    viewer = Browser(path, ("look", "viewer-password"))
    try:
        page = viewer.get("/campaigns/spring?customer=P01")
        assert page.status_code == 200 and 'id="send-now"' not in page.text
        assert "●●●様 春のお知らせ" in words(page.text)  # contact data masked in the preview
        token = viewer.csrf("/campaigns/spring")
        for url, data in (("/campaigns/spring/send", {"confirm": "99"}), ("/campaigns/spring/schedule",
                                                                          {"send_at": "2026-12-01T10:00"}),
                          ("/campaigns/save", {"name": "x", "segment": "buyers", "channel": "email"})):
            assert viewer.request("POST", url, data={"csrf": token, **data}).status_code == 403
    finally:
        viewer.close()
    operator = Browser(path, ("ops", "operator-password"))
    try:
        assert operator.request("POST", "/campaigns/spring/schedule",
                                data={"send_at": "2026-12-01T10:00"}).status_code == 403  # no token
        token = operator.csrf("/campaigns/spring")
        asked = operator.request("POST", "/campaigns/spring/schedule", data={"csrf": token,
                                                                            "send_at": "2026-12-01T10:00"})
        assert asked.status_code == 200 and "2026-12-01 10:00 に" in words(asked.text)  # confirmed first
        assert load_campaign(path / "campaigns" / "spring.yaml").send_at is None
        n = Workspace.open(path, read_only=True).campaign_plan("spring").to_send
        done = operator.request("POST", "/campaigns/spring/schedule", data={"csrf": token, "confirm": str(n),
                                                                           "send_at": "2026-12-01T10:00"})
        assert done.status_code == 303
        assert load_campaign(path / "campaigns" / "spring.yaml").send_at == dt.datetime(2026, 12, 1, 10)
        lines = audit_lines(Operations(path / OPERATIONS_FILE), prefix="campaign.")
        assert [(r["user"], r["action"], r["count"]) for r in lines] == [("ops", "campaign.schedule", n)]
    finally:
        operator.close()


@pytest.mark.slow
def test_a_campaign_file_with_a_mistake_is_a_line_of_the_run_not_its_end(tmp_path: Path):
    ws = shop(tmp_path, campaign=SPRING + "send_at: 2026-12-01 10:00\n")
    broken = ws.path / "campaigns" / "broken.yaml"
    broken.write_text(SPRING.replace("channel: email", "channel: fax"), encoding="utf-8")
    report = ws.run(now=at("2026-12-01 10:05"), dry_run=True)
    assert [str(p) for p in report.problems] == [f"{broken}:3: channel: must be one of email, line, insert, dm, "
                                                 "call, got 'fax'."]
    assert report.total("enrolled") == CUSTOMERS  # spring goes on
    ws.close()
