"""Issue #14: a file that imports with exit 0 is stored exactly as it says; every row not stored
is in the rejects file with its row number. Hostile and messy files, written by the tests."""

from __future__ import annotations

import csv
import datetime as dt
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kizuna import MappingError, MissingColumnsError, Workspace
from kizuna.importing import detect_encoding
from kizuna.workspace import Settings

from factories import rejects_of, stored, write

KIZUNA = [sys.executable, "-m", "kizuna"]
ORDERS_HEADER = "order_id,customer_id,ordered_at,amount,channel"
UNDECODABLE = b"\x85\x40"  # an unassigned Shift_JIS code


def kizuna(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *args], capture_output=True, text=True, cwd=cwd, check=False)


@pytest.fixture
def ws(tmp_path: Path):
    # an English workspace: the rejects' reasons below are its English texts (kizuna.i18n reject.*)
    workspace = Workspace.init(tmp_path / "ws", settings=Settings().replace(business={"lang": "en"}))
    customers = "customer_id,name\n" + "".join(f"K{i},客{i}\n" for i in range(1, 4))
    assert workspace.import_file("customers", write(tmp_path / "k.csv", customers)).added == 3
    yield workspace
    workspace.close()


# -- 1. a stray quote ----------------------------------------------------------------

def test_an_unclosed_quote_rejects_the_rows_it_swallows_instead_of_storing_them_in_one_value(ws, tmp_path):
    path = write(tmp_path / "q.csv", f'{ORDERS_HEADER}\nA1,K1,2025-01-01,100,"web\n'
                 "A2,K1,2025-01-02,100,web\nA3,K1,2025-01-03,100,web\n")
    summary = ws.import_file("orders", path)
    assert (summary.rows_read, summary.added, summary.rejected) == (3, 0, 3)
    reasons = {int(r["row"]): r["reason"] for r in rejects_of(summary)}
    assert set(reasons) == {2, 3, 4}
    assert all(r.startswith('unclosed quote: a quote (") opened in row 2 is never closed') for r in reasons.values())
    assert stored(ws, "orders", "order_id") == []


def test_a_stray_quote_closed_rows_later_rejects_just_those_rows_and_reads_the_rest(ws, tmp_path):
    lines = [f"A{i},K1,2025-01-01,{i},web" for i in range(2, 1001)]  # row i holds A{i}
    lines[98] = "A100,K1,2025-01-01,100,\"web"  # row 100 opens a quote …
    lines[198] = "A200,K1,2025-01-01,200,web\""  # … that row 200 closes
    summary = ws.import_file("orders", write(tmp_path / "q.csv", ORDERS_HEADER + "\n" + "\n".join(lines) + "\n"))
    rejected = {int(r["row"]): r for r in rejects_of(summary)}
    assert set(rejected) == set(range(100, 201))
    assert rejected[150]["column"] == "channel"
    assert rejected[150]["reason"].startswith('stray quote: a quote (") opened in column channel of row 100 '
                                              "runs over 101 lines")
    assert (summary.rows_read, summary.added, summary.rejected) == (999, 999 - 101, 101)
    ids = {r["order_id"] for r in stored(ws, "orders", "order_id")}
    assert ids == {f"A{i}" for i in range(2, 1001)} - {f"A{i}" for i in range(100, 201)}
    assert all(r["channel"] == "web" for r in stored(ws, "orders", "order_id"))


def test_a_quoted_value_with_a_line_break_is_data_and_keeps_the_row_numbers(ws, tmp_path):
    path = write(tmp_path / "c.csv", 'customer_id,name,address\nK7,山田,"東京都千代田区\n1-1-1"\nK8,鈴木,\nK9,佐藤,x\n'
                 "K10,,\n" + "K11,田中,2024/1/5,extra\n")
    summary = ws.import_file("customers", path)
    assert summary.rows_read == 5
    assert [(r["row"], r["reason"]) for r in rejects_of(summary)] == [
        ("6", "wrong number of fields (4 where the header has 3)")]
    by_id = {r["customer_id"]: r for r in stored(ws, "customers", "customer_id")}
    assert by_id["K7"]["address"] == "東京都千代田区\n1-1-1"
    assert {"K8", "K9", "K10"} <= set(by_id)


# -- 2. encodings ----------------------------------------------------------------------

def _sjis_customers(header: str, bad_row: int, rows: int = 3000) -> tuple[bytes, list[str]]:
    names = [f"顧客{i}様" for i in range(rows)]
    lines = [header.encode("cp932")]
    for i, name in enumerate(names):
        cell = name.encode("cp932")
        if i + 2 == bad_row:
            cell = cell[:2] + UNDECODABLE + cell[2:]
        lines.append(f"N{i},".encode() + cell)
    return b"\n".join(lines) + b"\n", names


@pytest.mark.parametrize("header", ["customer_id,name", "顧客ID,氏名"])
def test_one_undecodable_byte_rejects_its_row_and_every_other_name_is_stored_right(ws, tmp_path, header):
    data, names = _sjis_customers(header, bad_row=1500)
    path = write(tmp_path / "sjis.csv", data)
    assert detect_encoding(path) == "cp932"
    summary = ws.import_file("customers", path)
    assert (summary.encoding, summary.rows_read, summary.added, summary.rejected) == ("cp932", 3000, 2999, 1)
    (reject,) = rejects_of(summary)
    assert (reject["row"], reject["column"]) == ("1500", header.split(",")[1])
    assert reject["reason"] == "undecodable bytes: not cp932 text (the file is read as cp932)"
    assert reject["value"] == "顧\\x85@" + names[1498][1:]  # 0x40 after the bad lead byte is "@"
    by_id = {r["customer_id"]: r["name"] for r in stored(ws, "customers", "customer_id")}
    assert all(by_id[f"N{i}"] == names[i] for i in range(3000) if i != 1498)


def test_forced_encoding_rejects_the_rows_not_the_file(ws, tmp_path):
    data, _ = _sjis_customers("customer_id,name", bad_row=3, rows=10)
    summary = ws.import_file("customers", write(tmp_path / "sjis.csv", data), encoding="cp932")
    assert (summary.added, summary.rejected) == (9, 1)
    assert rejects_of(summary)[0]["row"] == "3"


@pytest.mark.slow
def test_an_unknown_encoding_name_is_one_clear_error(ws, tmp_path):
    path = write(tmp_path / "o.csv", f"{ORDERS_HEADER}\nA1,K1,2025-01-01,100,web\n")
    with pytest.raises(Exception, match=r"unknown encoding 'bogus' \(--encoding\); use utf-8, cp932"):
        ws.import_file("orders", path, encoding="bogus")
    assert kizuna("init", "cli-ws", cwd=tmp_path).returncode == 0
    done = kizuna("import", "orders", str(path), "--encoding", "bogus", "--dir", "cli-ws", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    # the workspace's language (Japanese, as `kizuna init` makes it), naming the file
    assert done.stderr.startswith(f"エラー: {path}: 文字コード 'bogus' (--encoding) はわかりません。"), done.stderr
    done = kizuna("import", "orders", str(path), "--encoding", "bogus", "--dir", "cli-ws", "--lang", "en",
                  cwd=tmp_path)
    assert done.stderr.startswith(f"error: {path}: unknown encoding 'bogus' (--encoding); use utf-8"), done.stderr


# -- 3. the store keeps what the customer wrote --------------------------------------

def test_names_are_stored_as_written_and_formula_lookalikes_are_not_created(ws, tmp_path):
    text = "customer_id,name,email\nF1,＝1+1,ＴＡＲＯ@example.jp\nF2,\t=1+1,x@example.jp\nF3, ﾔﾏﾀﾞ ,\nF4,\"=HYPERLINK(\"\"http://x\"\")\",\n"
    summary = ws.import_file("customers", write(tmp_path / "f.csv", text))
    assert summary.rejected == 0
    by_id = {r["customer_id"]: r for r in stored(ws, "customers", "customer_id")}
    assert by_id["F1"]["name"] == "＝1+1"  # NFKC would have made it the formula =1+1
    assert by_id["F1"]["email"] == "TARO@example.jp"  # identifiers are still normalised
    assert by_id["F2"]["name"] == "\t=1+1"
    assert by_id["F3"]["name"] == "ﾔﾏﾀﾞ"
    assert by_id["F4"]["name"] == '=HYPERLINK("http://x")'


# -- 5. files that gave tracebacks ---------------------------------------------------

def test_parquet_with_nested_and_binary_columns_imports_the_readable_ones(ws, tmp_path):
    table = pa.table({
        "order_id": ["P1", "P2"], "customer_id": ["K1", "K2"],
        "ordered_at": pa.array([dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 2)]),
        "amount": pa.array([100, 200], pa.int64()), "channel": pa.array(["web", "app"]).dictionary_encode(),
        "tags": pa.array([["a"], []]), "meta": pa.array([{"x": 1}, {"x": 2}]),
        "blob": pa.array([b"\x00", b"\x01"]), "attrs": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
    })
    pq.write_table(table, tmp_path / "o.parquet")
    summary = ws.import_file("orders", tmp_path / "o.parquet")
    assert (summary.added, summary.rejected) == (2, 0)
    assert [c.split(" ")[0] for c in summary.ignored_columns] == ["tags", "meta", "blob", "attrs"]
    assert [r["channel"] for r in stored(ws, "orders", "order_id")] == ["web", "app"]


# -- 7. no customer data in messages --------------------------------------------------

def test_messages_name_rows_and_columns_but_never_quote_customer_data(ws, tmp_path):
    bad = "".join(f"R{i},K1,2025-01-01,100,web,山田{i}@example.jp,090-0000-{i:04d}\n" for i in range(50))
    summary = ws.import_file("orders", write(tmp_path / "o.csv", f"{ORDERS_HEADER}\n{bad}"))
    assert summary.reasons == {"wrong number of fields": 50}
    assert all("@example.jp" in r["value"] for r in rejects_of(summary))  # kept in the rejects file
    headerless = write(tmp_path / "nohead.csv", "K1,山田 太郎,taro@example.jp,090-1234-5678\n")
    with pytest.raises(MissingColumnsError) as caught:
        ws.import_file("customers", headerless)
    message = str(caught.value)
    assert "the first row looks like data, not a header" in message
    assert "taro" not in message and "山田" not in message and "090" not in message


# -- 8. smaller traps ------------------------------------------------------------------

def test_blank_header_cells_that_excel_leaves_are_ignored(ws, tmp_path):
    path = write(tmp_path / "o.csv", f"{ORDERS_HEADER},,\nA1,K1,2025-01-01,100,web,,\nA2,K2,2025-01-02,200,web,,\n")
    summary = ws.import_file("orders", path)
    assert (summary.added, summary.rejected, summary.ignored_columns) == (2, 0, [])


def test_tsv_is_split_on_tabs(ws, tmp_path):
    path = write(tmp_path / "o.tsv", "order_id\tcustomer_id\tordered_at\tamount\tchannel\n"
                 "T1\tK1\t2025-01-01\t1,200\tweb, app\n")
    summary = ws.import_file("orders", path)
    assert (summary.added, summary.rejected) == (1, 0)
    (row,) = stored(ws, "orders", "order_id")
    assert (row["amount"], row["channel"]) == (1200, "web, app")


def test_a_workbook_is_read_from_the_sheet_that_has_the_columns_and_says_which(ws, tmp_path):
    book = openpyxl.Workbook()
    book.active.title = "説明"
    book.active.append(["この帳票について"])
    data = book.create_sheet("受注一覧")
    data.append(["受注番号", "顧客ID", "購入日", "金額"])
    data.append(["X1", "K1", dt.datetime(2025, 1, 1), 500])
    other = book.create_sheet("別店舗")
    other.append(["受注番号", "顧客ID", "購入日", "金額"])
    other.append(["Y1", "K2", dt.datetime(2025, 1, 2), 700])
    book.save(tmp_path / "o.xlsx")
    summary = ws.import_file("orders", tmp_path / "o.xlsx")
    assert (summary.sheet, summary.added) == ("受注一覧", 1)
    summary = ws.import_file("orders", tmp_path / "o.xlsx", sheet="別店舗")
    assert (summary.sheet, summary.added) == ("別店舗", 1)
    assert [r["order_id"] for r in stored(ws, "orders", "order_id")] == ["X1", "Y1"]
    with pytest.raises(Exception, match=r"no sheet named 'なし'; the workbook has 説明, 受注一覧, 別店舗"):
        ws.import_file("orders", tmp_path / "o.xlsx", sheet="なし")


def test_a_bad_mapping_is_reported_against_the_mapping_file(ws, tmp_path):
    mapping = write(tmp_path / "map.toml", '[columns]\n"注文番号" = "order_number"\n')
    data = write(tmp_path / "o.csv", f"{ORDERS_HEADER}\nA1,K1,2025-01-01,100,web\n")
    with pytest.raises(MappingError) as caught:
        ws.import_file("orders", data, mapping=mapping)
    assert str(caught.value).startswith(f"{mapping}: the mapping names order_number")


def test_the_rejects_file_appears_under_its_name_only_when_complete(ws, tmp_path):
    summary = ws.import_file("orders", write(tmp_path / "o.csv", f"{ORDERS_HEADER}\nA1,K9,2025-01-01,100,web\n"))
    assert summary.rejects_path.exists() and summary.rejected == 1
    assert not list(summary.rejects_path.parent.glob("*.partial"))


# -- 9. Japanese forms -----------------------------------------------------------------

def test_era_dates_excel_serials_and_scores_with_ten(ws, tmp_path):
    orders = write(tmp_path / "o.csv", f"{ORDERS_HEADER}\nE1,K1,令和6年1月5日,100,web\nE2,K1,R6.1.6,100,web\n"
                   "E3,K1,平成31年4月30日,100,web\nE4,K1,45296,100,web\nE5,K1,9999/12/31,100,web\n")
    summary = ws.import_file("orders", orders)
    days = {r["order_id"]: r["ordered_at"] for r in stored(ws, "orders", "order_id")}
    assert days == {"E1": dt.datetime(2024, 1, 5), "E2": dt.datetime(2024, 1, 6),
                    "E3": dt.datetime(2019, 4, 30), "E4": dt.datetime(2024, 1, 5)}
    (reject,) = rejects_of(summary)
    assert (reject["row"], reject["column"]) == ("6", "ordered_at")
    assert reject["reason"].startswith("implausible date 9999-12-31")
    nps = write(tmp_path / "n.csv", "顧客ID,回答日,スコア\nK1,2025/1/5,10点\nK2,2025/1/5,７点\n")
    assert ws.import_file("nps", nps).added == 2
    assert [r["score"] for r in stored(ws, "nps_answers", "customer_id")] == [10, 7]


# -- the property: CSV in any quoting, encoding and line ending == its Parquet twin ----

def _random_orders(rng: random.Random, n: int) -> list[dict]:
    words = ["web", "電話注文", "LINE, 公式", 'say "hi"', "店頭\n受取", "  spaced  ", "ｶﾀｶﾅ", "=1+1", ""]
    return [{
        "order_id": f"R{i}", "customer_id": rng.choice(["K1", "K2", "K3"]),
        "ordered_at": dt.datetime(2024, 1, 1) + dt.timedelta(minutes=rng.randrange(10**6)),
        "amount": rng.randrange(0, 100_000), "channel": rng.choice(words) or None,
    } for i in range(n)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.slow
def test_random_csv_imports_to_exactly_the_store_of_its_parquet_twin(tmp_path, seed):
    rng = random.Random(seed)
    orders = _random_orders(rng, 400)
    quoting = rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])
    encoding = ["utf-8", "utf-8-sig", "cp932"][seed % 3]
    newline = ["\n", "\r\n"][seed % 2]
    path = tmp_path / "orders.csv"
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, quoting=quoting, lineterminator=newline)
        writer.writerow(["order_id", "customer_id", "ordered_at", "amount", "channel"])
        for o in orders:
            writer.writerow([o["order_id"], o["customer_id"], o["ordered_at"].isoformat(sep=" "), o["amount"],
                             o["channel"] if o["channel"] is not None else ""])
    twin = tmp_path / "orders.parquet"
    pq.write_table(pa.Table.from_pylist(orders), twin)
    results = []
    for source in (path, twin):
        with Workspace.init(tmp_path / source.suffix[1:]) as ws:
            customers = write(tmp_path / "k.csv", "customer_id\nK1\nK2\nK3\n")
            ws.import_file("customers", customers)
            ws.settings = ws.settings.replace(importing={"batch_rows": rng.choice([50, 1000])})
            summary = ws.import_file("orders", source)
            assert (summary.rows_read, summary.rejected) == (400, 0), rejects_of(summary)
            results.append(stored(ws, "orders", "order_id"))
    assert results[0] == results[1]
    by_id = {r["order_id"]: r for r in results[0]}
    expected = {o["order_id"]: unicodedata.normalize("NFKC", o["channel"]).strip() if o["channel"] else None
                for o in orders}
    assert {k: r["channel"] for k, r in by_id.items()} == expected


@pytest.mark.slow
def test_rejects_neutralise_formulas_and_a_killed_import_leaves_only_a_marked_partial_file(ws, tmp_path):
    summary = ws.import_file("orders", write(tmp_path / "o.csv", f"{ORDERS_HEADER}\nA1,K1,2025-01-01,=1+1,web\n"))
    assert rejects_of(summary)[0]["value"] == "'=1+1"  # text in the file, never a live formula
    ws.close()
    # 300k rows with a bad amount each: rejects stream out while the import runs; kill it then.
    big = tmp_path / "big.csv"
    with big.open("w") as handle:
        handle.write(ORDERS_HEADER + "\n")
        handle.writelines(f"B{i},K1,2025-01-01,x{i},web\n" for i in range(300_000))
    rejects = ws.path / "rejects"
    before = set(rejects.iterdir())
    process = subprocess.Popen([*KIZUNA, "import", "orders", str(big), "--dir", str(ws.path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = dt.datetime.now() + dt.timedelta(seconds=60)
        while not [p for p in rejects.iterdir() if p.suffix == ".partial"] and dt.datetime.now() < deadline:
            assert process.poll() is None, "the import finished before it could be killed"
    finally:
        process.kill()
        process.wait()
    new = set(rejects.iterdir()) - before
    assert new and all(p.name.endswith(".csv.partial") for p in new)
    with Workspace.open(ws.path) as again:
        assert again.store.count("orders") == 0
        good = write(tmp_path / "ok.csv", f"{ORDERS_HEADER}\nA9,K1,2025-01-01,1,web\n")
        assert again.import_file("orders", good).added == 1
