"""Response times of `kizuna serve` under concurrent load on loopback.

The dashboard, cell lists (random pages and sorts, the deepest page of the largest cell) and customer pages:

    python bench/web.py --customers 1000000                  # builds bench/data/web/1m/ws once (~25 min)
    python bench/web.py --dir /path/to/demo-ws --duration 30 --connections 8
    python bench/web.py --dir /path/to/demo-ws --workers 2     # kizuna serve --workers 2

The workspace is a demo (`kizuna demo --customers N --dir …`: imported, analysed, predicted). The
server is the real command, `kizuna serve`, in its own process; a user is added with
`kizuna user add --password-stdin` and logged in through the login form (CSRF token and all).
Each page is first requested until its figures are computed (the dashboard's KPI report is
computed once per store version, in the background), then a few times more on new connections, each
sort both ways (`warm_sorts`: every server process sorts a long list once per sort for its deep pages);
then each URL is loaded for `--duration` seconds by `wrk` (Debian's package; a Lua script prints p50 /
p95 / p99) with `--connections` open connections, or, where wrk is missing, by an httpx async client
with as many workers.
`--workers N` starts `kizuna serve --workers N` (default: the command's own default, one process).
The server's CPU time per request (user + system, its worker processes and DuckDB's threads
included, from /proc) is printed beside the latencies.
Prints the commands, one table row per URL, and a JSON line. Target (issue 24): p95 < 150 ms for the customer
page, every list sort and the deepest page of the largest cell; the dashboard's first request after a new
analysis under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
KIZUNA = [sys.executable, "-m", "kizuna"]
# (page, path, load): load "pages=N" asks every request for a random page 1 … N of the list, so that
# the app's cache of recent pages does not answer for the engine; "last" and "middle" are replaced by
# the list's last page and middle page (counted in the store); "sorts" sorts each request by a random
# column of SORTS, either way; "customers" asks for a random customer of the demo (C0000001 …).
URLS = (
    ("dashboard", "/", ""),
    ("cell list 離脱候補者, random page", "/list?segment=churn_candidate", "pages=400"),
    ("cell list 離脱候補者 by value at risk, random page", "/list?segment=churn_candidate&sort=value_at_risk",
     "pages=400"),
    ("cell list 離脱候補者, random sort and direction, random page", "/list?segment=churn_candidate",
     "pages=400 sorts"),
    ("cell list 未回答 (低LTV), random page of the first 1,000", "/list?segment=unanswered_low", "pages=1000"),
    ("cell list 未回答 (低LTV), random sort and direction, random page of the first 1,000",
     "/list?segment=unanswered_low", "pages=1000 sorts"),
    ("cell list 未回答 (低LTV), deepest page", "/list?segment=unanswered_low", "last"),
    ("cell list 未回答 (低LTV) by value at risk, deepest page", "/list?segment=unanswered_low&sort=value_at_risk",
     "last"),
    ("cell list 未回答 (低LTV) by value at risk, middle page", "/list?segment=unanswered_low&sort=value_at_risk",
     "middle"),
    ("R5 × F5 list, random page", "/list?r=5&f=5", "pages=100"),
    ("customer page", "/customer/C0000239", ""),
    ("customer page, random customer", "/customer/", "customers"),
)
SORTS = ("ltv_revenue", "orders", "recency_days", "last_order_at", "nps_score", "customer_id", "churn_risk",
         "value_at_risk")
WRK_SCRIPT = """
local pages = tonumber(os.getenv("KIZUNA_PAGES") or "0")
local customers = tonumber(os.getenv("KIZUNA_CUSTOMERS") or "0")
local sorts = {}
for s in string.gmatch(os.getenv("KIZUNA_SORTS") or "", "[^,]+") do sorts[#sorts + 1] = s end
request = function()
  local path = wrk.path
  if customers > 0 then
    path = path .. string.format("C%07d", math.random(1, customers))
  end
  if #sorts > 0 then
    path = path .. "&sort=" .. sorts[math.random(1, #sorts)] .. "&desc=" .. math.random(0, 1)
  end
  if pages > 0 then
    path = path .. "&page=" .. math.random(1, pages)
  end
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  io.write(string.format("KIZUNA %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.errors.status,
    summary.errors.timeout + summary.errors.connect + summary.errors.read + summary.errors.write))
end
"""


def list_size(folder: Path, segment: str) -> int:
    """Customers in a matrix cell, counted in the store (read-only, beside the server)."""
    import duckdb

    with duckdb.connect(str(folder / "kizuna.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM customer_scores WHERE matrix_cell = ?", [segment]).fetchone()[0]


def customer_count(folder: Path) -> int:
    import duckdb

    with duckdb.connect(str(folder / "kizuna.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM customers").fetchone()[0]


def load_options(folder: Path, path: str, load: str) -> tuple[str, dict[str, str]]:
    """The path to warm and load, and the environment of the wrk script, for a URL's `load`."""
    env = {"KIZUNA_PAGES": "0", "KIZUNA_CUSTOMERS": "0", "KIZUNA_SORTS": ""}
    for word in load.split():
        if word.startswith("pages="):
            env["KIZUNA_PAGES"] = word.removeprefix("pages=")
        elif word == "sorts":
            env["KIZUNA_SORTS"] = ",".join(SORTS)
        elif word == "customers":
            env["KIZUNA_CUSTOMERS"] = str(customer_count(folder))
        elif word in ("last", "middle"):
            segment = re.search(r"segment=([a-z_]+)", path).group(1)
            last = max(1, -(-list_size(folder, segment) // 50))
            path += f"&page={last if word == 'last' else last // 2}"
    return path, env


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` and its children so far, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_workspace(customers: int) -> Path:
    folder = BENCH / "data" / "web" / f"{customers // 1000}k" / "ws"
    if not (folder / "kizuna.duckdb").exists() or not (folder / ".complete").exists():
        print(f"building the demo: kizuna demo --customers {customers} --dir {folder}", flush=True)
        started = time.monotonic()
        subprocess.run([*KIZUNA, "demo", "--customers", str(customers), "--dir", str(folder), "--format", "json"],
                       check=True, stdout=subprocess.DEVNULL)
        (folder / ".complete").write_text(f"{time.monotonic() - started:.0f} s\n")
        print(f"built in {time.monotonic() - started:.0f} s", flush=True)
    return folder


def login(base: str, name: str, password: str) -> str:
    with httpx.Client(base_url=base, timeout=600) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        done = client.post("/login", data={"csrf": token, "name": name, "password": password, "next": "/"})
        assert done.status_code == 303, done.text
        return client.cookies["kizuna_session"]


def warm(base: str, cookie: str, path: str) -> float:
    """Request `path` until it answers 200 (not 202 "computing" / 503 "busy"); seconds it took."""
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=600, cookies={"kizuna_session": cookie}) as client:
        while (answer := client.get(path)).status_code != 200:
            assert answer.status_code in (202, 503), (path, answer.status_code, answer.text[-500:])
            time.sleep(1)
    return time.monotonic() - started


def warm_sorts(base: str, cookie: str, path: str, env: dict[str, str], rounds: int = 6) -> None:
    """Before a URL's load: ask for it a few times, each sort both ways, on new connections (which any
    server process may take: each sorts a long list once per sort, in the background, for the pages deep
    inside it), then give the sorts a moment."""
    sorts = [f"&sort={s}&desc={d}" for s in env["KIZUNA_SORTS"].split(",") if s for d in (0, 1)]
    for _ in range(rounds):
        for sort in sorts or [""]:
            asked = random_path(path, {**env, "KIZUNA_SORTS": ""}) if not sort else \
                f"{path}{sort}&page={random.randint(1, max(1, int(env['KIZUNA_PAGES'])))}"
            httpx.get(base + asked, cookies={"kizuna_session": cookie}, timeout=600)
    time.sleep(10 if sorts else 3)


def run_wrk(base: str, cookie: str, path: str, env: dict[str, str], duration: int,
            connections: int) -> tuple[dict, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
            "-s", script.name, "-H", f"Cookie: kizuna_session={cookie}", base + path]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, env={**os.environ, **env}).stdout
    finally:
        os.unlink(script.name)
    fields = [int(x) for x in re.search(r"KIZUNA (.*)", out).group(1).split()]
    requests, micros, p50, p95, p99, bad_status, socket_errors = fields
    shown = " ".join(a if not a.startswith("Cookie:") else "'Cookie: kizuna_session=…'" for a in argv)
    shown = "".join(f"{k}={v} " for k, v in env.items() if v not in ("", "0")) + shown
    return {"requests": requests, "rps": requests / (micros / 1e6), "p50_ms": p50 / 1000, "p95_ms": p95 / 1000,
            "p99_ms": p99 / 1000, "non_2xx": bad_status, "socket_errors": socket_errors}, shown


def random_path(path: str, env: dict[str, str]) -> str:
    """What the wrk script asks for, for the httpx client."""
    if int(env["KIZUNA_CUSTOMERS"]):
        path += f"C{random.randint(1, int(env['KIZUNA_CUSTOMERS'])):07d}"
    if env["KIZUNA_SORTS"]:
        path += f"&sort={random.choice(env['KIZUNA_SORTS'].split(','))}&desc={random.randint(0, 1)}"
    if int(env["KIZUNA_PAGES"]):
        path += f"&page={random.randint(1, int(env['KIZUNA_PAGES']))}"
    return path


async def _load(base: str, cookie: str, path: str, env: dict[str, str], duration: int,
                workers: int) -> tuple[list[float], int]:
    times: list[float] = []
    errors = 0
    stop = time.monotonic() + duration
    limits = httpx.Limits(max_connections=workers)
    cookies = {"kizuna_session": cookie}
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=30, limits=limits) as client:
        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop:
                started = time.perf_counter()
                answer = await client.get(random_path(path, env))
                times.append(time.perf_counter() - started)
                errors += answer.status_code != 200

        await asyncio.gather(*(worker() for _ in range(workers)))
    return times, errors


def run_httpx(base: str, cookie: str, path: str, env: dict[str, str], duration: int,
              connections: int) -> tuple[dict, str]:
    times, errors = asyncio.run(_load(base, cookie, path, env, duration, connections))
    cuts = statistics.quantiles(times, n=100)
    options = " ".join(f"{k}={v}" for k, v in env.items() if v not in ("", "0"))
    return {"requests": len(times), "rps": len(times) / duration, "p50_ms": 1000 * cuts[49],
            "p95_ms": 1000 * cuts[94], "p99_ms": 1000 * cuts[98], "non_2xx": errors, "socket_errors": 0}, \
        f"httpx async client, {connections} workers, {duration} s, GET {base}{path} {options}".rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="a demo workspace (default: build one with --customers)")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per URL")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tool", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx")
    parser.add_argument("--only", nargs="*", help="only the pages whose name holds one of these words")
    parser.add_argument("--workers", type=int, help="kizuna serve --workers N (default: the command's default)")
    args = parser.parse_args()
    folder = args.dir or ensure_workspace(args.customers)
    user, password = "bench", "bench-password-123"
    subprocess.run([*KIZUNA, "user", "add", user, "--role", "operator", "--password-stdin", "--dir", str(folder)],
                   input=password + "\n", text=True, check=True, capture_output=True)
    port = free_port()
    serve = [*KIZUNA, "serve", "--dir", str(folder), "--port", str(port)]
    if args.workers:
        serve += ["--workers", str(args.workers)]
    log = tempfile.TemporaryFile()  # noqa: SIM115  (the server's log: a pipe nobody read would fill, stop it)
    server = subprocess.Popen(serve, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/login", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "kizuna serve did not start"
                time.sleep(0.2)
        cookie = login(base, user, password)
        print(f"server: {' '.join(serve[1:])}  (workspace {folder})")
        print(f"load: {args.tool}, {args.connections} connections, {args.duration} s per URL, loopback")
        results = []
        for name, path, load in URLS:
            if args.only and not any(word in name for word in args.only):
                continue
            path, env = load_options(folder, path, load)
            first = warm(base, cookie, random_path(path, env))
            warm_sorts(base, cookie, path, env)
            cpu = server_cpu(server.pid)
            figures, command = (run_wrk if args.tool == "wrk" else run_httpx)(base, cookie, path, env,
                                                                               args.duration, args.connections)
            figures["cpu_ms"] = 1000 * (server_cpu(server.pid) - cpu) / max(1, figures["requests"])
            results.append({"page": name, "path": path, "first_request_s": round(first, 2), **figures})
            print(f"  {command}")
        print()
        print("| page | p50 ms | p95 ms | p99 ms | req/s | server CPU ms per request | non-2xx | first request s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(f"| {r['page']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['rps']:.1f} | "
                  f"{r['cpu_ms']:.0f} | {r['non_2xx']} | {r['first_request_s']} |")
        print(json.dumps({"workspace": str(folder), "tool": args.tool, "connections": args.connections,
                          "workers": args.workers,
                          "duration_s": args.duration, "results": results}, ensure_ascii=False))
    finally:
        server.terminate()
        server.wait(10)
        log.seek(0)
        errors = [line for line in log.read().decode(errors="replace").splitlines() if "Traceback" in line]
        if errors:
            print(f"the server logged {len(errors)} tracebacks", file=sys.stderr)


if __name__ == "__main__":
    main()
