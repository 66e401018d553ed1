"""`kizuna run` end to end: scenarios evaluated on a hand-built store, messages delivered to a
real SMTP server (aiosmtpd) and a local server that follows LINE's push contract, checked by
what arrived; the ledger's guarantees (exactly once across SIGKILL, opt-outs, the frequency
cap, quiet hours across midnight and a public holiday, stable holdouts)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zoneinfo
from pathlib import Path

import pytest

from kizuna._errors import KizunaError
from kizuna.delivery._line import LineTransport
from kizuna.delivery._smtp import SmtpTransport
from kizuna.operations import Operations
from kizuna.scenarios import ScenarioError, group_of, load_scenario
from kizuna.workspace import Settings, Workspace

from factories import day, workspace_with
from line_server import LineServer
from smtp_server import SmtpServer

JST = zoneinfo.ZoneInfo("Asia/Tokyo")
LINE_USER = "U" + "a" * 32

THANK_YOU = """\
title: {ja: お礼, en: Thank you}
trigger: {after_order: {days: 1}}
goal: {kind: order, days: 30}
steps:
  - channel: email
    subject: {ja: "{{ name }}様、ありがとうございます", en: "Thank you, {{ name }}"}
    body:
      ja: "{{ name }}様\\n{{ orders_so_far }}回目のご注文、{{ spent_so_far | yen }}でした。\\n\\
        アンケート: {{ survey_url }}"
      en: "Dear {{ name }}, order number {{ orders_so_far }}."
"""


def at(text: str) -> dt.datetime:
    """A moment in Japan: '2026-11-30 10:00'."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=JST)


def shop(tmp_path: Path, server: SmtpServer | None = None, *, scenarios: dict[str, str], **sections) -> Workspace:
    """Three customers who ordered on 2026-11-28; only C1 may get e-mail (C2 gave no consent,
    C3 unsubscribed), only C1 has LINE."""
    ws = workspace_with(
        tmp_path / "shop",
        customers=[
            {"customer_id": "C1", "name": "佐藤 花子", "email": "hanako@example.jp", "email_opt_in": True,
             "line_user_id": LINE_USER, "line_opt_in": True, "address": "東京都千代田区1-1", "phone": "0312345678"},
            {"customer_id": "C2", "name": "鈴木 一郎", "email": "ichiro@example.jp", "email_opt_in": False},
            {"customer_id": "C3", "name": "高橋 三郎", "email": "saburo@example.jp", "email_opt_in": True},
        ],
        orders=[
            {"order_id": f"O{n}", "customer_id": f"C{n}", "ordered_at": day("2026-11-28", 15), "amount": 3240 * n}
            for n in (1, 2, 3)
        ],
    )
    folder = ws.path / "scenarios"
    for old in folder.glob("*.yaml"):
        old.unlink()
    for name, text in scenarios.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    values = {"delivery": {"holdout_share": 0.0, "global_control_share": 0.0},
              "web": {"public_url": "https://shop.example.jp/k"},
              "email": {"sender": "水の森 <info@mizunomori.example.jp>", "sender_address": "東京都港区1-2-3",
                        "sender_contact": "0120-000-000"},
              "analysis": {"as_of": "2026-11-30"}}
    for name, changes in sections.items():  # e.g. delivery={"cap_messages": 2}
        values[name] = {**values.get(name, {}), **changes}
    if server is not None:
        values["email"]["smtp_url"] = server.url
    ws.save_settings(Settings().replace(**values))
    ws.operations.set_consent("email", "C3", False, source="unsubscribe")
    return ws


def email_only(ws: Workspace) -> dict:
    return {"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)}


@pytest.mark.slow
def test_an_email_arrives_once_with_the_one_click_unsubscribe_and_the_personal_figures(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, scenarios={"thank-you": THANK_YOU})
        report = ws.run(now=at("2026-11-30 10:00"), transports=email_only(ws))
        mails = server.wait_for(1)
        again = ws.run(now=at("2026-11-30 11:00"), transports=email_only(ws))
        time.sleep(0.2)
        assert server.count == 1  # the second run found nothing new to send

    counts = report.tallies[("thank-you", 1)].counts
    assert (counts["enrolled"], counts["sent"], counts["suppressed"]) == (3, 1, 2)
    assert again.total("sent") == 0 and again.total("enrolled") == 0
    mail = mails[0]
    assert list(mail.rcpt_tos) == ["hanako@example.jp"]
    message = mail.message()
    ref = ws.operations.query("SELECT ref FROM deliveries WHERE customer_id = 'C1'")[0]["ref"]
    assert message["Message-ID"] == f"<{ref}@mizunomori.example.jp>"
    assert str(message["Subject"]) == "佐藤 花子様、ありがとうございます"
    unsubscribe = str(message["List-Unsubscribe"])
    assert unsubscribe.startswith("<https://shop.example.jp/k/u/") and unsubscribe.endswith(">")
    assert ws.links.read_unsubscribe(unsubscribe[1:-1].rsplit("/", 1)[1]) == ref
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert "1回目のご注文、¥3,240でした" in part
        assert "東京都港区1-2-3" in part and "0120-000-000" in part  # 特定電子メール法
        assert "https://shop.example.jp/k/u/" in part  # a visible unsubscribe link
    survey = next(w for w in text.split() if "/k/s/" in w)
    assert ws.operations.survey(ws.links.read_survey(survey.rsplit("/", 1)[1]))["customer_id"] == "C1"
    notes = {r["customer_id"]: r["note"] for r in ws.operations.query("SELECT customer_id, note FROM deliveries")}
    assert notes == {"C1": None, "C2": "no e-mail consent recorded", "C3": "opted out"}

    results = {(r["scenario"], r["step"]): r for r in ws.results()}
    step = results[("thank-you", 1)]
    assert (step["due"], step["sent"], step["delivered"], step["suppressed"], step["failed"]) == (3, 1, 1, 2, 0)


def test_dry_run_shows_the_messages_and_records_nothing(tmp_path):
    ws = shop(tmp_path, scenarios={"thank-you": THANK_YOU})
    report = ws.run(now=at("2026-11-30 10:00"), dry_run=True)
    assert report.tallies[("thank-you", 1)].counts["would_send"] == 1
    assert report.samples[0]["subject"] == "佐藤 花子様、ありがとうございます"
    assert ws.operations.query("SELECT COUNT(*) AS n FROM deliveries")[0]["n"] == 0
    assert ws.operations.query("SELECT COUNT(*) AS n FROM survey_links")[0]["n"] == 0


@pytest.mark.slow
def test_quiet_hours_across_midnight_and_a_public_holiday_defer_never_drop(tmp_path):
    # New Year's Eve 23:30 is quiet, 元日 is a public holiday all day: the e-mail enrolled on
    # 2026-11-28 and due since then waits for 2 January, 09:00
    ws = shop(tmp_path, scenarios={"thank-you": THANK_YOU.replace("days: 1", "days: 0")},
              analysis={"as_of": "2026-11-28"})
    with SmtpServer() as server:
        ws.save_settings(ws.settings.replace(email={"smtp_url": server.url}))
        night = ws.run(dt.date(2026, 11, 28), now=at("2026-12-31 23:30"), transports=email_only(ws))
        holiday = ws.run(dt.date(2026, 11, 28), now=at("2027-01-01 12:00"), transports=email_only(ws))
        early = ws.run(dt.date(2026, 11, 28), now=at("2027-01-02 08:59"), transports=email_only(ws))
        assert server.count == 0
        morning = ws.run(dt.date(2026, 11, 28), now=at("2027-01-02 09:00"), transports=email_only(ws))
        server.wait_for(1)
    # deferred once, to the first moment that is neither quiet nor a holiday; not due before it
    assert [r.total("deferred") for r in (night, holiday, early)] == [1, 0, 0]
    assert [r.total("sent") for r in (night, holiday, early, morning)] == [0, 0, 0, 1]
    row = ws.operations.query("SELECT due_ts, deferrals FROM deliveries WHERE customer_id = 'C1'")[0]
    assert row["deferrals"] == 1
    assert dt.datetime.fromtimestamp(row["due_ts"], JST) == at("2027-01-02 09:00")


@pytest.mark.parametrize(("moment", "allowed"), [
    ("2026-11-30 20:59", "2026-11-30 20:59"),  # a Monday evening before the quiet hours
    ("2026-11-30 21:00", "2026-12-01 09:00"),  # quiet from 21:00 …
    ("2026-12-01 03:00", "2026-12-01 09:00"),  # … across midnight
    ("2026-11-22 23:30", "2026-11-24 09:00"),  # Sunday night, then 勤労感謝の日 (Monday 23rd)
    ("2026-11-23 15:00", "2026-11-24 09:00"),  # a holiday afternoon
    ("2026-05-02 22:00", "2026-05-07 09:00"),  # Golden Week: 3–5 May and 振替休日 6 May
])
def test_quiet_hours_and_holidays_give_the_next_allowed_moment(moment, allowed):
    from kizuna.delivery._rules import SendingRules

    rules = SendingRules("Asia/Tokyo", "21:00", "09:00", skip_holidays=True, cap_messages=2, cap_days=7)
    assert rules.next_allowed(at(moment)) == at(allowed)


@pytest.mark.slow
def test_the_frequency_cap_defers_the_third_message_until_the_window_frees(tmp_path):
    # three e-mail scenarios due at once for C1; the cap is 2 per 7 days across channels
    scenarios = {f"s{n}": THANK_YOU.replace("お礼", f"お礼{n}") for n in (1, 2, 3)}
    with SmtpServer() as server:
        ws = shop(tmp_path, server, scenarios=scenarios, delivery={"cap_messages": 2, "cap_days": 7})
        first = ws.run(now=at("2026-11-30 10:00"), transports=email_only(ws))
        server.wait_for(2)
        same_week = ws.run(now=at("2026-12-06 10:00"), transports=email_only(ws))
        week_later = ws.run(now=at("2026-12-07 10:01"), transports=email_only(ws))
        server.wait_for(3)
    assert (first.total("sent"), first.total("deferred")) == (2, 1)
    assert (same_week.total("sent"), week_later.total("sent")) == (0, 1)
    assert {m.message()["Message-ID"] for m in server.messages}.__len__() == 3


def test_line_push_follows_the_contract_and_an_unfollow_is_an_opt_out(tmp_path, monkeypatch):
    scenario = textwrap.dedent("""\
        trigger: {after_order: {days: 1}}
        goal: {kind: order, days: 30}
        steps:
          - channel: line
            body: {ja: "{{ name }}様、お届け日のご確認はこちら: {{ survey_url }}", en: "x"}
        """)
    with LineServer() as line:
        monkeypatch.setenv("KIZUNA_LINE_TOKEN", line.token)
        ws = shop(tmp_path, scenarios={"line-thanks": scenario}, line={"api_base": line.api_base})
        transports = {"line": lambda: LineTransport.from_settings(ws.settings.line)}
        report = ws.run(now=at("2026-11-30 10:00"), transports=transports)
        pushes = line.pushes
    assert report.total("sent") == 1
    assert [p.to for p in pushes] == [LINE_USER]
    ref = ws.operations.query("SELECT ref FROM deliveries WHERE customer_id = 'C1'")[0]["ref"]
    assert pushes[0].retry_key == str(uuid.UUID(hex=ref))
    assert pushes[0].text.startswith("佐藤 花子様、お届け日のご確認はこちら: https://shop.example.jp/k/s/")

    with LineServer() as line:
        ws.save_settings(ws.settings.replace(line={"api_base": line.api_base}, analysis={"as_of": "2026-12-02"}))
        ws.store.append("orders", _order("O9", "C1", "2026-12-01"))
        ws.operations.set_consent("line", LINE_USER, False, source="line-unfollow")
        blocked = ws.run(now=at("2026-12-02 16:00"), transports=transports)
        assert line.pushes == []
    assert blocked.total("suppressed") == 1  # the new order of C1; the others were settled before
    assert ws.operations.query("SELECT note FROM deliveries WHERE key LIKE '%/C1/order:O9'")[0]["note"] == \
        "unfollowed on LINE"


def _order(order_id: str, customer: str, date: str):
    from factories import arrow_rows

    return arrow_rows("orders", [{"order_id": order_id, "customer_id": customer, "ordered_at": day(date, 15),
                                  "amount": 1000}])


def test_offline_channels_become_list_files_whose_formulas_are_neutralised(tmp_path):
    scenario = textwrap.dedent("""\
        trigger: {after_order: {days: 1}}
        goal: {kind: order, days: 30}
        steps:
          - channel: call
            body: "=HYPERLINK(\\"x\\") {{ name }}様にお礼のお電話"
          - channel: dm
            wait_days: 2
            body: "カタログ"
        """)
    ws = shop(tmp_path, scenarios={"calls": scenario})
    report = ws.run(now=at("2026-11-30 22:00"))  # lists are not held by quiet hours
    later = ws.run(now=at("2026-12-03 10:00"))  # two days after the call went
    calls = [p for p in report.files if p.suffix == ".csv"]
    assert [p.parent.name for p in calls] == ["call"]
    text = calls[0].read_text(encoding="utf-8-sig").splitlines()
    assert text[0].startswith("顧客ID,氏名,フリガナ,電話番号")  # the run's lists speak the workspace's language
    assert len(text) == 2 and text[1].startswith("C1,佐藤 花子,'0312345678") is False
    assert "'=HYPERLINK" in text[1]  # a formula is text in a file for people
    assert later.total("sent") == 1 and [p.parent.name for p in later.files] == ["dm", "dm"]
    assert report.total("suppressed") == 2  # C2, C3 have no telephone number


def test_holdout_groups_are_stable_and_close_to_their_share():
    ids = [f"C{n:06d}" for n in range(20_000)]
    first = [group_of(c, "win-back", secret="s", holdout=0.1, global_control=0.05) for c in ids]
    again = [group_of(c, "win-back", secret="s", holdout=0.1, global_control=0.05) for c in ids]
    other = [group_of(c, "thank-you", secret="s", holdout=0.1, global_control=0.05) for c in ids]
    assert first == again
    assert abs(first.count("global_control") / len(ids) - 0.05) < 0.01
    assert abs(first.count("holdout") / len(ids) - 0.95 * 0.1) < 0.01
    # the global control group is the same in every scenario; the holdouts differ
    assert [g == "global_control" for g in first] == [g == "global_control" for g in other]
    assert first != other


def test_a_malformed_scenario_names_the_file_line_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trigger: {after_order: {days: 1}}\ngoal: {kind: order}\nsteps:\n  - channel: fax\n"
                    "    body: x\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad.yaml:4: steps\[1\]\.channel: must be one of email, line"):
        load_scenario(path)
    path.write_text("trigger: {after_order: {days: 1}}\ngoal: {kind: order}\nsteps:\n  - channel: email\n"
                    "    subject: hi\n    body: '{{ name '\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad.yaml:\d+: steps\[1\]\.body\.ja: template error"):
        load_scenario(path)
    path.write_text("goal: {kind: order}\ntrigger: {after_order: {dayz: 1}}\nsteps: [{channel: dm, body: x}]\n",
                    encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad.yaml:2: trigger.after_order.dayz: unknown field"):
        load_scenario(path)


def test_a_template_naming_a_missing_field_fails_that_message_with_the_field_named(tmp_path):
    scenario = THANK_YOU.replace("{{ orders_so_far }}", "{{ favourite_colour }}")
    ws = shop(tmp_path, scenarios={"thank-you": scenario})
    with pytest.raises(KizunaError, match="favourite_colour"):
        ws.preview("thank-you", "C1")


@pytest.mark.slow
def test_the_cli_runs_previews_and_reports(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, scenarios={"thank-you": THANK_YOU})
        ws.close()
        preview = _kizuna("scenario", "preview", "thank-you", "--customer", "C1", "--dir", str(ws.path))
        assert preview.returncode == 0 and "佐藤 花子様、ありがとうございます" in preview.stdout
        assert "1回目のご注文、¥3,240でした" in preview.stdout
        done = _kizuna("run", "--dir", str(ws.path), "--format", "json")
        assert done.returncode == 0, done.stderr
    results = _kizuna("results", "--dir", str(ws.path), "--format", "csv", "--lang", "en")
    assert results.returncode == 0
    assert results.stdout.splitlines()[0].startswith("Scenario,Step,Channel,Due,Sent,Delivered")


def _kizuna(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kizuna", *args], capture_output=True, text=True, timeout=120)


# -- exactly once across SIGKILL --------------------------------------------------------------

CRASH_RUN = """
import datetime as dt, sys, zoneinfo
from kizuna.workspace import Workspace
from kizuna.delivery._smtp import SmtpTransport
ws = Workspace.open(sys.argv[1])
now = dt.datetime(2026, 11, 30, 10, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
ws.run(now=now, transports={"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)})
"""


@pytest.mark.slow
@pytest.mark.parametrize("records", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_run_killed_at_any_moment_sends_every_message_exactly_once(tmp_path, records, request):
    # The operational records in the workspace's SQLite file, or on a PostgreSQL server ([operations] url)
    operations_url = request.getfixturevalue("postgres_database") if records == "postgres" else ""
    count, stops = (300, (1, 40, 80, 120, 160, 200, 240)) if records == "sqlite" else (150, (1, 30, 60, 90, 120))
    customers = [{"customer_id": f"C{n:04d}", "name": f"顧客{n}", "email": f"c{n}@example.jp", "email_opt_in": True}
                 for n in range(count)]
    orders = [{"order_id": f"O{n:04d}", "customer_id": f"C{n:04d}", "ordered_at": day("2026-11-28", 15),
               "amount": 1000} for n in range(count)]
    with SmtpServer() as server:
        ws = workspace_with(tmp_path / "shop", customers=customers, orders=orders)
        for old in (ws.path / "scenarios").glob("*.yaml"):
            old.unlink()
        (ws.path / "scenarios" / "thank-you.yaml").write_text(THANK_YOU, encoding="utf-8")
        ws.save_settings(Settings().replace(
            delivery={"holdout_share": 0.0, "global_control_share": 0.0, "cap_messages": 10},
            email={"sender": "Shop <info@shop.example.jp>", "sender_address": "Tokyo", "sender_contact": "03",
                   "smtp_url": server.url},
            analysis={"as_of": "2026-11-30"}, operations={"url": operations_url}))
        ws.close()
        kills = 0
        for stop_at in stops:  # messages received before the kill
            process = subprocess.Popen([sys.executable, "-c", CRASH_RUN, str(ws.path)])
            deadline = time.monotonic() + 60
            while server.count < stop_at and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.wait()
            _wait_for_the_run_lock(ws.path)  # its sending processes stop at their next message
        final = subprocess.run([sys.executable, "-c", CRASH_RUN, str(ws.path)], timeout=120)
        assert final.returncode == 0
        server.wait_for(count, timeout=30)  # a loaded machine may still be handing over the last ones
        time.sleep(0.3)  # and a duplicate, were there one, would arrive now
        received = [m.message()["Message-ID"] for m in server.messages]
    assert kills >= len(stops) - 2
    assert len(received) == count and len(set(received)) == count  # every message, none twice
    with Workspace.open(ws.path) as ws:
        assert ws.operations.kind == records
        states = {r["status"]: r["n"] for r in ws.operations.query(
            "SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")}
    assert sum(states.values()) == count and set(states) <= {"sent", "unconfirmed"}
    if operations_url:  # the ledger was on the server, not in the folder's file (made before the setting)
        assert not Operations.open("", tmp_path / "shop").query("SELECT key FROM deliveries")


def test_a_detractor_answer_from_the_web_survey_puts_the_customer_on_the_follow_up_list(tmp_path):
    scenario = textwrap.dedent("""\
        trigger: {nps: {max: 6, catch_up_days: 1}}
        goal: {kind: order, days: 90}
        steps:
          - channel: call
            transactional: true
            body: "NPS {{ detail }}点: お話を伺う"
        """)
    ws = shop(tmp_path, scenarios={"detractor": scenario})
    link = ws.operations.survey_link("C1", "email")
    ws.operations.answer_survey(link, 3, "届くのが遅い", at=int(at("2026-11-30 09:00").timestamp()))
    first = ws.run(now=at("2026-11-30 10:00"))
    assert ws.merge_survey_answers() == 1  # `kizuna analyze` copies it into nps_answers …
    again = ws.run(now=at("2026-11-30 11:00"))  # … where it is the same occasion, not a new one
    rows = [p for p in first.files if p.suffix == ".csv"][0].read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 2 and rows[1].startswith("C1,佐藤 花子,,0312345678") and "NPS 3点: お話を伺う" in rows[1]
    assert again.total("enrolled") == 0 and again.files == []


def test_a_second_run_while_one_is_delivering_stops_instead_of_sending_twice(tmp_path):
    ws = shop(tmp_path, scenarios={"thank-you": THANK_YOU})
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        lock = open({str(ws.path / '.kizuna-run.lock')!r}, "a+")
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(str(os.getpid())); lock.flush()
        print("locked", flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(KizunaError, match=rf"another `kizuna run` \(PID {holder.pid}\) is delivering"):
            ws.run(now=at("2026-11-30 10:00"))
        assert ws.run(now=at("2026-11-30 10:00"), dry_run=True).total("would_send") == 1  # a dry run may look
    finally:
        holder.kill()
        holder.communicate()
    assert ws.run(now=at("2026-11-30 10:00")).total("enrolled") == 3  # the lock died with its process


def _wait_for_the_run_lock(folder: Path) -> None:
    import fcntl

    deadline = time.monotonic() + 10
    with open(folder / ".kizuna-run.lock", "a+") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(lock, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, "a killed run's sending processes did not stop"
                time.sleep(0.01)


def test_a_template_mistake_keeps_the_messages_waiting_until_the_file_is_fixed(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server, scenarios={"thank-you": THANK_YOU.replace("{{ orders_so_far }}", "{{ ordres }}")})
        broken = ws.run(now=at("2026-11-30 10:00"), transports=email_only(ws))
        assert broken.total("waiting") == 1 and broken.total("failed") == 0
        assert any("{{ ordres }}, which is not a field" in str(p) for p in broken.problems)
        (ws.path / "scenarios" / "thank-you.yaml").write_text(THANK_YOU, encoding="utf-8")
        fixed = ws.run(now=at("2026-11-30 11:00"), transports=email_only(ws))
        server.wait_for(1)
    assert fixed.total("sent") == 1


@pytest.mark.slow
def test_churn_reasons_in_a_message_are_empty_for_a_customer_who_has_left(tmp_path):
    """`{{ churn_reasons }}` reads the predictions' reasons in the message's language; for a customer who has
    already left (lost, or a cancelled subscriber) it is empty: their reasons were not looked for, and the
    words saying so are for the staff, not for the customer's message."""
    import pyarrow as pa

    scenario = THANK_YOU.replace('en: "Dear {{ name }}, order number {{ orders_so_far }}."',
                                 'en: "Dear {{ name }}, [{{ churn_reasons }}]"')
    ws = shop(tmp_path, scenarios={"thank-you": scenario})
    for state, expected in (("active", "[NPS 3 / no repeat order yet]"), ("lost", "[]"),
                            ("subscription_cancelled", "[]")):
        ws.store.create("customer_predictions", pa.table({
            "customer_id": ["C1"], "churn_risk": [0.7], "lifecycle_state": [state],
            "churn_reasons_ja": ["NPS 3 / リピート購入なし"], "churn_reasons_en": ["NPS 3 / no repeat order yet"]}))
        message = ws.preview("thank-you", "C1", lang="en")
        assert message["text"].endswith(expected), (state, message)


@pytest.mark.slow
def test_a_login_refused_in_the_sending_processes_stops_the_run_in_the_readers_language(tmp_path, monkeypatch):
    # a hundred and twenty e-mails go over several forked connections; each is refused the login, and the run
    # stops with the server's answer in the workspace's words (it crossed the pipe from the sending process
    # as a phrase), every message left to go in the next run
    from kizuna.delivery._email import PASSWORD_ENV

    n = 120
    ws = workspace_with(
        tmp_path / "many",
        customers=[{"customer_id": f"K{i:03d}", "name": f"顧客 {i}", "email": f"k{i}@example.jp",
                    "email_opt_in": True} for i in range(n)],
        orders=[{"order_id": f"P{i}", "customer_id": f"K{i:03d}", "ordered_at": day("2026-11-28", 15),
                 "amount": 1000} for i in range(n)],
    )
    folder = ws.path / "scenarios"
    for old in folder.glob("*.yaml"):
        old.unlink()
    (folder / "thank-you.yaml").write_text(THANK_YOU, encoding="utf-8")
    with SmtpServer(user="shop", password="right") as server:
        ws.save_settings(Settings().replace(
            delivery={"holdout_share": 0.0, "global_control_share": 0.0},
            web={"public_url": "https://shop.example.jp/k"},
            email={"sender": "水の森 <info@mizunomori.example.jp>", "sender_address": "東京都港区1-2-3",
                   "sender_contact": "0120-000-000", "smtp_url": server.url},
            analysis={"as_of": "2026-11-30"}))
        monkeypatch.setenv(PASSWORD_ENV, "wrong")
        with pytest.raises(KizunaError) as stopped:
            ws.run(now=at("2026-11-30 10:00"), transports=email_only(ws))
        time.sleep(0.2)
        assert server.messages == []
        where = f"{server.host}:{server.port}"
    said = stopped.value.text("ja")
    assert said.startswith(f"{where} が 'shop' のログインを拒否しました (535"), said
    assert said.endswith(f"[email] smtp_url のユーザーと {PASSWORD_ENV} を確かめてください。"), said
    assert stopped.value.text("en").startswith(f"{where} refused the login of 'shop' (535")
    waiting = ws.operations.query("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
    statuses = {r["status"]: r["n"] for r in waiting}
    assert sum(statuses.values()) == n and set(statuses) <= {"scheduled", "sending"}, statuses  # none sent
