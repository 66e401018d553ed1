"""`kizuna serve --workers N`: several server processes on one port, each with its own app, sharing
what must be shared through the operational records (sessions, the login limit), on both engines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_web import TIMEOUT, csrf_of

from kizuna.operations import Operations

from servers import free_port, wait_until_answering

KIZUNA = [sys.executable, "-m", "kizuna"]
PASSWORD = "long enough secret"


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the records are: a SQLite file, or a new PostgreSQL database."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database")
    return str(tmp_path / "kizuna-ops.sqlite3")


def test_failed_logins_are_counted_in_the_records_for_every_process(location: str):
    first, second = Operations(location), Operations(location)  # as two server processes open them
    try:
        assert first.login_wait("192.0.2.1", 3, at=100.0) == 0.0
        for at, ops in ((100.0, first), (110.0, second), (120.0, first)):
            ops.record_login_failure("192.0.2.1", at=at)
        # three failures in the last minute, whichever process counted them: both refuse until the first leaves it
        assert second.login_wait("192.0.2.1", 3, at=125.0) == pytest.approx(35.0)
        assert first.login_wait("192.0.2.1", 3, at=125.0) == pytest.approx(35.0)
        assert first.login_wait("192.0.2.1", 4, at=125.0) == 0.0  # a higher limit: not reached
        assert second.login_wait("198.51.100.7", 3, at=125.0) == 0.0  # per client address
        assert first.login_wait("192.0.2.1", 3, at=160.5) == 0.0  # the failure at 100 is over a minute old
        second.record_login_failure("198.51.100.7", at=300.0)  # a later failure deletes the old rows
        assert [tuple(r) for r in first.query("SELECT client, at_ts FROM login_failures")] == [("198.51.100.7", 300.0)]
    finally:
        first.close()
        second.close()


def workspace(tmp_path: Path) -> Path:
    for args in (("init", "ws"), ("user", "add", "aiko", "--password-stdin", "--dir", "ws")):
        done = subprocess.run([*KIZUNA, *args], capture_output=True, text=True, cwd=tmp_path, input=PASSWORD + "\n",
                              timeout=300)
        assert done.returncode == 0, done.stderr
    return tmp_path / "ws"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, list[int], Path]]:
    """`kizuna serve --workers 2` on a new workspace: its URL, its workers' pids, its log."""
    path = workspace(tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen([*KIZUNA, "serve", "--dir", str(path), "--port", str(port), "--workers", "2"],
                                  stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while len(started := re.findall(r"Started server process \[(\d+)\]", log.read_text())) < 2:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        wait_until_answering(base + "/login", server, log, deadline=deadline)
        workers = [int(p) for p in started]
        assert sorted(workers) == sorted(p for p in children(server.pid) if p in workers)
        yield base, workers, log
    finally:
        server.terminate()
        server.wait(60)


def failed_login(base: str) -> int:
    """One wrong password on a new connection (which either worker may accept): the status."""
    with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        token = csrf_of(client.get("/login").text)
        return client.post("/login", data={"csrf": token, "name": "aiko", "password": "wrong"}).status_code


@pytest.mark.slow
def test_two_worker_processes_serve_and_share_sessions_and_the_login_limit(two_workers):
    base, workers, _ = two_workers
    assert len(set(workers)) == 2
    with httpx.Client(base_url=base, timeout=TIMEOUT) as client:  # logged in while both serve
        token = csrf_of(client.get("/login").text)
        assert client.post("/login", data={"csrf": token, "name": "aiko", "password": PASSWORD}).status_code == 303
        cookie = client.cookies["kizuna_session"]
    codes = []
    # each worker alone in turn (the other stopped — briefly: uvicorn replaces a worker that misses its
    # health check for 5 s): each answers, takes the other's session and counts one failed login
    for stopped in workers:
        os.kill(stopped, signal.SIGSTOP)
        try:
            with httpx.Client(base_url=base, timeout=TIMEOUT, cookies={"kizuna_session": cookie}) as client:
                assert client.get("/").status_code == 200  # the session made by either worker
            codes.append(failed_login(base))
        finally:
            os.kill(stopped, signal.SIGCONT)
    codes += [failed_login(base) for _ in range(8)]
    assert codes == [401] * 10
    # the eleventh, whichever worker takes it: neither has seen ten of them alone (the default limit:
    # 10 a minute), so both count where the other sees them
    assert failed_login(base) == 429
