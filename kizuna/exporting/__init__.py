"""Customer lists for people outside kizuna: CSV (Excel-friendly) or a formatted .xlsx, labelled in ja or en.

Every file goes through `kizuna._sheets` (one writer: formulas written as text, widths, frozen
header, filter, number formats, a title row with the as-of date and the business). A list with
no file name is a CSV on standard output.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kizuna._errors import KizunaError
from kizuna._sheets import SHEET_FORMATS, Column, heading, write_table
from kizuna.i18n import label, segment_label, text

if TYPE_CHECKING:
    import ibis

__all__ = ["EXPORT_FORMATS", "check_output", "export_segment", "list_heading", "reason_text", "write_customer_list"]

EXPORT_FORMATS = SHEET_FORMATS

# column -> kind (kizuna._sheets.COLUMN_KINDS); the header is the catalogue's "header.<column>"
_SHOWN = {
    "customer_id": "text", "name": "text", "name_kana": "text", "email": "text", "phone": "text",
    "postal_code": "text", "address": "text", "ltv_revenue": "yen", "orders": "count", "last_order_at": "date",
    "recency_days": "count", "nps_score": "integer", "nps_class": "text", "matrix_cell": "text",
    "rfm_rank": "text", "reason": "text",
}
# Shown after the others when the list carries predictions (kizuna predict was run).
_PREDICTED = {"churn_risk": "percent", "value_at_risk": "yen", "churn_reasons": "text"}


def list_heading(what: str, lang: str = "ja", *, as_of: dt.date | None = None, business: str = "") -> str:
    """A workbook's title row: the business, what the list is and the day it is as of.

    >>> list_heading("架電リスト", as_of=dt.date(2026, 11, 1), business="絆ウォーター")
    '絆ウォーター\u3000架電リスト\u3000基準日 2026/11/01'
    """
    day = text("sheet.as_of", lang, day=as_of.strftime("%Y/%m/%d")) if as_of is not None else ""
    return heading(business, what, day)


def reason_text(segment: str, row: dict[str, Any], lang: str) -> str:
    """Why a customer is on the list, in words a call-centre agent can read out."""
    parts = [segment_label(segment, lang)]
    if row.get("near_loyal_missing"):
        missing = text("list.and", lang).join(segment_label(m, lang) for m in row["near_loyal_missing"].split(","))
        parts.append(text("list.missing", lang, missing=missing))
    if row.get("lost_reason"):
        parts.append(segment_label(row["lost_reason"], lang))
    if segment == "lapsing" and row.get("mean_interval_days"):
        parts.append(text("list.lapsing", lang, days=row["recency_days"], interval=row["mean_interval_days"]))
    if row.get("nps_score") is not None:
        parts.append(text("reason.nps", lang, n=row["nps_score"]))
    return " / ".join(dict.fromkeys(p for p in parts if p))


def _value(key: str, value: Any, lang: str) -> Any:
    if key == "matrix_cell" or key == "nps_class":
        return segment_label(value, lang)
    if key == "rfm_rank" and value is not None:
        return segment_label(f"rank_{value}", lang)
    if isinstance(value, dt.datetime):
        return value.date() if key == "last_order_at" else value
    return value


def _shown(table: pa.Table) -> dict[str, str]:
    return _SHOWN | (_PREDICTED if "churn_risk" in table.column_names else {})


def _rows(table: pa.Table, segment: str, lang: str) -> Iterable[list[Any]]:
    shown = _shown(table)
    for batch in table.to_batches(max_chunksize=50_000):
        for row in batch.to_pylist():
            row["reason"] = reason_text(segment, row, lang)
            # churn risk a fraction, value at risk yen: the writer rounds them as each format shows them;
            # either may be missing (NULL: value at risk when BG/NBD did not fit): an empty cell
            row["churn_reasons"] = row.get(f"churn_reasons_{lang}")
            yield [_value(k, row.get(k), lang) for k in shown]


def write_customer_list(table: pa.Table, segment: str, path: Path | None, fmt: str, lang: str = "ja", *,
                        as_of: dt.date | None = None, business: str = "") -> int:
    """Write the members of `segment` to `path` (csv or xlsx; None: csv on standard output); returns
    the number of customers.

    Through `kizuna._sheets`: a name such as ``=HYPERLINK(…)`` is written as text, not a formula.
    The workbook's sheet is 顧客リスト_<segment> (Customers_<segment>); with `as_of` it has a title
    row with the business's name, the segment and the as-of date above the header.
    """
    if fmt not in EXPORT_FORMATS:
        raise KizunaError.keyed("error.export_format_unknown", fmt=repr(fmt), first=EXPORT_FORMATS[0],
                                second=EXPORT_FORMATS[1])
    columns = [Column(text(f"header.{key}", lang), kind) for key, kind in _shown(table).items()]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    name = segment_label(segment, lang) or label("customers", lang)
    sheet = text("sheet.customer_list", lang, segment=name)
    title = list_heading(sheet, lang, as_of=as_of, business=business) if as_of is not None else None
    return write_table(path, columns, _rows(table, segment, lang), fmt=fmt, sheet=sheet, title=title)


def check_output(path: Path | str | None, fmt: str, reserved: Iterable[Path] = (), *,
                 unknown: str = "error.export_format_unknown") -> Path | None:
    """`path`, once it is known that a `fmt` file may be written there, before anything is computed:
    `fmt` is csv or xlsx, `path` is not a folder, is somewhere one can write, and is none of the
    `reserved` files and not inside the `reserved` folders (a workspace's store, kizuna.toml, rejects).
    `path` None is standard output, which takes a CSV only. `unknown`: the catalogue's key of the message
    for an unknown format (its fields `fmt` and `formats`)."""
    if fmt not in EXPORT_FORMATS:
        raise KizunaError.keyed(unknown, fmt=repr(fmt), first=EXPORT_FORMATS[0], second=EXPORT_FORMATS[1])
    if path is None:
        if fmt != "csv":
            raise KizunaError.keyed("error.stdout_csv_only", fmt=fmt)
        return None
    path = Path(path)
    target = path.resolve()
    for entry in (p.resolve() for p in reserved):  # resolved: ws/../ws/kizuna.duckdb is the store too
        if target == entry or entry in target.parents:
            key = "error.export_over_own_file" if target == entry else "error.export_into_own_folder"
            raise KizunaError.keyed(key, path=str(path), name=entry.name)
    if target.is_dir():
        raise KizunaError.keyed("error.export_to_folder", path=str(path), example=str(path / "list.csv"))
    folder = next((p for p in target.parents if p.exists()), None)
    if folder is None or not folder.is_dir():
        raise KizunaError.keyed("error.export_below_file", path=str(path), folder=str(folder))
    writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        raise KizunaError.keyed("error.export_not_permitted", path=str(path))
    return path


def export_segment(scores: ibis.Table, customers: ibis.Table, segment: str, path: Path | None, fmt: str = "csv",
                   lang: str = "ja", *, predictions: ibis.Table | None = None, as_of: dt.date | None = None,
                   business: str = "") -> int:
    """Write the customer list of a segment (cell, rank, named segment or flag; see
    `kizuna.analytics.segment_members`) to `path` (checked first with `check_output`; None: csv on
    standard output); returns its customers. `as_of` and `business` make the workbook's title row."""
    from kizuna.analytics import segment_members

    key, members = segment_members(scores, customers, segment, predictions)
    rows = members.to_pyarrow()
    try:
        return write_customer_list(rows, key, path, fmt, lang, as_of=as_of, business=business)
    except OSError as exc:  # disk full, or the folder changed since the check
        raise KizunaError.keyed("error.export_failed", path=str(path), problem=exc.strerror) from None
