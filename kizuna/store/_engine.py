"""Connecting to the store, and the few operations Ibis does not cover portably.

This is the one module that knows which engine it talks to: a DuckDB file by
default, PostgreSQL or Spark by URL. Everything else works on Ibis tables.

* ``duckdb:///path/kizuna.duckdb`` or a plain file path
* ``postgres://user:password@127.0.0.1:5432/dbname``
* ``pyspark://local`` (a local Spark session; an existing session can be wrapped
  with `Store.from_backend`)

Any other ``scheme://`` is refused (it is not a file name: taken as one it would
create folders named after the URL, password included). An engine's own errors
that a user can act on (out of memory, a file locked by another command) become a
`StoreError` in one line here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlglot as sg
import sqlglot.expressions as sge

from kizuna._errors import StoreError
from kizuna.store._schema import TABLES

__all__ = ["Store"]

SCHEMES = ("duckdb://", "postgres://", "postgresql://", "pyspark://")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class Store:
    """The tables of one workspace on one engine."""

    def __init__(self, backend: ibis.BaseBackend, url: str, *, memory_limit: str = "", lock_wait: float = 0.0) -> None:
        self.backend = backend
        self.url = url
        self.memory_limit = memory_limit
        self.lock_wait = lock_wait  # for reopening the DuckDB file after `reclaim` rewrote it

    # -- connecting -------------------------------------------------------------------
    @staticmethod
    def check_url(url: str) -> None:
        """Refuse a URL whose scheme kizuna has no engine for (before anything is created)."""
        match = _SCHEME.match(url)
        if match and not url.startswith(SCHEMES):
            raise StoreError(
                f"cannot open the store at {redact(url)}: kizuna does not store in {match.group(1)}. "
                "Give a DuckDB file (a path, or duckdb:///path), postgres://user:password@host/db or "
                "pyspark://local, with --db or [store] url in kizuna.toml."
            )

    @classmethod
    def connect(cls, url: str, *, home: Path | None = None, memory_limit: str = "", create: bool = True,
                read_only: bool = False, lock_wait: float = 0.0) -> Store:
        """Connect by URL or DuckDB file path and make sure the canonical tables exist.

        `home` is the workspace folder: a local Spark store keeps its tables there.
        `memory_limit` ("2GB"; empty for the engine's default) caps DuckDB's memory; beyond it
        DuckDB spills to a temporary folder beside the file. Other engines manage their own.
        `create=False` refuses a DuckDB file that does not exist rather than create an empty one.
        `read_only` opens a DuckDB file for reading only: several processes may read it at once
        (the web app, `kizuna run`), though none while another process writes it. `lock_wait`
        seconds: how long to wait for such a process to let go of the file before giving up.
        """
        cls.check_url(url)
        try:
            if url.startswith("pyspark://"):
                backend = ibis.pyspark.connect(local_spark_session(home))
            elif url.startswith(("postgres://", "postgresql://")):
                backend = ibis.connect(url.replace("postgresql://", "postgres://", 1))
            else:
                path = _duckdb_path(url)
                if not create and path != ":memory:" and not Path(path).exists():
                    raise StoreError(
                        f"no store at {path}; run `kizuna init` or `kizuna import` to create one there, "
                        "or check --db and [store] url in kizuna.toml."
                    )
                if path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                backend = _duckdb_connect(path, read_only=read_only and path != ":memory:", wait=lock_wait)
                _duckdb_session(backend, memory_limit)
        except StoreError:
            raise
        except Exception as exc:  # the driver's own message is the useful part
            if "Could not set lock on file" in str(exc):  # DuckDB: one process at a time opens a file
                pid = re.search(r"\(PID (\d+)\)", str(exc))
                who = f"another kizuna command (PID {pid.group(1)})" if pid else "another kizuna command"
                raise StoreError(
                    f"{who} is using this workspace's store {redact(url)}; wait for it to finish, or stop it."
                ) from None
            raise StoreError(
                f"cannot open the store at {redact(url)}: {_first_line(exc)}. Check [store] url in "
                "kizuna.toml (empty means kizuna.duckdb in the workspace)."
            ) from None
        store = cls(backend, url, memory_limit=memory_limit, lock_wait=lock_wait)
        if not read_only:
            with store.engine_errors():
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

    def files(self) -> list[Path]:
        """The local files this store lives in (a DuckDB file, its WAL and spill folder), if any."""
        if self.engine != "duckdb":
            return []
        row = self.backend.con.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()
        if row is None or row[0] is None:  # in memory
            return []
        path = Path(row[0])
        return [path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".tmp")]

    @contextlib.contextmanager
    def engine_errors(self) -> Iterator[None]:
        """Turn the engine's errors that a user can act on into a one-line `StoreError`.

        DuckDB out of memory: within its limit DuckDB spills to disk, but some steps of a query
        cannot; the message says which limit was too small and how to raise it.
        """
        try:
            yield
        except Exception as exc:
            if self.engine != "duckdb":
                raise
            import duckdb  # loaded already by the DuckDB backend

            if not isinstance(exc, duckdb.OutOfMemoryException):
                raise
            if self.memory_limit:
                advice = (f"the memory limit of {self.memory_limit} was too small. Raise [store] memory_limit "
                          "in kizuna.toml, or empty it for DuckDB's default (80% of this computer's memory).")
            else:
                advice = ("this computer's memory was too small. Close other programs, or set [store] "
                          "memory_limit in kizuna.toml below the free memory so that DuckDB spills to disk sooner.")
            raise StoreError(f"DuckDB ran out of memory: {advice}") from None

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
        if self.engine == "duckdb":  # straight from DuckDB: Ibis' result conversion loads pandas (0.2 s)
            table = sg.to_identifier(name, quoted=True).sql("duckdb")
            with self.engine_errors():
                return int(self.backend.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        return int(self.backend.table(name).count().to_pyarrow().as_py())

    # -- writing ----------------------------------------------------------------------
    def create(self, name: str, obj: ibis.Table | pa.Table | None = None, *,
               schema: ibis.Schema | None = None, overwrite: bool = True, scratch: bool = False,
               categories: Mapping[str, Sequence[str]] | None = None) -> ibis.Table:
        """Create table `name` from an expression, Arrow rows or a schema (replacing it by default).

        `scratch`: an intermediate result used within this connection only, made a temporary
        table (DuckDB keeps it in memory instead of compressing it into the file); Spark has
        no temporary tables and stores it like any other.

        `categories`: text columns of `obj` that only ever hold one of a few known values.
        DuckDB stores them as ENUMs (one byte a row instead of compressing strings; they read
        back as the same strings); other engines store text.
        """
        if self.engine == "duckdb" and isinstance(obj, pa.Table):
            obj = ibis.memtable(obj)  # replaced in one transaction, like any other table below
        if self.engine == "duckdb" and isinstance(obj, ibis.Table):
            return self._duckdb_run(name, obj, self._duckdb_create_statements(
                name, obj, schema=schema, temp=scratch, replace=overwrite or scratch, categories=categories or {},
            ), temp=scratch)
        if scratch and self.engine == "postgres":
            return self.backend.create_table(name, obj, schema=schema, temp=True, overwrite=True)
        if overwrite:
            self.drop(name)  # Ibis' overwrite of a schema-only table is broken on DuckDB
        if isinstance(obj, pa.Table) and self.engine != "duckdb":
            table = self.backend.create_table(name, schema=schema or ibis.Schema.from_pyarrow(obj.schema))
            self.append(name, obj)
            return table
        return self.backend.create_table(name, obj, schema=schema)

    def create_from_intermediate(
        self, name: str, intermediate: tuple[str, ibis.Table], build: Callable[[ibis.Table], ibis.Table], *,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> ibis.Table:
        """Create table `name` from `build(step)`, `step` being `intermediate` materialised first.

        `intermediate` is (name, expression): a result that `build`'s expression reads
        several times (a per-customer summary of the orders, say), stored as a scratch
        table so that the engine computes it once; it is dropped afterwards.

        On DuckDB, `build` and the compilation of its expression run while the engine is
        computing the intermediate table (compiling a large expression takes Ibis a few
        tenths of a second, which would otherwise be added to the engine's time).
        """
        step_name, step_expr = intermediate
        try:
            if self.engine != "duckdb":
                return self.create(name, build(self.create(step_name, step_expr, scratch=True)),
                                   categories=categories)
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kizuna-store") as pool:
                computing = pool.submit(self.create, step_name, step_expr, scratch=True)
                try:
                    # unqualified, the name finds the temporary table once it exists
                    expr = build(ibis.table(step_expr.schema(), name=step_name))
                    statements = self._duckdb_create_statements(name, expr, categories=categories or {})
                except BaseException:  # Ctrl-C included: stop the query rather than wait for it
                    self.backend.con.interrupt()
                    concurrent.futures.wait([computing])
                    raise
                computing.result()
            return self._duckdb_run(name, expr, statements, temp=False)
        finally:
            self.drop(step_name)

    def _duckdb_create_statements(
        self, name: str, expr: ibis.Table, *, categories: Mapping[str, Sequence[str]],
        schema: ibis.Schema | None = None, temp: bool = False, replace: bool = True,
    ) -> list[str]:
        """CREATE [OR REPLACE] TABLE with the columns' types, then INSERT the query (to run in one
        transaction, so that a failed query leaves the previous table as it was).

        Not Ibis' create_table: with overwrite it writes a temporary table's rows twice (under
        a made-up name, then copied), and it knows no ENUM.
        """
        columns = (schema or expr.schema()).to_sqlglot_column_defs("duckdb")
        for column in columns:
            if column.name in categories:
                values = ", ".join(sge.convert(v).sql("duckdb") for v in dict.fromkeys(categories[column.name]))
                column.set("kind", sg.parse_one(f"ENUM({values})", into=sge.DataType, read="duckdb"))
        table = sg.table(name, quoted=True)
        create = sge.Create(
            kind="TABLE", this=sge.Schema(this=table, expressions=columns), replace=replace,
            properties=sge.Properties(expressions=[sge.TemporaryProperty()]) if temp else None,
        )
        insert = sge.insert(self.backend.compiler.to_sqlglot(expr), into=table,
                            columns=[sg.to_identifier(c, quoted=True) for c in expr.columns])
        return [create.sql("duckdb"), insert.sql("duckdb")]

    def _duckdb_run(self, name: str, expr: ibis.Table, statements: Sequence[str], *, temp: bool) -> ibis.Table:
        # in-memory tables (ibis.memtable) in `expr` are registered with DuckDB as Ibis does before
        # running a query; not while compiling, which may run beside a query on the same connection
        self.backend._run_pre_execute_hooks(expr)
        with self.engine_errors(), self._transaction():
            for statement in statements:
                self._execute(statement)
        return self.backend.table(name, database=("temp", "main")) if temp else self.table(name)

    def append(self, name: str, rows: ibis.Table | pa.Table) -> None:
        """Insert rows into table `name`; Arrow rows go through each engine's exact bulk path.

        Not through an Ibis memtable: that passes through pandas, which stores an int64
        column holding any null as all nulls on Spark, and float nulls as NaN.
        """
        if not isinstance(rows, pa.Table):
            self.backend.insert(name, rows)
        elif rows.num_rows == 0:
            return
        elif self.engine == "duckdb":
            self._duckdb_insert(name, rows)
        elif self.engine == "postgres":
            self._postgres_copy(name, rows)
        elif self.engine == "pyspark":
            self._spark_insert(name, rows)
        else:
            self.backend.insert(name, ibis.memtable(rows))

    def _duckdb_insert(self, name: str, rows: pa.Table) -> None:
        self.backend.con.register("_kizuna_batch", rows)
        try:
            cols = ", ".join(f'"{c}"' for c in rows.column_names)
            with self.engine_errors():
                self.backend.con.execute(f'INSERT INTO "{name}" ({cols}) SELECT {cols} FROM _kizuna_batch')
        finally:
            self.backend.con.unregister("_kizuna_batch")

    def _postgres_copy(self, name: str, rows: pa.Table) -> None:
        """``COPY … FROM STDIN`` fed CSV that Arrow writes (no Python loop over rows).

        In PostgreSQL's CSV an unquoted empty field is NULL and a quoted one is the empty
        string; Arrow quotes every string, so the two stay apart.
        """
        columns = ", ".join(sg.to_identifier(c, quoted=True).sql("postgres") for c in rows.column_names)
        table = sg.to_identifier(name, quoted=True).sql("postgres")
        buffer = io.BytesIO()
        pa_csv.write_csv(rows, buffer, pa_csv.WriteOptions(include_header=False))
        with self.backend.con.cursor() as cursor, cursor.copy(
            f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            copy.write(buffer.getbuffer())

    def _spark_insert(self, name: str, rows: pa.Table) -> None:
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

    def drop(self, name: str) -> None:
        self.backend.drop_table(name, force=True)

    def upsert_rows(self, target: str, rows: pa.Table, key: Sequence[str]) -> None:
        """Insert Arrow `rows` into `target`, replacing the rows with the same key (idempotent)."""
        staging = f"_kizuna_upsert_{target}"
        schema = self.table(target).schema()
        columns = [c for c in schema.names if c in rows.column_names]
        rows = rows.select(columns).cast(ibis.Schema({c: schema[c] for c in columns}).to_pyarrow())
        self.create(staging, schema=schema)
        try:
            missing = [c for c in schema.names if c not in columns]
            for column in missing:  # the staging table has every column of the target
                rows = rows.append_column(column, pa.nulls(rows.num_rows, schema[column].to_pyarrow()))
            self.append(staging, rows.select(schema.names))
            self.replace_rows(target, staging, key)
        finally:
            self.drop(staging)

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
        with self.engine_errors(), self._transaction():
            self._execute(delete)
            self.backend.insert(target, rows.select(*self.table(target).columns))

    def apply_changes(self, changes: Sequence[tuple[str, ibis.Table, Sequence[str] | None]]) -> None:
        """Write rows into several tables as one change (an import that fills customers, orders
        and their items): all or nothing where the engine has transactions.

        Each change is (target, rows, key). With a key, the stored rows with the same key are
        replaced (`rows` must then be a stored table, as for `replace_rows`); without, `rows`
        (any expression) are appended. Changes run in the order given.
        """
        if self.engine == "pyspark":
            for target, rows, key in changes:
                if key:
                    self._rewrite_without(target, rows, key)
                else:
                    self.backend.insert(target, rows)
            return
        dialect = self.backend.dialect
        with self.engine_errors(), self._transaction():
            for target, rows, key in changes:
                if key:
                    match = sg.and_(*(sg.column(k, table="r").eq(sg.column(k, table="t")) for k in key))
                    # unqualified: a temporary table's name (temp.main.x on DuckDB) resolves first
                    name = rows.get_name().split(".")[-1]
                    exists = sge.Exists(this=sg.select("1").from_(sg.table(name).as_("r")).where(match))
                    self._execute(sge.delete(sg.table(target).as_("t"), where=exists).sql(dialect))
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

    # -- renaming customers, and what is left of their old rows -----------------------
    def rename_customers(self, renames: Mapping[str, str], *, erase: Sequence[str] = ()) -> dict[str, int]:
        """Give the rows of the customers in `renames` (old id -> new id) their new id, in every table
        with a ``customer_id`` column (the canonical tables, scores, predictions, any added later),
        and null there the columns of `erase` that the table has; rows changed per table.

        One transaction on DuckDB and PostgreSQL: every table changes, or none. Spark has no
        UPDATE: each table is rebuilt aside and swapped in whole, one after the other. The
        engines keep the old values in their files until they are reused: see `reclaim`.
        """
        if not renames:
            return {}
        mapping = "_kizuna_renames"
        old, new = "_kizuna_old", "_kizuna_new"
        pairs = self.create(mapping, pa.table({old: list(renames), new: list(renames.values())}), scratch=True)
        try:
            plans: list[tuple[str, list[str], int]] = []
            for name in sorted(self.backend.list_tables()):
                if name.startswith("ibis_") or name == mapping:  # Ibis' in-memory tables, not the store's
                    continue
                table = self.table(name)
                if "customer_id" not in table.columns:
                    continue
                hit = table.semi_join(pairs, table.customer_id == pairs[old])
                count = int(hit.count().to_pyarrow().as_py())
                if count:
                    plans.append((name, [c for c in erase if c in table.columns], count))
            if self.engine == "pyspark":
                for name, nulled, _ in plans:
                    self._spark_rename(name, pairs, old, new, nulled)
            else:
                dialect = self.backend.dialect

                def quoted(name: str) -> str:
                    return sg.to_identifier(name, quoted=True).sql(dialect)

                statements = [
                    f"UPDATE {quoted(name)} AS t SET {quoted('customer_id')} = r.{quoted(new)}"
                    + "".join(f", {quoted(c)} = NULL" for c in nulled)
                    + f" FROM {quoted(mapping)} AS r WHERE t.{quoted('customer_id')} = r.{quoted(old)}"
                    for name, nulled, _ in plans
                ]
                with self.engine_errors(), self._transaction():
                    for statement in statements:
                        self._execute(statement)
        finally:
            self.drop(mapping)
        return {name: count for name, _, count in plans}

    def _spark_rename(self, name: str, pairs: ibis.Table, old: str, new: str, nulled: Sequence[str]) -> None:
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
        """Leave no old value of `tables` readable in the store's files, after `rename_customers`.

        What was done, by engine:

        * ``"rewritten"`` (DuckDB): an UPDATE leaves the old blocks in the file, free but not
          wiped, even after a checkpoint. The whole store is copied into a new file beside it
          (``COPY FROM DATABASE``), which is renamed over the old one: a process killed on the
          way leaves the old file whole (and a stray ``.kizuna.duckdb.rewrite``, removed next time).
        * ``"vacuum_full"`` (PostgreSQL): each table is rewritten into new files by ``VACUUM FULL``
          and the old ones are removed. The server's files are not in the workspace; its WAL and
          backups are the database administrator's.
        * ``"tables_rewritten"`` (Spark): nothing more; `rename_customers` rewrote the tables
          whole and Spark deleted their old files.
        * ``"in_memory"``: a DuckDB store in memory has no file.
        """
        if self.engine == "postgres":
            for name in tables:
                with self.backend.con.cursor() as cursor:  # autocommit: VACUUM runs outside a transaction
                    cursor.execute(f"VACUUM FULL {sg.to_identifier(name, quoted=True).sql('postgres')}")
            return "vacuum_full"
        if self.engine != "duckdb":
            return "tables_rewritten"
        files = self.files()
        if not files:
            return "in_memory"
        self._duckdb_rewrite(files[0].resolve())
        return "rewritten"

    def _duckdb_rewrite(self, path: Path) -> None:
        con = self.backend.con
        fresh = path.with_name(f".{path.name}.rewrite")
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        database = con.execute("SELECT current_database()").fetchone()[0]
        alias = "_kizuna_rewrite"
        with self.engine_errors():
            con.execute("CHECKPOINT")  # the file alone holds the store: nothing in its WAL
            con.execute(f"ATTACH {sge.convert(str(fresh)).sql('duckdb')} AS {alias}")
            try:
                con.execute(f"COPY FROM DATABASE {sg.to_identifier(database, quoted=True).sql('duckdb')} TO {alias}")
            finally:
                con.execute(f"DETACH {alias}")  # closing it checkpoints it: the new file is whole
        try:
            if fresh.with_name(fresh.name + ".wal").exists():
                raise StoreError(f"cannot rewrite {path}: DuckDB left a WAL beside the copy; nothing was replaced.")
            os.chmod(fresh, path.stat().st_mode & 0o777)  # as private as the file it replaces
            _fsync(fresh)
            # renamed over the store while this connection still holds the old file: no other
            # process can write to the old file in between and lose its writes
            os.replace(fresh, path)
        except BaseException:
            fresh.unlink(missing_ok=True)
            raise
        _fsync(path.parent)
        self.backend.disconnect()
        self.backend = _duckdb_connect(str(path), read_only=False, wait=max(self.lock_wait, 30.0))
        _duckdb_session(self.backend, self.memory_limit)

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


def _duckdb_connect(path: str, *, read_only: bool, wait: float) -> ibis.BaseBackend:
    # DuckDB locks the whole file per process: a writer excludes everyone, readers exclude a
    # writer. Commands from cron and the web app hold it for seconds, so wait a little for them.
    deadline = time.monotonic() + wait
    pause = 0.02
    while True:
        try:
            return ibis.duckdb.connect(path, read_only=read_only)
        except Exception as exc:
            if "Could not set lock on file" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _duckdb_session(backend: ibis.BaseBackend, memory_limit: str) -> None:
    # DuckDB draws its own progress bar on stdout for queries over 2 s, which would
    # corrupt `--format json` output; kizuna's commands show their own progress.
    backend.con.execute("SET enable_progress_bar = false")
    if memory_limit:
        _set_memory_limit(backend, memory_limit)


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries, after a rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_memory_limit(backend: ibis.BaseBackend, limit: str) -> None:
    try:
        backend.con.execute("SET memory_limit = ?", [limit])
    except Exception as exc:  # DuckDB's message says which units it takes
        backend.disconnect()
        raise StoreError(
            f"[store] memory_limit = {limit!r} in kizuna.toml is not a memory size DuckDB accepts "
            f"({str(exc).splitlines()[0]}). Write it like \"2GB\" or \"512MB\", or leave it empty."
        ) from None


def _duckdb_path(url: str) -> str:
    # duckdb:///abs/path and duckdb://relative/path, as Ibis reads them; a plain path as it is
    return url.removeprefix("duckdb://") or ":memory:"


def _first_line(exc: BaseException) -> str:
    # DuckDB appends advice and links on further lines; the first says what happened
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def redact(url: str) -> str:
    """A URL with its password hidden, for messages (no secrets in logs)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


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
