"""Reading CSV, Excel and Parquet files as batches of text columns with row numbers.

Every source yields `pyarrow.RecordBatch`es whose columns are all strings (empty
cells are null) plus ``_row``: the row number as a spreadsheet shows it (the
header is row 1), so that a reject can point at the cell a user must fix.
Batches are bounded, so memory stays flat however large the file.

Batch columns are named by `Source.names`: the header itself, or ``#N`` (its
position) for a blank header or a repeated one, so that neither stops a file.

A file is never read through a wrong guess. CSV goes through Arrow's fast reader
while every batch is plainly one line a row; a ragged row, a value holding a line
break, or a byte the encoding cannot decode switches to Python's csv module,
which reads the rest exactly: a stray quote that would swallow the rows after it,
or a row with undecodable bytes, becomes rejects with its row number, and the
rows around it are still read (`Source.problems`).
"""

from __future__ import annotations

import codecs
import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from kizuna._errors import FileFormatError

__all__ = ["Problem", "Source", "detect_encoding", "open_source"]

ROW = "_row"
_SAMPLE = 1 << 20
# Encodings Japanese shops' exports come in, most common first. A file that none of them
# decodes except for a few bytes is read in the best of them, and those rows are rejected.
JAPANESE_ENCODINGS = ("utf-8", "cp932", "euc_jp")
# Lone surrogates: bytes that did not decode (errors="surrogateescape").
_UNDECODED = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class Problem:
    """A row the source could not turn into values: it becomes a reject."""

    row: int
    column: str | None
    value: str | None
    reason: str


@dataclass
class Source:
    path: Path
    format: str  # csv, xlsx, parquet
    encoding: str | None
    headers: list[str]  # as the file writes them (maybe blank or repeated)
    batch_rows: int
    delimiter: str = ","
    sheet: str | None = None  # xlsx: the sheet read
    sheets: tuple[str, ...] = ()  # xlsx: every sheet of the workbook
    unreadable: list[str] = field(default_factory=list)  # Parquet columns of types kizuna cannot read
    problems: list[Problem] = field(default_factory=list)  # rows not yielded, to reject

    @property
    def names(self) -> list[str]:
        """Batch column names: the header, or #N for a blank or repeated one."""
        return _unique_names(self.headers)

    def with_sheet(self, sheet: str) -> Source:
        """The same workbook, reading another sheet."""
        return replace(self, sheet=sheet, headers=_xlsx_headers(self.path, sheet), problems=[])

    def estimated_rows(self) -> int | None:
        """Rows to expect, for a progress bar (CSV: from the size of the first rows)."""
        if self.format == "parquet":
            return pq.ParquetFile(self.path).metadata.num_rows
        if self.format == "xlsx":
            return None
        with self.path.open("rb") as handle:
            sample = handle.read(_SAMPLE)
        lines = sample.count(b"\n")
        if lines <= 1 or len(sample) < _SAMPLE:
            return max(lines - 1, 0)
        return int(file_size(self.path) / (len(sample) / lines)) - 1

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self.format == "csv":
            yield from self._csv_batches()
        elif self.format == "xlsx":
            yield from _xlsx_batches(self.path, self.sheet, self.names, self.batch_rows)
        else:
            yield from _parquet_batches(self.path, self.names, self.batch_rows)

    def _csv_batches(self) -> Iterator[pa.RecordBatch]:
        emitted = 0
        try:
            for batch in _arrow_csv_batches(self):
                emitted += batch.num_rows
                yield batch
            return
        except (pa.ArrowInvalid, UnicodeDecodeError, _NotOneLineARow):
            pass  # the exact reader takes over where the fast one stopped
        yield from _python_csv_batches(self, skip_records=emitted)


def open_source(
    path: Path, batch_rows: int = 200_000, encoding: str | None = None, sheet: str | None = None
) -> Source:
    """Open a file for import, detecting its format from the suffix and its encoding."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError("file not found. Check the path.", path=path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        encoding = _known_encoding(encoding, path) if encoding else detect_encoding(path)
        delimiter = "\t" if suffix == ".tsv" else None
        headers, delimiter = _csv_headers(path, encoding, delimiter)
        return Source(path, "csv", encoding, headers, batch_rows, delimiter=delimiter)
    if suffix in (".xlsx", ".xlsm"):
        sheets = _xlsx_sheet_names(path)
        if sheet is not None and sheet not in sheets:
            raise FileFormatError(
                f"no sheet named {sheet!r}; the workbook has {', '.join(sheets)}.", path=path
            )
        chosen = sheet or sheets[0]
        return Source(path, "xlsx", None, _xlsx_headers(path, chosen), batch_rows,
                      sheet=chosen, sheets=tuple(sheets))
    if suffix in (".parquet", ".pq"):
        try:
            schema = pq.ParquetFile(path).schema_arrow
        except Exception as exc:
            raise FileFormatError(f"not a readable Parquet file ({exc}).", path=path) from None
        readable = [f.name for f in schema if _readable_type(f.type)]
        unreadable = [f"{f.name} ({f.type})" for f in schema if not _readable_type(f.type)]
        return Source(path, "parquet", None, readable, batch_rows, unreadable=unreadable)
    raise FileFormatError(
        f"unknown file type {suffix or '(none)'}; kizuna imports .csv, .tsv, .txt, .xlsx and .parquet.",
        path=path,
    )


def _known_encoding(encoding: str, path: Path) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise FileFormatError(
            f"unknown encoding {encoding!r} (--encoding); use utf-8, cp932 (Shift_JIS) or euc_jp, "
            "or leave it out to detect it.",
            path=path,
        ) from None


def _unique_names(headers: list[str]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for index, header in enumerate(headers, 1):
        name = header if header.strip() and header not in seen else f"#{index}"
        seen.add(header)
        names.append(name)
    return names


# -- encodings ------------------------------------------------------------------------

def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), Shift_JIS/CP932 or EUC-JP, told from samples of the file.

    Samples are taken at the start and at three places further in, so that a file
    whose first megabyte is plain ASCII is still recognised. A Japanese file with a
    few undecodable bytes is still read as Japanese (those rows are rejected); only
    a file that is not Japanese text at all is left to charset detection.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8"  # Arrow drops the BOM itself
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        samples = []
        for offset in (0, size // 4, size // 2, max(0, size - _SAMPLE)):
            handle.seek(offset)
            samples.append(handle.read(_SAMPLE))
            if offset + _SAMPLE >= size:
                break
    texts = [(s, s is samples[0]) for s in samples if _high_bytes(s)]
    if not texts:
        return "utf-8"
    errors: dict[str, int] = {}
    for enc in JAPANESE_ENCODINGS:
        errors[enc] = sum(_undecodable(s, enc, first) for s, first in texts)
        if errors[enc] == 0:  # none can do better, and ties go to the earlier one
            break
    best = min(errors, key=lambda enc: errors[enc])  # ties: the earlier, more common one
    high_bytes = sum(_high_bytes(s) for s, _ in texts)
    if errors[best] <= max(2, high_bytes // 100):
        return best
    from charset_normalizer import from_bytes

    guess = from_bytes(texts[0][0]).best()
    if guess is None:
        raise FileFormatError(
            "cannot tell the file's character encoding. Save it as UTF-8 (or Shift_JIS) "
            "and import it again, or pass --encoding.",
            path=path,
        )
    return guess.encoding


_HIGH = bytes(range(0x80, 0x100))


def _high_bytes(sample: bytes) -> int:
    """Bytes >= 0x80 in `sample` (counted in C: a Python loop over 4 MB took a second)."""
    return len(sample) - len(sample.translate(None, _HIGH))


def _undecodable(sample: bytes, encoding: str, first: bool) -> int:
    """Bytes of `sample` that do not decode; a sample cut mid-character is forgiven its edges."""
    text = sample.decode(encoding, errors="surrogateescape")
    bad = [m.start() for m in _UNDECODED.finditer(text)]
    if not first:
        bad = [i for i in bad if i >= 4]
    return sum(1 for i in bad if i < len(text) - 4)


def _py_encoding(encoding: str) -> str:
    return "utf-8-sig" if encoding in ("utf-8", "utf_8") else encoding


def _undecoded_text(value: str) -> str:
    """A value holding undecodable bytes, printable in the rejects file (bytes as \\xNN)."""
    return _UNDECODED.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", value)


# -- CSV ----------------------------------------------------------------------------

def _csv_headers(path: Path, encoding: str, delimiter: str | None) -> tuple[list[str], str]:
    with path.open("r", encoding=_py_encoding(encoding), errors="surrogateescape", newline="") as handle:
        first_line = handle.readline()
        if delimiter is None:  # a .csv or .txt that Excel saved as "Unicode text" is tab-separated
            delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
        handle.seek(0)
        try:
            header = next(csv.reader(handle, delimiter=delimiter), None)
        except csv.Error as exc:
            raise FileFormatError(f"cannot read the header row ({exc}).", path=path) from None
    if not header or not any(h.strip() for h in header):
        raise FileFormatError("the file is empty or has no header row.", path=path)
    if any(_UNDECODED.search(h) for h in header):
        raise FileFormatError(
            f"the header row (row 1) is not {encoding} text. Save the file as UTF-8 or Shift_JIS, "
            "or pass --encoding.",
            path=path,
        )
    # Blank headers (Excel leaves empty cells after the last column) are kept as unnamed
    # columns, so that the rows still have as many fields as the header; they are not read.
    return header, delimiter


class _NotOneLineARow(Exception):
    """A value holds a line break: the exact reader must check for a stray quote."""


def _arrow_csv_batches(source: Source) -> Iterator[pa.RecordBatch]:
    # Roughly 100 bytes a row: a block of this size parses into about batch_rows rows.
    block = max(1 << 20, min(source.batch_rows * 100, 256 << 20))
    names = source.names
    reader = pa_csv.open_csv(
        source.path,
        read_options=pa_csv.ReadOptions(
            encoding=source.encoding or "utf-8", block_size=block, column_names=names, skip_rows=1
        ),
        parse_options=pa_csv.ParseOptions(delimiter=source.delimiter),
        convert_options=pa_csv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=True
        ),
    )
    next_row = 2
    for batch in reader:
        for column in batch.columns:
            # A quoted value across lines is legal CSV, but also what a stray quote looks like.
            if _may_hold_line_breaks(column) and (pc.any(pc.match_substring(column, "\n")).as_py()
                                                  or pc.any(pc.match_substring(column, "\r")).as_py()):
                raise _NotOneLineARow
        rows = pa.array(range(next_row, next_row + batch.num_rows), pa.int64())
        next_row += batch.num_rows
        yield batch.append_column(ROW, rows)


def _may_hold_line_breaks(column: pa.Array) -> bool:
    """False when no byte of the column's text is a line break (one search of its data buffer,
    thirty times faster than searching value by value; a hit is checked value by value)."""
    data = column.buffers()[2] if pa.types.is_string(column.type) else None
    if data is None:
        return column.null_count < len(column) and not pa.types.is_string(column.type)
    raw = data.to_pybytes()
    return b"\n" in raw or b"\r" in raw


def _python_csv_batches(source: Source, skip_records: int) -> Iterator[pa.RecordBatch]:
    """The exact reader: every record checked, row numbers kept, the rest of the file still read.

    A record whose quoted value holds lines that are themselves rows of this file, or
    that runs to the end of the file, is a stray quote: each line it swallowed is
    rejected under its own row number, naming the row and column the quote opened in.
    """
    names = source.names
    width = len(names)
    encoding = source.encoding or "utf-8"
    columns: list[list[str | None]] = [[] for _ in range(width)]
    rows: list[int] = []
    with source.path.open("r", encoding=_py_encoding(encoding), errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=source.delimiter, strict=True)
        next(reader)
        row = 1  # the spreadsheet row of the last record read
        record_index = -1
        while True:
            first_line = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                record_index += 1
                lines = max(reader.line_num - first_line + 1, 1)
                if record_index >= skip_records:
                    source.problems.extend(_swallowed(row + 1, lines, None, _quote_reason(exc, row + 1)))
                row += lines
                continue
            record_index += 1
            if record_index < skip_records:  # read by the fast reader already: one line a row
                row += 1
                continue
            lines = reader.line_num - first_line + 1
            stray = _stray_quote_column(record, width, source.delimiter) if lines > 1 else None
            if stray is not None:
                column = source.headers[stray] if stray < len(source.headers) else None
                reason = (f"stray quote: a quote (\") opened in column {column or stray + 1} of row {row + 1} "
                          f"runs over {lines} lines that look like rows; close or remove it")
                pieces = record[stray].splitlines()  # each swallowed row's text, kept for the user
                source.problems.extend(
                    Problem(p.row, column, _undecoded_text(pieces[i]) if i < len(pieces) else None, p.reason)
                    for i, p in enumerate(_swallowed(row + 1, lines, column, reason))
                )
                row += lines
                continue
            row += 1
            blank_tail = not any(v.strip() for v in record[width:])  # Excel's empty cells after the last column
            if len(record) < width or not blank_tail:
                if any(v.strip() for v in record):
                    source.problems.append(Problem(
                        row, None, _undecoded_text(source.delimiter.join(record)),
                        f"wrong number of fields ({len(record)} where the header has {width})",
                    ))
                continue
            undecoded = [i for i, v in enumerate(record[:width]) if _UNDECODED.search(v)]
            if undecoded:
                for i in undecoded:
                    source.problems.append(Problem(
                        row, source.headers[i], _undecoded_text(record[i]),
                        f"undecodable bytes: not {encoding} text (the file is read as {encoding})",
                    ))
                continue
            for values, value in zip(columns, record, strict=False):
                values.append(value if value != "" else None)
            rows.append(row)
            if len(rows) >= source.batch_rows:
                yield _text_batch(names, columns, rows)
                columns = [[] for _ in range(width)]
                rows = []
    if rows:
        yield _text_batch(names, columns, rows)


def _stray_quote_column(record: list[str], width: int, delimiter: str) -> int | None:
    """The field whose line breaks hide whole rows of the file (a stray quote), if any."""
    for index, value in enumerate(record):
        if "\n" not in value and "\r" not in value:
            continue
        for line in value.splitlines()[1:]:
            if line.count(delimiter) >= max(width - 1, 1):
                return index
    return None


def _quote_reason(exc: csv.Error, row: int) -> str:
    if "unexpected end of data" in str(exc):
        return f"unclosed quote: a quote (\") opened in row {row} is never closed; close or remove it"
    return f"quote inside a value: row {row} ({exc}); quote the whole value or remove the quote"


def _swallowed(first_row: int, lines: int, column: str | None, reason: str) -> list[Problem]:
    return [Problem(first_row + i, column, None, reason) for i in range(lines)]


def _text_batch(names: list[str], columns: list[list], rows: list[int]) -> pa.RecordBatch:
    arrays = [pa.array(values, pa.string()) for values in columns]
    return pa.RecordBatch.from_arrays([*arrays, pa.array(rows, pa.int64())], [*names, ROW])


# -- Excel --------------------------------------------------------------------------

def _open_workbook(path: Path):
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise FileFormatError(f"not a readable Excel workbook ({exc}).", path=path) from None


def _xlsx_sheet_names(path: Path) -> list[str]:
    book = _open_workbook(path)
    try:
        return list(book.sheetnames)
    finally:
        book.close()


def _xlsx_headers(path: Path, sheet: str) -> list[str]:
    book = _open_workbook(path)
    try:
        first = next(book[sheet].iter_rows(max_row=1, values_only=True), None)
    finally:
        book.close()
    headers = [str(v).strip() if v is not None else "" for v in (first or ())]
    while headers and headers[-1] == "":
        headers.pop()
    if not headers:
        raise FileFormatError(f"the sheet {sheet!r} has no header row.", path=path)
    return headers


def _xlsx_batches(path: Path, sheet: str | None, names: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    book = _open_workbook(path)
    width = len(names)
    try:
        columns: list[list[str | None]] = [[] for _ in range(width)]
        rows: list[int] = []
        records = book[sheet or book.sheetnames[0]].iter_rows(min_row=2, values_only=True)
        for row_number, record in enumerate(records, 2):
            cells = [_cell_text(v) for v in record[:width]]
            if not any(cells):
                continue  # Excel keeps formatted but empty rows; they are not data
            cells += [None] * (width - len(cells))
            for values, value in zip(columns, cells, strict=True):
                values.append(value)
            rows.append(row_number)
            if len(rows) >= batch_rows:
                yield _text_batch(names, columns, rows)
                columns = [[] for _ in range(width)]
                rows = []
        if rows:
            yield _text_batch(names, columns, rows)
    finally:
        book.close()


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text.strip() else None


# -- Parquet ------------------------------------------------------------------------

def _readable_type(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _readable_type(kind.value_type)
    return not (pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
                or pa.types.is_fixed_size_binary(kind))


def _parquet_batches(path: Path, names: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    next_row = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=names):
        arrays = [_as_text(column) for column in batch.columns]
        rows = pa.array(range(next_row, next_row + batch.num_rows), pa.int64())
        next_row += batch.num_rows
        yield pa.RecordBatch.from_arrays([*arrays, rows], [*batch.schema.names, ROW])


def _as_text(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _as_text(column.cast(kind.value_type))
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            # Keep the instant: written with its offset, read back by the date parser.
            return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")
        return pc.strftime(column, format="%Y-%m-%d %H:%M:%S")
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false")
    return column.cast(pa.string())


def file_size(path: Path) -> int:
    return os.stat(path).st_size
