"""A folder of exports, imported in dependency order (customers before their orders …)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kizuna._errors import FileFormatError
from kizuna.importing._importer import ImportSummary, _choose_plan, import_file
from kizuna.importing._mapping import ColumnMapping
from kizuna.importing._sources import open_source
from kizuna.store import KINDS, Store

__all__ = ["READABLE", "files_in_order", "import_folder"]

READABLE = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".parquet", ".pq")


def files_in_order(folder: Path | str, mapping: ColumnMapping | None = None,
                   platform: str | None = None) -> list[tuple[str, Path]]:
    """(kind, file) for every export in `folder`, referenced kinds first, then by file name.

    Every file's kind is told from its headers before anything is imported, so that a
    file kizuna cannot read stops the folder before the store changes. `platform` reads every
    file as that platform's export.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileFormatError.keyed("error.not_a_folder", path=folder)
    mapping = mapping or ColumnMapping()
    found: list[tuple[str, Path]] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in READABLE or path.name.startswith((".", "~$")):
            continue
        source = open_source(path)
        _, plan = _choose_plan(source, None, mapping, path, sheet_given=False, platform=platform)
        found.append((plan.kind, path))
    if not found:
        raise FileFormatError.keyed("error.folder_nothing_to_import", path=folder, kinds=list(READABLE))
    order = list(KINDS)
    return sorted(found, key=lambda item: (order.index(item[0]), item[1].name))


def import_folder(store: Store, folder: Path | str, *, mapping: ColumnMapping | None = None,
                  platform: str | None = None, on_file: Callable[[str, Path], None] | None = None,
                  **options: Any) -> list[ImportSummary]:
    """Import every export in `folder` (`files_in_order`: referenced kinds first), each with
    `import_file(store, kind, path, mapping=mapping, platform=platform, **options)`.

    Each file's kind is told from its headers before the first import starts; `on_file(kind, path)`
    is called as each file begins.
    """
    summaries = []
    for kind, path in files_in_order(folder, mapping, platform):
        if on_file:
            on_file(kind, path)
        summaries.append(import_file(store, kind, path, mapping=mapping, platform=platform, **options))
    return summaries
