"""`kizuna report` (docs/measures.md#report): the manager's monthly report on a small demo business.

The HTML is read back with the standard library's parser: every section, inline SVG charts, nothing
loaded from anywhere. The call centre's figures and the scenarios' groups are worked out by hand
from the rows this test adds; the PDF is printed by Debian's Chromium (a browser test), and
`--mail` goes to a real SMTP server on 127.0.0.1 (aiosmtpd).

Writes a screenshot of the report into the test's tmp dir (and into $KIZUNA_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import zoneinfo
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kizuna.analytics import Period, lost_by_reason
from kizuna.demo import build_demo
from kizuna.i18n import money
from kizuna.operations import Enrolment, Ledger
from kizuna.workspace import Settings, Workspace

from factories import arrow_rows
from servers import unavailable
from smtp_server import SmtpServer

KIZUNA = [sys.executable, "-m", "kizuna"]
AS_OF = dt.date(2026, 11, 1)
CHROMIUM = "/usr/bin/chromium"
SCENARIO = "dormant-reapproach"
TREATED, CONTROL = 40, 20
SECTIONS = ("kpis", "matrix", "lost", "value-at-risk", "scenarios", "calls")


def _call(customer: str, at: str, script: str, outcome: str) -> dict:
    return {"customer_id": customer, "called_at": dt.datetime.fromisoformat(at), "script": script,
            "outcome": outcome, "agent": "佐藤"}


def _calls(ids: list[str]) -> list[dict]:
    """October 2026: script A reaches 10 customers (7 kept) and misses 2; script B reaches 6 (2 kept).
    September: one kept call, outside the month."""
    rows = [_call(c, f"2026-10-{5 + i:02d} 10:00", "A", "kept" if i < 7 else "reached") for i, c in enumerate(ids[:10])]
    rows += [_call(c, "2026-10-20 11:00", "A", "no_answer") for c in ids[10:12]]
    rows += [_call(c, f"2026-10-{10 + i:02d} 15:00", "B", "kept" if i < 2 else "cancelled")
             for i, c in enumerate(ids[12:18])]
    return [*rows, _call(ids[18], "2026-09-28 10:00", "A", "kept")]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo business analysed and predicted, with a scenario's groups in the ledger and a month of calls."""
    path = tmp_path_factory.mktemp("report") / "ws"
    with build_demo(path, customers=800, as_of=AS_OF).workspace as ws:
        ws.analyze(AS_OF)
        ws.predict(AS_OF)
        ids = sorted(r["customer_id"] for r in ws.store.table("customers").select("customer_id").to_pyarrow()
                     .to_pylist())
        ws.store.append("calls", arrow_rows("calls", _calls(ids[100:119])))
        occasion = int(dt.datetime(2026, 8, 15, 10, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")).timestamp())
        ledger = Ledger(ws.operations)
        rows = [Enrolment(key=f"{SCENARIO}/1/{c}/2026-08-15", ref=f"{n:032x}", scenario=SCENARIO, step=1, customer_id=c,
                          occasion="2026-08-15", occasion_ts=occasion, detail=None, channel="email",
                          transactional=False, due_ts=occasion, grp="treated" if n < TREATED else "holdout")
                for n, c in enumerate(ids[:TREATED + CONTROL])]
        ledger.enrol(rows)
        ledger.sent([r.key for r in rows[:TREATED]], at=occasion)
    return path


def kizuna(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *args], capture_output=True, text=True, cwd=cwd, check=False)


class Page(HTMLParser):
    """What a browser would load or show: sections, SVGs, every address an element or a style names."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.svgs = 0
        self.addresses: list[str] = []
        self.styles = ""
        self._in_style = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section":
            self.sections.append(found.get("id") or "")
        self.svgs += tag == "svg"
        self._in_style = tag == "style"
        self.addresses += [v for k, v in attrs if k in ("src", "href", "xlink:href", "srcset", "data", "action") and v]
        if found.get("style"):
            self.styles += found["style"]

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles += data
        else:
            self.text.append(data)


def read(path: Path) -> tuple[str, Page]:
    html = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    return html, page


def cells(html: str, attribute: str, value: str) -> list[str]:
    """The cells of the table row marked `attribute="value"`, as text."""
    row = re.search(rf'<tr {attribute}="{value}">(.*?)</tr>', html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]


@pytest.fixture(scope="module")
def written(shop: Path) -> tuple[Path, dict]:
    """`kizuna report` without --period, in Japanese, HTML only: its folder and its JSON output."""
    folder = shop.parent / "written"
    done = kizuna("report", "--dir", str(shop), "--no-pdf", "-o", str(folder), "-f", "json", cwd=shop.parent)
    assert done.returncode == 0, done.stderr
    return folder, json.loads(done.stdout)


@pytest.mark.slow
def test_the_report_is_one_html_file_with_every_section_and_inline_charts(written: tuple[Path, dict]):
    folder, found = written
    # the last full month before the as-of date (1 November 2026)
    assert (found["start"], found["end"]) == ("2026-10-01", "2026-10-31")
    assert found["files"] == [str(folder / "report-2026-10.html")] and found["mailed_to"] == []
    html, page = read(folder / "report-2026-10.html")
    assert page.sections == list(SECTIONS)
    assert page.svgs >= 6  # revenue by month, the moves, lost by reason, value at risk, scenarios, scripts
    # nothing for the browser to fetch: no address, no stylesheet, no font, no script from anywhere
    assert page.addresses == []
    assert not re.search(r"url\(|@import|@font-face", page.styles)
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert "月次レポート 2026年10月" in html and "前月比" in html and "前年同月比" in html


@pytest.mark.slow
def test_the_reports_figures_are_the_months(shop: Path, written: tuple[Path, dict]):
    html, _ = read(written[0] / "report-2026-10.html")
    with Workspace.open(shop, read_only=True) as ws:
        kpis = {r["key"]: r for r in ws.kpi_comparison(Period.month(2026, 10)).rows}
        lost = lost_by_reason(ws.tables(), ws.settings.analysis, Period.month(2026, 10)).to_pylist()
    revenue = kpis["revenue"]
    # tiles in 万円 (a manager's unit), the table in exact yen
    tile = re.search(r'<div class="tile" data-kpi="revenue">.*?<div class="figure">(.*?)</div>', html, re.S).group(1)
    assert tile == money(revenue["value"]) and tile.endswith("万円")
    assert cells(html, "data-kpi", "revenue")[:3] == [
        "売上", money(revenue["value"], exact=True), money(revenue["previous"], exact=True)]
    assert sum(r["customers"] for r in lost) == sum(
        int(cells(html, "data-reason", r["lost_reason"])[1].replace(",", "")) for r in lost)
    # the call centre in October, by hand: 18 calls, 16 customers reached, 9 kept (A: 7 of 10, B: 2 of 6)
    calls = re.search(r'<section id="calls">(.*?)</section>', html, re.S).group(1)
    figures = [re.sub(r"<[^>]+>", "", f) for f in re.findall(r'<div class="figure">(.*?)</div>', calls)]
    assert figures == ["18", "16", "9", "56.3%"]  # 9 / 16 = 56.25 %, rounded half up
    assert cells(calls, "data-script", "A")[:4] == ["A (基準)", "12", "10", "7"]
    assert cells(calls, "data-script", "A")[4].startswith("70.0% [")
    assert cells(calls, "data-script", "B")[:4] == ["B", "6", "6", "2"]
    assert cells(calls, "data-script", "B")[4].startswith("33.3% [")
    # the scenario's groups as enrolled: 40 sent and treated, 20 in its control group
    scenario = cells(html, "data-scenario", SCENARIO)
    assert scenario[0].startswith("休眠顧客への再アプローチ") and scenario[1:4] == ["40", "40", "20"]
    assert re.fullmatch(r"[+-]\d+\.\d% \[[+-]\d+\.\d%, [+-]\d+\.\d%\]", scenario[6])


@pytest.mark.slow
def test_the_report_in_english_has_english_words(shop: Path, tmp_path: Path):
    assert kizuna("report", "--dir", str(shop), "--no-pdf", "--lang", "en", "-o", str(tmp_path),
                  cwd=tmp_path).returncode == 0
    html, page = read(tmp_path / "report-2026-10.html")
    assert "Monthly report 2026-10" in html and "vs last month" in html and "Dormant customer re-approach" in html
    japanese = re.compile(r"[\u3041-\u30ff\u4e00-\u9fff]")
    # the words are English; the agents' names and a shop's data may be Japanese, the labels are not
    assert not [t for t in page.text if japanese.search(t)]


@pytest.mark.slow
def test_mail_goes_to_the_recipients_through_the_smtp_server(shop: Path, tmp_path: Path):
    with SmtpServer() as server:
        settings = Settings.load(shop / "kizuna.toml")
        mailing = shop.parent / "mailing"
        shutil.copytree(shop, mailing)
        (mailing / "kizuna.toml").write_text(settings.replace(
            email={"smtp_url": server.url, "sender": "水の定期便 <report@shop.example.jp>"},
            report={"recipients": ["manager@shop.example.jp", "cc-lead@shop.example.jp"]}).to_toml(), encoding="utf-8")
        done = kizuna("report", "--dir", str(mailing), "--no-pdf", "--mail", "-o", str(tmp_path), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        mails = server.wait_for(2)
    assert sorted(m.rcpt_tos for m in mails) == [("cc-lead@shop.example.jp",), ("manager@shop.example.jp",)]
    message = mails[0].message()
    assert message["Subject"] == "月次レポート 2026年10月" and "report@shop.example.jp" in message["From"]
    assert "List-Unsubscribe" not in message  # to the shop's own people, not a customer
    text = message.get_body(("plain",)).get_content()
    assert "2026年10月 の月次レポート" in text and re.search(r"^売上: .+万円 \(前月比 [↑↓→]", text, re.M)
    attached = {part.get_filename(): part for part in message.iter_attachments()}
    assert list(attached) == ["report-2026-10.html"]
    assert attached["report-2026-10.html"].get_content() == (tmp_path / "report-2026-10.html").read_text("utf-8")
    assert "メール送信: 2 人に送信しました" in done.stdout


@pytest.mark.slow
def test_mail_without_recipients_stops_before_any_work(shop: Path, tmp_path: Path):
    done = kizuna("report", "--dir", str(shop), "--mail", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("エラー: nobody to send the report to: set [report] recipients")
    assert not (tmp_path / "out").exists()


def test_report_settings_are_checked(tmp_path: Path):
    from kizuna._errors import WorkspaceError

    assert Settings().report.recipients == () and Settings().report.chromium == CHROMIUM
    ok = Settings.from_dict({"report": {"recipients": ["a@example.jp", "a@example.jp", "b@example.jp"]}})
    assert ok.report.recipients == ("a@example.jp", "b@example.jp")
    with pytest.raises(WorkspaceError, match=r"^kizuna.toml: report.recipients must be a list of e-mail addresses "
                                             r'in quotes, such as \["manager@example.jp"\], got \["manager"\].$'):
        Settings.from_dict({"report": {"recipients": ["manager"]}})
    assert Settings.from_dict({"report": {"recipients": ["m@example.jp"]}}).to_toml().count(
        'recipients = ["m@example.jp"]') == 1


@pytest.mark.slow
def test_a_period_that_is_no_month_is_one_line(tmp_path: Path):
    done = kizuna("report", "--dir", str(tmp_path), "--period", "2026-13", cwd=tmp_path)
    assert done.returncode == 2 and "--period '2026-13' は年月ではありません。YYYY-MM" in done.stderr


@pytest.mark.browser
@pytest.mark.slow
def test_pdf_printed_by_chromium_and_mailed_with_the_report(shop: Path, tmp_path: Path):
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/install-system.sh)")
    with SmtpServer() as server:
        mailing = shop.parent / "mailing-pdf"
        shutil.copytree(shop, mailing)
        settings = Settings.load(shop / "kizuna.toml")
        (mailing / "kizuna.toml").write_text(settings.replace(
            email={"smtp_url": server.url, "sender": "Shop <report@shop.example.jp>"},
            report={"recipients": ["manager@shop.example.jp"]}).to_toml(), encoding="utf-8")
        done = kizuna("report", "--dir", str(mailing), "--mail", "-o", str(tmp_path), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        mail = server.wait_for(1)[0]
    pdf = (tmp_path / "report-2026-10.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    attached = {part.get_filename(): part for part in mail.message().iter_attachments()}
    assert sorted(attached) == ["report-2026-10.html", "report-2026-10.pdf"]
    assert attached["report-2026-10.pdf"].get_content_type() == "application/pdf"
    assert attached["report-2026-10.pdf"].get_content() == pdf
    from kizuna.reporting import screenshot

    png = screenshot(tmp_path / "report-2026-10.html", tmp_path / "report.png", chromium=CHROMIUM)
    assert png.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("KIZUNA_SCREENSHOT_DIR"):
        shutil.copy(png, Path(os.environ["KIZUNA_SCREENSHOT_DIR"]) / "report.png")


def test_the_operator_email_is_never_sent_twice_and_a_refusal_says_so():
    from kizuna.delivery import DeliveryError, SenderIdentity, SmtpTransport

    data = b"From: report@shop.example.jp\r\nTo: m@shop.example.jp\r\nSubject: x\r\n\r\nreport\r\n"
    # the connection drops after the final dot: the server may have it, so it is not sent again
    with SmtpServer(drop_after_dot=["m@shop.example.jp"], store_dropped=True) as server, \
            SmtpTransport(server.url, SenderIdentity("report@shop.example.jp"), timeout=5) as transport:
        with pytest.raises(DeliveryError) as lost:
            transport.send_bytes("m@shop.example.jp", data)
        assert lost.value.maybe_delivered and server.count == 1
    with SmtpServer(refuse={"m@shop.example.jp": "550 5.1.1 no such user"}) as server, \
            SmtpTransport(server.url, SenderIdentity("report@shop.example.jp"), timeout=5) as transport:
        with pytest.raises(DeliveryError, match="550 5.1.1 no such user") as refused:
            transport.send_bytes("m@shop.example.jp", data)
        assert refused.value.permanent and server.count == 0
        transport.send_bytes("other@shop.example.jp", data)  # the connection serves the next one
        assert [m.rcpt_tos for m in server.wait_for(1)] == [("other@shop.example.jp",)]
