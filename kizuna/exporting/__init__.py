"""Customer lists for people outside kizuna: CSV (Excel-friendly) or .xlsx, labelled in ja or en."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kizuna._errors import KizunaError
from kizuna._sheets import SHEET_FORMATS, write_table
from kizuna.i18n import label, segment_label, text

if TYPE_CHECKING:
    import ibis

__all__ = ["EXPORT_FORMATS", "check_output", "export_segment", "reason_text", "write_customer_list"]

EXPORT_FORMATS = SHEET_FORMATS

_SHOWN = ("customer_id", "name", "name_kana", "email", "phone", "postal_code", "address", "ltv_revenue",
          "orders", "last_order_at", "recency_days", "nps_score", "nps_class", "matrix_cell", "rfm_rank", "reason")
# Shown after the others when the list carries predictions (kizuna predict was run).
_PREDICTED = ("churn_risk", "value_at_risk", "churn_reasons")
# column -> (ja, en) header, from the catalogue ("header.*"); kizuna.workspace (forget) reads it
_HEADERS = {key: (text(f"header.{key}", "ja"), text(f"header.{key}", "en")) for key in _SHOWN + _PREDICTED}


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


def _shown(table: pa.Table) -> tuple[str, ...]:
    return _SHOWN + (_PREDICTED if "churn_risk" in table.column_names else ())


def _rows(table: pa.Table, segment: str, lang: str) -> Iterable[list[Any]]:
    shown = _shown(table)
    for batch in table.to_batches(max_chunksize=50_000):
        for row in batch.to_pylist():
            row["reason"] = reason_text(segment, row, lang)
            # either may be missing (NULL: value at risk when BG/NBD did not fit): an empty cell
            row["churn_risk"] = _rounded(row.get("churn_risk"), 100, 1)
            row["value_at_risk"] = _rounded(row.get("value_at_risk"))
            row["churn_reasons"] = row.get(f"churn_reasons_{lang}")
            yield [_value(k, row.get(k), lang) for k in shown]


def _rounded(value: Any, scale: float = 1, digits: int | None = None) -> float | int | None:
    if value is None or not math.isfinite(value):
        return None
    return round(scale * value, digits) if digits is not None else round(scale * value)


def write_customer_list(table: pa.Table, segment: str, path: Path, fmt: str, lang: str = "ja") -> int:
    """Write the members of `segment` to `path` (csv or xlsx); returns the number of customers.

    Through `kizuna._sheets`: a name such as ``=HYPERLINK(…)`` is written as text, not a formula.
    """
    if fmt not in EXPORT_FORMATS:
        raise KizunaError(f"unknown export format {fmt!r}; choose csv or xlsx.")
    headers = [text(f"header.{k}", lang) for k in _shown(table)]
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = segment_label(segment, lang) or label("customers", lang)
    return write_table(path, headers, _rows(table, segment, lang), fmt=fmt, sheet=sheet)


def check_output(path: Path | str, fmt: str, reserved: Iterable[Path] = (), *,
                 unknown: str = "unknown export format {fmt!r}") -> Path:
    """`path`, once it is known that a `fmt` file may be written there, before anything is computed:
    `fmt` is csv or xlsx, `path` is not a folder, is somewhere one can write, and is none of the
    `reserved` files and not inside the `reserved` folders (a workspace's store, kizuna.toml, rejects).
    `unknown`: the start of the message for an unknown format."""
    path = Path(path)
    if fmt not in EXPORT_FORMATS:
        raise KizunaError(f"{unknown.format(fmt=fmt)}; choose {' or '.join(EXPORT_FORMATS)}.")
    target = path.resolve()
    for entry in (p.resolve() for p in reserved):  # resolved: ws/../ws/kizuna.duckdb is the store too
        if target == entry or entry in target.parents:
            what = (f"this workspace's {entry.name}" if target == entry
                    else f"in this workspace's {entry.name} folder")
            raise KizunaError(
                f"{path} is {what}, which kizuna keeps for itself; an export must not write over it. "
                "Write the list elsewhere with -o FILE."
            )
    if target.is_dir():
        raise KizunaError(f"{path} is a folder; give a file name with -o, e.g. -o {path / 'list.csv'}.")
    folder = next((p for p in target.parents if p.exists()), None)
    if folder is None or not folder.is_dir():
        raise KizunaError(f"cannot write {path}: {folder} is a file, not a folder. Choose another path with -o.")
    writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        raise KizunaError(f"cannot write {path}: permission denied. Choose another path with -o.")
    return path


def export_segment(scores: ibis.Table, customers: ibis.Table, segment: str, path: Path, fmt: str = "csv",
                   lang: str = "ja", *, predictions: ibis.Table | None = None) -> int:
    """Write the customer list of a segment (cell, rank, named segment or flag; see
    `kizuna.analytics.segment_members`) to `path` (checked first with `check_output`); returns its customers."""
    from kizuna.analytics import segment_members

    key, members = segment_members(scores, customers, segment, predictions)
    rows = members.to_pyarrow()
    try:
        return write_customer_list(rows, key, path, fmt, lang)
    except OSError as exc:  # disk full, or the folder changed since the check
        raise KizunaError(f"cannot write {path} ({exc.strerror}). Choose another file with -o.") from None
