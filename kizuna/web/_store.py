"""How the web app reads the workspace's store without keeping cron's commands out of it.

DuckDB lets a file be opened by one writing process, or by readers, never both. `kizuna import`,
`analyze` and `run` from cron wait up to [store] lock_wait seconds for the file. So the web app
opens the store read-only for each request and closes it after (opening takes ~20 ms), and a
`StoreGate` makes sure the file is let go of regularly even under a steady stream of requests:
once the app has held the file for `max_hold` seconds without a break, new requests wait until
the running ones finish and the file has stayed closed for `release` seconds — longer than the
0.5 s between a waiting command's tries — so the command gets it.

Figures that take seconds on a large store (the KPI report) are computed once per version of
the store (its files' modification times) in a background thread and served from memory;
while a newer version is computed the previous one is shown, marked as updating.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kizuna._errors import KizunaError, StoreError

__all__ = ["Pending", "Reader", "StoreBusy", "StoreGate"]

log = logging.getLogger("kizuna.web")


class StoreBusy(StoreError):
    """Another process writes the store (an import or analysis): the page can be reloaded shortly."""


class Pending(KizunaError):
    """Figures still being computed in the background: the page asks the browser to come back."""


class StoreGate:
    """Counts the requests that hold the store open and closes the gate now and then (see module)."""

    def __init__(self, max_hold: float = 10.0, release: float = 0.6) -> None:
        self.max_hold, self.release = max_hold, release
        self._cond = threading.Condition()
        self._active = 0
        self._since: float | None = None  # when the file was last opened after a break
        self._closed_until = 0.0
        self._draining = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._enter()
        try:
            yield
        finally:
            self._exit()

    def _enter(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._draining or now < self._closed_until:
                    self._cond.wait(timeout=max(0.01, self._closed_until - now) if not self._draining else 0.05)
                    continue
                if self._active and self._since is not None and now - self._since > self.max_hold:
                    self._draining = True  # let the running requests finish, then keep the file closed
                    continue
                if self._active == 0:
                    self._since = now
                self._active += 1
                return

    def _exit(self) -> None:
        with self._cond:
            self._active -= 1
            if self._active == 0:
                self._since = None
                if self._draining:
                    self._draining = False
                    self._closed_until = time.monotonic() + self.release
                self._cond.notify_all()


class Reader:
    """The web app's access to one workspace: short read-only sessions and per-version caches."""

    def __init__(self, path: Path | str, *, lock_wait: float = 5.0, max_hold: float = 10.0,
                 release: float = 0.6) -> None:
        self.path = Path(path)
        self.lock_wait = lock_wait
        self.gate = StoreGate(max_hold, release)
        self._cache: dict[str, tuple[tuple, Any]] = {}
        self._refreshing: dict[str, threading.Thread] = {}
        self._errors: dict[str, Exception] = {}
        self._lock = threading.Lock()

    # -- sessions -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def workspace(self) -> Iterator[Any]:
        """An open, read-only `Workspace` for the length of the block."""
        from kizuna.store import Store
        from kizuna.workspace import STORE_FILE, Settings, Workspace
        from kizuna.workspace._settings import SETTINGS_FILE

        with self.gate.held():
            settings = Settings.load(self.path / SETTINGS_FILE)
            url = settings.store_url or str(self.path / STORE_FILE)
            try:
                store = Store.connect(url, home=self.path, memory_limit=settings.store_memory_limit, create=False,
                                      read_only=True, lock_wait=self.lock_wait)
            except StoreError as exc:
                if "is using this workspace's store" in str(exc):
                    raise StoreBusy(str(exc)) from None
                raise
            ws = Workspace(self.path, settings, store)
            try:
                yield ws
            finally:
                ws.close()

    def version(self) -> tuple:
        """Changes whenever a command writes the store or the settings (files' sizes and times)."""
        from kizuna.workspace import STORE_FILE
        from kizuna.workspace._settings import SETTINGS_FILE

        parts: list[Any] = []
        for name in (SETTINGS_FILE, STORE_FILE, STORE_FILE + ".wal"):
            try:
                stat = (self.path / name).stat()
                parts.append((stat.st_mtime_ns, stat.st_size))
            except FileNotFoundError:
                parts.append(None)
        if parts[1] is None:  # a store elsewhere (PostgreSQL, Spark): refresh once a minute
            parts.append(int(time.time() // 60))
        return tuple(parts)

    # -- cached figures -----------------------------------------------------------------------
    def cached(self, key: str, compute: Callable[[Any], Any], *, wait: float = 120.0) -> tuple[Any, bool]:
        """(value, stale): `compute(ws)` for the store's current version, from memory when known.

        When the store changed, the value is recomputed in a background thread and the last
        value is returned at once, with stale=True; with no value yet, waits for it.
        """
        version = self.version()
        with self._lock:
            known = self._cache.get(key)
            if known is not None and known[0] == version:
                return known[1], False
            thread = self._refreshing.get(key)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._refresh, args=(key, compute, version),
                                          name=f"kizuna-web-{key}", daemon=True)
                self._refreshing[key] = thread
                thread.start()
        if known is not None:
            return known[1], True
        thread.join(wait)
        with self._lock:
            known = self._cache.get(key)
        if known is None:
            error = self._errors.pop(key, None)
            if error is not None:
                raise error
            raise Pending("the figures are still being computed; reload the page in a moment.")
        return known[1], known[0] != version

    def warm(self, key: str, compute: Callable[[Any], Any]) -> None:
        """Start computing `key` in the background, so that the first visitor does not wait."""
        with self._lock:
            if key in self._refreshing:
                return
            thread = threading.Thread(target=self._refresh, args=(key, compute, self.version()),
                                      name=f"kizuna-web-{key}", daemon=True)
            self._refreshing[key] = thread
            thread.start()

    def _refresh(self, key: str, compute: Callable[[Any], Any], version: tuple) -> None:
        started = time.monotonic()
        try:
            with self.workspace() as ws:
                value = compute(ws)
        except Exception as exc:  # shown by the page that asked; the next request tries again
            self._errors[key] = exc
            log.warning("computing %s failed: %s", key, type(exc).__name__)
            return
        with self._lock:
            self._cache[key] = (version, value)
        log.info("computed %s in %.2f s", key, time.monotonic() - started)

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
