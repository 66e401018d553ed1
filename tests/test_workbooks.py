"""The files kizuna hands to people, read back as a person's spreadsheet would open them.

A hand-built shop of four customers (their postal codes, kana, pending orders and predictions
chosen so that each list's order is known), `[business] name` set: the segment export, the call
list, and the parcel-insert and DM lists `kizuna run` writes, each as a workbook (sheet name,
title row, frozen header, filter, widths, number formats, real dates) and as a CSV (one header
row, UTF-8 with a BOM, plain numbers, on standard output when no file is named), in Japanese
and in English. Converted by LibreOffice when it is installed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import subprocess
import sys
import textwrap
import zoneinfo
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest

from kizuna.workspace import Settings, Workspace

from factories import day, workspace_with
from servers import unavailable

KIZUNA = [sys.executable, "-m", "kizuna"]
JST = zoneinfo.ZoneInfo("Asia/Tokyo")
BUSINESS = "水の森"
AS_OF = "2026/11/30"

CUSTOMERS = [
    {"customer_id": "D1", "name": "佐藤 花子", "name_kana": "サトウ ハナコ", "postal_code": "1500005",
     "address": "東京都渋谷区神宮前1-1", "phone": "0312345678", "email_opt_in": False, "line_opt_in": False},
    {"customer_id": "D2", "name": "鈴木 一郎", "name_kana": "スズキ イチロウ", "postal_code": "060-0001",
     "address": "北海道札幌市中央区北1条西1", "phone": "0111234567"},
    {"customer_id": "D3", "name": "高橋 三郎", "name_kana": "タカハシ サブロウ", "postal_code": "900-0001",
     "address": "沖縄県那覇市港町1-1", "phone": "0981234567"},
    {"customer_id": "D4", "name": "田中 四郎", "name_kana": "タナカ シロウ", "address": "大阪府大阪市北区梅田1-1"},
]
# D1 … D3 wait for their parcel (not shipped); D4's order went out: its insert waits for the next order
ORDERS = [
    {"order_id": "O1", "customer_id": "D1", "ordered_at": day("2026-11-29", 10), "amount": 5_000},
    {"order_id": "O2", "customer_id": "D2", "ordered_at": day("2026-11-27", 10), "amount": 3_000},
    {"order_id": "O3", "customer_id": "D3", "ordered_at": day("2026-11-28", 10), "amount": 8_000},
    {"order_id": "O4", "customer_id": "D4", "ordered_at": day("2026-11-28", 11), "amount": 2_000,
     "shipped_at": day("2026-11-29", 9)},
]
# customer -> churn risk, value at risk, CLV, expected next order
PREDICTED = {
    "D1": (0.9432966061812755, 123_456.5, 200_000.2, dt.date(2026, 12, 10)),
    "D2": (0.25, None, None, dt.date(2026, 12, 20)),
    "D3": (0.5, 300_000.4, 600_000.0, dt.date(2026, 12, 1)),
    "D4": (0.1, 1_000.0, 5_000.0, dt.date(2026, 12, 5)),
}
INSERT = textwrap.dedent("""\
    title: {ja: 同梱チラシ, en: Parcel leaflet}
    trigger: {after_order: {days: 0}}
    goal: {kind: order, days: 30}
    steps:
      - channel: insert
        body: "{{ name }}様 いつもありがとうございます"
    """)
DM = textwrap.dedent("""\
    title: {ja: 冬のカタログ, en: Winter catalogue}
    trigger: {after_order: {days: 0}}
    goal: {kind: order, days: 30}
    steps:
      - channel: dm
        body: "=HYPERLINK(\\"x\\") {{ name }}様へ冬のカタログ"
    """)


def predictions() -> pa.Table:
    """customer_predictions as `kizuna predict` writes them, with the figures above (no model to fit)."""
    ids = list(PREDICTED)
    return pa.table({
        "customer_id": ids,
        "churn_risk": [PREDICTED[c][0] for c in ids],
        "value_at_risk": pa.array([PREDICTED[c][1] for c in ids], pa.float64()),
        "clv": pa.array([PREDICTED[c][2] for c in ids], pa.float64()),
        "p_alive": [0.5] * 4, "cancel_probability": pa.array([None] * 4, pa.float64()),
        "open_contacts": [0] * 4, "days_since_life_event": pa.array([None] * 4, pa.int64()),
        "churn_reasons_ja": ["最終購入から90日"] * 4, "churn_reasons_en": ["no order for 90 days"] * 4,
        "lifecycle_state": ["at_risk", "active", "active", "active"],
        "lost_since": pa.array([None] * 4, pa.date32()),
        "expected_next_order_on": pa.array([PREDICTED[c][3] for c in ids], pa.date32()),
    })


def build(path: Path, lang: str) -> Path:
    """The shop, analysed, with its predictions, after one `kizuna run` in `lang` (closed)."""
    ws = workspace_with(path, customers=CUSTOMERS, orders=ORDERS)
    for old in (path / "scenarios").glob("*.yaml"):
        old.unlink()
    (path / "scenarios" / "insert.yaml").write_text(INSERT, encoding="utf-8")
    (path / "scenarios" / "dm.yaml").write_text(DM, encoding="utf-8")
    ws.save_settings(Settings().replace(business={"name": BUSINESS}, analysis={"as_of": "2026-11-30"},
                                        delivery={"holdout_share": 0.0, "global_control_share": 0.0},
                                        calls={"holdout_share": 0.0}))  # everyone on the call list
    with ws:
        ws.analyze()
        ws.store.create("customer_predictions", predictions())
        report = ws.run(now=dt.datetime(2026, 11, 30, 10, tzinfo=JST), lang=lang)
        assert sorted(p.parent.name for p in report.files) == ["dm", "dm", "insert", "insert"]
    return path


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("workbooks") / "ja", "ja")


@pytest.fixture(scope="module")
def shop_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("workbooks") / "en", "en")


def outbox(ws: Path, channel: str, suffix: str) -> Path:
    (path,) = (ws / "outbox" / channel).glob(f"*.{suffix}")
    return path


def read_csv(data: bytes | Path) -> list[list[str]]:
    raw = data.read_bytes() if isinstance(data, Path) else data
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel in Japan reads the names right
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def sheet_of(path: Path):
    book = openpyxl.load_workbook(path)
    assert len(book.sheetnames) == 1
    return book.active


def values(sheet, row: int) -> list:
    return [c.value for c in sheet[row]]


def column(sheet, header: str) -> list:
    """The values under `header` (the header row is 2, below the title)."""
    at = values(sheet, 2).index(header)
    return [row[at] for row in sheet.iter_rows(min_row=3, values_only=True)]


@pytest.mark.slow
def test_the_dm_list_is_in_postal_code_order_with_sama_and_kana(shop: Path):
    rows = read_csv(outbox(shop, "dm", "csv"))
    assert rows[0] == ["郵便番号", "住所", "宛名", "フリガナ", "顧客ID", "シナリオ", "ステップ", "DMの内容"]
    assert [r[:5] for r in rows[1:]] == [
        ["060-0001", "北海道札幌市中央区北1条西1", "鈴木 一郎 様", "スズキ イチロウ", "D2"],
        ["150-0005", "東京都渋谷区神宮前1-1", "佐藤 花子 様", "サトウ ハナコ", "D1"],  # 1500005 as people write it
        ["900-0001", "沖縄県那覇市港町1-1", "高橋 三郎 様", "タカハシ サブロウ", "D3"],
        ["", "大阪府大阪市北区梅田1-1", "田中 四郎 様", "タナカ シロウ", "D4"],  # no postal code: last, to look up
    ]
    assert {r[5] for r in rows[1:]} == {"冬のカタログ"} and {r[6] for r in rows[1:]} == {"1"}  # the title, not the file
    assert rows[2][7] == "'=HYPERLINK(\"x\") 佐藤 花子様へ冬のカタログ"  # a formula is text

    sheet = sheet_of(outbox(shop, "dm", "xlsx"))
    assert sheet.title == "DM宛名リスト" and sheet["A1"].value == f"{BUSINESS}\u3000DM宛名リスト\u3000基準日 {AS_OF}"
    assert values(sheet, 2) == rows[0] and sheet.freeze_panes == "A3" and sheet.auto_filter.ref == "A2:H6"
    assert column(sheet, "宛名") == ["鈴木 一郎 様", "佐藤 花子 様", "高橋 三郎 様", "田中 四郎 様"]
    assert column(sheet, "郵便番号") == ["060-0001", "150-0005", "900-0001", None]
    widths = {k: d.width for k, d in sheet.column_dimensions.items()}
    # 宛名: 鈴木 一郎 様 is 12 wide (+2); 住所: 北海道札幌市中央区北1条西1 is 26 wide; 郵便番号 (8 + 3 for the filter)
    assert (widths["C"], widths["B"], widths["A"]) == (14, 28, 11)
    assert sheet["G3"].number_format == "0" and sheet["G3"].value == 1
    assert sheet["H4"].data_type == "s" and sheet["H4"].value.startswith("=HYPERLINK")


def test_the_insert_list_is_in_the_order_parcels_are_packed(shop: Path):
    rows = read_csv(outbox(shop, "insert", "csv"))
    assert rows[0][:5] == ["同梱する注文", "注文日", "次回注文予測日", "顧客ID", "宛名"]
    assert [r[:5] for r in rows[1:]] == [
        ["O2", "2026-11-27", "2026-12-20", "D2", "鈴木 一郎 様"],
        ["O3", "2026-11-28", "2026-12-01", "D3", "高橋 三郎 様"],
        ["O1", "2026-11-29", "2026-12-10", "D1", "佐藤 花子 様"],
        ["", "", "2026-12-05", "D4", "田中 四郎 様"],  # shipped already: the insert waits for the next order
    ]
    sheet = sheet_of(outbox(shop, "insert", "xlsx"))
    assert sheet.title == "同梱物リスト" and sheet["A1"].value == f"{BUSINESS}\u3000同梱物リスト\u3000基準日 {AS_OF}"
    ordered = [c for c in sheet["B"][2:]]
    assert [c.value for c in ordered] == [dt.datetime(2026, 11, 27), dt.datetime(2026, 11, 28),
                                          dt.datetime(2026, 11, 29), None]
    assert all(c.is_date and c.number_format == "yyyy/mm/dd" for c in ordered[:3])  # dates, not text
    assert sheet["C6"].value == dt.datetime(2026, 12, 5) and sheet["C6"].is_date


@pytest.mark.slow
def test_the_lists_of_a_run_in_english(shop_en: Path):
    rows = read_csv(outbox(shop_en, "dm", "csv"))
    assert rows[0] == ["postal code", "address", "addressee", "name (kana)", "customer id", "scenario", "step",
                       "direct mail text"]
    assert [r[2] for r in rows[1:]] == ["鈴木 一郎", "佐藤 花子", "高橋 三郎", "田中 四郎"]  # no 様 in English
    assert {r[5] for r in rows[1:]} == {"Winter catalogue"}
    sheet = sheet_of(outbox(shop_en, "insert", "xlsx"))
    assert sheet.title == "Parcel insert list"
    assert sheet["A1"].value == f"{BUSINESS}\u3000Parcel insert list\u3000as of {AS_OF}"
    assert values(sheet, 2)[:3] == ["order to pack it with", "order date", "expected next order"]


@pytest.mark.slow
def test_the_call_list_workbook_and_csv(shop: Path, tmp_path: Path):
    with Workspace.open(shop) as ws:
        assert ws.write_priority(tmp_path / "calls.xlsx", fmt="xlsx") == 3
        assert ws.write_priority(tmp_path / "calls.csv", fmt="csv") == 3
        assert ws.write_priority(tmp_path / "calls-en.xlsx", fmt="xlsx", lang="en") == 3
    rows = read_csv(tmp_path / "calls.csv")
    header = rows[0]
    assert header[:4] == ["#", "顧客ID", "氏名", "電話番号"]
    at = {name: header.index(name) for name in ("離脱確率 %", "離脱リスク金額 (円)", "予測CLV (円)", "配信停止")}
    picked = [[r[1], *(r[n] for n in at.values())] for r in rows[1:]]
    assert picked == [  # by value at risk; none for D2 (BG/NBD gave none): after the others; D4 has no phone
        ["D3", "50.0", "300000", "600000", ""],
        ["D1", "94.3", "123457", "200000", "メール・LINE"],  # 0.9432966… as a person reads it; codes as words
        ["D2", "25.0", "", "", ""],
    ]
    sheet = sheet_of(tmp_path / "calls.xlsx")
    assert sheet.title == "架電リスト"
    assert sheet["A1"].value == f"{BUSINESS}\u3000架電リスト\u3000解約防止リスト\u3000基準日 {AS_OF}"
    assert values(sheet, 2) == header and sheet.freeze_panes == "A3" and sheet.auto_filter.ref == "A2:L5"
    risk, var = sheet.cell(4, at["離脱確率 %"] + 1), sheet.cell(4, at["離脱リスク金額 (円)"] + 1)
    assert (risk.value, risk.number_format) == (0.943, "0.0%")
    assert (var.value, var.number_format) == (123_457, '"¥"#,##0')
    assert sheet.cell(5, at["離脱リスク金額 (円)"] + 1).value is None
    english = sheet_of(tmp_path / "calls-en.xlsx")
    assert english.title == "Call list" and values(english, 2)[:3] == ["#", "customer id", "name"]
    assert english["A1"].value == f"{BUSINESS}\u3000Call list\u3000keep list\u3000as of {AS_OF}"


def test_the_segment_export_workbook(shop: Path, tmp_path: Path):
    with Workspace.open(shop) as ws:
        assert ws.export_segment("rank_other", tmp_path / "others.xlsx", fmt="xlsx") == 4
    sheet = sheet_of(tmp_path / "others.xlsx")
    assert sheet.title == "顧客リスト_その他"
    assert sheet["A1"].value == f"{BUSINESS}\u3000顧客リスト_その他\u3000基準日 {AS_OF}"
    header = values(sheet, 2)
    assert header[:3] == ["顧客ID", "氏名", "フリガナ"] and len(header) == 19  # with the predictions' columns
    assert sheet.freeze_panes == "A3" and sheet.auto_filter.ref == "A2:S6"
    by_id = {r[0]: dict(zip(header, r, strict=True)) for r in sheet.iter_rows(min_row=3, values_only=True)}
    assert by_id["D3"]["LTV (円)"] == 8_000 and by_id["D3"]["最終購入日"] == dt.datetime(2026, 11, 28)
    assert by_id["D1"]["離脱確率 %"] == 0.943 and by_id["D1"]["離脱リスク金額 (円)"] == 123_457
    formats = {h: sheet.cell(3, n + 1).number_format for n, h in enumerate(header)}
    assert (formats["LTV (円)"], formats["最終購入日"], formats["購入回数"], formats["離脱確率 %"]) == (
        '"¥"#,##0', "yyyy/mm/dd", "#,##0", "0.0%")
    widths = {k: d.width for k, d in sheet.column_dimensions.items()}
    assert widths["B"] == len("佐藤 花子") * 2 - 1 + 2  # 9 wide: four wide characters and a space
    assert widths["F"] == 4 * 2 + 3  # the header 郵便番号 and its filter arrow: wider than 1500005 (7 + 2)


@pytest.mark.slow
def test_csv_lists_go_to_standard_output_without_a_file(shop: Path, tmp_path: Path):
    done = subprocess.run([*KIZUNA, "export", "rank_other", "--dir", str(shop)], capture_output=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    rows = read_csv(done.stdout)
    assert rows[0][:3] == ["顧客ID", "氏名", "フリガナ"] and sorted(r[0] for r in rows[1:]) == ["D1", "D2", "D3", "D4"]
    assert "標準出力: 4 顧客" in done.stderr.decode()
    english = subprocess.run([*KIZUNA, "export", "rank_other", "--dir", str(shop), "--lang", "en", "-o", "-"],
                             capture_output=True, cwd=tmp_path)
    assert read_csv(english.stdout)[0][:3] == ["customer id", "name", "name (kana)"]
    done = subprocess.run([*KIZUNA, "priority", "-f", "csv", "--dir", str(shop)], capture_output=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    rows = read_csv(done.stdout)
    assert [r[1] for r in rows[1:]] == ["D3", "D1", "D2"] and rows[2][6] == "94.3"
    assert "解約防止リスト: 架電 3件" in done.stderr.decode()  # the summary beside the data, not in it
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


@pytest.mark.slow
def test_libreoffice_opens_a_workbook_with_its_formats(shop: Path, tmp_path: Path):
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:  # .ci/install-system.sh installs it: a failure in CI, a skip elsewhere
        unavailable("LibreOffice (soffice) is not installed: sudo apt-get install libreoffice-calc-nogui")
    with Workspace.open(shop) as ws:
        ws.write_priority(tmp_path / "calls.xlsx", fmt="xlsx")
    done = subprocess.run([office, "--headless", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,"
                           "true,true", "--outdir", str(tmp_path / "out"), str(tmp_path / "calls.xlsx")],
                          capture_output=True, text=True, timeout=180,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    # "as shown": LibreOffice applied the number formats it read
    shown = list(csv.reader((tmp_path / "out" / "calls.csv").read_text(encoding="utf-8").splitlines()))
    assert shown[0][0].startswith(BUSINESS) and shown[1][:2] == ["#", "顧客ID"]
    assert shown[3][6] == "94.3%" and shown[3][7] == "¥123,457"
