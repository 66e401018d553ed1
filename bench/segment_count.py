"""The segment builder's live count (issue #23): how long kizuna takes to count the customers who meet a
set of conditions and their revenue share, at 100k and 1M customers, beside a hand-written DuckDB query.

    python bench/segment_count.py                                  # 100k and 1M customers
    python bench/segment_count.py --sizes 100k --repeat 9

For each size, make_data.py's customers and orders (Parquet) are loaded into a workspace as
bench/customer_table.py loads them (DuckDB INSERTs into the canonical tables, made once and kept),
each order gets one product of 20 (a deterministic function of its id), and `kizuna analyze`
builds customer_scores. Then, for each set of conditions, in this one process, after one warm-up:

* **kizuna API**: `Workspace.count_segment(where)` on a workspace opened once (read-only): parsing the
  conditions, building the Ibis expression, one aggregate query in DuckDB, one row back;
* **web /segments/count**: the builder's JSON endpoint through the web app in-process (httpx's ASGI
  transport, a logged-in operator): the request, its session check, a read-only store opened for it,
  the count, the JSON — what a person waits for as they type;
* **duckdb SQL (reference)**: one hand-written statement over the same file (read-only connection
  opened once), the floor of what the engine does.

Every row must give the same count and revenue as the reference (the script stops otherwise). The
table shows the median of `--repeat` rounds in milliseconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

from _measure import markdown_table, memory_gib
from customer_table import ensure_data, ensure_workspace

BENCH = Path(__file__).resolve().parent
SIZES = {"100k": (100_000, 1_000_000), "1m": (1_000_000, 3_000_000)}  # customers, orders
AS_OF = dt.date(2025, 12, 30)  # make_data.py's last day of orders
PRODUCTS = 20
OPERATOR = ("bench", "bench-password")

# (what it is, the conditions kizuna takes, the same in SQL over customer_scores s ⟕ customers c)
COMPLETED_WITH = ("s.customer_id IN (SELECT o.customer_id FROM orders o {join} WHERE "
                  "(o.status IS NULL OR o.status = 'completed') AND {test})")
CONDITIONS = [
    ("LTV and recency", ["ltv_revenue >= 30000", "recency_days <= 180"],
     "s.ltv_revenue >= 30000 AND s.recency_days <= 180"),
    ("lifecycle and RFM rank", ["lifecycle_state in [active, at_risk]", "rfm_rank in [a, b]"],
     "s.lifecycle_state IN ('active', 'at_risk') AND s.rfm_rank IN ('a', 'b')"),
    ("product bought, e-mail consent", ["products_bought in [P01, P02]", "email_consent == true",
                                        "has_email == true"],
     COMPLETED_WITH.format(join="JOIN order_items i ON i.order_id = o.order_id",
                           test="i.product_id IN ('P01', 'P02')")
     + " AND coalesce(c.email_opt_in, false) AND coalesce(trim(c.email), '') <> ''"),
    ("sales channel, lapsing, not lost", ["order_channels in [楽天市場]", "lapsing == true", "lost == false"],
     COMPLETED_WITH.format(join="", test="o.channel IN ('楽天市場')")
     + " AND coalesce(s.lapsing, false) AND NOT coalesce(s.lost, true)"),
]
REFERENCE = """
SELECT count(*) FILTER (WHERE {where}) AS customers,
       coalesce(sum(coalesce(s.ltv_revenue, 0)) FILTER (WHERE {where}), 0) AS revenue,
       count(*) AS total_customers, sum(coalesce(s.ltv_revenue, 0)) AS total_revenue
FROM customer_scores s {join}
"""
CUSTOMERS_JOIN = "LEFT JOIN customers c ON c.customer_id = s.customer_id"  # only for the conditions that read c.


def prepare(label: str, customers: int, orders: int, seed: int, runs: Path, reload: bool) -> Path:
    """The workspace of one size, loaded, with products and order items, analysed (made once, kept)."""
    import duckdb

    from kizuna.workspace import Workspace

    data = BENCH / "data" / f"{label}-segments-parquet"
    ensure_data(data, orders, customers, seed, "parquet")
    kizuna = str(Path(sys.executable).with_name("kizuna"))
    if not os.access(kizuna, os.X_OK):
        kizuna = shutil.which("kizuna") or "kizuna"
    workspace, _, how = ensure_workspace(kizuna, data, "parquet", runs / f"segments-{label}", reload)
    done = workspace / ".segments-ready"
    if done.exists() and not reload:
        return workspace
    con = duckdb.connect(str(workspace / "kizuna.duckdb"))
    con.execute("SET enable_progress_bar = false")
    con.execute("DELETE FROM order_items")
    con.execute("DELETE FROM products")
    con.execute(f"INSERT INTO products (product_id, name) SELECT 'P' || lpad(CAST(n AS VARCHAR), 2, '0'), "
                f"'商品 ' || n FROM range(1, {PRODUCTS + 1}) t(n)")
    # one line per order, its product a function of the order's number
    con.execute(f"INSERT INTO order_items (order_id, product_id, quantity, unit_price) SELECT order_id, "
                f"'P' || lpad(CAST(1 + CAST(regexp_replace(order_id, '[^0-9]', '', 'g') AS BIGINT) % {PRODUCTS} "
                f"AS VARCHAR), 2, '0'), 1, amount FROM orders")
    con.execute("CHECKPOINT")
    con.close()
    began = time.perf_counter()
    with Workspace.open(workspace) as ws:
        ws.analyze(AS_OF)
    print(f"  {how}; kizuna analyze {time.perf_counter() - began:.0f} s", file=sys.stderr)
    done.write_text("ready\n")
    return workspace


def median_ms(call, repeat: int) -> tuple[float, object]:
    result = call()  # warm-up: caches, the first connection
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), result


def measure(workspace: Path, repeat: int) -> list[dict]:
    import anyio
    import duckdb
    import httpx

    from kizuna.operations import OPERATIONS_FILE, Operations
    from kizuna.web import create_app, hash_password
    from kizuna.workspace import Workspace

    ops = Operations(workspace / OPERATIONS_FILE)
    ops.add_user(OPERATOR[0], "operator", hash_password(OPERATOR[1]))
    ops.close()
    app = create_app(workspace, warm=False, lang="en", logins_per_minute=10_000)
    cookies = httpx.Cookies()

    def get(url: str, **options) -> httpx.Response:
        nonlocal cookies

        async def go() -> httpx.Response:
            nonlocal cookies
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                         cookies=cookies) as http:
                response = await http.request(options.pop("method", "GET"), url, **options)
                cookies = httpx.Cookies(http.cookies)
                return response

        return anyio.run(go)

    token = re.search(r'name="csrf" value="([^"]+)"', get("/login").text).group(1)
    get("/login", method="POST", data={"csrf": token, "name": OPERATOR[0], "password": OPERATOR[1], "next": "/"})
    ws = Workspace.open(workspace, read_only=True)
    con = duckdb.connect(str(workspace / "kizuna.duckdb"), read_only=True)
    rows = []
    try:
        for what, where, sql in CONDITIONS:
            query = "&".join(_rows_query(where))
            api_ms, count = median_ms(lambda where=where: ws.count_segment(where), repeat)
            web_ms, answer = median_ms(lambda query=query: get(f"/segments/count?{query}").json(), repeat)
            statement = REFERENCE.format(where=sql, join=CUSTOMERS_JOIN if "c." in sql else "")
            ref_ms, ref = median_ms(lambda statement=statement: con.execute(statement).fetchone(), repeat)
            mine = (count.customers, count.revenue, count.total_customers, count.total_revenue)
            if mine != tuple(int(v) for v in ref) or answer.get("customers") != count.customers:
                raise SystemExit(f"{what}: kizuna {mine} (web {answer}) but the reference {ref}")
            rows.append({"what": what, "customers": count.customers, "total": count.total_customers,
                         "revenue_share": count.revenue_share, "api_ms": api_ms, "web_ms": web_ms, "ref_ms": ref_ms})
    finally:
        con.close()
        ws.close()
        app.state.kizuna.reader.close()
    return rows


def _rows_query(where: list[str]) -> list[str]:
    """The builder's f/o/v fields for conditions written as text."""
    import urllib.parse

    out = []
    for i, text in enumerate(where):
        for op in (" not in ", " in ", ">=", "<=", "==", "!=", ">", "<"):
            if op in text:
                field, value = (part.strip() for part in text.split(op, 1))
                values = [v.strip() for v in value.strip("[]").split(",")] if "in" in op else [value]
                out += [f"f{i}={field}", f"o{i}={urllib.parse.quote(op.strip())}"]
                out += [f"v{i}={urllib.parse.quote(v)}" for v in values]
                break
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,1m", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per row (after one warm-up)")
    parser.add_argument("--seed", type=int, default=20240105)
    parser.add_argument("--runs", type=Path, default=BENCH / "data" / "segment-count",
                        help="folder for the loaded workspaces (kept between runs)")
    parser.add_argument("--reload", action="store_true", help="load the workspaces again")
    args = parser.parse_args(argv)
    import duckdb

    lines = [("customers", "conditions", "in segment", "revenue share", "kizuna API ms", "web /segments/count ms",
              "duckdb SQL ms (reference)", "API × ref")]
    for label in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        customers, orders = SIZES[label]
        print(f"{label}: {customers:,} customers, {orders:,} orders …", file=sys.stderr)
        workspace = prepare(label, customers, orders, args.seed, args.runs, args.reload)
        for row in measure(workspace, args.repeat):
            lines.append((f"{row['total']:,}", row["what"], f"{row['customers']:,}",
                          f"{100 * row['revenue_share']:.1f} %", f"{row['api_ms']:,.0f}", f"{row['web_ms']:,.0f}",
                          f"{row['ref_ms']:,.0f}", f"{row['api_ms'] / row['ref_ms']:.1f}"))
    print(f"segment count: median of {args.repeat} rounds after a warm-up; {os.cpu_count()} cores, "
          f"{memory_gib():.0f} GiB; Python {platform.python_version()}, DuckDB {duckdb.__version__}; "
          f"{dt.date.today()}")
    print(markdown_table(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
