"""Compiled statements: the SQL of an Ibis expression, compiled once.

Ibis takes far longer to compile a large expression (`analytics.customer_scores`, the overview's
figures) than DuckDB takes to run it on a small store. The SQL depends only on the expression — its
operations, its literals (the as-of day, the settings), the names and schemas of the tables it reads —
and on the code that compiles it (Ibis, sqlglot, kizuna) and the engine's dialect. `compiled` keeps the
SQL under a digest of exactly those, in this process; `kept_statements(path)` keeps the statements of a block
(an `analyze`) in a file as well, so that the next process running the same block reads them instead
of compiling.

An expression the digest cannot describe faithfully — a Python UDF, an object of a type it does not
know, many rows in memory — is compiled each time and never kept: a statement is reused only for an
expression whose every part went into its key, so a changed setting, day or column type is a different
key. A few rows in memory (`ibis.memtable`: the months of a report, say) go into the key by their
content; their made-up table names are put into the SQL when it is used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import ibis
import ibis.expr.operations as ops
from ibis.backends import BaseBackend
from ibis.common.collections import FrozenDict
from ibis.expr.operations.udf import InputType

__all__ = ["compiled", "digest", "kept_statements"]

_FORMAT = 1  # of the file and of the key: a change of either makes every kept statement a miss
_PLAIN = (type(None), bool, int, float, str, bytes, decimal.Decimal, dt.date, dt.time, dt.timedelta, uuid.UUID,
          enum.Enum)
_LOCK = threading.Lock()
_KNOWN: dict[str, str] = {}  # key -> SQL, this process's
_KNOWN_MOST = 2_000  # then forgotten all at once: a server's days and settings add keys without end
_FILES: list[_Kept] = []  # the files of the blocks running (`kept_statements`), innermost last


_MEMORY_ROWS = 10_000  # more rows in memory than this: compiled each time rather than digested
_NAMED = "@@kizuna_memtable_{}@@"  # where the SQL kept names a table of rows in memory


class _Unknown(Exception):
    """A part of an expression the digest does not describe: compile it, keep nothing."""


class _Walk:
    """One digest's state: each node's digest once, and the names of the tables of rows in memory in the
    order met."""

    def __init__(self) -> None:
        self.memo: dict[int, bytes] = {}
        self.memtables: list[str] = []


def digest(expr: ibis.Expr) -> str | None:
    """A hex digest of everything in `expr` its SQL depends on, or None when it holds a part that no
    digest here describes (a Python UDF, an object of an unknown type, many rows in memory)."""
    found = _digest(expr)
    return None if found is None else found[0]


def _digest(expr: ibis.Expr) -> tuple[str, list[str]] | None:
    walk = _Walk()
    try:
        return _node(expr.op(), walk).hex(), walk.memtables
    except _Unknown:
        return None


def _node(node: object, walk: _Walk) -> bytes:
    memo = walk.memo
    known = memo.get(id(node))
    if known is not None:
        return known
    kind = type(node)
    if isinstance(node, ops.InMemoryTable):
        found = _rows_in_memory(node, walk)
        memo[id(node)] = found
        return found
    parts = [f"{kind.__module__}.{kind.__qualname__}"]
    if hasattr(kind, "__func_name__"):  # a UDF: a class made at run time; its SQL is its name and types
        if getattr(kind, "__input_type__", None) != InputType.BUILTIN:
            raise _Unknown  # a Python function registered with the engine under a made-up name
        parts += [repr(kind.__func_name__), repr(kind.__udf_namespace__), repr(kind.dtype), repr(kind.__config__)]
    for name, value in zip(node.__argnames__, node.__args__, strict=True):
        parts.append(name)
        parts.append(_value(value, walk).hex() if not isinstance(value, _PLAIN) else _plain(value))
    found = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()
    memo[id(node)] = found
    return found


def _rows_in_memory(node: ops.InMemoryTable, walk: _Walk) -> bytes:
    """A table of rows in memory by its place among the expression's ones, its schema and its rows (its name is
    made up each time)."""
    import pyarrow as pa

    rows = node.data.to_pyarrow(node.schema)
    if rows.num_rows > _MEMORY_ROWS:
        raise _Unknown
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as out:
        out.write_table(rows)
    walk.memtables.append(node.name)
    parts = [b"memtable", str(len(walk.memtables)).encode(), _node(node.schema, walk), sink.getvalue().to_pybytes()]
    return hashlib.blake2b(b"\x1f".join(parts), digest_size=16).digest()


def _plain(value: object) -> str:
    return f"{type(value).__name__}:{value!r}"


def _value(value: object, walk: _Walk) -> bytes:
    if isinstance(value, _PLAIN):
        return _plain(value).encode()
    if hasattr(value, "__argnames__"):  # an operation, a type, a schema, a namespace
        return _node(value, walk)
    if isinstance(value, BaseBackend):  # a table's connection: only its dialect shapes the SQL
        return f"backend:{value.name}".encode()
    if isinstance(value, tuple | list):
        return b"(" + b",".join(_value(v, walk) for v in value) + b")"
    if isinstance(value, FrozenDict | Mapping):
        return b"{" + b",".join(_value(k, walk) + b":" + _value(v, walk) for k, v in value.items()) + b"}"
    raise _Unknown


def compiled(backend: BaseBackend, expr: ibis.Expr, compile: Callable[[], str]) -> str:
    """The SQL `compile()` gives for `expr` on `backend`, compiled once per key (`digest`, the engine's
    dialect, the versions of the code that compiles it)."""
    found = _digest(expr)
    if found is None:
        return compile()
    key = f"{_FORMAT}:{backend.name}:{_versions()}:{found[0]}"
    names = found[1]
    sql = _KNOWN.get(key)
    if sql is None:
        for kept in reversed(_FILES):
            sql = kept.get(key)
            if sql is not None:
                break
        else:
            sql = compile()
            for i, name in enumerate(names):
                sql = sql.replace(name, _NAMED.format(i))
        with _LOCK:
            if len(_KNOWN) >= _KNOWN_MOST:
                _KNOWN.clear()
            _KNOWN[key] = sql
    for kept in _FILES:
        kept.used(key, sql)
    for i, name in enumerate(names):
        sql = sql.replace(_NAMED.format(i), name)
    return sql


_VERSIONS: str | None = None


def _versions() -> str:
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = "/".join(f"{name}={_version(name)}" for name in ("ibis-framework", "sqlglot", "kizuna"))
    return _VERSIONS


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # run from a source tree: its statements stay in this process
        return f"unknown-{os.getpid()}"


class _Kept:
    """The statements of one file: those read from it, and those a block used (written back at its end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.read: dict[str, str] = {}
        self.using: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("format") == _FORMAT and isinstance(stored.get("statements"), dict):
                self.read = {str(k): str(v) for k, v in stored["statements"].items()}

    def get(self, key: str) -> str | None:
        return self.read.get(key)

    def used(self, key: str, sql: str) -> None:
        with _LOCK:
            self.using[key] = sql

    def save(self) -> None:
        """Write the statements the block used, and no others (a day's statements replace the last day's),
        unless they are those read."""
        if self.using == self.read:
            return
        fresh = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            # the SQL holds the settings' values: as private as the store
            handle = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"format": _FORMAT, "statements": self.using}, out, ensure_ascii=False)
            os.replace(fresh, self.path)  # whole or not at all, for a process reading it meanwhile
        except OSError:  # a read-only folder: the next run compiles again
            with contextlib.suppress(OSError):
                fresh.unlink()


@contextlib.contextmanager
def kept_statements(path: Path) -> Iterator[None]:
    """Statements compiled in the block are read from `path` when there, and the block's statements are
    written to it when the block ends without an error (the file then holds those alone)."""
    kept = _Kept(path)
    _FILES.append(kept)
    try:
        yield
    finally:
        _FILES.remove(kept)
    kept.save()
