"""Saved segments (issue #23, items 1, 2, 6): segments/NAME.yaml written and read back, the count and
revenue share of a set of conditions on a small business worked out by hand, a scenario's audience
by a segment's name, `kizuna export --segment`, the mistakes (file, line, field) and the segment
builder's pages in-process (operators save, viewers count and get 403, CSRF required)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import httpx
import pytest

from kizuna._errors import KizunaError
from kizuna.operations import OPERATIONS_FILE, Operations, audit_lines
from kizuna.scenarios import ScenarioError, load_scenario, load_segment
from kizuna.scenarios._segments_saved import scenario_segment
from kizuna.web import create_app, hash_password
from kizuna.workspace import Settings, Workspace

from factories import day, workspace_with

KIZUNA = [sys.executable, "-m", "kizuna"]
AS_OF = dt.date(2026, 11, 30)


def order(order_id: str, customer: str, on: str, amount: int, channel: str, **extra: str) -> dict:
    return {"order_id": order_id, "customer_id": customer, "ordered_at": day(on), "amount": amount,
            "channel": channel, **extra}


def business(path: Path) -> Workspace:
    """Five customers (figures by hand; a cancelled order counts for nothing):

    | customer | completed orders (channel: products)                  | LTV    | e-mail, opt-in   |
    | C1       | 2026-10-01 ¥10,000 web: KETTLE; 2026-11-01 ¥5,000 app  | 15,000 | yes, yes         |
    | C2       | 2026-06-01 ¥20,000 web: W12                            | 20,000 | yes, yes         |
    | C3       | 2026-11-15 ¥7,000 web: CUP (11-10 ¥3,000 KETTLE: cancelled) | 7,000 | yes, no     |
    | C4       | 2025-01-01 ¥8,000 app: W12                             | 8,000  | yes, yes; unsubscribed since |
    | C5       | none                                                   | 0      | no, yes          |

    Every customer: 5, lifetime revenue ¥50,000.
    """
    ws = workspace_with(
        path,
        customers=[
            {"customer_id": "C1", "name": "佐藤 花子", "email": "c1@example.jp", "email_opt_in": True},
            {"customer_id": "C2", "name": "鈴木 一郎", "email": "c2@example.jp", "email_opt_in": True},
            {"customer_id": "C3", "name": "高橋 三郎", "email": "c3@example.jp", "email_opt_in": False},
            {"customer_id": "C4", "name": "田中 四郎", "email": "c4@example.jp", "email_opt_in": True},
            {"customer_id": "C5", "name": "伊藤 五郎", "email_opt_in": True},
        ],
        products=[{"product_id": p, "name": n} for p, n in (("KETTLE", "電気ケトル"), ("W12", "天然水 12L"),
                                                           ("CUP", "紙コップ"))],
        orders=[
            order("O1", "C1", "2026-10-01", 10_000, "web"),
            order("O2", "C1", "2026-11-01", 5_000, "app"),
            order("O3", "C2", "2026-06-01", 20_000, "web"),
            order("O4", "C3", "2026-11-10", 3_000, "web", status="cancelled"),
            order("O5", "C3", "2026-11-15", 7_000, "web"),
            order("O6", "C4", "2025-01-01", 8_000, "app"),
        ],
        order_items=[
            {"order_id": "O1", "product_id": "KETTLE", "quantity": 1, "unit_price": 10_000},
            {"order_id": "O2", "product_id": "W12", "quantity": 1, "unit_price": 5_000},
            {"order_id": "O3", "product_id": "W12", "quantity": 4, "unit_price": 5_000},
            {"order_id": "O4", "product_id": "KETTLE", "quantity": 1, "unit_price": 3_000},
            {"order_id": "O5", "product_id": "CUP", "quantity": 1, "unit_price": 7_000},
            {"order_id": "O6", "product_id": "W12", "quantity": 2, "unit_price": 4_000},
        ],
    )
    ws.save_settings(Settings().replace(delivery={"holdout_share": 0.0, "global_control_share": 0.0},
                                        analysis={"as_of": AS_OF.isoformat()}))
    ws.analyze(AS_OF)
    ws.operations.set_consent("email", "C4", False, source="unsubscribe")
    return ws


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = business(tmp_path_factory.mktemp("segments") / "shop")
    path = ws.path
    ws.close()
    return path


@pytest.mark.parametrize(("where", "customers", "revenue"), [
    (["ltv_revenue >= 10000"], 2, 35_000),                                   # C1, C2
    (["products_bought in [KETTLE]"], 1, 15_000),                            # C1 (C3's kettle was cancelled)
    (["products_bought not in [KETTLE]"], 4, 35_000),                        # C2, C3, C4, C5
    (["products_bought == W12", "orders >= 2"], 1, 15_000),                  # C1
    (["order_channels in [app]"], 2, 23_000),                                # C1, C4
    (["email_consent == true"], 3, 35_000),                                  # C1, C2, C5 (C4 unsubscribed)
    (["email_consent == true", "has_email == true"], 2, 35_000),             # C1, C2
    (["ltv_revenue >= 5000", "order_channels in [web]"], 3, 42_000),         # C1, C2, C3
    ([], 5, 50_000),                                                         # everyone
])
@pytest.mark.slow
def test_the_count_and_revenue_share_of_a_set_of_conditions(shop: Path, where: list[str], customers: int,
                                                            revenue: int):
    with Workspace.open(shop, read_only=True) as ws:
        count = ws.count_segment(where)
    assert (count.customers, count.revenue, count.total_customers, count.total_revenue) == (customers, revenue, 5,
                                                                                            50_000)
    assert count.customer_share == customers / 5 and count.revenue_share == revenue / 50_000


@pytest.mark.slow
def test_a_segment_is_saved_as_a_file_read_back_counted_and_listed(tmp_path: Path):
    ws = business(tmp_path / "shop")
    saved = ws.save_segment("big-web", ["ltv_revenue >= 5000", "order_channels in [web, app]",
                                        "email_consent == true"],
                            title={"ja": "Web の優良顧客", "en": "Good web customers"}, by="hanako")
    assert saved.path == ws.path / "segments" / "big-web.yaml"
    assert saved.path.read_text(encoding="utf-8") == textwrap.dedent("""\
        title:
          ja: Web の優良顧客
          en: Good web customers
        where:
        - ltv_revenue >= 5000
        - order_channels in [web, app]
        - email_consent == true
        """)
    again = load_segment(saved.path)
    assert again == saved and [c.value for c in again.conditions] == [5000, ["web", "app"], True]
    assert [s.name for s in ws.saved_segments()] == ["big-web"]
    count = ws.count_segment("big-web")  # C1, C2 (C3 gave no consent, C4 unsubscribed)
    assert (count.customers, count.revenue) == (2, 35_000)
    assert [(r["user"], r["action"], r["what"]) for r in audit_lines(ws.operations)] == [
        ("hanako", "segment.save", "big-web")]
    ws.close()


@pytest.mark.slow
def test_the_command_line_saves_shows_counts_lists_and_deletes(tmp_path: Path):
    business(tmp_path / "shop").close()
    shop = tmp_path / "shop"

    def kizuna(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*KIZUNA, *args, "--dir", str(shop)], capture_output=True, text=True, check=False)

    done = kizuna("segment", "save", "kettle", "-w", "products_bought in [KETTLE]", "--title", "ケトル購入者",
                  "--title-en", "Kettle buyers")
    assert done.returncode == 0, done.stderr
    shown = json.loads(kizuna("segment", "show", "kettle", "-f", "json").stdout)
    assert shown == {"name": "kettle", "title": {"ja": "ケトル購入者", "en": "Kettle buyers"},
                     "where": ["products_bought in [KETTLE]"], "customers": 1, "customer_share": 0.2,
                     "revenue": 15_000, "revenue_share": 0.3, "total_customers": 5, "total_revenue": 50_000}
    counted = json.loads(kizuna("segment", "count", "-w", "order_channels in [app]", "-f", "json").stdout)
    assert (counted["customers"], counted["revenue"], counted["revenue_share"]) == (2, 23_000, 0.46)
    listed = json.loads(kizuna("segment", "list", "-f", "json").stdout)
    assert listed == [{"name": "kettle", "title": "ケトル購入者", "where": ["products_bought in [KETTLE]"]}]
    table = kizuna("segment", "count", "-w", "ltv_revenue >= 10000", "--lang", "en")
    assert re.search(r"customers\s+│\s+2 ", table.stdout) and re.search(r"revenue share %\s+│\s+70\.0", table.stdout)
    deleted = kizuna("segment", "delete", "kettle", "--lang", "en")
    assert deleted.returncode == 0 and not (shop / "segments" / "kettle.yaml").exists()


@pytest.mark.slow
def test_a_scenarios_audience_by_a_saved_segments_name(tmp_path: Path):
    # after_order, catching up 60 days as of 2026-11-15: O1, O2 (C1) and O5 (C3) are occasions; the saved
    # segment (LTV ¥10,000 or more) keeps C1's only
    ws = business(tmp_path / "shop")
    ws.save_segment("big", ["ltv_revenue >= 10000"])
    scenario = ws.path / "scenarios" / "thanks.yaml"
    for old in scenario.parent.glob("*.yaml"):
        old.unlink()
    scenario.write_text(textwrap.dedent("""\
        trigger: {after_order: {days: 0, catch_up_days: 60}}
        audience:
          segment: big
        goal: {kind: order}
        steps: [{channel: dm, body: "{{ name }}様"}]
        """), encoding="utf-8")
    assert load_scenario(scenario).segment.name == "big"
    now = dt.datetime(2026, 11, 15, 10, tzinfo=dt.UTC)

    def enrolled() -> list[tuple[str, str]]:
        rows = ws.operations.query("SELECT customer_id, occasion FROM deliveries ORDER BY occasion")
        return [(r["customer_id"], r["occasion"]) for r in rows]

    assert ws.run(dt.date(2026, 11, 15), now=now, dry_run=True).tallies[("thanks", 1)].counts["enrolled"] == 2
    ws.run(dt.date(2026, 11, 15), now=now)
    assert enrolled() == [("C1", "order:O1"), ("C1", "order:O2")]
    ws.save_segment("big", ["ltv_revenue >= 5000"])  # edited: C3 (¥7,000) too, from the next run
    ws.run(dt.date(2026, 11, 15), now=now)
    assert enrolled() == [("C1", "order:O1"), ("C1", "order:O2"), ("C3", "order:O5")]
    with pytest.raises(KizunaError) as used:
        ws.delete_segment("big")
    assert str(used.value) == "the segment big is used by scenarios/thanks.yaml; change them first."
    ws.close()


@pytest.mark.slow
def test_kizuna_export_writes_a_saved_segments_customers(tmp_path: Path):
    ws = business(tmp_path / "shop")
    ws.save_segment("web", ["order_channels in [web]"], title={"ja": "Web購入者", "en": "Web buyers"})
    ws.close()
    done = subprocess.run([*KIZUNA, "export", "--segment", "web", "--dir", str(tmp_path / "shop"), "--lang", "en"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.lstrip("\ufeff"))))
    # best LTV first; the reason starts with the segment's title (then what the scores add: "missing: NPS" …)
    assert [(r["customer id"], r["LTV (yen)"], r["why on this list"].split(" / ")[0]) for r in rows] == [
        ("C2", "20000", "Web buyers"), ("C1", "15000", "Web buyers"), ("C3", "7000", "Web buyers")]
    both = subprocess.run([*KIZUNA, "export", "loyal", "--segment", "web", "--dir", str(tmp_path / "shop")],
                          capture_output=True, text=True, check=False)
    assert both.returncode == 2 and "--segment" in both.stderr


# -- mistakes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "line", "problem"), [
    ('title: x\nwhere:\n  - "churn_risk >= high"\n', 3, "where: 'high' is not a number for churn_risk."),
    ('where:\n  - "email_consent == maybe"\n', 2, "where: 'maybe' is not true or false for email_consent."),
    ('where:\n  - "products_bought >= 3"\n', 2,
     "where: products_bought takes in, not in, == or != (e.g. products_bought in [A, B])."),
    ('where:\n  - "ltv_revenue is big"\n', 2, "where: 'ltv_revenue is big' is not a condition"),
    ('title: x\n', 1, "where: is required."),
])
def test_a_mistake_in_a_segment_file_names_the_file_line_and_field(tmp_path: Path, text: str, line: int,
                                                                   problem: str):
    path = tmp_path / "segments" / "bad.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as raised:
        load_segment(path)
    assert str(raised.value).startswith(f"{path}:{line}: {problem}")
    assert (raised.value.path, raised.value.line) == (path, line)


@pytest.mark.slow
def test_mistakes_found_when_counting_or_running_name_their_file(shop: Path, tmp_path: Path):
    with Workspace.open(shop, read_only=True) as ws:
        with pytest.raises(ScenarioError) as unknown:
            ws.count_segment(["ltv_revenu >= 1"])
        assert str(unknown.value).startswith("--where:1: where: unknown column 'ltv_revenu'; the audience has ")
        with pytest.raises(KizunaError) as missing:
            ws.saved_segment("nothing")
        assert str(missing.value) == f"no saved segment named nothing in {shop / 'segments'} (there are: -)."
    scenario = tmp_path / "ws" / "scenarios" / "x.yaml"
    scenario.parent.mkdir(parents=True)
    scenario.write_text("trigger: {lapse: }\naudience:\n  segment: nowhere\ngoal: {kind: order}\n"
                        "steps: [{channel: dm, body: x}]\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as absent:  # read when the scenario runs: an edit to segments/ counts
        scenario_segment(load_scenario(scenario))
    assert str(absent.value) == (f"{scenario}:3: audience.segment: no saved segment 'nowhere' in "
                                 f"{tmp_path / 'ws' / 'segments'}; see `kizuna segment list` for the names.")
    done = subprocess.run([*KIZUNA, "segment", "count", "-w", "churn_risk >= high", "--dir", str(shop), "--lang",
                           "en"], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == "error: --where:1: where: 'high' is not a number for churn_risk.\n"


# -- the segment builder (web, in-process) -------------------------------------------------------------------
OPERATOR, VIEWER = ("ops", "operator-password"), ("look", "viewer-password")


class Browser:
    """The web app in-process (httpx.ASGITransport), keeping its cookies from one request to the next."""

    def __init__(self, path: Path, user: tuple[str, str] | None = None, lang: str = "ja") -> None:
        self.app = create_app(path, warm=False, lang=lang, logins_per_minute=10_000)
        self.cookies = httpx.Cookies()
        if user is not None:
            token = self.csrf("/login")
            done = self.request("POST", "/login", data={"csrf": token, "name": user[0], "password": user[1],
                                                        "next": "/"})
            assert done.status_code == 303, done.text

    def request(self, method: str, url: str, **options) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver",
                                         cookies=self.cookies) as http:
                response = await http.request(method, url, **options)
                self.cookies = httpx.Cookies(http.cookies)
                return response

        return anyio.run(go)

    def get(self, url: str) -> httpx.Response:
        return self.request("GET", url)

    def csrf(self, url: str) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.get(url).text).group(1)

    def close(self) -> None:
        self.app.state.kizuna.reader.close()


def with_users(path: Path) -> Path:
    ops = Operations(path / OPERATIONS_FILE)
    ops.add_user(OPERATOR[0], "operator", hash_password(OPERATOR[1]))
    ops.add_user(VIEWER[0], "viewer", hash_password(VIEWER[1]))
    ops.close()
    return path


def words(html: str) -> str:
    """What a person reads: the page without its tags."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S)))


@pytest.mark.slow
def test_the_builder_counts_as_you_edit_and_an_operator_saves(tmp_path: Path):
    path = with_users(business(tmp_path / "shop").path)
    browser = Browser(path, OPERATOR)
    try:
        live = browser.get("/segments/count?f0=ltv_revenue&o0=%3E%3D&v0=5000&f1=order_channels&o1=in&v1=web")
        assert live.json() == {"ok": True, "customers": 3, "revenue_share": 0.84,
                               "text": "3人 (全顧客の60.0%)・売上シェア 84.0%"}
        wrong = browser.get("/segments/count?f0=ltv_revenue&o0=%3E%3D&v0=lots")
        assert wrong.json() == {"ok": False, "text": "'lots' は ltv_revenue と比べられる数値ではありません。"}
        page = browser.get("/segments/new")
        text = words(page.text)
        assert page.status_code == 200 and "LTV (累計売上, 円)" in text and "5人 (全顧客の100.0%)" in text
        assert "ltv_revenue" not in text and "email_consent" not in text  # codes stay in the form's values
        token = browser.csrf("/segments/new")
        form = {"csrf": token, "name": "kettle-web", "title_ja": "ケトル購入者", "title_en": "Kettle buyers",
                "f0": "products_bought", "o0": "in", "v0": "KETTLE", "f1": "email_consent", "o1": "==", "v1": "true"}
        counted = browser.request("POST", "/segments/edit", data={**form, "do": "count"})
        assert counted.status_code == 200 and "1人 (全顧客の20.0%)・売上シェア 30.0%" in words(counted.text)
        assert not (path / "segments" / "kettle-web.yaml").exists()  # counting saves nothing
        saved = browser.request("POST", "/segments/edit", data={**form, "do": "save"})
        assert saved.status_code == 303 and saved.headers["location"] == "/segments/kettle-web?saved=1"
        assert load_segment(path / "segments" / "kettle-web.yaml").where == ["products_bought in [KETTLE]",
                                                                            "email_consent == true"]
        shown = words(browser.get("/segments/kettle-web?saved=1").text)
        assert "保存しました。" in shown and "電気ケトル" in shown and "1人 (全顧客の20.0%)" in shown
        listed = words(browser.get("/segments").text)
        assert "ケトル購入者" in listed and "購入した商品 のいずれか 電気ケトル" in listed
        assert "メール配信に同意: はい" in listed
        bad = browser.request("POST", "/segments/edit", data={**form, "v0": "", "do": "save"})
        assert bad.status_code == 400 and "値を入れてください。" in words(bad.text)
        audit = audit_lines(Operations(path / OPERATIONS_FILE))
        assert [(r["user"], r["action"], r["what"]) for r in audit] == [("ops", "segment.save", "kettle-web")]
    finally:
        browser.close()


@pytest.mark.slow
def test_a_viewer_counts_but_may_not_save_and_every_post_needs_the_token(tmp_path: Path):
    path = with_users(business(tmp_path / "shop").path)
    viewer = Browser(path, VIEWER)
    try:
        token = viewer.csrf("/segments/new")
        form = {"csrf": token, "name": "mine", "f0": "orders", "o0": ">=", "v0": "1"}
        assert "4人 (全顧客の80.0%)" in words(viewer.request("POST", "/segments/edit",
                                                            data={**form, "do": "count"}).text)
        refused = viewer.request("POST", "/segments/edit", data={**form, "do": "save"})
        assert refused.status_code == 403 and not (path / "segments" / "mine.yaml").exists()
        assert 'value="save"' not in viewer.get("/segments/new").text  # no save button for a viewer
    finally:
        viewer.close()
    operator = Browser(path, OPERATOR)
    try:
        forged = operator.request("POST", "/segments/edit", data={"name": "mine", "f0": "orders", "o0": ">=",
                                                                  "v0": "1", "do": "save"})
        assert forged.status_code == 403 and not (path / "segments" / "mine.yaml").exists()
        Workspace.open(path, read_only=True).save_segment("gone", ["orders >= 1"])
        assert operator.request("POST", "/segments/gone/delete").status_code == 403  # no token
        assert (path / "segments" / "gone.yaml").exists()
        token = operator.csrf("/segments")
        assert operator.request("POST", "/segments/gone/delete", data={"csrf": token}).status_code == 303
        assert not (path / "segments" / "gone.yaml").exists()
    finally:
        operator.close()
