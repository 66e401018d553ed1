"""`kizuna run --dry-run` at scale (issue 24): a workspace's scenarios evaluated and dispatched dry, as
the runner is now and, interleaved, as a reference copy of the package runs them (the code before
a change: a folder holding a `kizuna` package, put first on PYTHONPATH).

    python bench/run_scale.py --dir /tmp/run100k-ws --dir /tmp/run1m-ws --reference /tmp/before --rounds 2

Each dry run is a process of its own (`_measure.run_measured`: wall, user + system CPU seconds and
peak RSS from /usr/bin/time -v) calling `Workspace.run(as_of, now=…, dry_run=True)` with the
workspace's as_of and a fixed `now` (noon of that day, local time by default: the quiet hours do
not depend on when the bench runs). It prints the seconds inside `run`, the messages due
(`would_send`), every status's total and a digest of the per-step counts: two runs that decided
the same have the same digest. Nothing is written to the workspace (a dry run records nothing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import default_method, markdown_table, run_measured  # noqa: E402

STATUSES = ("enrolled", "holdout", "would_send", "suppressed", "deferred", "merged", "cancelled", "waiting")


def child(folder: str, now: str | None) -> None:
    import zoneinfo

    from kizuna.workspace import Workspace

    ws = Workspace.open(Path(folder))
    as_of = ws.as_of()
    zone = zoneinfo.ZoneInfo(ws.settings.business.timezone)
    moment = (dt.datetime.fromisoformat(now) if now else dt.datetime.combine(as_of, dt.time(12))).replace(tzinfo=zone)
    start = time.perf_counter()
    report = ws.run(as_of, now=moment, dry_run=True)
    seconds = time.perf_counter() - start
    counts = {f"{name}/{step}": dict(sorted(t.counts.items())) for (name, step), t in sorted(report.tallies.items())}
    print(json.dumps({"run_s": round(seconds, 1), "totals": {s: report.total(s) for s in STATUSES},
                      "digest": hashlib.sha256(json.dumps(counts, sort_keys=True).encode()).hexdigest()[:12]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", action="append", default=[], help="a workspace (repeat for several)")
    parser.add_argument("--reference", help="a folder with the reference `kizuna` package, run beside the current")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--now", help="local date and time of the runs (default: noon of the workspace's as_of)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.now)
        return
    if not args.dir:
        parser.error("name at least one workspace with --dir")
    codes = [("current", None)] + ([("reference", args.reference)] if args.reference else [])
    lines = [("workspace", "code", "round", "run s", "wall s", "CPU s", "peak RSS MiB", "would_send", "digest")]
    method = default_method()
    with tempfile.TemporaryDirectory() as scratch:
        for n in range(1, args.rounds + 1):
            for folder in args.dir:
                order = codes if n % 2 else codes[::-1]  # interleaved: neither always runs first
                for name, path in order:
                    # env(1) execs the interpreter: /usr/bin/time measures it alone
                    pythonpath = os.pathsep.join(filter(None, [path, os.environ.get("PYTHONPATH")]))
                    argv = ["env", f"PYTHONPATH={pythonpath}", sys.executable, __file__, "--child", folder,
                            *(["--now", args.now] if args.now else [])]
                    measured = run_measured(f"{name}-{n}", argv, Path(scratch), method)
                    result = json.loads(measured.stdout.strip().splitlines()[-1])
                    print(json.dumps({"workspace": folder, "code": name, "round": n,
                                      "wall_s": round(measured.seconds, 1), "cpu_s": round(measured.cpu_seconds, 1),
                                      "peak_rss_mib": round(measured.peak_rss_mib), **result}), flush=True)
                    lines.append((Path(folder).name, name, str(n), f"{result['run_s']:.1f}", f"{measured.seconds:.1f}",
                                  f"{measured.cpu_seconds:.1f}", f"{measured.peak_rss_mib:,.0f}",
                                  f"{result['totals']['would_send']:,}", result["digest"]))
    print(markdown_table(lines))


if __name__ == "__main__":
    main()
