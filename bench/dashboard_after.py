"""The first dashboard after a new analysis, with `kizuna serve` running (issue 24 item 2).

    python bench/dashboard_after.py --dir /path/to/demo-ws                 # analyze, 3 rounds
    python bench/dashboard_after.py --dir /path/to/demo-ws --steps analyze predict --repeat 2

A user's Monday: the web app is up, cron (or the user) runs `kizuna analyze` on the store the app reads,
and the next visitor opens the dashboard. The server is the real command, `kizuna serve`, in its own
process; a user is added and logged in through the login form (`bench/web.py`'s helpers). Each round runs
the steps (`kizuna analyze`, then `kizuna predict` if asked) as commands of their own beside the running
server, then times the dashboard's requests until one answers 200 with the new analysis' figures (the
app's "updating" notice absent: `analyze` stored the figures, the app reads them once per store version).
Also printed: the first dashboard after the server started (the app's modules loaded by the first
computation). The workspace is written to (`analyze` and `predict` store their tables): use a copy.
Target (issue 24): the first dashboard after a new analysis at 1M customers under 1 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web import KIZUNA, free_port, login  # noqa: E402

from kizuna.i18n import LANGS, text  # noqa: E402

# the notice the app shows while it reads the figures of a store version it has not read yet
UPDATING = tuple(text("updating", lang) for lang in LANGS)


def first_fresh_dashboard(base: str, cookie: str) -> tuple[float, int]:
    """Seconds until the dashboard answers 200 without the "updating" notice, and the requests it took."""
    started = time.monotonic()
    requests = 0
    with httpx.Client(base_url=base, timeout=600, cookies={"kizuna_session": cookie}) as client:
        while True:
            answer = client.get("/")
            requests += 1
            if answer.status_code == 200 and not any(notice in answer.text for notice in UPDATING):
                return time.monotonic() - started, requests
            assert answer.status_code in (200, 202, 503), (answer.status_code, answer.text[-500:])
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="an analysed demo workspace (a copy: it is written)")
    parser.add_argument("--steps", nargs="+", default=["analyze"], choices=("analyze", "predict"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    user, password = "bench", "bench-password-123"
    subprocess.run([*KIZUNA, "user", "add", user, "--role", "operator", "--password-stdin", "--dir", str(args.dir)],
                   input=password + "\n", text=True, check=True, capture_output=True)
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115  (the server's log: a pipe nobody read would fill, stop it)
    server = subprocess.Popen([*KIZUNA, "serve", "--dir", str(args.dir), "--port", str(port)], stdout=log,
                              stderr=log)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, object] = {"workspace": str(args.dir), "steps": args.steps, "rounds": []}
    try:
        started = time.monotonic()
        while True:
            try:
                httpx.get(base + "/login", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() - started < 120, "kizuna serve did not start"
                time.sleep(0.05)
        answering = time.monotonic() - started
        cookie = login(base, user, password)
        after_start, _ = first_fresh_dashboard(base, cookie)
        print(f"server answering {answering:.2f} s after its start; "
              f"first dashboard after the start {after_start:.2f} s")
        results.update(server_answering_s=round(answering, 2), first_after_start_s=round(after_start, 2))
        for round_number in range(1, args.repeat + 1):
            steps = {}
            for step in args.steps:
                began = time.monotonic()
                subprocess.run([*KIZUNA, step, "--dir", str(args.dir)], check=True, stdout=subprocess.DEVNULL)
                steps[step] = round(time.monotonic() - began, 1)
            first, requests = first_fresh_dashboard(base, cookie)
            began = time.monotonic()
            httpx.get(base + "/", cookies={"kizuna_session": cookie}, timeout=600)
            second = time.monotonic() - began
            print(f"round {round_number}: " + ", ".join(f"kizuna {s} {t} s" for s, t in steps.items()) +
                  f"; first dashboard after it {first:.3f} s ({requests} request(s)), the next {second:.3f} s")
            results["rounds"].append({"steps_s": steps, "first_dashboard_s": round(first, 3),
                                      "requests": requests, "next_dashboard_s": round(second, 3)})
    finally:
        server.terminate()
        server.wait(60)
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main()
