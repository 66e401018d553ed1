"""Import benchmark: `kizuna import orders` against DuckDB's own CSV loader, side by side.

    python bench/import_orders.py                        # 1M orders / 100k customers, quick
    python bench/import_orders.py --orders 10_000_000    # the figure in bench/README.md

Every step runs in its own process, so peak RSS is that process's own (DuckDB runs inside the
process, so its buffers and hash tables are counted too):

* ``kizuna import customers`` then ``kizuna import orders`` into a fresh workspace, then
  ``kizuna import orders`` again (nothing changed: the idempotent re-import);
* the reference: DuckDB's ``read_csv`` of the same file into a table of the same schema in a
  fresh DuckDB file, with the same conversions (date format, "¥12,800" amounts): the floor of
  what the engine alone does;
* ``pandas.read_csv`` of the whole file, to show what not going through pandas saves.

Peak RSS comes from ``/usr/bin/time -v`` where it exists, else from ``getrusage`` in a
wrapper process whose only child is the measured command. Data comes from make_data.py (made
once, kept in bench/data/); workspaces are made fresh under bench/data/runs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _measure import default_method, markdown_table, memory_gib, run_measured, size_label

BENCH = Path(__file__).resolve().parent

# The reference: DuckDB alone loads the CSV into the orders table's schema.
DUCKDB_LOAD = """
import sys, duckdb
csv, db, ddl = sys.argv[1:4]
con = duckdb.connect(db)
con.execute("SET enable_progress_bar = false")  # it would print to stdout
con.execute(ddl)
con.execute(f'''
    INSERT INTO orders (order_id, customer_id, ordered_at, amount, status, refund_amount, channel)
    SELECT order_id, customer_id, ordered_at,
           CAST(replace(replace(amount, '¥', ''), ',', '') AS BIGINT),
           status, refund_amount, channel
    FROM read_csv('{csv}', header = true, timestampformat = '%Y/%m/%d %H:%M:%S',
                  columns = {{'order_id': 'VARCHAR', 'customer_id': 'VARCHAR',
                             'ordered_at': 'TIMESTAMP', 'amount': 'VARCHAR', 'status': 'VARCHAR',
                             'refund_amount': 'BIGINT', 'channel': 'VARCHAR'}})
''')
print(con.execute("SELECT count(*) FROM orders").fetchone()[0])
con.close()
"""

PANDAS_LOAD = """
import sys, pandas
print(len(pandas.read_csv(sys.argv[1])))
"""


@dataclass
class Run:
    """One measured process."""

    tool: str
    rows: int
    seconds: float  # wall clock
    cpu_seconds: float  # user + system: less sensitive than wall time to other load on the machine
    peak_rss_mib: float
    command: list[str]
    file: str  # the file loaded
    output: str = field(default="", repr=False)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def measure(tool: str, argv: list[str], file: Path | None, rows: int, scratch: Path, method: str) -> Run:
    """Run `argv` in its own process (see _measure.py)."""
    got = run_measured(tool, argv, scratch, method)
    return Run(tool, rows, got.seconds, got.cpu_seconds, got.peak_rss_mib, argv, str(file), got.stdout)


def median_run(runs: list[Run]) -> Run:
    """The runs of one tool as one: median wall and CPU time, highest peak RSS."""
    first = runs[0]
    return Run(first.tool, first.rows, statistics.median(r.seconds for r in runs),
               statistics.median(r.cpu_seconds for r in runs), max(r.peak_rss_mib for r in runs),
               first.command, first.file)


def ensure_data(data: Path, orders: int, customers: int, seed: int) -> None:
    """Make the CSVs with make_data.py unless files made with the same arguments are there."""
    manifest = data / "manifest.json"
    if manifest.exists() and (data / "orders.csv").exists() and (data / "customers.csv").exists():
        made = json.loads(manifest.read_text())
        if (made.get("orders"), made.get("customers"), made.get("seed"), made.get("format"),
                made.get("only")) == (orders, customers, seed, "csv", None):
            return
    print(f"making {orders:,} orders / {customers:,} customers in {data} …", file=sys.stderr)
    subprocess.run(
        [sys.executable, str(BENCH / "make_data.py"), "--orders", str(orders), "--customers",
         str(customers), "--seed", str(seed), "--out", str(data)],
        check=True,
    )


def orders_ddl() -> str:
    """CREATE TABLE of kizuna's orders table, as kizuna's store creates it on DuckDB."""
    import ibis

    from kizuna.store import TABLES

    con = ibis.duckdb.connect()
    con.create_table("orders", schema=TABLES["orders"].schema)
    return con.con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'orders'").fetchone()[0]


def kizuna_summary(run: Run) -> dict:
    return json.loads(run.output[run.output.index("{"):])


def check(run: Run, **expected: int) -> None:
    summary = kizuna_summary(run)
    wrong = {k: (summary[k], v) for k, v in expected.items() if summary[k] != v}
    if wrong:
        raise SystemExit(f"{run.tool}: unexpected summary {wrong} (got, wanted): {summary}")


def table(runs: list[Run], reference: Run) -> str:
    head = ("tool", "rows", "seconds", "rows/s", "CPU s", "peak RSS MiB", "time × ref", "CPU × ref",
            "RSS × ref")
    lines: list[tuple[str, ...]] = [head]
    for r in runs:
        same_file = r.file == reference.file  # a ratio to a load of another file means nothing
        lines.append((
            r.tool, f"{r.rows:,}", f"{r.seconds:.1f}", f"{r.rows_per_s:,.0f}", f"{r.cpu_seconds:.1f}",
            f"{r.peak_rss_mib:,.0f}",
            f"{r.seconds / reference.seconds:.2f}" if same_file else "–",
            f"{r.cpu_seconds / reference.cpu_seconds:.2f}" if same_file else "–",
            f"{r.peak_rss_mib / reference.peak_rss_mib:.2f}" if same_file else "–",
        ))
    return markdown_table(lines)


def main(argv: list[str] | None = None) -> int:
    number = lambda s: int(s.replace("_", ""))  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=number, default=1_000_000)
    parser.add_argument("--customers", type=number, default=None, help="default: orders / 10")
    parser.add_argument("--seed", type=int, default=20240105)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with the CSVs (default bench/data/<size>, made if missing)")
    parser.add_argument("--runs", type=Path, default=BENCH / "data" / "runs",
                        help="scratch folder for the workspace and the reference database")
    parser.add_argument("--no-pandas", action="store_true", help="skip pandas.read_csv")
    parser.add_argument("--rss", choices=("auto", "time", "rusage"), default="auto",
                        help="how to measure peak RSS (auto: /usr/bin/time -v if present)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every step; the table shows medians (the machine is noisy)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    customers = args.customers if args.customers is not None else max(1, args.orders // 10)
    label = size_label(args.orders)
    data = args.data or BENCH / "data" / label
    method = args.rss if args.rss != "auto" else default_method()
    kizuna = str(Path(sys.executable).with_name("kizuna"))
    if not os.access(kizuna, os.X_OK):
        kizuna = shutil.which("kizuna") or "kizuna"

    ensure_data(data, args.orders, customers, args.seed)
    orders_csv, customers_csv = data / "orders.csv", data / "customers.csv"
    scratch = args.runs / f"import-{label}"
    ddl = orders_ddl()
    rounds: list[list[Run]] = []
    for number_of_round in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"round {number_of_round} of {args.repeat}", file=sys.stderr)
        rounds.append(one_round(kizuna, orders_csv, customers_csv, args.orders, customers, scratch, method,
                                ddl, pandas=not args.no_pandas))
    runs = [median_run([r[i] for r in rounds]) for i in range(len(rounds[0]))]
    startup = runs.pop()
    reference = next(r for r in runs if r.tool.startswith("duckdb"))

    size = orders_csv.stat().st_size / 2**20
    print(f"\n{args.orders:,} orders ({size:,.0f} MiB CSV), {customers:,} customers; "
          f"{os.cpu_count()} cores, {memory_gib():.0f} GiB; peak RSS by {method}; "
          f"{'median of ' + str(args.repeat) + ' rounds; ' if args.repeat > 1 else ''}"
          f"{time.strftime('%Y-%m-%d')}")
    print(table(runs, reference))
    print(f"(a process that only imports kizuna peaks at {startup.peak_rss_mib:,.0f} MiB)")
    if args.json:
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "cores": os.cpu_count(),
            "orders": args.orders, "customers": customers, "rss_method": method, "rounds": args.repeat,
            "startup_rss_mib": startup.peak_rss_mib,
            "runs": [{**{k: v for k, v in asdict(r).items() if k != "output"}, "rows_per_s": r.rows_per_s}
                     for r in runs],
            "all_rounds": [[{"tool": r.tool, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
                             "peak_rss_mib": r.peak_rss_mib} for r in one] for one in rounds],
        }, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def one_round(kizuna: str, orders_csv: Path, customers_csv: Path, orders: int, customers: int,
              scratch: Path, method: str, ddl: str, *, pandas: bool) -> list[Run]:
    """Every step once, on a fresh workspace and a fresh reference database."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    workspace = scratch / "ws"
    subprocess.run([kizuna, "init", str(workspace)], check=True, capture_output=True)

    def kizuna_import(kind: str, path: Path) -> list[str]:
        return [kizuna, "import", kind, str(path), "--dir", str(workspace), "--format", "json"]

    def step(tool: str, command: list[str], file: Path | None, rows: int) -> Run:
        run = measure(tool, command, file, rows, scratch, method)
        print(f"  {tool}: {run.seconds:.1f} s, CPU {run.cpu_seconds:.1f} s, {run.peak_rss_mib:,.0f} MiB",
              file=sys.stderr)
        return run

    runs = [step("kizuna import customers", kizuna_import("customers", customers_csv), customers_csv,
                 customers)]
    check(runs[-1], added=customers, rejected=0)
    runs.append(step("kizuna import orders", kizuna_import("orders", orders_csv), orders_csv, orders))
    check(runs[-1], added=orders, rejected=0)
    runs.append(step("kizuna import orders (again)", kizuna_import("orders", orders_csv), orders_csv, orders))
    check(runs[-1], unchanged=orders, added=0, updated=0, rejected=0)
    runs.append(step(
        "duckdb read_csv (reference)",
        [sys.executable, "-c", DUCKDB_LOAD, str(orders_csv), str(scratch / "reference.duckdb"), ddl],
        orders_csv, orders,
    ))
    loaded = runs[-1].output.strip().splitlines()[-1]
    if int(loaded) != orders:
        raise SystemExit(f"reference loaded {loaded} rows, not {orders}")
    if pandas:
        runs.append(step("pandas.read_csv (whole file)", [sys.executable, "-c", PANDAS_LOAD, str(orders_csv)],
                         orders_csv, orders))
    runs.append(step("python + kizuna imports", [sys.executable, "-c", "import kizuna.cli"], None, 0))
    return runs


if __name__ == "__main__":
    sys.exit(main())
