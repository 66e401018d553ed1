"""`kizuna demo --customers N` in its own process: time, CPU and peak RSS per phase and in total.

    .venv/bin/python bench/demo.py                                  # 100k and 1M customers
    .venv/bin/python bench/demo.py --customers 100000 --repeat 3
    .venv/bin/python bench/demo.py --profile generation --customers 100000   # cProfile of one phase

Each round runs the real command (`kizuna demo --customers N --dir … --format json`) in a fresh
workspace under `--scratch` (default /tmp/demo-bench), wrapped by ``/usr/bin/time -v`` for the
whole process. Inside that process a small hook (this file, run as ``--child``) wraps the demo's
steps to time them: wall and CPU time (``getrusage``) of each, and its peak RSS (the kernel's
high-water mark, reset at the start of the phase through ``/proc/self/clear_refs``).

Phases:

==========  =================================================================================
start       Python and the CLI's imports, up to the demo's first step
generation  ``generate_demo_files``: simulating the business and writing its exports
import      the seven ``Workspace.import_file`` calls (each kind is also printed on stderr)
ranks       ``suggest_ranks`` and ``write_rank_rules``, the demo's own RFM ranks
analyze     ``Workspace.analyze``
predict     ``Workspace.predict``
rest        everything else: showing counts, KPIs, segments, predictions and the call list
==========  =================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import default_method, run_measured  # noqa: E402

PHASES = ("generation alone", "start", "build", "analyze", "predict", "rest")
GENERATE = """
import sys
from kizuna.demo import generate_demo_files
generate_demo_files(sys.argv[1], customers=int(sys.argv[2]), seed=int(sys.argv[3]))
"""


# -- inside the measured process ----------------------------------------------------------------
class _Phases:
    """Times the wrapped calls; whatever runs outside them is counted as `start` or `rest`."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}
        self.detail: list[dict[str, float | str]] = []
        self._mark = self._now()
        self._outside = "start"
        self._depth = 0

    @staticmethod
    def _now() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime + usage.ru_stime

    @staticmethod
    def _reset_peak() -> None:
        with contextlib.suppress(OSError):  # not Linux: the peak is then the process's peak so far
            Path("/proc/self/clear_refs").write_text("5")

    @staticmethod
    def _peak_mib() -> float:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _close(self, phase: str, detail: str | None = None) -> None:
        wall, cpu = self._now()
        row = self.rows.setdefault(phase, {"seconds": 0.0, "cpu_s": 0.0, "peak_mib": 0.0})
        seconds, cpu_s = wall - self._mark[0], cpu - self._mark[1]
        peak = self._peak_mib()
        row["seconds"] += seconds
        row["cpu_s"] += cpu_s
        row["peak_mib"] = max(row["peak_mib"], peak)
        if detail:
            self.detail.append({"phase": phase, "step": detail, "seconds": seconds, "cpu_s": cpu_s,
                                "peak_mib": peak})
        self._mark = (wall, cpu)
        self._reset_peak()

    def wrap(self, phase: str, function):
        """`function` timed as `phase` (calls made inside another timed call are not split out)."""
        def timed(*args, **kwargs):
            if self._depth:
                return function(*args, **kwargs)
            self._close(self._outside)
            self._depth += 1
            try:
                return function(*args, **kwargs)
            finally:
                self._depth -= 1
                self._close(phase)
                self._outside = "rest"
        return timed

    def step(self, phase: str, function, name):
        """`function` timed as a detail line of `phase` (wall and CPU of the whole process, peak so far)."""
        def timed(*args, **kwargs):
            wall, cpu = self._now()
            try:
                return function(*args, **kwargs)
            finally:
                now, cpu_now = self._now()
                self.detail.append({"phase": phase, "step": name(args), "seconds": now - wall,
                                    "cpu_s": cpu_now - cpu, "peak_mib": self._peak_mib()})
        return timed

    def finish(self) -> None:
        self._close(self._outside)


def child(out: Path, argv: list[str]) -> int:
    phases = _Phases()
    import kizuna.demo
    from kizuna.workspace import Workspace

    kizuna.demo.build_demo = phases.wrap("build", kizuna.demo.build_demo)
    Workspace.import_file = phases.step("build", Workspace.import_file, lambda args: f"import {args[1]}")
    Workspace.suggest_ranks = phases.step("build", Workspace.suggest_ranks, lambda args: "ranks")
    Workspace.analyze = phases.wrap("analyze", Workspace.analyze)
    Workspace.predict = phases.wrap("predict", Workspace.predict)
    from kizuna.cli import main

    sys.argv = ["kizuna", *argv]
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code or 0
    finally:  # a failed run still tells how far it got
        phases.finish()
        out.write_text(json.dumps({"phases": phases.rows, "detail": phases.detail, "code": code}))
    return int(code)


# -- the benchmark -----------------------------------------------------------------------------
def run_once(customers: int, scratch: Path, method: str, seed: int, profile: str | None) -> dict:
    workspace = scratch / f"ws-{customers}"
    shutil.rmtree(workspace, ignore_errors=True)
    phases_file = scratch / f"phases-{customers}.json"
    command = ["demo", "--customers", str(customers), "--seed", str(seed), "--dir", str(workspace),
               "--format", "json"]
    argv = [sys.executable, __file__, "--child", str(phases_file)]
    if profile:
        argv += ["--profile", profile]
    phases_file.unlink(missing_ok=True)
    try:
        measured = run_measured(f"demo-{customers}", [*argv, "--", *command], scratch, method)
    except SystemExit:
        if phases_file.exists():
            print(json.dumps(json.loads(phases_file.read_text()), indent=1), file=sys.stderr)
        raise
    inside = json.loads(phases_file.read_text())
    for step in inside["detail"]:
        print(f"  {customers:>9,} {step['step']:<20} {step['seconds']:7.1f} s {step['cpu_s']:7.1f} CPU s "
              f"{step['peak_mib']:7.0f} MiB", file=sys.stderr)
    # Resetting the high-water mark also resets what the kernel reports at exit, so the process's
    # peak is the highest of its phases' peaks (and of what /usr/bin/time saw).
    peak = max([measured.peak_rss_mib, *(row["peak_mib"] for row in inside["phases"].values())])
    total = {"seconds": measured.seconds, "cpu_s": measured.cpu_seconds, "peak_mib": peak}
    # The files alone, in a process of their own (in the demo they are written while imported).
    alone = run_measured(f"generate-{customers}", [sys.executable, "-c", GENERATE, str(scratch / f"files-{customers}"),
                                                   str(customers), str(seed)], scratch, method)
    inside["phases"]["generation alone"] = {"seconds": alone.seconds, "cpu_s": alone.cpu_seconds,
                                            "peak_mib": alone.peak_rss_mib}
    shutil.rmtree(scratch / f"files-{customers}", ignore_errors=True)
    print(f"  {customers:>9,} {'total':<20} {total['seconds']:7.1f} s {total['cpu_s']:7.1f} CPU s "
          f"{total['peak_mib']:7.0f} MiB", file=sys.stderr)
    return {"phases": inside["phases"], "total": total}


def summarise(rounds: list[dict]) -> dict[str, dict[str, float]]:
    """Median wall and CPU time, highest peak RSS, of each phase over the rounds."""
    names = [p for p in PHASES if any(p in r["phases"] for r in rounds)] + ["total"]
    table = {}
    for name in names:
        rows = [r["total"] if name == "total" else r["phases"].get(name, {}) for r in rounds]
        table[name] = {
            "seconds": statistics.median(row.get("seconds", 0.0) for row in rows),
            "cpu_s": statistics.median(row.get("cpu_s", 0.0) for row in rows),
            "peak_mib": max(row.get("peak_mib", 0.0) for row in rows),
        }
    return table


def print_table(results: dict[int, dict[str, dict[str, float]]], repeat: int) -> None:
    sizes = list(results)
    header = "| phase | " + " | ".join(f"{n:,}: s | CPU s | peak MiB" for n in sizes) + " |"
    print(f"kizuna demo, {', '.join(f'{n:,}' for n in sizes)} customers; {os.cpu_count()} cores; "
          f"median of {repeat} round(s), highest peak; {dt.date.today()}")
    print(header)
    print("|---|" + "---:|---:|---:|" * len(sizes))
    names = [p for p in (*PHASES, "total") if any(p in results[n] for n in sizes)]
    for name in names:
        cells = []
        for n in sizes:
            row = results[n].get(name)
            cells.append("– | – | –" if row is None else
                         f"{row['seconds']:.1f} | {row['cpu_s']:.1f} | {row['peak_mib']:,.0f}")
        print(f"| {'**total (process)**' if name == 'total' else name} | " + " | ".join(cells) + " |")


def profiled_child(out: Path, phase: str, argv: list[str]) -> int:
    """The child with cProfile around one wrapped phase; the 25 costliest calls go to stderr."""
    import cProfile
    import pstats

    import kizuna.demo._generate as generate
    from kizuna.workspace import Workspace

    targets = {"generation": (generate, "_write_files"), "import": (Workspace, "import_file"),
               "analyze": (Workspace, "analyze"), "predict": (Workspace, "predict")}
    owner, name = targets[phase]
    original = getattr(owner, name)
    profiler = cProfile.Profile()

    def profiled(*args, **kwargs):
        profiler.enable()
        try:
            return original(*args, **kwargs)
        finally:
            profiler.disable()

    setattr(owner, name, profiled)
    code = child(out, argv)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/demo-bench"))
    parser.add_argument("--profile", choices=("generation", "import", "analyze", "predict"),
                        help="cProfile one phase (its figures are then slower than without)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if args.child:
        code = profiled_child(args.child, args.profile, command) if args.profile else child(args.child, command)
        raise SystemExit(code)
    args.scratch.mkdir(parents=True, exist_ok=True)
    method = default_method()
    results = {}
    for n in args.customers:
        rounds = []
        for i in range(args.repeat):
            print(f"round {i + 1}/{args.repeat}, {n:,} customers", file=sys.stderr)
            rounds.append(run_once(n, args.scratch, method, args.seed, args.profile))
        results[n] = summarise(rounds)
    print_table(results, args.repeat)


if __name__ == "__main__":
    main()
