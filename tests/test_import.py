"""Import of real files into real DuckDB stores: every rule of issue #2, each bad-input class."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kizuna import MappingError, MissingColumnsError, Workspace
from kizuna.importing import detect_encoding
from kizuna.workspace import Settings

from factories import rejects_of, write
from factories import stored as rows

CUSTOMERS = "customer_id,name,email,email_opt_in\nC1,山田 太郎,taro@example.jp,はい\nC2,鈴木 花子,hana@example.jp,0\n"


@pytest.fixture
def ws(tmp_path: Path):
    # an English workspace: the rejects' reasons below are its English texts (kizuna.i18n reject.*)
    workspace = Workspace.init(tmp_path / "ws", settings=Settings().replace(business={"lang": "en"}))
    yield workspace
    workspace.close()


@pytest.fixture
def ws_with_customers(ws: Workspace, tmp_path: Path) -> Workspace:
    summary = ws.import_file("customers", write(tmp_path / "c.csv", CUSTOMERS))
    assert summary.added == 2 and summary.rejected == 0
    return ws


ORDERS_JA = (
    "受注番号,顧客ID,購入日,金額,ステータス\n"
    'O1,C1,2024/1/5,"￥1,200",完了\n'
    "O2,C1,2024年2月5日 13時05分,１２００円,キャンセル\n"
    "O3,C2,2024-03-01 09:30:00,\\3000,返品\n"
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_encodings_are_detected_and_values_normalised(ws_with_customers, tmp_path, encoding):
    path = write(tmp_path / "orders.csv", ORDERS_JA, encoding)
    assert detect_encoding(path) == ("cp932" if encoding == "cp932" else "utf-8")
    summary = ws_with_customers.import_file("orders", path)
    assert (summary.added, summary.rejected) == (3, 0)
    stored = rows(ws_with_customers, "orders", "order_id")
    assert [(r["order_id"], r["customer_id"], r["ordered_at"], r["amount"], r["status"]) for r in stored] == [
        ("O1", "C1", dt.datetime(2024, 1, 5), 1200, "completed"),
        ("O2", "C1", dt.datetime(2024, 2, 5, 13, 5), 1200, "cancelled"),
        ("O3", "C2", dt.datetime(2024, 3, 1, 9, 30), 3000, "returned"),
    ]


@pytest.mark.parametrize(("encoding", "delimiter"), [("cp932", ","), ("cp932", "|"), ("euc_jp", "\t")])
def test_fast_reader_of_japanese_encodings_reads_what_the_exact_reader_reads(tmp_path, encoding, delimiter):
    # cp932 second bytes include "\\" (ソ 表 能) and "|": the fields must still split and decode the same
    from kizuna.importing._sources import _python_csv_batches, open_source

    names = ["ソフト", "表参道", "能登", "高橋", "Smith", ""]
    lines = [delimiter.join(["id", "name", "status", "note"])]
    lines += [delimiter.join([f"C{i}", f"{names[i % 6]}{i}", names[i % 3], '""' if i % 7 else names[i % 6]])
              for i in range(200)]
    path = write(tmp_path / "j.csv", "\r\n".join(lines) + "\r\n", encoding)
    source = open_source(path, batch_rows=64, encoding=encoding)
    fast = pa.Table.from_batches(list(source.batches()))
    exact = pa.Table.from_batches(list(_python_csv_batches(source, 0)))
    assert fast.num_rows == 200 and not source.problems
    assert fast.to_pylist() == exact.to_pylist()


def test_minute_timestamps_and_marked_amounts_read_as_the_general_forms(ws_with_customers, tmp_path):
    # a whole column of "2024/01/05 13:45" and "￥1,200" takes the plain paths; the results and the rejects
    # are those of the general ones
    lines = ["order_id,customer_id,ordered_at,amount"]
    lines += [f"P{i},C1,2024/01/{1 + i % 28:02d} 13:{i % 60:02d},\"￥{1000 + i % 5:,}\"" for i in range(40)]
    lines += ["B1,C1,2024/02/30 10:00,\"￥1,200\"", "B2,C1,2024/01/05 10:00,\"￥12,00\""]
    summary = ws_with_customers.import_file("orders", write(tmp_path / "o.csv", "\n".join(lines) + "\n"))
    assert (summary.added, summary.rejected) == (40, 2)
    first = rows(ws_with_customers, "orders", "order_id")[0]
    assert (first["ordered_at"], first["amount"]) == (dt.datetime(2024, 1, 1, 13, 0), 1000)
    reasons = {int(r["row"]): r["reason"] for r in rejects_of(summary)}
    assert reasons[42].startswith("not a date") and reasons[43].startswith("misplaced comma")


def test_shift_jis_after_a_plain_ascii_first_megabyte(ws_with_customers, tmp_path):
    # 60,000 ASCII rows first, then Japanese: the encoding must still be seen.
    lines = ["order_id,customer_id,ordered_at,amount,channel"]
    lines += [f"A{i},C1,2024/1/5,100,web" for i in range(60_000)]
    lines += ["J1,C2,2024/1/6,200,電話注文"]
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n", "cp932")
    assert path.stat().st_size > 1 << 20
    assert detect_encoding(path) == "cp932"
    summary = ws_with_customers.import_file("orders", path)
    assert (summary.added, summary.rejected) == (60_001, 0)
    (last,) = ws_with_customers.store.table("orders").filter(lambda t: t.order_id == "J1").to_pyarrow().to_pylist()
    assert last["channel"] == "電話注文"


def test_every_bad_input_class_is_rejected_with_row_column_and_reason(ws_with_customers, tmp_path):
    path = write(tmp_path / "orders.csv", (
        "order_id,customer_id,ordered_at,amount,status,refund_amount\n"
        "O1,C1,2024/1/5,1000,completed,\n"      # row 2 good
        ",C1,2024/1/5,1000,completed,\n"        # row 3 missing id
        "O3,C1,2024/2/30,1000,completed,\n"     # row 4 impossible date
        "O4,C1,2024/1/5,-5,completed,\n"        # row 5 negative amount
        "O5,C9,2024/1/5,1000,completed,\n"      # row 6 unknown customer
        "O1,C1,2024/1/5,9999,completed,\n"      # row 7 duplicate id, other data
        "O1,C1,2024/1/5,1000,completed,\n"      # row 8 same as row 2: a harmless repeat
        "O8,C2,2024/1/5,1000,lost,\n"           # row 9 unknown status
        "O9,C2,2024/1/5,1000,returned,5000\n"   # row 10 refund above the amount
        "O10,C2,2024/1/5,abc,completed,\n"      # row 11 not an amount
        "O11,C2,2024/1/7,500,completed,\n"      # row 12 good
    ))
    summary = ws_with_customers.import_file("orders", path)
    found = {(int(r["row"]), r["column"]): r for r in rejects_of(summary)}
    assert set(found) == {
        (3, "order_id"), (4, "ordered_at"), (5, "amount"), (6, "customer_id"), (7, "order_id"),
        (9, "status"), (10, "refund_amount"), (11, "amount"),
    }
    assert found[(3, "order_id")]["reason"] == "missing order_id"
    assert found[(4, "ordered_at")]["value"] == "2024/2/30"
    assert found[(5, "amount")]["reason"] == "negative amount"
    assert found[(6, "customer_id")]["reason"].startswith("unknown customer_id")
    assert found[(7, "order_id")]["reason"] == "duplicate order_id with different data (row 2 kept)"
    assert "completed, cancelled, returned" in found[(9, "status")]["reason"]
    assert all(r["file"] == str(path) for r in found.values())
    assert (summary.rows_read, summary.added, summary.duplicates, summary.rejected) == (11, 2, 1, 8)
    assert [r["order_id"] for r in rows(ws_with_customers, "orders", "order_id")] == ["O1", "O11"]


def test_nps_scores_outside_0_to_10_are_rejected(ws_with_customers, tmp_path):
    path = write(tmp_path / "nps.csv", (
        "customer_id,answered_at,score\nC1,2024/1/5,10\nC1,2024/2/5,11\nC2,2024/1/5,-1\nC2,2024/3/5,0\n"
    ))
    summary = ws_with_customers.import_file("nps", path)
    assert {(r["row"], r["reason"]) for r in rejects_of(summary)} == {
        ("3", "NPS score outside 0-10"), ("4", "NPS score outside 0-10"),
    }
    assert [r["score"] for r in rows(ws_with_customers, "nps_answers", "answered_at")] == [10, 0]


def test_reimport_is_idempotent_and_status_changes_update_in_place(ws_with_customers, tmp_path):
    first = write(tmp_path / "o1.csv", "order_id,customer_id,ordered_at,amount,channel\n"
                  "O1,C1,2024/1/5,1000,web\nO2,C2,2024/1/6,2000,app\n")
    assert ws_with_customers.import_file("orders", first).added == 2
    again = ws_with_customers.import_file("orders", first)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    # A later export: O1 cancelled, O3 new; it has no channel column, so channels stay.
    later = write(tmp_path / "o2.csv", "order_id,customer_id,ordered_at,amount,status\n"
                  "O1,C1,2024/1/5,1000,キャンセル\nO2,C2,2024/1/6,2000,完了\nO3,C2,2024/2/1,500,完了\n")
    summary = ws_with_customers.import_file("orders", later)
    assert (summary.added, summary.updated, summary.unchanged) == (1, 2, 0)
    stored = rows(ws_with_customers, "orders", "order_id")
    assert [(r["order_id"], r["status"], r["channel"]) for r in stored] == [
        ("O1", "cancelled", "web"), ("O2", "completed", "app"), ("O3", "completed", None),
    ]
    assert ws_with_customers.import_file("orders", later).unchanged == 3


def test_mapping_file_maps_headers_and_values(ws_with_customers, tmp_path):
    path = write(tmp_path / "export.csv", "伝票No,会員コード,注文確定日時,お支払い金額,状態\n"
                 "X1,C1,2024年1月5日,\"3,300\",確定済\nX2,C2,2024年1月6日,500,取消済\n", "cp932")
    mapping = write(tmp_path / "map.toml", '[columns]\n"伝票No" = "order_id"\n"会員コード" = "customer_id"\n'
                    '"注文確定日時" = "ordered_at"\n"お支払い金額" = "amount"\n"状態" = "status"\n\n'
                    '[values.status]\n"確定済" = "completed"\n"取消済" = "cancelled"\n')
    summary = ws_with_customers.import_file("orders", path, mapping=mapping)
    assert (summary.added, summary.rejected) == (2, 0)
    assert [(r["order_id"], r["amount"], r["status"]) for r in rows(ws_with_customers, "orders", "order_id")] == [
        ("X1", 3300, "completed"), ("X2", 500, "cancelled"),
    ]


def test_missing_required_columns_and_bad_mappings_stop_the_import(ws_with_customers, tmp_path):
    path = write(tmp_path / "o.csv", "注文ID,顧客ID,金額\nO1,C1,100\n")
    with pytest.raises(MissingColumnsError) as info:
        ws_with_customers.import_file("orders", path)
    assert info.value.missing == ["order_id", "ordered_at"]
    assert "--mapping" in str(info.value) and "o.csv" in str(info.value)
    mapping = write(tmp_path / "m.toml", '[columns]\n"注文ID" = "order_number"\n')
    with pytest.raises(MappingError, match="order_number"):
        ws_with_customers.import_file("orders", path, mapping=mapping)
    assert ws_with_customers.store.count("orders") == 0


def test_excel_export_with_japanese_headers(ws_with_customers, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["受注番号", "顧客ID", "購入日", "金額"])
    sheet.append(["E1", "C1", dt.datetime(2024, 1, 5, 10, 30), 1200])
    sheet.append(["E2", "C2", "2024年2月1日", "¥2,400"])
    sheet.append([None, None, None, None])  # formatted but empty rows are not data
    sheet.append(["E3", "C2", "someday", 10])
    book.save(tmp_path / "orders.xlsx")
    summary = ws_with_customers.import_file("orders", tmp_path / "orders.xlsx")
    assert (summary.added, summary.rejected) == (2, 1)
    assert [(r["row"], r["column"]) for r in rejects_of(summary)] == [("5", "ordered_at")]
    assert [(r["ordered_at"], r["amount"]) for r in rows(ws_with_customers, "orders", "order_id")] == [
        (dt.datetime(2024, 1, 5, 10, 30), 1200), (dt.datetime(2024, 2, 1), 2400),
    ]


def test_parquet_with_typed_columns_and_utc_timestamps(ws_with_customers, tmp_path):
    table = pa.table({
        "order_id": ["P1", "P2"], "customer_id": ["C1", "C2"],
        "ordered_at": pa.array([dt.datetime(2024, 1, 5, 15, 0), dt.datetime(2024, 1, 5, 16, 0)],
                               pa.timestamp("us", "UTC")),
        "amount": pa.array([1000, 2000], pa.int64()),
    })
    pq.write_table(table, tmp_path / "orders.parquet")
    summary = ws_with_customers.import_file("orders", tmp_path / "orders.parquet")
    assert (summary.added, summary.rejected) == (2, 0)
    # 15:00 UTC is midnight the next day in Tokyo: the order belongs to 6 January locally.
    assert [r["ordered_at"] for r in rows(ws_with_customers, "orders", "order_id")] == [
        dt.datetime(2024, 1, 6, 0, 0), dt.datetime(2024, 1, 6, 1, 0),
    ]


def test_ragged_rows_are_rejected_and_row_numbers_stay_exact(ws_with_customers, tmp_path):
    path = write(tmp_path / "o.csv", "order_id,customer_id,ordered_at,amount\n"
                 "O1,C1,2024/1/5,100\nO2,C1,2024/1/5\nO3,C1,2024/1/5,100,extra\nO4,C1,2024/13/5,100\n")
    summary = ws_with_customers.import_file("orders", path)
    found = {int(r["row"]): r["reason"] for r in rejects_of(summary)}
    assert set(found) == {3, 4, 5}
    assert found[3].startswith("wrong number of fields (3 where the header has 4)") and "not a date" in found[5]
    assert (summary.rows_read, summary.added) == (4, 1)


def test_small_batches_find_duplicates_across_batch_boundaries(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    (tmp_path / "ws" / "kizuna.toml").write_text(
        (tmp_path / "ws" / "kizuna.toml").read_text().replace("batch_rows = 200000", "batch_rows = 2")
    )
    ws.close()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.settings.importing.batch_rows == 2
        # ~2.5 MB of rows: the CSV reader's 1 MiB blocks (its minimum) split it into three batches
        # the repeats of C1 (conflicting) and C2 (identical) come two batches after the originals
        lines = "".join(f"C{i},name{i}\n" for i in range(80))
        lines += "".join(f"X{i:06d},name of customer {i:06d}\n" for i in range(80_000))
        lines += "C1,changed\nC2,name2\n"
        events: list[tuple] = []
        summary = ws.import_file("customers", write(tmp_path / "c.csv", "customer_id,name\n" + lines),
                                 on_progress=lambda done, expected: events.append(("rows", done)),
                                 on_phase=lambda name: events.append(("phase", name)))
        assert (summary.added, summary.duplicates, summary.rejected) == (80_080, 1, 1)
        assert [r["row"] for r in rejects_of(summary)] == ["80082"]
        # the progress bar moves batch by batch, then says the rows are being reconciled
        rows = [n for what, n in events if what == "rows"]
        assert len(rows) >= 3 and rows == sorted(rows) and rows[-1] == 80_082
        assert events[-1] == ("phase", "reconcile")


def test_profile_events_and_support_contacts_with_japanese_values(ws_with_customers, tmp_path):
    events = write(tmp_path / "e.csv", "顧客ID,発生日,種別,詳細\nC1,2024/4/1,引越し,大阪へ\nC2,2024/4/2,解約,\n"
                   "C2,2024/4/3,宇宙旅行,\n")
    summary = ws_with_customers.import_file("events", events)
    assert (summary.added, summary.rejected) == (2, 1)
    assert [r["kind"] for r in rows(ws_with_customers, "events", "occurred_at")] == ["moved", "cancellation"]
    support = write(tmp_path / "s.csv", "contact_id,customer_id,opened_at,channel,resolved_at,status,is_complaint\n"
                    "T1,C1,2024/4/1 10:00,電話,2024/4/1 10:20,解決済,いいえ\nT2,C2,2024/4/2,チャット,,未解決,はい\n")
    summary = ws_with_customers.import_file("support", support)
    assert (summary.added, summary.rejected) == (2, 0)
    stored = rows(ws_with_customers, "support_contacts", "contact_id")
    assert [(r["channel"], r["status"], r["is_complaint"]) for r in stored] == [
        ("phone", "resolved", False), ("chat", "open", True),
    ]


@pytest.mark.slow
def test_cli_reports_a_users_mistake_in_one_line_without_traceback(tmp_path):
    Workspace.init(tmp_path / "ws").close()
    bad = write(tmp_path / "o.csv", "no,useful,headers\n1,2,3\n")
    result = subprocess.run(
        [sys.executable, "-m", "kizuna", "import", "orders", str(bad), "--dir", str(tmp_path / "ws")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "order_id" in result.stderr and "o.csv" in result.stderr and "--mapping" in result.stderr


@pytest.mark.slow
def test_cli_import_prints_the_summary_as_json(tmp_path):
    Workspace.init(tmp_path / "ws").close()
    path = write(tmp_path / "c.csv", CUSTOMERS + "C3,,,maybe\n")
    result = subprocess.run(
        [sys.executable, "-m", "kizuna", "import", "customers", str(path), "--dir", str(tmp_path / "ws"),
         "--format", "json", "--lang", "en"],
        capture_output=True, text=True, check=True,
    )
    summary = json.loads(result.stdout)
    assert (summary["added"], summary["rejected"], summary["rows_read"]) == (2, 1, 3)
    assert summary["reasons"] == {"not yes/no": 1}


def _orders_file(tmp_path: Path, count: int, extra: str = "") -> Path:
    lines = "".join(f"O{i:06d},C{1 + i % 2},2024-01-{1 + i % 28:02d} 10:00:00,{100 + i},web\n" for i in range(count))
    return write(tmp_path / "o.csv", "order_id,customer_id,ordered_at,amount,channel\n" + lines + extra)


def _small_batches(ws: Workspace) -> Workspace:
    path = ws.path
    ws.close()
    (path / "kizuna.toml").write_text((path / "kizuna.toml").read_text().replace("batch_rows = 200000",
                                                                                 "batch_rows = 2"))
    return Workspace.open(path)


def test_a_first_import_into_an_empty_table_stores_the_file_as_it_is(ws_with_customers, tmp_path):
    # many batches: every row stored, in file order; no scratch table is left
    with _small_batches(ws_with_customers) as ws:
        summary = ws.import_file("orders", _orders_file(tmp_path, 60_000))
        assert (summary.added, summary.rejected, summary.duplicates, summary.rows_read) == (60_000, 0, 0, 60_000)
        assert summary.row_kinds == {"orders": 60_000, "items": 0, "other_lines": 0, "rejected": 0}
        stored = ws.store.table("orders").to_pyarrow()
        assert stored.column("order_id").to_pylist() == [f"O{i:06d}" for i in range(60_000)]
        assert stored.column("amount").to_pylist()[-1] == 60_099
        assert stored.column("status").null_count == 60_000  # a column the file lacks stays empty
        assert not [t for t in ws.store.tables() if t.startswith("_kizuna")]
        again = ws.import_file("orders", tmp_path / "o.csv")
        assert (again.added, again.unchanged) == (0, 60_000)


def test_a_first_import_with_repeats_or_unknown_customers_says_which_rows(ws_with_customers, tmp_path):
    # a repeat with other data, an unknown customer and a bad date, each named by its row
    extra = ("O000001,C2,2024-01-02 10:00:00,999,web\nN1,C9,2024-01-03 10:00:00,5,web\nX1,C1,x,1,web\n"
             "O000002,C1,2024-01-03 10:00:00,102,web\n")
    summary = ws_with_customers.import_file("orders", _orders_file(tmp_path, 3, extra))
    assert (summary.added, summary.duplicates, summary.rejected, summary.rows_read) == (3, 1, 3, 7)
    assert sorted((r["row"], r["column"]) for r in rejects_of(summary)) == [
        ("5", "order_id"), ("6", "customer_id"), ("7", "ordered_at")]
    assert [r["order_id"] for r in rows(ws_with_customers, "orders", "order_id")] == ["O000000", "O000001",
                                                                                    "O000002"]
    assert len(list((ws_with_customers.path / "rejects").iterdir())) == 1  # one rejects file, complete


def test_an_import_stopped_while_streaming_leaves_the_table_as_it_was(ws_with_customers, tmp_path):
    # stopped half-way (Ctrl-C while the batches are staged): the error reaches the caller as it is, nothing is stored
    with _small_batches(ws_with_customers) as ws:
        def stop(done: int, expected: int | None) -> None:
            if done > 30_000:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            ws.import_file("orders", _orders_file(tmp_path, 60_000), on_progress=stop)
        assert ws.store.count("orders") == 0
        assert ws.import_file("orders", tmp_path / "o.csv").added == 60_000
