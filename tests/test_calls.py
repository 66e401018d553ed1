"""Calls (docs/measures.md#calls): the calls table filled by `kizuna calls import` (Japanese headers and
outcome words, rejects with file / row / column) and by the customer page's form (operators only,
CSRF), the kept rate per talk script with Wilson's and Newcombe's intervals, and the stable hashed
holdout of the call lists."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import httpx
import openpyxl
import pytest
from test_web import csrf_of, running_server

from kizuna import Workspace
from kizuna.importing import CallError, record_call
from kizuna.operations import OPERATIONS_FILE, Operations
from kizuna.prediction import call_holdout, in_call_holdout
from kizuna.scenarios import script_results
from kizuna.store import Store, copy_store
from kizuna.web import create_app, hash_password

from factories import day, rejects_of, stored, workspace_with, write

KIZUNA = [sys.executable, "-m", "kizuna"]
CUSTOMERS = "顧客ID,氏名,電話番号\nC1,山田 太郎,090-1111-2222\nC2,鈴木 花子,080-3333-4444\nC3,佐藤 次郎,\n"
CALLS_JA = (
    "顧客ID,架電日時,担当者,トークスクリプト,結果,次回架電日,メモ\n"
    "C1,2026/11/2 10:00,佐藤,継続特典A,つながった,,特典を案内\n"
    "C1,2026/11/9 10:30,佐藤,継続特典A,継続,,\n"
    "C2,2026/11/2 11:00,田中,ヒアリングB,不在,2026/11/5,\n"
    "C2,2026/11/5 11:00,田中,ヒアリングB,折り返し,2026/11/6,\n"
    "C3,2026/11/3 09:15,田中,ヒアリングB,解約,,引越しのため\n"
    "C3,2026/11/4 09:15,田中,ヒアリングB,宇宙人,,\n"  # not an outcome
    "C9,2026/11/4 09:15,田中,ヒアリングB,継続,,\n"  # not a customer
    "C1,2026/13/40,佐藤,継続特典A,継続,,\n"  # not a date
)


@pytest.fixture
def ws(tmp_path: Path):
    workspace = Workspace.init(tmp_path / "ws")
    assert workspace.import_file("customers", write(tmp_path / "c.csv", CUSTOMERS)).added == 3
    yield workspace
    workspace.close()


# -- import ---------------------------------------------------------------------------------------
def test_a_call_centres_sheet_with_japanese_headers_and_outcome_words(ws, tmp_path):
    summary = ws.import_file(write(tmp_path / "架電結果.csv", CALLS_JA, "cp932"))  # the kind told from the headers
    assert (summary.kind, summary.rows_read, summary.added, summary.rejected) == ("calls", 8, 5, 3)
    assert sorted((r["row"], r["column"], r["value"]) for r in rejects_of(summary)) == [
        ("7", "結果", "宇宙人"), ("8", "顧客ID", "C9"), ("9", "架電日時", "2026/13/40")]  # the sheet's own headers
    assert all(r["file"].endswith("架電結果.csv") and r["reason"] for r in rejects_of(summary))
    rows = stored(ws, "calls", "called_at")
    assert [(r["customer_id"], r["outcome"]) for r in rows] == [
        ("C1", "reached"), ("C2", "no_answer"), ("C3", "cancelled"), ("C2", "callback"), ("C1", "kept")]
    first = rows[0]
    assert (first["called_at"], first["agent"], first["script"], first["note"]) == (
        dt.datetime(2026, 11, 2, 10, 0), "佐藤", "継続特典A", "特典を案内")
    assert rows[1]["next_call_at"] == dt.datetime(2026, 11, 5)
    again = ws.import_file("calls", tmp_path / "架電結果.csv")  # the natural key: nothing twice
    assert (again.added, again.unchanged) == (0, 5)


def test_rejects_name_the_columns_as_the_sheet_does(ws, tmp_path):
    # two different calls of C1 at one time: the key is named by the sheet's headers, never by kizuna's columns
    sheet = ("顧客ID,架電日時,担当者,結果\n"
             "C1,2026/11/2 10:00,佐藤,つながった\n"
             "C1,2026/11/2 10:00,田中,不在\n")
    summary = ws.import_file(write(tmp_path / "架電.csv", sheet))
    assert summary.rejected == 1
    [reject] = rejects_of(summary)
    assert (reject["row"], reject["column"]) == ("3", "顧客ID")
    assert reject["reason"] == "顧客ID, 架電日時 が重複し、内容が違います (2行目を採用)"


@pytest.mark.slow
def test_calls_import_command_reads_an_xlsx_and_reports_the_rejects(ws, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    for line in CALLS_JA.splitlines():
        sheet.append(line.split(","))
    book.save(tmp_path / "calls.xlsx")
    ws.close()
    done = subprocess.run([*KIZUNA, "calls", "import", str(tmp_path / "calls.xlsx"), "--dir", str(tmp_path / "ws"),
                           "--format", "json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["kind"], summary["added"], summary["rejected"]) == ("calls", 5, 3)
    results = subprocess.run([*KIZUNA, "calls", "results", "--dir", str(tmp_path / "ws"), "--format", "json"],
                             capture_output=True, text=True, check=False)
    assert results.returncode == 0, results.stderr
    by_script = {r["script"]: r for r in json.loads(results.stdout)}
    # 継続特典A: C1 reached twice, the latest call kept them; ヒアリングB: C2 (callback) and C3 (cancelled)
    assert {s: (r["calls"], r["customers"], r["reached"], r["kept"]) for s, r in by_script.items()} == {
        "継続特典A": (2, 1, 1, 1), "ヒアリングB": (3, 2, 2, 0)}
    table = subprocess.run([*KIZUNA, "calls", "results", "--dir", str(tmp_path / "ws")], capture_output=True,
                           text=True, check=False)
    assert table.returncode == 0 and "トークスクリプト別の継続率" in table.stdout and "基準" in table.stdout


# -- the form's writing, without the web -------------------------------------------------------------
def test_record_call_checks_the_values_as_an_import_does(ws):
    row = record_call(ws.store, {"customer_id": "C2", "called_at": "2026-11-10 14:05", "outcome": "継続",
                                 "script": "ヒアリングB", "agent": "", "next_call_at": "", "note": ""},
                      timezone="Asia/Tokyo")
    assert (row["outcome"], row["called_at"], row["agent"]) == ("kept", dt.datetime(2026, 11, 10, 14, 5), None)
    for values, column in (({"called_at": "not a day", "outcome": "kept"}, "called_at"),
                           ({"called_at": "2026-11-10", "outcome": "maybe"}, "outcome"),
                           ({"called_at": "2026-11-10"}, "outcome")):
        with pytest.raises(CallError) as raised:
            record_call(ws.store, {"customer_id": "C2", **values}, timezone="Asia/Tokyo")
        assert raised.value.column == column
    with pytest.raises(CallError, match="customer_id: unknown customer_id"):
        record_call(ws.store, {"customer_id": "C404", "called_at": "2026-11-10", "outcome": "kept"},
                    timezone="Asia/Tokyo")
    assert len(stored(ws, "calls", "called_at")) == 1


# -- script comparison --------------------------------------------------------------------------------
def _calls(script: str, prefix: str, kept: int, other: int, other_outcome: str) -> list[dict]:
    return [{"customer_id": f"{prefix}{i}", "called_at": day("2026-10-01", 10), "script": script,
             "outcome": "kept" if i < kept else other_outcome} for i in range(kept + other)]


def _two_scripts(path: Path) -> Workspace:
    # Newcombe (1998), Statistics in Medicine 17, 873-890, Table II example (a): 56/70 vs 48/80,
    # difference 0.2000, method 10 (hybrid score) interval 0.0524 to 0.3339.
    rows = _calls("A", "A", 56, 14, "reached") + _calls("B", "B", 48, 32, "cancelled")
    rows += [{"customer_id": "A0", "called_at": day("2026-09-30", 10), "script": "A", "outcome": "no_answer"},
             {"customer_id": "AX", "called_at": day("2026-10-01", 10), "script": "A", "outcome": "no_answer"},
             {"customer_id": "A0", "called_at": day("2026-10-20", 10), "script": "A", "outcome": "kept"},
             {"customer_id": "N1", "called_at": day("2026-10-02", 10), "script": None, "outcome": "kept"}]
    return workspace_with(path, calls=rows)


def test_kept_rate_per_script_with_wilson_and_newcombe_intervals(tmp_path):
    with _two_scripts(tmp_path / "ws") as ws:
        results = script_results(ws.tables()["calls"])
        a, b = (next(r for r in results if r["script"] == s) for s in "AB")
        early = script_results(ws.tables()["calls"], as_of=dt.date(2026, 10, 1))
    assert [r["script"] for r in results] == ["B", "A", None] and b["reference"] and not a["reference"]
    assert (results[2]["calls"], results[2]["kept"], round(results[2]["difference"], 4)) == (1, 1, 0.4)
    # A: 73 calls, 71 customers, 70 reached (AX never), 56 kept (A0 counted once, by their latest call)
    assert (a["calls"], a["customers"], a["reached"], a["kept"]) == (73, 71, 70, 56)
    assert (b["calls"], b["customers"], b["reached"], b["kept"]) == (80, 80, 80, 48)
    assert a["kept_rate"] == pytest.approx(0.8) and b["kept_rate"] == pytest.approx(0.6)
    assert (round(a["difference"], 4), round(a["difference_low"], 4), round(a["difference_high"], 4)) == (
        0.2, 0.0524, 0.3339)
    assert a["enough_data"] is True and b["difference"] is None and b["enough_data"] is None
    # Wilson's score interval of 48/80 by hand, z = 1.959964: (2·80·0.6 + z² ∓ z·√(z² + 4·80·0.6·0.4)) / (2·(80 + z²))
    # = (99.8415 ∓ 17.6007) / 167.6829 = 0.4905 … 0.7004
    assert (round(b["low"], 4), round(b["high"], 4)) == (0.4905, 0.7004)
    # as of 1 October (the day's end) A0's later call does not count yet: A0 was reached and kept on the 1st already
    early_a = next(r for r in early if r["script"] == "A")
    assert (early_a["calls"], early_a["reached"], early_a["kept"]) == (72, 70, 56)


@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres),
                                    pytest.param("spark", marks=pytest.mark.spark)])
def test_the_same_script_results_on_postgres_and_spark(tmp_path, engine, request):
    with _two_scripts(tmp_path / "ws") as ws:
        expected = script_results(ws.tables()["calls"])
        store = (Store.connect(request.getfixturevalue("postgres_database")) if engine == "postgres"
                 else request.getfixturevalue("spark_store"))
        try:
            copy_store(ws.store, store)
            assert script_results(Workspace(ws.path, ws.settings, store).tables()["calls"]) == expected
        finally:
            if engine == "postgres":
                store.close()


def test_no_calls_no_rows(tmp_path):
    with workspace_with(tmp_path / "ws", customers=[{"customer_id": "C1"}]) as ws:
        assert script_results(ws.tables()["calls"]) == []


# -- the holdout -----------------------------------------------------------------------------------
def test_the_call_holdout_is_stable_and_near_its_share():
    ids = [f"C{i:05d}" for i in range(20_000)]
    first = call_holdout(ids, "workspace-secret", 0.1)
    assert call_holdout(ids, "workspace-secret", 0.1) == first  # the same on every run
    assert call_holdout(list(reversed(ids[:5_000])), "workspace-secret", 0.1) == {c for c in first if c in ids[:5_000]}
    # 10 % of 20,000 with a binomial standard deviation of √(20,000·0.1·0.9) = 42.4: within 4 of them
    assert abs(len(first) - 2_000) <= 4 * 42.4
    assert call_holdout(ids, "another-secret", 0.1) != first  # the secret keeps it from being guessed
    assert call_holdout(ids, "workspace-secret", 0.2) >= first  # a larger share keeps those already held out
    assert call_holdout(ids, "workspace-secret", 0.0) == set() and call_holdout(ids[:10], "s", 1.0) == set(ids[:10])
    assert in_call_holdout(next(iter(first)), "workspace-secret", 0.1)
    with pytest.raises(ValueError):
        call_holdout(ids, "s", 1.5)


# -- the web form ---------------------------------------------------------------------------------
OPERATOR, VIEWER = ("ops", "operator-password"), ("look", "viewer-password")


def _login(base: str, user: tuple[str, str]) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    token = csrf_of(client.get("/login").text)
    done = client.post("/login", data={"csrf": token, "name": user[0], "password": user[1], "next": "/"})
    assert done.status_code == 303, done.text
    return client


@pytest.fixture
def site(ws: Workspace):
    path = ws.path
    ws.import_file("events", write(path.parent / "e.csv", "顧客ID,発生日,種別,詳細\nC3,2026/6/1,解約,引越しのため\n"))
    ws.analyze(dt.date(2026, 11, 1))
    ws.close()
    ops = Operations(path / OPERATIONS_FILE)
    ops.add_user(OPERATOR[0], "operator", hash_password(OPERATOR[1]))
    ops.add_user(VIEWER[0], "viewer", hash_password(VIEWER[1]))
    ops.close()
    with running_server(create_app(path, logins_per_minute=10_000, warm=False)) as url:
        yield url, path


def _stored_calls(path: Path) -> list[dict]:
    with Workspace.open(path, read_only=True) as ws:
        return stored(ws, "calls", "called_at")


@pytest.mark.slow
def test_an_operator_records_a_call_on_the_customer_page(site):
    url, path = site
    with contextlib.closing(_login(url, OPERATOR)) as client:
        page = client.get("/customer/C3")
        assert page.status_code == 200 and 'id="call-form"' in page.text
        assert "離脱: 状況変化" in page.text and "「引越し」" in page.text  # the reason and the word that gave it
        form = {"csrf": csrf_of(page.text), "called_at": "2026-11-10T15:30", "outcome": "kept", "script": "特典A",
                "agent": "", "next_call_at": "2026-11-17", "note": "再開を希望"}
        done = client.post("/customer/C3/calls", data=form)
        assert done.status_code == 303 and done.headers["location"] == "/customer/C3#calls"
        again = client.get("/customer/C3").text
        assert "再開を希望" in again and 'data-outcome="kept"' in again
        bad = client.post("/customer/C3/calls", data={**form, "outcome": "maybe"})
        assert bad.status_code == 400 and "outcome" in bad.text
        assert client.post("/customer/C3/calls", data={**form, "csrf": "x" * 32}).status_code == 403
        assert client.post("/customer/C3/calls", data={k: v for k, v in form.items() if k != "csrf"}).status_code == 403
        scripts = client.get("/calls")
        assert scripts.status_code == 200 and 'data-script="特典A"' in scripts.text
    rows = _stored_calls(path)
    assert [(r["customer_id"], r["called_at"], r["outcome"], r["script"], r["agent"], r["next_call_at"])
            for r in rows] == [("C3", dt.datetime(2026, 11, 10, 15, 30), "kept", "特典A", "ops",
                                dt.datetime(2026, 11, 17))]


@pytest.mark.slow
def test_a_viewer_may_not_record_a_call_and_sees_no_note(site):
    url, path = site
    with contextlib.closing(_login(url, OPERATOR)) as client:
        page = client.get("/customer/C1").text
        client.post("/customer/C1/calls", data={"csrf": csrf_of(page), "called_at": "2026-11-10T09:00",
                                                "outcome": "reached", "note": "電話番号の変更あり"})
    with contextlib.closing(_login(url, VIEWER)) as client:
        page = client.get("/customer/C1")
        assert page.status_code == 200 and 'id="call-form"' not in page.text
        assert 'data-outcome="reached"' in page.text and "電話番号の変更あり" not in page.text
        refused = client.post("/customer/C1/calls", data={"csrf": csrf_of(page.text), "called_at": "2026-11-11T09:00",
                                                          "outcome": "kept"})
        assert refused.status_code == 403
    assert [r["outcome"] for r in _stored_calls(path)] == ["reached"]
