"""kizuna: find loyal customers and the heavy buyers about to leave, act, and prove it worked."""

from kizuna._errors import (
    FileFormatError,
    KizunaError,
    MappingError,
    MissingColumnsError,
    NoDataError,
    SourceImportError,
    StoreError,
    WorkspaceError,
)

# The rest loads on first use (PEP 562): `import kizuna` and `kizuna --help` do not pay for Ibis.
_LAZY = {
    "ColumnMapping": "kizuna.importing", "ImportSummary": "kizuna.importing",
    "Settings": "kizuna.workspace", "Workspace": "kizuna.workspace",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kizuna' has no attribute {name!r}")

__all__ = [
    "ColumnMapping", "FileFormatError", "ImportSummary", "KizunaError", "MappingError",
    "MissingColumnsError", "NoDataError", "Settings", "SourceImportError", "StoreError",
    "Workspace", "WorkspaceError",
]
__version__ = "0.1.0"
