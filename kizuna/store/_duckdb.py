"""The store in a DuckDB file (the default): `DuckDBStore`.

DuckDB locks the whole file per process (a writer excludes everyone, readers exclude a
writer), runs several statements in one transaction, stores a few known values as ENUMs,
spills to disk within a memory limit, and leaves an updated row's old blocks in its file
until `reclaim` rewrites it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from kizuna._errors import StoreError
from kizuna.store._busy import busy_error
from kizuna.store._engine import Result, Store, redact
from kizuna.store._statements import compiled

if TYPE_CHECKING:
    import duckdb

__all__ = ["DuckDBStore"]

PRIVATE_FILE_MODE = 0o600  # the store holds customers' personal data: its user's alone
_WAITING = ".waiting"  # beside the file while a writer waits for it (`_connect`)
_WAITING_FRESH = 2.0  # seconds a waiting mark counts: a waiting writer touches it more often
_CURSORS = threading.Lock()
# DuckDB's memory limit when [store] memory_limit is empty: this share of the machine's memory, in percent,
# instead of DuckDB's own (`_session`)
DEFAULT_MEMORY_SHARE, DUCKDB_MEMORY_SHARE = 50, 80
_SIZE_UNITS = {"bytes": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
ROW_GROUP = 122_880  # DuckDB's rows per row group: a batch of rows written at once (`create_streamed`)


class DuckDBStore(Store):
    """A workspace's tables in one DuckDB file (or in memory)."""

    engine = "duckdb"
    label = "DuckDB"

    @classmethod
    def _open(cls, url: str, *, home: Path | None, memory_limit: str, create: bool, read_only: bool,
              lock_wait: float) -> DuckDBStore:
        path = duckdb_path(url)
        in_memory = path == ":memory:"
        new = not in_memory and not Path(path).exists()
        if new and not create:
            raise StoreError.keyed("error.no_store", path=str(path))
        if new:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        backend = _connect(path, read_only=read_only and not in_memory, wait=lock_wait)
        if new:  # DuckDB creates it with the umask's mode (0644: readable by every user of the machine)
            os.chmod(path, PRIVATE_FILE_MODE)
        _session(backend, memory_limit)
        store = cls(backend, url, memory_limit=memory_limit, lock_wait=lock_wait)
        store._read_only = read_only and not in_memory
        return store

    _read_only = False
    _names: frozenset[str] | None = None

    def table(self, name: str) -> ibis.Table:
        # Ibis' `table` as it is but for the column types: Ibis parses each type's text anew (sqlglot), which
        # costs a few milliseconds a table and an `analyze` reads thirty
        import duckdb  # loaded already by the backend

        describe = f"DESCRIBE {sg.to_identifier(name, quoted=True).sql('duckdb')}"
        try:
            found = self.backend.con.execute(describe).fetchall()
        except duckdb.CatalogException:
            return super().table(name)  # as Ibis says it, or a canonical table made later (`Store.table`)
        schema = ibis.Schema({column: _column_type(kind, null == "YES") for column, kind, null, *_ in found})
        return ibis.expr.operations.DatabaseTable(name, schema=schema, source=self.backend,
                                                  namespace=ibis.expr.operations.Namespace()).to_expr()

    def table_names(self) -> frozenset[str]:
        # Opened read-only, the file cannot change while this connection holds it (DuckDB lets no
        # process write it meanwhile): its tables are listed once, not by each of a page's reads.
        if not self._read_only:
            return super().table_names()
        if self._names is None:
            self._names = super().table_names()
        return self._names

    def sibling(self) -> DuckDBStore:
        # A cursor: one more connection to the database instance this process has open, sharing its
        # cache and, read-only, the list of its tables. Ibis' own `from_connection` sets its two
        # session settings through queries that cost more than opening the file; they are set here
        # in one statement.
        from ibis.backends.duckdb import Backend

        with _CURSORS:  # a connection is one thread's at a time
            cursor = self.backend.con.cursor()
        cursor.execute("SET timezone = 'UTC'; SET python_enable_replacements = false; SET enable_progress_bar = false")
        backend = Backend()
        backend.con = cursor
        backend._can_reconnect = False
        backend._record_batch_readers_consumed = {}
        store = type(self)(backend, self.url, memory_limit=self.memory_limit, lock_wait=self.lock_wait)
        store._read_only = self._read_only
        if self._read_only:
            if self._names is None:
                self._names = store.table_names()  # listed on the cursor: this store's connection may be in use
            store._names = self._names
        return store

    @classmethod
    def _open_error(cls, url: str, exc: Exception) -> StoreError:
        return busy_error(redact(url), exc) or super()._open_error(url, exc)  # busy: another process holds the file

    @classmethod
    def _writer_waiting(cls, url: str) -> bool:
        path = duckdb_path(url)
        return path != ":memory:" and writer_waits(path)

    @classmethod
    def _files_at(cls, url: str) -> list[Path]:
        path = duckdb_path(url)
        if path == ":memory:":
            return []
        return [Path(path), Path(path + ".wal")]

    def files(self) -> list[Path]:
        row = self.backend.con.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()
        if row is None or row[0] is None:  # in memory
            return []
        path = Path(row[0])
        return [path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".tmp")]

    @contextlib.contextmanager
    def engine_errors(self) -> Iterator[None]:
        """Out of memory: within its limit DuckDB spills to disk, but some steps of a query cannot;
        the message says which limit was too small and how to raise it."""
        import duckdb  # loaded already by the backend

        try:
            yield
        except duckdb.OutOfMemoryException:
            if self.memory_limit:
                raise StoreError.keyed("error.out_of_memory_limit", limit=self.memory_limit) from None
            raise StoreError.keyed("error.out_of_memory") from None

    @contextlib.contextmanager
    def threads(self, count: int) -> Iterator[None]:
        # DuckDB's threads wait for each other at every step of a query: with more of them than free
        # cores, a query waits for the thread whose core another process holds
        con = self.backend.con
        before = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        con.execute(f"SET threads = {max(1, int(count))}")
        try:
            yield
        except BaseException:
            # a transaction the error aborted refuses every statement until its rollback: the error to see
            # is the one that aborted it
            with contextlib.suppress(Exception):
                con.execute(f"SET threads = {before}")
            raise
        con.execute(f"SET threads = {before}")

    def keep_threads(self, count: int) -> None:
        # a setting of the database instance, which every cursor of it shares (`sibling`)
        self.backend.con.execute(f"SET threads = {max(1, int(count))}")

    def drop_cache(self) -> None:
        # DuckDB keeps the blocks it read of the file until its memory limit needs the room: a limit of what
        # it cannot let go of, for a moment, makes it let go of the rest. Not in a transaction: a limit
        # refused there would abort it
        import duckdb  # loaded already by the backend

        if getattr(self, "_in_transaction", False):
            return
        con = self.backend.con
        limit, kept = con.execute("SELECT current_setting('memory_limit'), coalesce(sum(memory_usage_bytes), 0) "
                                  "FROM duckdb_memory() WHERE tag <> 'BASE_TABLE'").fetchone()
        try:
            con.execute(f"SET memory_limit = '{int(kept) + (16 << 20)}B'")
        except duckdb.Error:  # more pinned than that at this moment: the cache stays
            pass
        finally:  # as it was (RESET would not give the buffer pool its default back)
            con.execute("SET memory_limit = ?", [self.memory_limit or limit])

    def count(self, name: str) -> int:
        # straight from DuckDB: Ibis' result conversion loads pandas (0.2 s)
        table = sg.to_identifier(name, quoted=True).sql("duckdb")
        with self.engine_errors():
            return int(self.backend.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def fetch(self, expr: ibis.Expr) -> list[dict[str, object]]:
        # straight from DuckDB, as `count`; Ibis registers an expression's memtables when it runs it
        if expr.op().find(ibis.expr.operations.InMemoryTable):
            return super().fetch(expr)
        sql = self._sql(expr.as_table())
        with self.engine_errors():
            cursor = self.backend.con.execute(sql)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self, "_in_transaction", False):  # within a caller's transaction: all or nothing with it
            yield
            return
        self.backend.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self.backend.con.execute("ROLLBACK")
            raise
        self._in_transaction = False
        self.backend.con.execute("COMMIT")

    @contextlib.contextmanager
    def beside(self, work: Callable[[Store], Result]) -> Iterator[Callable[[], Result]]:
        # a cursor is a connection of its own to the same database (a connection runs one query at a time),
        # outside this one's transaction; its queries share the database's threads and memory limit
        cursor = self.backend.con.cursor()
        try:
            _connection_settings(cursor)
            side = DuckDBStore(ibis.duckdb.from_connection(cursor), self.url, memory_limit=self.memory_limit,
                               lock_wait=self.lock_wait)
            with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kizuna-beside") as pool:
                future = pool.submit(work, side)
                try:
                    yield future.result
                except BaseException:
                    # the block failed: what `work` gives is not wanted. Interrupted until it ends, as DuckDB
                    # forgets an interrupt that comes between two of its queries
                    while not future.done():
                        cursor.interrupt()
                        concurrent.futures.wait([future], timeout=0.05)
                    raise
        finally:
            cursor.close()

    def _execute(self, sql: str) -> None:
        self.backend.con.execute(sql)

    # -- writing ----------------------------------------------------------------------
    def create(self, name: str, obj: ibis.Table | pa.Table | None = None, *,
               schema: ibis.Schema | None = None, overwrite: bool = True, scratch: bool = False,
               categories: Mapping[str, Sequence[str]] | None = None) -> ibis.Table:
        if isinstance(obj, pa.Table):
            obj = ibis.memtable(obj)  # replaced in one transaction, like any other table below
        if obj is None:
            return super().create(name, schema=schema, overwrite=overwrite)
        return self._run(name, obj, self._create_statements(
            name, obj, schema=schema, temp=scratch, replace=overwrite or scratch, categories=categories or {},
        ), temp=scratch)

    @staticmethod
    def _first_by(value: ibis.Column, key: ibis.Column, where: ibis.Value | None) -> ibis.Scalar:
        # Ibis compiles argmin for DuckDB as FIRST(value ORDER BY key), an ordered aggregate that sorts each
        # group; DuckDB's arg_min_null is a plain one (and keeps a NULL value, as FIRST does)
        return _arg_min_null(value.type(), key.type())(value, key, where=where)

    def create_in_order(self, name: str, rows: pa.Table, by: Sequence[str]) -> ibis.Table:
        # the order found here (Arrow's sort of the key columns alone) and the rows written a row group at
        # a time in it: DuckDB's ORDER BY would hold a sorted copy of every row, and so would a copy here
        import numpy as np
        import pyarrow.compute as pc

        order = pc.sort_indices(rows.select(list(by)), sort_keys=[(c, "ascending") for c in by])
        schema = ibis.memtable(rows.schema.empty_table()).schema()
        if np.array_equal(order.to_numpy(), np.arange(rows.num_rows)):
            # already in order (the caller read them sorted): no copy to make, so DuckDB reads the rows where
            # they are, in one statement, a row group per thread (chunks of that size, without a copy)
            return self.create_streamed(name, schema, [pa.Table.from_batches(rows.to_batches(ROW_GROUP), rows.schema)])
        batches = (rows.take(order.slice(start, ROW_GROUP)).combine_chunks().to_batches()[0]
                   for start in range(0, rows.num_rows, ROW_GROUP))
        return self.create_streamed(name, schema, batches)

    def create_streamed(self, name: str, schema: ibis.Schema, batches: Iterable[pa.RecordBatch | pa.Table], *,
                        categories: Mapping[str, Sequence[str]] | None = None) -> ibis.Table:
        """Table `name` (`schema`, the columns of `categories` as ENUMs) of the rows of `batches` (record
        batches, or tables, the columns of `schema` in its order), stored in their order.

        Record batches go in as streams of as many batches as DuckDB has threads, one INSERT each: DuckDB
        pulls a stream's batches as it writes, one on each thread (its ordered insert keeps their order),
        and holds those it has read until the statement ends, so a stream of every batch would hold every
        row. Tables go in one INSERT each (DuckDB holds a registered table until the statement ends)."""
        create, _ = self._create_statements(name, ibis.table(schema, name=name), categories=categories or {})
        table = sg.table(name, quoted=True).sql("duckdb")
        # on one thread DuckDB keeps a transaction's new row groups in memory; on two it writes each out
        # as it fills
        threads = max(2, int(self.backend.con.execute("SELECT current_setting('threads')").fetchone()[0]))
        with self.engine_errors(), self.threads(threads), self.transaction():
            self._execute(create)
            ahead = iter(batches)
            while (first := next(ahead, None)) is not None:
                if isinstance(first, pa.RecordBatch):
                    rows = pa.RecordBatchReader.from_batches(
                        first.schema, itertools.chain([first], itertools.islice(ahead, threads - 1)))
                else:
                    rows = first
                del first
                self.backend.con.from_arrow(rows).insert_into(table)
                del rows
        return self.table(name)

    def create_from_intermediate(
        self, name: str, intermediate: tuple[str, ibis.Table], build: Callable[[ibis.Table], ibis.Table], *,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> ibis.Table:
        """`build` and the compilation of its expression run while DuckDB computes the intermediate
        table (compiling a large expression takes Ibis a few tenths of a second, which would
        otherwise be added to the engine's time)."""
        step_name, step_expr = intermediate
        try:
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kizuna-store") as pool:
                computing = pool.submit(self.create, step_name, step_expr, scratch=True)
                try:
                    # unqualified, the name finds the temporary table once it exists
                    expr = build(ibis.table(step_expr.schema(), name=step_name))
                    statements = self._create_statements(name, expr, categories=categories or {})
                except BaseException:  # Ctrl-C included: stop the query rather than wait for it
                    self.backend.con.interrupt()
                    concurrent.futures.wait([computing])
                    raise
                computing.result()
            built = self._run(name, expr, statements, temp=False)
        except BaseException:
            # within a caller's transaction DuckDB refuses any statement after an error; its
            # rollback removes the temporary table
            if not getattr(self, "_in_transaction", False):
                self.drop(step_name)
            raise
        self.drop(step_name)
        return built

    def _create_statements(
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
        names = ", ".join(sg.to_identifier(c, quoted=True).sql("duckdb") for c in expr.columns)
        return [create.sql("duckdb"), f"INSERT INTO {table.sql('duckdb')} ({names}) {self._sql(expr)}"]

    def _sql(self, expr: ibis.Expr) -> str:
        """The SQL of `expr`, compiled once (`_statements`)."""
        return compiled(self.backend, expr, lambda: self.backend.compile(expr))

    @staticmethod
    def _to_arrow(expr: ibis.Expr) -> object:
        # the statement compiled once (`_statements`), and the rows converted without Ibis' DuckDB results
        # converter, whose module loads pandas; the same conversion otherwise (`_ArrowData`)
        backend = expr._find_backend(use_default=False)
        backend._run_pre_execute_hooks(expr)
        rows = expr.as_table()
        sql = compiled(backend, rows, lambda: backend.compile(rows))
        return expr.__pyarrow_result__(backend.con.sql(sql).to_arrow_table(), data_mapper=_arrow_data())

    @staticmethod
    @contextlib.contextmanager
    def _scratch_table(expr: ibis.Table, name: str) -> Iterator[ibis.Table]:
        # a temporary table as `create(..., scratch=True)` makes it, on the connection the expression is bound
        # to, within its transaction if one is open; read as a table of that schema without asking DuckDB
        backend = expr._find_backend(use_default=False)
        backend._run_pre_execute_hooks(expr)
        for statement in DuckDBStore(backend, backend.name)._create_statements(name, expr, categories={}, temp=True):
            backend.con.execute(statement)
        try:
            yield ibis.expr.operations.DatabaseTable(
                name, schema=expr.schema(), source=backend,
                namespace=ibis.expr.operations.Namespace(catalog="temp", database="main")).to_expr()
        finally:
            backend.con.execute(f"DROP TABLE IF EXISTS temp.main.{sg.to_identifier(name, quoted=True).sql('duckdb')}")

    def _run(self, name: str, expr: ibis.Table, statements: Sequence[str], *, temp: bool) -> ibis.Table:
        # in-memory tables (ibis.memtable) in `expr` are registered with DuckDB as Ibis does before
        # running a query; not while compiling, which may run beside a query on the same connection
        self.backend._run_pre_execute_hooks(expr)
        with self.engine_errors(), self.transaction():
            for statement in statements:
                self._execute(statement)
        return self.backend.table(name, database=("temp", "main")) if temp else self.table(name)

    def append_batches(self, name: str, batches: Iterable[pa.Table]) -> None:
        # appended in whole row groups, the rest carried to the next batch: DuckDB starts row groups anew at
        # each append, and a table copied from one with partial row groups keeps them until the checkpoint
        # merges them (seconds for an import's millions of rows)
        carried: list[pa.Table] = []
        waiting = 0
        for rows in batches:
            carried.append(rows)
            waiting += rows.num_rows
            whole = waiting // ROW_GROUP * ROW_GROUP
            if whole:
                joined = pa.concat_tables(carried)
                self.append(name, joined.slice(0, whole).combine_chunks())
                carried, waiting = [joined.slice(whole)], waiting - whole
        if waiting:
            self.append(name, pa.concat_tables(carried).combine_chunks())

    def _append_arrow(self, name: str, rows: pa.Table) -> None:
        self.backend.con.register("_kizuna_batch", rows)
        try:
            cols = ", ".join(f'"{c}"' for c in rows.column_names)
            with self.engine_errors():
                self.backend.con.execute(f'INSERT INTO "{name}" ({cols}) SELECT {cols} FROM _kizuna_batch')
        finally:
            self.backend.con.unregister("_kizuna_batch")

    # -- what is left of old values -----------------------------------------------------
    def reclaim(self, tables: Sequence[str] = ()) -> str:
        """``"rewritten"``: an UPDATE leaves the old blocks in the file, free but not wiped, even
        after a checkpoint. The whole store is copied into a new file beside it (``COPY FROM
        DATABASE``), which is renamed over the old one: a process killed on the way leaves the old
        file whole (and a stray ``.kizuna.duckdb.rewrite``, removed next time).
        ``"in_memory"``: a store in memory has no file."""
        files = self.files()
        if not files:
            return "in_memory"
        self._rewrite(files[0].resolve())
        return "rewritten"

    def _rewrite(self, path: Path) -> None:
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
        self.backend = _connect(str(path), read_only=False, wait=max(self.lock_wait, 30.0))
        _session(self.backend, self.memory_limit)


@functools.cache
def _column_type(text: str, nullable: bool) -> ibis.DataType:
    """Ibis' type of a DuckDB column type's text (as Ibis' DuckDB backend reads it), parsed once."""
    from ibis.backends.sql.datatypes import DuckDBType

    return DuckDBType.from_string(text, nullable=nullable)


@functools.cache
def _arrow_data() -> type:
    """Ibis' `DuckDBPyArrowData` (a NULL-typed column as nulls) without the module it lives in."""
    from ibis.formats.pyarrow import PyArrowData

    class ArrowData(PyArrowData):
        @classmethod
        def convert_scalar(cls, scalar: pa.Scalar, dtype: ibis.DataType) -> pa.Scalar:
            return pa.scalar(None) if dtype.is_null() else super().convert_scalar(scalar, dtype)

        @classmethod
        def convert_column(cls, column: pa.Array, dtype: ibis.DataType) -> pa.Array:
            return pa.nulls(len(column)) if dtype.is_null() else super().convert_column(column, dtype)

    return ArrowData


@functools.cache
def _arg_min_null(value: ibis.DataType, key: ibis.DataType) -> Callable[..., ibis.Scalar]:
    """DuckDB's aggregate arg_min_null for a value and a key of these types, as an Ibis function."""
    return ibis.udf.agg.builtin(lambda value, key: None, name="arg_min_null", signature=((value, key), value))


def _connect(path: str, *, read_only: bool, wait: float) -> ibis.BaseBackend:
    # DuckDB locks the whole file per process: a writer excludes everyone, readers exclude a
    # writer. Commands from cron and the web app hold it for seconds, so wait a little for them.
    # A writer that waits says so (`_WAITING` beside the file, touched at each try): the web app
    # lets go of the file then, and only then, rather than every few seconds in case one waits.
    deadline = time.monotonic() + wait
    pause = 0.02
    waiting = None if read_only or path == ":memory:" else Path(path + _WAITING)
    try:
        while True:
            try:
                return ibis.duckdb.connect(path, read_only=read_only)
            except Exception as exc:
                if "Could not set lock on file" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            if waiting is not None:
                with contextlib.suppress(OSError):
                    waiting.touch(mode=PRIVATE_FILE_MODE)
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
    finally:
        if waiting is not None:
            with contextlib.suppress(OSError):
                waiting.unlink(missing_ok=True)


def writer_waits(path: str) -> bool:
    """Whether a writer touched `path`'s waiting mark within the last `_WAITING_FRESH` seconds (a
    process that died waiting leaves a mark that soon stops counting)."""
    try:
        return time.time() - os.stat(path + _WAITING).st_mtime < _WAITING_FRESH
    except OSError:
        return False


def _session(backend: ibis.BaseBackend, memory_limit: str) -> None:
    _connection_settings(backend.con)
    # what a large query's hash tables freed goes back to the system within seconds: without the
    # allocator's background thread it stays with the process (beside the Arrow results and models
    # that come after it, as in `predict`) until DuckDB allocates again
    backend.con.execute("SET allocator_background_threads = true")
    if memory_limit:
        _set_memory_limit(backend, memory_limit)
        return
    # DuckDB's default is 80 % of the machine's (or the container's) memory, as if it had the process to
    # itself; here the process also holds what kizuna works on in Arrow and Python (a run's messages due,
    # the lists' rows), and a first run at ten million customers filled the rest: half is DuckDB's
    limit = _default_memory_limit(backend.con)
    if limit is not None:
        backend.con.execute(f"SET memory_limit = '{limit}B'")


def _connection_settings(connection: duckdb.DuckDBPyConnection) -> None:
    """What each connection sets for itself (the rest of `_session` holds for the whole database)."""
    # DuckDB draws its own progress bar on stdout for queries over 2 s, which would
    # corrupt `--format json` output; kizuna's commands show their own progress.
    connection.execute("SET enable_progress_bar = false")


def _default_memory_limit(connection: duckdb.DuckDBPyConnection) -> int | None:
    """`DEFAULT_MEMORY_SHARE` of the memory in bytes, from DuckDB's default (None where DuckDB writes it in a
    form not known here). Read after a reset: a second connection to the same file in this process shares
    the first one's database, limit included (and a fresh in-memory database to read it from would cost the
    process the memory of a second DuckDB)."""
    connection.execute("RESET memory_limit")
    number, _, unit = connection.execute("SELECT current_setting('memory_limit')").fetchone()[0].strip().partition(" ")
    try:
        return int(float(number) * _SIZE_UNITS[unit]) * DEFAULT_MEMORY_SHARE // DUCKDB_MEMORY_SHARE
    except (KeyError, ValueError):
        return None


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
        raise StoreError.keyed("error.memory_limit_invalid", limit=repr(limit),
                               problem=str(exc).splitlines()[0]) from None


def duckdb_path(url: str) -> str:
    """The file of a DuckDB URL: duckdb:///abs/path and duckdb://relative/path, as Ibis reads them;
    a plain path as it is; ":memory:" for none."""
    return url.removeprefix("duckdb://") or ":memory:"
