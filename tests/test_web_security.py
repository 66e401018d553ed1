"""The web app's sessions, file modes and request limits (issue #18: 6, 7, 8), against real uvicorn
servers — in a thread, or `kizuna serve` itself — and the real command line."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_web import OPERATOR, TIMEOUT, VIEWER, csrf_of, login, running_server

from kizuna.operations import OPERATIONS_FILE, Operations
from kizuna.web import create_app, hash_password
from kizuna.workspace import Workspace

from servers import free_port

KIZUNA = [sys.executable, "-m", "kizuna"]
STORE = "kizuna.duckdb"


def kizuna(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *args], capture_output=True, text=True, cwd=cwd, input=stdin, timeout=300)


def users_workspace(path: Path) -> Path:
    """An empty workspace (a store without data) with the two users of test_web."""
    Workspace.init(path).close()
    ops = Operations(path / OPERATIONS_FILE)
    ops.add_user(OPERATOR[0], "operator", hash_password(OPERATOR[1]))
    ops.add_user(VIEWER[0], "viewer", hash_password(VIEWER[1]))
    ops.close()
    return path


def logged_in(client: httpx.Client) -> bool:
    """The login page sends a logged-in user on (303) and shows its form to anyone else (200)."""
    status = client.get("/login").status_code
    assert status in (200, 303)
    return status == 303


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    path = users_workspace(tmp_path / "ws")
    with running_server(create_app(path, warm=False, logins_per_minute=10_000)) as url:
        yield path, url


# -- 6: a session ends at logout and at a new password ------------------------------------------------
@pytest.mark.slow
def test_logout_ends_that_session_and_its_copied_cookie_but_not_the_users_other_sessions(app_url):
    _, url = app_url
    with contextlib.closing(login(url, OPERATOR)) as here, contextlib.closing(login(url, OPERATOR)) as elsewhere:
        copied = here.cookies["kizuna_session"]
        assert logged_in(here) and logged_in(elsewhere)
        assert here.post("/logout", data={"csrf": csrf_of(here.get("/").text)}).status_code == 303
        assert not logged_in(here)
        with httpx.Client(base_url=url, timeout=TIMEOUT, cookies={"kizuna_session": copied}) as thief:
            assert thief.get("/").status_code == 303 and not logged_in(thief)  # the old cookie is worthless
        assert logged_in(elsewhere)  # logout ends this browser's session only


@pytest.mark.slow
def test_a_new_password_ends_every_session_of_that_user_at_once(app_url):
    path, url = app_url
    with contextlib.closing(login(url, OPERATOR)) as one, contextlib.closing(login(url, OPERATOR)) as two, \
            contextlib.closing(login(url, VIEWER)) as viewer:
        copied = one.cookies["kizuna_session"]
        done = kizuna("user", "passwd", OPERATOR[0], "--password-stdin", "--dir", str(path), cwd=path.parent,
                      stdin="a brand new password\n")
        assert done.returncode == 0, done.stderr
        assert not logged_in(one) and not logged_in(two)
        with httpx.Client(base_url=url, timeout=TIMEOUT, cookies={"kizuna_session": copied}) as thief:
            assert thief.get("/").status_code == 303
        assert logged_in(viewer)  # another user's session goes on
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        token = csrf_of(client.get("/login").text)
        assert client.post("/login", data={"csrf": token, "name": OPERATOR[0], "password": OPERATOR[1]}
                           ).status_code == 401
    login(url, (OPERATOR[0], "a brand new password")).close()
    for lang, said in (("en", f"error: no user 'nobody' in {path.resolve()}; add one with "
                               "`kizuna user add nobody --role viewer`.\n"),
                       ("ja", f"エラー: {path.resolve()} にユーザー 'nobody' はいません。"
                              "`kizuna user add nobody --role viewer` で追加してください。\n")):
        unknown = kizuna("user", "passwd", "nobody", "--password-stdin", "--dir", str(path), "--lang", lang,
                         cwd=path.parent, stdin="whatever password\n")
        assert (unknown.returncode, unknown.stderr) == (1, said)


@pytest.mark.slow
def test_user_add_again_ends_the_users_sessions_too(app_url):
    path, url = app_url
    with contextlib.closing(login(url, VIEWER)) as viewer:
        done = kizuna("user", "add", VIEWER[0], "--role", "operator", "--password-stdin", "--dir", str(path),
                      cwd=path.parent, stdin=VIEWER[1] + "\n")
        assert done.returncode == 0, done.stderr
        assert not logged_in(viewer)


# -- 7: files with personal data are their user's alone -----------------------------------------------
def _modes(folder: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.mark.slow
def test_the_command_line_creates_every_workspace_file_0600_in_0700_folders(tmp_path: Path):
    os.umask(old := os.umask(0o022))  # the usual umask: files 0644, readable by everyone
    try:
        assert kizuna("init", "ws", cwd=tmp_path).returncode == 0
        (tmp_path / "c.csv").write_text("customer_id,name,email\nC1,佐藤 花子,hanako@example.jp\n"
                                        "C2,鈴木 一郎,ichiro@example.jp\n", encoding="utf-8")
        (tmp_path / "o.csv").write_text("order_id,customer_id,ordered_at,amount\nO1,C1,2026-01-05,1200\n"
                                        "O2,C2,2026-02-05,900\nO3,C1,not a date,100\n", encoding="utf-8")
        for args in (("import", "customers", "c.csv"), ("import", "orders", "o.csv"), ("analyze",)):
            done = kizuna(*args, "--dir", "ws", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        done = kizuna("export", "loyal_candidate", "--dir", "ws", "-o", "ws/exports/list.csv", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        done = kizuna("user", "add", "aiko", "--password-stdin", "--dir", "ws", cwd=tmp_path,
                      stdin="long enough secret\n")
        assert done.returncode == 0, done.stderr
    finally:
        os.umask(old)
    modes = _modes(tmp_path / "ws")
    for name in (STORE, OPERATIONS_FILE, "exports/list.csv"):
        assert modes[name] == 0o600, name
    assert any(name.startswith("rejects/") for name in modes)  # the row with "not a date"
    exposed = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert exposed == {}  # nothing in the workspace for other users: files 0600, folders 0700


def test_the_operational_records_are_created_0600_from_the_library_too(tmp_path: Path):
    os.umask(old := os.umask(0o022))
    try:
        ops = Operations(tmp_path / OPERATIONS_FILE)
        ops.add_user("aiko", "viewer", hash_password("long enough secret"))
        names = [p.name for p in tmp_path.iterdir()]
        assert {OPERATIONS_FILE, OPERATIONS_FILE + "-wal", OPERATIONS_FILE + "-shm"} <= set(names)
        assert {n: stat.S_IMODE((tmp_path / n).stat().st_mode) for n in names} == dict.fromkeys(names, 0o600)
        ops.close()
    finally:
        os.umask(old)


def _serve(path: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([*KIZUNA, "serve", "--dir", str(path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_serve_refuses_to_start_when_other_users_can_read_the_store_or_the_records(tmp_path: Path):
    path = tmp_path / "ws"
    assert kizuna("init", "ws", cwd=tmp_path).returncode == 0
    assert kizuna("user", "add", "aiko", "--password-stdin", "--dir", "ws", cwd=tmp_path,
                  stdin="long enough secret\n").returncode == 0
    for name in (STORE, OPERATIONS_FILE):
        (path / name).chmod(0o644)
        server = _serve(path, free_port())
        out, err = server.communicate(timeout=120)
        assert server.returncode == 1, out + err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path / name) in lines[0] and f"chmod 600 {path / name}" in lines[0], err
        (path / name).chmod(0o600)
    port = free_port()
    server = _serve(path, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=TIMEOUT).status_code == 200
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()
                time.sleep(0.2)
    finally:
        server.terminate()
        server.communicate(timeout=30)


# -- 8: request bodies are limited before they are parsed -------------------------------------------
def _raw_request(port: int, head: bytes, body: Iterator[bytes], *, wait: float = 15) -> tuple[bytes, int]:
    """Send `head`, then `body` in 16 KiB pieces until the server answers; (its answer, body bytes sent).

    Between pieces it looks for an answer (waiting 10 ms while the first MiB goes), so that an
    answer before the end of the body is read before the server closes the connection.
    """
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head)
        for chunk in body:
            for at in range(0, len(chunk), 16 * 1024):
                if select.select([sock], [], [], 0.01 if sent < 1024 * 1024 else 0)[0]:
                    break
                try:
                    sock.sendall(chunk[at:at + 16 * 1024])
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk[at:at + 16 * 1024])
            else:
                continue
            break
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while b"\r\n\r\n" not in answer:
                more = sock.recv(4096)
                if not more:
                    break
                answer += more
    return answer, sent


def _multipart_fields(fields: int, size: int, boundary: bytes = b"xyz") -> Iterator[bytes]:
    value = b"a" * size
    for n in range(fields):
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n' % n + value + b"\r\n"
    yield b"--" + boundary + b"--\r\n"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _settled_rss_kib(pid: int) -> int:
    """The resident memory once the server's start-up work (warming its figures) is over."""
    readings = [_rss_kib(pid)]
    deadline = time.monotonic() + 60
    while len(readings) < 5 or max(readings[-5:]) - min(readings[-5:]) > 1024:
        assert time.monotonic() < deadline, readings
        time.sleep(0.5)
        readings.append(_rss_kib(pid))
    return readings[-1]


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """`kizuna serve` on a new, empty workspace: its port and process."""
    assert kizuna("init", "ws", cwd=tmp_path).returncode == 0
    port = free_port()
    server = _serve(tmp_path / "ws", port)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=TIMEOUT)
            break
        except httpx.TransportError:
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            time.sleep(0.2)
    try:
        yield port, server
    finally:
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.slow
def test_an_oversized_login_is_refused_with_413_before_its_body_is_read(serve_process):
    port, server = serve_process
    before = _settled_rss_kib(server.pid)
    # the report's request: 990 fields of 1 MB each, announced by its Content-Length; 16 KiB of it sent
    length = sum(len(c) for c in _multipart_fields(990, 1_000_000))
    head = (b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
            b"Content-Length: %d\r\n\r\n" % length)
    answer, _ = _raw_request(port, head, iter([next(_multipart_fields(1, 16 * 1024 - 100))]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]  # answered without waiting for the rest
    # 100 fields of 1 MB without a Content-Length (chunked): cut off at the limit as it arrives
    head = (b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunked = [b"%x\r\n%s\r\n" % (len(c), c) for c in _multipart_fields(100, 1_000_000)] + [b"0\r\n\r\n"]
    answer, sent = _raw_request(port, head, iter(chunked))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 1024 * 1024  # answered as soon as the body went past 64 KiB
    assert _rss_kib(server.pid) - before < 16 * 1024  # KiB: the server kept none of it


@pytest.mark.slow
def test_a_form_with_too_many_fields_is_400_and_a_large_one_413(app_url):
    _, url = app_url
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        token = csrf_of(client.get("/login").text)
        fields = {"csrf": token, "name": OPERATOR[0], "password": OPERATOR[1], **{f"x{n}": "1" for n in range(100)}}
        assert client.post("/login", data=fields).status_code == 400
        large = client.post("/login", data={"csrf": token, "name": OPERATOR[0], "password": "p" * 70_000})
        assert large.status_code == 413 and large.headers["x-frame-options"] == "DENY"
        assert not logged_in(client)
        assert client.post("/login", data={"csrf": token, "name": OPERATOR[0], "password": OPERATOR[1]}
                           ).status_code == 303


@pytest.mark.slow
def test_the_line_webhook_takes_a_larger_body_than_forms_up_to_its_own_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("KIZUNA_LINE_SECRET", "line-channel-secret-for-tests")
    path = users_workspace(tmp_path / "ws")
    with running_server(create_app(path, warm=False)) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        headers = {"x-line-signature": "bad", "content-type": "application/json"}
        assert http.post("/line/webhook", content=b" " * 200_000, headers=headers).status_code == 401
        assert http.post("/line/webhook", content=b" " * 2_000_000, headers=headers).status_code == 413
