"""`kizuna forget`: a customer's personal data erased from the store, the operational records and
the rejects files, on DuckDB and PostgreSQL, with the figures (orders, revenue, NPS) unchanged."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from kizuna._errors import KizunaError
from kizuna.operations import now_ts
from kizuna.workspace import Settings, Workspace
from kizuna.workspace._forget import PERSONAL_COLUMNS, forget_customer

from factories import arrow_rows, day, write

KIZUNA = [sys.executable, "-m", "kizuna"]
AS_OF = dt.date(2026, 11, 30)
CID = "C001"
STORE_TABLES = ("customers", "orders", "nps_answers", "support_contacts", "events", "customer_scores",
                "customer_predictions")

CUSTOMERS = [
    {"customer_id": CID, "name": "山田 太郎", "name_kana": "ヤマダ タロウ", "email": "taro@example.jp",
     "phone": "090-1234-5678", "line_user_id": "U" + "1" * 32, "postal_code": "150-0001",
     "address": "東京都渋谷区神宮前1-2-3", "signed_up_at": day("2024-01-10"), "email_opt_in": True,
     "birthday": dt.date(1980, 2, 3)},
    {"customer_id": "C002", "name": "佐藤 花子", "email": "hanako@example.jp", "phone": "080-1111-2222",
     "postal_code": "150-0001", "signed_up_at": day("2024-03-01")},
    {"customer_id": "C003", "name": "鈴木 一郎", "signed_up_at": day("2025-05-05")},
]
ORDERS = [
    {"order_id": "O1", "customer_id": CID, "ordered_at": day("2026-01-05"), "amount": 12_000, "status": "completed"},
    {"order_id": "O2", "customer_id": CID, "ordered_at": day("2026-05-05"), "amount": 8_000, "status": "returned",
     "refund_amount": 3_000},
    {"order_id": "O3", "customer_id": CID, "ordered_at": day("2026-10-01"), "amount": 15_000},
    {"order_id": "O4", "customer_id": "C002", "ordered_at": day("2026-02-01"), "amount": 5_000},
    {"order_id": "O5", "customer_id": "C002", "ordered_at": day("2026-09-01"), "amount": 7_000},
    {"order_id": "O6", "customer_id": "C003", "ordered_at": day("2026-06-15"), "amount": 30_000},
]
NPS = [
    {"customer_id": CID, "answered_at": day("2026-06-01"), "score": 3, "comment": "配送が遅い。山田より",
     "touchpoint": "delivery"},
    {"customer_id": "C002", "answered_at": day("2026-07-01"), "score": 10, "comment": "最高", "touchpoint": "web"},
    {"customer_id": "C003", "answered_at": day("2026-07-02"), "score": 8},
]
SUPPORT = [
    {"contact_id": "S1", "customer_id": CID, "opened_at": day("2026-05-10"), "channel": "phone",
     "status": "resolved", "resolved_at": day("2026-05-11"), "category": "delivery", "is_complaint": True},
    {"contact_id": "S2", "customer_id": "C002", "opened_at": day("2026-05-12"), "channel": "chat", "status": "open"},
]
EVENTS = [
    {"customer_id": CID, "occurred_at": day("2026-04-01"), "kind": "moved", "detail": "大阪府大阪市北区へ転居"},
    {"customer_id": "C002", "occurred_at": day("2026-04-02"), "kind": "married", "detail": "姓変更"},
]


def build(path: Path, store_url: str = "", operations_url: str = "") -> Workspace:
    """A workspace on `store_url`'s engine and `operations_url`'s records: the rows above, scores,
    predictions, ledger, rejects."""
    ws = Workspace.init(path, store_url=store_url, settings=Settings().replace(operations={"url": operations_url}))
    for table, rows in (("customers", CUSTOMERS), ("orders", ORDERS), ("nps_answers", NPS),
                        ("support_contacts", SUPPORT), ("events", EVENTS)):
        ws.store.append(table, arrow_rows(table, rows))
    ws.analyze(AS_OF)
    ws.store.create("customer_predictions", pa.table({  # the shape `kizuna predict` writes, in short
        "customer_id": ["C001", "C002", "C003"], "churn_risk": [0.7, 0.2, 0.4],
        "value_at_risk": [21_000.0, 2_400.0, 12_000.0]}))
    ops = ws.operations
    now = now_ts()
    with ops.write() as db:
        for n, customer in enumerate((CID, CID, "C002")):
            db.execute(
                "INSERT INTO deliveries (key, ref, scenario, step, customer_id, occasion, occasion_ts, channel, grp, "
                "status, due_ts, created_ts, updated_ts, sent_ts) VALUES (?, ?, 'thanks', 1, ?, ?, ?, 'email', "
                "'treated', 'sent', ?, ?, ?, ?)",
                (f"thanks/1/{customer}/{n}", f"ref{n}", customer, f"order:{n}", now, now, now, now, now))
    ops.set_consent("email", CID, False, source="unsubscribe")
    web = ops.survey_link(CID, "support_call")
    ops.answer_survey(web, 2, "電話がつながらない(山田)", at=int(dt.datetime(2026, 11, 1, 3).timestamp()))
    # rejects of a real import: a second C001 row with other data, an order of an unknown customer
    # that quotes C001's e-mail (as a guest order is identified), and other customers' lines
    source = write(path / "customers-again.csv",
                   "customer_id,name,email,birthday\n"
                   f"{CID},山田 太郎,taro@example.jp,1980-02-03\n"
                   f"{CID},山田 太郎(旧姓),taro@example.jp,1980-02-03\n"
                   "C002,佐藤 花子,hanako@example.jp,1990-02-30\n")
    ws.import_file("customers", source)
    (path / "rejects" / "orders-20261101-000000-000000.csv").write_text(
        "\ufefffile,row,column,value,reason\n"
        "shopify.csv,7,email,TARO@example.jp,guest order: no customer with this e-mail\n"
        "shopify.csv,7,amount,abc,not an amount in whole yen\n"
        "shopify.csv,8,phone,'+81 90-1234-5678,guest order: no customer with this phone\n"
        "shopify.csv,9,email,hanako@example.jp,guest order: no customer with this e-mail\n"
        "shopify.csv,10,amount,x,not an amount in whole yen\n", encoding="utf-8", newline="")
    return ws


def rejects_lines(ws: Workspace) -> dict[str, list[list[str]]]:
    found = {}
    for path in sorted((ws.path / "rejects").iterdir()):
        assert path.read_bytes().startswith(b"\xef\xbb\xbf"), path  # still opens in Excel as UTF-8
        with path.open(encoding="utf-8-sig", newline="") as handle:
            found[path.name.split("-")[0]] = list(csv.reader(handle))[1:]
    return found


def rows_of(ws: Workspace, table: str) -> list[dict]:
    return ws.store.table(table).to_pyarrow().to_pylist()


def figures(ws: Workspace) -> dict:
    """What the KPIs and the scores say, keyed without customer ids."""
    report = ws.kpis(AS_OF, start=dt.date(2026, 1, 1))
    scores = rows_of(ws, "customer_scores")
    return {
        "headline": report.headline, "nps": report.nps, "by": report.by.to_pylist(),
        "scores": sorted((r["orders"], r["ltv_revenue"], r["nps_score"], r["matrix_cell"], r["rfm_rank"])
                         for r in scores),
    }


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("postgres-operations", marks=pytest.mark.postgres)])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """The store on DuckDB or PostgreSQL; the operational records in SQLite, or (postgres-operations:
    DuckDB store) in a PostgreSQL database of their own."""
    url = request.getfixturevalue("postgres_database") if request.param.startswith("postgres") else ""
    if request.param == "postgres-operations":
        ws = build(tmp_path / "shop", operations_url=url)
    else:
        ws = build(tmp_path / "shop", url)
    yield ws
    ws.close()


@pytest.mark.slow
def test_forget_erases_the_customer_everywhere_and_keeps_the_figures(shop: Workspace) -> None:
    ws = shop
    assert ws.merge_survey_answers() == 1  # the web answer, in the figures before and after
    ws.analyze(AS_OF)
    before = figures(ws)
    others = {t: [r for r in rows_of(ws, t) if r["customer_id"] != CID] for t in STORE_TABLES}
    assert len(rejects_lines(ws)["customers"]) == 2 and len(rejects_lines(ws)["orders"]) == 5

    report = forget_customer(ws, CID)

    assert report.survey_answers_merged == 0
    assert report.rows == {"customers": 1, "orders": 3, "nps_answers": 2, "support_contacts": 1, "events": 1,
                           "customer_scores": 1, "customer_predictions": 1}
    pseudonyms = set()
    for table in STORE_TABLES:
        rows = rows_of(ws, table)
        assert CID not in {r["customer_id"] for r in rows}, table
        assert [r for r in rows if r["customer_id"] in {o["customer_id"] for o in others[table]}] == others[table]
        erased = [r for r in rows if r["customer_id"].startswith("forgotten-")]
        pseudonyms |= {r["customer_id"] for r in erased}
        for row in erased:
            assert all(row[c] is None for c in PERSONAL_COLUMNS if c in row), (table, row)
    assert len(pseudonyms) == 1
    (customer,) = [r for r in rows_of(ws, "customers") if r["customer_id"] in pseudonyms]
    assert customer["signed_up_at"] == day("2024-01-10") and customer["email_opt_in"] is True
    assert sorted((r["order_id"], r["amount"]) for r in rows_of(ws, "orders") if r["customer_id"] in pseudonyms) == [
        ("O1", 12_000), ("O2", 8_000), ("O3", 15_000)]
    assert sorted(r["score"] for r in rows_of(ws, "nps_answers") if r["customer_id"] in pseudonyms) == [2, 3]
    assert figures(ws) == before
    ws.analyze(AS_OF)  # computed again from the erased store: the same figures
    assert figures(ws) == before

    ops = ws.operations
    assert ops.deliveries_of(CID) == []
    assert [r["key"].split("/")[2] for r in ops.query("SELECT key FROM deliveries ORDER BY key")] == [
        "C002", *pseudonyms, *pseudonyms]  # the keys too: no key names the customer beside the pseudonym
    assert [r["subject"][:7] for r in ops.query("SELECT subject FROM consents")] == ["erased:"]
    from kizuna.store import redact

    duck = ws.store.engine == "duckdb"
    store_file = {"kizuna.duckdb": "rewritten"} if duck else {redact(ws.store.url): "vacuum_full"}
    records = {"kizuna-ops.sqlite3": "vacuum"} if ops.kind == "sqlite" else {ops.name: "vacuum_full"}
    assert report.compacted == {**store_file, **records}
    assert report.operations == {"deliveries": 2, "survey_links": 1, "survey_answers": 1, "consents": 1}
    assert ops.query("SELECT count(*) AS n FROM deliveries WHERE customer_id LIKE 'forgotten-%'")[0]["n"] == 2
    assert [dict(r) for r in ops.query("SELECT customer_id, comment FROM survey_answers")][0]["comment"] is None
    assert ops.consent("email", CID) is False  # the opt-out outlives the erasure

    left = rejects_lines(ws)
    assert [line[1:4] for line in left["customers"]] == [["4", "birthday", "1990-02-30"]]
    assert [line[:3] for line in left["orders"]] == [["shopify.csv", "9", "email"], ["shopify.csv", "10", "amount"]]
    assert sorted(p.name for p in (ws.path / "rejects").iterdir() if not p.name.endswith(".csv")) == []
    assert report.rejects_lines == 4 and report.rejects_files == 2


@pytest.mark.slow
def test_forgetting_again_or_an_unknown_id_is_a_one_line_error(tmp_path: Path) -> None:
    with build(tmp_path / "shop") as ws:
        forget_customer(ws, CID)
        snapshot = {t: rows_of(ws, t) for t in STORE_TABLES}
        for unknown in (CID, "C999", ""):
            with pytest.raises(KizunaError, match="no customer .* in this workspace") as error:
                forget_customer(ws, unknown)
            assert "\n" not in str(error.value)
        assert {t: rows_of(ws, t) for t in STORE_TABLES} == snapshot


@pytest.mark.slow
def test_a_failed_store_step_changes_no_table_and_a_rerun_finishes(tmp_path: Path) -> None:
    with build(tmp_path / "shop") as ws:
        # a table the update of which the engine refuses, sorted after all the others
        ws.store.backend.con.execute("CREATE TABLE zz_audit (customer_id VARCHAR CHECK (customer_id = 'C001'))")
        ws.store.backend.con.execute("INSERT INTO zz_audit VALUES ('C001')")
        ws.merge_survey_answers()
        snapshot = {t: rows_of(ws, t) for t in STORE_TABLES}
        with pytest.raises(Exception, match="(?i)constraint"):
            forget_customer(ws, CID)
        assert {t: rows_of(ws, t) for t in STORE_TABLES} == snapshot  # one transaction: none changed
        ws.store.drop("zz_audit")
        report = forget_customer(ws, CID)  # the customer is still found, and the rest is done
        assert report.rows["orders"] == 3
        assert CID not in {r["customer_id"] for r in rows_of(ws, "orders")}


@pytest.mark.slow
def test_a_customer_named_only_in_rejects_is_erased_there(tmp_path: Path) -> None:
    with build(tmp_path / "shop") as ws:
        (ws.path / "rejects" / "orders-20261102-000000-000000.csv").write_text(
            "\ufefffile,row,column,value,reason\n"
            "orders.csv,2,customer_id,C777,unknown customer_id (not in customers: import customers first)\n"
            "orders.csv,3,customer_id,C778,unknown customer_id (not in customers: import customers first)\n",
            encoding="utf-8", newline="")
        report = forget_customer(ws, "C777")
        assert (report.rows, report.rejects_lines, report.rejects_files) == ({}, 1, 1)
        assert [line[3] for line in rejects_lines(ws)["orders"] if line[0] == "orders.csv"] == ["C778"]


@pytest.mark.slow
def test_cli_forget_asks_first_and_prints_what_it_erased(tmp_path: Path) -> None:
    build(tmp_path / "shop").close()
    folder = str(tmp_path / "shop")
    closed = subprocess.run([*KIZUNA, "forget", CID, "--dir", folder], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert closed.returncode == 1 and "--yes" in closed.stderr and len(closed.stderr.strip().splitlines()) == 1
    declined = subprocess.run([*KIZUNA, "forget", CID, "--dir", folder, "--lang", "en"], input="n\n",
                              capture_output=True, text=True)
    assert declined.returncode == 1 and "cancelled; nothing was changed." in declined.stdout
    with Workspace.open(folder) as ws:
        assert CID in {r["customer_id"] for r in rows_of(ws, "customers")}
    done = subprocess.run([*KIZUNA, "forget", CID, "--dir", folder, "--yes", "--format", "json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    files = said.pop("files")
    assert said == {
        "customer_id": CID, "rows": {"customer_predictions": 1, "customer_scores": 1, "customers": 1, "events": 1,
                                     "nps_answers": 2, "orders": 3, "support_contacts": 1},
        "operations": {"deliveries": 2, "survey_links": 1, "survey_answers": 1, "consents": 1},
        "compacted": {"kizuna.duckdb": "rewritten", "kizuna-ops.sqlite3": "vacuum"},
        "rejects_lines": 4, "rejects_files": 2, "survey_answers_merged": 1}
    assert sorted((name.split("-")[0], n) for name, n in files.items()) == [
        ("rejects/customers", 1), ("rejects/orders", 3)]
    again = subprocess.run([*KIZUNA, "forget", CID, "--dir", folder, "--yes"], capture_output=True, text=True)
    assert again.returncode == 1 and again.stderr.startswith("エラー: このワークスペースに顧客 'C001' はいません")
    assert "Traceback" not in again.stderr


@pytest.mark.spark
@pytest.mark.slow
def test_the_same_on_spark_table_by_table(tmp_path: Path, spark_store) -> None:
    from kizuna.store import copy_store

    with build(tmp_path / "shop") as duck:
        duck.merge_survey_answers()
        copy_store(duck.store, spark_store)
        ws = Workspace(duck.path, duck.settings, spark_store)
        before = {t: sorted(r["customer_id"] for r in rows_of(ws, t)) for t in ("customers", "orders", "nps_answers")}
        report = forget_customer(ws, CID)
        assert {t: report.rows[t] for t in before} == {"customers": 1, "orders": 3, "nps_answers": 2}
        for table, ids in before.items():
            rows = rows_of(ws, table)
            assert len(rows) == len(ids) and CID not in {r["customer_id"] for r in rows}
            assert sorted(r["customer_id"] for r in rows if r["customer_id"].startswith("C")) == [
                i for i in ids if i != CID]
        assert report.compacted == {"Spark": "tables_rewritten", "kizuna-ops.sqlite3": "vacuum"}
        (customer,) = [r for r in rows_of(ws, "customers") if r["customer_id"].startswith("forgotten-")]
        assert all(customer[c] is None for c in PERSONAL_COLUMNS if c in customer)
        assert customer["signed_up_at"] == day("2024-01-10")
        assert sorted(r["amount"] for r in rows_of(ws, "orders") if r["customer_id"] == customer["customer_id"]) == [
            8_000, 12_000, 15_000]


# -- every file kizuna wrote: lists, exports, rejects, the store file, the operational records -----

JST = dt.timezone(dt.timedelta(hours=9))
GONE = {"customer_id": "C0000005", "name": "山田 太郎", "name_kana": "ヤマダ タロウ", "email": "taro.yamada@example.jp",
        "phone": "090-1234-5678", "line_user_id": "U" + "5" * 32, "postal_code": "150-0005",
        "address": "東京都渋谷区神宮前5-6-7", "signed_up_at": day("2024-01-10"), "email_opt_in": True,
        "dm_opt_in": True}
KEPT = {"customer_id": "C0000006", "name": "佐藤 花子", "email": "hanako.sato@example.jp", "phone": "080-1111-2222",
        "postal_code": "530-0001", "address": "大阪府大阪市北区梅田1-1", "signed_up_at": day("2024-03-01"),
        "dm_opt_in": True}
INSERT = "trigger: {after_order: {days: 1}}\ngoal: {kind: order, days: 30}\nsteps:\n" \
         "  - channel: insert\n    body: \"{{ name }}様 いつもありがとうございます\"\n"
DM = "trigger: {after_order: {days: 1}}\ngoal: {kind: order, days: 30}\nsteps:\n" \
     "  - channel: dm\n    body: \"{{ name }}様へカタログ ({{ address }})\"\n"


def needles(customer: dict) -> dict[str, bytes]:
    """What must not be left anywhere: the values as stored, and the phone's bare digits."""
    found = {c: str(customer[c]).encode() for c in ("customer_id", "name", "name_kana", "email", "phone",
                                                    "line_user_id", "postal_code", "address") if customer.get(c)}
    found["phone digits"] = customer["phone"].replace("-", "").encode()
    return found


def file_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, as raw bytes; an .xlsx also as its unzipped parts (it is compressed)."""
    import zipfile

    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        found[name] = path.read_bytes()
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                for part in book.namelist():
                    found[f"{name}!{part}"] = book.read(part)
    return found


def left_behind(folder: Path, customer: dict) -> list[tuple[str, str]]:
    return [(name, what) for name, data in file_bytes(folder).items()
            for what, needle in needles(customer).items() if needle in data]


def build_with_lists(path: Path, sources: Path) -> Workspace:
    """A DuckDB workspace after `kizuna run` wrote an insert and a DM list naming both customers, with a
    customer list exported into the workspace, rejects, a survey answer, an opt-out and a LINE unfollow."""
    from kizuna.workspace import Settings

    ws = Workspace.init(path)
    ws.store.append("customers", arrow_rows("customers", [GONE, KEPT]))
    ws.store.append("orders", arrow_rows("orders", [
        {"order_id": f"O{n}", "customer_id": c["customer_id"], "ordered_at": day("2026-11-28", 15), "amount": 3240 * n}
        for n, c in enumerate((GONE, KEPT), start=1)]))
    ws.store.append("nps_answers", arrow_rows("nps_answers", [
        {"customer_id": GONE["customer_id"], "answered_at": day("2026-11-01"), "score": 4,
         "comment": "担当の方が山田 太郎と名乗っても聞いてくれない"}]))
    for old in (path / "scenarios").glob("*.yaml"):
        old.unlink()
    (path / "scenarios" / "insert.yaml").write_text(INSERT, encoding="utf-8")
    (path / "scenarios" / "dm.yaml").write_text(DM, encoding="utf-8")
    ws.save_settings(Settings().replace(delivery={"holdout_share": 0.0, "global_control_share": 0.0},
                                        analysis={"as_of": "2026-11-30"}))
    report = ws.run(now=dt.datetime(2026, 11, 30, 10, tzinfo=JST))
    assert sorted(p.parent.name for p in report.files) == ["dm", "dm", "insert", "insert"]
    ws.analyze(AS_OF)
    cell = [r for r in rows_of(ws, "customer_scores") if r["customer_id"] == GONE["customer_id"]][0]["matrix_cell"]
    assert ws.export_segment(cell, path / "exports" / "list.xlsx", fmt="xlsx") >= 1
    ops = ws.operations
    ops.set_consent("email", GONE["customer_id"], False, source="unsubscribe")
    ops.set_consent("line", GONE["line_user_id"], False, source="line_webhook")
    web = ops.survey_link(GONE["customer_id"], "support_call")
    ops.answer_survey(web, 2, "電話がつながらない(山田 太郎)", at=int(dt.datetime(2026, 11, 1, 3).timestamp()))
    contact = f"{GONE['email']},{GONE['phone']},150-0005,{GONE['address']}"
    ws.import_file("customers", write(sources / "customers-again.csv",  # C0000005 twice, differently: rejected
                                      "customer_id,name,email,phone,postal_code,address\n"
                                      f"C0000005,山田 太郎,{contact}\nC0000005,山田 太郎(旧),{contact}\n"
                                      f"C0000006,佐藤 花子(旧),{KEPT['email']},,,\n"))
    return ws


def list_rows(path: Path) -> list[list]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.reader(handle))
    import openpyxl

    sheet = openpyxl.load_workbook(path).worksheets[0]
    header = int(sheet.freeze_panes[1:]) - 1 if sheet.freeze_panes else 1  # below the title row (kizuna._sheets)
    return [list(row) for row in sheet.iter_rows(min_row=header, values_only=True)]


@pytest.mark.slow
def test_forget_leaves_no_byte_of_the_customer_in_any_file_of_the_workspace(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    sources.mkdir()
    folder = tmp_path / "shop"
    build_with_lists(folder, sources).close()
    before = left_behind(folder, GONE)
    # the test sees them: in the store file, the ledger's keys, both lists, the export and the rejects
    assert {name.split("!")[0].split("/")[0] for name, _ in before} >= {
        "kizuna.duckdb", "kizuna-ops.sqlite3", "outbox", "exports", "rejects"}
    assert ("kizuna.duckdb", "address") in before and ("kizuna-ops.sqlite3", "customer_id") in before
    lists = sorted((folder / "outbox").rglob("*.*"))
    kept_before = {p.name: [r for r in list_rows(p)[1:] if "C0000006" in r] for p in lists}
    assert all(kept_before.values())

    done = subprocess.run([*KIZUNA, "forget", "C0000005", "--dir", str(folder), "--yes", "--lang", "en"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    assert left_behind(folder, GONE) == []
    assert left_behind(folder, KEPT) != []  # the other customer is still everywhere
    for path in lists:  # the lists without the customer's rows; the others' rows as they were
        assert [r for r in list_rows(path)[1:]] == kept_before[path.name], path
    assert sorted((folder / "outbox").rglob("*.*")) == lists  # nothing left aside
    out = done.stdout
    for name in ("customers", "orders", "nps_answers", "customer_scores", "deliveries", "consents",
                 "survey_answers", "kizuna.duckdb", "kizuna-ops.sqlite3", "exports/list.xlsx",
                 *(str(p.relative_to(folder)) for p in lists)):
        assert name in out, name
    with Workspace.open(folder) as ws:
        keys = [r["key"] for r in ws.operations.query("SELECT key, customer_id FROM deliveries")]
        pseudonyms = {r["customer_id"] for r in rows_of(ws, "customers")} - {"C0000006"}
        (pseudonym,) = pseudonyms
        assert sorted(k.split("/")[2] for k in keys) == sorted(["C0000006", "C0000006", pseudonym, pseudonym])
        assert ws.operations.consent("email", "C0000005") is False  # the opt-out still holds
        assert ws.operations.consent("line", GONE["line_user_id"]) is False
        assert ws.operations.consent("email", "C0000006") is None


KILLED_AT = """
import os, signal, sys
from kizuna.store import _duckdb
from kizuna.workspace import Workspace
from kizuna.workspace._forget import forget_customer

folder, where = sys.argv[1:]
if where == "store update":  # the third table's UPDATE, inside the store's transaction
    execute, updates = _duckdb.DuckDBStore._execute, []

    def killing_execute(self, sql):
        updates.append(sql) if sql.startswith("UPDATE") else None
        if len(updates) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        execute(self, sql)

    _duckdb.DuckDBStore._execute = killing_execute
else:  # the new store file written, just before or just after it is renamed over the old one
    replace = os.replace

    def killing_replace(source, target):
        if str(target).endswith("kizuna.duckdb") and where == "before rename":
            os.kill(os.getpid(), signal.SIGKILL)
        replace(source, target)
        if str(target).endswith("kizuna.duckdb"):
            os.kill(os.getpid(), signal.SIGKILL)

    _duckdb.os.replace = killing_replace
with Workspace.open(folder) as ws:
    forget_customer(ws, "C001")
"""


@pytest.mark.parametrize("where", ["store update", "before rename", "after rename"])
@pytest.mark.slow
def test_a_forget_killed_at_any_point_leaves_the_store_before_or_after_and_the_next_command_finishes(
        tmp_path: Path, where: str) -> None:
    folder = tmp_path / "shop"
    with build(folder) as ws:
        ws.merge_survey_answers()
        ws.analyze(AS_OF)
        before = figures(ws)
        snapshot = {t: rows_of(ws, t) for t in STORE_TABLES}
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, str(folder), where], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    with Workspace.open(folder) as ws:  # opens: the store file is whole
        if where == "store update":  # one transaction: nothing changed in the store
            assert {t: rows_of(ws, t) for t in STORE_TABLES} == snapshot
            report = forget_customer(ws, CID)  # finishes, with the pseudonym the ledger got
            assert report.rows["orders"] == 3
        else:  # the store was erased; opening it finished compacting it
            assert CID not in {r["customer_id"] for r in rows_of(ws, "customers")}
        (pseudonym,) = {r["customer_id"] for r in rows_of(ws, "orders")} - {"C002", "C003"}
        assert {r["customer_id"] for r in ws.operations.query(
            "SELECT customer_id FROM deliveries WHERE customer_id LIKE 'forgotten-%'")} == {pseudonym}
        assert figures(ws) == before
        assert ws.operations.query("SELECT key FROM meta WHERE key NOT IN ('secret') AND key NOT LIKE 'guest ids%'") \
            == []  # nothing left to do, and no record linking the id to the pseudonym
    assert sorted(p.name for p in folder.iterdir() if "duckdb" in p.name) == ["kizuna.duckdb"]
    data = (folder / "kizuna.duckdb").read_bytes()
    assert b"taro@example.jp" not in data and "東京都渋谷区神宮前".encode() not in data
