"""The store: canonical tables on DuckDB (default), PostgreSQL or Spark, reached through Ibis."""

from kizuna.store._schema import KINDS, TABLES, Column, TableSpec, table_for_kind

__all__ = [
    "KINDS", "TABLES", "Column", "Store", "copy_store", "TableSpec", "local_spark_session", "redact",
    "table_for_kind",
]

# The engine loads on first use (PEP 562): the table definitions are enough for `kizuna --help`.
_LAZY = {"Store": "_engine", "local_spark_session": "_engine", "redact": "_engine", "copy_store": "_copy"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"kizuna.store.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'kizuna.store' has no attribute {name!r}")
