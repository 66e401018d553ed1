"""The store on Spark: `SparkStore`, and the one local Spark session of a process.

Spark has no transactions, no temporary tables, no UPDATE and no DELETE: a change to stored
rows builds the new table aside and swaps it in whole, table by table.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import pyarrow as pa

from kizuna._errors import StoreError
from kizuna.store._engine import BatchOut, Store, _hex, _unhex, conform

__all__ = ["CollectedRows", "SparkStore", "collected_rows", "local_spark_session"]


class SparkStore(Store):
    """A workspace's tables in a Spark catalog (a local session's warehouse by default)."""

    engine = "pyspark"
    label = "Spark"
    transactional = False
    distributed = True

    @classmethod
    def _open(cls, url: str, *, home: Path | None, memory_limit: str, create: bool, read_only: bool,
              lock_wait: float) -> SparkStore:
        backend = ibis.pyspark.connect(local_spark_session(home, master=spark_master(url)))
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

    def create_mapped(self, name: str, rows: ibis.Table, function: Callable[[pa.RecordBatch], BatchOut],
                      schema: ibis.Schema, *, batch_rows: int = 100_000) -> ibis.Table:
        """In the executors: ``mapInArrow`` runs `function` (pickled with what it holds, e.g. fitted
        models) on each partition's batches, and the executors write table `name`; nothing of the
        rows comes to the driver. The executors' Python needs the same kizuna installed."""
        from ibis.backends.pyspark.datatypes import PySparkSchema

        session = self.backend._session
        target = schema.to_pyarrow()

        def mapped(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                if batch.num_rows:  # `function` is never given an empty batch
                    yield from conform(function(_naive(batch)), target).to_batches()

        frame = session.sql(self.backend.compile(rows))
        previous = session.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
        session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        try:
            out = frame.mapInArrow(mapped, PySparkSchema.from_ibis(schema))
            self.drop(name)
            out.write.saveAsTable(name)
        finally:
            session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
        return self.table(name)

    @staticmethod
    def _salted_digest(value: ibis.Value, salt: bytes) -> ibis.Value:
        return _sha2(_unhex(ibis.literal(salt.hex()) + _hex(value)), 256).substr(0, 16).lower()

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


@ibis.udf.scalar.builtin(name="sha2")
def _sha2(value: bytes, bits: int) -> str:
    ...


def _naive(batch: pa.RecordBatch) -> pa.RecordBatch:
    # Spark hands timestamps to Python tagged with the session's zone (UTC): the wall clock without it
    fields = [pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) and f.type.tz else f
              for f in batch.schema]
    return batch if fields == list(batch.schema) else batch.cast(pa.schema(fields))


@dataclass
class CollectedRows:
    """The rows Spark sent to this process (the driver) while counting: one entry per collect."""

    collects: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.collects)

    @property
    def largest(self) -> int:
        return max(self.collects, default=0)


_counting: list[CollectedRows] = []


@contextlib.contextmanager
def collected_rows() -> Iterator[CollectedRows]:
    """Count the rows every Spark query of this process brings back to it, while the block runs.

    Measured where PySpark receives them: ``DataFrame.collect`` (rows, and pandas without Arrow),
    ``_collect_as_arrow`` (``toArrow``, ``toPandas`` with Arrow: what Ibis' ``to_pyarrow`` uses) and
    ``toLocalIterator``; catalog look-ups through SQL count too. Rows written by the executors
    (``create_mapped``) never cross and are not counted.
    """
    _install_counting()
    counter = CollectedRows()
    _counting.append(counter)
    try:
        yield counter
    finally:
        _counting.remove(counter)


def _count(rows: int) -> None:
    for counter in _counting:
        counter.collects.append(rows)


def _install_counting() -> None:
    from pyspark.sql.classic.dataframe import DataFrame

    if getattr(DataFrame, "_kizuna_counting", False):
        return
    collect, as_arrow, iterate = DataFrame.collect, DataFrame._collect_as_arrow, DataFrame.toLocalIterator

    def counted_collect(self):
        rows = collect(self)
        _count(len(rows))
        return rows

    def counted_arrow(self, *args, **kwargs):
        batches = as_arrow(self, *args, **kwargs)
        _count(sum(b.num_rows for b in batches))
        return batches

    def counted_iterator(self, *args, **kwargs):
        for row in iterate(self, *args, **kwargs):
            _count(1)
            yield row

    DataFrame.collect, DataFrame._collect_as_arrow, DataFrame.toLocalIterator = (counted_collect, counted_arrow,
                                                                               counted_iterator)
    DataFrame._kizuna_counting = True


_spark_session = None


def spark_master(url: str) -> str:
    """Spark's master for a store URL: ``pyspark://local`` is ``local[2]``; ``pyspark://local[8]``,
    ``pyspark://yarn`` as written; ``pyspark://host:7077`` a standalone cluster (``spark://host:7077``)."""
    rest = url.removeprefix("pyspark://").strip("/")
    if rest in ("", "local"):
        return "local[2]"
    if rest.startswith("local[") or rest == "yarn" or "://" in rest:
        return rest
    return f"spark://{rest}"


def local_spark_session(home: Path | None = None, *, master: str = "local[2]"):
    """One Spark session per process (~10 s to start): local, listening on loopback only, by default.

    With `home` (a workspace folder) a local session's tables outlive the process: they are
    kept in ``home/spark-warehouse`` and catalogued in an embedded Derby metastore in
    ``home/spark-metastore``, so the next ``kizuna`` command finds them. Without it the
    catalog is in memory (tests, notebooks that bring their own session). On a cluster
    (`master` not ``local[…]``) the warehouse, the metastore and the addresses are the
    cluster's own (spark-defaults.conf, hive-site.xml; docs/spark.md). The first call in a
    process decides; later calls get the same session.
    """
    global _spark_session
    if _spark_session is None:
        from pyspark.sql import SparkSession

        local = master.startswith("local")
        # the executors' Python must import kizuna (`create_mapped`): locally, this very interpreter
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable if local else "python3")
        builder = (
            SparkSession.builder.master(master)
            .appName("kizuna")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.ansi.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
        if local:
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = (builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
                       .config("spark.sql.shuffle.partitions", "4"))
        if home is not None and local:
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
        elif not local:  # the cluster's metastore keeps the tables between commands
            builder = builder.enableHiveSupport()
        _spark_session = builder.getOrCreate()
        _spark_session.sparkContext.setLogLevel("ERROR")
    return _spark_session
