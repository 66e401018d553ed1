"""The one place that writes files for people: CSV and .xlsx that a spreadsheet opens safely and readably.

Customer data is written as data, never as something a spreadsheet runs. Per OWASP's
CSV-injection guidance, a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return would be read as a formula (``=HYPERLINK("http://…"&A1,"click")``,
``=cmd|' /C calc'!A0``); so in CSV it is written with a leading ``'`` and in .xlsx as a string
cell. Numbers, dates, booleans and empty cells keep their type; only text is touched, and only
in the written file: the store keeps what the customer gave.

.xlsx cannot hold most control characters (openpyxl refuses ``\\x01``), nor more than 32,767
characters in a cell; those are dropped from the written cell so that an export never fails on
them (and a carriage return is written as a line feed). CSV keeps them.

>>> neutralise('=HYPERLINK("http://x","click")')
'\\'=HYPERLINK("http://x","click")'
>>> neutralise("a=b"), neutralise(-1)
('a=b', -1)

Each column is described once (`Column`: the header a person reads, in the workspace's language,
and what its values are), and each format shows that the way its reader wants it:

=========== ================================ ==================================
kind        .xlsx (a person in Excel)        CSV (a person, or a script)
=========== ================================ ==================================
text        text (a number stays a number)   as given
yen         whole yen, ``"¥"#,##0``          whole yen: ``1302886``
percent     the fraction to 0.1 %, ``0.0%``  percent points to 0.1: ``94.3``
date        a date cell, ``yyyy/mm/dd``      ``2026-11-01``
datetime    a date-time cell, ``yyyy/mm/dd   ``2026-11-01 09:30``
            hh:mm`` (wall-clock time)
integer     a number, ``0``                  the number
count       a number, ``#,##0``              the number
number      a number to 0.1, ``#,##0.0``     the number to 0.1
=========== ================================ ==================================

A probability of 0.9432966… is thus 94.3% in a workbook (its cell holds 0.943, what the format
shows) and 94.3 in a CSV, under a header that says "%": nobody reads sixteen digits, and a
CSV of percent points is what a person typing the figure elsewhere expects.

A workbook is formatted for its reader: a title row above the header (what the list is, the
as-of date, the business), the header frozen and filtered, each column as wide as its content
(a Japanese character counts twice: it is twice as wide), the number formats above. A CSV stays
machine-readable: one header row, no title, UTF-8 with a BOM so that Excel in Japan opens it
without garbling names; written to standard output when no file is given (``path=None``).

Writing a whole table (to a temporary name, renamed when complete)::

    write_table(path, [Column("顧客ID"), Column("LTV (円)", "yen")], rows, fmt="xlsx",
                sheet="顧客リスト", title=heading("顧客リスト", "基準日 2026/11/01", "絆ウォーター"))

or streaming rows, e.g. rejects while an import runs::

    with open_sheet(path, "csv", headers=["row", "value"]) as sheet:
        sheet.writerow([2, "=1+1"])
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import math
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from kizuna._errors import KizunaError

__all__ = [
    "COLUMN_KINDS", "NUMBER_FORMATS", "SHEET_FORMATS", "Column", "CsvSheet", "SheetWriter", "XlsxSheet",
    "display_width", "heading", "neutralise", "open_csv", "open_sheet", "sheet_title", "write_table", "xlsx_text",
]

SHEET_FORMATS = ("csv", "xlsx")
COLUMN_KINDS = ("text", "yen", "percent", "date", "datetime", "integer", "count", "number")
# How a workbook shows each kind ("¥" quoted: a literal in every spreadsheet's format syntax).
NUMBER_FORMATS = {
    "yen": '"¥"#,##0', "percent": "0.0%", "date": "yyyy/mm/dd", "datetime": "yyyy/mm/dd hh:mm",
    "integer": "0", "count": "#,##0", "number": "#,##0.0",
}

# A formula starts with one of = + - @ TAB CR, perhaps after other control characters that a
# spreadsheet may skip; such text is written as text.
_FORMULA_START = re.compile(r"[\x00-\x08\x0a-\x0c\x0e-\x1f]*[=+\-@\t\r]")
# What openpyxl refuses in a cell (openpyxl.cell.cell.ILLEGAL_CHARACTERS_RE), kept here so that
# importing this module does not import openpyxl.
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
XLSX_MAX_TEXT = 32_767  # Excel's limit on the characters of one cell
XLSX_MAX_ROWS = 1_048_576  # Excel's limit on the rows of one worksheet
# Values a spreadsheet cell holds as they are; anything else is written as its text.
_TYPED = (int, float, decimal.Decimal, dt.date, dt.time, dt.timedelta)
# Column widths, in Excel's unit (the width of a "0"): measured on the first rows, within bounds.
_MEASURED_ROWS = 1_000
_MIN_WIDTH, _MAX_WIDTH = 6, 60
_FILTER_BUTTON = 3  # the header's filter arrow takes about this much of its cell
_ONE = decimal.Decimal(1)


@dataclass(frozen=True)
class Column:
    """One column of a sheet: `header`, the words a person reads (from `kizuna.i18n`, in the
    workspace's language), and `kind`, what its values are (one of `COLUMN_KINDS`).

    >>> risk = Column("離脱確率 %", "percent")
    >>> risk.xlsx(0.9432966061812755), risk.csv(0.9432966061812755)
    (0.943, 94.3)
    """

    header: str
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}; one of {', '.join(COLUMN_KINDS)}")

    def xlsx(self, value: object) -> object:
        """The value a workbook cell holds (text not yet made safe: see `XlsxSheet`)."""
        value = _plain(value)
        number = _number(value)
        if number is not None:
            if self.kind == "yen":
                return _whole(number)
            if self.kind == "percent":
                return round(float(number), 3)
            if self.kind in ("integer", "count"):
                return _whole(number)
            if self.kind == "number":
                return round(float(number), 1)
            return number
        if isinstance(value, float):  # NaN, ±inf: no figure, an empty cell
            return None
        if self.kind == "date" and isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.replace(tzinfo=None)  # .xlsx has no time zones: the wall-clock time it had
        return value

    def csv(self, value: object) -> object:
        """The value a CSV cell holds (text not yet neutralised: see `CsvSheet`)."""
        value = _plain(value)
        if self.kind == "percent" and _number(value) is not None:
            return round(100 * float(value), 1)  # type: ignore[arg-type]
        value = self.xlsx(value)
        if self.kind == "datetime" and isinstance(value, dt.datetime):
            return value.isoformat(sep=" ", timespec="minutes")
        if isinstance(value, dt.date) and self.kind in ("date", "datetime"):
            return value.isoformat()
        return value

    def shown(self, value: object) -> str:
        """About what a workbook shows for `value` (its cell's value), to measure the column's width."""
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "FALSE" if not value else "TRUE"
        if isinstance(value, int | float | decimal.Decimal):
            if self.kind == "yen":
                return f"¥{value:,.0f}"
            if self.kind == "percent":
                return f"{100 * float(value):.1f}%"
            if self.kind == "count":
                return f"{value:,.0f}"
            if self.kind == "number":
                return f"{value:,.1f}"
            return str(value)
        if isinstance(value, dt.datetime):
            return "2026/01/01 00:00"
        if isinstance(value, dt.date):
            return "2026/01/01"
        return str(value)


def columns_of(headers: Sequence[Column | str]) -> list[Column]:
    """Columns from descriptions or bare headers (a bare header: a text column)."""
    return [h if isinstance(h, Column) else Column(str(h)) for h in headers]


def heading(*parts: str) -> str:
    """A workbook's title row: its non-empty parts (business, what the list is, as of …), spaced.

    >>> heading("絆ウォーター", "架電リスト", "基準日 2026/11/01")
    '絆ウォーター\\u3000架電リスト\\u3000基準日 2026/11/01'
    """
    return "\u3000".join(p.strip() for p in parts if p and p.strip())


def display_width(text: str) -> int:
    """How many "0"s wide `text` shows: a wide (East Asian) character counts two; the longest line.

    >>> display_width("山田 太郎"), display_width("ABC\\nあ")
    (9, 3)
    """
    return max((sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)
                for line in text.split("\n")), default=0)


def neutralise(value: object) -> object:
    """The value for a CSV cell: text a spreadsheet would run gets a leading ``'``; others unchanged.

    >>> neutralise("+81 3-1234-5678"), neutralise("\\t=1+1"), neutralise(""), neutralise(None)
    ("'+81 3-1234-5678", "'\\t=1+1", '', None)
    """
    if isinstance(value, str) and _FORMULA_START.match(value):
        return "'" + value
    return value


def xlsx_text(value: str) -> str:
    """Text as an .xlsx cell can hold it: without control characters, at most 32,767 characters.

    A carriage return becomes a line feed, as any reader of the file's XML would make it.
    """
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _XLSX_ILLEGAL.sub("", value)[:XLSX_MAX_TEXT]


def sheet_title(name: str, default: str = "Sheet1") -> str:
    """A worksheet name Excel accepts: no ``[]:*?/\\``, at most 31 characters, not empty."""
    title = re.sub(r"[\[\]:*?/\\]", "_", xlsx_text(name)).strip("'")[:31]
    return title or default


class SheetWriter:
    """A file being written row by row: ``writerow`` for each row, then ``close`` (or ``with``)."""

    path: Path | None  # where the file is written (None: standard output)
    rows: int  # data rows written so far, headers not counted

    def writerow(self, row: Sequence[object]) -> None:
        raise NotImplementedError

    def writerows(self, rows: Iterable[Sequence[object]]) -> None:
        for row in rows:
            self.writerow(row)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> SheetWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class CsvSheet(SheetWriter):
    """CSV in UTF-8 with a BOM, so that Excel in Japan opens it without garbling names; one header
    row, numbers as plain numbers (see the module's table). `path` None: standard output, the same
    bytes a file would get."""

    def __init__(self, path: Path | str | None, headers: Sequence[Column | str] | None = None, *,
                 shown_as: Path | str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.rows = 0
        self.columns = columns_of(headers) if headers is not None else []
        if self.path is None:
            self._handle: IO[str] = _standard_output()
        else:
            self._shown_as = Path(shown_as or self.path)
            self._handle = _open(self.path, self._shown_as,
                                 lambda p: p.open("w", encoding="utf-8-sig", newline=""))
        self._writer = csv.writer(self._handle)
        if headers is not None:
            self._writer.writerow([neutralise(c.header) for c in self.columns])

    def writerow(self, row: Sequence[object]) -> None:
        columns = self.columns
        self._writer.writerow([
            neutralise(columns[n].csv(v) if n < len(columns) else _plain(v)) for n, v in enumerate(row)
        ])
        self.rows += 1

    def close(self) -> None:
        if self.path is None:
            self._handle.flush()
            if isinstance(self._handle, io.TextIOWrapper):
                self._handle.detach()  # standard output stays open for what the command prints next
            return
        self._handle.close()


class XlsxSheet(SheetWriter):
    """One formatted worksheet of an .xlsx, written row by row (openpyxl's write-only mode).

    The first rows are held until there are enough to measure the columns' widths (a workbook
    gives its widths before its rows); the rest stream through. `title`: the text of a row
    above the header (none when None); the header row is frozen and carries the auto-filter.
    """

    def __init__(self, path: Path | str, headers: Sequence[Column | str] | None = None, *,
                 sheet: str = "Sheet1", title: str | None = None, shown_as: Path | str | None = None) -> None:
        import openpyxl  # only the commands that write .xlsx pay for it
        from openpyxl.cell import WriteOnlyCell

        self.path = Path(path)
        self.rows = 0
        self._shown_as = Path(shown_as or path)
        # opened now, like a CSV: a path that cannot be written fails before any row is made
        self._handle = _open(self.path, self._shown_as, lambda p: p.open("wb"))
        self._cell = WriteOnlyCell
        self._book = openpyxl.Workbook(write_only=True)
        self._sheet = self._book.create_sheet(sheet_title(sheet))
        self._closed = False
        self.columns = columns_of(headers) if headers is not None else []
        self._has_header = headers is not None
        self._title = xlsx_text(title) if title else None
        self.header_row = (2 if self._title else 1) if self._has_header else 0
        self._room = XLSX_MAX_ROWS - self.header_row - (1 if self._title and not self._has_header else 0)
        self._held: list[list[object]] | None = []  # rows kept until the widths are known
        self._wrapped: set[int] = set()
        self._styles: dict[int, dict[str, Any]] = {}

    # -- cells ----------------------------------------------------------------------------------
    def _value(self, value: object, at: int) -> object:
        column = self.columns[at] if at < len(self.columns) else None
        value = column.xlsx(value) if column is not None else _plain(value)
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.replace(tzinfo=None)
        if isinstance(value, str):
            value = xlsx_text(value)
        return value

    def _cell_of(self, value: object, at: int) -> object:
        style = self._styles.get(at)
        formula = isinstance(value, str) and _FORMULA_START.match(value) is not None
        if value is None or not (style or formula or isinstance(value, dt.date | dt.time)):
            return value
        cell = self._cell(self._sheet, value=value)
        if formula:  # openpyxl makes text starting with "=" a formula cell: force a string cell instead
            cell.data_type = "s"
        if style and not isinstance(value, str | bool):
            cell.number_format = style["number_format"]
        elif isinstance(value, dt.datetime):
            cell.number_format = NUMBER_FORMATS["datetime"]
        elif isinstance(value, dt.date):
            cell.number_format = NUMBER_FORMATS["date"]
        if at in self._wrapped:
            cell.alignment = style["alignment"]  # type: ignore[index]
        return cell

    # -- layout ---------------------------------------------------------------------------------
    def _lay_out(self) -> None:
        """Widths from the header and the rows held, the frozen header; then the title, header and rows."""
        from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
        from openpyxl.utils import get_column_letter

        held, self._held = self._held or [], None
        count = max([len(self.columns), *(len(r) for r in held)])
        for at in range(count):
            column = self.columns[at] if at < len(self.columns) else Column("")
            content = max((display_width(column.shown(r[at])) for r in held if at < len(r)), default=0)
            header = display_width(column.header) + _FILTER_BUTTON if self._has_header else 0
            width = max(_MIN_WIDTH, header, content + 2)
            style: dict[str, Any] = {}
            if column.kind in NUMBER_FORMATS:
                style["number_format"] = NUMBER_FORMATS[column.kind]
            if width > _MAX_WIDTH:  # long text (a letter, a script): wrapped within a readable width
                width = _MAX_WIDTH
                self._wrapped.add(at)
                style.setdefault("number_format", "General")
                style["alignment"] = Alignment(wrap_text=True, vertical="top")
            if style:
                self._styles[at] = style
            self._sheet.column_dimensions[get_column_letter(at + 1)].width = width
        if self._has_header:
            self._sheet.freeze_panes = f"A{self.header_row + 1}"
            self._sheet.print_title_rows = f"{self.header_row}:{self.header_row}"  # repeated on every printed page
        # printed as a list is read: landscape, every column on the page's width, as many pages down as it takes
        self._sheet.page_setup.orientation = "landscape"
        self._sheet.page_setup.paperSize = "9"  # A4 (ECMA-376 ST_PaperSize)
        self._sheet.page_setup.fitToWidth, self._sheet.page_setup.fitToHeight = 1, 0
        self._sheet.sheet_properties.pageSetUpPr.fitToPage = True
        if self._title:
            title = self._cell(self._sheet, value=self._title)
            title.data_type = "s"
            title.font = Font(bold=True, size=13)
            self._sheet.append([title])
        if self._has_header:
            fill = PatternFill("solid", start_color="DDEBF7")
            border = Border(bottom=Side(style="thin", color="8EA9DB"))
            cells = []
            for column in self.columns:
                cell = self._cell(self._sheet, value=xlsx_text(column.header))
                cell.data_type = "s"  # a header "=id" is text too
                cell.font, cell.fill, cell.border = Font(bold=True), fill, border
                cell.alignment = Alignment(vertical="center")
                cells.append(cell)
            self._sheet.append(cells)
        for row in held:
            self._append(row)

    def _append(self, row: list[object]) -> None:
        self._sheet.append([self._cell_of(v, at) for at, v in enumerate(row)])

    def writerow(self, row: Sequence[object]) -> None:
        if self.rows >= self._room:
            raise KizunaError.keyed("error.sheet_too_many_rows", path=str(self._shown_as), room=f"{self._room:,}")
        values = [self._value(v, at) for at, v in enumerate(row)]
        self.rows += 1
        if self._held is None:
            self._append(values)
            return
        self._held.append(values)
        if len(self._held) >= _MEASURED_ROWS:
            self._lay_out()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._held is not None:
                self._lay_out()
            if self._has_header and self.columns:
                from openpyxl.utils import get_column_letter

                last = get_column_letter(len(self.columns))
                self._sheet.auto_filter.ref = f"A{self.header_row}:{last}{self.header_row + self.rows}"
            with self._handle:
                _open(self.path, self._shown_as, lambda _: self._book.save(self._handle))


def open_sheet(path: Path | str | None, fmt: str = "csv", *, headers: Sequence[Column | str] | None = None,
               sheet: str = "Sheet1", title: str | None = None,
               shown_as: Path | str | None = None) -> CsvSheet | XlsxSheet:
    """A writer for `path` in `fmt` ("csv" or "xlsx"): call ``writerow`` per row, then ``close``.

    `headers`: `Column`s (or bare header texts: text columns). `sheet`: the worksheet's name and
    `title`: the text of the row above the header, in a workbook only (a CSV stays one header row).
    The file is written at `path` itself; to publish a file only when it is complete, write to
    a temporary name and rename it (as `write_table` does), passing the final name as
    `shown_as` for error messages. `path` None: a CSV on standard output. A path that cannot be
    written raises `KizunaError`.
    """
    if fmt == "csv":
        return CsvSheet(path, headers, shown_as=shown_as)
    if fmt == "xlsx":
        if path is None:
            raise KizunaError.keyed("error.workbook_to_stdout")
        return XlsxSheet(path, headers, sheet=sheet, title=title, shown_as=shown_as)
    raise KizunaError.keyed("error.sheet_format_unknown", fmt=repr(fmt), first=SHEET_FORMATS[0],
                            second=SHEET_FORMATS[1])


def open_csv(path: Path | str | None, headers: Sequence[Column | str] | None = None, *,
             shown_as: Path | str | None = None) -> CsvSheet:
    """A streaming CSV writer (UTF-8 with BOM) that neutralises formulas; see `open_sheet`."""
    return CsvSheet(path, headers, shown_as=shown_as)


def write_table(path: Path | str | None, headers: Sequence[Column | str], rows: Iterable[Sequence[object]], *,
                fmt: str = "csv", sheet: str = "Sheet1", title: str | None = None) -> int:
    """Write a whole table to `path` as csv or xlsx (`path` None: csv on standard output); returns
    the number of data rows. `headers`, `sheet` and `title` as for `open_sheet`.

    The file appears under its name only once complete: a failure leaves any earlier file there
    as it was, and no partial one.
    """
    if path is None:
        with open_sheet(None, fmt, headers=headers) as writer:
            writer.writerows(rows)
        return writer.rows
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_sheet(temporary, fmt, headers=headers, sheet=sheet, title=title, shown_as=path) as writer:
            writer.writerows(rows)
        _open(path, path, lambda p: os.replace(temporary, p))
    finally:
        temporary.unlink(missing_ok=True)
    return writer.rows


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, *_TYPED)):
        return value
    return str(value)


def _number(value: object) -> int | float | decimal.Decimal | None:
    """`value` if it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, decimal.Decimal) and not value.is_finite():
        return None
    return value


def _whole(value: int | float | decimal.Decimal) -> int:
    """Rounded half away from zero, as yen are (四捨五入), not to even."""
    if isinstance(value, int):
        return value
    exact = value if isinstance(value, decimal.Decimal) else decimal.Decimal(repr(value))  # 2.5, not 2.4999…
    return int(exact.quantize(_ONE, rounding=decimal.ROUND_HALF_UP))


def _standard_output() -> IO[str]:
    # the same bytes as a file: `kizuna export X > list.csv` opens in Excel like `-o list.csv`
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a captured stream (a notebook, a test): text as it is, the BOM first
        sys.stdout.write("\ufeff")
        return sys.stdout
    return io.TextIOWrapper(buffer, encoding="utf-8-sig", newline="", write_through=True)


def _open(path: Path, shown_as: Path, action: Callable[[Path], Any]) -> Any:
    # an unwritable or missing folder, or a name that is a folder: one line, not a traceback
    try:
        return action(path)
    except OSError as exc:
        raise KizunaError.keyed("error.file_not_written", path=str(shown_as),
                                problem=str(exc.strerror or exc)) from None
