"""`kizuna predict` end to end on the benchmark store, beside `kizuna analyze` on the same store.

    python bench/predict_store.py --repeat 3                          # 10M orders / 1M customers
    python bench/predict_store.py --orders 1_000_000 --repeat 3       # 1M orders / 100k customers

The store is customer_table.py's workspace (made once by its helpers: make_data.py's files loaded
by DuckDB into the canonical tables), copied to bench/data/predict-store/<size>/ws so that
`customer_predictions` does not land in the customer-table benchmark's workspace. Every round
runs, interleaved, each in its own process (wall, CPU and peak RSS of that process alone, see
_measure.py):

* ``kizuna analyze (CLI)`` — the reference: the customer table, as customer_table.py measures it;
* ``kizuna predict (CLI)`` — ``kizuna predict --as-of DAY --dir WS --format json``, as a user runs it;
* ``Workspace.predict (phases)`` — the same call from Python, with every phase timed inside the
  process (the functions of kizuna.prediction._predict wrapped by timers, time counted to the
  innermost phase) and the process's peak RSS (VmHWM) read after each phase. It also prints a
  digest of the stored customer_predictions (every column's bytes, rows in customer_id order), so
  two runs, or two versions of the code, can be checked to give identical results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from _measure import default_method, markdown_table, memory_gib, run_measured, size_label
from customer_table import ensure_data, ensure_workspace

BENCH = Path(__file__).resolve().parent

# argv: workspace, as-of day. Prints one JSON line: phases (seconds, peak RSS after), work, digest.
PHASES = r"""
import datetime as dt, hashlib, json, sys, threading, time

def hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")

began = time.perf_counter()
import ibis, numpy as np, pyarrow as pa
import kizuna.prediction._predict as P
from kizuna.models import BetaGeo, GammaGamma
from kizuna.prediction._churn import ChurnModel
from kizuna.store._engine import Store
from kizuna.workspace import Workspace

seconds, cpu, peak, stack = {}, {}, {}, []
# phases run on another thread, beside the main thread's (since #24's fifth pass: BG/NBD's figures, beside the
# churn scoring, since the seventh beside the reason texts): wall and that thread's CPU, not taken off the main
# thread's phase they overlap
beside_s, beside_cpu = {}, {}

def enter(name):
    now, used = time.perf_counter(), time.process_time()  # process_time: every thread of the process
    if stack:
        seconds[stack[-1][0]] = seconds.get(stack[-1][0], 0.0) + now - stack[-1][1]
        cpu[stack[-1][0]] = cpu.get(stack[-1][0], 0.0) + used - stack[-1][2]
    stack.append([name, now, used])

def leave():
    now, used = time.perf_counter(), time.process_time()
    name, start, start_cpu = stack.pop()
    seconds[name] = seconds.get(name, 0.0) + now - start
    cpu[name] = cpu.get(name, 0.0) + used - start_cpu
    peak[name] = max(peak.get(name, 0.0), hwm_mib())
    if stack:
        stack[-1][1], stack[-1][2] = now, used

def timed(owner, attribute, name):
    # name: a fixed phase, or a function of the enclosing phase's name (None: not a phase there)
    original = getattr(owner, attribute, None)
    if original is None:  # not in this version of kizuna (--baseline)
        return
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            phase = name(None) if callable(name) else name
            if phase is None:
                return original(*args, **kwargs)
            now, used = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                beside_s[phase] = beside_s.get(phase, 0.0) + time.perf_counter() - now
                beside_cpu[phase] = beside_cpu.get(phase, 0.0) + time.thread_time() - used
        phase = name(stack[-1][0] if stack else None) if callable(name) else name
        if phase is None:
            return original(*args, **kwargs)
        enter(phase)
        try:
            return original(*args, **kwargs)
        finally:
            leave()
    setattr(owner, attribute, wrapper)

top = lambda phase: (lambda outer: phase if outer == "other (assembling the table)" else None)
timed(P, "predict_customers", "other (assembling the table)")
import kizuna.prediction
kizuna.prediction.predict_customers = P.predict_customers  # Workspace.predict imports it from the package
engine_phase = lambda outer: {
    "other (assembling the table)": "features query (engine → Arrow)",
    "BG/NBD fit": "BG/NBD sufficient statistics (engine)",  # before the statistics were read separately
    "churn fit": "churn training features + labels (engine)",
    "sBG fit + cancel probability": "sBG fit + cancel probability",
}.get(outer, outer)
timed(ibis.expr.types.Table, "to_pyarrow", engine_phase)
timed(ibis.expr.types.Table, "cache", engine_phase)  # the features, kept in the engine to be read twice
timed(P, "_beta_geo_counts", "BG/NBD sufficient statistics (engine)")
timed(P, "_fit_beta_geo", "BG/NBD fit")
timed(GammaGamma, "fit", "Gamma-Gamma fit + spend")
timed(GammaGamma, "predict_spend", "Gamma-Gamma fit + spend")
timed(P, "_fit_shifted_beta_geo", "sBG fit + cancel probability")
timed(P, "_cancel_probability", "sBG fit + cancel probability")
timed(BetaGeo, "predict_alive", top("BG/NBD P(alive) + expected orders"))
timed(BetaGeo, "predict_purchases", top("BG/NBD P(alive) + expected orders"))
timed(P, "_discounted_value", "CLV (monthly expected orders)")
timed(P, "_next_order_days", "next order date (bisection)")
timed(P, "_fit_churn", "churn fit")
# read beside the features since #24 part 4 (one grouping of the orders for both), before inside the churn fit
timed(P, "_training_rows", "churn training features + labels (engine)")
timed(P, "_matrix", top("churn scoring"))
timed(ChurnModel, "predict_risk", "churn scoring")
# one pass gives the risk and the reasons (after #24); before, two phases
timed(ChurnModel, "risk_and_reasons", "churn scoring + contributions + top_reasons (one pass)")
timed(ChurnModel, "top_reasons", lambda outer: None if outer and "one pass" in outer else "contributions + top_reasons")
timed(P, "reason_texts", "reason texts (ja + en)")  # before #24 part 3
timed(P, "reason_text_array", "reason texts (ja + en)")
timed(P, "reason_text_arrays", "reason texts (ja + en)")  # both languages in one call since #24 part 4
LISTS = "the lists' rows (Workspace._write_views)"
# a table created inside the lists' rows (theirs, a scratch table of places before #24's sixth pass) is theirs
written = lambda outer: None if outer == LISTS else "writing customer_predictions"
timed(Store, "create", written)
# what Workspace.predict does around predict_customers: the call effect, the table written, clustered and
# indexed by customer, the lists' views
import kizuna.store._duckdb as D, kizuna.workspace._workspace as W
timed(D.DuckDBStore, "create", written)
timed(D.DuckDBStore, "drop_cache", "writing customer_predictions")  # since #24's sixth pass
timed(D.DuckDBStore, "create_in_order", "writing customer_predictions")  # after #24 part 4
for name in ("cluster_by_customer", "index_by_customer"):
    timed(W, name, "writing customer_predictions")
timed(W.Workspace, "_write_views", LISTS)
# since #24's eighth pass the predictions' columns of the lists' rows alone (the whole table where it cannot)
if hasattr(W.Workspace, "_write_list_predictions"):
    timed(W.Workspace, "_write_list_predictions", LISTS)
timed(kizuna.prediction, "call_uplift", "call effect (call_uplift)")

imported = time.perf_counter() - began
ws = Workspace.open(sys.argv[1])
start, start_cpu = time.perf_counter(), time.process_time()
result = ws.predict(dt.date.fromisoformat(sys.argv[2]))
work, work_cpu = time.perf_counter() - start, time.process_time() - start_cpu
peak_all = hwm_mib()
stored = ws.predictions().to_pyarrow().sort_by("customer_id")
churn_columns = ("churn_risk", "value_at_risk", "churn_reasons_ja", "churn_reasons_en")

def digest_of(names):
    digest = hashlib.sha256()
    for name in names:
        for chunk in stored[name].chunks:
            for buffer in chunk.buffers():
                if buffer is not None:
                    digest.update(buffer)
    return digest.hexdigest()[:16]

def lists_digest():
    # the lists' rows whatever their order among equals: per column, the sum of DuckDB's hash of each value
    con, name = ws.store.backend.con, "_kizuna_list_members"
    columns = [c for c, in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                       "ORDER BY ordinal_position", [name]).fetchall()]
    sums = ", ".join(f'sum(hash("{c}")::HUGEINT) FILTER (WHERE "{c}" IS NOT NULL), count("{c}")' for c in columns)
    found = con.execute(f'SELECT count(*), {sums} FROM "{name}"').fetchone() if columns else None
    return hashlib.sha256(repr((columns, found)).encode()).hexdigest()[:16]

members_digest = lists_digest()
ws.close()
print(json.dumps({"members_digest": members_digest,
                  "rows": result.table.num_rows, "core_s": work, "core_cpu_s": work_cpu, "import_s": imported,
                  "phases": seconds, "phases_cpu": cpu, "beside_s": beside_s, "beside_cpu": beside_cpu,
                  "peak_mib": peak, "peak_all_mib": peak_all, "digest": digest_of(stored.column_names),
                  "models_digest": digest_of([c for c in stored.column_names if c not in churn_columns]),
                  "churn_digest": digest_of(churn_columns),
                  "repeat_buyers": result.repeat_buyers, "training": result.training_customers,
                  "trees": result.churn.n_iter_, "auc": result.churn.validation_auc_}))
"""

PHASE_ORDER = (
    "features query (engine → Arrow)",
    "BG/NBD sufficient statistics (engine)",
    "BG/NBD fit",
    "Gamma-Gamma fit + spend",
    "sBG fit + cancel probability",
    "BG/NBD P(alive) + expected orders",
    "CLV (monthly expected orders)",
    "next order date (bisection)",
    "churn training features + labels (engine)",
    "churn fit",
    "churn scoring",
    "contributions + top_reasons",
    "churn scoring + contributions + top_reasons (one pass)",
    "reason texts (ja + en)",
    "other (assembling the table)",
    "call effect (call_uplift)",
    "writing customer_predictions",
    "the lists' rows (Workspace._write_views)",
)


def ensure_copy(source: Path, target: Path, marker: Path) -> Path:
    """A copy of the loaded workspace, made again when the source was loaded again."""
    stamp = str((source / "kizuna.duckdb").stat().st_mtime_ns)
    if not (marker.exists() and marker.read_text() == stamp and (target / "kizuna.duckdb").exists()):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        marker.write_text(stamp)
    return target


def main(argv: list[str] | None = None) -> int:
    number = lambda s: int(s.replace("_", ""))  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=number, default=10_000_000)
    parser.add_argument("--customers", type=number, default=None, help="default: orders / 10")
    parser.add_argument("--seed", type=int, default=20240105)
    parser.add_argument("--as-of", default="2025-12-30", help="the as-of day (make_data.py's last day of orders)")
    parser.add_argument("--only", default="analyze,predict,phases",
                        help="comma-separated steps of analyze,predict,phases (default all)")
    parser.add_argument("--baseline", type=Path,
                        help="a folder holding another copy of the kizuna package (e.g. the last commit's): its "
                             "predict and phases run too (PYTHONPATH=BASELINE), interleaved, for a before/after table")
    parser.add_argument("--rss", choices=("auto", "time", "rusage"), default="auto")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; the tables show medians")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    customers = args.customers if args.customers is not None else max(1, args.orders // 10)
    label = size_label(args.orders)
    data = BENCH / "data" / label
    method = args.rss if args.rss != "auto" else default_method()
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    kizuna = str(Path(sys.executable).with_name("kizuna"))

    ensure_data(data, args.orders, customers, args.seed, "csv")
    loaded, _, how = ensure_workspace(kizuna, data, "csv", BENCH / "data" / "customer-table" / f"scores-{label}",
                                      reload=False)
    scratch = BENCH / "data" / "predict-store" / label
    scratch.mkdir(parents=True, exist_ok=True)
    workspace = ensure_copy(loaded, scratch / "ws", scratch / "copied-from.txt")
    commands = {
        "analyze": ("kizuna analyze (CLI)",
                    [kizuna, "analyze", "--as-of", args.as_of, "--dir", str(workspace), "--format", "json"]),
        "predict": ("kizuna predict (CLI)",
                    [kizuna, "predict", "--as-of", args.as_of, "--dir", str(workspace), "--format", "json"]),
        # -P: not the current folder first on sys.path, so that PYTHONPATH (--baseline) decides which kizuna runs
        "phases": ("Workspace.predict (phases)", [sys.executable, "-P", "-c", PHASES, str(workspace), args.as_of]),
    }
    if args.baseline:
        base = ["env", f"PYTHONPATH={args.baseline.resolve()}"]
        for step in ("predict", "phases"):
            if step in steps:
                name, command = commands[step]
                commands[f"{step}-baseline"] = (f"{name} [baseline]", [*base, *command])
                steps.insert(steps.index(step), f"{step}-baseline")
    rounds: list[dict[str, dict]] = []
    for n in range(1, args.repeat + 1):
        print(f"round {n} of {args.repeat}", file=sys.stderr)
        one = {}
        for step in steps:
            name, command = commands[step]
            got = run_measured(name, command, scratch, method)
            run = {"tool": name, "wall_s": got.seconds, "cpu_s": got.cpu_seconds, "peak_rss_mib": got.peak_rss_mib}
            if step.startswith("phases"):
                run.update(json.loads(got.stdout.strip().splitlines()[-1]))
            detail = ""
            if step.startswith("phases"):
                detail = (f", work {run['core_s']:.1f} s, digest {run['digest']} (BG/NBD, Gamma-Gamma, sBG columns "
                          f"{run['models_digest']}, churn columns {run['churn_digest']})")
            print(f"  {name}: {got.seconds:.1f} s, CPU {got.cpu_seconds:.1f} s, {got.peak_rss_mib:,.0f} MiB{detail}",
                  file=sys.stderr)
            one[step] = run
        rounds.append(one)

    med = lambda xs: statistics.median(xs)  # noqa: E731
    ref = [r["analyze"] for r in rounds] if "analyze" in steps else None
    print(f"\n{args.orders:,} orders, {customers:,} customers, as of {args.as_of}; {os.cpu_count()} cores, "
          f"{memory_gib():.0f} GiB; peak RSS by {method}; median of {args.repeat} interleaved round(s); "
          f"{time.strftime('%Y-%m-%d')}\nstore: {how}")
    head = ("step", "wall s", "work s", "CPU s", "peak RSS MiB", "wall × analyze", "CPU × analyze", "RSS × analyze")
    lines: list[tuple[str, ...]] = [head]
    for step in steps:
        runs = [r[step] for r in rounds]

        def ratio(key: str, runs: list[dict] = runs) -> str:
            if ref is None:
                return "–"
            return f"{med([r[key] / a[key] for r, a in zip(runs, ref, strict=True)]):.2f}"

        work = f"{med([r['core_s'] for r in runs]):.1f}" if step.startswith("phases") else "–"
        lines.append((runs[0]["tool"], f"{med([r['wall_s'] for r in runs]):.1f}", work,
                      f"{med([r['cpu_s'] for r in runs]):.1f}", f"{max(r['peak_rss_mib'] for r in runs):,.0f}",
                      ratio("wall_s"), ratio("cpu_s"), ratio("peak_rss_mib")))
    print(markdown_table(lines))
    if ref is not None and "predict" in steps and len(rounds) > 1:
        paired = sorted(r["predict"]["wall_s"] / r["analyze"]["wall_s"] for r in rounds)
        print(f"kizuna predict (CLI): wall × analyze round by round: median {med(paired):.2f}, "
              f"range {paired[0]:.2f}–{paired[-1]:.2f}")
    phase_steps = [step for step in steps if step.startswith("phases")]
    if phase_steps:
        by_step = {step: [r[step] for r in rounds] for step in phase_steps}
        names = {step: "after" if step == "phases" else "before" for step in phase_steps} if args.baseline else {}
        head = ["phase (inside Workspace.predict)"]
        for step in phase_steps:
            head += [f"{names.get(step, '')} s".strip(), f"{names.get(step, '')} CPU s".strip(),
                     f"{names.get(step, '')} peak MiB".strip()]
        lines = [tuple(head)]
        for phase in (*PHASE_ORDER, "Workspace.predict outside those", "Workspace.predict (work)"):
            row = [phase]
            for step in phase_steps:
                runs = by_step[step]
                # CPU per phase: every thread's (process_time); "–" for a version of this script without it
                if phase == "Workspace.predict (work)":
                    s_, peak = med([r["core_s"] for r in runs]), max(r["peak_all_mib"] for r in runs)
                    c_ = [r.get("core_cpu_s") for r in runs]
                elif phase == "Workspace.predict outside those":
                    s_, peak = med([r["core_s"] - sum(r["phases"].values()) for r in runs]), None
                    c_ = [r["core_cpu_s"] - sum(r["phases_cpu"].values()) if "core_cpu_s" in r else None
                          for r in runs]
                else:  # a phase on a thread beside the main one: its own wall and CPU (marked ‖ below)
                    s_ = med([r["phases"].get(phase, 0.0) + r.get("beside_s", {}).get(phase, 0.0) for r in runs])
                    peak = max(r["peak_mib"].get(phase, 0.0) for r in runs)
                    c_ = [r["phases_cpu"].get(phase, 0.0) + r["beside_cpu"].get(phase, 0.0) if "phases_cpu" in r
                          else None for r in runs]
                    if any(r.get("beside_s", {}).get(phase) for r in runs):
                        row[0] = f"{phase} ‖"
                cpu_s = "–" if None in c_ else f"{med(c_):.2f}"
                row += [f"{s_:.2f}", cpu_s, "–" if peak is None else f"{peak:,.0f}"]
            lines.append(tuple(row))
        print(markdown_table(lines))
        print("‖: on a thread beside the main thread's phases (BG/NBD's figures, beside the reason texts since #24's "
              "seventh pass); its time is also inside the wall and CPU of the phase it overlaps")
        if len(phase_steps) == 2 and len(rounds) > 1:
            paired = sorted(r["phases"]["core_s"] / r["phases-baseline"]["core_s"] for r in rounds)
            print(f"work after / before, round by round: median {med(paired):.2f}, "
                  f"range {paired[0]:.2f}–{paired[-1]:.2f}")
        first = by_step[phase_steps[-1]][0]
        print(f"{first['rows']:,} customers predicted, {first['repeat_buyers']:,} repeat buyers, "
              f"{first['training']:,} training customers, {first['trees']} trees, validation AUC {first['auc']:.3f}; "
              f"imports {med([r['import_s'] for r in by_step[phase_steps[-1]]]):.1f} s before the work")
        for key, what in (("digest", "customer_predictions"),
                          ("models_digest", "its BG/NBD, Gamma-Gamma and sBG columns"),
                          ("churn_digest", "its churn columns (risk, value at risk, reasons)"),
                          ("members_digest", "the lists' rows (_kizuna_list_members, any order)")):
            digests = sorted({r[step][key] for r in rounds for step in phase_steps})
            print(f"digest of {what}: {', '.join(digests)}"
                  + (" (identical in every run)" if len(digests) == 1 else " (DIFFERENT between runs)"))
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "orders": args.orders,
                                         "customers": customers, "rounds": rounds}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
