"""Measuring one command in its own process: wall time, CPU time and peak RSS of that process alone.

Shared by the benchmarks. Peak RSS and CPU come from ``/usr/bin/time -v`` (method "time") or,
where it is missing, from ``getrusage`` in a wrapper process whose only child is the command
(method "rusage"); both gave the same figures here.

The command runs as on a user's machine, where Python keeps the compiled modules (``__pycache__``):
this machine's shell sets ``PYTHONDONTWRITEBYTECODE``, which made every measured process compile
kizuna's modules again (a few tenths of a second of its start). The variable is dropped for the
command, and the kizuna packages it can load (the installed one, and any folder an ``env
PYTHONPATH=DIR`` in front of the command puts first) are compiled once before the first run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LIFETIMES_PACKAGES", "LIFETIMES_VENV", "TIME", "Measured", "default_method", "ensure_lifetimes_venv",
    "markdown_table", "memory_gib", "run_measured", "size_label",
]

TIME = "/usr/bin/time"

# Runs `argv` and writes {"maxrss_kib": ..., "cpu_s": ...} of that child alone to the file named first.
RUSAGE_WRAPPER = """
import json, resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"maxrss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}, f)
sys.exit(code)
"""


@dataclass
class Measured:
    seconds: float  # wall clock, from here
    cpu_seconds: float  # user + system of the process
    peak_rss_mib: float
    stdout: str


def default_method() -> str:
    return "time" if os.access(TIME, os.X_OK) else "rusage"


_compiled: set[str] = set()


def _compile_kizuna(argv: list[str]) -> None:
    """Write the bytecode of every kizuna package `argv` may load, once per folder."""
    import compileall

    import kizuna

    folders = [Path(kizuna.__file__).resolve().parent]
    for word in argv[1:] if argv and Path(argv[0]).name == "env" else []:
        if word.startswith("PYTHONPATH="):
            folders += [Path(p) / "kizuna" for p in word.removeprefix("PYTHONPATH=").split(os.pathsep) if p]
    for folder in folders:
        if folder.is_dir() and str(folder) not in _compiled:
            compileall.compile_dir(folder, quiet=1)
            _compiled.add(str(folder))


def run_measured(tool: str, argv: list[str], scratch: Path, method: str) -> Measured:
    """Run `argv` to completion; stop the benchmark with the command's output if it fails."""
    _compile_kizuna(argv)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    report = scratch / f"rss-{re.sub(r'[^a-z0-9]+', '-', tool.lower()).strip('-')}.txt"
    if method == "time":
        wrapped = [TIME, "-v", "-o", str(report), *argv]
    else:
        wrapped = [sys.executable, "-c", RUSAGE_WRAPPER, str(report), *argv]
    start = time.perf_counter()
    done = subprocess.run(wrapped, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{tool} failed ({done.returncode}): {' '.join(argv)}")
    text = report.read_text()
    if method == "time":
        def field_of(name: str) -> str:
            return re.search(rf"{re.escape(name)}: ([0-9.]+)", text).group(1)

        kib = int(field_of("Maximum resident set size (kbytes)"))
        cpu = float(field_of("User time (seconds)")) + float(field_of("System time (seconds)"))
    else:
        usage = json.loads(text)
        kib, cpu = usage["maxrss_kib"], usage["cpu_s"]
    return Measured(seconds, cpu, kib / 1024, done.stdout)


def size_label(orders: int) -> str:
    """10_000_000 -> "10m": the name of a data size's folder."""
    for unit, suffix in ((1_000_000_000, "g"), (1_000_000, "m"), (1_000, "k")):
        if orders >= unit and orders % unit == 0:
            return f"{orders // unit}{suffix}"
    return str(orders)


def memory_gib() -> float:
    """The machine's RAM, for the heading of a figures table."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def markdown_table(lines: list[tuple[str, ...]]) -> str:
    """A Markdown table: the first line is the header, the first column left-aligned, the rest right."""
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    out = []
    for n, row in enumerate(lines):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        out.append("| " + " | ".join(cells) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                                      for i, w in enumerate(widths)) + "|")
    return "\n".join(out)


# lifetimes (the reference of the model benchmarks) needs pandas < 3 and setuptools < 82 (it imports
# pkg_resources): it gets a venv of its own, made once, beside these scripts.
LIFETIMES_VENV = Path(__file__).resolve().parent / ".venv-lifetimes"
LIFETIMES_PACKAGES = ["lifetimes==0.11.3", "pandas<3", "setuptools<82", "pyarrow"]


def ensure_lifetimes_venv(create: bool) -> Path | None:
    python = LIFETIMES_VENV / "bin" / "python"
    if python.exists():
        return python
    if not create:
        return None
    print(f"making {LIFETIMES_VENV} (python3.11 -m venv; pip install {' '.join(LIFETIMES_PACKAGES)}) …",
          file=sys.stderr)
    base = shutil.which("python3.11") or sys.executable
    subprocess.run([base, "-m", "venv", str(LIFETIMES_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *LIFETIMES_PACKAGES], check=True)
    return python
