"""Import benchmark: `kizuna import orders` against DuckDB's own CSV loader, side by side.

    python bench/import_orders.py                        # 1M orders / 100k customers, quick
    python bench/import_orders.py --orders 10_000_000    # the figure in bench/README.md
    python bench/import_orders.py --no-pandas --before /tmp/kz-before --repeat 3   # with the code of DIR too

Every step runs in its own process, so peak RSS is that process's own (DuckDB runs inside the
process, so its buffers and hash tables are counted too):

* ``kizuna import customers`` then ``kizuna import orders`` into a fresh workspace, then
  ``kizuna import orders`` again (nothing changed: the idempotent re-import);
* the reference: DuckDB's ``read_csv`` of the same file into a table of the same schema in a
  fresh DuckDB file, with the same conversions (date format, "¥12,800" amounts): the floor of
  what the engine alone does;
* ``pandas.read_csv`` of the whole file, to show what not going through pandas saves;
* ``kizuna import orders`` of the file's header alone (no rows): what every import pays before and
  after its rows (Python, the libraries, the workspace and the store opened and closed);
* with ``--before DIR``, the first imports and the header-only one again with the kizuna package of DIR (first on
  PYTHONPATH: e.g. ``git archive HEAD kizuna`` of an earlier commit), in the same rounds;
* a line-item platform export (issue #13): the same orders written in EC-CUBE 4's 受注 CSV
  layout, one row per 明細 (1-2 product lines and a 送料 line per order, buyer columns, Japanese
  status words; UTF-8 so that DuckDB reads the same file). ``kizuna import FILE`` (no kind, no
  mapping: detected) fills customers, products, orders and order_items from it; the reference is
  DuckDB's ``read_csv`` of that file into the same four tables with the same grouping in SQL.

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

# The line-item reference: one read of the export, then the four tables as kizuna fills them.
DUCKDB_LINES_LOAD = """
import sys, duckdb
csv, db, ddl = sys.argv[1:4]
con = duckdb.connect(db)
con.execute("SET enable_progress_bar = false")
con.execute(ddl)
con.execute(f"CREATE TEMP TABLE src AS SELECT * FROM read_csv('{csv}', header = true, all_varchar = true)")
con.execute('''
    INSERT INTO customers (customer_id, name, email, phone)
    SELECT DISTINCT ON ("会員ID") "会員ID", "お名前(姓)" || ' ' || "お名前(名)", "メールアドレス", "TEL" FROM src;
    INSERT INTO products (product_id, name)
    SELECT DISTINCT ON ("商品コード") "商品コード", "商品名" FROM src WHERE "明細区分(名称)" = '商品';
    INSERT INTO orders (order_id, customer_id, ordered_at, amount, status)
    SELECT DISTINCT ON ("注文番号") "注文番号", "会員ID", strptime("受注日", '%Y-%m-%d %H:%M:%S'),
           CAST("支払合計" AS BIGINT),
           CASE "対応状況(名称)" WHEN '注文取消し' THEN 'cancelled' WHEN '返品' THEN 'returned' ELSE 'completed' END
    FROM src;
    INSERT INTO order_items (order_id, product_id, quantity, unit_price)
    SELECT "注文番号", "商品コード", sum(CAST("個数" AS BIGINT)), CAST("価格" AS BIGINT)
    FROM src WHERE "明細区分(名称)" = '商品' GROUP BY ALL;
''')
print(con.execute("SELECT count(*) FROM orders").fetchone()[0])
con.close()
"""

# The same orders as an EC-CUBE 4 受注 CSV: product lines (1-2 per order) and a 送料 line.
LINES_MAKE = """
COPY (
    WITH o AS (
        SELECT o.*, c.name, c.email, c.phone, CAST(1 + hash(o.order_id) % 2 AS BIGINT) AS products,
               CAST(replace(replace(o.amount, '¥', ''), ',', '') AS BIGINT) AS yen
        FROM read_csv('{orders}', all_varchar = true) o
        JOIN read_csv('{customers}', all_varchar = true) c USING (customer_id)
    ), lines AS (SELECT *, unnest(range(1, products + 2)) AS line FROM o)
    SELECT substr(order_id, 2) AS "注文ID", order_id AS "注文番号", customer_id AS "会員ID",
           split_part(name, ' ', 1) AS "お名前(姓)", split_part(name, ' ', 2) AS "お名前(名)",
           email AS "メールアドレス", phone AS "TEL", yen AS "小計", 0 AS "値引き", 0 AS "送料", 0 AS "税金",
           yen AS "合計", yen AS "支払合計",
           CASE status WHEN 'cancelled' THEN '注文取消し' WHEN 'returned' THEN '返品' ELSE '発送済み' END
               AS "対応状況(名称)",
           strftime(strptime(ordered_at, '%Y/%m/%d %H:%M:%S'), '%Y-%m-%d %H:%M:%S') AS "受注日",
           CASE WHEN line <= products THEN 'P' || lpad(CAST(hash(order_id, line) % 500 AS VARCHAR), 3, '0')
                ELSE '' END AS "商品コード",
           CASE WHEN line <= products THEN '商品 ' || CAST(hash(order_id, line) % 500 AS VARCHAR)
                ELSE '送料' END AS "商品名",
           CASE WHEN line <= products THEN yen // products ELSE 0 END AS "価格", 1 AS "個数",
           CASE WHEN line <= products THEN '商品' ELSE '送料' END AS "明細区分(名称)"
    FROM lines ORDER BY order_id, line
) TO '{out}' (HEADER, DELIMITER ',')
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


def tables_ddl() -> str:
    """CREATE TABLE of every canonical table, as kizuna's store creates them on DuckDB."""
    import ibis

    from kizuna.store import TABLES

    con = ibis.duckdb.connect()
    for name, spec in TABLES.items():
        con.create_table(name, schema=spec.schema)
    return ";\n".join(r[0] for r in con.con.execute("SELECT sql FROM duckdb_tables()").fetchall())


def ensure_lines(data: Path, orders_csv: Path, customers_csv: Path) -> tuple[Path, int]:
    """The EC-CUBE 4 line-item export of the same orders (made once); (file, its rows)."""
    import duckdb

    out = data / "eccube_orders.csv"
    if not out.exists() or out.stat().st_mtime < orders_csv.stat().st_mtime:
        print(f"writing {out} …", file=sys.stderr)
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.execute(LINES_MAKE.format(orders=orders_csv, customers=customers_csv, out=out.with_suffix(".tmp")))
        con.close()
        out.with_suffix(".tmp").replace(out)
    with out.open("rb") as handle:
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 24), b"")) - 1
    return out, rows


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
    parser.add_argument("--no-lines", action="store_true", help="skip the line-item export (EC-CUBE 4 受注 CSV)")
    parser.add_argument("--rss", choices=("auto", "time", "rusage"), default="auto",
                        help="how to measure peak RSS (auto: /usr/bin/time -v if present)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every step; the table shows medians (the machine is noisy)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--before", type=Path, default=None,
                        help="also import with the kizuna package in DIR (the code before a change), same rounds")
    args = parser.parse_args(argv)
    customers = args.customers if args.customers is not None else max(1, args.orders // 10)
    label = size_label(args.orders)
    data = args.data or BENCH / "data" / label
    method = args.rss if args.rss != "auto" else default_method()
    if args.before is not None and not (args.before / "kizuna" / "__init__.py").exists():
        parser.error(f"--before {args.before}: no kizuna package there")
    kizuna = str(Path(sys.executable).with_name("kizuna"))
    if not os.access(kizuna, os.X_OK):
        kizuna = shutil.which("kizuna") or "kizuna"

    ensure_data(data, args.orders, customers, args.seed)
    orders_csv, customers_csv = data / "orders.csv", data / "customers.csv"
    scratch = args.runs / f"import-{label}"
    ddl = orders_ddl()
    lines = None if args.no_lines else ensure_lines(data, orders_csv, customers_csv)
    rounds: list[list[Run]] = []
    for number_of_round in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"round {number_of_round} of {args.repeat}", file=sys.stderr)
        rounds.append(one_round(kizuna, orders_csv, customers_csv, args.orders, customers, scratch, method,
                                ddl, pandas=not args.no_pandas, lines=lines, before=args.before))
    runs = [median_run([r[i] for r in rounds]) for i in range(len(rounds[0]))]
    startup = runs.pop()
    reference = next(r for r in runs if r.tool.startswith("duckdb"))

    size = orders_csv.stat().st_size / 2**20
    print(f"\n{args.orders:,} orders ({size:,.0f} MiB CSV), {customers:,} customers; "
          f"{os.cpu_count()} cores, {memory_gib():.0f} GiB; peak RSS by {method}; "
          f"{'median of ' + str(args.repeat) + ' rounds; ' if args.repeat > 1 else ''}"
          f"{time.strftime('%Y-%m-%d')}")
    line_file = str(lines[0]) if lines else None
    print(table([r for r in runs if r.file != line_file], reference))
    line_reference = next((r for r in runs if r.tool.startswith("duckdb read_csv, line")), None)
    if line_reference is not None:
        print(f"\nline-item export: {lines[1]:,} rows (EC-CUBE 4 受注 CSV layout, UTF-8), {args.orders:,} orders")
        print(table([r for r in runs if r.file == line_file], line_reference))
    print(f"(a process that only imports kizuna peaks at {startup.peak_rss_mib:,.0f} MiB)")
    for tool in dict.fromkeys(r.tool for r in runs):
        if tool.startswith("kizuna import") and not any(w in tool for w in ("again", "customers", "header")):
            reference_tool = line_reference.tool if line_reference and "line items" in tool else reference.tool
            pairs = [(next(r for r in one if r.tool == tool), next(r for r in one if r.tool == reference_tool))
                     for one in rounds]
            ratios = [run.seconds / ref.seconds for run, ref in pairs]
            cpu = [run.cpu_seconds / ref.cpu_seconds for run, ref in pairs]
            print(f"{tool}: time × ref round by round {', '.join(f'{x:.2f}' for x in ratios)}; "
                  f"CPU × ref {', '.join(f'{x:.2f}' for x in cpu)}")
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
              scratch: Path, method: str, ddl: str, *, pandas: bool,
              lines: tuple[Path, int] | None = None, before: Path | None = None) -> list[Run]:
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
    header_only = scratch / "orders-header.csv"
    with orders_csv.open(encoding="utf-8") as source:
        header_only.write_text(source.readline(), encoding="utf-8")
    runs.append(step("kizuna import orders, header only (start)", kizuna_import("orders", header_only), orders_csv, 0))
    check(runs[-1], added=0, rejected=0)
    old = ["env", f"PYTHONPATH={before}", kizuna] if before is not None else []
    if before is not None:  # the same first import with the code of `before`, into a workspace of its own
        old_ws = scratch / "ws-before"
        subprocess.run([*old, "init", str(old_ws)], check=True, capture_output=True)
        subprocess.run([*old, "import", "customers", str(customers_csv), "--dir", str(old_ws), "--format", "json"],
                       check=True, capture_output=True)
        runs.append(step(f"kizuna import orders, code in {before}",
                         [*old, "import", "orders", str(orders_csv), "--dir", str(old_ws), "--format", "json"],
                         orders_csv, orders))
        check(runs[-1], added=orders, rejected=0)
        runs.append(step(f"kizuna import orders, header only (start), code in {before}",
                         [*old, "import", "orders", str(header_only), "--dir", str(old_ws), "--format", "json"],
                         orders_csv, 0))
    runs.append(step(
        "duckdb read_csv (reference)",
        [sys.executable, "-c", DUCKDB_LOAD, str(orders_csv), str(scratch / "reference.duckdb"), ddl],
        orders_csv, orders,
    ))
    loaded = runs[-1].output.strip().splitlines()[-1]
    if int(loaded) != orders:
        raise SystemExit(f"reference loaded {loaded} rows, not {orders}")
    if lines is not None:
        export, line_rows = lines
        line_ws = scratch / "ws-lines"
        subprocess.run([kizuna, "init", str(line_ws)], check=True, capture_output=True)
        command = [kizuna, "import", str(export), "--dir", str(line_ws), "--format", "json"]
        runs.append(step("kizuna import FILE (line items)", command, export, line_rows))
        check(runs[-1], added=orders, rejected=0)
        if kizuna_summary(runs[-1])["preset"] != "EC-CUBE 4 受注CSV":
            raise SystemExit(f"the export was not recognised: {kizuna_summary(runs[-1])}")
        runs.append(step("kizuna import FILE (line items, again)", command, export, line_rows))
        check(runs[-1], unchanged=orders, added=0, updated=0, rejected=0)
        if before is not None:
            old_lines = scratch / "ws-lines-before"
            subprocess.run([*old, "init", str(old_lines)], check=True, capture_output=True)
            runs.append(step(f"kizuna import FILE (line items), code in {before}",
                             [*old, "import", str(export), "--dir", str(old_lines), "--format", "json"],
                             export, line_rows))
            check(runs[-1], added=orders, rejected=0)
        runs.append(step(
            "duckdb read_csv, line items (reference)",
            [sys.executable, "-c", DUCKDB_LINES_LOAD, str(export), str(scratch / "reference-lines.duckdb"),
             tables_ddl()],
            export, line_rows,
        ))
        if int(runs[-1].output.strip().splitlines()[-1]) != orders:
            raise SystemExit(f"line reference loaded {runs[-1].output.strip()} orders, not {orders}")
    if pandas:
        runs.append(step("pandas.read_csv (whole file)", [sys.executable, "-c", PANDAS_LOAD, str(orders_csv)],
                         orders_csv, orders))
    runs.append(step("python + kizuna imports", [sys.executable, "-c", "import kizuna.cli"], None, 0))
    return runs


if __name__ == "__main__":
    sys.exit(main())
