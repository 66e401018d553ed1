"""Issue #23 end to end in a real browser: Debian's Chromium, driven by Playwright, against a real uvicorn
server on 127.0.0.1 and a real SMTP server (aiosmtpd) — an operator builds a segment and saves it,
creates an A/B campaign on it with a holdout, previews it, sends themselves a test, schedules it; a
scenario switched off on the scenarios page; `kizuna run` (Workspace.run at set moments) sends each
recipient's message once with tracked links, and nothing twice; a click lands on the template's URL;
the results page shows the click and the revenue per recipient against the holdout; a DM campaign's
monthly budget defers what it cannot pay for.

The shop, by hand (30 customers P01 … P30, each with e-mail and a postal address):

| customers | orders                                        | LTV     | e-mail consent |
| P01 … P12 | 2026-10-DD ¥2,000 and 2026-11-DD ¥3,000 (DD = n) | ¥5,000 | all but P03    |
| P13 … P15 | 2026-11-29 ¥2,000 (the thank-you scenario's)  | ¥2,000  | yes            |
| P16 … P30 | 2026-10-DD ¥2,000                             | ¥2,000  | yes            |

Every customer: 30, lifetime revenue 12 × 5,000 + 18 × 2,000 = ¥96,000. Two orders or more: P01 … P12,
12 customers (40.0 %), ¥60,000 (62.5 %); of them with e-mail consent (not P03): 11 customers (36.7 %),
¥55,000 (57.3 %).

The campaign `winter-sale` holds out 20 % and splits the rest 50/50 by the published hashes
(`group_of`, `Campaign.variant_of`: the customer id and the campaign's name, no secret with no global
control): held out P06 and P07; A: P01, P05, P11, P12; B: P02, P04, P08, P09, P10 — nine e-mails.

Writes screenshots of the segment builder, the campaign page and the results page into the test's tmp
dir (and into $KIZUNA_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import subprocess
import threading
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_web_browser import ARGS, CHROMIUM

from kizuna.operations import OPERATIONS_FILE, Clicks, Operations
from kizuna.scenarios import group_of, load_campaign, load_segment
from kizuna.web import create_app, hash_password
from kizuna.workspace import Settings

from factories import arrow_rows, day, workspace_with
from servers import free_port, unavailable
from smtp_server import SmtpServer

pytestmark = pytest.mark.browser

JST = zoneinfo.ZoneInfo("Asia/Tokyo")
OPERATOR = ("hanako", "operator-password")
OPS_MAIL = "hanako@mizunomori.example.jp"
# a customer's browser: Chromium's headless user agent would be counted as a bot, not a clicker
DESKTOP = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
           "Safari/537.36")
HELD, VARIANT_A, VARIANT_B = ["P06", "P07"], ["P01", "P05", "P11", "P12"], ["P02", "P04", "P08", "P09", "P10"]
SALE = "https://shop.example/sale"

THANKS = """\
title: {ja: ご購入のお礼, en: Thank you}
trigger: {after_order: {days: 1}}
goal: {kind: order, days: 30}
holdout: 0
steps:
  - channel: email
    subject: "{{ name }}様 ご購入ありがとうございます"
    body: "{{ name }}様\\nまたのご利用をお待ちしております。"
"""
# the same segment by direct mail: ¥120 a piece, ¥300 a month pays for two
CATALOGUE = """\
title: {ja: 冬のカタログ, en: Winter catalogue}
segment: repeat-mail
channel: dm
body: {ja: "{{ name }}様 冬のカタログをお送りします"}
holdout: 0
budget: 300
send_at: 2026-12-01 10:00
"""


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=JST)


def shop(path: Path, smtp_url: str, public_url: str) -> Path:
    customers, orders = [], []
    for n in range(1, 31):
        c = f"P{n:02d}"
        customers.append({"customer_id": c, "name": f"顧客{n:02d}", "email": f"{c.lower()}@example.jp",
                          "email_opt_in": c != "P03", "address": f"東京都港区芝{n}-1", "postal_code": "1050014"})
        first = day("2026-11-29") if 13 <= n <= 15 else day(f"2026-10-{n:02d}")
        orders.append({"order_id": f"{c}-1", "customer_id": c, "ordered_at": first, "amount": 2000})
        if n <= 12:
            orders.append({"order_id": f"{c}-2", "customer_id": c, "ordered_at": day(f"2026-11-{n:02d}"),
                           "amount": 3000})
    ws = workspace_with(path, customers=customers, orders=orders)
    for old in (ws.path / "scenarios").glob("*.yaml"):
        old.unlink()
    (ws.path / "scenarios" / "thanks.yaml").write_text(THANKS, encoding="utf-8")
    (ws.path / "campaigns").mkdir(exist_ok=True)
    (ws.path / "campaigns" / "catalogue.yaml").write_text(CATALOGUE, encoding="utf-8")
    ws.save_settings(Settings().replace(
        # no quiet hours or holidays: the scenarios page's due counts are for the real clock's moment
        delivery={"global_control_share": 0.0, "quiet_start": "00:00", "quiet_end": "00:00", "skip_holidays": False},
        web={"public_url": public_url},
        email={"smtp_url": smtp_url, "sender": "水の森 <info@mizunomori.example.jp>",
               "sender_address": "東京都港区1-2-3", "sender_contact": "0120-000-000"},
        costs={"email": 5},
        analysis={"as_of": "2026-11-30"}))
    ws.analyze()
    ws.operations.add_user(OPERATOR[0], "operator", hash_password(OPERATOR[1]))
    ws.close()
    return path


@contextlib.contextmanager
def serving(app, port: int) -> Iterator[str]:
    """`app` under uvicorn in a thread on 127.0.0.1:`port` (the port [web] public_url names)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.kizuna.reader.close()


class ShopSite:
    """The shop's site, https://shop.example, as a local HTTPS server with a certificate made for the test:
    Chromium resolves shop.example to it, so a click's redirect is followed for real and nothing leaves
    127.0.0.1 (Playwright's request routing never sees a redirect's target)."""

    def __init__(self, folder: Path) -> None:
        import http.server
        import ssl

        if not shutil.which("openssl"):
            unavailable("openssl is missing: install Debian's openssl (bash .ci/install-system.sh)")
        key, cert = folder / "shop.key", folder / "shop.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "2", "-subj", "/CN=shop.example", "-addext",
                        "subjectAltName=DNS:shop.example"], check=True, capture_output=True)
        self.paths: list[str] = []
        site = self

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                site.paths.append(self.path)
                body = "<!doctype html><title>SALE</title><h1>冬のセール会場</h1>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def shop_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopSite]:
    site = ShopSite(tmp_path_factory.mktemp("shop-site"))
    yield site
    site.close()


@pytest.fixture(scope="module")
def browser(shop_site: ShopSite) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/install-system.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*ARGS, f"--host-resolver-rules=MAP shop.example 127.0.0.1:{shop_site.port}"])
        yield chromium
        chromium.close()


def shoot(page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("KIZUNA_SCREENSHOT_DIR"):
        folder = Path(os.environ["KIZUNA_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, folder / name)


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def plain(mail) -> str:
    return mail.message().get_body(("plain",)).get_content()


def test_an_operator_builds_a_segment_sends_a_campaign_once_and_sees_its_clicks_and_revenue(
        browser, shop_site: ShopSite, tmp_path: Path):
    port = free_port()
    with SmtpServer() as smtp:
        path = shop(tmp_path / "shop", smtp.url, f"http://127.0.0.1:{port}")
        app = create_app(path, logins_per_minute=10_000)
        with serving(app, port) as site:
            context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="ja-JP",
                                          user_agent=DESKTOP, ignore_https_errors=True)  # the shop's own cert
            page = context.new_page()
            outside: list[str] = []  # every request stays on 127.0.0.1 (shop.example is the local ShopSite)
            local = (site, "data:", "https://shop.example/")
            page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
            try:
                walk(page, site, path, smtp, app, shop_site, tmp_path)
            finally:
                context.close()
            assert outside == []


def walk(page, site: str, path: Path, smtp: SmtpServer, app, shop_site: ShopSite, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    # -- log in, straight to the segment builder ----------------------------------------------------------
    page.goto(site + "/segments/new")
    assert "/login" in page.url
    page.fill("input[name=name]", OPERATOR[0])
    page.fill("input[name=password]", OPERATOR[1])
    page.click("button[type=submit]")
    page.wait_for_url(site + "/segments/new")
    count = page.locator("#segment-count")
    assert words(count.inner_text()) == "30人 (全顧客の100.0%)・売上シェア 100.0%"

    # -- 1. build a segment: the count follows each condition; save it ------------------------------------
    page.select_option("select[name=f0]", "orders")  # redraws the row with its operators and a number
    page.wait_for_selector("input[name=v0]")
    page.fill("input[name=v0]", "2")  # >= is the first operator; the count is asked for after a pause
    expect(count).to_have_text("12人 (全顧客の40.0%)・売上シェア 62.5%")
    page.select_option("select[name=f1]", "email_consent")
    page.wait_for_selector("select[name=v1]")
    # redrawn with the value the form shows ("yes") counted, the first row kept
    assert page.input_value("select[name=v1]") == "true" and page.input_value("input[name=v0]") == "2"
    expect(count).to_have_text("11人 (全顧客の36.7%)・売上シェア 57.3%")
    page.fill("input[name=name]", "repeat-mail")
    page.fill("input[name=title_ja]", "リピーター (メール可)")
    page.fill("input[name=title_en]", "Repeat buyers (e-mail)")
    shoot(page, tmp_path, "segment-builder.png")
    page.click("#save-button")
    page.wait_for_url(site + "/segments/repeat-mail?saved=1")
    assert page.locator("#saved").is_visible()
    saved = load_segment(path / "segments" / "repeat-mail.yaml")
    assert saved.where == ["orders >= 2", "email_consent == true"]
    assert saved.title == {"ja": "リピーター (メール可)", "en": "Repeat buyers (e-mail)"}

    # -- 2. a campaign on it: A/B subject, 20 % held out, a link to the shop --------------------------------
    page.goto(site + "/campaigns/new")
    page.fill("input[name=name]", "winter-sale")
    page.fill("input[name=title_ja]", "冬のセール")
    page.fill("input[name=title_en]", "Winter sale")
    page.select_option("select[name=segment]", "repeat-mail")
    page.fill("input[name=holdout]", "20")
    page.fill("input[name=subject_ja]", "{{ name }}様 冬のセールのご案内")
    page.fill("textarea[name=body_ja]", f"{{{{ name }}}}様\nいつもありがとうございます。\nセール会場: {SALE}\n")
    page.check("input[name=ab]")
    page.fill("input[name=v0_share]", "50")
    page.fill("input[name=v1_share]", "50")
    page.fill("input[name=v1_subject_ja]", "【本日限定】{{ name }}様へ")
    page.click("#save-campaign")
    page.wait_for_url(site + "/campaigns/winter-sale?saved=1")
    campaign = load_campaign(path / "campaigns" / "winter-sale.yaml")
    assert [(v.name, v.share, v.subject["ja"]) for v in campaign.variants] == [
        ("A", 0.5, "{{ name }}様 冬のセールのご案内"), ("B", 0.5, "【本日限定】{{ name }}様へ")]
    assert (campaign.segment, campaign.channel, campaign.holdout, campaign.send_at) == ("repeat-mail", "email", 0.2,
                                                                                       None)
    # the published hashes put the eleven members where the docstring says
    members = ["P01", "P02", *[f"P{n:02d}" for n in range(4, 13)]]
    groups = {c: group_of(c, "campaign:winter-sale", secret="", holdout=0.2, global_control=0.0) for c in members}
    assert sorted(c for c, g in groups.items() if g != "treated") == HELD
    treated = [c for c in members if c not in HELD]
    assert sorted(c for c in treated if campaign.variant_of(c) == 1) == VARIANT_A
    assert sorted(c for c in treated if campaign.variant_of(c) == 2) == VARIANT_B

    plan = page.locator("#plan")
    assert plan.locator("[data-plan=members]").inner_text() == "11"
    assert plan.locator("[data-plan=holdout]").inner_text() == "2"
    assert words(plan.locator("[data-variant=A]").inner_text()).startswith("4")
    assert words(plan.locator("[data-variant=B]").inner_text()).startswith("5")
    assert words(plan.locator("[data-plan=to_send]").inner_text()) == "9 件 (メール)"
    assert words(plan.locator("[data-plan=cost]").inner_text()) == "メール 9件 × ¥5 = ¥45"  # before any send

    # preview for one customer of variant B
    page.fill("#preview input[name=customer]", "P02")
    page.select_option("#preview select[name=variant]", "B")
    page.click("#preview button[type=submit]")
    page.wait_for_selector("#preview-message")
    message = page.locator("#preview-message")
    assert message.locator(".subject").inner_text() == "【本日限定】顧客02様へ"
    assert "顧客02様\nいつもありがとうございます。\nセール会場: " in message.locator(".body").inner_text()

    # a test to the operator's own address: once they gave it, one message marked as a test, no ledger row
    page.fill("#my-contact input[name=email]", OPS_MAIL)
    page.click("#my-contact button[type=submit]")
    page.wait_for_selector("#send-test")
    page.click("#send-test")
    page.wait_for_selector("#test-sent")
    shoot(page, tmp_path, "campaign.png")
    [test] = smtp.wait_for(1)
    assert list(test.rcpt_tos) == [OPS_MAIL]
    assert str(test.message()["Subject"]) == "【テスト】顧客02様 冬のセールのご案内"  # variant A of P02's
    assert str(test.message()["X-Kizuna-Test"]) == "test/campaign:winter-sale/1"
    ops = Operations(path / OPERATIONS_FILE)
    assert ops.query("SELECT COUNT(*) AS n FROM deliveries")[0]["n"] == 0

    # -- 3. schedule it for 1 December 2026, 10:00 --------------------------------------------------------------
    page.fill("#schedule-form input[name=send_at]", "2026-12-01T10:00")
    page.click("#schedule")
    page.wait_for_url(site + "/campaigns/winter-sale?saved=1")
    assert page.locator("#state").get_attribute("data-state") == "scheduled"
    assert load_campaign(path / "campaigns" / "winter-sale.yaml").send_at == dt.datetime(2026, 12, 1, 10)

    # the DM campaign shows what it costs and its budget before it goes
    page.goto(site + "/campaigns/catalogue")
    assert words(page.locator("[data-plan=cost]").inner_text()).startswith("DM 11件 × ¥120 = ¥1,320")
    assert words(page.locator("[data-plan=budget]").inner_text()) == "月の予算 ¥300: 超える分は翌月に送られます"

    # -- 6 (first half). the thank-you scenario would mail P13 … P15 on the morning of the send: switched off
    page.goto(site + "/scenarios")
    row = page.locator("tr[data-scenario=thanks]")
    assert row.get_attribute("data-state") == "on"
    assert "送信予定 3件" in words(row.locator("[data-step='1']").inner_text())
    row.locator("button[data-switch=off]").click()
    page.wait_for_selector("tr[data-scenario=thanks][data-state=off]")

    # -- 3. `kizuna run` before send_at, at it, and again -------------------------------------------------------
    def run(moment: str):
        with app.state.kizuna.reader.workspace() as ws:
            return ws.run(now=at(moment))

    early = run("2026-12-01 09:30")
    assert early.total("enrolled") == 0 and early.tallies == {}
    due = run("2026-12-01 10:05")
    mails = smtp.wait_for(1 + 9)[1:]
    later = run("2026-12-01 11:00")
    time.sleep(0.3)
    assert smtp.count == 1 + 9  # the second run sent nothing; the scenario, switched off, nothing at all
    assert later.total("sent") == later.total("enrolled") == 0
    assert due.tallies[("campaign:winter-sale", 1)].counts["sent"] == 4
    assert due.tallies[("campaign:winter-sale", 2)].counts["sent"] == 5
    assert not [k for k in due.tallies if k[0] == "thanks"]
    assert ops.query("SELECT COUNT(*) AS n FROM deliveries WHERE scenario = 'thanks'")[0]["n"] == 0
    received = {m.rcpt_tos[0].split("@")[0].upper(): m for m in mails}
    assert sorted(received) == sorted(VARIANT_A + VARIANT_B) and len(mails) == 9  # each recipient once
    for customer, mail in received.items():
        name = f"顧客{customer[1:]}"
        subject = str(mail.message()["Subject"])
        assert subject == (f"{name}様 冬のセールのご案内" if customer in VARIANT_A else f"【本日限定】{name}様へ")
        links = re.findall(r"セール会場: (\S+)", plain(mail))
        assert len(links) == 1 and links[0].startswith(f"{site}/c/")
        assert "shop.example" not in plain(mail)
    # the budget: two pieces of the DM campaign fit in December's ¥300, the other nine wait for January
    dm = due.tallies[("campaign:catalogue", 1)].counts
    assert (dm["sent"], dm["over_budget"]) == (2, 9)
    [listed] = [p for p in due.files if p.suffix == ".csv"]
    assert len(listed.read_text(encoding="utf-8-sig").splitlines()) == 1 + 2
    waiting = ops.query("SELECT status, due_ts, note FROM deliveries WHERE scenario = 'campaign:catalogue' "
                        "AND status = 'deferred'")
    assert len(waiting) == 9 and {r["due_ts"] for r in waiting} == {int(at("2027-01-01 00:00").timestamp())}

    # -- 4. P01 opens the link of their e-mail: counted, and on to the shop's page with UTM parameters ----------
    link = re.search(r"セール会場: (\S+)", plain(received["P01"])).group(1)
    page.goto(link)
    # the campaign as people named it, the variant as its content: what the shop's analytics split A/B by
    landed = f"{SALE}?utm_source=kizuna&utm_medium=email&utm_campaign=winter-sale&utm_content=A"
    assert page.url == landed and page.locator("h1").inner_text() == "冬のセール会場"
    assert shop_site.paths[0] == landed.removeprefix("https://shop.example")  # then its favicon
    assert Clicks(ops).clickers() == {("campaign:winter-sale", 1): 1}

    # -- 5. after the send P01 (variant A) orders ¥4,000 and P06 (held out) ¥2,000 -------------------------------
    with app.state.kizuna.reader.writing() as ws:
        ws.store.append("orders", arrow_rows("orders", [
            {"order_id": "W1", "customer_id": "P01", "ordered_at": day("2026-12-05"), "amount": 4000},
            {"order_id": "W2", "customer_id": "P06", "ordered_at": day("2026-12-06"), "amount": 2000}]))
        ws.save_settings(ws.settings.replace(analysis={"as_of": "2026-12-10"}))
    page.goto(site + "/results")
    rows = {}
    for tr in page.locator("table.list tbody tr").all():
        cells = [words(td.inner_text()) for td in tr.locator("td").all()]
        rows[(cells[0], cells[1])] = dict(zip(RESULT_CELLS, cells, strict=True))
    a, b, total = rows[("冬のセール", "A")], rows[("冬のセール", "B")], rows[("冬のセール", "合計")]
    # revenue per recipient: A ¥4,000 / 4; B nothing; all nine ¥4,000 / 9 = ¥444; the held out ¥2,000 / 2
    assert (a["sent"], a["clicked"], a["revenue_per_recipient"], a["control_revenue_per_customer"]) == (
        "4", "1", "¥1,000", "¥1,000")
    assert (b["sent"], b["clicked"], b["revenue_per_recipient"]) == ("5", "0", "¥0")
    assert (total["sent"], total["clicked"], total["holdout"], total["treated_customers"],
            total["control_customers"]) == ("9", "1", "2", "9", "2")
    assert (total["revenue_per_recipient"], total["control_revenue_per_customer"], total["cost"]) == (
        "¥444", "¥1,000", "¥45")
    # incremental profit: 9 × (¥4,000 / 9 − ¥2,000 / 2) × [business] gross_margin_rate 0.4 − ¥45 = −¥2,045
    assert total["incremental_profit"].startswith("-¥2,045 [")
    shoot(page, tmp_path, "results.png")
    page.locator("div.scroll").evaluate("table => { table.scrollLeft = table.scrollWidth; }")
    shoot(page, tmp_path, "results-control.png")  # the table's right half: the control, cost and profit
    ops.close()


RESULT_CELLS = ("scenario", "step", "channel", "due", "sent", "delivered", "failed", "deferred", "suppressed",
                "holdout", "clicked", "treated_customers", "converted", "control_customers", "treated_rate",
                "control_rate", "uplift", "revenue_per_recipient", "control_revenue_per_customer",
                "incremental_orders", "incremental_revenue", "cost", "incremental_profit")
