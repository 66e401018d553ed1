"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright, against a real
uvicorn server on 127.0.0.1 — log in, the dashboard, the churn-candidate cell, a customer, an export.

Writes a screenshot of the dashboard into the test's tmp dir (and into $KIZUNA_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_web import (
    OPERATOR,
    VIEWER,
    WebDemo,
    running_server,
    web_demo,  # noqa: F401  (the session's demo workspace, shared with test_web)
)

from kizuna.web import create_app

from servers import unavailable

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser_demo(web_demo: WebDemo) -> WebDemo:  # noqa: F811
    return web_demo


@pytest.fixture(scope="module")
def site(browser_demo: WebDemo) -> Iterator[str]:
    with running_server(create_app(browser_demo.path)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/install-system.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def logged_in(browser, site: str, user: tuple[str, str]) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True, locale="ja-JP")
    page = context.new_page()
    # every request stays on 127.0.0.1: no font, script or stylesheet from the internet
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(site) or r.url.startswith("data:") else outside.append(r.url))
    page.goto(site + "/")
    assert "/login" in page.url
    page.fill("input[name=name]", user[0])
    page.fill("input[name=password]", user[1])
    page.click("button[type=submit]")
    page.wait_for_url(site + "/")
    try:
        yield page
    finally:
        context.close()
    assert outside == []


def test_operator_walks_from_the_dashboard_to_a_customer_and_exports_the_list(
        browser, site: str, browser_demo: WebDemo, tmp_path: Path):
    with logged_in(browser, site, OPERATOR) as page:
        page.wait_for_selector("section.kpis svg")
        assert page.locator("article.kpi").count() == 6
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        if os.environ.get("KIZUNA_SCREENSHOT_DIR"):
            folder = Path(os.environ["KIZUNA_SCREENSHOT_DIR"])
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, folder / "dashboard.png")

        page.click("td.cell-churn_candidate a")  # the 離脱候補者 cell
        page.wait_for_url(re.compile(r".*/list\?segment=churn_candidate"))
        assert "離脱候補者" in page.locator("h1").inner_text()
        listed = page.locator("a.customer")
        expected = [r["customer_id"] for r in browser_demo.churn]
        assert listed.count() == min(50, len(expected))
        assert listed.first.inner_text() == expected[0]
        total = int(re.search(r"\(([\d,]+) 件\)", page.locator("nav.pager").inner_text()).group(1).replace(",", ""))
        assert total == len(expected)

        with page.expect_download() as download_info:
            page.click("#export-csv")
        download = download_info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        assert saved.suffix == ".csv"
        rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
        assert len(rows) - 1 == total
        assert [r[0] for r in rows[1:]] == expected

        listed.nth(1).click()
        page.wait_for_url(re.compile(r".*/customer/"))
        assert expected[1] in page.locator("h1").inner_text()
        assert page.locator("tr.kind-order").count() >= 1
        assert page.locator("#profile [data-field=email]").inner_text() == (browser_demo.churn[1]["email"] or "")
        page.screenshot(path=str(tmp_path / "customer.png"), full_page=True)
        if os.environ.get("KIZUNA_SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "customer.png", Path(os.environ["KIZUNA_SCREENSHOT_DIR"]) / "customer.png")


def test_viewer_sees_masked_contact_data_in_the_browser(browser, site: str, browser_demo: WebDemo):
    with logged_in(browser, site, VIEWER) as page:
        page.click("td.cell-churn_candidate a")
        page.wait_for_url(re.compile(r".*/list\?segment=churn_candidate"))
        text = page.locator("table.list").inner_text()
        assert "●●●" in text
        for row in browser_demo.churn[:50]:
            assert not row["email"] or row["email"] not in text
        page.locator("a.customer").first.click()
        page.wait_for_url(re.compile(r".*/customer/"))
        assert page.locator("#profile [data-field=email]").inner_text() in ("●●●", "")


def test_english_switch_and_logout(browser, site: str):
    with logged_in(browser, site, OPERATOR) as page:
        page.click("a.lang")
        page.wait_for_selector("text=Overview")
        assert "churn candidate" in page.locator("table.matrix").inner_text()
        page.click("button.link")  # log out: a form with its CSRF token
        page.wait_for_url(re.compile(r".*/login"))
        page.goto(site + "/")
        assert "/login" in page.url
