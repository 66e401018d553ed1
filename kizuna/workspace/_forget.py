"""Erasing a customer on request (個人情報保護法: 利用停止・消去の請求), everywhere kizuna keeps them.

* the store: the customer's contact data (name, kana, e-mail, phone, LINE user id, postal code,
  address, birthday) and free text (NPS comments, event details) are nulled, and the customer id
  is replaced by a random pseudonym in every table that has a ``customer_id`` column
  (customers, orders, nps_answers, support_contacts, events, customer_scores,
  customer_predictions, and any table added later), so that order counts, revenue and NPS
  scores stay in the figures, belonging to nobody;
* the operational records (`Operations.forget`): the ledger and survey rows under a pseudonym,
  survey comments dropped; opt-outs stay, so that an old export re-imported is not written to;
* the rejects files of past imports (``rejects/*.csv``): every line of a source row that names
  the customer (by id, e-mail, phone, LINE user id, name or address) is removed.

Re-running is safe, and finishes an erasure that was interrupted: the store is changed last,
in one transaction on DuckDB and PostgreSQL (Spark: table by table, each swapped in whole), so
until it is done the customer can still be found and every step before it finds what is left.
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
    from kizuna.workspace._workspace import Workspace

__all__ = ["PERSONAL_COLUMNS", "ForgetReport", "forget_customer"]

# Columns that identify a person or hold what they wrote, nulled wherever the customer's rows are.
PERSONAL_COLUMNS = ("name", "name_kana", "email", "phone", "line_user_id", "postal_code", "address", "birthday",
                    "comment", "detail")
# What a rejects line may quote of the customer; postal codes and birthdays are shared by too
# many people to say whose row a line was.
_IDENTIFYING = ("customer_id", "email", "phone", "line_user_id", "name", "name_kana", "address")


@dataclass
class ForgetReport:
    """What `forget_customer` changed: rows per store table, rejects lines and files.

    The pseudonym is not reported: whoever keeps it could link the figures back to the person.
    """

    rows: dict[str, int] = field(default_factory=dict)
    rejects_lines: int = 0
    rejects_files: int = 0
    survey_answers_merged: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"rows": dict(self.rows), "rejects_lines": self.rejects_lines, "rejects_files": self.rejects_files,
                "survey_answers_merged": self.survey_answers_merged}


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
    store, ops = ws.store, ws.operations
    customers = store.table("customers")
    found = customers.filter(customers.customer_id == customer_id).to_pyarrow().to_pylist()
    in_ops = ops.query("SELECT 1 FROM deliveries WHERE customer_id = ? UNION ALL "
                       "SELECT 1 FROM survey_links WHERE customer_id = ? LIMIT 1", (customer_id, customer_id))
    report = ForgetReport()
    if not found and not in_ops:
        # a customer whose rows were all rejected is named in rejects files only
        report.rejects_lines, report.rejects_files = _forget_in_rejects(ws.path / "rejects", customer_id, {})
        if report.rejects_lines:
            return report
        raise KizunaError(
            f"no customer {customer_id!r} in this workspace (or forgotten already); check the id "
            "as it appears in `kizuna export` lists."
        )
    # Web answers not yet in nps_answers go in first, so that they are pseudonymised with the rest
    # and the NPS figures keep them.
    if ops.query("SELECT 1 FROM survey_answers WHERE customer_id = ? AND merged = 0 LIMIT 1", (customer_id,)):
        report.survey_answers_merged = ws.merge_survey_answers()
    report.rejects_lines, report.rejects_files = _forget_in_rejects(ws.path / "rejects", customer_id,
                                                                    found[0] if found else {})
    # one pseudonym for the ledger and the store: a scenario's results keep the customer's conversions
    pseudonym = "forgotten-" + secrets.token_hex(8)
    ops.forget(customer_id, pseudonym)
    report.rows = _forget_in_store(store, customer_id, pseudonym)
    return report


# -- the store ------------------------------------------------------------------------------------


def _forget_in_store(store, customer_id: str, pseudonym: str) -> dict[str, int]:
    """Pseudonymise and null the customer's rows in every table with a customer_id; rows per table."""
    import sqlglot as sg
    import sqlglot.expressions as sge

    plans: list[tuple[str, list[str], int]] = []
    for name in sorted(store.backend.list_tables()):
        if name.startswith("ibis_"):  # Ibis' in-memory tables of this connection, not the store's
            continue
        columns = store.table(name).columns
        if "customer_id" not in columns:
            continue
        table = store.table(name)
        count = int(table.filter(table.customer_id == customer_id).count().to_pyarrow().as_py())
        if count:
            plans.append((name, [c for c in PERSONAL_COLUMNS if c in columns], count))
    if store.engine in ("duckdb", "postgres"):
        dialect = store.backend.dialect
        statements = []
        for name, personal, _ in plans:
            values = {"customer_id": sge.convert(pseudonym), **{c: sge.null() for c in personal}}
            statements.append(sge.update(
                sg.table(name, quoted=True), {sg.to_identifier(c, quoted=True): v for c, v in values.items()},
                where=sg.column("customer_id", quoted=True).eq(sge.convert(customer_id)),
            ).sql(dialect))
        # one transaction: the customer is erased from every table or from none
        with store.engine_errors(), store._transaction():
            for statement in statements:
                store._execute(statement)
    else:  # Spark has no UPDATE: each table is rebuilt aside and swapped in whole
        for name, personal, _ in plans:
            _rewrite(store, name, personal, customer_id, pseudonym)
    return {name: count for name, _, count in plans}


def _rewrite(store, name: str, personal: list[str], customer_id: str, pseudonym: str) -> None:
    import ibis

    table = store.table(name)
    hit = table.customer_id == customer_id
    changed = {"customer_id": ibis.ifelse(hit, pseudonym, table.customer_id)}
    changed |= {c: ibis.ifelse(hit, ibis.null(table[c].type()), table[c]) for c in personal}
    aside = f"{name}__forget"
    store.backend.create_table(aside, table.mutate(**changed), overwrite=True)
    store.backend.create_table(name, store.table(aside), overwrite=True)
    store.drop(aside)


# -- rejects files --------------------------------------------------------------------------------


def _forget_in_rejects(folder: Path, customer_id: str, customer: dict) -> tuple[int, int]:
    """Remove the lines of every source row naming the customer; (lines removed, files rewritten)."""
    if not folder.is_dir():
        return 0, 0
    needles = {_normal(customer_id)}
    phones = set()
    for column in _IDENTIFYING[1:]:
        value = customer.get(column)
        if value is None or not str(value).strip():
            continue
        needles.add(_normal(str(value)))
        if column == "phone" and len(digits := _digits(str(value))) >= 8:
            phones.add(digits)
    removed = files = 0
    for path in sorted(folder.glob("*.csv")):
        lines = _rewrite_rejects(path, needles, phones)
        if lines:
            removed += lines
            files += 1
    return removed, files


def _rewrite_rejects(path: Path, needles: set[str], phones: set[str]) -> int:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = list(csv.reader(handle))
    if not records:
        return 0
    header, body = records[0], records[1:]
    try:
        file_at, row_at, value_at = header.index("file"), header.index("row"), header.index("value")
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
    # written aside and renamed over the old file: a reader sees the old file or the new, whole
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".forget", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as out:
            csv.writer(out).writerows([header, *kept])  # cells as read: already neutralised once
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return len(body) - len(kept)


def _normal(text: str) -> str:
    # as a rejects file may quote it: a leading ' that neutralised a formula, width, case, spaces
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text.removeprefix("'"))).casefold()


def _digits(text: str) -> str:
    """A phone number's digits in the domestic form: +81 90-1234-5678 and 090-1234-5678 agree."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", text))
    if digits.startswith("81") and len(digits) in (11, 12) and not text.lstrip("'").startswith("0"):
        digits = "0" + digits[2:]
    return digits
