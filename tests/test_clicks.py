"""Tracked links: a run to a real SMTP server (aiosmtpd) and a LINE server that keeps LINE's contract
rewrites the links the template wrote, and only those, to {public_url}/c/{token}; the in-process web
app sends a click to the template's URL with its UTM parameters and counts each clicker once; an
altered token or a URL named in the request leads nowhere; `kizuna results` shows per step the
clickers, the converted and the revenue per recipient against the control, worked out by hand."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import textwrap
import zoneinfo
from pathlib import Path

import anyio
import httpx
import pytest
from itsdangerous import Signer
from typer.testing import CliRunner

from kizuna.cli import app
from kizuna.delivery import LineTransport, SmtpTransport
from kizuna.operations import Clicks, InvalidLink, agent_class
from kizuna.scenarios import group_of, template_links, track_links, with_utm
from kizuna.web import create_app, hash_password
from kizuna.workspace import Settings, Workspace

from factories import arrow_rows, day, workspace_with
from line_server import LineServer
from smtp_server import SmtpServer

JST = zoneinfo.ZoneInfo("Asia/Tokyo")
PUBLIC = "https://shop.example.jp/k"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Line/14.19.0"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link scanner)"
LINE_USER = "U" + "b" * 32

TEMPLATE = """\
title: {ja: お礼, en: Thank you}
trigger: {after_order: {days: 1}}
goal: {kind: order, days: 30}
holdout: 0.5
steps:
  - channel: email
    subject: "{{ name }}様、ありがとうございます"
    body: |
      {{ name }}様
      新商品: https://shop.example.jp/new?color=blue#top
      セール: https://shop.example.jp/sale?utm_source=news。お早めに
      あなたのページ: https://shop.example.jp/my/{{ customer_id }}
      もう一度: https://shop.example.jp/new?color=blue#top
      アンケート: {{ survey_url }}
      配信停止: {{ unsubscribe_url }}
"""
UTM = "utm_medium=email&utm_campaign=thank-you&utm_content=step1"
NEW = f"https://shop.example.jp/new?color=blue&utm_source=kizuna&{UTM}#top"
SALE = f"https://shop.example.jp/sale?utm_source=news&{UTM}"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=JST)


def pick(group: str, n: int, *, holdout: float = 0.5) -> list[str]:
    """The first `n` ids C01, C02 … that the scenario's hash puts in `group` (no global control)."""
    ids = [f"C{i:02d}" for i in range(1, 100)]
    return [c for c in ids if group_of(c, "thank-you", secret="", holdout=holdout, global_control=0) == group][:n]


TREATED, HELD = pick("treated", 4), pick("holdout", 2)


def shop(tmp_path: Path, server: SmtpServer | None, *, scenario: str = TEMPLATE, names: dict[str, str] | None = None,
         **sections) -> Workspace:
    """Four treated and two held-out customers, each with an order on 2026-11-28 and e-mail consent."""
    people = [*TREATED, *HELD]
    ws = workspace_with(
        tmp_path / "shop",
        customers=[{"customer_id": c, "name": (names or {}).get(c, f"客{c}"), "email": f"{c.lower()}@example.jp",
                    "email_opt_in": True, "line_user_id": LINE_USER if c == TREATED[0] else None,
                    "line_opt_in": True} for c in people],
        orders=[{"order_id": f"O-{c}", "customer_id": c, "ordered_at": day("2026-11-28", 15), "amount": 1000}
                for c in people],
    )
    for old in (ws.path / "scenarios").glob("*.yaml"):
        old.unlink()
    (ws.path / "scenarios" / "thank-you.yaml").write_text(scenario, encoding="utf-8")
    values = {"delivery": {"global_control_share": 0.0},
              "web": {"public_url": PUBLIC},
              "email": {"sender": "水の森 <info@mizunomori.example.jp>", "sender_address": "東京都港区1-2-3",
                        "sender_contact": "0120-000-000", "smtp_url": server.url if server else ""},
              "analysis": {"as_of": "2026-11-30"}}
    for name, changes in sections.items():
        values[name] = {**values.get(name, {}), **changes}
    ws.save_settings(Settings().replace(**values))
    return ws


def email_only(ws: Workspace) -> dict:
    return {"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)}


def get(ws: Workspace, url: str, agent: str = BROWSER) -> httpx.Response:
    """GET `url` (a {public_url}/… address, or a path) on the in-process web app, redirects not followed."""
    path = url[len(PUBLIC):] if url.startswith(PUBLIC) else url

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(ws.path, warm=False), client=("192.0.2.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.get(path, headers={"user-agent": agent})

    return anyio.run(go)


def tracked(text: str) -> list[str]:
    """The tracked links of a message's text, in order."""
    return re.findall(re.escape(PUBLIC) + r"/c/[A-Za-z0-9_.-]+", text)


# -- rewriting, with a real SMTP server -------------------------------------------------------------
def test_a_sent_email_carries_tracked_links_for_the_templates_links_only(tmp_path):
    evil = "https://evil.example.com/win"
    with SmtpServer() as server:
        ws = shop(tmp_path, server, names={TREATED[0]: evil})  # a URL that only the data brings
        report = ws.run(now=at("2026-11-30 10:00"), transports=email_only(ws))
        mails = server.wait_for(4)
    assert report.total("sent") == 4
    first = next(m for m in mails if m.rcpt_tos == (f"{TREATED[0].lower()}@example.jp",)).message()
    ref = ws.operations.query("SELECT ref FROM deliveries WHERE customer_id = ?", (TREATED[0],))[0]["ref"]
    text = first.get_body(("plain",)).get_content()
    html = first.get_body(("html",)).get_content()
    # three different template links (the first written twice is one link), in the order shown
    links = tracked(text)
    assert links == [ws.links.click_url(ref, n) for n in (0, 1, 2, 0)]
    assert "セール: " + ws.links.click_url(ref, 1) + "。お早めに" in text  # the sentence runs on after the link
    for n in (0, 1, 2):
        assert f'href="{ws.links.click_url(ref, n)}"' in html
    # not rewritten: the customer's data, the survey and unsubscribe links (also the List-Unsubscribe header)
    assert f"{evil}様" in text and "shop.example.jp/new" not in text and "shop.example.jp/sale" not in text
    assert f"アンケート: {PUBLIC}/s/" in text and f"配信停止: {PUBLIC}/u/" in text
    assert str(first["List-Unsubscribe"]).startswith(f"<{PUBLIC}/u/")
    assert [(r["link"], r["url"]) for r in ws.operations.query(
        "SELECT link, url FROM message_links WHERE ref = ? ORDER BY link", (ref,))] == [
        (0, NEW), (1, SALE), (2, f"https://shop.example.jp/my/{TREATED[0]}?utm_source=kizuna&{UTM}")]
    assert ws.operations.query("SELECT COUNT(*) AS n FROM message_links")[0]["n"] == 4 * 3


@pytest.mark.slow
def test_a_click_goes_to_the_templates_url_and_each_clicker_counts_once(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server)
        ws.run(now=at("2026-11-30 10:00"), transports=email_only(ws))
        mails = {m.rcpt_tos[0]: m.message().get_body(("plain",)).get_content() for m in server.wait_for(4)}
    first, second, third = (tracked(mails[f"{c.lower()}@example.jp"]) for c in TREATED[:3])
    answer = get(ws, first[1])
    assert answer.status_code == 302 and answer.headers["location"] == SALE
    assert answer.headers["cache-control"] == "no-store"
    assert get(ws, first[1]).headers["location"] == SALE  # the same customer again
    assert get(ws, first[0]).headers["location"] == NEW  # … and their other link
    assert get(ws, second[0], PHONE).headers["location"] == NEW
    assert get(ws, third[0], SCANNER).status_code == 302  # a mail provider's scanner: sent on, not a clicker
    rows = [tuple(r) for r in ws.operations.query("SELECT link, agent, clicks FROM clicks ORDER BY clicks DESC, link")]
    assert sorted(rows) == [(0, "bot", 1), (0, "desktop", 1), (0, "mobile", 1), (1, "desktop", 2)]
    assert Clicks(ws.operations).clickers() == {("thank-you", 1): 2}
    step = next(r for r in ws.results(as_of=dt.date(2026, 12, 1)) if r["step"] == 1)
    assert step["clicked"] == 2


def test_an_altered_or_forged_token_or_a_url_in_the_request_leads_nowhere(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server)
        ws.run(now=at("2026-11-30 10:00"), transports=email_only(ws))
        link = tracked(server.wait_for(4)[0].message().get_body(("plain",)).get_content())[0]
    token = link.rsplit("/", 1)[1]
    ref = ws.links.read_click(token)[0]
    evil = "https://evil.example.com/"
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    forged = Signer("another-secret", salt="kizuna.click").sign(f"{ref}-0").decode()
    unsigned = f"{ref}-0"
    for path in (f"/c/{altered}", f"/c/{forged}", f"/c/{unsigned}", f"/c/{token}x",
                 "/c/" + httpx.URL(evil).raw_path.decode(), f"/c/{token}/{evil}", f"/c/{evil}",
                 ws.links.click_url(ref, 7),  # signed, but the message has no eighth link
                 ws.links.click_url("0" * 32, 0)):  # signed, but no such message
        answer = get(ws, path)
        assert answer.status_code == 404, path
        assert "location" not in answer.headers
    for extra in (f"?url={evil}", f"?next={evil}&redirect={evil}", f"?location={evil}#{evil}"):
        answer = get(ws, f"/c/{token}{extra}")
        assert answer.status_code == 302 and answer.headers["location"] == NEW
    with pytest.raises(InvalidLink):
        ws.links.read_click(altered)
    assert ws.operations.query("SELECT COUNT(*) AS n FROM clicks WHERE agent != 'bot'")[0]["n"] == 1


def test_line_messages_carry_tracked_links_with_the_line_medium(tmp_path, monkeypatch):
    scenario = textwrap.dedent("""\
        trigger: {after_order: {days: 1}}
        goal: {kind: order, days: 30}
        holdout: 0.5
        steps:
          - channel: line
            body: "{{ name }}様、セールはこちら→https://shop.example.jp/sale」 アンケート: {{ survey_url }}"
        """)
    with LineServer() as line:
        monkeypatch.setenv("KIZUNA_LINE_TOKEN", line.token)
        ws = shop(tmp_path, None, scenario=scenario, line={"api_base": line.api_base})
        report = ws.run(now=at("2026-11-30 10:00"),
                        transports={"line": lambda: LineTransport.from_settings(ws.settings.line)})
        pushes = line.pushes
    assert report.total("sent") == 1 and len(pushes) == 1  # only the first customer has LINE
    ref = ws.operations.query("SELECT ref FROM deliveries WHERE customer_id = ?", (TREATED[0],))[0]["ref"]
    assert pushes[0].text.startswith(f"客{TREATED[0]}様、セールはこちら→{ws.links.click_url(ref, 0)}」 アンケート: "
                                     f"{PUBLIC}/s/")  # the survey link as it was
    target = Clicks(ws.operations).target(ref, 0)
    assert target == ("https://shop.example.jp/sale?utm_source=kizuna&utm_medium=line&utm_campaign=thank-you"
                      "&utm_content=step1")
    assert get(ws, pushes[0].text.split("→")[1].split("」")[0], PHONE).headers["location"] == target


@pytest.mark.slow
def test_a_dry_run_shows_tracked_links_and_records_none(tmp_path):
    ws = shop(tmp_path, None)
    report = ws.run(now=at("2026-11-30 10:00"), dry_run=True)
    assert report.total("would_send") == 4
    assert tracked(report.samples[0]["text"])[0].startswith(f"{PUBLIC}/c/")
    assert ws.operations.query("SELECT COUNT(*) AS n FROM message_links")[0]["n"] == 0


# -- results per step, by hand ------------------------------------------------------------------------
@pytest.mark.slow
def test_results_per_step_show_clickers_converted_and_revenue_per_recipient(tmp_path):
    with SmtpServer() as server:
        ws = shop(tmp_path, server)
        ws.run(now=at("2026-11-30 10:00"), transports=email_only(ws))
        mails = {m.rcpt_tos[0]: m.message().get_body(("plain",)).get_content() for m in server.wait_for(4)}
    t1, t2, t3, t4 = TREATED
    h1, h2 = HELD
    # After the e-mails went (30 November 10:00): two of the four recipients ordered, ¥5,000, and
    # ¥3,000 + ¥2,000; one of the two held out, ¥4,000 (after 29 November 15:00, when theirs would have
    # gone). An order before the e-mail (29 November 20:00) counts for the scenario's window (from the
    # occasion, a day after the order: 29 November 15:00), not for the step's.
    ws.store.append("orders", arrow_rows("orders", [
        {"order_id": "A1", "customer_id": t1, "ordered_at": day("2026-12-05"), "amount": 5000},
        {"order_id": "A2", "customer_id": t2, "ordered_at": day("2026-12-10"), "amount": 3000},
        {"order_id": "A3", "customer_id": t2, "ordered_at": day("2026-12-12"), "amount": 2000},
        {"order_id": "A4", "customer_id": t3, "ordered_at": day("2026-11-29", 20), "amount": 700},
        {"order_id": "B1", "customer_id": h1, "ordered_at": day("2026-12-03"), "amount": 4000},
        {"order_id": "Z1", "customer_id": t4, "ordered_at": day("2027-01-20"), "amount": 9000},  # after the window
    ]))
    get(ws, tracked(mails[f"{t1.lower()}@example.jp"])[0])
    get(ws, tracked(mails[f"{t1.lower()}@example.jp"])[1])
    get(ws, tracked(mails[f"{t3.lower()}@example.jp"])[2], PHONE)
    get(ws, tracked(mails[f"{t4.lower()}@example.jp"])[0], SCANNER)
    rows = ws.results(as_of=dt.date(2027, 1, 31))
    step = next(r for r in rows if r["step"] == 1)
    assert (step["sent"], step["delivered"], step["clicked"], step["holdout"]) == (4, 4, 2, 2)
    assert (step["treated_customers"], step["converted"], step["control_customers"]) == (4, 2, 2)
    assert step["treated_rate"] == 2 / 4 and step["control_rate"] == 1 / 2
    assert step["revenue_per_recipient"] == (5000 + 3000 + 2000) / 4
    assert step["control_revenue_per_customer"] == 4000 / 2
    total = next(r for r in rows if r["step"] is None)
    # the scenario (intention to treat, from the occasion): three of four treated ordered, ¥10,700
    assert (total["clicked"], total["converted"], total["treated_customers"]) == (2, 3, 4)
    assert total["revenue_per_recipient"] == 10_700 / 4 and total["control_revenue_per_customer"] == 2000
    assert total["incremental_revenue"] == 10_700 - 4 / 2 * 4000

    ws.operations.add_user("mori", "viewer", hash_password("a long enough password"))
    ws.close()  # the command and the web app open the store themselves
    shown = CliRunner().invoke(app, ["results", "--dir", str(ws.path), "--as-of", "2027-01-31", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert {k: v for k, v in next(r for r in json.loads(shown.output) if r["step"] == 1).items()
            if k in ("clicked", "converted", "revenue_per_recipient")} == {
        "clicked": 2, "converted": 2, "revenue_per_recipient": 2500.0}
    table = CliRunner().invoke(app, ["results", "--dir", str(ws.path), "--as-of", "2027-01-31", "--lang", "en",
                                     "--format", "csv"])
    header, first_step = list(csv.reader(table.output.splitlines()))[:2]
    shown = dict(zip(header, first_step, strict=True))
    assert (shown["Clicked"], shown["Converted"], shown["Treated rate"], shown["Revenue per recipient"],
            shown["Control revenue per customer"]) == ("2", "2", "50.0", "2500", "2000")
    # the web app's results page, the step's row
    cells = results_page_row(ws.path, ("mori", "a long enough password"), step=1)
    assert (cells["clicked"], cells["converted"], cells["treated_rate"], cells["control_rate"],
            cells["revenue_per_recipient"], cells["control_revenue_per_customer"]) == (
        "2", "2", "50.0%", "50.0%", "¥2,500", "¥2,000")


def test_which_links_a_template_writes_and_how_utm_is_added():
    written = template_links("a https://x.jp/a b https://x.jp/p/{{ id }} c https://{{ host }}/ d "
                             "https://x.{{ tld }}/ e https://x.jp{{ path }}")
    assert written == (("https://x.jp/a", True), ("https://x.jp/p/", False))
    text, targets = track_links("https://x.jp/a https://x.jp/ab https://x.jp/p/7 https://x.jpevil.com/p/",
                                written, click_url=lambda n: f"<{n}>", utm={"utm_source": "kizuna"})
    assert text == "<0> https://x.jp/ab <1> https://x.jpevil.com/p/"
    assert targets == ["https://x.jp/a?utm_source=kizuna", "https://x.jp/p/7?utm_source=kizuna"]
    assert with_utm("https://x.jp", {"utm_source": "kizuna"}) == "https://x.jp/?utm_source=kizuna"
    assert with_utm("https://x.jp/?a=1&UTM_SOURCE=x", {"utm_source": "k"}) == \
        "https://x.jp/?a=1&UTM_SOURCE=x&utm_source=k"
    assert (agent_class(BROWSER), agent_class(PHONE), agent_class(SCANNER), agent_class(None),
            agent_class(BROWSER, method="HEAD")) == ("desktop", "mobile", "bot", "other", "bot")


RESULT_CELLS = ("scenario", "step", "channel", "due", "sent", "delivered", "failed", "deferred", "suppressed",
                "holdout", "clicked", "treated_customers", "converted", "control_customers", "treated_rate",
                "control_rate", "uplift", "revenue_per_recipient", "control_revenue_per_customer",
                "incremental_orders", "incremental_revenue", "cost", "incremental_profit")


def results_page_row(path: Path, user: tuple[str, str], *, step: int) -> dict[str, str]:
    """The cells of one step's row on the results page, logged in as `user`, by column."""
    async def go() -> str:
        transport = httpx.ASGITransport(app=create_app(path, warm=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            form = (await http.get("/login")).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
            done = await http.post("/login", data={"csrf": csrf, "name": user[0], "password": user[1], "next": "/"})
            assert done.status_code == 303
            return (await http.get("/results")).text

    html = anyio.run(go)
    for row in re.findall(r"<tr class=\"\">(.*?)</tr>", html, re.S):
        cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells[1] == str(step):
            return dict(zip(RESULT_CELLS, cells, strict=True))
    raise AssertionError(f"no row of step {step} on the results page")


@pytest.fixture(params=["sqlite", "postgres"])
def records(request: pytest.FixtureRequest, tmp_path: Path):
    """The operational records on SQLite, then on a new PostgreSQL database ([operations] url)."""
    from kizuna.operations import Operations

    location = request.getfixturevalue("postgres_database") if request.param == "postgres" else \
        str(tmp_path / "kizuna-ops.sqlite3")
    ops = Operations(location)
    yield ops
    ops.close()


def test_links_clicks_and_the_months_spend_read_the_same_on_both_engines(records):
    from kizuna.operations import Enrolment, Ledger

    ledger = Ledger(records)
    ledger.enrol([Enrolment(key=f"s/{step}/C{i}/o", ref=f"{step}{i}".ljust(32, "0"), scenario="s", step=step,
                            customer_id=f"C{i}", occasion="o", occasion_ts=1, detail=None, channel=channel,
                            transactional=False, due_ts=100, grp="treated" if i < 3 else "holdout")
                  for i in range(4) for step, channel in ((1, "email"), (2, "dm"))])
    ledger.sent(["s/1/C0/o", "s/1/C1/o", "s/2/C0/o"], at=1_000)
    ledger.sent(["s/1/C2/o"], at=5_000)
    clicks = Clicks(records)
    assert clicks.keep_links([("1" + "0" * 31, 0, "https://a.jp/?x=1"), ("1" + "0" * 31, 1, "https://b.jp/")]) == 2
    clicks.keep_links([("1" + "0" * 31, 1, "https://c.jp/")])  # sent again: its latest
    assert (clicks.target("1" + "0" * 31, 1), clicks.target("1" + "0" * 31, 2)) == ("https://c.jp/", None)
    for ref, link, agent in (("10", 0, "desktop"), ("10", 0, "desktop"), ("10", 1, "mobile"), ("11", 0, "bot"),
                             ("20", 0, "mobile")):
        clicks.record(ref.ljust(32, "0"), link, agent, at=2_000)
    assert clicks.clickers() == {("s", 1): 1, ("s", 2): 1}
    assert records.query("SELECT clicks FROM clicks WHERE agent = 'desktop'")[0]["clicks"] == 2
    assert ledger.sent_by_channel("s", 0, 2_000) == {"email": 2, "dm": 1}
    assert ledger.sent_by_channel("s", 2_000, 9_000) == {"email": 1}
    windows = sorted((r["step"], r["customer_id"], r["grp"], r["at_ts"]) for r in ledger.step_windows("s", 100))
    assert windows == [(1, "C0", "treated", 1_000), (1, "C1", "treated", 1_000), (1, "C2", "treated", 5_000),
                       (1, "C3", "holdout", 100), (2, "C0", "treated", 1_000), (2, "C3", "holdout", 100)]
    assert len(ledger.step_windows("s", 99)) == 4  # the control's rows are not due yet: the delivered only
