"""Restoration plans on small drawn networks, against answers computed by hand.

The network (tests/networks.py ``feeders_with_ties``): a fault on s1 is isolated by opening B1
and SW1; C2 is inside the faulted zone, C3 and C4 (5 kW) are healthy but without supply. TIE re-feeds them from F2,
TIE2 from F3 over s4, a conductor far too thin for them.
"""
from __future__ import annotations

import math

import pytest

from geo.errors import NotFound, Unprocessable
from topology.index import Topology
from topology.network import network_data_from_network_frames
from topology.restoration import plans, simulate
from tests.networks import feeders_with_ties

ROOT3 = math.sqrt(3)


def _topology(ties=("TIE", "TIE2")) -> Topology:
    return Topology(network_data_from_network_frames(feeders_with_ties(ties)))


def test_one_tie_with_enough_capacity():
    found = plans(_topology(ties=("TIE",)), "s1")
    assert found.isolate == ["B1", "SW1"]
    assert found.faulted == ["C2"] and found.healthy == ["C3", "C4"] and found.unrestorable == []
    [plan] = found.plans
    assert (plan.open, plan.close) == (["B1", "SW1"], ["TIE"])
    answer = plan.as_dict()
    assert [(s["action"], s["device"], s["customers"]) for s in answer["steps"]] == [
        ("open", "B1", []), ("open", "SW1", []), ("close", "TIE", ["C3", "C4"])]
    assert answer["transferred_kw"] == pytest.approx(5.0)
    # F2 after the transfer carries C6 + C3 + C4 = 9 kW of 100 kVA x 0.95 = 95 kW: 86 kW left, 90.53 %.
    # s3 carries the same 9 kW of sqrt(3) x 20 kV x 10 A x 0.95 = 329.09 kW: more room, not limiting.
    assert answer["headroom"] == {"kw": pytest.approx(86.0), "percent": pytest.approx(90.53, abs=0.01),
                                  "element": "F2", "kind": "feeder"}
    loads = {loading.code: (loading.load_kw, loading.capacity_kw) for loading in plan.loadings}
    assert loads == {"s3": (pytest.approx(9.0), pytest.approx(ROOT3 * 20 * 10 * 0.95)),
                     "F2": (pytest.approx(9.0), pytest.approx(95.0))}
    assert answer["feasible"] is True and answer["reasons"] == []


def test_two_ties_one_would_overload():
    found = plans(_topology(), "s1")
    assert [(plan.close, plan.feasible) for plan in found.plans] == [(["TIE"], True), (["TIE2"], False)]
    overloading = found.plans[1].as_dict()
    # s4 would carry C8 + C3 + C4 = 6 kW; it may carry sqrt(3) x 20 kV x 0.1 A x 0.95 = 3.29 kW.
    capacity = ROOT3 * 20 * 0.1 * 0.95
    assert overloading["headroom"]["element"] == "s4"
    assert overloading["headroom"]["kw"] == pytest.approx(capacity - 6.0, abs=1e-3)
    assert overloading["reasons"] == [f"segment s4 would carry 6.0 kW, over its {capacity:.1f} kW"]
    assert overloading["steps"][-1]["customers"] == ["C3", "C4"]
    assert found.unrestorable == []


def test_no_tie_no_plan():
    found = plans(_topology(ties=()), "s1")
    assert found.plans == []
    assert found.healthy == ["C3", "C4"] and found.unrestorable == ["C3", "C4"]


def test_after_the_breaker_tripped_closing_it_again_is_a_step():
    """The fault is on s2 and B1 has tripped: SW1 isolates it (the ties are open already), closing
    B1 again gives C2 its supply back, and the zone's customers cannot be restored."""
    topology = _topology()
    b1 = int(topology.data.find("devices", ["B1"])[0])
    tripped = topology.operated({b1: False})
    found = plans(tripped, "s2")
    assert found.isolate == ["SW1"] and sorted(found.faulted) == ["C3", "C4"]
    assert found.healthy == ["C2"] and found.unrestorable == []
    [plan] = found.plans
    assert (plan.open, plan.close, plan.steps[-1].customers) == (["SW1"], ["B1"], ["C2"])
    assert plan.feasible and plan.loadings == []  # F1 has no rating, its segments no ampacity


def test_missing_demand_is_counted_at_the_mean_of_the_known_ones():
    frames = feeders_with_ties(("TIE",))
    frames.service_points.loc[frames.service_points["code"] == "C4", "demand_kw"] = float("nan")
    found = plans(Topology(network_data_from_network_frames(frames)), "s1")
    # the known demands are 2, 3, 4 and 1 kW: C4 is counted at their mean, 2.5 kW
    assert found.assumptions == {"power_factor": 0.95, "customers_without_demand": 1, "demand_assumed_kw": 2.5}
    assert found.plans[0].transferred_kw == pytest.approx(5.5)


def test_errors():
    with pytest.raises(NotFound):
        plans(_topology(), "nowhere")
    with pytest.raises(Unprocessable):
        plans(_topology(), "src1")  # a source's own node: no switching isolates it


def test_simulate_the_best_plan():
    topology = _topology()
    found = simulate(topology, "s1", ["B1", "SW1"], ["TIE"])
    assert found.isolates and found.lost == ["C2"] and found.restored == [] and found.off == 1
    cut = simulate(topology, "s1", ["B1", "SW1"], [])
    assert cut.isolates and sorted(cut.lost) == ["C2", "C3", "C4"] and cut.off == 3
    assert not simulate(topology, "s1", ["SW1"], ["TIE"]).isolates  # B1 still feeds the fault
    with pytest.raises(Unprocessable):
        simulate(topology, "s1", ["s1"], [])
    with pytest.raises(Unprocessable):
        simulate(topology, "s1", ["SW1"], ["SW1"])
