"""Erasing a customer on request (個人情報保護法: 利用停止・消去の請求), everywhere kizuna keeps them.

* the store: the customer's contact data (name, kana, e-mail, phone, LINE user id, postal code,
  address, birthday) and free text (NPS comments, event details) are nulled, and the customer id
  is replaced by a random pseudonym in every table that has a ``customer_id`` column
  (customers, orders, nps_answers, support_contacts, events, customer_scores,
  customer_predictions, and any table added later), so that order counts, revenue and NPS
  scores stay in the figures, belonging to nobody;
* the operational records: ledger rows, their keys (scenario / step / customer / occasion) and
  survey rows under the pseudonym, survey comments dropped, a ledger note quoting the customer
  (an SMTP server's refusal names the address) dropped; opt-outs stay, so that an old export
  re-imported is not written to, but under a keyed hash of the id (`Operations.erased_subject`),
  not the id;
* the files kizuna wrote for people: the rows of the customer are removed from the lists under
  ``outbox/`` (parcel inserts, direct mail, calls) and from the customer lists and call lists
  exported into the workspace folder; every line of a rejects file (``rejects/*.csv``, and the
  ``.partial`` of an import that was killed) quoting a source row that names the customer (by
  id, e-mail, phone, LINE user id, name or address) is removed. Removed, not pseudonymised: a
  list went to a warehouse or a call centre under the customer's id, and a pseudonym beside its
  scenario and step in our copy would say whose it is. Each file is written aside and renamed
  over the old one;
* what the files keep of old values: the DuckDB file is copied into a new file that replaces it
  (DuckDB leaves an updated row's old blocks in the file, free but not wiped); PostgreSQL's
  tables are rewritten by VACUUM FULL; SQLite's records are rewritten by VACUUM (with
  ``secure_delete`` on for the erasure's own writes) and its WAL emptied.

Re-running is safe, and finishes an erasure that was interrupted: the pseudonym of an erasure
under way is kept (under a keyed hash of the id) until it is done; the store is changed last,
in one transaction on DuckDB and PostgreSQL (Spark: table by table, each swapped in whole), so
until it is done the customer can still be found and every step before it finds what is left.
The files are compacted after that, and a compaction cut short is finished by the next command
that opens the workspace (`upkeep`).

`upkeep` also moves a workspace from the guest ids kizuna made before (an unsalted SHA-256 of
the e-mail or phone, which gives a phone number back by brute force in seconds) to the keyed
ones (`kizuna.importing.guest_id`), once per store, with the same renaming.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kizuna._errors import KizunaError

if TYPE_CHECKING:
    from kizuna.operations import Operations
    from kizuna.store import Store
    from kizuna.workspace import Workspace

__all__ = ["PERSONAL_COLUMNS", "ForgetReport", "forget_customer", "upkeep"]

# Columns that identify a person or hold what they wrote, nulled wherever the customer's rows are.
PERSONAL_COLUMNS = ("name", "name_kana", "email", "phone", "line_user_id", "postal_code", "address", "birthday",
                    "comment", "detail", "note")
# What a rejects line may quote of the customer; postal codes and birthdays are shared by too
# many people to say whose row a line was.
_IDENTIFYING = ("customer_id", "email", "phone", "line_user_id", "name", "name_kana", "address")
# Records in the operational records' meta table: an erasure under way (its pseudonym), files
# still to compact, stores whose guest ids are keyed.
_UNDER_WAY = "forgetting "
_RECLAIM = "reclaim pending"
_KEYED = "guest ids keyed "
# Folders of the workspace that hold no list for people (or are handled on their own).
_HEADER_WITHIN = 3  # a workbook's header row is among its first rows, below a title row (kizuna._sheets)
_NOT_LISTS = ("rejects", "scenarios", "spark-warehouse", "spark-metastore", "reports")


@dataclass
class ForgetReport:
    """What `forget_customer` changed: rows per store table and per table of the operational
    records, rows or lines removed per file, and how each file was compacted.

    The pseudonym is not reported: whoever keeps it could link the figures back to the person.
    """

    rows: dict[str, int] = field(default_factory=dict)
    operations: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)  # workspace-relative path -> rows or lines removed
    compacted: dict[str, str] = field(default_factory=dict)  # file (or engine) -> what was done
    rejects_lines: int = 0
    rejects_files: int = 0
    survey_answers_merged: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"rows": dict(self.rows), "operations": dict(self.operations), "files": dict(self.files),
                "compacted": dict(self.compacted), "rejects_lines": self.rejects_lines,
                "rejects_files": self.rejects_files, "survey_answers_merged": self.survey_answers_merged}


def forget_customer(ws: Workspace, customer_id: str) -> ForgetReport:
    """Erase one customer's personal data from the workspace `ws` (see the module docstring).

    Raises
    ------
    KizunaError
        No such customer in the store nor in the operational records (never known, or forgotten
        already).

    Examples
    --------
    >>> report = forget_customer(Workspace.open("shop"), "C001")      # doctest: +SKIP
    >>> report.rows["orders"]                                          # doctest: +SKIP
    12
    """
    ops = ws.operations
    ops.erase_securely()  # what this connection deletes or overwrites is zeroed
    report = ForgetReport()
    report.compacted = _finish_reclaim(ws)  # a compaction an earlier erasure was stopped before
    customers = ws.store.table("customers")
    found = customers.filter(customers.customer_id == customer_id).to_pyarrow().to_pylist() if customer_id else []
    in_ops = customer_id and ops.knows_customer(customer_id)
    if not found and not in_ops:
        # a customer whose rows were all rejected is named in rejects files only
        if customer_id.strip():  # (a blank id would match every blank cell)
            _forget_in_files(ws.path, customer_id, {}, report)
        if report.files:
            return report
        raise KizunaError.keyed("error.forget_unknown_customer", customer=repr(customer_id))
    # Web answers not yet in nps_answers go in first, so that they are pseudonymised with the rest
    # and the NPS figures keep them.
    if ops.has_unmerged_answer(customer_id):
        report.survey_answers_merged = ws.merge_survey_answers()
    customer = found[0] if found else {}
    _forget_in_files(ws.path, customer_id, customer, report)
    # one pseudonym for the ledger and the store: a scenario's results keep the customer's conversions
    erased_id = ops.erased_subject(customer_id)
    pseudonym = _pseudonym(ops, erased_id)
    report.operations = _forget_in_operations(ops, customer_id, customer, pseudonym)
    _reclaim_later(ops)  # before the store changes: a process killed after it leaves this to do
    renamed = ws.store.rename_customers({customer_id: pseudonym}, erase=PERSONAL_COLUMNS)
    # kizuna's own copies (the lists' rows) are renamed too; the report names the tables people know
    report.rows = {name: count for name, count in renamed.items() if not name.startswith("_kizuna_")}
    ops.delete_meta(_UNDER_WAY + erased_id)  # done: the link between the id and the pseudonym goes
    report.compacted |= _finish_reclaim(ws)
    return report


def upkeep(ws: Workspace) -> dict[str, int]:
    """What a writable workspace does when it opens: finish a compaction an erasure was stopped
    before, and, once per store, give guests the keyed ids; rows renamed per table."""
    _finish_reclaim(ws)
    ops, store = ws.operations, ws.store
    done = _KEYED + _store_name(ws)  # the store file by its name in the workspace: moved or copied, it stays done
    if ops.meta(done) is not None:
        return {}
    renames = _old_guest_ids(store, ops.secret())
    changed: dict[str, int] = {}
    if renames:
        from kizuna.operations import rename_customers

        ops.erase_securely()
        # the old ids are digests a phone number can be found back from: compacted away after
        _reclaim_later(ops)
        # the ledger first: the store is what tells an old id, so a rerun finds what is left
        changed |= rename_customers(ops, renames)
        changed |= store.rename_customers(renames)
    ops.set_meta(done, "1")
    _finish_reclaim(ws)
    return changed


# -- the operational records ----------------------------------------------------------------------


def _pseudonym(ops: Operations, erased_id: str) -> str:
    """The pseudonym of this erasure: a new one, or the one an interrupted erasure had chosen
    (kept under the keyed hash of the customer id until the store is done)."""
    return ops.keep_meta(_UNDER_WAY + erased_id, "forgotten-" + secrets.token_hex(8))


def _forget_in_operations(ops: Operations, customer_id: str, customer: dict, pseudonym: str) -> dict[str, int]:
    from kizuna.operations import rename_customers

    changed = ops.rows_of(customer_id)
    ops.forget(customer_id, pseudonym)  # rows under the pseudonym, comments and memberships gone
    moved = rename_customers(ops, {customer_id: pseudonym}, consents=False)  # and the ledger's keys
    changed["deliveries"] = max(changed["deliveries"], moved.get("deliveries", 0))
    line_user = customer.get("line_user_id")
    needles = _needles(customer_id, customer)
    # an opt-out outlives the erasure, under a keyed hash of its subject
    consents = ops.keep_consents_erased(customer_id)
    if line_user:
        consents += ops.keep_consents_erased(line_user, line=True)
    ops.drop_notes(pseudonym, lambda note: any(n in _normal(note) for n in needles))
    changed["consents"] = consents
    return {table: n for table, n in changed.items() if n}


def _reclaim_later(ops: Operations) -> None:
    ops.set_meta(_RECLAIM, "store")


def _finish_reclaim(ws: Workspace) -> dict[str, str]:
    """Compact the store's file and the operational records if an erasure or a renaming left
    them to do: file (or engine) -> what was done.

    The record of what is left goes only when both are done: the store's part first
    ("operations" is what is left after it), then SQLite's VACUUM and an emptied WAL (which
    another process reading at that moment can hold up: then the next command tries again).
    """
    ops, store = ws.operations, ws.store
    pending = ops.meta(_RECLAIM)
    if pending is None:
        return {}
    done = {}
    if pending == "store":
        # an erasure killed after its store step: its record of the pseudonym goes too
        customers = store.table("customers")
        for key, pseudonym in ops.meta_starting(_UNDER_WAY):
            if customers.filter(customers.customer_id == pseudonym).count().to_pyarrow().as_py():
                ops.delete_meta(key)
        tables = [t for t in store.tables() if "customer_id" in store.table(t).columns]
        with store.engine_errors():
            done[_store_name(ws)] = store.reclaim(tables)
        ops.set_meta(_RECLAIM, "operations")
    what, whole = ops.compact()
    if whole:
        ops.delete_meta(_RECLAIM)
    done[ops.name] = what
    return done


def _store_name(ws: Workspace) -> str:
    """The store's file, relative to the workspace when it is in it; a server's URL without its password."""
    files = ws.store.files()
    if not files:
        return ws.store.describe()
    path, home = files[0].resolve(), ws.path.resolve()
    return str(path.relative_to(home)) if path.is_relative_to(home) else str(path)


def _old_guest_ids(store: Store, secret: str) -> dict[str, str]:
    """Stored guests whose id is the unsalted digest of their e-mail or phone -> their keyed id."""
    from kizuna.importing import guest_id

    customers = store.table("customers")
    guests = customers.filter(customers.customer_id.startswith("m-") | customers.customer_id.startswith("t-"))
    renames = {}
    for batch in guests.select("customer_id", "email", "phone").to_pyarrow_batches():
        for row in batch.to_pylist():
            for email, phone in ((row["email"], None), (None, row["phone"])):
                if (email or phone) and guest_id(email, phone) == row["customer_id"]:
                    renames[row["customer_id"]] = guest_id(email, phone, key=secret)
    return renames


# -- files ----------------------------------------------------------------------------------------


def _forget_in_files(root: Path, customer_id: str, customer: dict, report: ForgetReport) -> None:
    """Lists, exports and rejects without the customer: path -> rows removed, in `report.files`."""
    for path in _lists(root):
        removed = _rewrite_list(path, customer_id)
        if removed:
            report.files[str(path.relative_to(root))] = removed
    folder = root / "rejects"
    if folder.is_dir():
        needles, phones = _needles(customer_id, customer), set()
        if len(digits := _digits(str(customer.get("phone") or ""))) >= 8:
            phones.add(digits)
        for path in sorted([*folder.glob("*.csv"), *folder.glob("*.csv.partial")]):
            lines = _rewrite_rejects(path, needles, phones)
            if lines:
                report.files[str(path.relative_to(root))] = lines
                report.rejects_lines += lines
                report.rejects_files += 1


def _needles(customer_id: str, customer: dict) -> set[str]:
    found = {_normal(customer_id)}
    for column in _IDENTIFYING[1:]:
        value = customer.get(column)
        if value is not None and str(value).strip():
            found.add(_normal(str(value)))
    return found


def _lists(root: Path) -> list[Path]:
    """The files for people kizuna wrote into the workspace: the lists under outbox/, and
    customer lists or call lists exported into the folder (told by kizuna's headers)."""
    found = []
    for path in sorted([*root.rglob("*.csv"), *root.rglob("*.xlsx")]):
        parts = path.relative_to(root).parts
        if parts[0] in _NOT_LISTS or any(p.startswith(".") for p in parts):
            continue
        if parts[0] == "outbox" or any(_id_column(row, exported=True) is not None for row in _first_rows(path)):
            found.append(path)
    return found


def _id_headers() -> set[str]:
    from kizuna.i18n import label

    return {"customer_id", label("customer_id", "ja"), label("customer_id", "en")}


def _id_column(header: list | None, *, exported: bool = False) -> int | None:
    """Where the customer id is in a list's header row (None: not a list kizuna wrote).

    `exported`: a file outside outbox/ is taken for kizuna's only with kizuna's own headers (a
    customer list: every header one of `kizuna export`'s; a call list: "#", the id, …, the
    suggested action), never a shop's own export that happens to have a 顧客ID column.
    """
    if not header:
        return None
    ids = _id_headers()
    if not exported:
        return next((n for n, cell in enumerate(header) if str(cell) in ids), None)
    from kizuna.i18n import label, section

    cells = [str(cell) for cell in header]
    headers = {*section("header.", "ja").values(), *section("header.", "en").values()}
    if cells[0] in ids and set(cells) <= headers:
        return 0
    actions = {label("suggested_action", "ja"), label("suggested_action", "en")}
    if len(cells) > 2 and cells[0] == "#" and cells[1] in ids and actions & set(cells):
        return 1
    return None


def _first_rows(path: Path) -> list[list]:
    """The first rows of a list: its header row, and in a workbook the title row above it."""
    try:
        if path.suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return [row for row in [next(csv.reader(handle), None)] if row is not None]
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        try:
            if not book.worksheets:
                return []
            return [list(row) for row in book.worksheets[0].iter_rows(max_row=_HEADER_WITHIN, values_only=True)]
        finally:
            book.close()
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, KeyError):  # not a file kizuna wrote
        return []
    except Exception as exc:  # openpyxl's own errors for a file that is no workbook
        if type(exc).__module__.startswith(("openpyxl", "zipfile")):
            return None
        raise


def _rewrite_list(path: Path, customer_id: str) -> int:
    """Remove the customer's rows from one list (csv or xlsx); how many there were."""
    from kizuna._sheets import neutralise

    ids = {customer_id, neutralise(customer_id)}  # as a CSV cell may hold it
    if path.suffix == ".csv":
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                records = list(csv.reader(handle))
        except (UnicodeDecodeError, csv.Error):
            return 0
        at = _id_column(records[0] if records else None)
        if at is None:
            return 0
        kept = [records[0]] + [r for r in records[1:] if len(r) <= at or r[at] not in ids]
        if len(kept) == len(records):
            return 0
        _replace(path, lambda out: _write_csv(out, kept))  # cells as read: neutralised once already
        return len(records) - len(kept)
    import openpyxl

    book = openpyxl.load_workbook(path)
    removed = 0
    for sheet in book.worksheets:
        # the header: the first row naming the id (a title row may be above it)
        found = ((number, _id_column(list(row))) for number, row in
                 enumerate(sheet.iter_rows(max_row=_HEADER_WITHIN, values_only=True), start=1))
        header_at, at = next(((n, a) for n, a in found if a is not None), (0, None))
        if at is None:
            continue
        hits = [row[0].row for row in sheet.iter_rows(min_row=header_at + 1)
                if len(row) > at and row[at].value in ids]
        for number in reversed(hits):
            sheet.delete_rows(number)
        removed += len(hits)
    if removed:
        _replace(path, lambda out: book.save(out))
    return removed


def _write_csv(path: Path, records: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        csv.writer(out).writerows(records)


def _replace(path: Path, write) -> None:
    """Write `path` aside and rename it over the old file: a reader sees the old file or the new, whole."""
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".forget", dir=path.parent)
    os.close(fd)
    try:
        write(Path(partial))
        os.chmod(partial, path.stat().st_mode & 0o777)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _rewrite_rejects(path: Path, needles: set[str], phones: set[str]) -> int:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            records = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error):
        return 0
    if not records:
        return 0
    header, body = records[0], records[1:]
    try:
        file_at, row_at, value_at = (_header_index(header, key) for key in ("file", "row", "value"))
    except ValueError:  # not a rejects file kizuna wrote
        return 0

    def names_customer(record: list[str]) -> bool:
        if len(record) <= value_at:
            return False
        value = record[value_at]
        return _normal(value) in needles or (bool(phones) and _digits(value) in phones)

    # a source row may have several lines (one per problem): drop all of them
    hit_rows = {(r[file_at], r[row_at]) for r in body if names_customer(r)}
    kept = [r for r in body if not names_customer(r) and (r[file_at], r[row_at]) not in hit_rows]
    if len(kept) == len(body):
        return 0
    _replace(path, lambda out: _write_csv(out, [header, *kept]))  # cells as read: already neutralised once
    return len(body) - len(kept)


def _header_index(header: list[str], key: str) -> int:
    """Where a rejects file's column `key` is: its header in either language, or the code an older kizuna wrote."""
    from kizuna.i18n import text

    for name in (text(f"header.reject_{key}", "ja"), text(f"header.reject_{key}", "en"), key):
        if name in header:
            return header.index(name)
    raise ValueError(key)


def _normal(text: str) -> str:
    # as a rejects file may quote it: a leading ' that neutralised a formula, width, case, spaces
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text.removeprefix("'"))).casefold()


def _digits(text: str) -> str:
    """A phone number's digits in the domestic form: +81 90-1234-5678 and 090-1234-5678 agree."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", text))
    if digits.startswith("81") and len(digits) in (11, 12) and not text.lstrip("'").startswith("0"):
        digits = "0" + digits[2:]
    return digits
