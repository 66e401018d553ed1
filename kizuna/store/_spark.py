"""The store on Spark: `SparkStore`, and the one local Spark session of a process.

Spark has no transactions, no temporary tables, no UPDATE and no DELETE: a change to stored
rows builds the new table aside and swaps it in whole, table by table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import ibis
import pyarrow as pa

from kizuna._errors import StoreError
from kizuna.store._engine import Store

__all__ = ["SparkStore", "local_spark_session"]


class SparkStore(Store):
    """A workspace's tables in a Spark catalog (a local session's warehouse by default)."""

    engine = "pyspark"
    label = "Spark"
    transactional = False

    @classmethod
    def _open(cls, url: str, *, home: Path | None, memory_limit: str, create: bool, read_only: bool,
              lock_wait: float) -> SparkStore:
        backend = ibis.pyspark.connect(local_spark_session(home))
        return cls(backend, url, memory_limit=memory_limit, lock_wait=lock_wait)

    def close(self) -> None:
        pass  # the Spark session outlives one store

    def describe(self) -> str:
        return self.label

    def _append_arrow(self, name: str, rows: pa.Table) -> None:
        from ibis.backends.pyspark.datatypes import PySparkSchema

        session = self.backend._session
        zone = session.conf.get("spark.sql.session.timeZone")
        if zone != "UTC":  # Ibis sets UTC; any other zone would shift every timestamp written below
            raise StoreError(f"the Spark session's time zone is {zone}; kizuna needs UTC (set by Ibis).")
        # Naive Arrow timestamps are read as UTC: with the session in UTC the wall-clock time
        # (and its date) stays as it was. Columns follow the table's order for insertInto.
        target = self.table(name).schema()
        rows = rows.select(target.names)
        schema = PySparkSchema.from_ibis(ibis.schema({c: target[c] for c in target.names}))
        session.createDataFrame(rows, schema=schema).write.insertInto(name)

    def arrow_batches(self, rows: ibis.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Ibis reads Spark through pandas, where a nullable int64 becomes float64 and loses
        digits past 2**53; Spark's own Arrow export is exact (and collects the table whole, as
        Ibis would). Its timestamps come tagged UTC, the session's zone: a cast drops it."""
        table = self.backend._session.sql(self.backend.compile(rows)).toArrow()
        yield from table.to_batches(max_chunksize=batch_rows)

    def same_database(self, other: Store) -> bool:
        # two Ibis backends may share one session and database
        return self is other or (isinstance(other, SparkStore) and self.backend._session is other.backend._session
                                 and self.backend.current_database == other.backend.current_database)

    def apply_changes(self, changes: Sequence[tuple[str, ibis.Table, Sequence[str] | None]]) -> None:
        """Table by table: Spark has no transaction (nor DELETE: keyed rows are swapped in whole)."""
        for target, rows, key in changes:
            if key:
                self._rewrite_without(target, rows, key)
            else:
                self.backend.insert(target, rows)

    def _rewrite_without(self, target: str, rows: ibis.Table, key: Sequence[str]) -> None:
        # Spark tables have no DELETE: build the new table aside, then swap it in.
        current = self.table(target)
        kept = current.anti_join(rows, list(key))
        merged = kept.union(rows.select(*current.columns))
        aside = f"{target}__rewrite"
        self.backend.create_table(aside, merged, overwrite=True)
        self.backend.create_table(target, self.table(aside), overwrite=True)
        self.drop(aside)

    def _rename(self, plans: Sequence[tuple[str, Sequence[str], int]], pairs: ibis.Table, mapping: str,
                old: str, new: str) -> None:
        """No UPDATE: each table is rebuilt aside and swapped in whole, one after the other."""
        for name, nulled, _ in plans:
            table = self.table(name)
            joined = table.left_join(pairs, table.customer_id == pairs[old])
            hit = joined[new].notnull()
            columns = {c: joined[c] for c in table.columns}
            columns["customer_id"] = joined[new].coalesce(joined["customer_id"])
            columns |= {c: ibis.ifelse(hit, ibis.null(table[c].type()), joined[c]) for c in nulled}
            aside = f"{name}__rename"
            self.backend.create_table(aside, joined.select(**columns), overwrite=True)
            self.backend.create_table(name, self.table(aside), overwrite=True)
            self.drop(aside)

    def reclaim(self, tables: Sequence[str] = ()) -> str:
        """``"tables_rewritten"``: nothing more; `rename_customers` rewrote the tables whole and
        Spark deleted their old files."""
        return "tables_rewritten"


_spark_session = None


def local_spark_session(home: Path | None = None):
    """One local Spark session per process, listening on loopback only (~10 s to start).

    With `home` (a workspace folder) the tables outlive the process: they are kept in
    ``home/spark-warehouse`` and catalogued in an embedded Derby metastore in
    ``home/spark-metastore``, so the next ``kizuna`` command finds them. Without it the
    catalog is in memory (tests, notebooks that bring their own session). The first call
    in a process decides; later calls get the same session.
    """
    global _spark_session
    if _spark_session is None:
        from pyspark.sql import SparkSession

        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (
            SparkSession.builder.master("local[2]")
            .appName("kizuna")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.ansi.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
        if home is not None:
            home = Path(home).resolve()
            metastore = home / "spark-metastore"
            builder = (
                builder.enableHiveSupport()
                .config("spark.sql.warehouse.dir", str(home / "spark-warehouse"))
                .config("spark.hadoop.javax.jdo.option.ConnectionURL",
                        f"jdbc:derby:;databaseName={metastore};create=true")
            )
            # Derby writes derby.log into the current folder unless told otherwise, and Spark's
            # own logging would bury the command's output.
            java_options = (f"-Dderby.stream.error.file={home / 'derby.log'} "
                            f"-Dlog4j2.configurationFile={Path(__file__).with_name('spark-log4j2.properties')}")
            os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f'--driver-java-options "{java_options}" pyspark-shell')
        _spark_session = builder.getOrCreate()
        _spark_session.sparkContext.setLogLevel("ERROR")
    return _spark_session
