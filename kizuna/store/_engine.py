"""Connecting to the store, and the operations Ibis does not cover portably.

`Store` is what callers use: the canonical tables of one workspace, read as Ibis tables,
written through the few operations below (create, append, replace, upsert, apply several
tables' changes in one transaction, rename and pseudonymise customers, reclaim the space of
old values). It holds the engine-neutral code; one subclass per engine does the rest, each in
a module of its own, and is the only code that knows its engine:

* ``duckdb:///path/kizuna.duckdb`` or a plain file path: `DuckDBStore` (``_duckdb.py``)
* ``postgres://user:password@127.0.0.1:5432/dbname``: `PostgresStore` (``_postgres.py``)
* ``pyspark://local`` (a local Spark session; an existing session can be wrapped with
  `Store.from_backend`): `SparkStore` (``_spark.py``)

`Store.connect(url)` and `Store.from_backend(backend)` pick the class. Any other
``scheme://`` is refused (it is not a file name: taken as one it would create folders named
after the URL, password included). An engine's own errors that a user can act on (out of
memory, a file locked by another command) become a `StoreError` in one line.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, TypeVar

import ibis
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge
from ibis.common.exceptions import TableNotFound

from kizuna._errors import StoreError
from kizuna.store._compilers import load_lazily
from kizuna.store._schema import TABLES

__all__ = ["Store", "conform", "first_by", "redact", "salted_digest", "scratch_table", "to_arrow"]

# the canonical tables every store has had since its first version; a table added later may be missing from a
# store opened read-only (see `table`)
_OLDER_TABLES = ("customers", "products", "orders", "order_items", "nps_answers", "support_contacts", "events")
SCHEMES = ("duckdb://", "postgres://", "postgresql://", "pyspark://")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
BatchOut = pa.RecordBatch | pa.Table  # what a function mapped over batches gives (`Store.create_mapped`)
Result = TypeVar("Result")


class Store:
    """The tables of one workspace on one engine (a `DuckDBStore`, `PostgresStore` or `SparkStore`)."""

    engine: ClassVar[str] = ""  # Ibis' name of the backend: "duckdb", "postgres", "pyspark"
    label: ClassVar[str] = ""  # the engine's name for people
    transactional: ClassVar[bool] = True  # several tables' changes in one all-or-nothing transaction
    # the engine computes away from this process (Spark's executors): per-row work goes there through
    # `create_mapped`, and only samples and aggregates should come back here
    distributed: ClassVar[bool] = False

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
            raise StoreError.keyed("error.store_scheme_unknown", url=redact(url), scheme=match.group(1))

    @staticmethod
    def class_for(url: str) -> type[Store]:
        """The subclass for a store URL or DuckDB file path."""
        if url.startswith("pyspark://"):
            return _engines()["pyspark"]
        if url.startswith(("postgres://", "postgresql://")):
            return _engines()["postgres"]
        return _engines()["duckdb"]

    @staticmethod
    def files_at(url: str) -> list[Path]:
        """The local files a store at `url` keeps (to check their modes without opening it): a DuckDB
        file and its WAL; none for a server's store."""
        return Store.class_for(url)._files_at(url)

    @classmethod
    def _files_at(cls, url: str) -> list[Path]:
        return []

    @staticmethod
    def writer_waiting(url: str) -> bool:
        """Whether a process waits to write the store at `url` that readers of this process hold
        (DuckDB: a writer excludes every reader; it says so while it waits). False for a server's store."""
        return Store.class_for(url)._writer_waiting(url)

    @classmethod
    def _writer_waiting(cls, url: str) -> bool:
        return False

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
        kind = Store.class_for(url)
        load_lazily()  # before the engine's Ibis backend loads: only its own SQL compiler
        try:
            store = kind._open(url, home=home, memory_limit=memory_limit, create=create, read_only=read_only,
                               lock_wait=lock_wait)
        except StoreError:
            raise
        except Exception as exc:  # the driver's own message is the useful part
            raise kind._open_error(url, exc) from None
        if not read_only:
            with store.engine_errors():
                store.ensure_tables()
        return store

    @classmethod
    def _open(cls, url: str, *, home: Path | None, memory_limit: str, create: bool, read_only: bool,
              lock_wait: float) -> Store:
        raise NotImplementedError

    @classmethod
    def _open_error(cls, url: str, exc: Exception) -> StoreError:
        return StoreError(
            f"cannot open the store at {redact(url)}: {first_line(exc)}. Check [store] url in "
            "kizuna.toml (empty means kizuna.duckdb in the workspace)."
        )

    @classmethod
    def from_backend(cls, backend: ibis.BaseBackend) -> Store:
        """A store on an Ibis backend opened elsewhere (a notebook's Spark session, say)."""
        kind = _engines().get(backend.name)
        if kind is None:
            raise StoreError(f"kizuna has no store for the {backend.name} engine; use DuckDB, PostgreSQL or Spark.")
        store = kind(backend, backend.name)
        store.ensure_tables()
        return store

    def sibling(self) -> Store | None:
        """Another connection to this open store, for one thread, that costs next to nothing to open, or
        None where the engine has none (then connect anew). Close it as any store; this one stays open."""
        return None

    def close(self) -> None:
        self.backend.disconnect()

    def files(self) -> list[Path]:
        """The local files this store lives in (a DuckDB file, its WAL and spill folder), if any."""
        return []

    def describe(self) -> str:
        """Where the store is, for people: its file, or its URL without the password."""
        files = self.files()
        return str(files[0]) if files else redact(self.url)

    @contextlib.contextmanager
    def engine_errors(self) -> Iterator[None]:
        """Turn the engine's errors that a user can act on into a one-line `StoreError`."""
        yield

    @contextlib.contextmanager
    def threads(self, count: int) -> Iterator[None]:
        """At most `count` threads for this connection's queries inside the block (an engine that runs
        elsewhere, or has no such setting, as it is)."""
        yield

    def keep_threads(self, count: int) -> None:
        """At most `count` threads for the queries of every connection to this store's database in this
        process from now on (a server running several requests at once, each a small read); an engine
        that runs elsewhere, or has no such setting, as it is."""

    def drop_cache(self) -> None:
        """Let go of what the engine keeps in this process of the tables it read (outside a transaction;
        before a large write, so that the write's memory comes on top of less); as it is elsewhere."""

    def ensure_tables(self) -> None:
        existing = set(self.backend.list_tables())
        for spec in TABLES.values():
            if spec.name not in existing:
                self.backend.create_table(spec.name, schema=spec.schema)

    # -- reading ----------------------------------------------------------------------
    def table(self, name: str) -> ibis.Table:
        if name in TABLES and name not in _OLDER_TABLES:
            try:
                return self.backend.table(name)
            except TableNotFound:
                # a canonical table added after the store was made, opened read-only before a command created
                # it (`ensure_tables`): empty, as it will be
                return ibis.memtable(TABLES[name].schema.to_pyarrow().empty_table())
        return self.backend.table(name)

    def has_table(self, name: str) -> bool:
        return name in self.table_names()

    def tables(self) -> list[str]:
        """The store's tables, sorted (not Ibis' in-memory ones)."""
        return sorted(t for t in self.table_names() if not t.startswith("ibis_"))

    def table_names(self) -> frozenset[str]:
        """The names of the store's tables and views (Ibis' in-memory ones included)."""
        return frozenset(self.backend.list_tables())

    def count(self, name: str) -> int:
        return int(self.backend.table(name).count().to_pyarrow().as_py())

    def fetch(self, expr: ibis.Expr) -> list[dict[str, object]]:
        """The rows of a small result (a count, a few sums; no memtable in it) as dicts; a scalar's
        is one row of one column (`fetch_value`)."""
        return expr.as_table().to_pyarrow().to_pylist()

    def fetch_value(self, expr: ibis.Scalar) -> object:
        """The value of a scalar expression, e.g. ``rows.count()``."""
        return next(iter(self.fetch(expr)[0].values()))

    # -- transactions -------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The statements of the block as one transaction where the engine has them (DuckDB,
        PostgreSQL): all or nothing. Spark has none: the block runs as it goes."""
        yield

    @contextlib.contextmanager
    def beside(self, work: Callable[[Store], Result]) -> Iterator[Callable[[], Result]]:
        """`work(store)` started beside the block, reading what the store held before it; the block gets a
        function that waits for `work`'s result (raising what it raised). Where the engine has a second
        connection to the database (DuckDB), `work` runs on it in a thread while the block goes on, and sees
        nothing the block writes; elsewhere it runs on this store when its result is asked for. So `work`
        reads only tables the block leaves as they are."""
        yield lambda: work(self)

    def _execute(self, sql: str) -> None:
        """Run one statement of kizuna's own (compiled for this engine's dialect)."""
        with self.backend._safe_raw_sql(sql):
            pass

    # -- copying between stores (`copy_store`) -----------------------------------------
    def same_database(self, other: Store) -> bool:
        """Whether `other` is this very database (a copy between them would drop what it reads)."""
        if self is other or self.backend is other.backend:
            return True
        return type(self) is type(other) and self.url == other.url and self.url != self.engine  # from_backend: no URL

    def arrow_batches(self, rows: ibis.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The rows of an expression as Arrow record batches of at most `batch_rows` rows."""
        yield from rows.to_pyarrow_batches(chunk_size=batch_rows)

    @contextlib.contextmanager
    def loading(self) -> Iterator[None]:
        """A transaction around the loading of several whole tables where the engine can hold
        their creation and rows in one (PostgreSQL): a failure leaves them as they were.
        Elsewhere each table is written on its own."""
        yield

    @contextlib.contextmanager
    def bulk_writer(self, name: str, schema: ibis.Schema) -> Iterator[Callable[[pa.Table], None]]:
        """A function that appends Arrow batches (with exactly `schema`'s columns) to table `name`."""
        yield lambda batch: self.append(name, batch)

    # -- writing ----------------------------------------------------------------------
    def create(self, name: str, obj: ibis.Table | pa.Table | None = None, *,
               schema: ibis.Schema | None = None, overwrite: bool = True, scratch: bool = False,
               categories: Mapping[str, Sequence[str]] | None = None) -> ibis.Table:
        """Create table `name` from an expression, Arrow rows or a schema (replacing it by default).

        `scratch`: an intermediate result used within this connection only, made a temporary
        table where the engine has them (DuckDB keeps it in memory instead of compressing it
        into the file); Spark has no temporary tables and stores it like any other.

        `categories`: text columns of `obj` that only ever hold one of a few known values.
        DuckDB stores them as ENUMs (one byte a row instead of compressing strings; they read
        back as the same strings); other engines store text.
        """
        if overwrite:
            self.drop(name)  # Ibis' overwrite of a schema-only table is broken on DuckDB
        if isinstance(obj, pa.Table):
            table = self.backend.create_table(name, schema=schema or ibis.Schema.from_pyarrow(obj.schema))
            self.append(name, obj)
            return table
        return self.backend.create_table(name, obj, schema=schema)

    @staticmethod
    def _first_by(value: ibis.Column, key: ibis.Column, where: ibis.Value | None) -> ibis.Scalar:
        return value.argmin(key, where=where)

    @staticmethod
    def _to_arrow(expr: ibis.Expr) -> object:
        return expr.to_pyarrow()

    @staticmethod
    def _scratch_table(expr: ibis.Table, name: str) -> contextlib.AbstractContextManager[ibis.Table]:
        # Ibis' cached table, dropped at the block's end; the in-memory tables it reads registered first, as
        # before any query (Ibis' cache does not)
        expr._find_backend(use_default=False)._run_pre_execute_hooks(expr)
        return expr.cache()

    @staticmethod
    def _salted_digest(value: ibis.Value, salt: bytes) -> ibis.Value:
        # the salt goes as hex: a NUL byte in it has no place in a text literal
        return _sha256(_unhex(ibis.literal(salt.hex()) + _hex(value))).substr(0, 16).lower()

    def create_in_order(self, name: str, rows: pa.Table, by: Sequence[str]) -> ibis.Table:
        """`create(name, rows)`, the rows stored sorted by the columns `by` where the engine keeps them in
        the order written (DuckDB: then a read of one key's rows is a range, with no rewrite in that order
        afterwards, see `cluster_by_customer`); other engines plan their own reads and store them as given."""
        return self.create(name, rows)

    def create_from_intermediate(
        self, name: str, intermediate: tuple[str, ibis.Table], build: Callable[[ibis.Table], ibis.Table], *,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> ibis.Table:
        """Create table `name` from `build(step)`, `step` being `intermediate` materialised first.

        `intermediate` is (name, expression): a result that `build`'s expression reads
        several times (a per-customer summary of the orders, say), stored as a scratch
        table so that the engine computes it once; it is dropped afterwards.
        """
        step_name, step_expr = intermediate
        try:
            return self.create(name, build(self.create(step_name, step_expr, scratch=True)), categories=categories)
        finally:
            self.drop(step_name)

    def create_mapped(self, name: str, rows: ibis.Table, function: Callable[[pa.RecordBatch], BatchOut],
                      schema: ibis.Schema, *, batch_rows: int = 100_000) -> ibis.Table:
        """Create table `name` (with exactly `schema`) from `function` applied to the Arrow batches of `rows`.

        `function` is pure: a batch (never empty) in, its rows out (any number), nothing read from the store.
        Here the batches are read into this process and mapped one by one; an engine that runs
        Python beside its data (`distributed`) maps them there and writes the table from there, so
        that the rows never pass through this process (Spark: ``mapInArrow``). Timestamps reach
        `function` without a time zone, as `arrow_batches` gives them.
        """
        target = schema.to_pyarrow()
        mapped = [conform(function(batch), target) for batch in self.arrow_batches(rows, batch_rows) if batch.num_rows]
        return self.create(name, pa.Table.from_batches([b for t in mapped for b in t.to_batches()], schema=target),
                           schema=schema)

    def append(self, name: str, rows: ibis.Table | pa.Table) -> None:
        """Insert rows into table `name`; Arrow rows go through each engine's exact bulk path.

        Not through an Ibis memtable: that passes through pandas, which stores an int64
        column holding any null as all nulls on Spark, and float nulls as NaN.
        """
        if not isinstance(rows, pa.Table):
            self.backend.insert(name, rows)
        elif rows.num_rows:
            self._append_arrow(name, rows)

    def _append_arrow(self, name: str, rows: pa.Table) -> None:
        self.backend.insert(name, ibis.memtable(rows))

    def append_batches(self, name: str, batches: Iterable[pa.Table]) -> None:
        """`append` each of `batches` to table `name` (a scratch table being filled), as they come."""
        for rows in batches:
            self.append(name, rows)

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
        self.apply_changes([(target, self.table(rows_name), key)])

    def apply_changes(self, changes: Sequence[tuple[str, ibis.Table, Sequence[str] | None]]) -> None:
        """Write rows into several tables as one change (an import that fills customers, orders
        and their items): all or nothing where the engine has transactions.

        Each change is (target, rows, key). With a key, the stored rows with the same key are
        replaced (`rows` must then be a stored table, as for `replace_rows`); without, `rows`
        (any expression) are appended. Changes run in the order given.
        """
        dialect = self.backend.dialect
        with self.engine_errors(), self.transaction():
            for target, rows, key in changes:
                if key:
                    match = sg.and_(*(sg.column(k, table="r").eq(sg.column(k, table="t")) for k in key))
                    # unqualified: a temporary table's name (temp.main.x on DuckDB) resolves first
                    name = rows.get_name().split(".")[-1]
                    exists = sge.Exists(this=sg.select("1").from_(sg.table(name).as_("r")).where(match))
                    self._execute(sge.delete(sg.table(target).as_("t"), where=exists).sql(dialect))
                self.backend.insert(target, rows.select(*self.table(target).columns))

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
            for name in self.tables():
                if name == mapping:
                    continue
                table = self.table(name)
                if "customer_id" not in table.columns:
                    continue
                hit = table.semi_join(pairs, table.customer_id == pairs[old])
                count = int(hit.count().to_pyarrow().as_py())
                if count:
                    plans.append((name, [c for c in erase if c in table.columns], count))
            self._rename(plans, pairs, mapping, old, new)
        finally:
            self.drop(mapping)
        return {name: count for name, _, count in plans}

    def _rename(self, plans: Sequence[tuple[str, Sequence[str], int]], pairs: ibis.Table, mapping: str,
                old: str, new: str) -> None:
        """UPDATE each planned table from the mapping table, all in one transaction."""
        dialect = self.backend.dialect

        def quoted(name: str) -> str:
            return sg.to_identifier(name, quoted=True).sql(dialect)

        statements = [
            f"UPDATE {quoted(name)} AS t SET {quoted('customer_id')} = r.{quoted(new)}"
            + "".join(f", {quoted(c)} = NULL" for c in nulled)
            + f" FROM {quoted(mapping)} AS r WHERE t.{quoted('customer_id')} = r.{quoted(old)}"
            for name, nulled, _ in plans
        ]
        with self.engine_errors(), self.transaction():
            for statement in statements:
                self._execute(statement)

    def reclaim(self, tables: Sequence[str] = ()) -> str:
        """Leave no old value of `tables` readable in the store's files, after `rename_customers`;
        what was done (each engine says in its own method)."""
        raise NotImplementedError


# Ibis' backend name -> the module of its store class, loaded on first use (each imports its
# driver); by name, so that the base class does not import its subclasses.
_MODULES = {"duckdb": "kizuna.store._duckdb", "postgres": "kizuna.store._postgres", "pyspark": "kizuna.store._spark"}


def _engines() -> dict[str, type[Store]]:
    """Ibis' backend name -> the store class for it."""
    import importlib

    for module in _MODULES.values():
        importlib.import_module(module)
    return {cls.engine: cls for cls in Store.__subclasses__() if cls.engine in _MODULES}


def first_by(value: ibis.Column, key: ibis.Column, *, where: ibis.Value | None = None) -> ibis.Scalar:
    """The aggregate ``value.argmin(key, where=where)`` (`value` at the smallest `key`, NULL as it is), in the
    form the engine the expression runs on computes cheapest (DuckDB: see `DuckDBStore._first_by`)."""
    import importlib

    try:
        engine = value._find_backend(use_default=False).name
    except Exception:  # an expression bound to no backend (in-memory rows): Ibis' own form
        engine = ""
    if engine not in _MODULES:
        return Store._first_by(value, key, where)
    importlib.import_module(_MODULES[engine])
    kind = next((cls for cls in Store.__subclasses__() if cls.engine == engine), Store)
    return kind._first_by(value, key, where)


def salted_digest(value: ibis.Value, salt: bytes) -> ibis.Value:
    """The first 16 hex digits (lowercase) of SHA-256(`salt` + the UTF-8 bytes of the text `value`), worked out
    by the engine the expression runs on: what ``hashlib.sha256(salt + value.encode()).hexdigest()[:16]`` gives,
    so that a share drawn from a key (a customer's control group) is the same in the engine and in Python."""
    return _store_class(value)._salted_digest(value, salt)


def to_arrow(expr: ibis.Expr) -> object:
    """``expr.to_pyarrow()`` (a table, a column or a scalar), run the cheapest way on the engine the expression
    is bound to (DuckDB: a statement compiled once, the rows without loading pandas; see `DuckDBStore._to_arrow`)."""
    return _store_class(expr)._to_arrow(expr)


def scratch_table(expr: ibis.Table, name: str) -> contextlib.AbstractContextManager[ibis.Table]:
    """`expr` computed once, for the block, into a table of this connection that the queries of the block read
    (Ibis' `cache`). On DuckDB under `name` (unique within the block), not a made-up name, so that the
    queries reading it compile to the same SQL every time (`DuckDBStore._to_arrow`)."""
    return _store_class(expr)._scratch_table(expr, name)


def _store_class(value: ibis.Value) -> type[Store]:
    import importlib

    try:
        engine = value._find_backend(use_default=False).name
    except Exception:  # an expression bound to no backend (in-memory rows): DuckDB runs it
        engine = ""
    if engine not in _MODULES:
        return Store
    importlib.import_module(_MODULES[engine])
    return next((cls for cls in Store.__subclasses__() if cls.engine == engine), Store)


@ibis.udf.scalar.builtin(name="hex")
def _hex(value: str) -> str:  # DuckDB: the hex digits of a text's UTF-8 bytes
    ...


@ibis.udf.scalar.builtin(name="unhex")
def _unhex(value: str) -> bytes:
    ...


@ibis.udf.scalar.builtin(name="sha256")
def _sha256(value: bytes) -> str:
    ...


def conform(rows: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """`rows` with exactly `schema`'s columns, in its order and types (what a mapped batch must give)."""
    table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
    return table.select(schema.names).cast(schema)


def first_line(exc: BaseException) -> str:
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
