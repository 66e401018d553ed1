"""Column mappings: from a file's own headers (顧客ID, 受注番号 …) to kizuna's columns.

A mapping file is TOML; one file can serve every export of a shop::

    [columns]                 # every kind
    "購入日" = "ordered_at"

    [columns.orders]          # only when the file is imported as orders
    "受注番号" = "order_id"

    [columns.products]
    "商品名" = "name"

    [values.status]
    "キャンセル済" = "cancelled"

Entries for headers a file does not have are ignored, and so are shared entries whose
column the kind being imported does not have; only a column that no kind has is an
error (a typo). Headers are compared after NFKC normalisation, trimming and
lower-casing, so "顧客ＩＤ" and "顧客ID" are the same header.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from kizuna._errors import MappingError
from kizuna.store import KINDS, TABLES

__all__ = ["ColumnMapping", "looks_like_data", "normalise_header"]

# Parts that the import joins (see _platforms.COMPOSED) and steering fields: a mapping may name them.
EXTRA_TARGETS = ("product_name", "name_last", "name_first", "kana_last", "kana_first", "phone1", "phone2",
                 "phone3", "postal1", "postal2", "prefecture", "city", "address1", "address2",
                 "ordered_date", "ordered_time", "cancelled_at", "cancel_flag", "line_kind")


def normalise_header(header: str) -> str:
    return unicodedata.normalize("NFKC", header).strip().strip("\ufeff").lower()


def _kind_of(name: str) -> str | None:
    """A [columns.X] table name: a kind (order-items) or a table name (order_items)."""
    if name in KINDS:
        return name
    return TABLES[name].kind if name in TABLES else None


@dataclass(frozen=True)
class ColumnMapping:
    columns: dict[str, str] = field(default_factory=dict)  # normalised header -> column, every kind
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {value: value}
    path: Path | None = None  # the mapping file, for messages about it
    by_kind: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> {header: column}

    @classmethod
    def load(cls, path: Path) -> ColumnMapping:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise MappingError.keyed("mapping.not_found", path=path) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise MappingError.keyed("mapping.not_toml", path=path, problem=str(exc)) from None
        unknown = set(raw) - {"columns", "values"}
        if unknown:
            raise MappingError.keyed("mapping.unknown_tables", path=path, tables=", ".join(sorted(unknown)))
        columns = {k: v for k, v in raw.get("columns", {}).items() if not isinstance(v, dict)}
        per_kind = {k: v for k, v in raw.get("columns", {}).items() if isinstance(v, dict)}
        values = raw.get("values", {})
        wrong_kinds = sorted(k for k in per_kind if _kind_of(k) is None)
        if wrong_kinds:
            raise MappingError.keyed("mapping.unknown_kind", path=path, kind=wrong_kinds[0], kinds=", ".join(KINDS))
        tables = [columns, *per_kind.values()]
        if not all(isinstance(v, str) for t in tables for v in t.values()) or not all(
            isinstance(t, dict) and all(isinstance(x, str) for x in t.values())
            for t in values.values()
        ):
            raise MappingError.keyed("mapping.entries", path=path)
        mapping = cls(
            columns={normalise_header(k): v for k, v in columns.items()},
            values={col: {unicodedata.normalize("NFKC", k).strip(): v for k, v in table.items()}
                    for col, table in values.items()},
            path=Path(path),
            by_kind={_kind_of(kind): {normalise_header(k): v for k, v in table.items()}
                     for kind, table in per_kind.items()},
        )
        mapping.check()
        return mapping

    def columns_for(self, kind: str) -> dict[str, str]:
        """Header -> column for a file of `kind`: its own table over the shared one."""
        return {**self.columns, **self.by_kind.get(kind, {})}

    def check(self, spec: object = None) -> None:
        """Fail early when the mapping names a column that no kind has (a typo).

        (`spec` is accepted for callers of the one-kind mappings of before.)
        """
        known = {c for table in TABLES.values() for c in table.column_names} | set(EXTRA_TARGETS)
        named = set(self.columns.values()) | set(self.values)
        for kind, table in self.by_kind.items():
            allowed = set(KINDS[kind].column_names) | set(EXTRA_TARGETS)
            if kind == "orders":  # an orders export names its buyers and lines too
                allowed |= set(TABLES["customers"].column_names) | set(TABLES["order_items"].column_names)
            wrong = sorted(c for c in table.values() if c not in allowed)
            if wrong:
                raise MappingError.keyed("mapping.not_of_kind", path=self.path, names=", ".join(wrong), kind=kind,
                                         columns=", ".join(KINDS[kind].column_names))
        wrong = sorted(c for c in named if c not in known)
        if wrong:
            raise MappingError.keyed("mapping.unknown_columns", path=self.path, names=", ".join(wrong))


_DATA_LIKE = re.compile(r"^[-+¥\\$]?[\d.,/:\- ]+$|@|^\d{4}[-/年]")


def looks_like_data(headers: list[str]) -> bool:
    """A first row of amounts, dates or e-mail addresses is data: the file has no header row.

    (Its cells are a customer's data, so the message must not quote them.)
    """
    cells = [unicodedata.normalize("NFKC", h).strip() for h in headers]
    return sum(bool(_DATA_LIKE.search(c)) for c in cells) >= max(1, len(cells) // 3)
