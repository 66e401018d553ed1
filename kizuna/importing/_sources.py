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

The header is the first row that is not blank, unless the import finds it further
down (a title line and a blank line above it, as Japanese exports often have: see
`Source.header_candidates`) or is told (``header_row``); rows above it are not data.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
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
# How far down a file the header is looked for, when it is not on the first row.
HEADER_SEARCH_ROWS = 20


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
    header_row: int = 1  # the row the headers are on (rows above it are not read)
    head: list[list[str]] = field(default_factory=list)  # csv, xlsx: the first rows, to find the header in
    visible: tuple[str, ...] = ()  # xlsx: the sheets to look in, the active one first (hidden ones are not)
    used: set[str] | None = None  # batch columns the import reads (None: all)

    @property
    def names(self) -> list[str]:
        """Batch column names: the header, or #N for a blank or repeated one."""
        return _unique_names(self.headers)

    def with_sheet(self, sheet: str, header_row: int | None = None) -> Source:
        """The same workbook, reading another sheet."""
        head = _xlsx_head(self.path, sheet, _head_rows(header_row))
        row = header_row or _first_filled(head)
        return replace(self, sheet=sheet, head=head, header_row=row,
                       headers=_header_of(self.path, "xlsx", head, row, None, given=header_row is not None,
                                          sheet=sheet),
                       problems=[])

    def with_header_row(self, row: int) -> Source:
        """The same file, its header on `row` (one of `header_candidates`)."""
        return replace(self, header_row=row, problems=[],
                       headers=_header_of(self.path, self.format, self.head, row, self.encoding, given=True,
                                          sheet=self.sheet))

    def header_candidates(self) -> list[int]:
        """Rows below the header that could hold it instead (not blank, readable text)."""
        return [number for number, cells in enumerate(self.head, 1)
                if number > self.header_row and any(c.strip() for c in cells)
                and not any(_UNDECODED.search(c) for c in cells)]

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
            yield from _xlsx_batches(self)
        else:
            yield from _parquet_batches(self.path, self.names, self.batch_rows)

    def _csv_batches(self) -> Iterator[pa.RecordBatch]:
        emitted = 0
        try:
            for batch in _arrow_csv_batches(self):
                emitted += batch.num_rows
                yield batch
            return
        except (pa.ArrowInvalid, UnicodeDecodeError, _NotOneLineARow, _TooLarge):
            pass  # the exact reader takes over where the fast one stopped
        yield from _python_csv_batches(self, skip_records=emitted)


def open_source(
    path: Path, batch_rows: int = 200_000, encoding: str | None = None, sheet: str | None = None,
    header_row: int | None = None,
) -> Source:
    """Open a file for import, detecting its format from the suffix and its encoding.

    `header_row` (1-based) is the row the headers are on; None: the first row that is not
    blank (the importer may find it further down, see `Source.header_candidates`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError.keyed("error.file_not_found", path=path)
    if header_row is not None and header_row < 1:
        raise FileFormatError.keyed("error.header_row_counted_from_1", path=path, row=header_row)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        encoding = _known_encoding(encoding, path) if encoding else detect_encoding(path)
        delimiter = "\t" if suffix == ".tsv" else None
        head, delimiter = _csv_head(path, encoding, delimiter, _head_rows(header_row))
        row = header_row or _first_filled(head)
        headers = _header_of(path, "csv", head, row, encoding, given=header_row is not None)
        return Source(path, "csv", encoding, headers, batch_rows, delimiter=delimiter, header_row=row, head=head)
    if suffix in (".xlsx", ".xlsm"):
        sheets, visible = _xlsx_sheet_names(path)
        if sheet is not None and sheet not in sheets:
            raise FileFormatError.keyed("error.no_such_sheet", path=path, sheet=repr(sheet), sheets=", ".join(sheets))
        source = Source(path, "xlsx", None, [], batch_rows, sheets=tuple(sheets), visible=tuple(visible))
        if sheet is not None:
            return source.with_sheet(sheet, header_row)
        first_error = None
        for name in visible or sheets:  # the first that has a header row: an empty sheet may come first
            try:
                return source.with_sheet(name, header_row)
            except FileFormatError as exc:
                first_error = first_error or exc
        raise first_error
    if header_row not in (None, 1):
        raise FileFormatError.keyed("error.header_row_parquet", path=path)
    if suffix in (".parquet", ".pq"):
        try:
            schema = pq.ParquetFile(path).schema_arrow
        except Exception as exc:
            raise FileFormatError.keyed("error.parquet_unreadable", path=path, problem=str(exc)) from None
        readable = [f.name for f in schema if _readable_type(f.type)]
        unreadable = [f"{f.name} ({f.type})" for f in schema if not _readable_type(f.type)]
        return Source(path, "parquet", None, readable, batch_rows, unreadable=unreadable)
    raise FileFormatError.keyed(
        "error.unknown_file_type", suffix=suffix or "(none)",
        path=path,
    )


def _known_encoding(encoding: str, path: Path) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise FileFormatError.keyed("error.unknown_encoding", path=path, encoding=repr(encoding)) from None


def _unique_names(headers: list[str]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for index, header in enumerate(headers, 1):
        name = header if header.strip() and header not in seen else f"#{index}"
        seen.add(header)
        names.append(name)
    return names


def _head_rows(header_row: int | None) -> int:
    return max(HEADER_SEARCH_ROWS, header_row or 1)


def _first_filled(head: list[list[str]]) -> int:
    """The first row that is not blank (1 for an empty file: the error names row 1)."""
    return next((number for number, cells in enumerate(head, 1) if any(c.strip() for c in cells)), 1)


def _header_of(path: Path, format: str, head: list[list[str]], row: int, encoding: str | None, *,
               given: bool, sheet: str | None = None) -> list[str]:
    """The headers on `row`, checked: a blank row or one of undecodable bytes stops the import."""
    in_sheet = {} if sheet is None else {"sheet": repr(sheet)}
    if given and row > len(head):
        raise FileFormatError.keyed("error.header_row_missing" + ("_in_sheet" if in_sheet else ""), path=path,
                                    row=row, rows=len(head), **in_sheet)
    headers = list(head[row - 1]) if row <= len(head) else []
    if format == "xlsx":
        while headers and headers[-1] == "":
            headers.pop()
    if not any(h.strip() for h in headers):
        if given:
            raise FileFormatError.keyed("error.header_row_blank" + ("_in_sheet" if in_sheet else ""), path=path,
                                        row=row, **in_sheet)
        if format == "xlsx":
            raise FileFormatError.keyed("error.sheet_no_header", path=path, sheet=repr(sheet))
        raise FileFormatError.keyed("error.empty_file", path=path)
    if any(_UNDECODED.search(h) for h in headers):
        raise FileFormatError.keyed(
            "error.header_not_text", row=row, encoding=encoding,
            path=path,
        )
    # Blank headers (Excel leaves empty cells after the last column) are kept as unnamed
    # columns, so that the rows still have as many fields as the header; they are not read.
    return headers


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
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        # A UTF-8 BOM is usually UTF-8 (Arrow drops it itself), but some tools write one before
        # Shift_JIS text: the text after it decides, UTF-8 first.
        start = 3 if head.startswith(codecs.BOM_UTF8) else 0
        samples = []
        for offset in (start, max(start, size // 4), max(start, size // 2), max(start, size - _SAMPLE)):
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
        raise FileFormatError.keyed("error.encoding_undetected", path=path)
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


def _bom_length(path: Path) -> int:
    """3 when the file starts with a UTF-8 BOM: some tools write one before Shift_JIS text too."""
    with path.open("rb") as handle:
        return 3 if handle.read(3) == codecs.BOM_UTF8 else 0


def _open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    """The file as text for the csv module, a UTF-8 BOM skipped whatever the encoding."""
    raw = path.open("rb")
    raw.seek(_bom_length(path))
    return io.TextIOWrapper(raw, encoding=_py_encoding(encoding), errors="surrogateescape", newline="")


def _undecoded_text(value: str) -> str:
    """A value holding undecodable bytes, printable in the rejects file (bytes as \\xNN)."""
    return _UNDECODED.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", value)


# -- CSV ----------------------------------------------------------------------------

def _csv_head(path: Path, encoding: str, delimiter: str | None, rows: int) -> tuple[list[list[str]], str]:
    """The first `rows` records (a blank line is an empty record) and the delimiter."""
    with _open_text(path, encoding) as handle:
        if delimiter is None:  # a .csv or .txt that Excel saved as "Unicode text" is tab-separated
            delimiter = _delimiter_of(list(itertools.islice(handle, rows)))
    head: list[list[str]] = []
    with _open_text(path, encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            head.extend(itertools.islice(reader, rows))
        except csv.Error as exc:
            if not head:
                raise FileFormatError.keyed("error.header_unreadable", path=path, problem=str(exc)) from None
            # a row the exact reader will reject: the header is looked for above it
    return head, delimiter


def _delimiter_of(lines: list[str]) -> str:
    """Tab or comma, from the first line holding either (a title line above the header holds neither)."""
    for line in lines:
        tabs, commas = line.count("\t"), line.count(",")
        if tabs or commas:
            return "\t" if tabs > commas else ","
    return ","


class _NotOneLineARow(Exception):
    """A value holds a line break: the exact reader must check for a stray quote."""


class _TooLarge(Exception):
    """A value is longer than the exact reader reads: it rejects that row, so the fast one must not
    store it (both readers give the same result for a file)."""


def _arrow_csv_batches(source: Source) -> Iterator[pa.RecordBatch]:
    # Roughly 100 bytes a row: a block of this size parses into about batch_rows rows.
    block = max(1 << 20, min(source.batch_rows * 100, 256 << 20))
    names = source.names
    encoding = source.encoding or "utf-8"
    # Arrow drops a UTF-8 BOM itself, but decodes one before Shift_JIS text as Shift_JIS
    bom = 0 if encoding in ("utf-8", "utf_8") else _bom_length(source.path)
    as_bytes = _split_as_bytes(encoding, source.delimiter)
    with pa.OSFile(str(source.path)) as stream:
        stream.seek(bom)
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(
                encoding="utf-8" if as_bytes else encoding, block_size=block, column_names=names,
                skip_rows=source.header_row,
            ),
            parse_options=pa_csv.ParseOptions(delimiter=source.delimiter),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.binary() if as_bytes else pa.string() for n in names}, strings_can_be_null=True
            ),
        )
        next_row = source.header_row + 1
        limit = csv.field_size_limit()
        for batch in reader:
            if as_bytes:
                batch = _decoded_batch(batch, encoding)
            for column in batch.columns:
                # A quoted value across lines is legal CSV, but also what a stray quote looks like.
                if _may_hold_line_breaks(column) and (pc.any(pc.match_substring(column, "\n")).as_py()
                                                      or pc.any(pc.match_substring(column, "\r")).as_py()):
                    raise _NotOneLineARow
                if _longest(column) > limit:
                    raise _TooLarge
            rows = _row_numbers(next_row, batch.num_rows)
            next_row += batch.num_rows
            yield batch.append_column(ROW, rows)


# Double-byte encodings whose second bytes are never a quote, a line break or a delimiter Arrow's reader
# is given here: a file in one of them splits into the same fields read as bytes as read as text.
_BYTE_SPLIT_ENCODINGS = ("cp932", "shift_jis", "euc_jp")


def _split_as_bytes(encoding: str, delimiter: str) -> bool:
    """Whether the fast reader splits the file into fields as bytes and decodes the fields after
    (`_decoded_batch`): Arrow decodes other encodings in one Python thread ahead of its reader, which
    costs several times the reading itself, while most fields of an export are ASCII or repeat."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return name in _BYTE_SPLIT_ENCODINGS and ord(delimiter) < 0x40


def _decoded_batch(batch: pa.RecordBatch, encoding: str) -> pa.RecordBatch:
    """The batch's byte fields as text: ASCII as it is; a column that repeats its values decoded once
    per distinct value. A byte that does not decode raises UnicodeDecodeError, as Arrow's decoding does."""
    return pa.RecordBatch.from_arrays([_decoded(column, encoding) for column in batch.columns],
                                      names=batch.schema.names)


def _decoded(column: pa.Array, encoding: str) -> pa.Array:
    import numpy as np

    from kizuna.importing._parse import _each_distinct  # the parsers' module: loaded when a file is converted

    data = column.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else None
    if raw is None or not (raw >= 0x80).any():
        return column.cast(pa.string())
    if ((raw == 0x0A) | (raw == 0x0D)).any():  # a value across lines: the exact reader reads the rest
        raise _NotOneLineARow
    return _each_distinct(column, lambda values: _decoded_values(values, encoding))


def _decoded_values(column: pa.Array, encoding: str) -> pa.Array:
    """Every value decoded in one call: joined by line breaks (which no value holds), split again in Arrow."""
    values = column.to_pylist()
    text = b"\n".join(b"" if v is None else v for v in values).decode(encoding)
    split = pc.split_pattern(pa.array([text], pa.large_string()), "\n").flatten().cast(pa.string())
    return pc.if_else(column.is_valid(), split, pa.scalar(None, pa.string())) if column.null_count else split


def _row_numbers(first: int, count: int) -> pa.Array:
    """first, first + 1, … as an int64 array (made in NumPy: not a Python int per row)."""
    import numpy as np

    return pa.array(np.arange(first, first + count, dtype=np.int64))


def _longest(column: pa.Array) -> int:
    """The length of the column's longest value (0 without counting when all its text is short)."""
    data = column.buffers()[2] if pa.types.is_string(column.type) else None
    if data is None or data.size <= csv.field_size_limit():
        return 0
    return pc.max(pc.utf8_length(column)).as_py() or 0


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
    with _open_text(source.path, encoding) as f:
        lines_read = _LastLine(f)
        reader = csv.reader(lines_read, delimiter=source.delimiter, strict=True)
        for _ in range(source.header_row):  # the header and the title rows above it
            next(reader)
        row = source.header_row  # the spreadsheet row of the last record read
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
                    if _FIELD_LIMIT in str(exc):
                        source.problems.append(_too_large(source, row + 1, lines_read.last))
                    else:
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


class _LastLine:
    """The lines of a text file, the last one read kept (to measure a value too large to read)."""

    def __init__(self, handle: io.TextIOWrapper) -> None:
        self._lines = iter(handle)
        self.last = ""

    def __iter__(self) -> _LastLine:
        return self

    def __next__(self) -> str:
        self.last = next(self._lines)
        return self.last


_FIELD_LIMIT = "field larger than field limit"


def _too_large(source: Source, row: int, line: str) -> Problem:
    """A row with a value longer than the csv module reads: which column, and how long it is."""
    limit = csv.field_size_limit()
    index, length = _widest_field(line, source.delimiter)
    column = source.headers[index] if index < len(source.headers) else None
    where = f"column {column}" if column else f"field {index + 1}"
    return Problem(row, column, None,
                   f"value too large: {where} of row {row} holds {length:,} characters, more than the "
                   f"{limit:,} a value may have (the field-size limit); shorten or remove it")


def _widest_field(line: str, delimiter: str) -> tuple[int, int]:
    """(position, length) of the longest field of one CSV line, a quoted delimiter kept in its field."""
    widths: list[int] = []
    width, quoted = 0, False
    for piece in line.rstrip("\r\n").split(delimiter):
        width = width + 1 + len(piece) if quoted else len(piece)
        quoted ^= piece.count('"') % 2 == 1
        if not quoted:
            widths.append(width)
    if quoted:
        widths.append(width)
    index = max(range(len(widths)), key=widths.__getitem__)
    return index, widths[index]


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
        raise FileFormatError.keyed("error.excel_unreadable", path=path, problem=str(exc)) from None


def _xlsx_sheet_names(path: Path) -> tuple[list[str], list[str]]:
    """Every worksheet, and the visible ones to look in: the active sheet first (a hidden sheet is
    usually a lookup table or an old copy, not the list a user sees when opening the file)."""
    book = _open_workbook(path)
    try:
        sheets = list(book.worksheets)
        visible = [ws.title for ws in sheets if ws.sheet_state == "visible"]
        active = book.active
        if active is not None and active.title in visible:
            visible.remove(active.title)
            visible.insert(0, active.title)
        return [ws.title for ws in sheets], visible
    finally:
        book.close()


# A formula cell that the program which wrote the workbook never calculated (openpyxl, many
# exporters): it holds the formula and no saved value, so reading it gives None.
NO_SAVED_VALUE = object()
FORMULA_REASON = ("formula without a saved value: the workbook's formulas have no saved values (it was not "
                  "saved by Excel); open it in Excel and save it, or export the sheet to CSV, and import it again")


def _sheet_rows(book, ws) -> Iterator[tuple[int, list]]:
    """(row number, values) of every row the sheet's XML holds, read to its end.

    openpyxl's read-only sheet stops at the range its <dimension> tag states, which
    tools other than Excel write wrong (``A1``, or a range from an earlier save): all
    rows past it would be lost without a word. Its row parser is used directly
    instead, telling a formula without a saved value (`NO_SAVED_VALUE`) from an
    empty cell. (Private openpyxl names, pinned to the version in constraints.txt.)
    """
    from openpyxl.worksheet._reader import FORMULA_TAG, VALUE_TAG, WorkSheetParser

    class CellParser(WorkSheetParser):
        def parse_cell(self, element):  # noqa: ANN001, ANN202 - openpyxl's signature
            cell = super().parse_cell(element)
            # no <v>, or an empty one where only a text result (t="str") may be empty: openpyxl
            # itself writes <f>…</f><v/>
            if (cell["value"] is None and element.find(FORMULA_TAG) is not None
                    and (element.find(VALUE_TAG) is None or element.get("t") != "str")):
                cell["value"] = NO_SAVED_VALUE
            return cell

    with ws._get_source() as src:
        parser = CellParser(src, ws._shared_strings, data_only=True, epoch=book.epoch,
                            date_formats=book._date_formats, timedelta_formats=book._timedelta_formats)
        for number, cells in parser.parse():
            filled = [c for c in cells if c["value"] is not None]
            values: list = [None] * (max(c["column"] for c in filled) if filled else 0)
            for cell in filled:
                values[cell["column"] - 1] = cell["value"]
            yield number, values


_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\s[^>]*?\bref="([A-Za-z]{1,3})(\d+)(?::([A-Za-z]{1,3})(\d+))?"')
_CHUNK = 1 << 20


def _merged_ranges(ws) -> list[tuple[int, int, int, int]]:
    """(first row, first column, last row, last column) of every merged range of the sheet.

    Read-only mode does not expose merged cells, and a workbook loaded in full keeps every
    cell in memory (gigabytes for a large export). The ranges are listed after the rows
    (<mergeCells>), so the sheet's XML is scanned for them before the rows are read, a
    megabyte at a time: decompression and a byte search, a small part of the cost of
    parsing the rows, and memory bounded by the ranges themselves.
    """
    from openpyxl.utils import column_index_from_string

    ranges = []
    tail = b""
    with ws._get_source() as src:
        while chunk := src.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(b"<")  # a tag cut at the chunk's end is searched with the next chunk
            cut = cut if cut > 0 else len(data)
            if b"mergeCell" in data[:cut]:
                for first_col, first_row, last_col, last_row in _MERGE.findall(data, 0, cut):
                    c1, r1 = column_index_from_string(first_col.decode()), int(first_row)
                    c2 = column_index_from_string(last_col.decode()) if last_col else c1
                    r2 = int(last_row) if last_row else r1
                    ranges.append((r1, c1, r2, c2))
            tail = data[cut:]
    return sorted(ranges)


def _xlsx_head(path: Path, sheet: str, rows: int) -> list[list[str]]:
    """The text of the sheet's first `rows` rows (a missing row is an empty one)."""
    book = _open_workbook(path)
    head: list[list[str]] = []
    try:
        for number, values in _sheet_rows(book, book[sheet]):
            if number > rows:
                break
            head.extend([] for _ in range(len(head), number - 1))
            head.append(["" if v is None or v is NO_SAVED_VALUE else str(v).strip() for v in values])
    finally:
        book.close()
    return head


def _xlsx_batches(source: Source) -> Iterator[pa.RecordBatch]:
    """Rows below the header; a merged cell's value fills every cell of its range (a customer id
    merged over an order's two lines is the id of both), a formula without a value is a reject."""
    names = source.names
    width = len(names)
    checked = [source.used is None or name in source.used for name in names]
    book = _open_workbook(source.path)
    try:
        ws = book[source.sheet or book.sheetnames[0]]
        merges = _merged_ranges(ws)
        next_merge = 0
        filling: list[tuple[int, int, int, object]] = []  # (last row, first column, last column, value)
        columns: list[list[str | None]] = [[] for _ in range(width)]
        rows: list[int] = []
        for row_number, values in _sheet_rows(book, ws):
            while next_merge < len(merges) and merges[next_merge][0] <= row_number:
                r1, c1, r2, c2 = merges[next_merge]
                next_merge += 1
                value = values[c1 - 1] if r1 == row_number and c1 <= len(values) else None
                if value is not None and value is not NO_SAVED_VALUE:
                    filling.append((r2, c1, c2, value))
            if filling:
                filling = [f for f in filling if f[0] >= row_number]
            if row_number <= source.header_row:
                continue
            cells = values[:width]
            if not any(v is NO_SAVED_VALUE or _cell_text(v) for v in cells):
                continue  # Excel keeps formatted but empty rows (and rows only a merge covers); not data
            cells += [None] * (width - len(cells))
            for _, c1, c2, value in filling:
                for column in range(c1 - 1, min(c2, width)):
                    if cells[column] is None:
                        cells[column] = value
            missing = [i for i, v in enumerate(cells) if v is NO_SAVED_VALUE and checked[i]]
            if missing:
                source.problems.extend(Problem(row_number, source.headers[i], None, FORMULA_REASON)
                                       for i in missing)
                continue
            for values_of, value in zip(columns, cells, strict=True):
                values_of.append(None if value is NO_SAVED_VALUE else _cell_text(value))
            rows.append(row_number)
            if len(rows) >= source.batch_rows:
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
        rows = _row_numbers(next_row, batch.num_rows)
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
