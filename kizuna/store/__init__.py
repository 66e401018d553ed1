"""The store: canonical tables on DuckDB (default), PostgreSQL or Spark, reached through Ibis."""

from kizuna.store._copy import copy_store
from kizuna.store._engine import Store, local_spark_session, redact
from kizuna.store._schema import KINDS, TABLES, Column, TableSpec, table_for_kind

__all__ = [
    "KINDS", "TABLES", "Column", "Store", "copy_store", "TableSpec", "local_spark_session", "redact",
    "table_for_kind",
]
