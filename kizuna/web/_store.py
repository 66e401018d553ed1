"""How the web app reads the workspace's store without keeping cron's commands out of it.

DuckDB lets a file be opened by one writing process, or by readers, never both. `kizuna import`,
`analyze` and `run` from cron wait up to [store] lock_wait seconds (30) for the file. So:

* each request opens the store read-only and closes it after; one extra connection (the
  `StoreGate`'s anchor) stays open while requests keep coming, so that DuckDB's cache stays warm,
  and is closed after 2 s without a request; its database instance runs each query on one thread
  (`READ_THREADS`): the requests run side by side, and a page's few small reads gain nothing from
  being spread over more;
* the `StoreGate` lets go of the file even under a steady stream of requests when a command waits
  to write it (kizuna's store marks the file while it waits: `Store.writer_waiting`): new requests
  wait until the running ones finish and the file has stayed closed for `release` seconds (0.6) —
  longer than the 0.5 s between a waiting command's tries — so the command gets it. It no longer
  lets go every few seconds in case someone waits: each time cost every request of the moment the
  wait, and the reopened file a cold cache. `max_hold` seconds, when given, still bounds how long
  it holds the file without a break (for writers that do not mark their wait);
* figures that take long on a large store (the KPI report reads every order: ~40 s at 1M
  customers; segment migration) are computed on a private copy of the file (`snapshot`: the
  store is held only while it is copied), once per version of the store (its files' sizes and
  modification times), in a background thread, and served from memory; while a newer version
  is computed the previous one is shown, marked as updating.

While a command writes the store, a request waits up to `lock_wait` seconds (5) and then gets
a "busy, reload in a moment" page (503); pages computed before are still served from memory.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kizuna._errors import KizunaError
from kizuna.store import StoreBusy

__all__ = ["Pending", "Reader", "StoreBusy", "StoreGate"]

SNAPSHOT_PREFIX = "kizuna-web-snapshot-"
READ_THREADS = 1  # DuckDB threads per query of the connection kept between requests (`Reader._anchor`)
KEPT_CURSORS = 16  # cursors of that connection kept for the next requests (`StoreGate.cursor`)

log = logging.getLogger("kizuna.web")


class Pending(KizunaError):
    """Figures still being computed in the background: the page asks the browser to come back."""


class StoreGate:
    """Counts the requests that hold the store open and closes the gate when a writer waits (see module):
    `waiting()` says whether one does; `max_hold` (seconds, optional) closes it after that long regardless.

    `opener` (optional) opens a connection that stays open between requests while they keep
    coming — DuckDB keeps one database instance per file and process while any connection is
    open, so its cache stays warm — and is closed after `idle` seconds without a request, and
    whenever the gate closes. The time the file stays open counts from that connection's opening.
    """

    def __init__(self, max_hold: float | None = None, release: float = 0.6, *,
                 opener: Callable[[], Any] | None = None, idle: float = 2.0,
                 waiting: Callable[[], bool] | None = None) -> None:
        self.max_hold, self.release, self.idle = max_hold, release, idle
        self._opener = opener
        self._waiting = waiting  # whether a writer waits for the file (then the gate closes)
        self._anchor: Any = None
        self._cond = threading.Condition()
        self._active = 0
        self._since: float | None = None  # when the file was opened after a break
        self._idle_since = 0.0
        self._closed_until = 0.0
        self._draining = False
        self._janitor: threading.Thread | None = None
        self._writing = False  # the app writes the store (`exclusive`): no request opens it meanwhile
        self._cursors: list[Any] = []  # the kept connection's cursors between requests (`cursor`)

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
                if self._draining or self._writing or now < self._closed_until:
                    waiting = self._draining or self._writing
                    self._cond.wait(timeout=0.05 if waiting else max(0.01, self._closed_until - now))
                    continue
                if self._since is not None and self._must_release(now):
                    if self._active == 0:
                        self._close_file(now)
                    else:
                        self._draining = True  # let the running requests finish, then keep the file closed
                    continue
                if self._since is None:
                    self._since = now
                self._active += 1
                break
            need_anchor = self._opener is not None and self._anchor is None
        if need_anchor:
            self._open_anchor()

    def _must_release(self, now: float) -> bool:
        if self.max_hold is not None and now - self._since > self.max_hold:
            return True
        try:
            return self._waiting is not None and self._waiting()
        except Exception:  # e.g. kizuna.toml being rewritten: the next request asks again
            return False

    def _open_anchor(self) -> None:
        try:
            anchor = self._opener()
        except Exception:  # the request's own connection reports the problem
            return
        with self._cond:
            if self._anchor is None:
                self._anchor = anchor
                anchor = None
            if self._janitor is None:
                self._janitor = threading.Thread(target=self._watch, name="kizuna-web-store-gate", daemon=True)
                self._janitor.start()
        if anchor is not None:  # another request opened one first
            anchor.close()

    def _exit(self) -> None:
        with self._cond:
            self._active -= 1
            if self._active == 0:
                now = time.monotonic()
                self._idle_since = now
                if self._draining:
                    self._draining = False
                    self._close_file(now)
                elif self._anchor is None:
                    self._since = None
                self._cond.notify_all()

    def _close_file(self, now: float) -> None:
        """Close the kept connection and keep the file closed for `release` seconds (lock held, no request)."""
        if self._anchor is not None:
            self._close_anchor()
            self._anchor = None
        self._since = None
        self._closed_until = now + self.release
        self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The file closed to every request of the app for the length of the block (the requests that hold
        it finish first, the kept connection is closed), so that the app can open it for writing."""
        with self._cond:
            while self._writing:
                self._cond.wait(timeout=0.05)
            self._writing = True
            while self._active:
                self._cond.wait(timeout=0.05)
            if self._anchor is not None:
                self._close_anchor()
                self._anchor = None
            self._since = None
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    def cursor(self) -> Any:
        """A cursor of the kept connection (`sibling`) for one request that holds the gate, or None when none
        is kept: one a request gave back, else a new one. Its `close()` gives it back, to the next request
        (a new cursor with its session settings costs a page about what one of its reads does); a cursor is
        closed with the kept connection."""
        with self._cond:
            if self._anchor is None:
                return None
            if self._cursors:
                return self._cursors.pop()
            anchor = self._anchor
        cursor = anchor.sibling()
        drop = cursor.close
        cursor.close = functools.partial(self._give_back, cursor, drop)
        cursor.drop = drop
        return cursor

    def _give_back(self, cursor: Any, drop: Callable[[], None]) -> None:
        with self._cond:
            if self._anchor is not None and len(self._cursors) < KEPT_CURSORS:
                self._cursors.append(cursor)
                return
        drop()

    def _close_anchor(self) -> None:
        """Close the kept connection and its cursors (lock held, no request)."""
        for cursor in self._cursors:
            cursor.drop()
        self._cursors.clear()
        self._anchor.close()

    def kept(self) -> Any:
        """The connection kept between requests, or None. Open while any request holds the gate (`held`)."""
        return self._anchor

    def close(self) -> None:
        with self._cond:
            if self._anchor is not None and self._active == 0:
                self._close_anchor()
                self._anchor = None
                self._since = None

    def _watch(self) -> None:
        while True:
            time.sleep(min(0.2, self.idle / 2))
            with self._cond:
                now = time.monotonic()
                if self._anchor is not None and self._active == 0 and now - self._idle_since >= self.idle:
                    self._close_anchor()
                    self._anchor = None
                    self._since = None


class Reader:
    """The web app's access to one workspace: short read-only sessions and per-version caches."""

    def __init__(self, path: Path | str, *, lock_wait: float = 5.0, max_hold: float | None = None,
                 release: float = 0.6) -> None:
        self.path = Path(path)
        self.lock_wait = lock_wait
        self.gate = StoreGate(max_hold, release, opener=self._anchor, waiting=self._writer_waiting)
        self._cache: dict[str, tuple[tuple, Any]] = {}
        self._refreshing: dict[str, threading.Thread] = {}
        self._errors: dict[str, Exception] = {}
        self._lock = threading.Lock()
        self._loaded_settings: tuple[tuple[int, int] | None, Any] | None = None
        _remove_orphan_snapshots()

    # -- sessions -----------------------------------------------------------------------------
    def _settings(self) -> Any:
        """kizuna.toml, read again only when the file changed (its size or modification time)."""
        from kizuna.settings import SETTINGS_FILE
        from kizuna.workspace import Settings

        path = self.path / SETTINGS_FILE
        try:
            stat = path.stat()
            version = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            version = None  # Settings.load says what is wrong
        cached = self._loaded_settings
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        settings = Settings.load(path)
        self._loaded_settings = (version, settings)
        return settings

    def _writer_waiting(self) -> bool:
        from kizuna.store import Store
        from kizuna.workspace import STORE_FILE

        return Store.writer_waiting(self._settings().store.url or str(self.path / STORE_FILE))

    def _anchor(self) -> Any:
        """A read-only connection kept between requests (see `StoreGate`); stores in a local file only."""
        from kizuna.store import Store
        from kizuna.workspace import STORE_FILE

        settings = self._settings()
        url = settings.store.url or str(self.path / STORE_FILE)
        if not Store.files_at(url):
            raise LookupError("not a store in a local file")
        anchor = Store.connect(url, home=self.path, memory_limit=settings.store.memory_limit, create=False,
                               read_only=True, lock_wait=0)
        # the server runs its requests side by side, each a few small reads: a query spread over more
        # threads only adds their hand-offs to its cost (the database instance is this connection's, and
        # every page's cursor shares it)
        anchor.keep_threads(READ_THREADS)
        return anchor

    @contextlib.contextmanager
    def workspace(self) -> Iterator[Any]:
        """An open, read-only `Workspace` for the length of the block."""
        from kizuna.store import Store
        from kizuna.workspace import STORE_FILE, Workspace

        with self.gate.held():
            settings = self._settings()
            url = settings.store.url or str(self.path / STORE_FILE)
            kept = self.gate.kept()
            # a page's own connection to the file the app keeps open costs next to nothing (a DuckDB cursor)
            store = self.gate.cursor() if kept is not None and kept.url == url else None
            if store is None:
                # StoreBusy when a command still holds the file after `lock_wait` seconds: a 503 page
                store = Store.connect(url, home=self.path, memory_limit=settings.store.memory_limit, create=False,
                                      read_only=True, lock_wait=self.lock_wait)
            ws = Workspace(self.path, settings, store)
            try:
                yield ws
            finally:
                ws.close()

    @contextlib.contextmanager
    def writing(self) -> Iterator[Any]:
        """An open `Workspace` that may write the store, for the length of the block: the app's own
        requests wait meanwhile (`StoreGate.exclusive`); a command that holds the file makes it
        `StoreBusy` after `lock_wait` seconds, as a reader would be. Keep the block short."""
        from kizuna.store import Store
        from kizuna.workspace import STORE_FILE, Workspace

        with self.gate.exclusive():
            settings = self._settings()
            url = settings.store.url or str(self.path / STORE_FILE)
            store = Store.connect(url, home=self.path, memory_limit=settings.store.memory_limit, create=False,
                                  lock_wait=self.lock_wait)
            ws = Workspace(self.path, settings, store)
            try:
                yield ws
            finally:
                ws.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A read-only `Workspace` on a private copy of the DuckDB file, for computations that take
        longer than a command from cron may wait (the KPI report reads every order: ~40 s at 1M
        customers). The store is held only while it is copied (a few seconds); other engines have
        no such lock and are read directly."""
        from kizuna.store import Store
        from kizuna.workspace import STORE_FILE, Workspace

        settings = self._settings()
        url = settings.store.url or str(self.path / STORE_FILE)
        files = Store.files_at(url)
        if not files:  # a server's store: no file lock to keep short
            with self.workspace() as ws:
                yield ws
            return
        source = files[0]
        folder = Path(tempfile.mkdtemp(prefix=f"{SNAPSHOT_PREFIX}{os.getpid()}-"))
        try:
            with self.gate.held():
                # a reader of our own holds the file: no command writes it while we copy (StoreBusy when
                # a command still holds it after `lock_wait` seconds)
                holder = Store.connect(url, home=self.path, create=False, read_only=True, lock_wait=self.lock_wait)
                try:
                    for file in files:
                        if file.exists():
                            shutil.copyfile(file, folder / file.name)
                finally:
                    holder.close()
            store = Store.connect(str(folder / source.name), home=self.path, memory_limit=settings.store.memory_limit,
                                  create=False, read_only=True)
            ws = Workspace(self.path, settings, store)
            try:
                yield ws
            finally:
                ws.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def version(self) -> tuple:
        """Changes whenever a command writes the store or the settings (files' sizes and times)."""
        from kizuna.settings import SETTINGS_FILE
        from kizuna.workspace import STORE_FILE

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
    def cached(self, key: str, compute: Callable[[Any], Any], *, wait: float = 120.0,
               snapshot: bool = False, stale_ok: bool = True) -> tuple[Any, bool]:
        """(value, stale): `compute(ws)` for the store's current version, from memory when known.

        When the store changed, the value is recomputed in a background thread and the last
        value is returned at once, with stale=True; with no value yet, waits up to `wait` seconds
        for it (then `Pending`). `snapshot`: compute on a copy of the store (see `snapshot`).
        `stale_ok=False` always waits for the current version (contact data: an erased customer
        must not show from memory).
        """
        version = self.version()
        with self._lock:
            known = self._cache.get(key)
            if known is not None and known[0] == version:
                return known[1], False
            thread = self._refreshing.get(key)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._refresh, args=(key, compute, version, snapshot),
                                          name=f"kizuna-web-{key}", daemon=True)
                self._refreshing[key] = thread
                thread.start()
        if known is not None and stale_ok:
            return known[1], True
        thread.join(wait)
        with self._lock:
            known = self._cache.get(key)
        if known is None or (not stale_ok and known[0] != version):
            error = self._errors.pop(key, None)
            if error is not None:
                raise error
            raise Pending("the figures are still being computed; reload the page in a moment.")
        return known[1], known[0] != version

    def warm(self, key: str, compute: Callable[[Any], Any], *, snapshot: bool = False) -> None:
        """Start computing `key` in the background, so that the first visitor does not wait."""
        with self._lock:
            if key in self._refreshing:
                return
            thread = threading.Thread(target=self._refresh, args=(key, compute, self.version(), snapshot),
                                      name=f"kizuna-web-{key}", daemon=True)
            self._refreshing[key] = thread
            thread.start()

    def _refresh(self, key: str, compute: Callable[[Any], Any], version: tuple, snapshot: bool = False) -> None:
        started = time.monotonic()
        try:
            with self.snapshot() if snapshot else self.workspace() as ws:
                value = compute(ws)
        except Exception as exc:  # shown by the page that asked; the next request tries again
            self._errors[key] = exc
            log.warning("computing %s failed: %s", key, type(exc).__name__)
            return
        with self._lock:
            self._cache[key] = (version, value)
        log.info("computed %s in %.2f s", key, time.monotonic() - started)

    def close(self, wait: float = 60.0) -> None:
        """Wait for the background computations (a daemon thread cut off inside DuckDB at exit
        aborts the process) and close the connection kept between requests."""
        deadline = time.monotonic() + wait
        for thread in list(self._refreshing.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        self.gate.close()

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


def _remove_orphan_snapshots() -> None:
    """Remove the store copies of web apps that died before removing them (the folder names the PID)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SNAPSHOT_PREFIX}*-*"):
        pid = folder.name.removeprefix(SNAPSHOT_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, another user's
            continue
