"""Importing one file into the store: read, check, stage, reconcile, apply.

1. The file is read in bounded batches (`_sources`), each converted and checked
   row by row in Arrow (`_convert`); good rows stream into a staging table in the
   store, problems stream into the rejects file.
2. Checks that need the whole file or the store run there, as set operations:
   the same key twice with different data, references to unknown customers,
   orders or products.
3. The surviving rows are compared with the store on the natural key: new rows
   are added, changed rows replaced (an order now cancelled is updated, not
   duplicated), identical rows left alone, so importing a file twice changes
   nothing. Columns the file does not have keep their stored values.

The target table changes in one step at the end; a failure before it leaves the
store as it was.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ibis
import pyarrow as pa

from kizuna._errors import FileFormatError, MissingColumnsError
from kizuna._sheets import CsvSheet
from kizuna.importing._convert import REJECT_SCHEMA, convert_batch
from kizuna.importing._mapping import ColumnMapping, resolve_headers
from kizuna.importing._sources import ROW, Source, open_source
from kizuna.store import Store, TableSpec, table_for_kind

__all__ = ["ImportSummary", "import_file"]

STAGE = "_kizuna_stage"
VALID = "_kizuna_valid"
CHANGES = "_kizuna_changes"


@dataclass
class ImportSummary:
    """What one import did. `accepted` rows are all stored (added, updated or unchanged)."""

    kind: str
    path: Path
    format: str
    encoding: str | None
    sheet: str | None = None  # xlsx: the sheet read
    rows_read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # repeated rows identical to an earlier row of the same file
    rejected: int = 0
    rejects_path: Path | None = None
    ignored_columns: list[str] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return self.added + self.updated + self.unchanged

    def to_dict(self) -> dict[str, object]:
        """Plain values, for --format json and scripts."""
        return {
            "kind": self.kind, "path": str(self.path), "format": self.format,
            "encoding": self.encoding, "sheet": self.sheet, "rows_read": self.rows_read, "accepted": self.accepted,
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
            "duplicates": self.duplicates, "rejected": self.rejected,
            "rejects_path": str(self.rejects_path) if self.rejects_path else None,
            "ignored_columns": self.ignored_columns, "reasons": dict(self.reasons),
        }


class _RejectsWriter:
    """Streams rejects to a CSV that Excel opens correctly (UTF-8 with BOM).

    Written under a temporary name and renamed when the import ends, so that a rejects
    file under its real name is always complete.
    """

    def __init__(self, path: Path, source: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.source = str(source)
        self.rows: set[int] = set()
        self.reasons: Counter = Counter()
        self._sheet: CsvSheet | None = None

    def write(self, rejects: pa.Table) -> None:
        if rejects.num_rows == 0:
            return
        if self._sheet is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a value a spreadsheet would run (a name "=HYPERLINK(…)") is written as text
            self._sheet = CsvSheet(self.partial, ["file", "row", "column", "value", "reason"], shown_as=self.path)
        data = rejects.to_pydict()
        for row, column, value, reason in zip(
            data["row"], data["column"], data["value"], data["reason"], strict=True
        ):
            self._sheet.writerow([self.source, row, column, value, reason])
            self.rows.add(row)
            self.reasons[_reason_family(reason)] += 1

    def close(self) -> Path | None:
        if self._sheet is None:
            return None
        self._sheet.close()
        os.replace(self.partial, self.path)
        return self.path


def _reason_family(reason: str) -> str:
    # "not a date (write e.g. …)", "stray quote: … row 12 …": the part before " (" or ": " names
    # the problem (the rest holds row numbers, so each row would be a family of its own)
    return re.split(r" \(|: ", reason, maxsplit=1)[0]


def import_file(
    store: Store,
    kind: str,
    path: Path | str,
    *,
    timezone: str = "Asia/Tokyo",
    mapping: ColumnMapping | None = None,
    rejects_dir: Path | str = "rejects",
    encoding: str | None = None,
    sheet: str | None = None,
    batch_rows: int = 200_000,
    on_progress: Callable[[int, int | None], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> ImportSummary:
    """Import `path` as `kind` (customers, orders, order-items, products, nps, support, events).

    `on_progress(rows_done, rows_expected)` is called after every batch; `on_phase("reconcile")`
    once the file is read, when duplicates, references and the stored rows are compared (on a
    large file, a good part of the time). An Excel workbook is read from `sheet`, else from
    its first sheet that has the columns `kind` needs.
    """
    spec = table_for_kind(kind)
    path = Path(path)
    mapping = mapping or ColumnMapping()
    mapping.check(spec)
    source = open_source(path, batch_rows=batch_rows, encoding=encoding, sheet=sheet)
    source, headers, ignored = _choose_columns(source, spec, mapping, path, sheet_given=sheet is not None)
    present = list(dict.fromkeys(headers.values()))
    summary = ImportSummary(kind, path, source.format, source.encoding, sheet=source.sheet,
                            ignored_columns=ignored)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    rejects = _RejectsWriter(Path(rejects_dir) / f"{spec.kind}-{stamp}.csv", path)
    expected = source.estimated_rows()

    stage_schema = ibis.schema({**dict(spec.schema.items()), ROW: "int64"})
    for name in (VALID, CHANGES):  # left behind by an import that was killed
        store.drop(name)
    store.create(STAGE, schema=stage_schema)
    try:
        for batch in source.batches():
            result = convert_batch(batch, spec, headers, mapping, timezone)
            summary.rows_read += batch.num_rows
            if result.accepted.num_rows:
                store.append(STAGE, result.accepted)
            rejects.write(result.rejects)
            if on_progress:
                on_progress(summary.rows_read, expected)
        if source.problems:
            summary.rows_read += len({p.row for p in source.problems})
            rejects.write(pa.table(
                {"row": [p.row for p in source.problems], "column": [p.column for p in source.problems],
                 "value": [p.value for p in source.problems], "reason": [p.reason for p in source.problems]},
                schema=REJECT_SCHEMA,
            ))
        if on_phase:
            on_phase("reconcile")
        _reconcile(store, spec, present, rejects, summary)
    finally:
        for name in (STAGE, VALID, CHANGES):
            store.drop(name)
        summary.rejects_path = rejects.close()
    summary.rejected = len(rejects.rows)
    summary.reasons = rejects.reasons
    return summary


def _choose_columns(
    source: Source, spec: TableSpec, mapping: ColumnMapping, path: Path, *, sheet_given: bool
) -> tuple[Source, dict[str, str], list[str]]:
    """The file's columns mapped onto `spec`; in a workbook, the first sheet that has them."""
    candidates = [source] if sheet_given or len(source.sheets) < 2 else [
        source if name == source.sheet else source.with_sheet(name) for name in source.sheets
    ]
    first_error: MissingColumnsError | None = None
    for candidate in candidates:
        try:
            headers, ignored = resolve_headers(
                candidate.headers, candidate.names, spec, mapping, path, candidate.unreadable
            )
            return candidate, headers, ignored
        except MissingColumnsError as exc:
            first_error = first_error or exc
        except FileFormatError:
            continue  # an empty sheet beside the data
    assert first_error is not None
    if len(candidates) > 1:
        raise MissingColumnsError(path, spec.kind, first_error.missing, None, sheets=source.sheets)
    raise first_error


def _reconcile(
    store: Store, spec: TableSpec, present: list[str], rejects: _RejectsWriter,
    summary: ImportSummary,
) -> None:
    key = list(spec.key)
    data_cols = [c for c in present if c not in key]
    stage = store.table(STAGE)

    kept = _drop_duplicates(store, stage, key, data_cols, rejects, summary)
    for column, table in spec.references:
        known = store.table(table).select(column).distinct()
        unknown = kept.anti_join(known, column)
        _reject(rejects, unknown, column, f"unknown {column} (not in {table}: import {table} first)")
        kept = kept.semi_join(known, column)
    valid = store.create(VALID, kept)

    target = store.table(spec.name)
    stored = target.mutate(_stored=ibis.literal(True))
    joined = valid.left_join(stored, key, rname="{name}__stored")
    is_new = joined["_stored"].isnull()
    same = ibis.literal(True)
    for column in data_cols:
        same = same & joined[column].identical_to(joined[f"{column}__stored"])
    counts = joined.aggregate(
        added=is_new.sum(), unchanged=(~is_new & same).sum(), total=joined.count()
    ).to_pyarrow().to_pylist()[0]
    summary.added = int(counts["added"] or 0)
    summary.unchanged = int(counts["unchanged"] or 0)
    summary.updated = int(counts["total"]) - summary.added - summary.unchanged
    if summary.added + summary.updated == 0:
        return
    # Columns the file lacks keep what the store has; the file's columns win.
    changed = joined.filter(is_new | ~same).select(
        *[joined[c] if c in present else joined[f"{c}__stored"].name(c)
          for c in spec.column_names]
    )
    if summary.updated == 0:
        store.append(spec.name, changed)
    else:
        store.create(CHANGES, changed)
        store.replace_rows(spec.name, CHANGES, key)


def _drop_duplicates(
    store: Store, stage: ibis.Table, key: list[str], data_cols: list[str],
    rejects: _RejectsWriter, summary: ImportSummary,
) -> ibis.Table:
    firsts = stage.group_by(key).aggregate(_first=stage[ROW].min())
    if int(firsts.count().to_pyarrow().as_py()) == int(stage.count().to_pyarrow().as_py()):
        return stage
    first_data = stage.select(
        _first_row=stage[ROW], **{f"{c}__first": stage[c] for c in key + data_cols}
    )
    with_first = stage.inner_join(firsts, key)
    paired = with_first.inner_join(first_data, with_first["_first"] == first_data["_first_row"])
    same = ibis.literal(True)
    for column in data_cols:
        same = same & paired[column].identical_to(paired[f"{column}__first"])
    repeats = paired.filter(paired[ROW] != paired["_first"])
    conflicts = repeats.filter(~same)
    key_text = ibis.literal("duplicate ") + ibis.literal(", ".join(key))
    _reject(
        rejects,
        conflicts.mutate(_why=key_text + " with different data (row "
                         + conflicts["_first"].cast("string") + " kept)"),
        key[0], None,
    )
    summary.duplicates = int(repeats.filter(same).count().to_pyarrow().as_py())
    return stage.semi_join(firsts.rename(**{ROW: "_first"}), [*key, ROW])


def _reject(rejects: _RejectsWriter, rows: ibis.Table, column: str, reason: str | None) -> None:
    why = rows["_why"] if reason is None else ibis.literal(reason)
    problems = rows.select(
        row=rows[ROW], column=ibis.literal(column), value=rows[column].cast("string"), reason=why
    ).order_by("row")
    for batch in problems.to_pyarrow_batches(chunk_size=100_000):
        rejects.write(pa.Table.from_batches([batch]).cast(REJECT_SCHEMA))
