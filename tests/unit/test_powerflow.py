"""Power-flow verification of restoration plans on the drawn network of tests/networks.py
``feeders_with_ties``, against figures estimated by hand; pandapower itself runs the flow.

::

    src1 --B1-- a --s1-- b --SW1-- c --s2-- d          C2 at b, C3 at c, C4 at d (F1)
                                   |
                                  TIE (open)
                                   |
    src2 --B2-- e --s3-- f --------+                    C6 at f (F2, 100 kVA)

The best plan for a fault on s1 opens B1 and SW1 and closes TIE: F2 then feeds C6, C3 and C4
over s3, then TIE, then s2.
"""
from __future__ import annotations

import math
import sys

import pytest

pytest.importorskip("pandapower")

from geo.errors import DomainError  # noqa: E402
from topology import powerflow  # noqa: E402
from topology.index import Topology  # noqa: E402
from topology.network import network_data_from_network_frames  # noqa: E402
from topology.restoration import plans  # noqa: E402
from tests.networks import feeders_with_ties  # noqa: E402

pytestmark = pytest.mark.pandapower
ROOT3 = math.sqrt(3)
TRUNK = "NA2XS2Y 3x1x240 RM/25 12/20kV"  # the demo's trunk cable: NA2XS2Y 1x240, 0.122 + j0.112 ohm/km
LV = "NAYY-J 4x150 SE 0.6/1kV"           # NAYY 4x150 SE: 0.208 + j0.08 ohm/km


def _figures(frames, ampacity: dict[str, float], demand: dict[str, float], rating_kva: float, voltage_kv: float = 20.0):
    """``frames`` with other segments' ampacity, customers' demand, F2's rating and every node's voltage."""
    frames.segments["ampacity_a"] = frames.segments["code"].map(ampacity).fillna(frames.segments["ampacity_a"])
    frames.service_points["demand_kw"] = frames.service_points["code"].map(demand).astype(float)
    frames.feeders.loc[frames.feeders["code"] == "F2", "rating_kva"] = rating_kva
    frames.nodes["voltage_kv"] = voltage_kv
    return frames


def _verified(frames, lengths: dict[str, float], conductor: str, band=powerflow.BAND):
    """The restoration for a fault on s1, its plans verified by the power flow."""
    data = network_data_from_network_frames(frames)
    codes = list(lengths)
    lines = powerflow.conductors(data, codes, [lengths[c] for c in codes], [conductor] * len(codes))
    topology = Topology(data)
    return powerflow.verify_plans(topology, plans(topology, "s1"), lines, band)


def test_the_receiving_cable_is_loaded_as_its_current_over_its_ampacity():
    """A hundred times the drawn demands, so that the cables' charging current (about 1.1 A per
    km of NA2XS2Y 1x240 at 20 kV, leading) stays a small part of what s3 carries."""
    frames = _figures(feeders_with_ties(("TIE",)), ampacity={"s3": 100.0},
                      demand={"C2": 200.0, "C3": 300.0, "C4": 200.0, "C6": 400.0}, rating_kva=1000.0)
    found = _verified(frames, {"s1": 200.0, "s2": 200.0, "s3": 400.0}, TRUNK)
    [plan] = found.plans
    assert plan.feasible
    flow = plan.powerflow
    assert flow.converged and flow.ok and flow.reasons() == []
    # s3 carries C6 + C3 + C4 = 900 kW at pf 0.95: 947.4 kVA / (sqrt(3) x 20 kV) = 27.35 A of its 100 A
    estimate = 100 * 900.0 / 0.95 / (ROOT3 * 20.0) / 100.0
    assert flow.line_loading.code == "s3"
    assert flow.line_loading.value == pytest.approx(estimate, rel=0.02)
    # the lowest voltage is at d, the far end: (P R + Q X) / V^2 over s3 and s2, well under 0.1 %
    assert flow.voltage_min.code == "d" and 0.999 < flow.voltage_min.value < 1.0
    assert flow.voltage_max.value == pytest.approx(1.0)
    # only F2's energised part after the plan is in the run: src2, e, f, c, d (F1's b and a are off)
    assert flow.buses == 5
    assert plan.as_dict()["powerflow"]["max_line_loading"] == {"element": "s3", "percent": pytest.approx(
        estimate, rel=0.02)}


def test_within_capacity_but_the_voltage_falls_out_of_the_band():
    """At 0.4 kV, with 90 kW moved over 500 m of cable: every rating holds (F2: 90 of 95 kW, s3:
    137 A of 275 A), but the voltage at the far end drops below 0.95 pu."""
    frames = _figures(feeders_with_ties(("TIE",)), ampacity={"s3": 275.0},
                      demand={"C2": 10.0, "C3": 30.0, "C4": 20.0, "C6": 40.0}, rating_kva=100.0, voltage_kv=0.4)
    found = _verified(frames, {"s1": 100.0, "s2": 100.0, "s3": 500.0}, LV)
    [plan] = found.plans
    assert plan.feasible, plan.as_dict()["reasons"]
    flow = plan.powerflow
    assert flow.converged and not flow.ok
    # by hand: dV = (P R + Q X) / V^2 over s3 (0.5 km) with 90 kW, over s2 (0.1 km) with 20 kW
    q = math.tan(math.acos(0.95))
    drop = (0.090 * (0.208 + q * 0.08) * 0.5 + 0.020 * (0.208 + q * 0.08) * 0.1) / 0.4 ** 2
    assert flow.voltage_min.code == "d"
    assert flow.voltage_min.value == pytest.approx(1 - drop, abs=0.01)
    assert flow.voltage_min.value < 0.95
    assert flow.reasons() == [f"bus d would be at {flow.voltage_min.value:.3f} pu, below 0.95 pu"]
    # a wider band lets it pass
    assert _verified(frames, {"s1": 100.0, "s2": 100.0, "s3": 500.0}, LV, band=(0.9, 1.1)).plans[0].powerflow.ok


def test_an_overloaded_plan_is_reported_by_the_power_flow_too():
    """TIE2 re-feeds C3 and C4 over s4, given 5 A: the capacity check refuses the plan, and the
    power flow finds the same line overloaded."""
    frames = _figures(feeders_with_ties(), ampacity={"s3": 100.0, "s4": 5.0},
                      demand={"C2": 200.0, "C3": 300.0, "C4": 200.0, "C6": 400.0, "C8": 100.0}, rating_kva=1000.0)
    found = _verified(frames, {"s1": 200.0, "s2": 200.0, "s3": 200.0, "s4": 200.0}, TRUNK)
    overloading = found.plans[1]
    assert overloading.close == ["TIE2"] and not overloading.feasible
    flow = overloading.powerflow
    # s4 carries C8 + C3 + C4 = 600 kW: 600 / 0.95 / (sqrt(3) x 20) = 18.2 A of 5 A
    assert flow.line_loading.code == "s4"
    assert flow.line_loading.value == pytest.approx(100 * 600.0 / 0.95 / (ROOT3 * 20.0) / 5.0, rel=0.02)
    assert not flow.ok and flow.reasons()[0].startswith("line s4 would be loaded at 36")


def test_only_the_best_plans_are_verified():
    frames = feeders_with_ties()
    data = network_data_from_network_frames(frames)
    lines = powerflow.conductors(data, ["s3"], [1000.0], [None])
    topology = Topology(data)
    found = powerflow.verify_plans(topology, plans(topology, "s1"), lines, limit=1)
    assert found.plans[0].powerflow is not None and found.plans[1].powerflow is None
    assert "powerflow" not in found.plans[1].as_dict()


def test_without_pandapower_it_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandapower", None)  # what "not installed" looks like to import
    data = network_data_from_network_frames(feeders_with_ties(("TIE",)))
    with pytest.raises(powerflow.PowerFlowUnavailable) as raised:
        powerflow.verify(Topology(data), powerflow.conductors(data, [], [], []))
    assert isinstance(raised.value, DomainError) and raised.value.status == 501
    assert "pandapower" in raised.value.detail


def test_unknown_conductors_fall_back_by_voltage():
    import pandapower
    types = pandapower.available_std_types(pandapower.create_empty_network(), "line")
    assert {powerflow._std_type(types, name, 20.0) for name in powerflow.STD_TYPES} == set(powerflow.STD_TYPES.values())
    assert powerflow._std_type(types, "NA2XS2Y 1x150 RM/25 12/20 kV", 20.0) == "NA2XS2Y 1x150 RM/25 12/20 kV"
    assert powerflow._std_type(types, None, 0.4) == "NAYY 4x150 SE"
    assert powerflow._std_type(types, "copper of 1903", 20.0) == "NA2XS2Y 1x240 RM/25 12/20 kV"
