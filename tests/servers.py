"""Throwaway servers for the tests: a PostgreSQL cluster and a local Spark session.

PostgreSQL runs from Debian's binaries (``.ci/install-system.sh`` installs them) in a
temporary folder, listening on 127.0.0.1 only, and is removed afterwards. PostgreSQL
refuses to run as root, so as root the cluster belongs to a system user of its own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

__all__ = [
    "PG_SYSTEM_USER", "PostgresServer", "ServerUnavailable", "check_java", "find_postgres_bindir",
    "free_port", "postgres_server", "spark_submit_args", "unavailable",
]

PG_SYSTEM_USER = "kizuna-pg"
_PG_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_HOW_TO_INSTALL = (
    "Run `bash .ci/run` (it calls .ci/install-system.sh, as root) to install the PostgreSQL 15 "
    "server and Java 17 the tests need."
)


class ServerUnavailable(RuntimeError):
    """A server the tests need cannot be started on this machine."""


def unavailable(message: str) -> NoReturn:
    """Stop a test whose server or browser is missing: a failure in CI, a skip elsewhere.

    CI (``CI=true``, as `.ci/run` runs there) installs everything, so a green run there must mean
    PostgreSQL, Spark and Chromium were tested; a contributor without root still gets the fast
    tests (``pytest -m "not postgres and not spark and not browser"`` or simply all of them).
    """
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def find_postgres_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres (Debian keeps them off the PATH)."""
    candidates: list[str] = []
    if os.environ.get("KIZUNA_PG_BINDIR"):
        candidates.append(os.environ["KIZUNA_PG_BINDIR"])
    if pg_config := shutil.which("pg_config"):
        # libpq-dev's pg_config also answers when only the client is installed: check the folder.
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).resolve().parent))
    for folder in candidates:
        if all((Path(folder) / program).is_file() for program in _PG_PROGRAMS):
            return Path(folder)
    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
        f"{', '.join(candidates) or '/usr/lib/postgresql/*/bin'}. {_HOW_TO_INSTALL}"
    )


def _major_version(folder: str) -> int:
    match = re.search(r"/postgresql/(\d+)/", folder)
    return int(match.group(1)) if match else 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(url: str, server: subprocess.Popen, log: Path, *, deadline: float) -> None:
    """Wait until `url` answers HTTP (a server `server` started, writing to `log`); fails with the log when
    the server ends first or `deadline` (time.monotonic()) passes."""
    import httpx

    while True:
        try:
            httpx.get(url, timeout=5.0)
            return
        except httpx.TransportError:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


def _system_user() -> pwd.struct_passwd | None:
    """The unprivileged user that owns the cluster when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(PG_SYSTEM_USER)
    result = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
        capture_output=True, text=True,
    )
    # 9 = the user appeared meanwhile (another test session created it): fine.
    if result.returncode not in (0, 9):
        raise ServerUnavailable(f"cannot create the system user {PG_SYSTEM_USER}: {result.stderr.strip()}")
    return pwd.getpwnam(PG_SYSTEM_USER)


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in `root`, reached over TCP with a password."""

    bindir: Path
    root: Path
    port: int
    user: str = "kizuna"
    password: str = "kizuna"
    database: str = "kizuna"
    owner: pwd.struct_passwd | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGDATA/PGPORT
        env.update(LC_ALL="C", LANG="C")
        kwargs = {}
        if self.owner is not None:
            kwargs = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bindir / program), *args], cwd=self.root, env=env, capture_output=True,
            text=True, timeout=timeout, **kwargs,
        )

    def _check(self, result: subprocess.CompletedProcess, what: str) -> None:
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise ServerUnavailable(
                f"PostgreSQL {what} failed ({result.returncode}): {result.stderr.strip()}\n{log}"
            )

    def init(self) -> None:
        """initdb with a password for TCP logins, UTF-8, and settings for a fast throwaway server."""
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.owner is not None:
            for path in (self.root, pwfile):
                os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        self._check(self._run(
            "initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale",
            "--no-sync", "--no-instructions",
        ), "initdb")
        pwfile.unlink()

    def configure(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # Durability is worthless for a throwaway cluster; speed is not.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "40",
            "shared_buffers": "64MB",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# kizuna tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        self._check(self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"),
                    "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password,
            dbname="postgres", autocommit=True, connect_timeout=10,
        ) as con:
            con.execute(f'CREATE DATABASE "{self.database}"')


@contextlib.contextmanager
def postgres_server(attempts: int = 3) -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL cluster; yield it; stop it and remove its files.

    Another process may take the free port between our look and the server's bind:
    then we retry on a new port.
    """
    bindir = find_postgres_bindir()
    owner = _system_user()
    root = Path(tempfile.mkdtemp(prefix="kizuna-pg-"))
    server: PostgresServer | None = None
    try:
        server = PostgresServer(bindir, root, free_port(), owner=owner)
        server.init()
        for attempt in range(attempts):
            server.configure()
            try:
                server.start()
                break
            except ServerUnavailable as exc:
                if attempt == attempts - 1 or "already in use" not in str(exc):
                    raise
                server.port = free_port()
                time.sleep(0.2)
        server.create_database()
        yield server
    finally:
        if server is not None and (server.data / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def spark_submit_args(warehouse: Path, jvm_timezone: str, current: str | None = None) -> str:
    """PYSPARK_SUBMIT_ARGS for a test session: managed tables in `warehouse`, the JVM in `jvm_timezone`.

    Spark's default warehouse is ./spark-warehouse in the current folder: tables would
    land in the repository, and their leftovers make the next session's CREATE TABLE fail
    (the in-memory catalog forgets the tables, the folders stay).
    """
    return (
        f"--conf spark.sql.warehouse.dir={shlex.quote(str(warehouse))} "
        f"--driver-java-options -Duser.timezone={shlex.quote(jvm_timezone)} {current or 'pyspark-shell'}"
    )


def check_java() -> None:
    """Spark needs a Java runtime: say how to get one instead of a Py4J stack trace."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ServerUnavailable(f"Java not found (Spark needs Java 17). {_HOW_TO_INSTALL}")
