"""Column mappings: from a file's own headers (顧客ID, 受注番号 …) to kizuna's columns.

A mapping file is TOML::

    [columns]
    "受注番号" = "order_id"
    "購入日" = "ordered_at"

    [values.status]
    "キャンセル済" = "cancelled"

Headers are compared after NFKC normalisation, trimming and lower-casing, so
"顧客ＩＤ" and "顧客ID" are the same header.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from kizuna._errors import MappingError, MissingColumnsError
from kizuna.importing._values import HEADER_ALIASES
from kizuna.store import TableSpec

__all__ = ["ColumnMapping", "normalise_header", "resolve_headers"]


def normalise_header(header: str) -> str:
    return unicodedata.normalize("NFKC", header).strip().strip("\ufeff").lower()


@dataclass(frozen=True)
class ColumnMapping:
    columns: dict[str, str] = field(default_factory=dict)  # normalised header -> column
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {value: value}
    path: Path | None = None  # the mapping file, for messages about it

    @classmethod
    def load(cls, path: Path) -> ColumnMapping:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise MappingError("mapping file not found. Check the --mapping path.", path=path) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise MappingError(f"not a valid TOML mapping file ({exc}).", path=path) from None
        unknown = set(raw) - {"columns", "values"}
        if unknown:
            raise MappingError(
                f"unknown table(s) {', '.join(sorted(unknown))}; a mapping has [columns] "
                "and [values.COLUMN].",
                path=path,
            )
        columns = raw.get("columns", {})
        values = raw.get("values", {})
        if not all(isinstance(v, str) for v in columns.values()) or not all(
            isinstance(t, dict) and all(isinstance(x, str) for x in t.values())
            for t in values.values()
        ):
            raise MappingError(
                'every entry must be "source" = "kizuna name", in [columns] and [values.COLUMN].',
                path=path,
            )
        return cls(
            columns={normalise_header(k): v for k, v in columns.items()},
            values={col: {unicodedata.normalize("NFKC", k).strip(): v for k, v in table.items()}
                    for col, table in values.items()},
            path=Path(path),
        )

    def check(self, spec: TableSpec) -> None:
        """Fail early when the mapping names a column this kind does not have."""
        known = set(spec.column_names)
        wrong = sorted({c for c in self.columns.values() if c not in known}
                       | {c for c in self.values if c not in known})
        if wrong:
            raise MappingError(
                f"the mapping names {', '.join(wrong)}, which {spec.kind} does not have; "
                f"columns of {spec.kind}: {', '.join(spec.column_names)}.",
                path=self.path,
            )


def resolve_headers(
    headers: list[str], names: list[str], spec: TableSpec, mapping: ColumnMapping, path: Path,
    unreadable: list[str] = (),
) -> tuple[dict[str, str], list[str]]:
    """Map each header onto a canonical column; return (batch name -> column, ignored headers).

    `names` are the batch column names of `headers` (see `Source.names`). Order of
    preference: the mapping file, the canonical name itself, then the common Japanese
    headers kizuna knows for this kind. Blank headers are not data and not listed.
    """
    known = set(spec.column_names)
    aliases = HEADER_ALIASES.get(spec.kind, {})
    resolved: dict[str, str] = {}
    ignored: list[str] = []
    taken: set[str] = set()
    for header, name in zip(headers, names, strict=True):
        key = normalise_header(header)
        if not key:
            continue
        column = mapping.columns.get(key) or (key if key in known else None) or aliases.get(key)
        if column is None or column in taken:
            ignored.append(header)
            continue
        resolved[name] = column
        taken.add(column)
    ignored.extend(unreadable)
    missing = [c for c in spec.required if c not in taken]
    if missing:
        shown = [h for h in headers if h.strip()]
        if _looks_like_data(shown):
            raise MissingColumnsError(path, spec.kind, missing, None)
        raise MissingColumnsError(path, spec.kind, missing, shown + list(unreadable))
    return resolved, ignored


_DATA_LIKE = re.compile(r"^[-+¥\\$]?[\d.,/:\- ]+$|@|^\d{4}[-/年]")


def _looks_like_data(headers: list[str]) -> bool:
    """A first row of amounts, dates or e-mail addresses is data: the file has no header row.

    (Its cells are a customer's data, so the message must not quote them.)
    """
    cells = [unicodedata.normalize("NFKC", h).strip() for h in headers]
    return sum(bool(_DATA_LIKE.search(c)) for c in cells) >= max(1, len(cells) // 3)
