"""Importing customers, orders and the rest from CSV, Excel and Parquet exports.

Platform exports (EC-CUBE, Shopify, 楽天 RMS, Yahoo!ショッピング, Next Engine, BASE,
MakeShop, futureshop) are recognised from their headers and need no mapping.
"""

from typing import TYPE_CHECKING

from kizuna._lazy import lazy_getattr
from kizuna.importing._settings import ImportSettings

if TYPE_CHECKING:
    from kizuna.importing._calls import CallError, record_call
    from kizuna.importing._folder import files_in_order, import_folder
    from kizuna.importing._importer import ImportSummary, TableCounts, import_file
    from kizuna.importing._mapping import ColumnMapping
    from kizuna.importing._platforms import PLATFORMS, Preset
    from kizuna.importing._prepare import guest_id
    from kizuna.importing._sources import detect_encoding, open_source

__all__ = ["PLATFORMS", "CallError", "ColumnMapping", "ImportSettings", "ImportSummary", "Preset", "TableCounts",
           "detect_encoding", "files_in_order", "guest_id", "import_file", "import_folder", "open_source",
           "record_call"]

# The importer loads on first use (PEP 562): the workspace composes ImportSettings into its settings, and
# commands that import nothing (analyze, kpi …) do not pay for the readers and parsers. (Their module-level
# Arrow constants would also load pandas, which PyArrow imports the first time it converts Python values.)
_LAZY = {"CallError": "_calls", "record_call": "_calls", "files_in_order": "_folder", "import_folder": "_folder",
         "ImportSummary": "_importer", "TableCounts": "_importer", "import_file": "_importer",
         "ColumnMapping": "_mapping", "PLATFORMS": "_platforms", "Preset": "_platforms", "guest_id": "_prepare",
         "detect_encoding": "_sources", "open_source": "_sources"}


__getattr__ = lazy_getattr(__name__, _LAZY)
