"""`StoreBusy`: the store is held by another process for now (a DuckDB file that a command writes).

A typed error, so that callers (the web app's "busy, reload in a moment" page) need not read an
error's text. The engine that has such a lock raises it where it translates its errors: DuckDB's
`_open_error` (see `busy_error`); PostgreSQL and Spark have no lock of a whole store.
"""

from __future__ import annotations

import re

from kizuna._errors import StoreError

__all__ = ["StoreBusy", "busy_error"]


class StoreBusy(StoreError):
    """Another process holds the store (an import or an analysis writes it): try again shortly."""


def busy_error(url: str, exc: BaseException) -> StoreBusy | None:
    """`StoreBusy` in one line for DuckDB's error when another process holds the file; None for any
    other error. `url` is shown as given: pass it redacted."""
    text = str(exc)
    if "Could not set lock on file" not in text:  # DuckDB: one process at a time opens a file for writing
        return None
    pid = re.search(r"\(PID (\d+)\)", text)
    who = f"another kizuna command (PID {pid.group(1)})" if pid else "another kizuna command"
    return StoreBusy(f"{who} is using this workspace's store {url}; wait for it to finish, or stop it.")
