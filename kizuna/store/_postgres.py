"""The store on a PostgreSQL server: `PostgresStore`.

Transactions through psycopg (Ibis' own statements become savepoints inside one), temporary
tables for scratch results, Arrow rows written by ``COPY … FROM STDIN``, and ``VACUUM FULL``
to rewrite a table's files after its rows were pseudonymised.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlglot as sg

from kizuna.store._engine import Store

__all__ = ["PostgresStore"]


class PostgresStore(Store):
    """A workspace's tables in one PostgreSQL database."""

    engine = "postgres"
    label = "PostgreSQL"

    @classmethod
    def _open(cls, url: str, *, home: Path | None, memory_limit: str, create: bool, read_only: bool,
              lock_wait: float) -> PostgresStore:
        backend = ibis.connect(url.replace("postgresql://", "postgres://", 1))
        return cls(backend, url, memory_limit=memory_limit, lock_wait=lock_wait)

    @staticmethod
    def _salted_digest(value: ibis.Value, salt: bytes) -> ibis.Value:
        utf8 = _encode(_convert_to(value, "UTF8"), "hex")
        return _encode(_sha256(_decode(ibis.literal(salt.hex()) + utf8, "hex")), "hex").substr(0, 16)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.backend.con.transaction():
            yield

    def create(self, name: str, obj: ibis.Table | pa.Table | None = None, *,
               schema: ibis.Schema | None = None, overwrite: bool = True, scratch: bool = False,
               categories: Mapping[str, Sequence[str]] | None = None) -> ibis.Table:
        if scratch:
            return self.backend.create_table(name, obj, schema=schema, temp=True, overwrite=True)
        return super().create(name, obj, schema=schema, overwrite=overwrite)

    @contextlib.contextmanager
    def loading(self) -> Iterator[None]:
        with self.transaction():  # Ibis' own statements become savepoints inside it
            yield

    def _append_arrow(self, name: str, rows: pa.Table) -> None:
        """``COPY … FROM STDIN`` fed CSV that Arrow writes (no Python loop over rows).

        In PostgreSQL's CSV an unquoted empty field is NULL and a quoted one is the empty
        string; Arrow quotes every string, so the two stay apart.
        """
        with self.bulk_writer(name, ibis.Schema.from_pyarrow(rows.schema)) as write:
            write(rows)

    @contextlib.contextmanager
    def bulk_writer(self, name: str, schema: ibis.Schema) -> Iterator[Callable[[pa.Table], None]]:
        """One ``COPY … FROM STDIN`` for every batch (cheaper than one per batch), fed CSV that
        Arrow writes."""
        columns = ", ".join(sg.to_identifier(c, quoted=True).sql("postgres") for c in schema.names)
        table = sg.to_identifier(name, quoted=True).sql("postgres")
        options = pa_csv.WriteOptions(include_header=False)
        with self.backend.con.cursor() as cursor, cursor.copy(
            f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            def write(batch: pa.Table) -> None:
                buffer = io.BytesIO()
                pa_csv.write_csv(batch, buffer, options)
                copy.write(buffer.getbuffer())

            yield write

    def reclaim(self, tables: Sequence[str] = ()) -> str:
        """``"vacuum_full"``: each table is rewritten into new files by ``VACUUM FULL`` and the old
        ones are removed. The server's files are not in the workspace; its WAL and backups are
        the database administrator's."""
        for name in tables:
            with self.backend.con.cursor() as cursor:  # autocommit: VACUUM runs outside a transaction
                cursor.execute(f"VACUUM FULL {sg.to_identifier(name, quoted=True).sql('postgres')}")
        return "vacuum_full"


@ibis.udf.scalar.builtin(name="convert_to")
def _convert_to(value: str, encoding: str) -> bytes:
    ...


@ibis.udf.scalar.builtin(name="encode")
def _encode(value: bytes, form: str) -> str:
    ...


@ibis.udf.scalar.builtin(name="decode")
def _decode(value: str, form: str) -> bytes:
    ...


@ibis.udf.scalar.builtin(name="sha256")
def _sha256(value: bytes) -> bytes:
    ...
