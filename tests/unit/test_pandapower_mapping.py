"""The pandapower mapping on tiny hand-made nets and on mv_oberrhein, without a database.

The oracle is pandapower itself: the buses our frames energise (from the sources, over
in-service nodes, segments and closed devices) must be the buses pandapower's
``unsupplied_buses`` leaves supplied, whatever the switch states and out-of-service elements.
"""
from __future__ import annotations

import copy

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pandapower.topology as top
import pytest

from geo.errors import ImportFailed
from topology.pandapower_mapping import SWITCH_OFFSET_DEG, frames_from_net

pytestmark = pytest.mark.pandapower

OFFENBURG = (7.6, 48.25, 8.1, 48.6)  # west, south, east, north


def tiny_net():
    """Every switch type, open and closed, and out-of-service elements; indices not contiguous.

    ::

        b0 (110 kV, ext_grid 0)
         |  trafo 3
        b1 (20 kV busbar) -[sw 20 CB]- line 5 -[sw 21 LBS, open]- b2 -[sw 30 DS, bus-bus]- b4
         |                                                          \\-[sw 31, open]- b7
         +- line 9 - b5 (load 1)                                b4 -[sw 40 LBS]- trafo 8 - b6 (0.4 kV, load 2)
         +- line 11 (out of service) - b9 (out of service, load 3)        b7 -[sw 41, open]- trafo 12 - b10 (load 4)
         +- line 13 - b11 (load 5, out of service)
    """
    net = pp.create_empty_network()
    position = {0: (7.94, 48.47), 1: (7.9401, 48.47), 2: (7.95, 48.47), 4: (7.9505, 48.47), 5: (7.94, 48.48),
                6: (7.951, 48.471), 7: (7.9505, 48.469), 9: (7.93, 48.47), 10: (7.951, 48.468), 11: (7.94, 48.46)}
    voltage = {0: 110.0, 6: 0.4, 10: 0.4}
    for bus, (x, y) in position.items():
        pp.create_bus(net, vn_kv=voltage.get(bus, 20.0), index=bus, name=f"Bus {bus}", geodata=(x, y),
                      type="b" if bus == 1 else "n", in_service=bus != 9)
    pp.create_ext_grid(net, 0, index=0)
    pp.create_transformer(net, 0, 1, "25 MVA 110/20 kV", index=3)
    pp.create_transformer(net, 4, 6, "0.4 MVA 20/0.4 kV", index=8)
    pp.create_transformer(net, 7, 10, "0.4 MVA 20/0.4 kV", index=12)
    for line, (start, end, in_service) in {5: (1, 2, True), 9: (1, 5, True), 11: (1, 9, False),
                                           13: (1, 11, True)}.items():
        pp.create_line(net, start, end, 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV", index=line, in_service=in_service)
    pp.create_switch(net, 1, 5, "l", closed=True, type="CB", index=20)
    pp.create_switch(net, 2, 5, "l", closed=False, type="LBS", index=21)
    pp.create_switch(net, 2, 4, "b", closed=True, type="DS", index=30)
    pp.create_switch(net, 2, 7, "b", closed=False, type="DS", index=31)
    pp.create_switch(net, 4, 8, "t", closed=True, type="LBS", index=40)
    pp.create_switch(net, 7, 12, "t", closed=False, type="LBS", index=41)
    for load, bus, in_service in ((1, 5, True), (2, 6, True), (3, 9, False), (4, 10, True), (5, 11, False)):
        pp.create_load(net, bus, p_mw=0.1, index=load, name=f"Load {load}", in_service=in_service)
    return net


def energised_buses(frames) -> set[int]:
    """pandapower bus indices our frames energise in the normal state."""
    nodes = frames.nodes[frames.nodes["in_service"].astype(bool)]
    graph = nx.Graph()
    graph.add_nodes_from(nodes["code"])
    segments = frames.segments[frames.segments["in_service"].astype(bool)]
    devices = frames.devices[frames.devices["in_service"].astype(bool) & (frames.devices["normal_state"] == "closed")]
    for table in (segments, devices):
        for start, end in zip(table["from_node"], table["to_node"]):
            if start in graph and end in graph:
                graph.add_edge(start, end)
    sources = frames.sources[frames.sources["in_service"].astype(bool)]["node"]
    reached = set().union(*(nx.node_connected_component(graph, node) for node in sources if node in graph))
    return {int(code.split(":")[2]) for code in reached if code.startswith("pp:bus:") and code.count(":") == 2}


def supplied_buses(net) -> set[int]:
    """pandapower's own answer: in-service buses not in ``unsupplied_buses``."""
    return {int(bus) for bus in net.bus.index[net.bus.in_service]} - {int(b) for b in top.unsupplied_buses(net)}


@pytest.fixture(scope="module")
def tiny():
    """The tiny net, built once (pandapower's create functions are slow); copy it to change it."""
    return tiny_net()


@pytest.fixture(scope="module")
def frames(tiny):
    return frames_from_net(tiny)


def row(frame, code: str) -> dict:
    return frame.set_index("code").loc[code].to_dict()


def test_codes_follow_pandapower_tables_and_indices(frames):
    assert set(frames.nodes["code"]) >= {f"pp:bus:{bus}" for bus in (0, 1, 2, 4, 5, 6, 7, 9, 10, 11)}
    assert set(frames.segments["code"]) == {"pp:line:5", "pp:line:9", "pp:line:11", "pp:line:13"}
    assert set(frames.devices["code"]) == {"pp:switch:20", "pp:switch:21", "pp:switch:30", "pp:switch:31",
                                           "pp:switch:40", "pp:switch:41", "pp:trafo:3", "pp:trafo:8",
                                           "pp:trafo:12"}
    assert set(frames.service_points["code"]) == {f"pp:load:{load}" for load in (1, 2, 3, 4, 5)}
    assert row(frames.service_points, "pp:load:2")["account_number"] == "PP-LOAD-2"
    assert list(frames.sources["code"]) == ["pp:ext_grid:0"]


def test_a_line_switch_sits_in_series_at_its_end(frames):
    breaker, opened = row(frames.devices, "pp:switch:20"), row(frames.devices, "pp:switch:21")
    assert (breaker["kind"], breaker["from_node"], breaker["to_node"]) == ("breaker", "pp:bus:1", "pp:switch:20:node")
    assert (opened["kind"], opened["from_node"], opened["to_node"]) == ("switch", "pp:bus:2", "pp:switch:21:node")
    assert (breaker["normal_state"], breaker["current_state"]) == ("closed", "closed")
    assert (opened["normal_state"], opened["current_state"]) == ("open", "open")
    line = row(frames.segments, "pp:line:5")
    assert (line["from_node"], line["to_node"]) == ("pp:switch:20:node", "pp:switch:21:node")
    # The switch is drawn a little along the line from its bus, and the line starts there.
    node = row(frames.nodes, "pp:switch:20:node")["geometry"]
    assert 0 < node.distance(row(frames.nodes, "pp:bus:1")["geometry"]) <= SWITCH_OFFSET_DEG * 1.001
    assert line["geometry"].coords[0] == pytest.approx(node.coords[0])
    assert line["length_m"] == 1000.0


def test_bus_and_transformer_switches(frames):
    coupler = row(frames.devices, "pp:switch:30")
    assert (coupler["kind"], coupler["from_node"], coupler["to_node"]) == ("switch", "pp:bus:2", "pp:bus:4")
    assert row(frames.devices, "pp:switch:31")["normal_state"] == "open"
    closed, opened = row(frames.devices, "pp:switch:40"), row(frames.devices, "pp:switch:41")
    assert (closed["from_node"], closed["to_node"]) == ("pp:bus:4", "pp:switch:40:node")
    assert (opened["from_node"], opened["to_node"], opened["normal_state"]) == ("pp:bus:7", "pp:switch:41:node", "open")
    transformer = row(frames.devices, "pp:trafo:8")
    assert (transformer["kind"], transformer["from_node"], transformer["to_node"]) == \
        ("transformer", "pp:switch:40:node", "pp:bus:6")
    assert transformer["rated_kva"] == pytest.approx(400.0)
    assert row(frames.devices, "pp:trafo:12")["from_node"] == "pp:switch:41:node"
    assert set(frames.transformer_areas["transformer"]) == {"pp:trafo:3", "pp:trafo:8", "pp:trafo:12"}


def test_out_of_service_elements_stay_out_of_service(frames):
    assert row(frames.nodes, "pp:bus:9")["in_service"] is False
    assert row(frames.segments, "pp:line:11")["in_service"] is False
    assert row(frames.service_points, "pp:load:3")["in_service"] is False
    assert row(frames.service_points, "pp:load:5")["in_service"] is False
    assert row(frames.nodes, "pp:bus:11")["in_service"] is True


def test_feeders_substations_and_areas(frames):
    assert list(frames.substations["code"]) == ["pp:bus:0:substation"]
    assert row(frames.sources, "pp:ext_grid:0")["substation"] == "pp:bus:0:substation"
    assert set(frames.feeders["code"]) == {"pp:line:5:feeder", "pp:line:9:feeder", "pp:line:13:feeder"}
    assert row(frames.nodes, "pp:bus:5")["feeder"] == "pp:line:9:feeder"
    assert row(frames.nodes, "pp:bus:1")["feeder"] is None  # the substation's busbar
    assert row(frames.devices, "pp:switch:20")["feeder"] == "pp:line:5:feeder"
    assert row(frames.service_points, "pp:load:2")["transformer_area"] == "pp:trafo:8:area"
    assert row(frames.service_points, "pp:load:1")["transformer_area"] == "pp:trafo:3:area"


def test_tiny_net_energises_what_pandapower_supplies(tiny):
    net = copy.deepcopy(tiny)
    assert energised_buses(frames_from_net(net)) == supplied_buses(net) == {0, 1, 5, 11}
    net.switch.loc[21, "closed"] = True
    net.switch.loc[41, "closed"] = True
    assert energised_buses(frames_from_net(net)) == supplied_buses(net) == {0, 1, 2, 4, 5, 6, 11}
    net.switch.loc[31, "closed"] = True
    assert energised_buses(frames_from_net(net)) == supplied_buses(net) == {0, 1, 2, 4, 5, 6, 7, 10, 11}


def test_trafo3w_is_a_star_of_three_transformers():
    net = pp.create_empty_network()
    for bus, (kv, x) in enumerate(((110.0, 7.94), (20.0, 7.95), (10.0, 7.96))):
        pp.create_bus(net, kv, index=bus * 2, geodata=(x, 48.47))
    pp.create_ext_grid(net, 0)
    pp.create_transformer3w(net, 0, 2, 4, "63/25/38 MVA 110/20/10 kV", index=7)
    pp.create_switch(net, 4, 7, "t3", closed=False, index=3)
    frames = frames_from_net(net)
    assert row(frames.nodes, "pp:trafo3w:7")["kind"] == "junction"
    assert {(d["code"], d["from_node"], d["to_node"]) for d in frames.devices.to_dict("records")} == {
        ("pp:trafo3w:7:hv", "pp:bus:0", "pp:trafo3w:7"), ("pp:trafo3w:7:mv", "pp:trafo3w:7", "pp:bus:2"),
        ("pp:trafo3w:7:lv", "pp:trafo3w:7", "pp:switch:3:node"), ("pp:switch:3", "pp:bus:4", "pp:switch:3:node")}
    assert energised_buses(frames) == supplied_buses(net) == {0, 2}


def test_slack_gens_are_sources_and_other_gens_are_not(tiny):
    net = copy.deepcopy(tiny)
    pp.create_gen(net, 5, p_mw=1.0, slack=True, index=4)
    pp.create_gen(net, 6, p_mw=1.0, index=6)
    frames = frames_from_net(net)
    assert row(frames.sources, "pp:gen:4")["kind"] == "generator"
    assert "pp:gen:6" not in set(frames.sources["code"])


@pytest.mark.parametrize("change, table, index, reason", [
    (lambda net: net.switch.loc.__setitem__((20, "bus"), 5), "switch", 20, "not an end of line 5"),
    (lambda net: net.bus.__setitem__("geo", None), "bus", 0, "no coordinates"),
    (lambda net: net.load.loc.__setitem__((2, "bus"), 99), "load", 2, "bus 99 is not a bus"),
    (lambda net: net.switch.loc.__setitem__((30, "et"), "x"), "switch", 30, "unknown element type"),
])
def test_refuses_what_it_cannot_map_by_table_and_index(tiny, change, table, index, reason):
    net = copy.deepcopy(tiny)
    change(net)
    with pytest.raises(ImportFailed) as refused:
        frames_from_net(net)
    assert (refused.value.layer, refused.value.row) == (table, index)
    assert reason in refused.value.reason


@pytest.fixture(scope="module")
def oberrhein():
    return pn.mv_oberrhein()


def test_mv_oberrhein_lands_near_offenburg_with_its_open_switches(oberrhein):
    frames = frames_from_net(oberrhein)
    xs = [geom.x for geom in frames.nodes["geometry"]]
    ys = [geom.y for geom in frames.nodes["geometry"]]
    west, south, east, north = OFFENBURG
    assert west < min(xs) and max(xs) < east and south < min(ys) and max(ys) < north
    opened = frames.devices[frames.devices["normal_state"] == "open"]
    assert sorted(opened["code"]) == sorted(f"pp:switch:{index}" for index in oberrhein.switch.index[~oberrhein.switch.closed])
    assert len(opened) == 6
    assert len(frames.segments) == len(oberrhein.line) and len(frames.service_points) == len(oberrhein.load)
    assert frames.segments["feeder"].notna().all()


def test_mv_oberrhein_energises_what_pandapower_supplies_under_changes(oberrhein):
    rng = np.random.default_rng(7)
    assert energised_buses(frames_from_net(oberrhein)) == supplied_buses(oberrhein)
    for _ in range(6):
        net = copy.deepcopy(oberrhein)
        net.switch.loc[rng.choice(net.switch.index, 4, replace=False), "closed"] = False
        net.switch.loc[net.switch.index[~oberrhein.switch.closed][:2], "closed"] = True
        net.line.loc[rng.choice(net.line.index, 2, replace=False), "in_service"] = False
        net.bus.loc[rng.choice(net.bus.index, 1), "in_service"] = False
        assert energised_buses(frames_from_net(net)) == supplied_buses(net)
