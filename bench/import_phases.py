"""Where an import spends its time and memory: one import through the Python API, phase by phase.

    python bench/import_phases.py bench/data/10m                # customers, then orders
    python bench/import_phases.py bench/data/10m --batch-rows 50000 --duckdb-memory-limit 1GB
    python bench/import_phases.py bench/data/1m --file eccube_orders.csv --again   # a line-item export

Imports customers.csv then orders.csv (or --file, its kind told from its headers) from the folder
into a fresh workspace, in this process, and prints for the orders import:

* the streaming phase (read, convert, stage), from the progress callback: rows/s and RSS
  after every few batches;
* each stage after it (the rows of each table the file fills, duplicate check, reference
  check, comparison with the store, write), timed by wrapping kizuna's own functions (nothing
  in kizuna is changed);
* wall and CPU seconds (every thread of the process: the conversion runs on all cores, DuckDB
  too) of each phase, so that a busy machine's waiting shows as wall time without CPU;
* RSS (current and peak, from /proc) and DuckDB's own accounting (``duckdb_memory()``) after
  each step, so the engine's share of the memory shows.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import threading
import time
from pathlib import Path

from kizuna.importing import _importer
from kizuna.store import Store
from kizuna.workspace import Settings, Workspace

WORK = Path(__file__).resolve().parent / "data" / "runs" / "phases"


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process, from /proc/self/status."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kib, _ = line.split()
                values[key] = int(kib) / 1024
    return values.get("VmRSS:", float("nan")), values.get("VmHWM:", float("nan"))


class Timeline:
    """Phases with their wall time, RSS at the end, and the peak RSS seen while they ran."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self.rows: list[tuple[str, float, float, float, float, float]] = []
        self._peak = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self._mark, self._cpu = time.perf_counter(), time.process_time()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._peak = max(self._peak, rss_mib()[0])

    def duckdb_mib(self) -> float:
        if self.store is None or self.store.engine != "duckdb":
            return float("nan")
        row = self.store.backend.con.execute(
            "SELECT sum(memory_usage_bytes) FROM duckdb_memory()"
        ).fetchone()
        return (row[0] or 0) / 2**20

    def phase(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        current, _ = rss_mib()
        self.rows.append((name, now - self._mark, cpu - self._cpu, current, max(self._peak, current),
                          self.duckdb_mib()))
        self._peak = current
        # the DuckDB query above is not part of the next phase
        self._mark, self._cpu = time.perf_counter(), time.process_time()

    def close(self) -> None:
        self._stop.set()

    def print(self) -> None:
        print(f"| {'phase':<44} | seconds | CPU s | RSS MiB | peak in phase | DuckDB MiB |")
        print(f"|{'-' * 46}|--------:|------:|--------:|--------------:|-----------:|")
        for name, seconds, cpu, current, peak, duck in self.rows:
            print(f"| {name:<44} | {seconds:7.2f} | {cpu:5.2f} | {current:7,.0f} | {peak:13,.0f} | {duck:10,.0f} |")
        seconds, cpu = sum(r[1] for r in self.rows), sum(r[2] for r in self.rows)
        print(f"| {'total':<44} | {seconds:7.2f} | {cpu:5.2f} |         |               |            |")


class Phases:
    """Wraps the import's steps (once) so that each one ends a phase of the current timeline."""

    def __init__(self, store: type[Store]) -> None:
        self.timeline: Timeline | None = None
        # the stages of `kizuna.importing.import_file` (see _importer.py), in the order they run
        self._wrap(_importer, "stage_rows", "stream: last batches")
        self._wrap(_importer, "stage_unreadable", "stream: unreadable rows")
        self._wrap(_importer, "targets", "check: each table's rows (guests resolved)")
        self._wrap(_importer, "_drop_duplicates", "check: duplicate check")
        self._wrap(_importer, "_reject", "check: references and rejects")
        self._wrap(_importer, "check_staged", "check: the rest")
        self._wrap(_importer, "_compare", "apply: compare with the store")
        self._wrap(Store, "apply_changes", "apply: write")
        self._wrap(_importer, "apply_changes", "apply: the rest")
        self._wrap(_importer, "_row_kinds", "summary: row kinds")
        self._wrap(store, "create", "check: scratch table")  # the engine's own, which the store's class defines

    def _wrap(self, owner: object, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        phases = self

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            table = args[1] if isinstance(owner, type) and issubclass(owner, Store) and len(args) > 1 \
                and isinstance(args[1], str) else ""
            result = original(*args, **kwargs)
            if phases.timeline:
                phases.timeline.phase(f"{label} {table}".strip())
            return result

        setattr(owner, attr, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with customers.csv and orders.csv")
    parser.add_argument("--work", type=Path, default=WORK,
                        help="scratch workspace (deleted first)")
    parser.add_argument("--batch-rows", type=int, default=None, help="[import] batch_rows for this run")
    parser.add_argument("--duckdb-memory-limit", default=None,
                        help="[store] memory_limit, e.g. 1GB (default: 80%% of RAM)")
    parser.add_argument("--again", action="store_true", help="import the orders a second time too")
    parser.add_argument("--file", default=None,
                        help="import this file of the folder instead of orders.csv, its kind told from its "
                             "headers (e.g. eccube_orders.csv, written by import_orders.py)")
    args = parser.parse_args(argv)

    shutil.rmtree(args.work, ignore_errors=True)
    settings = Settings()
    if args.batch_rows:
        settings = settings.replace(importing={"batch_rows": args.batch_rows})
    if args.duckdb_memory_limit:  # the workspace setting, as a user would write it
        settings = settings.replace(store={"memory_limit": args.duckdb_memory_limit})
    ws = Workspace.init(args.work, settings=settings)
    limit = ws.store.backend.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    print(f"DuckDB memory_limit {limit}, batch_rows {ws.settings.importing.batch_rows:,}", file=sys.stderr)
    start = time.perf_counter()
    ws.import_file("customers", args.data / "customers.csv")
    print(f"customers: {time.perf_counter() - start:.1f} s, RSS {rss_mib()}", file=sys.stderr)

    phases = Phases(type(ws.store))
    kind, path = ("orders", args.data / "orders.csv") if args.file is None else (None, args.data / args.file)
    for attempt in ("first", "again") if args.again else ("first",):
        timeline = phases.timeline = Timeline(ws.store)
        batches = 0

        def progress(done: int, expected: int | None, timeline: Timeline = timeline) -> None:
            nonlocal batches
            batches += 1
            if batches % 10 == 0:
                timeline.phase(f"stream: {done:,} rows")

        began = time.perf_counter()
        summary = ws.import_file(kind, path, on_progress=progress)
        timeline.phase("rest")
        timeline.close()
        total = time.perf_counter() - began
        print(f"\n{path.name} import ({attempt}): {summary.rows_read:,} rows in {total:.1f} s "
              f"({summary.rows_read / total:,.0f} rows/s); added {summary.added:,}, "
              f"unchanged {summary.unchanged:,}, rejected {summary.rejected:,}")
        timeline.print()
    ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
