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
from kizuna.importing import ColumnMapping, ImportSummary
from kizuna.workspace import Settings, Workspace

__all__ = [
    "ColumnMapping", "FileFormatError", "ImportSummary", "KizunaError", "MappingError",
    "MissingColumnsError", "NoDataError", "Settings", "SourceImportError", "StoreError",
    "Workspace", "WorkspaceError",
]
__version__ = "0.1.0"
