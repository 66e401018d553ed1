"""Importing one file into the store: read → convert → stage → check → apply.

A pipeline of stages, each a function of what it is given, composed in `import_file`:

1. **Read** (`read_file`): the file opened (`_sources`) and what it holds (`_presets`); its
   batches are read, bounded, as the next stage asks for them.
2. **Convert** (`_convert.convert_batches`): each batch prepared (`_prepare`) and parsed into
   typed columns on every core, with every row's problems (missing id, bad date …).
3. **Stage** (`stage_rows`, `stage_unreadable`): good rows stream into a scratch table in the
   store, problems into the rejects file; one batch at a time is held.
4. **Check** (`check_staged`): what needs the whole file or the store, as set operations in the
   engine: the same key twice with different data, references to unknown customers, orders or
   products (`_targets` tells which tables the file fills).
5. **Apply** (`apply_changes`): each table's rows compared with the store on the natural key:
   new rows added, changed rows replaced (an order now cancelled is updated, not duplicated),
   identical rows left alone, so importing a file twice changes nothing; columns the file does
   not have keep their stored values. All tables change in one step at the end; a failure
   before it leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ibis
import pyarrow as pa

from kizuna._errors import FileFormatError, MissingColumnsError
from kizuna._sheets import Column, CsvSheet
from kizuna.i18n import say
from kizuna.importing._convert import REJECT_SCHEMA, BatchResult, convert_batches, problem_rejects
from kizuna.importing._mapping import ColumnMapping
from kizuna.importing._prepare import Preparer
from kizuna.importing._presets import HELPER_FIELDS, Plan, PlatformMismatchError, plan_import
from kizuna.importing._reasons import reason_phrase
from kizuna.importing._sources import ROW, Source, open_source
from kizuna.importing._targets import Target, targets
from kizuna.store import Store, table_for_kind

__all__ = ["Applied", "Checked", "ImportSummary", "apply_changes", "check_staged", "import_file", "read_file",
           "stage_rows", "stage_unreadable"]

STAGE = "_kizuna_stage"
VALID = "_kizuna_valid"
CHANGES = "_kizuna_changes"
ROWS = "_kizuna_rows"
# per-table scratch tables of a file that fills several tables
SCRATCH = [f"{prefix}_{table}" for prefix in (VALID, CHANGES, ROWS)
           for table in ("customers", "products", "orders", "order_items")]


@dataclass
class TableCounts:
    """What one import did to one table."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "duplicates": self.duplicates}


@dataclass
class ImportSummary:
    """What one import did. `accepted` rows are all stored (added, updated or unchanged)."""

    kind: str
    path: Path
    format: str
    encoding: str | None
    sheet: str | None = None  # xlsx: the sheet read
    header_row: int = 1  # the row the headers were found on (a title above them is not read)
    rows_read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # repeated rows identical to an earlier row of the same file
    rejected: int = 0
    rejects_path: Path | None = None
    ignored_columns: list[str] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    preset: str | None = None  # the platform export recognised, e.g. "EC-CUBE 4 受注CSV"
    tables: dict[str, TableCounts] = field(default_factory=dict)  # every table the file filled
    # an orders or order-items file: what its rows were, so that rows_read = order_rows + item_rows
    # + other_lines + rejected (other_lines: shipping, fee, discount, point lines)
    order_rows: int | None = None
    item_rows: int | None = None
    other_lines: int | None = None
    # buyers without a member id or a usable e-mail (a relay address), by what matched them
    matched_by: dict[str, int] = field(default_factory=dict)

    @property
    def row_kinds(self) -> dict[str, int] | None:
        """rows_read, broken down: orders, items, other lines, rejected (None for other kinds)."""
        if self.order_rows is None:
            return None
        return {"orders": self.order_rows, "items": self.item_rows or 0, "other_lines": self.other_lines or 0,
                "rejected": self.rejected}

    @property
    def accepted(self) -> int:
        return self.added + self.updated + self.unchanged

    def to_dict(self) -> dict[str, object]:
        """Plain values, for --format json and scripts."""
        return {
            "kind": self.kind, "path": str(self.path), "format": self.format,
            "encoding": self.encoding, "sheet": self.sheet, "header_row": self.header_row,
            "rows_read": self.rows_read, "accepted": self.accepted,
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
            "duplicates": self.duplicates, "rejected": self.rejected,
            "rejects_path": str(self.rejects_path) if self.rejects_path else None,
            "ignored_columns": self.ignored_columns, "reasons": dict(self.reasons),
            "preset": self.preset, "tables": {name: c.to_dict() for name, c in self.tables.items()},
            "rows": self.row_kinds, "matched_by": dict(self.matched_by),
        }


def _reject_columns(lang: str = "ja") -> list[Column]:
    """The columns of a rejects file: the file, its row (as a spreadsheet numbers it), the column,
    the value as read, and why it was rejected."""
    from kizuna.i18n import text

    return [Column(text(f"header.reject_{key}", lang), kind) for key, kind in
            (("file", "text"), ("row", "integer"), ("column", "text"), ("value", "text"), ("reason", "text"))]


class _RejectsWriter:
    """Streams rejects to a CSV that Excel opens correctly (UTF-8 with BOM), headers in `lang`.

    Written under a temporary name and renamed when the import ends, so that a rejects
    file under its real name is always complete. A CSV, not a workbook: an import may reject
    more rows than a worksheet holds.
    """

    def __init__(self, path: Path, source: Path, lang: str = "ja", headers: dict[str, str] | None = None) -> None:
        self.path = path
        self.lang = lang
        self.headers = headers or {}  # kizuna's column -> the file's header for it
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
            self._sheet = CsvSheet(self.partial, _reject_columns(self.lang), shown_as=self.path)
        data = rejects.to_pydict()
        for row, column, value, reason in zip(
            data["row"], data["column"], data["value"], data["reason"], strict=True
        ):
            if self.lang != "en":  # the checks write English; a person reads the import's language
                reason = say(reason_phrase(reason, self.headers), self.lang)
                column = self.headers.get(column, column) if column else column
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
    kind: str | None,
    path: Path | str,
    *,
    timezone: str = "Asia/Tokyo",
    mapping: ColumnMapping | None = None,
    rejects_dir: Path | str = "rejects",
    encoding: str | None = None,
    sheet: str | None = None,
    header_row: int | None = None,
    batch_rows: int = 200_000,
    guest_key: str | bytes | None = None,
    platform: str | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    lang: str = "ja",
) -> ImportSummary:
    """Import `path` as `kind` (customers, orders, order-items, products, nps, support, events).

    With `kind` None, the kind and the platform export are told from the headers
    (`_presets`). An orders export may fill several tables in one import: the customers
    it names, products and order items from its lines (`_targets`); they change
    together at the end, in one transaction where the engine has them.

    `on_progress(rows_done, rows_expected)` is called after every batch; `on_phase("reconcile")`
    once the file is read, when duplicates, references and the stored rows are compared (on a
    large file, a good part of the time). An Excel workbook is read from `sheet`, else from
    its first visible sheet (the active one first) that has the columns `kind` needs. The
    headers are on `header_row` (1-based), else on the first row that is not blank or, when
    that row is a title, on the first of the next rows that has the columns.

    `guest_key` (the workspace secret) keys the ids of buyers without a member id (`guest_id`).
    `platform` ("BASE", "ec-cube2" …) reads the file as that platform's export, without guessing.
    `lang`: the language of the rejects file (its headers and reasons) and of the summary's reasons.
    """
    path, mapping = Path(path), _checked_arguments(kind, mapping)
    source, plan = read_file(path, kind, mapping, encoding=encoding, sheet=sheet, header_row=header_row,
                             batch_rows=batch_rows, platform=platform)
    prepare = Preparer(plan, mapping, guest_key)
    headers: dict[str, str] = {}
    for header, column in plan.columns.items():  # the first header of a column names it
        headers.setdefault(column, header)
    rejects = _RejectsWriter(_rejects_path(rejects_dir, prepare.spec.kind), path, lang, headers)
    expected = source.estimated_rows()
    matched_by: dict[str, int] = {}
    try:
        with _staging_table(store, prepare) as stage:
            converted = convert_batches(source.batches(), prepare, mapping, timezone)
            rows_read = stage_rows(store, converted, rejects, expected=expected, on_progress=on_progress)
            rows_read += stage_unreadable(source, rejects)
            if on_phase:
                on_phase("reconcile")
            staged = set(rejects.rows)
            checked = check_staged(store, targets(store, plan, stage, _given(plan), matched_by), rejects)
            applied = apply_changes(store, checked)
            kinds = _row_kinds(store, plan, stage, rejects.rows - staged)
    finally:
        rejects_path = rejects.close()
    return _summary(source, plan, path, rows_read=rows_read, applied=applied, rejects=rejects,
                    rejects_path=rejects_path, kinds=kinds, matched_by=matched_by)


def _checked_arguments(kind: str | None, mapping: ColumnMapping | None) -> ColumnMapping:
    """The mapping to read with, once `kind` (when given) and `mapping` are known to be sound."""
    if kind is not None:
        table_for_kind(kind)
    mapping = mapping or ColumnMapping()
    mapping.check()
    return mapping


def _rejects_path(rejects_dir: Path | str, kind: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(rejects_dir) / f"{kind}-{stamp}.csv"


def read_file(
    path: Path, kind: str | None, mapping: ColumnMapping, *, encoding: str | None = None, sheet: str | None = None,
    header_row: int | None = None, batch_rows: int = 200_000, platform: str | None = None,
) -> tuple[Source, Plan]:
    """Stage 1, read: the file opened (its batches are read when `Source.batches` is iterated) and
    what it holds (kind, platform export, which column holds which field)."""
    source = open_source(path, batch_rows=batch_rows, encoding=encoding, sheet=sheet, header_row=header_row)
    source, plan = _choose_plan(source, kind, mapping, path, sheet_given=sheet is not None,
                                header_given=header_row is not None, platform=platform)
    source.used = set(plan.columns)
    return source, plan


@contextlib.contextmanager
def _staging_table(store: Store, prepare: Preparer) -> Iterator[ibis.Table]:
    """The scratch table the good rows are staged in, dropped (with the other scratch tables) at the end."""
    spec, keep = prepare.spec, prepare.keep
    stage_schema = ibis.schema({**dict(spec.schema.items()), **{k: "string" for k in keep}, ROW: "int64"})
    for name in (VALID, CHANGES, *SCRATCH):  # left behind by an import that was killed
        store.drop(name)
    # a scratch table (in memory on DuckDB, spilled to disk past its memory limit): staging into
    # a table of the file took four times as long
    stage = store.create(STAGE, stage_schema.to_pyarrow().empty_table(), scratch=True)
    try:
        yield stage
    finally:
        for name in (STAGE, VALID, CHANGES, *SCRATCH):
            store.drop(name)


def stage_rows(
    store: Store, converted: Generator[tuple[int, BatchResult], None, None], rejects: _RejectsWriter, *,
    expected: int | None = None, on_progress: Callable[[int, int | None], None] | None = None,
) -> int:
    """Stage 3, stage: each converted batch's good rows appended to the staging table as they come
    (one batch at a time in memory), its problems to the rejects file; returns the rows read."""
    rows_read = 0

    def accepted() -> Iterator[pa.Table]:
        nonlocal rows_read
        for rows, result in converted:
            rows_read += rows
            if result.accepted.num_rows:
                yield result.accepted
            rejects.write(result.rejects)
            if on_progress:
                on_progress(rows_read, expected)

    with contextlib.closing(converted):  # stopped early (a failure): the conversion threads end too
        store.append_batches(STAGE, accepted())
    return rows_read


def stage_unreadable(source: Source, rejects: _RejectsWriter) -> int:
    """The rows the reader could not split into fields (known once every batch is read), to the
    rejects file; returns how many rows they were."""
    if not source.problems:
        return 0
    rejects.write(problem_rejects(source.problems))
    return len({p.row for p in source.problems})


def _summary(source: Source, plan: Plan, path: Path, *, rows_read: int, applied: list[Applied],
             rejects: _RejectsWriter, rejects_path: Path | None, kinds: tuple[int, int, int] | None,
             matched_by: dict[str, int]) -> ImportSummary:
    summary = ImportSummary(plan.kind, path, source.format, source.encoding, sheet=source.sheet,
                            header_row=source.header_row, rows_read=rows_read, rejected=len(rejects.rows),
                            rejects_path=rejects_path, ignored_columns=plan.ignored, reasons=rejects.reasons,
                            preset=plan.preset, matched_by=matched_by)
    for table in applied:
        summary.tables[table.target.spec.name] = table.counts
        if table.target.main:
            summary.added, summary.updated, summary.unchanged = (table.counts.added, table.counts.updated,
                                                                 table.counts.unchanged)
            summary.duplicates = table.counts.duplicates if table.target.duplicates_shown else 0
    if kinds is not None:
        summary.order_rows, summary.item_rows, summary.other_lines = kinds
    return summary


def _row_kinds(store: Store, plan: Plan, stage: ibis.Table, later: set[int]) -> tuple[int, int, int] | None:
    """(order rows, item rows, other lines) among the stored rows, for the summary's headline.

    `later`: rows rejected after staging (a reference or a conflicting repeat), not counted.
    """
    if plan.kind not in ("orders", "order-items"):
        return None
    if plan.kind == "order-items":
        kind = ibis.literal("items")
    elif plan.lines:
        kind = ibis.ifelse(stage.product_id.notnull(), "items", "other")
    else:
        kind = ibis.literal("orders")
    rows = stage.select(_kind=kind, **{ROW: stage[ROW]})
    if later:
        rows = rows.anti_join(ibis.memtable({ROW: sorted(later)}, schema={ROW: "int64"}), ROW)
    counts = {r["_kind"]: int(r["n"]) for r in store.fetch(rows.group_by("_kind").aggregate(n=rows.count()))}
    return counts.get("orders", 0), counts.get("items", 0), counts.get("other", 0)


def _given(plan: Plan) -> set[str]:
    """The fields the file gives values for (joined parts and derived status included)."""
    fields = plan.fields
    if fields & {"cancel_flag", "cancelled_at"}:
        fields = fields | {"status"}
    return fields - set(HELPER_FIELDS)


def _choose_plan(
    source: Source, kind: str | None, mapping: ColumnMapping, path: Path, *, sheet_given: bool,
    header_given: bool = False, platform: str | None = None,
) -> tuple[Source, Plan]:
    """What the file holds; in a workbook, the first visible sheet that holds something kizuna reads.

    The headers are looked for on the first row that is not blank of every sheet, then (unless
    the row was given) on the rows below it, among the first 20: exports often put a title and a
    blank line above the header (``受注一覧 2024/04/01``), and no mapping can help with that.
    """
    sheets = [source.sheet] if sheet_given or len(source.visible) < 2 else list(source.visible)
    opened: list[Source] = []
    first_error: MissingColumnsError | None = None
    for name in sheets:
        try:
            candidate = source if name == source.sheet else source.with_sheet(name)
        except FileFormatError:
            continue  # an empty sheet beside the data
        opened.append(candidate)
        try:
            return candidate, _plan(candidate, kind, mapping, path, platform)
        except PlatformMismatchError:
            raise  # one line naming the closest platform: a title row above would not change it
        except MissingColumnsError as exc:
            first_error = first_error or exc
    if not header_given:
        for candidate in opened:
            for row in candidate.header_candidates():
                below = candidate.with_header_row(row)
                try:
                    return below, _plan(below, kind, mapping, path, platform)
                except MissingColumnsError:
                    continue
    if first_error is None:  # every sheet is empty
        raise FileFormatError.keyed("error.workbook_no_header", path=path)
    if len(sheets) > 1:
        raise MissingColumnsError(path, first_error.kind, first_error.missing, None, sheets=source.sheets)
    raise first_error


def _plan(source: Source, kind: str | None, mapping: ColumnMapping, path: Path, platform: str | None = None) -> Plan:
    return plan_import(source.headers, source.names, kind, mapping, path, source.unreadable, platform)


@dataclass(frozen=True)
class Checked:
    """One table's rows of this file that passed the checks of the whole file (stage 4)."""

    target: Target
    rows: ibis.Table  # the staged rows, or a scratch table of those that passed
    duplicates: int  # repeats identical to an earlier row of the file (not stored twice)


@dataclass(frozen=True)
class Applied:
    """What stage 5 did to one table."""

    target: Target
    counts: TableCounts


def check_staged(store: Store, found: list[Target], rejects: _RejectsWriter) -> list[Checked]:
    """Stage 4, check: the checks that need the whole file or the store, as set operations in the
    engine, table by table (referenced tables first): the same key twice with different data, and
    references to customers, orders or products neither stored nor in this file. Rejects go to
    the rejects file."""
    pending: dict[str, ibis.Table] = {}  # table -> its valid rows of this file, for references
    checked: list[Checked] = []
    several = len(found) > 1
    for target in found:
        rows, duplicates = _checked_rows(store, target, rejects, pending, several=several)
        pending[target.spec.name] = rows
        checked.append(Checked(target, rows, duplicates))
    return checked


def apply_changes(store: Store, checked: list[Checked]) -> list[Applied]:
    """Stage 5, apply: every table's rows compared with the store on the natural key (added,
    updated, unchanged), and the changes of all tables written at once, in one transaction
    where the engine has them (referenced tables first)."""
    applied: list[Applied] = []
    changes: list[tuple[str, ibis.Table, list[str] | None]] = []
    several = len(checked) > 1
    for table in checked:
        counts, change = _compare(store, table, several=several)
        applied.append(Applied(table.target, counts))
        if change is not None:
            changes.append(change)
    if changes:
        store.apply_changes(changes)
    return applied


def _checked_rows(
    store: Store, target: Target, rejects: _RejectsWriter, pending: dict[str, ibis.Table], *, several: bool,
) -> tuple[ibis.Table, int]:
    """`target`'s rows without conflicting repeats and unknown references; its identical repeats."""
    spec, key = target.spec, list(target.spec.key)
    data_cols = [c for c in target.present if c not in key]
    suffix = f"_{spec.name}" if several else ""
    stage = store.create(ROWS + suffix, target.rows, scratch=True) if several else target.rows

    kept, duplicates = _drop_duplicates(store, stage, key, data_cols, rejects)
    filtered = kept is not stage
    for column, table in spec.references:
        known = store.table(table).select(column)
        if table in pending:
            known = known.union(pending[table].select(column))
        # no `distinct()`: a semi or anti join reads a repeated key once anyway, and making the
        # referenced keys distinct cost as much as the join
        unknown = kept.anti_join(known, column)
        if _reject(rejects, unknown, column, f"unknown {column} (not in {table}: import {table} first)"):
            kept = kept.semi_join(known, column)
            filtered = True
    # the staged rows themselves when every one passed (writing them again costs seconds at 10M rows)
    return (store.create(VALID + suffix, kept, scratch=True) if filtered else stage), duplicates


def _compare(
    store: Store, checked: Checked, *, several: bool,
) -> tuple[TableCounts, tuple[str, ibis.Table, list[str] | None] | None]:
    """How the checked rows of one table compare with the store, and the change to write (None: none)."""
    target, valid = checked.target, checked.rows
    spec, present = target.spec, target.present
    key = list(spec.key)
    data_cols = [c for c in present if c not in key]
    suffix = f"_{spec.name}" if several else ""
    counts = TableCounts(duplicates=checked.duplicates)
    if store.count(spec.name) == 0:  # a first import: every row is new, and is written as the file has it
        counts.added = int(store.fetch_value(valid.count()))
        return counts, ((spec.name, valid.select(*spec.column_names), None) if counts.added else None)

    stored = store.table(spec.name).mutate(_stored=ibis.literal(True))
    joined = valid.left_join(stored, key, rname="{name}__stored")
    is_new = joined["_stored"].isnull()
    # merge: a value the file leaves blank keeps the stored one
    value = {c: joined[c].coalesce(joined[f"{c}__stored"]) if target.merge else joined[c] for c in data_cols}
    same = ibis.literal(True)
    for column in data_cols:
        same = same & value[column].identical_to(joined[f"{column}__stored"])
    if target.insert_only:
        same = ibis.literal(True)
    counts_row = store.fetch(joined.aggregate(
        added=is_new.sum(), unchanged=(~is_new & same).sum(), total=joined.count()
    ))[0]
    counts.added = int(counts_row["added"] or 0)
    counts.unchanged = int(counts_row["unchanged"] or 0)
    counts.updated = int(counts_row["total"]) - counts.added - counts.unchanged
    if counts.added + counts.updated == 0:
        return counts, None
    # Columns the file lacks keep what the store has; the file's columns win.
    changed = joined.filter(is_new | ~same).select(
        *[value[c].name(c) if c in data_cols else joined[c] if c in present
          else joined[f"{c}__stored"].name(c) for c in spec.column_names]
    )
    if counts.updated == 0:
        return counts, (spec.name, changed, None)
    return counts, (spec.name, store.create(CHANGES + suffix, changed, scratch=True), key)


def _drop_duplicates(
    store: Store, stage: ibis.Table, key: list[str], data_cols: list[str], rejects: _RejectsWriter,
) -> tuple[ibis.Table, int]:
    """`stage` without its repeats of a key (those with different data rejected), and how many
    repeats were identical to the first row of their key."""
    firsts = stage.group_by(key).aggregate(_first=stage[ROW].min())
    if int(store.fetch_value(firsts.count())) == int(store.fetch_value(stage.count())):
        return stage, 0
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
    duplicates = int(store.fetch_value(repeats.filter(same).count()))
    return stage.semi_join(firsts.rename(**{ROW: "_first"}), [*key, ROW]), duplicates


def _reject(rejects: _RejectsWriter, rows: ibis.Table, column: str, reason: str | None) -> int:
    """Write `rows` to the rejects file; how many there were."""
    why = rows["_why"] if reason is None else ibis.literal(reason)
    problems = rows.select(
        row=rows[ROW], column=ibis.literal(column), value=rows[column].cast("string"), reason=why
    ).order_by("row")
    written = 0
    for batch in problems.to_pyarrow_batches(chunk_size=100_000):
        rejects.write(pa.Table.from_batches([batch]).cast(REJECT_SCHEMA))
        written += batch.num_rows
    return written
