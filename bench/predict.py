"""Model-fitting benchmark: `kizuna.models.BetaGeo().fit` against lifetimes' `BetaGeoFitter` on the same data.

    python bench/predict.py --repeat 3                        # 100k and 1M customers
    python bench/predict.py --customers 1_000_000 --repeat 5

The data are drawn from the BG/NBD model itself (kizuna.models._simulate; r 0.25, α 30 days,
a 0.8, b 2.5, deterministic for a given seed): customers whose first order falls on a whole day
of the last three years (T = 1 … 1095 days), recency cut to whole days, as a summary of an order
table by day gives them. They are written once to an .npz file in a temporary folder, and every
tool reads that file in its own process:

* ``kizuna BetaGeo.fit`` — input checks, compression to unique (frequency, recency, T) rows,
  L-BFGS-B with the analytic gradient, standard errors from the Hessian;
* ``lifetimes BetaGeoFitter.fit`` (the reference) — as its users call it, one row per customer;
* ``lifetimes BetaGeoFitter.fit(weights=)`` — after a pandas groupby of equal rows, the
  compression lifetimes documents (the groupby is timed too).

lifetimes 0.11.3 needs pandas < 3 and setuptools < 82 (for pkg_resources), so it runs in its own
venv, bench/.venv-lifetimes, made by this script when missing. *fit s* is the fit alone, timed
inside the process; wall, CPU and peak RSS are the whole process's (see _measure.py). The script
checks that every tool's parameters agree with the reference within --tolerance (default 1e-3)
and exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
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
HORIZON = 90  # days ahead for the expected number of purchases
TRUTH = {"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.5}  # α in days: a mean of one order per 120 days
PARAMS = ("r", "alpha", "a", "b")

# argv: data .npz, horizon (days), predictions .npz to write
KIZUNA = """
import json, sys, time
import numpy as np
from kizuna.models import BetaGeo
data, HORIZON = np.load(sys.argv[1]), float(sys.argv[2])
frequency, recency, T = data["frequency"], data["recency"], data["T"]
start = time.perf_counter()
model = BetaGeo().fit(frequency, recency, T)
fit = time.perf_counter() - start
start = time.perf_counter()
purchases = model.predict_purchases(HORIZON, frequency, recency, T)
alive = model.predict_alive(frequency, recency, T)
predict = time.perf_counter() - start
np.savez(sys.argv[3], purchases=purchases, alive=alive)
print(json.dumps({"fit_s": fit, "predict_s": predict, "params": model.params_, "se": model.standard_errors_,
                  "converged": model.converged_}))
"""

# argv: data .npz, "rows" or "weights", horizon (days), predictions .npz to write
LIFETIMES = """
import json, sys, time, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")  # pkg_resources and pandas deprecation noise from lifetimes 0.11
from lifetimes import BetaGeoFitter
data, HORIZON = np.load(sys.argv[1]), float(sys.argv[3])
df = pd.DataFrame({k: data[k] for k in ("frequency", "recency", "T")})
start = time.perf_counter()
if sys.argv[2] == "weights":
    rows = df.groupby(["frequency", "recency", "T"]).size().rename("weights").reset_index()
    model = BetaGeoFitter().fit(rows["frequency"], rows["recency"], rows["T"], weights=rows["weights"])
else:
    model = BetaGeoFitter().fit(df["frequency"], df["recency"], df["T"])
fit = time.perf_counter() - start
start = time.perf_counter()
purchases = model.conditional_expected_number_of_purchases_up_to_time(HORIZON, data["frequency"], data["recency"],
                                                                     data["T"])
alive = model.conditional_probability_alive(data["frequency"], data["recency"], data["T"])
predict = time.perf_counter() - start
np.savez(sys.argv[4], purchases=np.asarray(purchases, dtype=float), alive=np.asarray(alive, dtype=float))
print(json.dumps({"fit_s": fit, "predict_s": predict, "params": {k: float(v) for k, v in model.params_.items()},
                  "se": {k: float(v) for k, v in model.summary["se(coef)"].items()}, "converged": True}))
"""


@dataclass
class Run:
    """One measured process."""

    tool: str
    seconds: float  # wall clock of the whole process
    cpu_seconds: float
    peak_rss_mib: float
    fit_seconds: float  # the fit alone, timed inside the process
    predict_seconds: float  # E[purchases in the next HORIZON days] and P(alive) of every customer
    predictions: Path
    params: dict[str, float] = field(default_factory=dict)
    se: dict[str, float] = field(default_factory=dict)
    converged: bool = True


def measure(tool: str, argv: list[str], scratch: Path, method: str) -> Run:
    got = run_measured(tool, argv, scratch, method)
    reported = json.loads(got.stdout.strip().splitlines()[-1])
    return Run(tool, got.seconds, got.cpu_seconds, got.peak_rss_mib, reported["fit_s"], reported["predict_s"],
               Path(argv[-1]), reported["params"], reported["se"], reported["converged"])


def median_run(runs: list[Run]) -> Run:
    """The runs of one tool as one: median times, highest peak RSS (the parameters are the same every time)."""
    first = runs[0]
    return Run(first.tool, statistics.median(r.seconds for r in runs), statistics.median(r.cpu_seconds for r in runs),
               max(r.peak_rss_mib for r in runs), statistics.median(r.fit_seconds for r in runs),
               statistics.median(r.predict_seconds for r in runs), first.predictions, first.params, first.se,
               all(r.converged for r in runs))


def simulate(customers: int, seed: int, path: Path) -> int:
    """Write the BG/NBD sample to `path`; return the number of unique (frequency, recency, T) rows."""
    from kizuna.models._base import compress
    from kizuna.models._simulate import simulate_beta_geo

    rng = np.random.default_rng(seed)
    T = rng.integers(1, 3 * 365 + 1, customers).astype(np.float64)
    frequency, recency, T = simulate_beta_geo(customers, T, **TRUTH, rng=rng)
    recency = np.floor(recency)
    np.savez(path, frequency=frequency, recency=recency, T=T)
    return len(compress((frequency, recency, T))[1])


def timing_table(runs: list[Run], reference: Run | None, customers: int) -> str:
    head = ("tool", "customers", "fit s", "predict s", "wall s", "CPU s", "peak RSS MiB", "fit × ref",
            "predict × ref", "wall × ref")
    lines: list[tuple[str, ...]] = [head]
    for r in runs:
        def ratio(mine: float, theirs: float | None) -> str:
            return f"{mine / theirs:.3f}" if theirs else "–"

        lines.append((r.tool, f"{customers:,}", f"{r.fit_seconds:.3f}", f"{r.predict_seconds:.3f}",
                      f"{r.seconds:.2f}", f"{r.cpu_seconds:.2f}", f"{r.peak_rss_mib:,.0f}",
                      ratio(r.fit_seconds, reference and reference.fit_seconds),
                      ratio(r.predict_seconds, reference and reference.predict_seconds),
                      ratio(r.seconds, reference and reference.seconds)))
    return markdown_table(lines)


def params_table(runs: list[Run], reference: Run | None) -> tuple[str, float]:
    """Parameters (and standard errors) of each tool, and the largest difference to the reference's."""
    head = ("tool", *PARAMS, "max |Δ| to ref")
    lines: list[tuple[str, ...]] = [head, ("simulated with", *(f"{TRUTH[p]:g}" for p in PARAMS), "–")]
    worst = 0.0
    for r in runs:
        diff = max(abs(r.params[p] - reference.params[p]) for p in PARAMS) if reference else float("nan")
        if reference is not None and r is not reference:
            worst = max(worst, diff)
        lines.append((r.tool + ("" if r.converged else " (NOT converged)"),
                      *(f"{r.params[p]:.6f} ± {r.se[p]:.6f}" for p in PARAMS), f"{diff:.1e}"))
    return markdown_table(lines), worst


def prediction_gaps(runs: list[Run], reference: Run) -> dict[str, tuple[float, float, bool]]:
    """Per tool: largest difference of its predictions to the reference's, and whether all are finite."""
    theirs = np.load(reference.predictions)
    out = {}
    for r in runs:
        if r is reference:
            continue
        mine = np.load(r.predictions)
        out[r.tool] = (float(np.max(np.abs(mine["purchases"] - theirs["purchases"]))),
                       float(np.max(np.abs(mine["alive"] - theirs["alive"]))),
                       bool(np.isfinite(mine["purchases"]).all() and np.isfinite(mine["alive"]).all()))
    return out


TOOLS = ("kizuna", "lifetimes", "lifetimes-weights")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", default="100_000,1_000_000",
                        help="comma-separated numbers of customers (default 100_000,1_000_000)")
    parser.add_argument("--seed", type=int, default=20240105)
    parser.add_argument("--only", default=",".join(TOOLS),
                        help=f"comma-separated tools to run, of {','.join(TOOLS)} (default all)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest allowed difference of a parameter to lifetimes' (default 1e-3)")
    parser.add_argument("--no-venv", action="store_true",
                        help="do not make bench/.venv-lifetimes when missing (skip lifetimes instead)")
    parser.add_argument("--rss", choices=("auto", "time", "rusage"), default="auto",
                        help="how to measure peak RSS (auto: /usr/bin/time -v if present)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every tool, interleaved; the table shows medians (the machine is noisy)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = [int(s.strip().replace("_", "")) for s in args.customers.split(",") if s.strip()]
    method = args.rss if args.rss != "auto" else default_method()
    tools = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}; choose from {', '.join(TOOLS)}")
    wants_lifetimes = any(t.startswith("lifetimes") for t in tools)
    lifetimes_python = ensure_lifetimes_venv(not args.no_venv) if wants_lifetimes else None
    if wants_lifetimes and lifetimes_python is None:
        print(f"lifetimes skipped: no {LIFETIMES_VENV}; make it with\n  python3.11 -m venv {LIFETIMES_VENV} && "
              f"{LIFETIMES_VENV}/bin/pip install {' '.join(repr(p) for p in LIFETIMES_PACKAGES)}", file=sys.stderr)
        tools = [t for t in tools if not t.startswith("lifetimes")]

    results, ok = [], True
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-predict-") as tmp:
        scratch = Path(tmp)
        for customers in sizes:
            data = scratch / f"bgnbd-{size_label(customers)}.npz"
            print(f"simulating {customers:,} customers …", file=sys.stderr)
            unique = simulate(customers, args.seed, data)
            commands = {
                "kizuna": ("kizuna BetaGeo", [sys.executable, "-c", KIZUNA, str(data), str(HORIZON),
                                              str(scratch / "kizuna.npz")]),
                "lifetimes": ("lifetimes BetaGeoFitter (ref)",
                              [str(lifetimes_python), "-c", LIFETIMES, str(data), "rows", str(HORIZON),
                               str(scratch / "lifetimes.npz")]),
                "lifetimes-weights": ("lifetimes BetaGeoFitter(weights=)",
                                      [str(lifetimes_python), "-c", LIFETIMES, str(data), "weights", str(HORIZON),
                                       str(scratch / "lifetimes-weights.npz")]),
            }
            rounds: list[dict[str, Run]] = []
            for n in range(1, args.repeat + 1):
                if args.repeat > 1:
                    print(f"round {n} of {args.repeat}", file=sys.stderr)
                one = {}
                for tool in tools:
                    name, command = commands[tool]
                    run = measure(name, command, scratch, method)
                    print(f"  {name}: fit {run.fit_seconds:.3f} s, wall {run.seconds:.2f} s, "
                          f"CPU {run.cpu_seconds:.2f} s, {run.peak_rss_mib:,.0f} MiB", file=sys.stderr)
                    one[tool] = run
                rounds.append(one)
            runs = {tool: median_run([r[tool] for r in rounds]) for tool in tools}
            reference = runs.get("lifetimes")
            print(f"\nBG/NBD fit, {customers:,} simulated customers (whole days, T 1–1095), {unique:,} unique "
                  f"(frequency, recency, T) rows; {os.cpu_count()} cores, {memory_gib():.0f} GiB; peak RSS by "
                  f"{method}; {'median of ' + str(args.repeat) + ' interleaved rounds; ' if args.repeat > 1 else ''}"
                  f"{time.strftime('%Y-%m-%d')}")
            print(timing_table(list(runs.values()), reference, customers))
            if reference is not None and len(rounds) > 1:
                for tool in tools:
                    if tool == "lifetimes":
                        continue
                    paired = sorted(r[tool].fit_seconds / r["lifetimes"].fit_seconds for r in rounds)
                    print(f"{runs[tool].tool}: fit × ref round by round: median {statistics.median(paired):.3f}, "
                          f"range {paired[0]:.3f}–{paired[-1]:.3f}")
            table, worst = params_table(list(runs.values()), reference)
            print(table)
            if reference is not None:
                agreed = worst <= args.tolerance
                ok = ok and agreed
                print(f"parameters equal to lifetimes' within {args.tolerance:g}: {'yes' if agreed else 'NO'} "
                      f"(largest difference {worst:.1e})")
                gaps = prediction_gaps(list(runs.values()), reference)
                for tool, (purchases, alive, finite) in gaps.items():
                    print(f"{tool}: predictions for all customers {'finite' if finite else 'NOT FINITE'}; max |Δ| to "
                          f"lifetimes' E[purchases in {HORIZON} days] {purchases:.1e}, P(alive) {alive:.1e}")
                    ok = ok and finite and max(purchases, alive) <= args.tolerance
            results.append({"customers": customers, "unique_rows": unique, "runs": [vars(r) for r in runs.values()],
                            "all_rounds": [{t: vars(r) for t, r in one.items()} for one in rounds]})
    print(f"fit s: the fit alone, timed inside the process (lifetimes weights=: with the pandas groupby); predict s: "
          f"expected purchases in the next {HORIZON} days and P(alive) of every customer; wall: the whole process "
          "(Python start, imports, reading the .npz, fit, predict)")
    if args.json:
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "cores": os.cpu_count(),
            "rss_method": method, "rounds": args.repeat, "truth": TRUTH, "results": results,
        }, indent=1, default=str) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
