"""Outages under real parallel requests against a live threaded server: one winner for a crew, for
a transition, for a batch sent twice; calls for one feeder settled into one outage."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from outages.crews import create_crew
from tests.accounts import HEADERS, add_role_accounts
from tests.conftest import _test_database_url
from tests.e2e.conftest import LiveServer
from tests.networks import drawn_network

# A feeder whose fused lateral feeds two transformers, each with six customers, and a second
# lateral with one transformer:
#
#   src --B1-- a --s1-- b --s2-- c
#                       |        |
#                      F1       F2
#                       |        |
#                       d        g
#                     /   \      |
#                   T1     T2   T3
#                   |      |     |
#                   e      f     h
#              (E1..E6) (G1..G6) (H1..H6)
CUSTOMERS = {"e": "E", "f": "G", "h": "H"}


def _network():
    nodes = {"src": (0, 3), "a": (1, 3), "b": (2, 3), "c": (3, 3), "d": (2, 2), "g": (3, 2),
             "e": (1, 1), "f": (2, 1), "h": (3, 1)}
    return drawn_network(
        nodes=nodes, segments=[("s1", "a", "b"), ("s2", "b", "c")],
        devices=[("B1", "breaker", "src", "a", "closed"), ("F1", "fuse", "d", "b", "closed"),
                 ("F2", "fuse", "g", "c", "closed"), ("T1", "transformer", "e", "d", "closed"),
                 ("T2", "transformer", "f", "d", "closed"), ("T3", "transformer", "h", "g", "closed")],
        sources=[("SRC", "src")],
        customers=[(f"{prefix}{i}", node) for node, prefix in CUSTOMERS.items() for i in range(1, 7)])


@pytest.fixture(scope="module")
def live():
    server = LiveServer(_test_database_url("OUTAGE_LIVE_DATABASE_URL", suffix="_outage_live")).start()
    yield server
    server.stop()


@pytest.fixture()
def storm_net(live):
    """The live server with the network above, the role accounts and two crews."""
    live.reset()
    with live.engine.begin() as connection:
        add_role_accounts(connection)
    live.load(_network())
    with live.engine.begin() as connection:
        for code in ("CR-1", "CR-2"):
            create_crew(connection, code, code, depot_point=(7.94, 48.47))
    return live


def _together(count: int, work):
    """``work(i)`` for i in range(count) from threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _post(live, path: str, body: dict, role: str = "dispatcher") -> requests.Response:
    return requests.post(live.url(path), json=body, headers=HEADERS[role], timeout=60)


def test_parallel_calls_of_one_feeder_settle_into_one_outage(storm_net):
    accounts = [f"A-{prefix}{i}" for prefix in ("E", "G") for i in range(1, 7)]
    answers = _together(len(accounts), lambda i: requests.post(storm_net.url("/api/calls"),
                                                              json={"account": accounts[i]}, timeout=60))
    assert [a.status_code for a in answers] == [201] * len(accounts), [a.text for a in answers]
    storm_net.settled()  # the server settles after answering
    with storm_net.engine.connect() as connection:
        open_outages = connection.execute(text(
            "SELECT device, calls FROM outages WHERE state = 'predicted'")).all()
        unexplained = connection.execute(text(
            "SELECT count(*) FROM trouble_calls WHERE outage_id IS NULL")).scalar_one()
    assert open_outages == [("F1", 12)] and unexplained == 0


def test_one_crew_sent_to_two_outages_at_once_goes_to_one(storm_net):
    codes = [_post(storm_net, "/api/outages", {"device": device}).json()["outage"]["code"] for device in ("T1", "T3")]
    answers = _together(2, lambda i: _post(storm_net, f"/api/outages/{codes[i]}/assign", {"crew": "CR-1"}))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    with storm_net.engine.connect() as connection:
        assert connection.execute(text(
            "SELECT count(*) FROM crew_assignments WHERE released_at IS NULL")).scalar_one() == 1


def test_parallel_transitions_have_one_winner_and_the_others_hear_where_it_went(storm_net):
    for account in ("A-H1", "A-H2"):
        requests.post(storm_net.url("/api/calls"), json={"account": account}, timeout=60)
    storm_net.settled()
    with storm_net.engine.connect() as connection:
        code = connection.execute(text("SELECT code FROM outages WHERE state = 'predicted'")).scalar_one()
    path = f"/api/outages/{code}/transitions"
    confirms = _together(6, lambda i: _post(storm_net, path, {"to": "confirmed"}))
    assert sorted(a.status_code for a in confirms) == [200] + [409] * 5, [a.text for a in confirms]
    # From confirmed, restoring and cancelling both end the outage: only one of them can.
    ends = _together(6, lambda i: _post(storm_net, path, {"to": ("restored", "cancelled")[i % 2]}))
    assert sorted(a.status_code for a in ends) == [200] + [409] * 5, [a.text for a in ends]
    winner = next(a.json()["outage"]["state"] for a in ends if a.status_code == 200)
    for refused in (a for a in ends if a.status_code == 409):
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert (refused.json()["state"], refused.json()["allowed"]) == (winner, [])
    with storm_net.engine.connect() as connection:
        states = connection.execute(text("SELECT to_state FROM outage_events WHERE kind = to_state "
                                         "ORDER BY id")).scalars().all()
    assert states == ["predicted", "confirmed", winner]


def test_a_meter_batch_sent_twice_at_once_is_stored_once(storm_net):
    batch = {"events": [{"id": f"m-{prefix}{i}", "meter": f"{prefix}{i}", "kind": "last_gasp",
                         "at": "2026-11-30T12:00:00Z"} for prefix in ("E", "G", "H") for i in range(1, 7)]}
    answers = _together(4, lambda i: _post(storm_net, "/api/meter-events", batch, role="integration"))
    assert [a.status_code for a in answers] == [200] * 4
    assert sum(a.json()["accepted"] for a in answers) == 18
    storm_net.settled()
    with storm_net.engine.connect() as connection:
        devices = connection.execute(text("SELECT device FROM outages WHERE state = 'predicted'")).scalars().all()
    assert devices == ["B1"]  # all three transformers' customers gasped: the breaker explains them


def test_a_change_committed_late_with_an_earlier_id_still_reaches_the_maps(committed_app, committed_engine):
    from geo.live import changes_since, note_change

    with committed_engine.connect() as poller:
        start = changes_since(poller, None).cursor
    slow = committed_engine.connect()
    slow_transaction = slow.begin()
    note_change(slow, "crew", "CR-SLOW")           # takes its id first, commits last
    with committed_engine.begin() as fast:
        note_change(fast, "crew", "CR-FAST")
    with committed_engine.connect() as poller:
        first = changes_since(poller, start)
    assert first.kinds == {"crew": ["CR-FAST"]}
    slow_transaction.commit()
    slow.close()
    with committed_engine.connect() as poller:
        second = changes_since(poller, first.cursor)
    assert "CR-SLOW" in second.kinds["crew"]
    assert min(second.ids) < max(first.ids)  # its id is older than one already seen: an id cursor would skip it


def test_a_call_while_its_feeder_is_being_settled_is_answered_and_settled_by_the_holder(storm_net):
    for account in ("A-E1", "A-E2"):
        requests.post(storm_net.url("/api/calls"), json={"account": account}, timeout=60)
    storm_net.settled()
    with storm_net.engine.connect() as connection:
        code = connection.execute(text("SELECT code FROM outages WHERE state = 'predicted'")).scalar_one()
    holder = storm_net.engine.connect()  # another request settling feeder B1's reports right now
    holder.execute(text("SELECT pg_advisory_lock(hashtextextended('B1', 8))"))
    try:
        waiting = requests.post(storm_net.url("/api/calls"), json={"account": "A-E3"}, timeout=60).json()
        assert (waiting["outage"], waiting["state"]) == (code, "predicted")  # where its customer lies
        with storm_net.engine.connect() as connection:
            assert connection.execute(text("SELECT outage_id IS NULL AND settled_at IS NULL FROM trouble_calls "
                                           "WHERE reference = :r"), {"r": waiting["reference"]}).scalar_one()
    finally:
        holder.execute(text("SELECT pg_advisory_unlock(hashtextextended('B1', 8))"))
        holder.close()
    requests.post(storm_net.url("/api/calls"), json={"account": "A-E4"}, timeout=60)  # the next settling takes it
    storm_net.settled()
    with storm_net.engine.connect() as connection:
        assert connection.execute(text("SELECT o.code FROM trouble_calls t JOIN outages o ON o.id = t.outage_id "
                                       "WHERE t.reference = :r"), {"r": waiting["reference"]}).scalar_one() == code
