"""The store: canonical tables on DuckDB (default), PostgreSQL or Spark, reached through Ibis.

`Store` is the interface callers use; `Store.connect(url)` gives the class of its engine
(`DuckDBStore`, `PostgresStore`, `SparkStore`), the only code that knows which engine it is.
"""

from kizuna._lazy import lazy_getattr
from kizuna.store._schema import KINDS, TABLES, Column, TableSpec, table_for_kind
from kizuna.store._settings import StoreSettings

__all__ = [
    "KINDS", "TABLES", "CollectedRows", "Column", "DuckDBStore", "PostgresStore", "SparkStore", "Store", "StoreBusy",
    "StoreSettings",
    "cluster_by_customer", "collected_rows", "copy_store", "count_rows", "customer_records", "customer_rows",
    "first_by",
    "create_list_rows", "index_by_customer", "list_places", "list_positions", "placed_records", "placed_rows",
    "position_column", "replace_list_columns",
    "rows_of_customers",
    "salted_digest", "sorted_page", "TableSpec", "local_spark_session", "redact",
    "table_for_kind", "to_arrow", "kept_statements", "scratch_table",
]

# The engine loads on first use (PEP 562): the table definitions are enough for `kizuna --help`.
_LAZY = {"Store": "_engine", "redact": "_engine", "DuckDBStore": "_duckdb", "PostgresStore": "_postgres",
         "SparkStore": "_spark", "local_spark_session": "_spark", "copy_store": "_copy",
         "StoreBusy": "_busy", "customer_rows": "_paging", "customer_records": "_paging",
         "cluster_by_customer": "_paging",
         "sorted_page": "_paging", "count_rows": "_paging", "rows_of_customers": "_paging",
         "index_by_customer": "_paging",
         "list_places": "_paging", "list_positions": "_paging", "placed_rows": "_paging", "placed_records": "_paging",
         "create_list_rows": "_paging", "replace_list_columns": "_paging",
         "position_column": "_paging",
         "CollectedRows": "_spark", "collected_rows": "_spark", "first_by": "_engine",
         "salted_digest": "_engine", "to_arrow": "_engine",
         "kept_statements": "_statements", "scratch_table": "_engine"}


__getattr__ = lazy_getattr(__name__, _LAZY)
