"""Importing customers, orders and the rest from CSV, Excel and Parquet exports.

Platform exports (EC-CUBE, Shopify, 楽天 RMS, Yahoo!ショッピング, Next Engine, BASE,
MakeShop, futureshop) are recognised from their headers and need no mapping.
"""

from kizuna.importing._calls import CallError, record_call
from kizuna.importing._folder import files_in_order, import_folder
from kizuna.importing._importer import ImportSummary, TableCounts, import_file
from kizuna.importing._mapping import ColumnMapping
from kizuna.importing._platforms import PLATFORMS, Preset
from kizuna.importing._prepare import guest_id
from kizuna.importing._settings import ImportSettings
from kizuna.importing._sources import detect_encoding, open_source

__all__ = ["PLATFORMS", "CallError", "ColumnMapping", "ImportSettings", "ImportSummary", "Preset", "TableCounts",
           "detect_encoding", "files_in_order", "guest_id", "import_file", "import_folder", "open_source",
           "record_call"]
