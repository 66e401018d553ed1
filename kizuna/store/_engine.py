"""Connecting to the store, and the few operations Ibis does not cover portably.

This is the one module that knows which engine it talks to: a DuckDB file by
default, PostgreSQL or Spark by URL. Everything else works on Ibis tables.

* ``duckdb:///path/kizuna.duckdb`` or a plain file path
* ``postgres://user:password@127.0.0.1:5432/dbname``
* ``pyspark://local`` (a local Spark session; an existing session can be wrapped
  with `Store.from_backend`)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import ibis
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from kizuna._errors import StoreError
from kizuna.store._schema import TABLES

__all__ = ["Store"]


class Store:
    """The tables of one workspace on one engine."""

    def __init__(self, backend: ibis.BaseBackend, url: str) -> None:
        self.backend = backend
        self.url = url

    # -- connecting -------------------------------------------------------------------
    @classmethod
    def connect(cls, url: str) -> Store:
        """Connect by URL or DuckDB file path and make sure the canonical tables exist."""
        try:
            if url.startswith("pyspark://"):
                backend = ibis.pyspark.connect(local_spark_session())
            elif url.startswith(("postgres://", "postgresql://")):
                backend = ibis.connect(url.replace("postgresql://", "postgres://", 1))
            else:
                path = url.removeprefix("duckdb://")
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                backend = ibis.duckdb.connect(path)
        except StoreError:
            raise
        except Exception as exc:  # the driver's own message is the useful part
            raise StoreError(
                f"cannot open the store at {redact(url)}: {exc}. Check [store] url in "
                "kizuna.toml (empty means kizuna.duckdb in the workspace)."
            ) from None
        store = cls(backend, url)
        store.ensure_tables()
        return store

    @classmethod
    def from_backend(cls, backend: ibis.BaseBackend) -> Store:
        store = cls(backend, backend.name)
        store.ensure_tables()
        return store

    def close(self) -> None:
        if self.engine != "pyspark":  # the Spark session outlives one store
            self.backend.disconnect()

    @property
    def engine(self) -> str:
        return self.backend.name

    def ensure_tables(self) -> None:
        existing = set(self.backend.list_tables())
        for spec in TABLES.values():
            if spec.name not in existing:
                self.backend.create_table(spec.name, schema=spec.schema)

    # -- reading ----------------------------------------------------------------------
    def table(self, name: str) -> ibis.Table:
        return self.backend.table(name)

    def has_table(self, name: str) -> bool:
        return name in self.backend.list_tables()

    def count(self, name: str) -> int:
        return int(self.backend.table(name).count().to_pyarrow().as_py())

    # -- writing ----------------------------------------------------------------------
    def create(self, name: str, obj: ibis.Table | pa.Table | None = None, *,
               schema: ibis.Schema | None = None, overwrite: bool = True) -> ibis.Table:
        if overwrite:
            self.drop(name)  # Ibis' overwrite of a schema-only table is broken on DuckDB
        return self.backend.create_table(name, obj, schema=schema)

    def append(self, name: str, rows: ibis.Table | pa.Table) -> None:
        if isinstance(rows, pa.Table):
            if self.engine == "duckdb":
                # Straight from Arrow: no memtable bookkeeping on the hot import path.
                self.backend.con.register("_kizuna_batch", rows)
                try:
                    cols = ", ".join(f'"{c}"' for c in rows.column_names)
                    self.backend.con.execute(
                        f'INSERT INTO "{name}" ({cols}) SELECT {cols} FROM _kizuna_batch'
                    )
                finally:
                    self.backend.con.unregister("_kizuna_batch")
                return
            rows = ibis.memtable(rows)
        self.backend.insert(name, rows)

    def drop(self, name: str) -> None:
        self.backend.drop_table(name, force=True)

    def replace_rows(self, target: str, rows_name: str, key: Sequence[str]) -> None:
        """Delete the rows of `target` whose key is in table `rows_name`, then insert those rows.

        Atomic where the engine has transactions. `rows_name` is a table stored on this
        engine with the columns of `target`.
        """
        dialect = self.backend.dialect
        rows = self.table(rows_name)
        match = sg.and_(
            *(sg.column(k, table="r").eq(sg.column(k, table="t")) for k in key)
        )
        exists = sge.Exists(
            this=sg.select("1").from_(sg.table(rows_name).as_("r")).where(match)
        )
        delete = sge.delete(sg.table(target).as_("t"), where=exists).sql(dialect)
        if self.engine == "pyspark":
            self._rewrite_without(target, rows, key)
            return
        with self._transaction():
            self._execute(delete)
            self.backend.insert(target, rows.select(*self.table(target).columns))

    def _rewrite_without(self, target: str, rows: ibis.Table, key: Sequence[str]) -> None:
        # Spark tables have no DELETE: build the new table aside, then swap it in.
        current = self.table(target)
        kept = current.anti_join(rows, list(key))
        merged = kept.union(rows.select(*current.columns))
        aside = f"{target}__rewrite"
        self.backend.create_table(aside, merged, overwrite=True)
        self.backend.create_table(target, self.table(aside), overwrite=True)
        self.drop(aside)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.engine == "postgres":
            with self.backend.con.transaction():
                yield
        elif self.engine == "duckdb":
            self.backend.con.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self.backend.con.execute("ROLLBACK")
                raise
            self.backend.con.execute("COMMIT")
        else:
            yield

    def _execute(self, sql: str) -> None:
        if self.engine == "duckdb":
            self.backend.con.execute(sql)
        else:
            with self.backend._safe_raw_sql(sql):
                pass


def redact(url: str) -> str:
    """A URL with its password hidden, for messages (no secrets in logs)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


_spark_session = None


def local_spark_session():
    """One local Spark session per process, listening on loopback only (~10 s to start)."""
    global _spark_session
    if _spark_session is None:
        from pyspark.sql import SparkSession

        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        _spark_session = (
            SparkSession.builder.master("local[2]")
            .appName("kizuna")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.ansi.enabled", "false")
            .getOrCreate()
        )
        _spark_session.sparkContext.setLogLevel("ERROR")
    return _spark_session
