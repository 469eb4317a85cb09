"""Restoration plans on mv_oberrhein imported through ``network import-pandapower``, checked by
pandapower: with the isolation switches opened, the faulted line out of service and the best
plan's switches closed, ``unsupplied_buses`` leaves exactly the faulted zone's loads (and those
no plan reaches) without supply. The import commits, so the test works on a database of its own.
"""
from __future__ import annotations

import copy
import random

import pytest


from tests.accounts import client_as
from tests.integration.test_trace_pandapower import _unsupplied_loads, import_oberrhein
from topology.index import Topology
from topology.read import read_network
from topology.restoration import plans

pytestmark = pytest.mark.pandapower
CHECKED = 12  # lines whose best plan pandapower checks


@pytest.fixture(scope="module")
def oberrhein(tmp_path_factory):
    """(net, app, topology) with mv_oberrhein imported by the CLI into a fresh database and read back."""
    net, app, engine = import_oberrhein(tmp_path_factory.mktemp("pandapower"),
                                        "RESTORATION_PANDAPOWER_DATABASE_URL", "_restore_pp")
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
