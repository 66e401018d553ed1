"""Importing customers, orders and the rest from CSV, Excel and Parquet exports."""

from kizuna.importing._importer import ImportSummary, import_file
from kizuna.importing._mapping import ColumnMapping
from kizuna.importing._sources import detect_encoding, open_source

__all__ = ["ColumnMapping", "ImportSummary", "detect_encoding", "import_file", "open_source"]
