"""Switching over PostGIS: atomic operations, append-only events, the log, refusals, caches of
other workers catching up, and real parallel requests against a live server."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geo import accounts
from tests.accounts import HEADERS, account_name, add_role_accounts, client_as
from tests.conftest import _test_database_url
from tests.e2e.conftest import LiveServer
from tests.networks import protected_feeder
from topology import switching
from topology.cache import TopologyCache
from topology.index import Topology
from topology.read import read_network
from topology.loader import load_network

PROBLEM = "application/problem+json"


@pytest.fixture()
def client(app):
    """Switching and its log are a dispatcher's work: a dispatcher's client (test-dispatcher)."""
    return client_as(app, "dispatcher")


@pytest.fixture()
def network(connection):
    """protected_feeder in the test's rolled-back transaction."""
    load_network(connection, protected_feeder())


DISPATCHER = account_name("dispatcher")  # the operator recorded for the dispatcher's token


def _operate(client, *operations, reason="planned work"):
    """POST /api/switching with (device, action) pairs; the operator is whoever ``client`` signs in as."""
    body = {"operations": [{"device": d, "action": a} for d, a in operations], "reason": reason}
    return client.post("/api/switching", json=body)


def _events(connection) -> int:
    """How many switching events are stored."""
    return connection.execute(text("SELECT count(*) FROM switching_events")).scalar_one()


def _state(connection, code: str) -> str:
    """A device's current state as stored."""
    return connection.execute(text("SELECT current_state::text FROM devices WHERE code = :c"), {"c": code}).scalar_one()


def _version(connection) -> int:
    """The stored topology version."""
    return connection.execute(text("SELECT version FROM topology_state")).scalar_one()


def test_an_operation_is_persisted_as_events_and_answers_lost_and_regained(client, connection, network):
    version = _version(connection)
    response = _operate(client, ("SW2", "open"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["lost"] == {"customer_count": 1, "customers": ["C5"], "by_feeder": {"F1": 1}}
    assert body["regained"]["customer_count"] == 0
    assert body["devices"] == [{"code": "SW2", "kind": "switch", "action": "open", "from_state": "closed",
                                "to_state": "open"}]
    assert body["topology_version"] == version + 1 == _version(connection)
    assert _state(connection, "SW2") == "open"
    event = connection.execute(text("SELECT * FROM switching_events")).one()
    assert (event.action, event.from_state, event.to_state, event.reason, event.actor) == \
        ("open", "closed", "open", "planned work", DISPATCHER)
    assert event.operation_id == body["operation_id"] and event.topology_version == version + 1
    assert body["actor"] == DISPATCHER
    body = _operate(client, ("SW2", "close")).get_json()
    assert body["regained"]["customers"] == ["C5"] and body["lost"]["customer_count"] == 0


def test_traces_see_the_switched_state(client, network):
    _operate(client, ("TIE", "close"), ("SW2", "open"))  # a transfer: nobody loses supply
    assert client.get("/api/trace/upstream/e").get_json()["source"] == "SRC2"
    assert sorted(client.get("/api/trace/downstream/B2").get_json()["customers"]) == ["C5", "C9"]


def test_a_transfer_in_one_operation_loses_nobody(client, network):
    body = _operate(client, ("SW2", "open"), ("TIE", "close")).get_json()
    assert body["lost"]["customer_count"] == 0 and body["regained"]["customer_count"] == 0


@pytest.mark.parametrize("operations, status, detail", [
    ([("SW2", "open"), ("NOPE", "open")], 404, "unknown device code(s): 'NOPE'"),
    ([("SW2", "open"), ("T1", "open")], 422, "not T1 (a transformer)"),
    ([("SW2", "open"), ("s1", "open")], 404, "'s1'"),
    ([("SW2", "open"), ("TIE", "open")], 409, "TIE is already open"),
])
def test_a_refused_operation_changes_nothing(client, connection, network, operations, status, detail):
    version = _version(connection)
    response = _operate(client, *operations)
    assert response.status_code == status and response.mimetype == PROBLEM
    assert detail in response.get_json()["detail"]
    assert _state(connection, "SW2") == "closed" and _version(connection) == version
    assert connection.execute(text("SELECT count(*) FROM switching_events")).scalar_one() == 0


def test_an_out_of_service_device_cannot_be_operated(client, connection, network):
    connection.execute(text("UPDATE devices SET in_service = false WHERE code = 'SW2'"))
    connection.execute(text("UPDATE topology_state SET version = version + 1"))
    response = _operate(client, ("SW2", "open"))
    assert response.status_code == 409 and "out-of-service" in response.get_json()["detail"]


@pytest.mark.parametrize("body, detail", [
    (None, "must be a JSON object"),
    ({"operations": [], "reason": "x"}, "non-empty list"),
    ({"operations": [{"device": "SW2", "action": "toggle"}], "reason": "x"}, "operations[0].action must be 'open' or 'close'"),
    ({"operations": [{"action": "open"}], "reason": "x"}, "operations[0].device must be a device code"),
    ({"operations": ["SW2"], "reason": "x"}, "operations[0] must be an object"),
    ({"operations": [{"device": "SW2", "action": "open"}]}, "reason is required"),
    ({"operations": [{"device": "SW2", "action": "open"}], "reason": "  "}, "reason is required"),
    ({"operations": [{"device": "SW2", "action": "open"}, {"device": "SW2", "action": "close"}], "reason": "x"},
     "named more than once: SW2"),
    ({"operations": [{"device": "SW2", "action": "open"}], "reason": "x", "actor": ""}, "actor is not taken from the body"),
    ({"operations": [{"device": "SW2", "action": "open"}], "reason": "x", "when": "now"}, "unknown field(s): when"),
])
def test_malformed_switching_bodies_are_400(client, network, body, detail):
    response = client.post("/api/switching", data="{" if body is None else None, json=body,
                           content_type="application/json")
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert detail in response.get_json()["detail"]


def test_an_actor_in_the_body_is_refused_and_nothing_is_written(client, connection, network):
    # Who operates is who is signed in: a body naming someone else is refused, not believed.
    version = _version(connection)
    response = client.post("/api/switching", json={"operations": [{"device": "SW2", "action": "open"}],
                                                   "reason": "planned work", "actor": "dispatcher 7"})
    assert response.status_code == 400 and response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["field"] == "actor" and "actor is not taken from the body" in problem["detail"]
    assert _state(connection, "SW2") == "closed" and _version(connection) == version and _events(connection) == 0


@pytest.mark.parametrize("role, status", [(None, 401), ("crew", 403), ("planner", 403)])
def test_only_dispatchers_and_admins_operate(app, connection, network, role, status):
    version = _version(connection)
    response = _operate(client_as(app, role), ("SW2", "open"))
    assert response.status_code == status and response.mimetype == PROBLEM, response.get_json()
    assert _state(connection, "SW2") == "closed" and _version(connection) == version and _events(connection) == 0


def test_an_admin_operates_under_its_own_name(app, connection, network):
    response = _operate(client_as(app, "admin"), ("SW2", "open"))
    assert response.status_code == 201, response.get_json()
    assert connection.execute(text("SELECT actor FROM switching_events")).scalars().all() == [account_name("admin")]


def test_the_log_is_for_dispatchers_and_planners(app, client, network):
    _operate(client, ("SW2", "open"), reason="first")
    assert client_as(app, None).get("/api/switching/log").status_code == 401
    assert client_as(app, "crew").get("/api/switching/log").status_code == 403
    planner = client_as(app, "planner").get("/api/switching/log")
    assert planner.status_code == 200 and [op["reason"] for op in planner.get_json()["operations"]] == ["first"]


@pytest.fixture()
def zoned(app, connection, network):
    """A client of dispatcher ``zoned`` limited to feeder F1 (protected_feeder), with a copy of
    the network on feeder copy-F1 beside it."""
    load_network(connection, protected_feeder_copy())
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    accounts.create_account(session, "zoned", "dispatcher", None, ["F1"])
    token = accounts.issue_token(session, "zoned").token
    session.flush()
    zoned = app.test_client()
    zoned.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return zoned


@pytest.mark.parametrize("operations", [[("copy-SW2", "open")], [("SW2", "open"), ("copy-SW2", "open")]])
def test_a_dispatcher_limited_to_feeders_cannot_operate_outside_them(zoned, connection, operations):
    version = _version(connection)
    response = _operate(zoned, *operations)
    assert response.status_code == 403 and response.mimetype == PROBLEM, response.get_json()
    assert "outside your control zone" in response.get_json()["detail"] and "copy-SW2" in response.get_json()["detail"]
    assert _state(connection, "SW2") == _state(connection, "copy-SW2") == "closed"
    assert _version(connection) == version and _events(connection) == 0


def test_a_dispatcher_limited_to_feeders_operates_inside_them(zoned, connection):
    response = _operate(zoned, ("SW2", "open"))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["lost"]["customers"] == ["C5"]
    assert _state(connection, "SW2") == "open" and _state(connection, "copy-SW2") == "closed"
    assert connection.execute(text("SELECT actor FROM switching_events")).scalars().all() == ["zoned"]


def test_the_log_lists_operations_newest_first_and_pages(client, network):
    _operate(client, ("SW2", "open"), reason="first")
    _operate(client, ("TIE", "close"), ("SW2", "close"), reason="second")
    _operate(client, ("F1", "open"), reason="third")
    log = client.get("/api/switching/log").get_json()
    assert [op["reason"] for op in log["operations"]] == ["third", "second", "first"]
    assert {op["actor"] for op in log["operations"]} == {DISPATCHER}
    assert [d["code"] for d in log["operations"][1]["devices"]] == ["TIE", "SW2"]
    assert log["next_before"] is None
    page = client.get("/api/switching/log?limit=2").get_json()
    assert [op["reason"] for op in page["operations"]] == ["third", "second"]
    rest = client.get(f"/api/switching/log?limit=2&before={page['next_before']}").get_json()
    assert [op["reason"] for op in rest["operations"]] == ["first"]
    by_device = client.get("/api/switching/log?device=SW2").get_json()
    assert [op["reason"] for op in by_device["operations"]] == ["second", "first"]
    assert client.get("/api/switching/log?device=ZZ").status_code == 404
    assert client.get("/api/switching/log?before=abc").status_code == 400


def test_switching_events_are_append_only(client, connection, network):
    _operate(client, ("SW2", "open"))
    for statement in ("UPDATE switching_events SET reason = 'covered up'", "DELETE FROM switching_events"):
        savepoint = connection.begin_nested()
        with pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement))
        savepoint.rollback()


def test_another_workers_cache_catches_up_from_the_events(connection, network):
    """Two caches stand for two worker processes: B replays A's operations instead of rebuilding."""
    worker_a, worker_b = TopologyCache(), TopologyCache()
    worker_b.get(connection)
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    for devices in ([("TIE", "close")], [("SW2", "open"), ("F1", "open")]):
        request = switching.parse_request({"operations": [{"device": d, "action": a} for d, a in devices],
                                           "reason": "test"}, DISPATCHER)
        switching.operate(session, worker_a, request)
    caught_up = worker_b.get(connection)
    assert worker_b.rebuilds == 1
    fresh = Topology(read_network(connection)[0])
    assert np.array_equal(caught_up.energised, fresh.energised) and np.array_equal(caught_up.closed, fresh.closed)
    load_network(connection, protected_feeder_copy())  # an import: no events, so a rebuild
    worker_b.get(connection)
    assert worker_b.rebuilds == 2


def protected_feeder_copy():
    """protected_feeder with every code prefixed, so it can be loaded next to the original."""
    frames = protected_feeder()
    for name, frame in frames.items():
        for column in ("code", "from_node", "to_node", "node", "account_number", "substation", "feeder"):
            if column in frame and len(frame):
                frame[column] = "copy-" + frame[column].astype(str)
    return frames


# -- real parallel requests ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live():
    """The app on a live threaded server over a committed database of its own."""
    server = LiveServer(_test_database_url("TRACE_LIVE_DATABASE_URL", suffix="_trace_live")).start()
    yield server
    server.stop()


@pytest.fixture()
def live_network(live):
    """The live server with protected_feeder committed afresh."""
    live.reset()  # empties the accounts too: the role accounts and their tokens come back
    with live.engine.begin() as connection:
        add_role_accounts(connection)
    live.load(protected_feeder())
    return live


def _post(url: str, operations, barrier: threading.Barrier) -> requests.Response:
    """A switching request sent when every thread is ready."""
    barrier.wait()
    return requests.post(url, json={"operations": [{"device": d, "action": a} for d, a in operations],
                                    "reason": "race"}, headers=HEADERS["dispatcher"], timeout=60)


def test_parallel_requests_to_open_one_device_succeed_once(live_network):
    count = 8
    barrier = threading.Barrier(count)
    with ThreadPoolExecutor(count) as pool:
        responses = list(pool.map(lambda _: _post(live_network.url("/api/switching"), [("SW2", "open")], barrier),
                                  range(count)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (count - 1), [r.text for r in responses]
    assert all("already open" in r.json()["detail"] for r in responses if r.status_code == 409)
    assert [r.json()["lost"]["customers"] for r in responses if r.status_code == 201] == [["C5"]]
    with live_network.engine.connect() as connection:
        assert connection.execute(text("SELECT actor FROM switching_events")).scalars().all() == [DISPATCHER]


def test_parallel_operations_on_different_devices_all_apply_in_order(live_network):
    operations = [[("R1", "open")], [("F1", "open")], [("TIE", "close")], [("B2", "open")], [("SW2", "open")]]
    barrier = threading.Barrier(len(operations))
    with ThreadPoolExecutor(len(operations)) as pool:
        responses = list(pool.map(lambda ops: _post(live_network.url("/api/switching"), ops, barrier), operations))
    assert [r.status_code for r in responses] == [201] * len(operations), [r.text for r in responses]
    versions = sorted(r.json()["topology_version"] for r in responses)
    assert versions == list(range(versions[0], versions[0] + len(operations)))
    with live_network.engine.connect() as connection:
        data, _ = read_network(connection)
        fresh = Topology(data)
    with live_network.engine.connect() as connection:
        served = live_network.app.extensions["topology_cache"].get(connection)
    assert np.array_equal(served.closed, fresh.closed) and np.array_equal(served.energised, fresh.energised)
    supply = requests.get(live_network.url("/api/network/supply"), headers=HEADERS["dispatcher"], timeout=30).json()
    customers = fresh.energised[data.sp_node]
    assert supply["energised_customers"] == int(customers.sum())
    # each answer's lost and regained customers replay to the final state, in version order
    live_customers = set(data.sp_code.tolist())
    for response in sorted(responses, key=lambda r: r.json()["topology_version"]):
        body = response.json()
        live_customers -= set(body["lost"]["customers"])
        live_customers |= set(body["regained"]["customers"])
    assert live_customers == set(data.sp_code[customers].tolist())
