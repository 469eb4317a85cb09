"""Agreement with pandapower: on mv_oberrhein imported through ``network import-pandapower``,
the affected customers of random changes are exactly the loads pandapower's
``unsupplied_buses`` leaves unsupplied after the change and not before, element for element.

The import commits, so the test works on a database of its own.
"""
from __future__ import annotations

import copy
import random

import pytest

import pandapower
import pandapower.networks
import pandapower.topology

from app import create_app
from geo.db import make_engine
from geo.migrate import upgrade
from tests.accounts import add_role_accounts, client_as
from tests.conftest import _test_database_url

pytestmark = pytest.mark.pandapower
SCENARIOS = 60


def import_oberrhein(folder, variable: str, suffix: str):
    """(net, app, engine): mv_oberrhein saved with ``pandapower.to_json`` into ``folder`` and
    imported by the CLI into a fresh database of its own (``$variable`` or ``<test db><suffix>``),
    with the role accounts (traces and switching are sent as the test dispatcher)."""
    net = pandapower.networks.mv_oberrhein()
    path = folder / "mv_oberrhein.json"
    pandapower.to_json(net, str(path))
    url = _test_database_url(variable, suffix=suffix)
    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    with engine.begin() as connection:
        add_role_accounts(connection)
    app = create_app({"DATABASE_URL": url, "ENGINE": engine, "BASEMAP_URL": "none", "TESTING": True})
    result = app.test_cli_runner().invoke(args=["network", "import-pandapower", str(path)])
    assert result.exit_code == 0, result.output
    return net, app, engine


@pytest.fixture(scope="module")
def oberrhein(tmp_path_factory):
    """(net, app) with mv_oberrhein imported by the CLI into a fresh database."""
    net, app, engine = import_oberrhein(tmp_path_factory.mktemp("pandapower"), "TRACE_PANDAPOWER_DATABASE_URL",
                                        "_trace_pp")
    yield net, app
    engine.dispose()


def _unsupplied_loads(net) -> set[int]:
    """The in-service loads on buses pandapower finds unsupplied."""
    buses = pandapower.topology.unsupplied_buses(net)
    loads = net.load[net.load.in_service]
    return set(loads.index[loads.bus.isin(buses)].tolist())


def _pandapower_affected(net, switches, lines, trafos) -> set[int]:
    """Loads unsupplied after the change and not before, by pandapower."""
    changed = copy.deepcopy(net)
    changed.switch.loc[switches, "closed"] = False
    changed.line.loc[lines, "in_service"] = False
    changed.trafo.loc[trafos, "in_service"] = False
    return _unsupplied_loads(changed) - _unsupplied_loads(net)


def _gridatlas_affected(client, switches, lines, trafos) -> set[int]:
    """The load indices of the affected customers, by POST /api/trace/affected."""
    body = {"open": [f"pp:switch:{i}" for i in switches],
            "out_of_service": [f"pp:line:{i}" for i in lines] + [f"pp:trafo:{i}" for i in trafos]}
    response = client.post("/api/trace/affected", json=body)
    assert response.status_code == 200, response.get_json()
    return {int(code.split(":")[2]) for code in response.get_json()["customers"]}


def _random_changes(net, rng: random.Random, count: int):
    """(switches to open, lines and transformers to take out of service), ``count`` times."""
    closed = net.switch.index[net.switch.closed].tolist()
    for _ in range(count):
        yield (rng.sample(closed, rng.randint(0, 5)), rng.sample(net.line.index.tolist(), rng.randint(0, 3)),
               rng.sample(net.trafo.index.tolist(), 1 if rng.random() < 0.1 else 0))


def test_the_import_is_complete(oberrhein):
    net, app = oberrhein
    supply = client_as(app, "dispatcher").get("/api/network/supply").get_json()
    assert supply["customers"] == len(net.load) and supply["deenergised_customers"] == len(_unsupplied_loads(net))


@pytest.mark.parametrize("seed", range(3))
def test_affected_loads_agree_with_unsupplied_buses(oberrhein, seed):
    net, app = oberrhein
    client = client_as(app, "dispatcher")
    rng = random.Random(seed)
    disagreements = []
    for switches, lines, trafos in _random_changes(net, rng, SCENARIOS // 3):
        expected = _pandapower_affected(net, switches, lines, trafos)
        found = _gridatlas_affected(client, switches, lines, trafos)
        if found != expected:
            disagreements.append((switches, lines, trafos, sorted(found ^ expected)))
    assert not disagreements


@pytest.mark.parametrize("closing", ["three ties", "every tie"])
def test_agreement_holds_with_ties_closed(oberrhein, closing):
    """Close normally-open ties (through the switching API), so the state is meshed (with every
    tie closed, the feeders make rings fed from both transformers), then compare."""
    net, app = oberrhein
    client = client_as(app, "dispatcher")
    ties = net.switch.index[~net.switch.closed].tolist()
    rng = random.Random(7)
    closing = rng.sample(ties, 3) if closing == "three ties" else ties
    response = client.post("/api/switching", json={
        "operations": [{"device": f"pp:switch:{i}", "action": "close"} for i in closing], "reason": "agreement test"})
    assert response.status_code == 201, response.get_json()
    try:
        tied = copy.deepcopy(net)
        tied.switch.loc[closing, "closed"] = True
        assert client.get("/api/network/supply").get_json()["radial"] is False
        disagreements = []
        for switches, lines, trafos in _random_changes(tied, rng, 40):
            found, expected = (_gridatlas_affected(client, switches, lines, trafos),
                               _pandapower_affected(tied, switches, lines, trafos))
            if found != expected:
                disagreements.append((switches, lines, trafos, sorted(found ^ expected)))
        assert not disagreements
    finally:
        client.post("/api/switching", json={
            "operations": [{"device": f"pp:switch:{i}", "action": "open"} for i in closing], "reason": "restore"})
