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
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "FileFormatError",
    "KizunaError",
    "MappingError",
    "MissingColumnsError",
    "NoDataError",
    "SourceImportError",
    "StoreError",
    "WorkspaceError",
]


class KizunaError(Exception):
    """Root of every error kizuna reports to a user."""


class WorkspaceError(KizunaError):
    """The workspace directory or its kizuna.toml is missing or wrong."""


class StoreError(KizunaError):
    """The store cannot be reached, or does not hold what a command needs."""


class NoDataError(StoreError):
    """A table that a command needs is empty."""

    def __init__(self, table: str, hint: str) -> None:
        self.table = table
        super().__init__(f"No {table} in this workspace. {hint}")


class SourceImportError(KizunaError):
    """A whole file cannot be imported (row problems are rejects instead)."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        prefix = f"{self.path}: " if self.path is not None else ""
        super().__init__(prefix + message)


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
        hint = (f'Map your headers onto kizuna\'s columns with --mapping FILE.toml ([columns] "your header" = '
                f'"{missing[0]}").')
        if sheets:
            super().__init__(
                f"no sheet of the workbook ({', '.join(sheets)}) has the column(s) {', '.join(missing)} "
                f"for {kind}. Name the sheet with --sheet, and map its headers if they differ. {hint}",
                path=path,
            )
            return
        if found is None:
            super().__init__(
                f"the first row looks like data, not a header: kizuna needs a header row naming the "
                f"columns ({', '.join(missing)} for {kind}). Add one, or export the file with headers.",
                path=path,
            )
            return
        listed = ", ".join(found[:self.SHOWN]) or "no header"
        if len(found) > self.SHOWN:
            listed += f" … and {len(found) - self.SHOWN} more"
        super().__init__(
            f"required column(s) {', '.join(missing)} for {kind} not found; the file has {listed}. {hint}",
            path=path,
        )


class MappingError(SourceImportError):
    """The --mapping file cannot be read or names unknown columns."""
