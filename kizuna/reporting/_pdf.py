"""The report's HTML printed to PDF by a Chromium on this machine (Debian's, driven through Playwright).

The page may load nothing but its own file: every other request is refused, so a report that
referred to the internet would show it rather than fetch it. Fonts are the system's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kizuna._errors import KizunaError

__all__ = ["CHROMIUM_ARGS", "print_pdf", "screenshot"]

CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run")


def _browser(chromium: str):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise KizunaError.keyed("error.pdf_needs_playwright") from None
    if not Path(chromium).is_file():
        raise KizunaError.keyed("error.pdf_no_chromium", chromium=chromium)
    return sync_playwright


def _open(playwright, chromium: str, html: Path, width: int):
    from playwright.sync_api import Error

    try:
        browser = playwright.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS), headless=True)
    except Error as exc:
        raise KizunaError.keyed("error.pdf_chromium_failed", chromium=chromium,
                                problem=str(exc).splitlines()[0]) from None
    page = browser.new_page(viewport={"width": width, "height": 1200})
    own = html.resolve().as_uri()
    page.route("**/*", lambda route: route.continue_() if route.request.url == own else route.abort())
    page.goto(own, wait_until="load")
    return browser, page


def print_pdf(html: Path, pdf: Path, *, chromium: str = "/usr/bin/chromium") -> Path:
    """Print `html` (a report file) to `pdf`, A4 with its colours; written whole or not at all."""
    sync_playwright = _browser(chromium)
    handle, temporary = tempfile.mkstemp(dir=pdf.parent, prefix=".report-", suffix=".pdf")
    os.close(handle)
    try:
        with sync_playwright() as playwright:
            browser, page = _open(playwright, chromium, html, 1000)
            try:
                page.pdf(path=temporary, format="A4", print_background=True, prefer_css_page_size=True)
            finally:
                browser.close()
        os.replace(temporary, pdf)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return pdf


def screenshot(html: Path, png: Path, *, chromium: str = "/usr/bin/chromium", width: int = 1100) -> Path:
    """A PNG of the whole report as a browser shows it (for a note, or to look at it without a browser)."""
    sync_playwright = _browser(chromium)
    with sync_playwright() as playwright:
        browser, page = _open(playwright, chromium, html, width)
        try:
            page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    return png
