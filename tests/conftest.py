"""Shared fixtures: a real PostgreSQL server and a real local Spark session, one each per test run.

Each test gets a database of its own on them (`postgres_database`, `spark_store`), so tests
never see each other's tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from servers import ServerUnavailable, check_java, postgres_server, spark_submit_args, unavailable

_MARK_BY_FIXTURE = {
    "postgres_url": "postgres",
    "postgres_database": "postgres",
    "spark_backend": "spark",
    "spark_store": "spark",
    "browser": "browser",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a server's fixture, so `-m "not postgres"` leaves it out too."""
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            mark = _MARK_BY_FIXTURE.get(fixture)
            if mark and not item.get_closest_marker(mark):
                item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL 15 database on 127.0.0.1 (~1 s to start), removed afterwards.

    Missing binaries skip the tests that need them on a contributor's machine and fail them in
    CI, where a green run must mean PostgreSQL was tested (`servers.unavailable`).
    """
    try:
        with postgres_server() as server:
            yield server.url
    except ServerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """URL of a new, empty database on the test server, dropped after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # even if a test left a connection open


@pytest.fixture(scope="session")
def spark_backend(tmp_path_factory: pytest.TempPathFactory):
    """An Ibis PySpark backend on the process' one local Spark session (local[2], ~10 s to start).

    The driver JVM runs in Asia/Tokyo, like our users' machines, so code that leans on the
    JVM's default time zone instead of the session's (UTC, set by Ibis) shows up here.
    """
    try:
        check_java()
    except ServerUnavailable as exc:
        unavailable(str(exc))
    import ibis

    from kizuna.store import local_spark_session

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # never bind the machine's other addresses
    # Managed tables go to a temporary warehouse, not ./spark-warehouse in the repository.
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    submit_args = os.environ.get("PYSPARK_SUBMIT_ARGS")
    os.environ["PYSPARK_SUBMIT_ARGS"] = spark_submit_args(warehouse, "Asia/Tokyo", submit_args)
    try:
        session = local_spark_session()
    finally:
        if submit_args is None:
            del os.environ["PYSPARK_SUBMIT_ARGS"]
        else:
            os.environ["PYSPARK_SUBMIT_ARGS"] = submit_args
    yield ibis.pyspark.connect(session)
    session.stop()


@pytest.fixture
def spark_store(spark_backend):
    """A `Store` on a new, empty Spark database (made current), dropped after the test."""
    from kizuna.store import Store

    name = f"t_{uuid.uuid4().hex[:12]}"
    catalog = spark_backend._session.catalog
    spark_backend.create_database(name)
    catalog.setCurrentDatabase(name)
    try:
        yield Store.from_backend(spark_backend)
    finally:
        catalog.setCurrentDatabase("default")
        spark_backend.drop_database(name, force=True)
