"""Spark at scale (issue 24): analyze, predict and a dry run on Spark (local[2]) beside DuckDB, same data.

    python bench/spark_scale.py --customers 1_000_000                  # 10M orders
    python bench/spark_scale.py --customers 10_000_000 --driver-memory 6g

Data: bench/make_data.py's customers and orders (Parquet, ten orders a customer by default) in
bench/data/spark/<size>/, made when missing. They are loaded once into a DuckDB workspace
(``duckdb-ws``) with DuckDB's INSERT … SELECT, as customer_table.py loads them; its canonical
tables are exported to Parquet and loaded into a Spark workspace
(``spark-ws``, ``[store] url = "pyspark://local"``: a local[2] session, its warehouse in the
workspace) with one INSERT per table, read by the executors. With ``--engines spark`` at a size never
loaded into DuckDB, the Spark workspace is loaded from make_data.py's customers and orders directly
(the other tables are empty either way). Loading is setup, timed apart.

Then each engine runs in a process of its own, the steps one after the other through the Python API
(`Workspace.analyze`, `Workspace.predict`, `Workspace.run(dry_run=True)` with one after-order
scenario), and per step the script prints:

* seconds (wall clock);
* the Python driver's peak RSS during the step (``VmHWM`` of /proc, reset before each step by
  writing 5 to ``clear_refs``);
* on Spark, the JVM's peak heap (the sum of its heap pools' peak usage, read and reset through
  ``java.lang.management``; in local mode the driver and the executors share that JVM, so this is
  an upper bound of the driver's) and the JVM process' peak RSS (``VmHWM``, reset the same way);
* on Spark, the rows collected to the driver: counted where PySpark receives them
  (`kizuna.store.collected_rows`: every ``collect``, Arrow collect — what Ibis' ``to_pyarrow``
  uses — and ``toLocalIterator`` of the process), as the total, the largest single collect and the
  number of collects. Rows the executors write themselves (customer_predictions) do not cross.

For the dry runs a second table sets the rows collected against the messages due (the rows the
dispatcher settles: would send, suppressed, deferred, merged, cancelled): what a person acts on may
grow with the customers, the rows per message due should not. ``--reference DIR`` runs each engine
again with the `kizuna` package in DIR first on PYTHONPATH (the code before a change), in the same call;
``--only NAME`` dry-runs that scenario alone (``thank-you``: a day's orders, what a daily run sends):

    python bench/spark_scale.py --customers 100_000 --engines spark --steps run --reference /tmp/before
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
AS_OF = dt.date(2025, 12, 31)  # make_data's three years from 2023-01-01, the last full day
STEPS = ("analyze", "predict", "run")
# what a dry run's dispatcher settles: the messages due (a row counted once)
ACTED = ("would_send", "suppressed", "deferred", "merged", "cancelled")
CANONICAL = ("customers", "products", "orders", "order_items", "nps_answers", "support_contacts", "events")
SCENARIO = """\
name: thank-you
title: {ja: 購入直後のお礼, en: Thank-you after purchase}
trigger: {after_order: {days: 1}}
goal: {kind: order, days: 30}
steps:
  - channel: email
    wait_days: 0
    subject: {ja: "ありがとうございました", en: "Thank you"}
    body: {ja: "{{ name }} 様", en: "Dear {{ name }}"}
"""


def size_label(customers: int) -> str:
    for unit, suffix in ((1_000_000, "m"), (1_000, "k")):
        if customers >= unit and customers % unit == 0:
            return f"{customers // unit}{suffix}"
    return str(customers)


# -- memory ------------------------------------------------------------------------------------------
def _reset_peak(pid: int | str = "self") -> None:
    # Linux: 5 resets the peak RSS (VmHWM) to the current RSS
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _peak_mib(pid: int | str = "self") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class JvmHeap:
    """The JVM's heap pools' peak usage, reset between steps (None when there is no JVM)."""

    def __init__(self, session) -> None:
        self.jvm = session.sparkContext._jvm
        self.pid = session.sparkContext._gateway.proc.pid

    def _pools(self):
        factory = self.jvm.java.lang.management.ManagementFactory
        return [p for p in factory.getMemoryPoolMXBeans() if p.getType().toString() == "Heap memory"]

    def reset(self) -> None:
        self.jvm.java.lang.System.gc()
        for pool in self._pools():
            pool.resetPeakUsage()
        _reset_peak(self.pid)

    def peak_mib(self) -> float:
        return sum(p.getPeakUsage().getUsed() for p in self._pools()) / 2**20

    def max_mib(self) -> float:
        return self.jvm.java.lang.Runtime.getRuntime().maxMemory() / 2**20


# -- one engine, in its own process ------------------------------------------------------------------
def child(engine: str, workspace: Path, steps: list[str], only: str | None = None) -> None:
    from kizuna.workspace import Workspace

    ws = Workspace.open(workspace)
    heap = None
    counting = None
    if engine == "spark":
        from kizuna.store import collected_rows

        heap = JvmHeap(ws.store.backend._session)
        counting = collected_rows
        print(json.dumps({"jvm_max_heap_mib": round(heap.max_mib())}), flush=True)
    for step in steps:
        _reset_peak()
        if heap is not None:
            heap.reset()
        start = time.perf_counter()
        if counting is not None:
            with counting() as collected:
                result = _step(ws, step, only)
            rows = {"rows_total": collected.total, "rows_largest": collected.largest,
                    "collects": len(collected.collects)}
        else:
            result, rows = _step(ws, step, only), {}
        seconds = time.perf_counter() - start
        line = {"engine": engine, "step": step, "seconds": round(seconds, 1), "python_peak_mib": _peak_mib(),
                "result": result, **rows}
        if heap is not None:
            line |= {"jvm_heap_peak_mib": round(heap.peak_mib()), "jvm_rss_peak_mib": _peak_mib(heap.pid)}
        print(json.dumps(line), flush=True)
    ws.close()


def _step(ws, step: str, only: str | None = None):
    if step == "analyze":
        return ws.analyze(AS_OF)
    if step == "predict":
        result = ws.predict(AS_OF)
        return {"rows_in_result": result.table.num_rows,
                "stored": int(ws.store.table("customer_predictions").count().to_pyarrow().as_py())}
    report = ws.run(AS_OF, now=dt.datetime(AS_OF.year, AS_OF.month, AS_OF.day, 10), dry_run=True, only=only)
    return {"would_send": report.total("would_send"), "acted": sum(report.total(s) for s in ACTED),
            "enrolled": report.total("enrolled"), "holdout": report.total("holdout")}


# -- data and workspaces --------------------------------------------------------------------------
def make_data(folder: Path, customers: int, orders: int) -> None:
    if (folder / "orders.parquet").exists():
        return
    subprocess.run([sys.executable, str(BENCH / "make_data.py"), "--customers", str(customers), "--orders",
                    str(orders), "--format", "parquet", "--out", str(folder)], check=True)


def load_sql(folder: Path) -> list[str]:
    """make_data.py's typed Parquet straight into the canonical tables (as customer_table.py loads them):
    `kizuna import` of 100M orders would take longer than the steps measured."""
    customers, orders = folder / "customers.parquet", folder / "orders.parquet"
    return [
        f"""INSERT INTO customers (customer_id, name, name_kana, email, phone, postal_code, address,
                                   signed_up_at, email_opt_in, dm_opt_in, birthday)
            SELECT customer_id, name, name_kana, email, phone, postal_code, address,
                   CAST(signed_up_at AS TIMESTAMP), email_opt_in, dm_opt_in, CAST(birthday AS DATE)
            FROM read_parquet('{customers}')""",
        f"""INSERT INTO orders (order_id, customer_id, ordered_at, amount, status, refund_amount, channel)
            SELECT order_id, customer_id, CAST(ordered_at AS TIMESTAMP), amount, status, refund_amount, channel
            FROM read_parquet('{orders}')""",
    ]


def duckdb_workspace(folder: Path) -> Path:
    from kizuna.workspace import Workspace

    path = folder / "duckdb-ws"
    if (path / "done").exists():
        return path
    start = time.perf_counter()
    ws = Workspace.init(path, exist_ok=True)
    con = ws.store.backend.con
    for sql in load_sql(folder):
        con.execute(sql)
    con.execute("CHECKPOINT")
    (path / "scenarios").mkdir(exist_ok=True)
    (path / "scenarios" / "thank-you.yaml").write_text(SCENARIO)
    exports = folder / "canonical"
    exports.mkdir(exist_ok=True)
    for name in CANONICAL:
        target = exports / f"{name}.parquet"
        ws.store.backend.con.execute(f"COPY (SELECT * FROM {name}) TO '{target}' (FORMAT parquet)")
    ws.close()
    (path / "done").write_text(f"{time.perf_counter() - start:.1f} s\n")
    print(f"DuckDB workspace: {path} ({time.perf_counter() - start:.1f} s)", flush=True)
    return path


def load_spark(folder: Path) -> None:
    """The Spark workspace from the DuckDB workspace's canonical export, or, without one (``--engines spark``
    on a size never loaded into DuckDB), from make_data.py's customers and orders themselves (the other
    tables stay empty, as they are in the export; a column make_data.py has no value for is NULL)."""
    from kizuna.workspace import Workspace

    path = folder / "spark-ws"
    start = time.perf_counter()
    ws = Workspace.init(path, store_url="pyspark://local", exist_ok=True)
    (path / "scenarios").mkdir(exist_ok=True)
    (path / "scenarios" / "thank-you.yaml").write_text(SCENARIO)
    session = ws.store.backend._session
    exported = (folder / "canonical" / "orders.parquet").exists()
    for name in CANONICAL if exported else ("customers", "orders"):
        source = folder / "canonical" / f"{name}.parquet" if exported else folder / f"{name}.parquet"
        present = set(session.read.parquet(str(source)).columns)
        columns = ", ".join(f"CAST({f'`{f.name}`' if f.name in present else 'NULL'} AS {f.dataType.simpleString()})"
                            f" AS `{f.name}`" for f in session.table(name).schema.fields)
        session.sql(f"INSERT OVERWRITE TABLE {name} SELECT {columns} FROM parquet.`{source}`")
    ws.close()
    (path / "done").write_text(f"{time.perf_counter() - start:.1f} s\n")
    print(f"Spark workspace: {path} ({time.perf_counter() - start:.1f} s)", flush=True)


def spark_environment(folder: Path, driver_memory: str) -> dict[str, str]:
    """The child's environment: loopback only, and the driver's memory cap in a spark-defaults.conf."""
    conf = folder / "spark-conf"
    conf.mkdir(exist_ok=True)
    (conf / "spark-defaults.conf").write_text(f"spark.driver.memory {driver_memory}\n")
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_CONF_DIR": str(conf)}


def run_engine(engine: str, folder: Path, steps: list[str], env: dict[str, str], reference: str | None = None,
               only: str | None = None) -> list[dict]:
    """One engine's steps in a child process; `reference`: a folder with another `kizuna` package (the code
    before a change), put first on PYTHONPATH, its lines labelled "ENGINE (reference)"."""
    workspace = folder / ("spark-ws" if engine == "spark" else "duckdb-ws")
    child_env = dict(env) if engine == "spark" else dict(os.environ)
    if reference:
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [reference, os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen([sys.executable, __file__, "--child", engine, str(workspace), ",".join(steps),
                                *([only] if only else [])],
                               stdout=subprocess.PIPE, text=True, env=child_env)
    lines = []
    assert process.stdout is not None
    for text in process.stdout:
        if text.startswith("{"):
            lines.append(json.loads(text) | ({"engine": f"{engine} (reference)"} if reference and "step" in text
                                             else {}))
            print(f"  {text.strip()}", flush=True)
    if process.wait() != 0:
        raise SystemExit(f"{engine} failed ({process.returncode})")
    return lines


def table(lines: list[dict], customers: int) -> str:
    head = ("customers", "engine", "step", "s", "Python peak RSS MiB", "JVM heap peak MiB", "JVM RSS peak MiB",
            "rows collected (total / largest / collects)")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in lines:
        if "step" not in r:
            continue
        rows = (f"{r['rows_total']:,} / {r['rows_largest']:,} / {r['collects']}" if "rows_total" in r else "—")
        cells = (f"{customers:,}", r["engine"], r["step"], f"{r['seconds']:.1f}", f"{r['python_peak_mib']:.0f}",
                 str(r.get("jvm_heap_peak_mib", "—")), f"{r['jvm_rss_peak_mib']:.0f}" if r.get("jvm_rss_peak_mib")
                 else "—", rows)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def run_table(lines: list[dict], customers: int) -> str:
    """The dry runs: rows collected against the messages due (what a person acts on)."""
    head = ("customers", "engine", "s", "rows collected", "largest collect", "collects", "messages due (settled)",
            "would send", "enrolled", "held out", "collected ÷ due")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in lines:
        if r.get("step") != "run" or "rows_total" not in r:
            continue
        res = r["result"]
        acted = res.get("acted", res.get("due", 0))
        ratio = f"{r['rows_total'] / acted:.2f}" if acted else "—"
        out.append("| " + " | ".join((f"{customers:,}", r["engine"], f"{r['seconds']:.1f}", f"{r['rows_total']:,}",
                                      f"{r['rows_largest']:,}", str(r["collects"]), f"{acted:,}",
                                      f"{res.get('would_send', 0):,}", f"{res.get('enrolled', 0):,}",
                                      f"{res.get('holdout', 0):,}", ratio)) + " |")
    return "\n".join(out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2], Path(sys.argv[3]), sys.argv[4].split(","), *sys.argv[5:6])
    if len(sys.argv) > 1 and sys.argv[1] == "--load-spark":
        return load_spark(Path(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    parser.add_argument("--orders", type=lambda s: int(s.replace("_", "")), default=None,
                        help="default: ten a customer")
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--driver-memory", default="6g", help="spark.driver.memory of the local session")
    parser.add_argument("--setup-only", action="store_true", help="make the data and the workspaces, measure nothing")
    parser.add_argument("--only", help="the dry run runs this scenario only (e.g. thank-you: a day's orders)")
    parser.add_argument("--reference", help="a folder with a reference `kizuna` package (the code before a change): "
                                            "each engine runs it too, after the current code")
    args = parser.parse_args()
    orders = args.orders or 10 * args.customers
    folder = BENCH / "data" / "spark" / size_label(args.customers)
    started = time.perf_counter()
    make_data(folder, args.customers, orders)
    if "duckdb" in args.engines or (folder / "duckdb-ws" / "done").exists():
        duckdb_workspace(folder)
    env = spark_environment(folder, args.driver_memory)
    if "spark" in args.engines and not (folder / "spark-ws" / "done").exists():
        subprocess.run([sys.executable, __file__, "--load-spark", str(folder)], check=True, env=env)
    print(f"data and workspaces ready ({time.perf_counter() - started:.0f} s)", flush=True)
    if args.setup_only:
        return
    lines: list[dict] = []
    for engine in args.engines.split(","):
        lines += run_engine(engine, folder, args.steps.split(","), env, only=args.only)
        if args.reference:
            lines += run_engine(engine, folder, args.steps.split(","), env, args.reference, only=args.only)
    print(f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"{args.customers:,} customers, {orders:,} orders, spark.driver.memory {args.driver_memory}"
          f"{f', dry run of {args.only} only' if args.only else ''}\n")
    print(table(lines, args.customers))
    if any(r.get("step") == "run" and "rows_total" in r for r in lines):
        print()
        print(run_table(lines, args.customers))


if __name__ == "__main__":
    main()
