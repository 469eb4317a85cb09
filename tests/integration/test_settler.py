"""The settler (outages/settler.py) on a committed database: reports answered first are notified
to the settler and settled by it, reports nobody was told of are swept up by a settler that
starts, and a settler that loses its database keeps the keys and settles them once it is back.
(tests/integration/test_server.py runs it as production does, a process beside the workers.)"""
from __future__ import annotations


from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from outages import intake, settler as settler_module
from outages.settings import OutageSettings
from outages.settler import Settler, wait_settled
from tests.networks import protected_feeder
from topology.cache import TopologyCache
from topology.loader import load_network


def _predicted(engine) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT device, calls FROM outages WHERE state = 'predicted' ORDER BY device")).all()


def _waiting(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM trouble_calls WHERE settled_at IS NULL")).scalar_one()


def test_calls_are_answered_first_and_settled_by_the_settler(committed_app, committed_engine):
    with committed_engine.begin() as connection:
        load_network(connection, protected_feeder())
    client = committed_app.test_client()
    first = client.post("/api/calls", json={"account": "A-C1"})
    assert first.status_code == 201, first.json
    assert wait_settled(committed_engine)
    assert _predicted(committed_engine) == [("C1", 1)]  # a lone call: its own service
    assert client.get(f"/api/calls/{first.json['reference']}").json["state"] == "predicted"

    second = client.post("/api/calls", json={"account": "A-C2"})
    # Answered before the settling: C2 lies under no predicted outage yet (C1's is C1's service alone).
    assert second.status_code == 201 and second.json["outage"] is None, second.json
    assert wait_settled(committed_engine)
    assert _predicted(committed_engine) == [("T1", 2)] and _waiting(committed_engine) == 0
    with committed_engine.connect() as connection:
        stamps = connection.execute(text("SELECT bool_and(settled_at >= received_at) FROM trouble_calls")).scalar()
    assert stamps  # settled_at is when the prediction took the call in, never before it came


class _Recording(Settler):
    """A settler that notes the keys of each round (another settler shares the database)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.settled: list[set[str]] = []

    def _settle(self, keys):
        self.settled.append(set(keys))
        super()._settle(keys)


def _file_unnotified(make_session, cache, account: str) -> None:
    """A call stored by a request whose notification never reached a settler."""
    session = make_session()
    try:
        intake.file_call(session, cache, intake.CallRequest("account", account=account), OutageSettings(),
                         settle=lambda connection, keys: None)
    finally:
        session.close()


def test_reports_nobody_was_told_of_are_swept_up_by_a_settler_that_starts(committed_app, committed_engine):
    with committed_engine.begin() as connection:
        load_network(connection, protected_feeder())
    make_session = sessionmaker(bind=committed_engine, expire_on_commit=False)
    cache = TopologyCache()
    for account in ("A-C1", "A-C2"):
        _file_unnotified(make_session, cache, account)
    assert _waiting(committed_engine) == 2 and _predicted(committed_engine) == []

    started = _Recording(make_session, lambda: cache, OutageSettings)
    started.start()  # handed nothing: it sweeps first
    try:
        assert wait_settled(committed_engine, 10)
        assert started.wait_idle()
        assert {"B1"} in started.settled and _predicted(committed_engine) == [("T1", 2)]
    finally:
        started.stop()


def test_a_settler_that_cannot_reach_the_database_keeps_the_keys_and_settles_them_later(
        committed_app, committed_engine, monkeypatch):
    with committed_engine.begin() as connection:
        load_network(connection, protected_feeder())
    make_session = sessionmaker(bind=committed_engine, expire_on_commit=False)
    cache = TopologyCache()
    _file_unnotified(make_session, cache, "A-C1")

    broken = {"left": 2}

    def flaky_session():
        if broken["left"]:
            broken["left"] -= 1
            raise ConnectionError("the database is restarting")
        return make_session()

    monkeypatch.setattr(settler_module, "_BACKOFF", 0.05)
    worker = _Recording(flaky_session, lambda: cache, OutageSettings)
    try:
        worker.submit(["B1"])
        assert worker.wait_idle()
        assert broken["left"] == 0 and _waiting(committed_engine) == 0 and {"B1"} in worker.settled
        assert _predicted(committed_engine) == [("C1", 1)]
    finally:
        worker.stop()


def test_one_feeder_whose_reports_cannot_be_settled_holds_up_no_other(committed_app, committed_engine, monkeypatch):
    from outages import settle
    from tests.networks import feeder_with_tie

    with committed_engine.begin() as connection:
        load_network(connection, feeder_with_tie())
    make_session = sessionmaker(bind=committed_engine, expire_on_commit=False)
    cache = TopologyCache()
    for account in ("A-C3", "A-C6"):  # one call on each feeder: keys B1 and B2
        _file_unnotified(make_session, cache, account)
    settle_one = settle._settle_one

    def broken_on_b1(connection, topology, key, *args):
        if key == "B1":
            raise ValueError("a report the prediction cannot take")
        return settle_one(connection, topology, key, *args)

    monkeypatch.setattr(settle, "_settle_one", broken_on_b1)
    session = make_session()
    try:
        settle.settle_pending(session, cache, ["B1", "B2"], OutageSettings())
    finally:
        session.close()
    with committed_engine.connect() as connection:
        waiting = connection.execute(text("SELECT section_key FROM trouble_calls WHERE settled_at IS NULL")).scalars().all()
    assert waiting == ["B1"]  # B2's call was settled; B1's waits for the sweep
    assert _predicted(committed_engine) == [("B2", 1)]
