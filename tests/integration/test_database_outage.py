"""PostgreSQL stopped for a few seconds under a burst of bookings, switching and reads.

The app is served over real HTTP from a throwaway cluster of this module's own (the shared one
is never stopped). While the database is down every request that needs it answers 503
problem+json with ``Retry-After``, never 500; once PostgreSQL is back the same app serves again
without a restart, and every booking and switching it acknowledged is in the database.
"""
from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import os

import pytest
import requests
from sqlalchemy import exc, text
from werkzeug.serving import make_server

from app import create_app
from geo.auth import PUBLIC, allow
from geo.cluster import PG_BIN, Cluster
from geo.db import get_session, make_engine
from geo.errors import database_unavailable
from geo.migrate import upgrade
from tests.accounts import HEADERS, add_role_accounts
from tests.networks import protected_feeder
from tests.outlet_data import add_outlet, days_ahead, local
from topology.loader import load_network

CLIENTS = 6
BEFORE_S, DOWN_S, AFTER_S = 2.0, 5.0, 4.0
SLOTS = 8  # billing slots booked round-robin, 1,000 places each: never full
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Answer:
    """One request of the burst and what it got."""

    kind: str
    sent: float
    status: int
    mimetype: str
    retry_after: str | None
    body: dict | None
    key: str | None = None


@pytest.fixture(scope="module")
def outage_cluster():
    """A cluster of this module's own, in a folder the postgres user can traverse, removed afterwards."""
    # make test installs PostgreSQL for the embedded cluster: missing binaries are a broken install,
    # unless the tests were pointed at another database (TEST_DATABASE_URL) on a machine without them.
    if not (PG_BIN / "initdb").exists():
        assert os.environ.get("TEST_DATABASE_URL"), f"no PostgreSQL binaries in {PG_BIN}: run make test"
        pytest.skip(f"no PostgreSQL binaries in {PG_BIN}, and the tests use TEST_DATABASE_URL")
    folder = Path(tempfile.mkdtemp(prefix="gridatlas-outage-", dir="/var/tmp"))
    folder.chmod(0o755)
    cluster = Cluster(folder / "postgres", database="gridatlas_outage")
    try:
        cluster.ensure()
        yield cluster
    finally:
        cluster.remove()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def served(outage_cluster):
    """The app on the cluster, served with threads over HTTP; (base URL, engine)."""
    url = outage_cluster.url()
    engine = make_engine(url, pool_size=4)
    upgrade(engine)
    with engine.begin() as connection:
        load_network(connection, protected_feeder())
        add_outlet(connection, "BURST", hours="24/7", services={"billing": 1000})
        add_role_accounts(connection)  # switching and traces are sent as the test dispatcher
    app = create_app({"DATABASE_URL": url, "ENGINE": engine, "BASEMAP_URL": "none"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="outage-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", engine
    server.shutdown()
    thread.join(timeout=10)
    app.extensions["reads"].close()
    engine.dispose()


def _requests(base: str, client: int, day) -> itertools.cycle:
    """The requests one client sends in turn: a booking, a switching, two reads."""
    serial = itertools.count()

    def booking(http: requests.Session) -> tuple[requests.Response, str]:
        number = next(serial)
        key = f"outage-{client}-{number}"
        start = local(day, 8 + number % SLOTS)
        body = {"outlet": "BURST", "service": "billing", "start": start.isoformat(), "name": f"Customer {key}",
                "phone": "0721 1234567", "idempotency_key": key}
        return http.post(f"{base}/api/bookings", json=body, timeout=15), key

    actions = itertools.cycle(["open", "close"] if client % 2 else ["close", "open"])

    def switching(http: requests.Session) -> tuple[requests.Response, None]:
        body = {"operations": [{"device": "SW2", "action": next(actions)}], "reason": "outage test"}
        return http.post(f"{base}/api/switching", json=body, headers=HEADERS["dispatcher"], timeout=15), None

    def slots(http: requests.Session) -> tuple[requests.Response, None]:
        return http.get(f"{base}/api/outlets/BURST/slots", params={"date": day.isoformat()}, timeout=15), None

    def trace(http: requests.Session) -> tuple[requests.Response, None]:
        return http.get(f"{base}/api/trace/downstream/R1", headers=HEADERS["dispatcher"], timeout=15), None

    return itertools.cycle([("booking", booking), ("switching", switching), ("slots", slots), ("trace", trace)])


def _client(base: str, client: int, day, stop: threading.Event, t0: float) -> list[Answer]:
    """Send requests until ``stop``; every answer, with when it was sent."""
    answers = []
    with requests.Session() as http:
        for kind, send in _requests(base, client, day):
            if stop.is_set():
                return answers
            sent = time.monotonic() - t0
            response, key = send(http)
            json_body = response.json() if response.headers.get("Content-Type", "").endswith("json") else None
            answers.append(Answer(kind, sent, response.status_code, response.headers.get("Content-Type", ""),
                                  response.headers.get("Retry-After"), json_body, key))
            if response.status_code == 503:
                time.sleep(0.05)  # a client backing off a little, so the burst does not spin the CPUs


def _burst(base: str, cluster: Cluster, day) -> tuple[list[Answer], float, float]:
    """The burst with the database stopped in its middle; (answers, stopped at, started again at)."""
    stop, t0 = threading.Event(), time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(_client, base, i, day, stop, t0) for i in range(CLIENTS)]
        try:
            time.sleep(BEFORE_S)
            assert cluster.stop() is True
            stopped = time.monotonic() - t0
            health = requests.get(f"{base}/healthz", timeout=15)
            time.sleep(DOWN_S)
            cluster.start()
            started = time.monotonic() - t0
            time.sleep(AFTER_S)
        finally:
            stop.set()
        answers = [answer for future in futures for answer in future.result()]
    assert health.status_code == 503, health.text
    return answers, stopped, started


def test_a_stopped_database_answers_503_and_the_service_recovers_keeping_what_it_acknowledged(served, outage_cluster):
    base, engine = served
    answers, stopped, started = _burst(base, outage_cluster, days_ahead(1))

    # Nothing but the expected answers: no 500, and every failure a 503 problem+json with Retry-After.
    expected = {"booking": {201, 503}, "switching": {201, 409, 503}, "slots": {200, 503}, "trace": {200, 503}}
    unexpected = [a for a in answers if a.status not in expected[a.kind]]
    assert not unexpected, unexpected[:5]
    unavailable = [a for a in answers if a.status == 503]
    assert unavailable, "the outage was not seen"
    assert all(a.mimetype == PROBLEM and a.retry_after and int(a.retry_after) > 0 for a in unavailable)
    assert all(a.body["status"] == 503 and "database" in a.body["detail"] for a in unavailable)
    assert all(stopped - 1 < a.sent < started + 2 for a in unavailable), "a 503 far from the outage"

    # Recovery without restarting the app: every kind succeeds again after the restart, and keeps succeeding.
    for kind in expected:
        after = [a for a in answers if a.kind == kind and a.sent > started]
        assert any(a.status in (200, 201) for a in after), f"{kind} did not recover"
        assert after[-1].status != 503, f"{kind} still unavailable {AFTER_S} s after the restart"

    # Every acknowledged booking and switching is stored, and the counters agree with the bookings.
    booked = {a.key for a in answers if a.kind == "booking" and a.status == 201}
    operations = {a.body["operation_id"] for a in answers if a.kind == "switching" and a.status == 201}
    with engine.connect() as connection:
        stored = set(connection.execute(text(
            "SELECT idempotency_key FROM bookings WHERE status = 'confirmed'")).scalars())
        logged = set(connection.execute(text("SELECT operation_id FROM switching_events")).scalars())
        counters_off = connection.execute(text(
            "SELECT count(*) FROM slot_bookings s WHERE booked <> (SELECT count(*) FROM bookings b "
            "WHERE b.slot_start = s.slot_start AND b.service = s.service AND b.status = 'confirmed')")).scalar_one()
    assert booked and booked <= stored, sorted(booked - stored)[:5]
    assert operations and operations <= logged, sorted(operations - logged)[:5]
    assert counters_off == 0
    recovered = min(a.sent for a in answers if a.sent > started and a.status in (200, 201)) - started
    print(f"\n{len(answers)} requests, {len(unavailable)} answered 503 (stopped {started - stopped:.1f} s), "
          f"{len(booked)} bookings and {len(operations)} switchings acknowledged; first success "
          f"{recovered:.2f} s and last 503 {max(a.sent for a in unavailable) - started:.2f} s after the restart")


# -- which errors mean "unavailable" ------------------------------------------------------------------
def _wrapped(orig: Exception, invalidated: bool = False) -> exc.DBAPIError:
    return exc.DBAPIError.instance("SELECT 1", {}, orig, psycopg.Error, connection_invalidated=invalidated)


@pytest.mark.parametrize("error, unavailable", [
    (psycopg.OperationalError("connection failed: No such file or directory"), True),
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
    (psycopg.errors.CannotConnectNow("the database system is shutting down"), True),
    (psycopg.errors.ConnectionFailure("connection failure"), True),
    (_wrapped(psycopg.errors.AdminShutdown("terminating connection")), True),
    (_wrapped(psycopg.OperationalError("consuming input failed: server closed the connection")), True),
    (_wrapped(psycopg.InterfaceError("the connection is lost"), invalidated=True), True),
    (_wrapped(psycopg.errors.TooManyConnections("sorry, too many clients already")), True),
    (exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached, connection timed out"), True),
    (_wrapped(psycopg.errors.UniqueViolation("duplicate key")), False),
    (_wrapped(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")), False),
    (_wrapped(psycopg.errors.UndefinedTable("relation does not exist")), False),
    (ZeroDivisionError("a bug"), False),
])
def test_only_a_lost_or_refused_connection_counts_as_the_database_being_unavailable(error, unavailable):
    assert database_unavailable(error) is unavailable


@pytest.mark.parametrize("method, path, body, headers", [
    ("GET", "/api/outlets/NOWHERE", None, {}),                       # a read on a thread's read connection
    # the token's check, and then the topology cache's version check
    ("GET", "/api/trace/downstream/R1", None, HEADERS["dispatcher"]),
    ("POST", "/api/bookings", {"outlet": "X", "service": "billing", "start": "2030-01-07T10:00:00+01:00",
                               "name": "A Customer", "phone": "0721 1234567", "idempotency_key": "k1"}, {}),
    ("POST", "/api/switching", {"operations": [{"device": "SW2", "action": "open"}], "reason": "outage"},
     HEADERS["dispatcher"]),
])
def test_an_unreachable_database_answers_503_problem_json_with_retry_after(method, path, body, headers):
    unreachable = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "BASEMAP_URL": "none"})
    response = unreachable.test_client().open(path, method=method, json=body, headers=headers)
    assert response.status_code == 503, response.get_json()
    assert response.mimetype == PROBLEM and int(response.headers["Retry-After"]) > 0
    assert response.get_json()["detail"] == "the database is unavailable; try again shortly"


def test_a_connection_dropped_after_the_answer_leaves_the_answer_standing(engine):
    # The session's closing rollback at teardown meets a terminated backend (as in a fast
    # shutdown between the answer and the teardown): the 200 stands, not werkzeug's 500.
    app = create_app({"DATABASE_URL": engine.url.render_as_string(False), "ENGINE": engine, "BASEMAP_URL": "none"})

    @app.get("/_terminated")
    @allow(PUBLIC)  # every route declares its access; an undeclared one is refused to everyone
    def _terminated():
        pid = get_session().execute(text("SELECT pg_backend_pid()")).scalar_one()
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        return {"pid": pid}

    assert app.test_client().get("/_terminated").status_code == 200


def test_a_pool_with_every_connection_busy_answers_503_not_500(database_url):
    """Every connection of the pool held (a burst bigger than the pool): a request waits for the
    pool's timeout and then hears 503 with Retry-After, not 500."""
    from geo.db import make_engine

    engine = make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    app = create_app({"DATABASE_URL": database_url, "ENGINE": engine, "BASEMAP_URL": "none"})
    try:
        with engine.connect():
            response = app.test_client().post("/api/bookings", json={
                "outlet": "X", "service": "billing", "start": "2030-01-07T10:00:00+01:00", "name": "A Customer",
                "phone": "0721 1234567", "idempotency_key": "k1"})
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert response.mimetype == PROBLEM
    finally:
        engine.dispose()
