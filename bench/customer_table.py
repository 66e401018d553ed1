"""Customer-table benchmark: `kizuna analyze` against a hand-written DuckDB query, pandas and lifetimes.

    python bench/customer_table.py --repeat 3               # 10M orders / 1M customers (bench/data/10m)
    python bench/customer_table.py --orders 100_000_000 --repeat 3 --only kizuna,api,duckdb,duckdb-all
    python bench/customer_table.py --orders 3_000_000 --only kizuna,start,duckdb --before /tmp/kz-before --repeat 3

Every tool runs in its own process, so peak RSS is that process's own (DuckDB runs inside the
process: its buffers and hash tables are counted):

* ``kizuna analyze --as-of DAY`` (the CLI, as a user runs it: it also prints the segment tables;
  ``kizuna`` with the SQL statements the last analyze of the workspace kept, ``kizuna-cold`` without, so
  compiling them: `kizuna.store.kept_statements`)
  and ``Workspace.analyze(DAY)`` (the API call alone, timed inside the process too); and a process
  that only loads what ``kizuna analyze`` loads before its work (Python, the CLI, the workspace,
  Ibis' DuckDB backend), the fixed part of the CLI's time; with ``--before DIR``, ``kizuna analyze`` once
  more with the ``kizuna`` package found in DIR first (``PYTHONPATH``: another version of the code,
  e.g. ``git archive HEAD kizuna | tar -x -C DIR``), in the same rounds;
* (a) the reference: one hand-written DuckDB SQL statement over the same store file that
  computes the RFM/LTV columns (first/last order, recency, frequency and monetary over the
  window, orders, AOV, LTV revenue and profit, R/F/M quintiles with kizuna's exact rules) into
  a table, with DuckDB's default settings; (a') the same with a row for every customer, as
  customer_scores has;
* (b) the analysis as `analyze` stores it, hand-written for DuckDB in one Python process and one transaction:
  (a') into a table, the overview's month summary of the orders (a row per customer and month) and the
  customer totals from it as temporary tables, a few of the overview's figures from them (headline, the
  months, deciles, cohorts) into a table, the lists' rows (the scores with the customers' contact columns and
  each row's place in both orders of six columns, written in R × F order) and an index on ``customer_id`` of
  both tables; what it leaves out (the NPS, lifecycle and lost-reason columns, the segments' names, the
  other small figures) reads tables that are empty in this data;
* (p) pandas done well: the orders' needed columns from Parquet (ids as Arrow-backed strings,
  statuses as categoricals, ``ordered_at`` as datetime64), vectorised filters and one groupby;
* (l) lifetimes' ``summary_data_from_transaction_data`` (needs pandas<3: it runs in its own venv,
  bench/.venv-lifetimes, made by this script when missing) on the same orders with revenue
  computed the same way; it gives frequency/recency/T/monetary in its own definitions.

The data is loaded once into a workspace (``kizuna init``, then DuckDB inserts the CSV or
Parquet from make_data.py straight into the canonical tables, with the same conversions as
``kizuna import``; much faster than the importer, which bench/import_orders.py measures), and
the orders are exported to Parquet for (p) and (l). Results are checked: (a), (a'), (b) (its lists' rows)
and (p) must give the same per-customer sums as kizuna's customer_scores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _measure import (
    LIFETIMES_PACKAGES,
    LIFETIMES_VENV,
    default_method,
    ensure_lifetimes_venv,
    markdown_table,
    memory_gib,
    run_measured,
    size_label,
)

BENCH = Path(__file__).resolve().parent


# The API call alone, timed inside the process (no CLI, no segment tables afterwards).
KIZUNA_API = """
import datetime as dt, json, sys, time
from kizuna.workspace import Workspace
ws = Workspace.open(sys.argv[1])
start = time.perf_counter()
rows = ws.analyze(dt.date.fromisoformat(sys.argv[2]))
core = time.perf_counter() - start
ws.close()
print(json.dumps({"rows": rows, "core_s": core}))
"""

# (a) One statement: orders -> per-customer aggregate -> R/F/M quintiles, into a table. Sums are cast
# back to BIGINT (DuckDB sums BIGINT into HUGEINT), as kizuna's tables have them. {rows} is either
# the ordering customers (the reference proper) or every customer, as customer_scores has them.
REFERENCE_SQL = """
CREATE OR REPLACE TABLE {table} AS
WITH counted AS (
    SELECT customer_id, ordered_at,
           amount - CASE WHEN coalesce(status, 'completed') = 'returned' THEN coalesce(refund_amount, amount)
                         ELSE coalesce(refund_amount, 0) END AS revenue
    FROM orders
    WHERE ordered_at < TIMESTAMP '{end}' AND coalesce(status, 'completed') <> 'cancelled'
), summary AS (
    SELECT customer_id,
           min(ordered_at) AS first_order_at,
           max(ordered_at) AS last_order_at,
           count(*) AS orders,
           CAST(sum(revenue) AS BIGINT) AS revenue,
           count(*) FILTER (WHERE ordered_at >= TIMESTAMP '{window_start}') AS frequency,
           CAST(coalesce(sum(revenue) FILTER (WHERE ordered_at >= TIMESTAMP '{window_start}'), 0) AS BIGINT) AS monetary
    FROM counted
    GROUP BY customer_id
), scored AS (
    SELECT customer_id, first_order_at, last_order_at,
           DATE '{as_of}' - CAST(last_order_at AS DATE) AS recency_days,
           frequency, monetary, orders,
           revenue / orders AS aov,
           revenue AS ltv_revenue,
           revenue * {margin} AS ltv_profit,
           5 - (rank() OVER (ORDER BY CAST(last_order_at AS DATE) DESC) - 1) * 5 // count(*) OVER () AS r_score,
           5 - (rank() OVER (ORDER BY frequency DESC) - 1) * 5 // count(*) OVER () AS f_score,
           5 - (rank() OVER (ORDER BY monetary DESC) - 1) * 5 // count(*) OVER () AS m_score
    FROM summary
)
{rows}
"""
ORDERING_CUSTOMERS = "SELECT * FROM scored"
EVERY_CUSTOMER = """SELECT c.customer_id, s.* EXCLUDE (customer_id, frequency, monetary, orders, ltv_revenue),
       coalesce(s.frequency, 0) AS frequency, coalesce(s.monetary, 0) AS monetary,
       coalesce(s.orders, 0) AS orders, coalesce(s.ltv_revenue, 0) AS ltv_revenue
FROM customers AS c LEFT JOIN scored AS s ON s.customer_id = c.customer_id"""

# (b) what `analyze` stores, by hand: {scores} is (a') into bench_b_scores; then the overview's month summary,
# some of its figures, the lists' rows with their places and the indexes. One transaction, as analyze.
ANALYSIS_SQL = """
BEGIN TRANSACTION;
{scores};
CREATE OR REPLACE TEMP TABLE b_months AS
SELECT customer_id, date_trunc('month', ordered_at) AS month, count(*) AS orders, sum(revenue) AS revenue,
       count(*) FILTER (WHERE ordered_at >= TIMESTAMP '{year_start}') AS period_orders,
       coalesce(sum(revenue) FILTER (WHERE ordered_at >= TIMESTAMP '{year_start}'), 0) AS period_revenue
FROM (SELECT customer_id, ordered_at,
             amount - CASE WHEN coalesce(status, 'completed') = 'returned' THEN coalesce(refund_amount, amount)
                           ELSE coalesce(refund_amount, 0) END AS revenue
      FROM orders WHERE ordered_at < TIMESTAMP '{end}' AND coalesce(status, 'completed') <> 'cancelled')
GROUP BY ALL;
CREATE OR REPLACE TEMP TABLE b_customers AS
SELECT customer_id, min(month) AS first_month, sum(orders) AS orders, sum(revenue) AS ltv,
       sum(period_orders) AS period_orders, sum(period_revenue) AS period_revenue
FROM b_months GROUP BY ALL;
CREATE OR REPLACE TABLE bench_b_overview AS
SELECT 'headline' AS figure, to_json(h) AS value FROM (
    SELECT count(*) FILTER (WHERE period_orders > 0) AS ordering_customers,
           count(*) FILTER (WHERE period_orders >= 2) AS repeaters, sum(period_orders) AS orders,
           sum(period_revenue) AS revenue, avg(ltv) AS mean_ltv FROM b_customers) AS h
UNION ALL
SELECT 'months', to_json(list(m ORDER BY m.month)) FROM (
    SELECT month, count(*) AS customers, sum(orders) AS orders, sum(revenue) AS revenue
    FROM b_months WHERE month >= TIMESTAMP '{year_start}' GROUP BY month) AS m
UNION ALL
SELECT 'deciles', to_json(list(d ORDER BY d.decile)) FROM (
    SELECT decile, sum(ltv) AS revenue FROM (SELECT ntile(10) OVER (ORDER BY ltv DESC) AS decile, ltv FROM b_customers)
    GROUP BY decile) AS d
UNION ALL
SELECT 'cohorts', to_json(list(c ORDER BY c.cohort, c.month)) FROM (
    SELECT t.first_month AS cohort, m.month, count(*) AS customers
    FROM b_months AS m JOIN b_customers AS t USING (customer_id)
    WHERE t.first_month >= TIMESTAMP '{year_start}' GROUP BY ALL) AS c;
CREATE OR REPLACE TABLE bench_b_list AS
WITH ascending AS (SELECT customer_id, {places} FROM bench_b_scores AS s),
places AS (SELECT *, {descending} FROM ascending)
SELECT s.*, c.name, c.email, c.phone, p.* EXCLUDE (customer_id)
FROM bench_b_scores AS s JOIN customers AS c USING (customer_id) JOIN places AS p USING (customer_id)
ORDER BY s.r_score, s.f_score, s.customer_id;
CREATE INDEX bench_b_scores_customer_id ON bench_b_scores (customer_id);
CREATE INDEX bench_b_list_customer_id ON bench_b_list (customer_id);
COMMIT;
DROP TABLE b_months;
DROP TABLE b_customers;
"""
PLACED = ("ltv_revenue", "orders", "recency_days", "last_order_at", "monetary", "customer_id")
# a row's place in ascending order (ties in customer order) by one window each; the descending place from it
PLACES = ",\n       ".join(
    f"CAST(row_number() OVER (ORDER BY s.{c} NULLS LAST, s.customer_id) - 1 AS INTEGER) AS _at_{c}_asc"
    for c in PLACED)
DESCENDING = ", ".join(f"CAST(count(*) OVER () - 1 - _at_{c}_asc AS INTEGER) AS _at_{c}_desc" for c in PLACED)

REFERENCE = """
import json, sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("SET enable_progress_bar = false")
start = time.perf_counter()
con.execute(sys.argv[3])
core = time.perf_counter() - start
rows = con.execute(f"SELECT count(*) FROM {sys.argv[2]}").fetchone()[0]
con.close()
print(json.dumps({"rows": rows, "core_s": core}))
"""

# (p) and (l) read the same Parquet export of the orders table; revenue as in docs/measures.md §1 'order'.
PANDAS_READ = """
import json, sys, time
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
path, as_of, window_days, margin = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
day = pd.Timestamp(as_of)
end = day + pd.Timedelta(days=1)
window_start = end - pd.Timedelta(days=window_days)

def counted_orders():
    # ids as Arrow-backed strings (the fastest of object, categorical and Arrow strings to read and
    # group by, here), status as a categorical, ordered_at as datetime64
    table = pq.read_table(path, columns=["customer_id", "ordered_at", "amount", "status", "refund_amount"],
                          read_dictionary=["status"])
    df = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    del table
    read = time.perf_counter() - start
    status = df["status"]
    keep = (df["ordered_at"] < end) & (status != "cancelled").to_numpy()
    df = df[keep]
    amount = df["amount"].to_numpy()
    refund = df["refund_amount"]
    returned = (df["status"] == "returned").to_numpy()
    refund = np.where(returned, refund.fillna(df["amount"]).to_numpy(), refund.fillna(0).to_numpy())
    df = pd.DataFrame({"customer_id": df["customer_id"], "ordered_at": df["ordered_at"],
                       "revenue": (amount - refund).astype("int64")})
    return df, read
"""

PANDAS = PANDAS_READ + """
start = time.perf_counter()
df, read = counted_orders()
in_window = (df["ordered_at"] >= window_start).to_numpy()
df["frequency"] = in_window
df["monetary"] = np.where(in_window, df["revenue"].to_numpy(), 0)
s = df.groupby("customer_id", observed=True, sort=False).agg(
    first_order_at=("ordered_at", "min"), last_order_at=("ordered_at", "max"), orders=("revenue", "size"),
    revenue=("revenue", "sum"), frequency=("frequency", "sum"), monetary=("monetary", "sum"),
)
del df
n = len(s)
last_day = s["last_order_at"].dt.normalize()
s["recency_days"] = (day - last_day).dt.days
s["aov"] = s["revenue"] / s["orders"]
s["ltv_revenue"] = s["revenue"]
s["ltv_profit"] = s["revenue"] * margin
def quintile(values):
    better = values.rank(method="min", ascending=False).astype("int64") - 1
    return 5 - better * 5 // n
s["r_score"] = quintile(last_day)
s["f_score"] = quintile(s["frequency"])
s["m_score"] = quintile(s["monetary"])
core = time.perf_counter() - start - read
print(json.dumps({"rows": n, "core_s": core, "read_s": read, "check": {
    "orders": int(s["orders"].sum()), "revenue": int(s["revenue"].sum()), "frequency": int(s["frequency"].sum()),
    "monetary": int(s["monetary"].sum()), "recency_days": int(s["recency_days"].sum()),
    "r_score": int(s["r_score"].sum()), "f_score": int(s["f_score"].sum()), "m_score": int(s["m_score"].sum()),
    "first_order_at": str(s["first_order_at"].min()), "last_order_at": str(s["last_order_at"].max()),
}}))
"""

LIFETIMES = PANDAS_READ + """
from lifetimes.utils import summary_data_from_transaction_data
start = time.perf_counter()
df, read = counted_orders()
summary = summary_data_from_transaction_data(df, "customer_id", "ordered_at", monetary_value_col="revenue",
                                             observation_period_end=as_of, freq="D")
core = time.perf_counter() - start - read
print(json.dumps({"rows": len(summary), "core_s": core, "read_s": read}))
"""

CHECK_SQL = {
    "kizuna": "SELECT {cols} FROM customer_scores WHERE orders > 0",
    "duckdb-b": "SELECT {cols} FROM bench_b_list WHERE orders > 0",
    "duckdb": "SELECT {cols} FROM bench_reference_rfm",
    "duckdb-all": "SELECT {cols} FROM bench_reference_rfm_all WHERE orders > 0",
}
CHECK_COLUMNS = (
    "count(*)::BIGINT AS rows, sum(orders)::BIGINT AS orders, sum(ltv_revenue)::BIGINT AS revenue, "
    "sum(frequency)::BIGINT AS frequency, sum(monetary)::BIGINT AS monetary, "
    "sum(recency_days)::BIGINT AS recency_days, sum(r_score)::BIGINT AS r_score, "
    "sum(f_score)::BIGINT AS f_score, sum(m_score)::BIGINT AS m_score, "
    "min(first_order_at)::VARCHAR AS first_order_at, max(last_order_at)::VARCHAR AS last_order_at"
)


@dataclass
class Run:
    """One measured process."""

    tool: str
    seconds: float  # wall clock of the whole process
    cpu_seconds: float
    peak_rss_mib: float
    command: list[str]
    core_seconds: float | None = None  # the work itself, timed inside the process
    read_seconds: float | None = None  # reading the Parquet export into pandas
    rows: int | None = None
    output: str = field(default="", repr=False)


def measure(tool: str, argv: list[str], scratch: Path, method: str) -> Run:
    """Run `argv` in its own process (see _measure.py); read the work time it reports, if any."""
    got = run_measured(tool, argv, scratch, method)
    run = Run(tool, got.seconds, got.cpu_seconds, got.peak_rss_mib, argv, output=got.stdout)
    last = got.stdout.strip().splitlines()[-1] if got.stdout.strip() else ""
    if last.startswith("{") and '"core_s"' in last:
        reported = json.loads(last)
        run.core_seconds, run.read_seconds, run.rows = reported["core_s"], reported.get("read_s"), reported["rows"]
    return run


def median_run(runs: list[Run]) -> Run:
    """The runs of one tool as one: median times, highest peak RSS."""
    first = runs[0]

    def med(values: list[float | None]) -> float | None:
        return None if values[0] is None else statistics.median(values)

    return Run(first.tool, statistics.median(r.seconds for r in runs), statistics.median(r.cpu_seconds for r in runs),
               max(r.peak_rss_mib for r in runs), first.command, med([r.core_seconds for r in runs]),
               med([r.read_seconds for r in runs]), first.rows, first.output)


# -- data -------------------------------------------------------------------------------------
def ensure_data(data: Path, orders: int, customers: int, seed: int, fmt: str) -> None:
    """Make the files with make_data.py unless files made with the same arguments are there."""
    manifest = data / "manifest.json"
    if manifest.exists() and all((data / f"{n}.{fmt}").exists() for n in ("orders", "customers")):
        made = json.loads(manifest.read_text())
        if (made.get("orders"), made.get("customers"), made.get("seed"), made.get("format"),
                made.get("only")) == (orders, customers, seed, fmt, None):
            return
    print(f"making {orders:,} orders / {customers:,} customers ({fmt}) in {data} …", file=sys.stderr)
    subprocess.run(
        [sys.executable, str(BENCH / "make_data.py"), "--orders", str(orders), "--customers",
         str(customers), "--seed", str(seed), "--format", fmt, "--out", str(data)],
        check=True,
    )


def load_sql(data: Path, fmt: str) -> list[str]:
    """INSERTs of customers and orders into the canonical tables, converted as `kizuna import` does.

    CSV: make_data.py's text as shops export it ("2024/01/05 13:45:10", "¥12,800", 1/0 flags);
    Parquet: make_data.py's typed columns. Timestamps are local wall-clock time either way.
    """
    customers, orders = data / f"customers.{fmt}", data / f"orders.{fmt}"
    if fmt == "csv":
        customers_src = f"""read_csv('{customers}', header = true, timestampformat = '%Y/%m/%d %H:%M:%S',
            dateformat = '%Y/%m/%d', columns = {{'customer_id': 'VARCHAR', 'name': 'VARCHAR',
            'name_kana': 'VARCHAR', 'email': 'VARCHAR', 'phone': 'VARCHAR', 'postal_code': 'VARCHAR',
            'address': 'VARCHAR', 'signed_up_at': 'TIMESTAMP', 'birthday': 'DATE', 'email_opt_in': 'INTEGER',
            'dm_opt_in': 'INTEGER'}})"""
        orders_src = f"""read_csv('{orders}', header = true, timestampformat = '%Y/%m/%d %H:%M:%S',
            columns = {{'order_id': 'VARCHAR', 'customer_id': 'VARCHAR', 'ordered_at': 'TIMESTAMP',
            'amount': 'VARCHAR', 'status': 'VARCHAR', 'refund_amount': 'BIGINT', 'channel': 'VARCHAR'}})"""
        amount = "CAST(replace(replace(amount, '¥', ''), ',', '') AS BIGINT)"
        flag = "CAST({} AS BOOLEAN)"
    else:
        customers_src, orders_src = f"read_parquet('{customers}')", f"read_parquet('{orders}')"
        amount, flag = "amount", "{}"
    return [
        f"""INSERT INTO customers (customer_id, name, name_kana, email, phone, postal_code, address,
                                   signed_up_at, email_opt_in, dm_opt_in, birthday)
            SELECT customer_id, name, name_kana, email, phone, postal_code, address,
                   CAST(signed_up_at AS TIMESTAMP), {flag.format('email_opt_in')}, {flag.format('dm_opt_in')},
                   CAST(birthday AS DATE)
            FROM {customers_src}""",
        f"""INSERT INTO orders (order_id, customer_id, ordered_at, amount, status, refund_amount, channel)
            SELECT order_id, customer_id, CAST(ordered_at AS TIMESTAMP), {amount}, status, refund_amount, channel
            FROM {orders_src}""",
    ]


def ensure_workspace(kizuna: str, data: Path, fmt: str, scratch: Path, reload: bool) -> tuple[Path, Path, str]:
    """The workspace with the data loaded (made once), and the Parquet export of its orders."""
    import duckdb

    workspace, export = scratch / "ws", scratch / "orders.parquet"
    marker = scratch / "loaded.json"
    wanted = {"data": str(data.resolve()), "format": fmt,
              "manifest": json.loads((data / "manifest.json").read_text())}
    if not reload and marker.exists() and json.loads(marker.read_text()).get("wanted") == wanted and export.exists():
        return workspace, export, json.loads(marker.read_text())["how"]
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    subprocess.run([kizuna, "init", str(workspace)], check=True, capture_output=True)
    print(f"loading {data} into {workspace} with DuckDB …", file=sys.stderr)
    began = time.perf_counter()
    con = duckdb.connect(str(workspace / "kizuna.duckdb"))
    con.execute("SET enable_progress_bar = false")
    for sql in load_sql(data, fmt):
        con.execute(sql)
    con.execute("CHECKPOINT")
    loaded = time.perf_counter() - began
    con.execute(f"COPY orders TO '{export}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)")
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("customers", "orders")}
    con.close()
    how = (f"DuckDB INSERT … SELECT from {fmt.upper()} straight into kizuna.store.TABLES "
           f"({counts['orders']:,} orders, {counts['customers']:,} customers, {loaded:.0f} s)")
    marker.write_text(json.dumps({"wanted": wanted, "how": how, "counts": counts}, indent=1) + "\n")
    print(f"  {how}", file=sys.stderr)
    return workspace, export, how


def checksums(db: Path, tools: list[str]) -> dict[str, dict]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for tool in tools:
            cur = con.execute(CHECK_SQL[tool].format(cols=CHECK_COLUMNS))
            names = [d[0] for d in cur.description]
            out[tool] = dict(zip(names, cur.fetchone(), strict=True))
        return out
    finally:
        con.close()


# -- output -------------------------------------------------------------------------------------
def table(runs: list[Run], reference: Run | None) -> str:
    head = ("tool", "wall s", "work s", "CPU s", "peak RSS MiB", "wall × (a)", "work × (a)", "CPU × (a)", "RSS × (a)")
    lines: list[tuple[str, ...]] = [head]
    for r in runs:
        def ratio(mine: float | None, theirs: float | None) -> str:
            return f"{mine / theirs:.2f}" if reference is not None and mine and theirs else "–"

        lines.append((
            r.tool, f"{r.seconds:.1f}",
            "–" if r.core_seconds is None else f"{r.core_seconds:.1f}",
            f"{r.cpu_seconds:.1f}", f"{r.peak_rss_mib:,.0f}",
            ratio(r.seconds, reference and reference.seconds),
            ratio(r.core_seconds, reference and reference.core_seconds),
            ratio(r.cpu_seconds, reference and reference.cpu_seconds),
            ratio(r.peak_rss_mib, reference and reference.peak_rss_mib),
        ))
    return markdown_table(lines)


TOOLS = ("kizuna-cold", "kizuna", "api", "start", "duckdb", "duckdb-all", "duckdb-b", "pandas", "lifetimes")

# What a `kizuna analyze` process loads before any work: the CLI, the workspace, Ibis' DuckDB backend.
START = "import kizuna.cli, ibis\nfrom kizuna.workspace import Workspace\nibis.duckdb"


def main(argv: list[str] | None = None) -> int:
    number = lambda s: int(s.replace("_", ""))  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=number, default=10_000_000)
    parser.add_argument("--customers", type=number, default=None, help="default: orders / 10")
    parser.add_argument("--seed", type=int, default=20240105)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with make_data.py's files (default bench/data/<size>, or <size>-parquet "
                             "from 100M orders on; made if missing)")
    parser.add_argument("--format", choices=("auto", "csv", "parquet"), default="auto",
                        help="the data files' format (auto: csv below 100M orders, parquet from 100M on)")
    parser.add_argument("--as-of", default="2025-12-30", help="the as-of day (make_data.py's last day of orders)")
    parser.add_argument("--runs", type=Path, default=BENCH / "data" / "customer-table",
                        help="folder for the loaded workspace and the Parquet export (kept between runs)")
    parser.add_argument("--only", default=",".join(TOOLS),
                        help=f"comma-separated tools to run, of {','.join(TOOLS)} (default all)")
    parser.add_argument("--reload", action="store_true", help="load the workspace again even if it is there")
    parser.add_argument("--no-venv", action="store_true",
                        help="do not make bench/.venv-lifetimes when missing (skip lifetimes instead)")
    parser.add_argument("--rss", choices=("auto", "time", "rusage"), default="auto",
                        help="how to measure peak RSS (auto: /usr/bin/time -v if present)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every step, interleaved; the table shows medians (the machine is noisy)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--before", type=Path, default=None,
                        help="a folder holding another version of the kizuna package: its `kizuna analyze` runs "
                             "too, right after this one's, in each round")
    args = parser.parse_args(argv)
    customers = args.customers if args.customers is not None else max(1, args.orders // 10)
    label = size_label(args.orders)
    fmt = args.format if args.format != "auto" else ("parquet" if args.orders >= 100_000_000 else "csv")
    data = args.data or BENCH / "data" / (label if fmt == "csv" else f"{label}-parquet")
    method = args.rss if args.rss != "auto" else default_method()
    tools = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}; choose from {', '.join(TOOLS)}")
    if args.before is not None:
        if not (args.before / "kizuna" / "__init__.py").exists():
            parser.error(f"--before {args.before}: no kizuna package there")
        tools.insert(tools.index("kizuna") + 1 if "kizuna" in tools else 0, "before")
    kizuna = str(Path(sys.executable).with_name("kizuna"))
    if not os.access(kizuna, os.X_OK):
        kizuna = shutil.which("kizuna") or "kizuna"
    as_of = dt.date.fromisoformat(args.as_of)

    from kizuna.workspace import Settings

    settings = Settings()  # the workspace is made by `kizuna init`: the defaults
    ensure_data(data, args.orders, customers, args.seed, fmt)
    scratch = args.runs / f"scores-{label}"
    workspace, export, how = ensure_workspace(kizuna, data, fmt, scratch, args.reload)
    db = workspace / "kizuna.duckdb"
    lifetimes_python = ensure_lifetimes_venv(not args.no_venv) if "lifetimes" in tools else None
    if "lifetimes" in tools and lifetimes_python is None:
        print(f"lifetimes skipped: no {LIFETIMES_VENV}; make it with\n  python3.11 -m venv {LIFETIMES_VENV} && "
              f"{LIFETIMES_VENV}/bin/pip install {' '.join(repr(p) for p in LIFETIMES_PACKAGES)}", file=sys.stderr)
        tools.remove("lifetimes")

    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())

    def reference_sql(table: str, rows: str) -> str:
        return REFERENCE_SQL.format(
            table=table, rows=rows, end=end, window_start=end - dt.timedelta(days=settings.analysis.rfm_window_days),
            as_of=as_of, margin=settings.business.gross_margin_rate,
        )

    analysis_sql = ANALYSIS_SQL.format(
        scores=reference_sql("bench_b_scores", EVERY_CUSTOMER).strip(), end=end, places=PLACES, descending=DESCENDING,
        year_start=dt.datetime.combine(as_of - dt.timedelta(days=365), dt.time()),
    )
    py_args = [str(export), str(as_of), str(settings.analysis.rfm_window_days),
               str(settings.business.gross_margin_rate)]
    commands = {
        "kizuna": ("kizuna analyze (CLI)",
                   [kizuna, "analyze", "--as-of", str(as_of), "--dir", str(workspace), "--format", "json"]),
        "kizuna-cold": ("kizuna analyze (CLI), its statements compiled",
                        [kizuna, "analyze", "--as-of", str(as_of), "--dir", str(workspace), "--format", "json"]),
        "before": (f"kizuna analyze (CLI), code in {args.before}",
                   ["env", f"PYTHONPATH={args.before}", kizuna, "analyze", "--as-of", str(as_of), "--dir",
                    str(workspace), "--format", "json"]),
        "api": ("Workspace.analyze (API)", [sys.executable, "-c", KIZUNA_API, str(workspace), str(as_of)]),
        "start": ("python + the imports of kizuna analyze", [sys.executable, "-c", START]),
        "duckdb": ("(a) DuckDB SQL, one query", [sys.executable, "-c", REFERENCE, str(db), "bench_reference_rfm",
                                                 reference_sql("bench_reference_rfm", ORDERING_CUSTOMERS)]),
        "duckdb-all": ("(a') the same, a row for every customer",
                       [sys.executable, "-c", REFERENCE, str(db), "bench_reference_rfm_all",
                        reference_sql("bench_reference_rfm_all", EVERY_CUSTOMER)]),
        "duckdb-b": ("(b) DuckDB SQL, what analyze stores", [sys.executable, "-c", REFERENCE, str(db), "bench_b_list",
                                                             analysis_sql]),
        "pandas": ("(p) pandas groupby", [sys.executable, "-c", PANDAS, *py_args]),
        "lifetimes": ("(l) lifetimes summary_data_from_transaction_data",
                      [str(lifetimes_python), "-c", LIFETIMES, *py_args]),
    }
    rounds: list[dict[str, Run]] = []
    for n in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"round {n} of {args.repeat}", file=sys.stderr)
        # interleaved: each round runs every tool once, in the same order
        one = {}
        for tool in tools:
            name, argv = commands[tool]
            if tool == "kizuna-cold":  # the SQL the last analyze kept: this run compiles it again
                (workspace / ".kizuna-statements.json").unlink(missing_ok=True)
            run = measure(name, argv, scratch, method)
            extra = "" if run.core_seconds is None else f" (work {run.core_seconds:.1f} s)"
            print(f"  {name}: {run.seconds:.1f} s{extra}, CPU {run.cpu_seconds:.1f} s, "
                  f"{run.peak_rss_mib:,.0f} MiB", file=sys.stderr)
            one[tool] = run
        rounds.append(one)
    runs = {tool: median_run([r[tool] for r in rounds]) for tool in tools}

    # the same answers: customer_scores (ordering customers) = the reference = pandas
    checked = checksums(db, [t for t in ("kizuna", "duckdb", "duckdb-all", "duckdb-b") if t in runs])
    if "kizuna" not in checked and "api" in runs:
        checked = {**checksums(db, ["kizuna"]), **checked}
    if "pandas" in runs:
        reported = json.loads(runs["pandas"].output.strip().splitlines()[-1])
        checked["pandas"] = {"rows": reported["rows"], **reported["check"]}
    agreed = all(c == next(iter(checked.values())) for c in checked.values())

    reference = runs.get("duckdb")
    size = sum(f.stat().st_size for f in data.iterdir() if f.name.startswith("orders.")) / 2**20
    print(f"\n{args.orders:,} orders ({size:,.0f} MiB {fmt.upper()}), {customers:,} customers, as of {as_of}; "
          f"{os.cpu_count()} cores, {memory_gib():.0f} GiB; peak RSS by {method}; "
          f"{'median of ' + str(args.repeat) + ' interleaved rounds; ' if args.repeat > 1 else ''}"
          f"{time.strftime('%Y-%m-%d')}")
    print(f"workspace loaded by {how}")
    print(table(list(runs.values()), reference))
    if reference is not None and len(rounds) > 1:
        # paired within each round, so a slow spell of the machine moves both sides of a ratio
        for tool in tools:
            if tool == "duckdb":
                continue
            what = "work" if rounds[0][tool].core_seconds is not None else "CPU"
            paired = sorted((r[tool].core_seconds / r["duckdb"].core_seconds) if what == "work"
                            else (r[tool].cpu_seconds / r["duckdb"].cpu_seconds) for r in rounds)
            print(f"{runs[tool].tool}: {what} × (a) round by round: median {statistics.median(paired):.2f}, "
                  f"range {paired[0]:.2f}–{paired[-1]:.2f}")
    if "duckdb-b" in runs and len(rounds) > 1:
        for tool in tools:
            if tool.startswith(("kizuna", "before", "api", "start")):
                paired = sorted(r[tool].cpu_seconds / r["duckdb-b"].cpu_seconds for r in rounds)
                wall = sorted(r[tool].seconds / r["duckdb-b"].seconds for r in rounds)
                print(f"{runs[tool].tool}: CPU × (b) round by round: median {statistics.median(paired):.2f}, "
                      f"range {paired[0]:.2f}–{paired[-1]:.2f}; wall × (b) median {statistics.median(wall):.2f}")
    print("wall: the whole process (Python start, imports, connect); work: the analysis alone, timed inside "
          "the process (pandas/lifetimes: after reading the Parquet export"
          + "".join(f"; {r.tool.split(' ')[0]} read it in {r.read_seconds:.1f} s" for r in runs.values()
                    if r.read_seconds is not None) + ")")
    if checked:
        first = next(iter(checked.values()))
        print(f"same results ({', '.join(checked)}): {'yes' if agreed else 'NO'} — {first['rows']:,} ordering "
              f"customers, {first['orders']:,} orders, ¥{first['revenue']:,} revenue")
        if not agreed:
            for tool, values in checked.items():
                print(f"  {tool}: {values}")
    if args.json:
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "cores": os.cpu_count(),
            "orders": args.orders, "customers": customers, "as_of": str(as_of), "rss_method": method,
            "rounds": args.repeat, "loaded_by": how, "checks": checked, "agreed": agreed,
            "runs": [{"tool": r.tool, "seconds": r.seconds, "work_seconds": r.core_seconds,
                      "read_seconds": r.read_seconds, "cpu_seconds": r.cpu_seconds,
                      "peak_rss_mib": r.peak_rss_mib, "command": r.command[:3]} for r in runs.values()],
            "all_rounds": [{t: {"seconds": r.seconds, "work_seconds": r.core_seconds, "cpu_seconds": r.cpu_seconds,
                                "peak_rss_mib": r.peak_rss_mib} for t, r in one.items()} for one in rounds],
        }, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return 0 if agreed else 1


if __name__ == "__main__":
    sys.exit(main())
