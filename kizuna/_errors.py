"""The one exception tree of kizuna.

::

    KizunaError                     anything kizuna reports to a user
    ├── WorkspaceError              no workspace, bad kizuna.toml, unknown setting
    ├── StoreError                  the store cannot be reached or lacks data
    │   └── NoDataError             a table needed by a command is empty
    └── ImportError_                a file cannot be imported at all (per-row
        │                           problems are rejects, not exceptions)
        ├── FileFormatError         unreadable file, unknown encoding or format
        ├── MissingColumnsError     required canonical columns are absent
        └── MappingError            the --mapping file is wrong

Every message says what happened and what to do next; the CLI prints it in one
line and exits with status 1, never with a traceback.

A message a person reads is a `Phrase`: a key of the catalogue (`kizuna.i18n`) and its values,
rendered in the reader's language where it is shown (the CLI's error line, the web's error page);
`str()` of an error is its English text, for logs. A value of a phrase may be a phrase itself (a
ScenarioError's problem inside its file and line). The catalogue sits above this module, so it
lends its renderer here when it is imported (`use_catalogue`); every place that shows an error
imports the catalogue first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

__all__ = [
    "FileFormatError",
    "KizunaError",
    "MappingError",
    "MissingColumnsError",
    "NoDataError",
    "Phrase",
    "SourceImportError",
    "StoreError",
    "WorkspaceError",
    "use_catalogue",
]

_render: Callable[[Phrase, str], str] | None = None


def use_catalogue(render: Callable[[Phrase, str], str]) -> None:
    """Set how a `Phrase` becomes text in a language (`kizuna.i18n` calls this when imported)."""
    global _render
    _render = render


@dataclass(frozen=True)
class Phrase:
    """A text of the catalogue: its key and the values of its {fields}, not yet in a language.

    >>> Phrase.of("error.in_file", path="a.csv", problem="…").key
    'error.in_file'
    """

    key: str
    values: Mapping[str, Any] = field(default_factory=dict)  # a dict: a phrase crosses processes (pickle)

    @classmethod
    def of(cls, key: str, /, **values: Any) -> Phrase:
        return cls(key, values)

    def text(self, lang: str = "en") -> str:
        """The phrase in `lang` (its key and values when no catalogue has been imported)."""
        if _render is None:
            return f"{self.key} {dict(self.values)}"
        return _render(self, lang)

    def __str__(self) -> str:
        return self.text("en")

    def __hash__(self) -> int:  # the values may be lists or dicts; equal phrases have equal keys
        return hash(self.key)


class KizunaError(Exception):
    """Root of every error kizuna reports to a user.

    Raised with a `Phrase` (``KizunaError.keyed("error.key", value=…)``) it is shown in the reader's
    language (`text`); raised with a plain string it is that string in any language.
    """

    phrase: Phrase | None = None

    def __init__(self, message: str | Phrase = "") -> None:
        if isinstance(message, Phrase):
            self.phrase = message
        super().__init__(message)

    @classmethod
    def keyed(cls, key: str, /, **values: Any) -> Self:
        """The error whose message is the catalogue's `key`, its {fields} filled from `values`."""
        return cls(Phrase.of(key, **values))

    def text(self, lang: str = "en") -> str:
        """The message in `lang` ("ja" or "en")."""
        return self.phrase.text(lang) if self.phrase is not None else super().__str__()

    def __str__(self) -> str:
        return self.text("en")


class WorkspaceError(KizunaError):
    """The workspace directory or its kizuna.toml is missing or wrong."""


class StoreError(KizunaError):
    """The store cannot be reached, or does not hold what a command needs."""


class NoDataError(StoreError):
    """A table that a command needs is empty."""

    def __init__(self, table: str | Phrase, hint: str | Phrase) -> None:
        self.table = table
        super().__init__(Phrase.of("error.no_data", table=table, hint=hint))


class SourceImportError(KizunaError):
    """A whole file cannot be imported (row problems are rejects instead)."""

    def __init__(self, message: str | Phrase, *, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is None:
            super().__init__(message)
        elif isinstance(message, Phrase):
            super().__init__(Phrase.of("error.in_file", path=str(self.path), problem=message))
        else:
            super().__init__(f"{self.path}: {message}")

    @classmethod
    def keyed(cls, key: str, /, path: Path | str | None = None, **values: Any) -> Self:
        return cls(Phrase.of(key, **values), path=path)


class FileFormatError(SourceImportError):
    """The file cannot be read: unknown format, encoding or broken structure."""


class MissingColumnsError(SourceImportError):
    """Required canonical columns are not in the file, even after the mapping.

    `found` is None when the first row is data rather than a header: its cells are a
    customer's data, so the message does not quote them.
    """

    SHOWN = 20

    def __init__(self, path: Path | str, kind: str, missing: list[str], found: list[str] | None,
                 sheets: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.missing = missing
        self.found = found
        columns, table = ", ".join(missing), Phrase.of(f"kind.{kind}")  # what the file holds, in words
        if sheets:
            super().__init__(Phrase.of("error.columns_in_no_sheet", sheets=", ".join(sheets), columns=columns,
                                       table=table, first=missing[0]), path=path)
            return
        if found is None:
            super().__init__(Phrase.of("error.columns_no_header", columns=columns, table=table), path=path)
            return
        listed = ", ".join(found[:self.SHOWN])
        more = len(found) - self.SHOWN
        super().__init__(Phrase.of("error.columns_missing", columns=columns, table=table, first=missing[0],
                                   found=Phrase.of("error.columns_found_more", listed=listed, n=more) if more > 0
                                   else listed or Phrase.of("error.columns_found_none")), path=path)


class MappingError(SourceImportError):
    """The --mapping file cannot be read or names unknown columns."""
