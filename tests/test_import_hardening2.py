"""Issue #18, items 1, 2, 11 and 13: workbooks and CSV files that imported with exit 0 but stored
less, or other values, than they hold. Every file is written here, as a user's tool would write it."""

from __future__ import annotations

import codecs
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

from kizuna import Workspace
from kizuna.workspace import Settings

from factories import rejects_of, stored, write

KIZUNA = [sys.executable, "-m", "kizuna"]
COMMA = ("misplaced comma: a comma that is not a thousands separator (write whole numbers as 1200 or 1,200; "
         "a decimal comma is not read)")
FORMULA = ("formula without a saved value: the workbook's formulas have no saved values (it was not saved by "
           "Excel); open it in Excel and save it, or export the sheet to CSV, and import it again")


def kizuna(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False)


@pytest.fixture
def ws(tmp_path: Path):
    # an English workspace: the rejects' reasons below are its English texts (kizuna.i18n reject.*)
    workspace = Workspace.init(tmp_path / "ws", settings=Settings().replace(business={"lang": "en"}))
    customers = "customer_id,name\n" + "".join(f"K{i},客{i}\n" for i in range(1, 4))
    assert workspace.import_file("customers", write(tmp_path / "k.csv", customers)).added == 3
    yield workspace
    workspace.close()


def workbook(path: Path, *sheets: tuple[str, list[list]], hidden: tuple[str, ...] = (), active: int = 0) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
        if title in hidden:
            sheet.sheet_state = "hidden"
    book.active = active
    book.save(path)
    return path


def rewrite_sheet(src: Path, dst: Path, pattern: bytes, replacement: bytes) -> Path:
    """A copy of the workbook whose xl/worksheets/sheet1.xml has `pattern` replaced once."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, count = re.subn(pattern, replacement, data, count=1)
                assert count == 1
            zout.writestr(item, data)
    return dst


# -- 1. a wrong <dimension> ------------------------------------------------------------

@pytest.mark.parametrize("dimension", [b"A1", b"A1:C2"])
def test_a_workbook_whose_dimension_tag_is_wrong_imports_every_row(tmp_path, dimension):
    made = workbook(tmp_path / "made.xlsx", ("顧客", [["customer_id", "name"],
                                                     *[[f"K{i}", f"客{i}"] for i in range(1, 101)]]))
    path = rewrite_sheet(made, tmp_path / "c.xlsx", rb'<dimension ref="[^"]*"', b'<dimension ref="%s"' % dimension)
    with Workspace.init(tmp_path / "ws") as ws:
        summary = ws.import_file("customers", path)
        assert (summary.rows_read, summary.added, summary.rejected) == (100, 100, 0)
        names = {r["customer_id"]: r["name"] for r in stored(ws, "customers", "customer_id")}
    assert names == {f"K{i}": f"客{i}" for i in range(1, 101)}


# -- 2. commas that are not thousands separators ------------------------------------------

AMOUNTS = [("A1", "1200,50", None), ("A2", "12,5", None), ("A3", "1,2,3", None), ("A4", "1,200,000", 1_200_000),
           ("A5", "¥1,200", 1200), ("A6", "１，２００", 1200), ("A7", "1,200円", 1200), ("A8", "▲1,200", None),
           ("A9", "1200", 1200)]


def _check_amounts(ws: Workspace, summary, first_row: int = 2) -> None:
    amounts = {r["order_id"]: r["amount"] for r in stored(ws, "orders", "order_id")}
    assert amounts == {o: a for o, _, a in AMOUNTS if a is not None}
    rejects = [(r["row"], r["column"], r["reason"]) for r in rejects_of(summary)]
    # A8 is -1,200: its comma is right, its sign is a negative amount
    assert rejects == [(str(first_row + i), "amount", COMMA) for i in range(3)] + [
        (str(first_row + 7), "amount", "negative amount")]


@pytest.mark.parametrize("reader", ["fast", "exact"])
def test_a_comma_that_is_not_a_thousands_separator_rejects_the_row_in_a_csv(ws, tmp_path, reader):
    # a value with a line break makes the exact reader (Python's csv module) read the file
    channel = '"店頭\n受取"' if reader == "exact" else "web"
    lines = [f'{o},K1,2024-01-05,"{a}",{channel}' for o, a, _ in AMOUNTS]
    summary = ws.import_file("orders", write(tmp_path / "o.csv", "order_id,customer_id,ordered_at,amount,channel\n"
                                             + "\n".join(lines) + "\n"))
    _check_amounts(ws, summary)


def test_a_comma_that_is_not_a_thousands_separator_rejects_the_row_in_a_workbook(ws, tmp_path):
    rows = [["order_id", "customer_id", "ordered_at", "amount"], *[[o, "K1", "2024-01-05", a] for o, a, _ in AMOUNTS]]
    summary = ws.import_file("orders", workbook(tmp_path / "o.xlsx", ("受注", rows)))
    _check_amounts(ws, summary)


# -- 11. hidden sheets, formulas without values, merged cells -------------------------

def test_a_hidden_first_sheet_is_not_read_and_the_active_visible_sheet_is(ws, tmp_path):
    old = ("old", [["customer_id", "name"], ["K9", "古い"]])
    path = workbook(tmp_path / "c.xlsx", old, ("顧客", [["customer_id", "name"], ["K1", "山田"]]), hidden=("old",),
                    active=1)
    summary = ws.import_file("customers", path)
    assert (summary.sheet, summary.rows_read, summary.unchanged, summary.updated) == ("顧客", 1, 0, 1)
    # two visible sheets: the active one is what the user sees on opening the file
    path = workbook(tmp_path / "d.xlsx", ("一覧", [["customer_id", "name"], ["K2", "鈴木"]]),
                    ("最新", [["customer_id", "name"], ["K3", "佐藤"]]), active=1)
    assert ws.import_file("customers", path).sheet == "最新"
    names = {r["customer_id"]: r["name"] for r in stored(ws, "customers", "customer_id")}
    assert names == {"K1": "山田", "K2": "客2", "K3": "佐藤"}


@pytest.mark.slow
def test_a_formula_without_a_saved_value_rejects_its_row_and_a_saved_value_is_read(ws, tmp_path):
    # openpyxl (like many exporters) writes formulas without calculating them: <f>…</f><v/>
    rows = [["order_id", "customer_id", "ordered_at", "amount", "memo"],
            ["F1", "K1", "2024-01-05", "=100*12", None], ["F2", "K1", "2024-01-05", 500, '="a"&"b"'],
            ["F3", "K1", "2024-01-05", "=SUM(1,2)", None]]
    made = workbook(tmp_path / "made.xlsx", ("受注", rows))
    # F3's formula as Excel saves it: with its value
    path = rewrite_sheet(made, tmp_path / "o.xlsx", rb"<f>SUM\(1,2\)</f><v\s*/>", b"<f>SUM(1,2)</f><v>3</v>")
    summary = ws.import_file("orders", path)
    assert (summary.rows_read, summary.added, summary.rejected) == (3, 2, 1)
    # the formula in memo, a column kizuna does not read, stops nothing
    assert [(r["row"], r["column"], r["reason"]) for r in rejects_of(summary)] == [("2", "amount", FORMULA)]
    assert {r["order_id"]: r["amount"] for r in stored(ws, "orders", "order_id")} == {"F2": 500, "F3": 3}
    ws.close()
    done = kizuna("import", "orders", path, "--dir", ws.path, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"formula without a saved value": 1' in done.stdout


def test_merged_cells_give_every_row_of_their_range_the_top_left_value(ws, tmp_path):
    rows = [["order_id", "customer_id", "ordered_at", "amount", "channel"],
            ["M1", "K1", "2024-01-05", 100, "web"],
            ["M2", None, None, 200, "shop"],  # customer_id and ordered_at merged with row 2's
            ["M3", "K2", "2024-02-01", 300, "電話"],
            [None, None, None, None, None]]  # covered only by the merged channel of row 4: not a row
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    for cells in ("B2:B3", "C2:C3", "E4:E5"):
        sheet.merge_cells(cells)
    book.save(tmp_path / "o.xlsx")
    summary = ws.import_file("orders", tmp_path / "o.xlsx")
    assert (summary.rows_read, summary.added, summary.rejected) == (3, 3, 0)
    got = [(r["order_id"], r["customer_id"], r["ordered_at"].date().isoformat(), r["channel"])
           for r in stored(ws, "orders", "order_id")]
    assert got == [("M1", "K1", "2024-01-05", "web"), ("M2", "K1", "2024-01-05", "shop"),
                   ("M3", "K2", "2024-02-01", "電話")]


# -- 13. BOM before Shift_JIS, a header below a title, a huge field, control characters ---

@pytest.mark.slow
def test_a_shift_jis_file_with_a_utf8_bom_is_read_with_or_without_encoding(ws, tmp_path):
    text = "顧客ID,氏名\nK1,山田 太郎\nK2,鈴木 花子\n"
    path = write(tmp_path / "c.csv", codecs.BOM_UTF8 + text.encode("cp932"))
    for encoding in ("cp932", None):
        summary = ws.import_file("customers", path, encoding=encoding)
        assert (summary.encoding, summary.rows_read, summary.rejected) == ("cp932", 2, 0)
    names = {r["customer_id"]: r["name"] for r in stored(ws, "customers", "customer_id")}
    assert names == {"K1": "山田 太郎", "K2": "鈴木 花子", "K3": "客3"}
    ws.close()
    done = kizuna("import", "customers", path, "--encoding", "cp932", "--dir", ws.path, cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


TITLED = "受注一覧 2024/04/01\n\n受注番号,顧客ID,購入日,金額\nA1,K1,2024/04/01,1200\nA2,K2,2024/04/02,x\n"


@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
def test_a_header_below_a_title_line_is_found_and_rows_keep_their_numbers(ws, tmp_path, encoding):
    summary = ws.import_file(None, write(tmp_path / "o.csv", TITLED, encoding))
    assert (summary.kind, summary.header_row, summary.rows_read, summary.added) == ("orders", 3, 2, 1)
    assert [(r["row"], r["column"]) for r in rejects_of(summary)] == [("5", "amount")]
    assert [(r["order_id"], r["amount"]) for r in stored(ws, "orders", "order_id")] == [("A1", 1200)]


def test_a_header_below_a_merged_title_in_a_workbook_is_found(ws, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    rows = (["受注一覧 2024/04/01"], [], ["受注番号", "顧客ID", "購入日", "金額"], ["A1", "K1", "2024/04/01", 1200])
    for row in rows:
        sheet.append(row)
    sheet.merge_cells("A1:D1")
    book.save(tmp_path / "o.xlsx")
    summary = ws.import_file("orders", tmp_path / "o.xlsx")
    assert (summary.header_row, summary.rows_read, summary.added) == (3, 1, 1)


@pytest.mark.slow
def test_header_row_given_on_the_command_line(ws, tmp_path):
    # the header's words are the shop's own: only a mapping names them, and the header row is given
    path = write(tmp_path / "o.csv", "受注一覧\n\n伝票,会員,日,税込\nA1,K1,2024/04/01,1200\n")
    mapping = write(tmp_path / "m.toml", '[columns]\n"伝票" = "order_id"\n"会員" = "customer_id"\n'
                                         '"日" = "ordered_at"\n"税込" = "amount"\n')
    ws.close()
    done = kizuna("import", "orders", path, "--header-row", "3", "--mapping", mapping, "--dir", "ws",
                  "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"header_row": 3' in done.stdout and '"added": 1' in done.stdout
    done = kizuna("import", "orders", path, "--header-row", "2", "--dir", "ws", cwd=tmp_path)
    assert "Traceback" not in done.stderr and done.returncode == 1
    assert done.stderr == (f"error: {path}: row 2 of the file (--header-row 2) is blank. Give the row that holds "
                           "the column names.\n")
    done = kizuna("import", "orders", path, "--header-row", "0", "--dir", "ws", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_value_over_the_field_size_limit_is_rejected_naming_its_size_not_a_quote(ws, tmp_path):
    size = 50 * 1024 * 1024
    path = tmp_path / "c.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("customer_id,name,address\nK1,山田,")
        handle.write("x" * size)
        handle.write("\nK2,鈴木,東京都\n")
    summary = ws.import_file("customers", path)
    assert (summary.rows_read, summary.updated, summary.rejected) == (2, 1, 1)
    (reject,) = rejects_of(summary)
    assert (reject["file"], reject["row"], reject["column"]) == (str(path), "2", "address")
    assert reject["reason"] == (f"value too large: column address of row 2 holds {size:,} characters, more than "
                                "the 131,072 a value may have (the field-size limit); shorten or remove it")
    assert {r["customer_id"]: r["address"] for r in stored(ws, "customers", "customer_id")}["K2"] == "東京都"


def test_contact_addresses_with_control_characters_are_rejected_at_import(ws, tmp_path):
    rows = ['K1,a@example.jp', '"K2","b@example.jp\r\nBcc: x@example.jp"', 'K3,c@exa\x00mple.jp',
            'K4,d@ex\tample.jp', 'K5,"e@example.jp\n"']  # a line break after the address is trimmed
    summary = ws.import_file("customers", write(tmp_path / "c.csv", "customer_id,email\n" + "\n".join(rows) + "\n"))
    reason = ("control character in email (a line break, tab, NUL or other invisible character inside the value); "
              "remove it from the file")
    # (a CSV record is one row, as a spreadsheet shows it, whatever line breaks its values hold)
    assert [(r["row"], r["column"], r["reason"]) for r in rejects_of(summary)] == [
        ("3", "email", reason), ("4", "email", reason), ("5", "email", reason)]
    emails = {r["customer_id"]: r["email"] for r in stored(ws, "customers", "customer_id")}
    assert (emails["K1"], emails["K2"], emails["K3"], emails["K5"]) == ("a@example.jp", None, None, "e@example.jp")
    assert "K4" not in emails
