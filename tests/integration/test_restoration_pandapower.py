"""Restoration plans on mv_oberrhein imported through ``network import-pandapower``, checked by
pandapower: with the isolation switches opened, the faulted line out of service and the best
plan's switches closed, ``unsupplied_buses`` leaves exactly the faulted zone's loads (and those
no plan reaches) without supply. The import commits, so the test works on a database of its own.
"""
from __future__ import annotations

import copy
import random

import pytest

import pandapower
import pandapower.networks

from app import create_app
from geo.db import make_engine
from geo.migrate import upgrade
from tests.accounts import add_role_accounts, client_as
from tests.conftest import _test_database_url
from tests.integration.test_trace_pandapower import _unsupplied_loads
from topology.index import Topology
from topology.read import read_network
from topology.restoration import plans

pytestmark = pytest.mark.pandapower
CHECKED = 12  # lines whose best plan pandapower checks


@pytest.fixture(scope="module")
def oberrhein(tmp_path_factory):
    """(net, app, topology) with mv_oberrhein imported by the CLI into a fresh database and read back."""
    net = pandapower.networks.mv_oberrhein()
    path = tmp_path_factory.mktemp("pandapower") / "mv_oberrhein.json"
    pandapower.to_json(net, str(path))
    url = _test_database_url("RESTORATION_PANDAPOWER_DATABASE_URL", suffix="_restore_pp")
    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    with engine.begin() as connection:
        add_role_accounts(connection)
    app = create_app({"DATABASE_URL": url, "ENGINE": engine, "BASEMAP_URL": "none", "TESTING": True})
    result = app.test_cli_runner().invoke(args=["network", "import-pandapower", str(path)])
    assert result.exit_code == 0, result.output
    with engine.connect() as connection:
        data, _version = read_network(connection)
    yield net, app, Topology(data)
    engine.dispose()


def _index(code: str) -> int:
    """The pandapower index in a ``pp:<table>:<index>`` code."""
    return int(code.split(":")[2])


def _restorable_lines(net, topology) -> dict[int, object]:
    """Every in-service line whose best plan is feasible and gives every healthy customer supply back."""
    found = {}
    for line in net.line.index[net.line.in_service].tolist():
        restoration = plans(topology, f"pp:line:{line}")
        if restoration.plans and restoration.plans[0].feasible and not restoration.unrestorable:
            found[line] = restoration
    return found


def test_the_best_plans_close_normally_open_switches_and_pandapower_agrees(oberrhein):
    net, _app, topology = oberrhein
    normally_open = {f"pp:switch:{i}" for i in net.switch.index[~net.switch.closed]}
    assert len(normally_open) == 6
    restorable = _restorable_lines(net, topology)
    assert len(restorable) > 50  # 84 of mv_oberrhein's 181 lines as imported today
    closed = {code for restoration in restorable.values() for code in restoration.plans[0].close}
    assert closed and closed <= normally_open
    before = _unsupplied_loads(net)
    for line in random.Random(11).sample(sorted(restorable), CHECKED):
        restoration, best = restorable[line], restorable[line].plans[0]
        assert best.loadings, "the demand, ampacity and transformer ratings came through the import"
        changed = copy.deepcopy(net)
        changed.switch.loc[[_index(code) for code in best.open], "closed"] = False
        changed.switch.loc[[_index(code) for code in best.close], "closed"] = True
        changed.line.at[line, "in_service"] = False
        lost = _unsupplied_loads(changed) - before
        assert lost == {_index(code) for code in restoration.faulted}, line
        assert best.customer_count == len(restoration.healthy)


def test_the_api_answers_the_same_plans(oberrhein):
    net, app, topology = oberrhein
    line = min(_restorable_lines(net, topology))
    body = client_as(app, "dispatcher").get(f"/api/restoration/pp:line:{line}").get_json()
    expected = plans(topology, f"pp:line:{line}").as_dict()
    assert [(plan["open"], plan["close"], plan["feasible"]) for plan in body["plans"]] == \
        [(plan["open"], plan["close"], plan["feasible"]) for plan in expected["plans"]]
    assert body["faulted"] == expected["faulted"] and body["healthy"] == expected["healthy"]
