"""Fixtures: a real PostGIS database migrated from empty, and a rolled-back transaction per test.

The database is ``TEST_DATABASE_URL`` when set; otherwise a fresh ``gridatlas_test`` database in
the project's embedded cluster (started on demand), dropped and recreated at every session.

Tests of concurrency cannot share one rolled-back connection: it never commits and never waits
on a row lock. ``committed_app`` serves them from a database of their own,
``<TEST_DB_NAME>_commit`` (or ``COMMIT_DATABASE_URL``), where every request checks out a pooled
connection of its own and really commits; its data tables are emptied before each test.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app import create_app
from geo.db import SessionReads, make_engine
from geo.migrate import upgrade
from outages.settler import Service
from tests.accounts import add_role_accounts

# The tests book, sign in and fuzz from one address far faster than any customer: rate limits
# would refuse them. Apps made by the tests (and the e2e server, which inherits the environment)
# take these; tests/integration/test_access.py checks the limits themselves with low ones.
os.environ.setdefault("LOGIN_RATE_LIMIT", "100000 per minute")
os.environ.setdefault("PUBLIC_WRITE_RATE_LIMIT", "100000 per minute")
os.environ.setdefault("PUBLIC_LOOKUP_RATE_LIMIT", "100000 per minute")

# Tables ``empty_tables`` keeps: the migration marker, PostGIS's catalogue, single-row state tables.
KEPT_TABLES = {"alembic_version", "spatial_ref_sys", "topology_state", "grid_cell_revision"}


def _test_database_url(url_variable: str = "TEST_DATABASE_URL", suffix: str = "") -> str:
    """``$url_variable``, or a fresh ``<TEST_DB_NAME><suffix>`` database in the embedded cluster."""
    url = os.environ.get(url_variable)
    if url:
        return url
    from geo.cluster import default_cluster

    cluster = default_cluster()
    # Several checkouts may share one cluster; TEST_DB_NAME keeps their test databases apart, and
    # the worker's name those of the parallel workers of one run (make test: pytest -n).
    name = os.environ.get("TEST_DB_NAME", "gridatlas_test") + suffix
    if os.environ.get("PYTEST_XDIST_WORKER"):
        name += "_" + os.environ["PYTEST_XDIST_WORKER"]
    with _one_at_a_time():
        cluster.ensure()
        cluster.create_database(name, drop_first=True)
    return cluster.url(name)


@contextlib.contextmanager
def _one_at_a_time():
    """Parallel workers start together: one at a time may create and start the cluster (two would
    both run initdb) and create a database (CREATE DATABASE copies template1, and refuses while
    another backend is connected to it, as a second CREATE DATABASE is)."""
    with open(Path(tempfile.gettempdir()) / f"gridatlas-tests-{os.getuid()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def database_url() -> str:
    """The URL of an empty test database brought to the migration head."""
    url = _test_database_url()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def engine(database_url):
    """The engine of the test database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def connection(engine):
    """A connection inside a transaction rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture()
def session(connection):
    """An ORM session bound to the rolled-back connection; commits become savepoints."""
    with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as session:
        yield session


@pytest.fixture()
def app(engine, connection, monkeypatch):
    """The app on the test database; every request shares the test's rolled-back connection."""
    # Reports are settled in the request: a settler thread may not share the test's connection.
    application = create_app({"TESTING": True, "DATABASE_URL": str(engine.url.render_as_string(False)),
                              "ENGINE": engine, "BASEMAP_URL": "none", "OUTAGE_SETTLE_IN_BACKGROUND": False})
    from sqlalchemy.orm import sessionmaker

    application.extensions["sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    application.extensions["test_connection"] = connection
    add_role_accounts(connection)
    # Reads go through the same connection, so that they see what the test wrote.
    application.extensions["reads"] = SessionReads()
    return application


@pytest.fixture()
def client(app):
    """A test client of ``app``."""
    return app.test_client()


@pytest.fixture()
def runner(app):
    """A CLI runner of ``app``."""
    return app.test_cli_runner()


def empty_tables(engine: Engine) -> None:
    """Commit an empty database: every data table truncated, and the topology version bumped so
    that cached topologies are rebuilt."""
    with engine.begin() as connection:
        tables = set(connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars())
        emptied = sorted(tables - KEPT_TABLES)
        if emptied:
            connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in emptied) + " RESTART IDENTITY CASCADE"))
        if "topology_state" in tables:
            connection.execute(text("UPDATE topology_state SET version = version + 1, changed_at = now()"))


@pytest.fixture(scope="session")
def committed_engine():
    """The engine of the committed database (see the module docstring), migrated to the head."""
    engine = make_engine(_test_database_url("COMMIT_DATABASE_URL", suffix="_commit"), pool_size=8)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _committed_app(committed_engine):
    """One app on the committed database for the session (its pools outlive a test)."""
    application = create_app({"TESTING": True, "DATABASE_URL": committed_engine.url.render_as_string(False),
                              "ENGINE": committed_engine, "BASEMAP_URL": "none"})
    yield application
    application.extensions["reads"].close()  # the threads' read connections, and their pool


@pytest.fixture()
def committed_app(_committed_app, committed_engine):
    """The app on the committed database, emptied: requests commit for real, and concurrent ones
    meet each other's row locks. Give each thread its own ``committed_app.test_client()``.
    Reports are settled after their answer by a settler in this process, as production's
    settler process does; it runs for the test only (emptying the tables under it could deadlock)."""
    empty_tables(committed_engine)
    with committed_engine.begin() as connection:
        add_role_accounts(connection)
    settler = Service.of(_committed_app).start()
    yield _committed_app
    settler.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis of the tests' own: ``redis-server`` (installed by ``make test``) started on a free
    port for the session; ``TEST_REDIS_URL`` names one instead."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    import shutil
    import socket
    import subprocess
    import time

    server = shutil.which("redis-server")
    assert server is not None, "no redis-server: `make test` installs Debian's redis-server (or set TEST_REDIS_URL)"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
