"""Reading CSV, Excel and Parquet files as batches of text columns with row numbers.

Every source yields `pyarrow.RecordBatch`es whose columns are all strings (empty
cells are null) plus ``_row``: the row number as a spreadsheet shows it (the
header is row 1), so that a reject can point at the cell a user must fix.
Batches are bounded, so memory stays flat however large the file.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from kizuna._errors import FileFormatError

__all__ = ["Source", "detect_encoding", "open_source"]

ROW = "_row"
_SAMPLE = 1 << 20


@dataclass
class Source:
    path: Path
    format: str  # csv, xlsx, parquet
    encoding: str | None
    headers: list[str]
    batch_rows: int
    # rows that cannot be split into the header's columns: (row, text)
    malformed: list[tuple[int, str]] = field(default_factory=list)

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
            yield from _xlsx_batches(self.path, self.headers, self.batch_rows)
        else:
            yield from _parquet_batches(self.path, self.batch_rows)

    def _csv_batches(self) -> Iterator[pa.RecordBatch]:
        # Fast path: Arrow's streaming reader. A ragged row stops it; then the file is read
        # again by Python's csv module, which knows every row's number (slower, but exact).
        emitted = 0
        try:
            for batch in _arrow_csv_batches(self.path, self.encoding, self.headers, self.batch_rows):
                emitted += batch.num_rows
                yield batch
            return
        except pa.ArrowInvalid as exc:
            if "columns, got" not in str(exc):
                raise FileFormatError(f"cannot parse as CSV ({exc}).", path=self.path) from None
        except UnicodeDecodeError as exc:
            raise FileFormatError(
                f"the file is not all {self.encoding} ({exc.reason} at byte {exc.start} of a "
                "block). Save it in one encoding (UTF-8 or Shift_JIS) and import it again.",
                path=self.path,
            ) from None
        yield from _python_csv_batches(self, skip_rows=emitted)


def open_source(path: Path, batch_rows: int = 200_000, encoding: str | None = None) -> Source:
    """Open a file for import, detecting its format from the suffix and its encoding."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError("file not found. Check the path.", path=path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        encoding = encoding or detect_encoding(path)
        headers = _csv_headers(path, encoding)
        return Source(path, "csv", encoding, headers, batch_rows)
    if suffix in (".xlsx", ".xlsm"):
        return Source(path, "xlsx", None, _xlsx_headers(path), batch_rows)
    if suffix in (".parquet", ".pq"):
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except Exception as exc:
            raise FileFormatError(f"not a readable Parquet file ({exc}).", path=path) from None
        return Source(path, "parquet", None, list(names), batch_rows)
    raise FileFormatError(
        f"unknown file type {suffix or '(none)'}; kizuna imports .csv, .xlsx and .parquet.",
        path=path,
    )


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or Shift_JIS/CP932, told from samples of the file.

    Samples are taken at the start and at three places further in, so that a file
    whose first megabyte is plain ASCII is still recognised.
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
    texts = [s for s in samples if any(b >= 0x80 for b in s)]
    if not texts:
        return "utf-8"
    for candidate in ("utf-8", "cp932"):
        if all(_decodes(s, candidate, first=(s is samples[0])) for s in texts):
            return candidate
    from charset_normalizer import from_bytes

    best = from_bytes(texts[0]).best()
    if best is None:
        raise FileFormatError(
            "cannot tell the file's character encoding. Save it as UTF-8 (or Shift_JIS) "
            "and import it again, or pass --encoding.",
            path=path,
        )
    return best.encoding


def _decodes(sample: bytes, encoding: str, first: bool) -> bool:
    # A sample may start and end in the middle of a character: forgive the edges.
    decoder = codecs.getincrementaldecoder(encoding)()
    body = sample if first else sample[4:]
    try:
        decoder.decode(body, final=False)
    except UnicodeDecodeError as exc:
        return not first and exc.start < 4
    return True


def _csv_headers(path: Path, encoding: str) -> list[str]:
    with path.open("r", encoding=_py_encoding(encoding), newline="") as handle:
        try:
            header = next(csv.reader(handle), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise FileFormatError(f"cannot read the header row ({exc}).", path=path) from None
    if not header or not any(h.strip() for h in header):
        raise FileFormatError("the file is empty or has no header row.", path=path)
    _check_unique(header, path)
    return header


def _check_unique(headers: list[str], path: Path) -> None:
    seen: set[str] = set()
    for header in headers:
        if header in seen:
            raise FileFormatError(
                f"the header {header!r} appears twice; rename one of the columns.", path=path
            )
        seen.add(header)


def _py_encoding(encoding: str) -> str:
    return "utf-8-sig" if encoding == "utf-8" else encoding


def _arrow_csv_batches(
    path: Path, encoding: str, headers: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    # Roughly 100 bytes a row: a block of this size parses into about batch_rows rows.
    block = max(1 << 20, min(batch_rows * 100, 256 << 20))
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(encoding=encoding, block_size=block),
        convert_options=pa_csv.ConvertOptions(
            column_types={h: pa.string() for h in headers}, strings_can_be_null=True
        ),
    )
    next_row = 2
    for batch in reader:
        rows = pa.array(range(next_row, next_row + batch.num_rows), pa.int64())
        next_row += batch.num_rows
        yield batch.append_column(ROW, rows)


def _python_csv_batches(source: Source, skip_rows: int) -> Iterator[pa.RecordBatch]:
    width = len(source.headers)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    rows: list[int] = []
    with source.path.open("r", encoding=_py_encoding(source.encoding or "utf-8"), newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for index, record in enumerate(reader):
            if index < skip_rows:
                continue
            row = reader.line_num
            if len(record) != width:
                if any(v.strip() for v in record):
                    text = ",".join(record)
                    source.malformed.append(
                        (row, f"{len(record)} fields where the header has {width}: {text[:80]}")
                    )
                continue
            for values, value in zip(columns, record, strict=True):
                values.append(value if value != "" else None)
            rows.append(row)
            if len(rows) >= source.batch_rows:
                yield _text_batch(source.headers, columns, rows)
                columns = [[] for _ in range(width)]
                rows = []
    if rows:
        yield _text_batch(source.headers, columns, rows)


def _text_batch(headers: list[str], columns: list[list], rows: list[int]) -> pa.RecordBatch:
    arrays = [pa.array(values, pa.string()) for values in columns]
    return pa.RecordBatch.from_arrays([*arrays, pa.array(rows, pa.int64())], [*headers, ROW])


def _open_workbook(path: Path):
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise FileFormatError(f"not a readable Excel workbook ({exc}).", path=path) from None


def _xlsx_headers(path: Path) -> list[str]:
    book = _open_workbook(path)
    try:
        first = next(book.worksheets[0].iter_rows(max_row=1, values_only=True), None)
    finally:
        book.close()
    headers = [str(v).strip() if v is not None else "" for v in (first or ())]
    while headers and headers[-1] == "":
        headers.pop()
    if not headers:
        raise FileFormatError("the first sheet has no header row.", path=path)
    _check_unique(headers, path)
    return headers


def _xlsx_batches(path: Path, headers: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    book = _open_workbook(path)
    width = len(headers)
    try:
        columns: list[list[str | None]] = [[] for _ in range(width)]
        rows: list[int] = []
        sheet = book.worksheets[0]
        for row_number, record in enumerate(sheet.iter_rows(min_row=2, values_only=True), 2):
            cells = [_cell_text(v) for v in record[:width]]
            if not any(cells):
                continue  # Excel keeps formatted but empty rows; they are not data
            cells += [None] * (width - len(cells))
            for values, value in zip(columns, cells, strict=True):
                values.append(value)
            rows.append(row_number)
            if len(rows) >= batch_rows:
                yield _text_batch(headers, columns, rows)
                columns = [[] for _ in range(width)]
                rows = []
        if rows:
            yield _text_batch(headers, columns, rows)
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
    text = str(value).strip()
    return text or None


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    next_row = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        arrays = [_as_text(column) for column in batch.columns]
        rows = pa.array(range(next_row, next_row + batch.num_rows), pa.int64())
        next_row += batch.num_rows
        yield pa.RecordBatch.from_arrays([*arrays, rows], [*batch.schema.names, ROW])


def _as_text(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            # Keep the instant: written with its offset, read back by the date parser.
            return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")
        return pc.strftime(column, format="%Y-%m-%d %H:%M:%S")
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string())
    return column.cast(pa.string())


def file_size(path: Path) -> int:
    return os.stat(path).st_size


