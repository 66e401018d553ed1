"""The web app on PostgreSQL and on Spark: the dashboard, a cell list sorted and paged, a customer
and an export — in Debian's Chromium on PostgreSQL, over HTTP on Spark — with the same figures
and the same customers, in the same order, as on DuckDB for the same data.

One demo business is built and analysed on DuckDB, its tables (canonical tables, scores and
predictions) copied to the engine, and a workspace made that names the engine's store in
kizuna.toml, with the DuckDB workspace's users; a real uvicorn server serves it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_web import OPERATOR, VIEWER, WebDemo, build_web_demo, login, running_server
from test_web_browser import browser, logged_in  # noqa: F401  (the module's Chromium)

from kizuna.analytics import MemberQuery, member_list, member_page
from kizuna.operations import OPERATIONS_FILE
from kizuna.settings import SETTINGS_FILE
from kizuna.store import TABLES, Store, copy_store
from kizuna.web import create_app
from kizuna.web._dashboard import dashboard_figures
from kizuna.workspace import Settings, Workspace

# the lists' rows and the overview's figures too, as `kizuna analyze` and `predict` store them
COPIED = (*TABLES, "customer_scores", "customer_predictions", "_kizuna_list_members", "_kizuna_overview")
PAGE = 50


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A demo workspace on DuckDB (analysed, predicted, with an operator and a viewer)."""
    demo: WebDemo = build_web_demo(tmp_path_factory.mktemp("engines") / "duck", customers=700)
    with Workspace.open(demo.path) as ws:
        yield ws


def _engine_workspace(duck: Workspace, folder: Path, url: str, store: Store) -> Path:
    """A workspace folder whose kizuna.toml names the store at `url`, holding a copy of `duck`'s
    tables in `store` (the store at `url`) and the same users."""
    folder.mkdir(parents=True)
    settings = Settings.load(duck.path / SETTINGS_FILE).replace(store={"url": url})
    (folder / SETTINGS_FILE).write_text(settings.to_toml(), encoding="utf-8")
    shutil.copy(duck.path / OPERATIONS_FILE, folder / OPERATIONS_FILE)
    (folder / OPERATIONS_FILE).chmod(0o600)
    copy_store(duck.store, store, COPIED)  # scores as analysed on DuckDB: the pages read them
    return folder


@pytest.fixture
def postgres_site(duck: Workspace, postgres_database: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    store = Store.connect(postgres_database)
    try:
        folder = _engine_workspace(duck, tmp_path / "pg", postgres_database, store)
        app = create_app(folder, logins_per_minute=10_000)
        with running_server(app) as url:
            yield url, app
    finally:
        store.close()


@pytest.fixture
def spark_site(duck: Workspace, spark_store: Store, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    # `pyspark://local` is the process' one Spark session, on the test's database (made current)
    folder = _engine_workspace(duck, tmp_path / "spark", "pyspark://local", spark_store)
    app = create_app(folder, logins_per_minute=10_000)
    with running_server(app) as url:
        yield url, app


# -- what DuckDB says ------------------------------------------------------------------------------
def _largest_cell(duck: Workspace) -> str:
    """The NPS × LTV cell with the most customers: more than one page of them."""
    matrix = duck.segments()["matrix"].to_pylist()
    best = max(matrix, key=lambda r: r["customers"])
    assert best["customers"] > 2 * PAGE, matrix
    return best["segment"]


def _expected_ids(duck: Workspace, query: MemberQuery, page: int) -> tuple[int, list[str]]:
    found = member_page(duck.scores(), duck.store.table("customers"), query, duck.predictions(),
                        offset=(page - 1) * PAGE, limit=PAGE)
    return int(found.total.to_pyarrow().as_py()), [r["customer_id"] for r in found.rows.to_pyarrow().to_pylist()]


def _export_ids(duck: Workspace, query: MemberQuery) -> list[str]:
    _key, members = member_list(duck.scores(), duck.store.table("customers"), query, duck.predictions())
    return members.customer_id.to_pyarrow().to_pylist()


def _same(expected: Any, actual: Any, where: str) -> None:
    """Equal, floats to 1e-9 (engines may add up in another order)."""
    if isinstance(expected, dict):
        assert set(expected) == set(actual), where
        for key in expected:
            _same(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(expected) == len(actual), where
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            _same(want, got, f"{where}[{i}]")
    elif isinstance(expected, float) or isinstance(actual, float):
        if expected is None or actual is None or (isinstance(expected, float) and math.isnan(expected)):
            assert expected == actual or (expected != expected and actual != actual), where
        else:
            assert float(actual) == pytest.approx(float(expected), rel=1e-9, abs=1e-9), where
    else:
        assert expected == actual, where


FIGURES = ("as_of", "start", "headline", "nps", "by_month", "nps_by_month", "ltv_by_month", "churn_by_month",
           "matrix", "ranks", "rfm_segments", "rf", "concentration", "cohorts", "f2", "has_predictions")


def _same_figures(duck: Workspace, app: Any) -> None:
    """The figures the engine's dashboard shows (from the server's cache) are DuckDB's."""
    shown, _stale = app.state.kizuna.reader.cached("dashboard", dashboard_figures, snapshot=True, wait=600)
    expected = dashboard_figures(duck)
    assert shown["nps_by_month"] and shown["ltv_by_month"] and shown["rf"] and shown["cohorts"]
    for name in FIGURES:
        _same(expected[name], shown[name], name)


def _customer(duck: Workspace, customer_id: str) -> dict[str, Any]:
    customers = duck.store.table("customers")
    return customers.filter(customers.customer_id == customer_id).to_pyarrow().to_pylist()[0]


def _orders_of(duck: Workspace, customer_id: str) -> int:
    orders = duck.store.table("orders")
    return int(orders.filter(orders.customer_id == customer_id).count().to_pyarrow().as_py())


def _ids(html: str) -> list[str]:
    return re.findall(r'class="customer" href="/customer/([^"]+)"', html)


def _total(text: str) -> int:
    return int(re.search(r"\(([\d,]+) 件\)", text).group(1).replace(",", ""))


# -- PostgreSQL, in a browser ----------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.browser
def test_postgres_dashboard_sorted_paged_list_customer_and_export_in_a_browser(
        browser, postgres_site: tuple[str, Any], duck: Workspace, tmp_path: Path):  # noqa: F811
    site, app = postgres_site
    cell = _largest_cell(duck)
    by_orders = MemberQuery(segment=cell, sort="orders", descending=False, contacts=True)
    total, second_page = _expected_ids(duck, by_orders, 2)
    with logged_in(browser, site, OPERATOR) as page:
        page.wait_for_selector("section.kpis svg")
        assert page.locator("article.kpi").count() == 6
        counts = {r["segment"]: r["customers"] for r in duck.segments()["matrix"].to_pylist()}
        shown = page.locator(f'a[data-segment="{cell}"] span.count').inner_text()
        assert int(shown.replace(",", "")) == counts[cell]

        page.click(f"td.cell-{cell} a")
        page.wait_for_url(re.compile(rf".*/list\?segment={cell}"))
        assert _total(page.locator("nav.pager").inner_text()) == total
        first = [page.locator("a.customer").nth(i).inner_text() for i in range(page.locator("a.customer").count())]
        assert first == _expected_ids(duck, MemberQuery(segment=cell, contacts=True), 1)[1]

        page.select_option("select[name=sort]", "orders")
        page.uncheck("input[type=checkbox][name=desc]")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r".*sort=orders.*"))
        page.click("nav.pager a[rel=next]")
        page.wait_for_url(re.compile(r".*page=2.*"))
        listed = page.locator("a.customer")
        assert [listed.nth(i).inner_text() for i in range(listed.count())] == second_page

        with page.expect_download() as download_info:
            page.click("#export-csv")
        saved = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(saved)
        rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
        assert [r[0] for r in rows[1:]] == _export_ids(duck, by_orders)

        someone = second_page[0]
        listed.first.click()
        page.wait_for_url(re.compile(rf".*/customer/{re.escape(someone)}"))
        assert someone in page.locator("h1").inner_text()
        assert page.locator("tr.kind-order").count() == _orders_of(duck, someone)
        email = _customer(duck, someone)["email"]
        assert page.locator("#profile [data-field=email]").inner_text() == (email or "")
    _same_figures(duck, app)


# -- Spark, over HTTP ---------------------------------------------------------------------------------
@pytest.mark.spark
def test_spark_dashboard_sorted_paged_list_customer_and_export_over_http(
        spark_site: tuple[str, Any], duck: Workspace):
    site, app = spark_site
    cell = _largest_cell(duck)
    with contextlib.closing(login(site, OPERATOR)) as operator, contextlib.closing(login(site, VIEWER)) as viewer:
        _same_figures(duck, app)  # computed in the background since the app started
        overview = operator.get("/")
        assert overview.status_code == 200 and overview.text.count('class="kpi') >= 6
        counts = {r["segment"]: r["customers"] for r in duck.segments()["matrix"].to_pylist()}
        for segment, customers in counts.items():
            found = re.search(rf'data-segment="{segment}">.*?<span class="count">([\d,]+)</span>', overview.text, re.S)
            assert int(found.group(1).replace(",", "")) == customers, segment
        assert operator.get("/rfm").status_code == 200 and operator.get("/cohorts").status_code == 200

        for sort, descending in (("orders", False), ("value_at_risk", True)):
            query = MemberQuery(segment=cell, sort=sort, descending=descending, contacts=True)
            total, expected = _expected_ids(duck, query, 2)
            answer = operator.get("/list", params={"segment": cell, "sort": sort, "desc": "1" if descending else "0",
                                                   "page": "2"})
            assert answer.status_code == 200, answer.text
            assert _total(answer.text) == total and _ids(answer.text) == expected, sort

        someone = _expected_ids(duck, MemberQuery(segment=cell), 1)[1][3]
        name = _customer(duck, someone)["name"]
        searched = operator.get("/list", params={"segment": cell, "q": name}).text
        assert someone in _ids(searched)
        assert someone not in _ids(viewer.get("/list", params={"segment": cell, "q": name}).text)

        customer = operator.get(f"/customer/{someone}")
        assert customer.status_code == 200
        assert customer.text.count('class="kind-order"') == _orders_of(duck, someone)
        assert operator.get("/customer/no-such-customer").status_code == 404

        query = MemberQuery(segment=cell, sort="orders", descending=False, contacts=True)
        exported = operator.get("/export.csv", params={"segment": cell, "sort": "orders", "desc": "0"})
        assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
        assert [r[0] for r in rows[1:]] == _export_ids(duck, query)
        masked = list(csv.reader(io.StringIO(viewer.get("/export.csv", params={"segment": cell}).content
                                             .decode("utf-8-sig"))))
        email = masked[0].index("メールアドレス")
        assert {r[email] for r in masked[1:]} <= {"●●●", ""}


def test_a_store_held_by_another_process_is_store_busy(tmp_path: Path):
    """A DuckDB file another process writes: opening it gives `StoreBusy` (a typed error; the web
    app shows its "busy, reload in a moment" page for it without reading the message)."""
    from kizuna.store import StoreBusy

    path = tmp_path / "held.duckdb"
    Store.connect(str(path)).close()
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, sys; con = duckdb.connect({str(path)!r}); "
                               "print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusy, match="is using this workspace's store"):
            Store.connect(str(path), read_only=True, create=False, lock_wait=0)
    finally:
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()
