"""The schematic layout of a pandapower net without coordinates, without a database.

pandapower's ``example_multivoltage`` (57 buses from 380 kV down to 0.4 kV, a trafo3w, an
impedance, 88 switches) has no coordinates at all; the tiny net of the mapping's tests has
every bus placed, and loses some of its coordinates here.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pandapower.networks as pn
import pytest
import shapely

from geo.errors import ImportFailed, Invalid
from tests.unit.test_pandapower_mapping import energised_buses, row, supplied_buses, tiny_net
from topology.pandapower_mapping import SCHEMATIC_STEP_M, frames_from_net, layered_tree, schematic_layout

pytestmark = pytest.mark.pandapower

ORIGIN = (7.94, 48.47)
LAYERS_WITH_A_PLACE = ("substations", "nodes", "segments", "devices", "service_points")


@pytest.fixture(scope="module")
def multivoltage():
    return pn.example_multivoltage()


@pytest.fixture(scope="module")
def frames(multivoltage):
    return frames_from_net(multivoltage, ORIGIN)


def bus_points(frames) -> dict[int, tuple[float, float]]:
    """pandapower bus index -> (lon, lat) of its node."""
    buses = frames.nodes[frames.nodes["code"].str.fullmatch(r"pp:bus:\d+")]
    return {int(code.split(":")[2]): (point.x, point.y) for code, point in zip(buses["code"], buses["geometry"])}


def metres(origin, point) -> float:
    """Distance in metres on the sphere (plenty for a few kilometres)."""
    (lon0, lat0), (lon, lat) = origin, point
    east = (lon - lon0) * 111_320.0 * math.cos(math.radians(lat0))
    return math.hypot(east, (lat - lat0) * 111_320.0)


def test_without_coordinates_and_without_origin_the_net_is_refused_naming_a_bus_and_the_option(multivoltage):
    with pytest.raises(ImportFailed) as refused:
        frames_from_net(multivoltage)
    assert (refused.value.layer, refused.value.row) == ("bus", int(multivoltage.bus.index[0]))
    assert "no coordinates" in refused.value.reason and "--origin" in refused.value.reason


def test_every_bus_has_a_place_of_its_own_near_the_origin(multivoltage, frames):
    points = bus_points(frames)
    assert set(points) == set(multivoltage.bus.index)
    assert len(set(points.values())) == len(points)
    distances = [metres(ORIGIN, point) for point in points.values()]
    # 57 buses, a hundred metres apart: a few kilometres across, all of it south of the origin.
    assert max(distances) < 5_000
    assert all(lat <= ORIGIN[1] for _lon, lat in points.values())
    places = list(points.values())
    closest = min(metres(a, b) for i, a in enumerate(places) for b in places[i + 1:])
    assert closest == pytest.approx(SCHEMATIC_STEP_M)


def test_the_source_is_on_top_and_each_bus_one_step_below_the_one_it_hangs_on(multivoltage, frames):
    points = bus_points(frames)
    grid = int(multivoltage.ext_grid.bus.iloc[0])
    assert points[grid][1] == pytest.approx(ORIGIN[1])
    # Rows a step apart, none empty.
    rows = {round((ORIGIN[1] - lat) * 111_320.0 / SCHEMATIC_STEP_M, 6) for _lon, lat in points.values()}
    assert rows == set(map(float, range(len(rows))))


def test_the_layout_is_deterministic(multivoltage, frames):
    again = frames_from_net(copy.deepcopy(multivoltage), ORIGIN)
    for name in LAYERS_WITH_A_PLACE:
        first, second = getattr(frames, name), getattr(again, name)
        assert list(first["code"]) == list(second["code"])
        assert shapely.equals_exact(first["geometry"].to_numpy(), second["geometry"].to_numpy(), 0).all(), name


def test_the_drawing_does_not_move_when_switches_open_or_elements_go_out_of_service(multivoltage):
    net = copy.deepcopy(multivoltage)
    net.switch["closed"] = ~net.switch["closed"]
    net.line["in_service"] = False
    assert schematic_layout(net, ORIGIN).equals(schematic_layout(multivoltage, ORIGIN))


def test_every_element_with_a_place_is_marked_schematic(frames):
    for name in LAYERS_WITH_A_PLACE:
        layer = getattr(frames, name)
        assert len(layer) and layer["schematic"].dtype == bool and layer["schematic"].all(), name


def test_lines_keep_pandapowers_length_and_are_drawn_between_their_buses(multivoltage, frames):
    segments = frames.segments.set_index("code")
    lengths = segments.loc[[f"pp:line:{index}" for index in multivoltage.line.index], "length_m"]
    assert lengths.tolist() == pytest.approx((multivoltage.line["length_km"] * 1000).tolist())
    # The impedance has no length of its own: the loader gives it its drawn length.
    assert np.isnan(segments.loc["pp:impedance:0", "length_m"])
    points = bus_points(frames)
    nodes = frames.nodes.set_index("code")["geometry"]
    for index, line in multivoltage.line.iterrows():
        shape = segments.loc[f"pp:line:{index}", "geometry"]
        start, end = (nodes[segments.loc[f"pp:line:{index}", end]] for end in ("from_node", "to_node"))
        assert shape.coords[0] == pytest.approx(start.coords[0]) and shape.coords[-1] == pytest.approx(end.coords[0])
        assert metres(points[line.from_bus], points[line.to_bus]) > 0


def test_the_mapping_means_the_same_in_a_schematic_layout(multivoltage, frames):
    assert energised_buses(frames) == supplied_buses(multivoltage)


def test_a_net_with_coordinates_ignores_the_origin():
    net = tiny_net()
    placed, located = frames_from_net(net, ORIGIN), frames_from_net(net)
    for name in LAYERS_WITH_A_PLACE:
        assert not getattr(placed, name)["schematic"].any()
        assert shapely.equals_exact(getattr(placed, name)["geometry"].to_numpy(),
                                    getattr(located, name)["geometry"].to_numpy(), 0).all()


def test_a_net_with_some_coordinates_is_laid_out_whole():
    net = tiny_net()
    net.bus.loc[[5, 6], "geo"] = None
    with pytest.raises(ImportFailed) as refused:
        frames_from_net(net)
    assert (refused.value.layer, refused.value.row) == ("bus", 5)
    frames = frames_from_net(net, ORIGIN)
    assert frames.nodes["schematic"].all()
    # The coordinates the other buses have are not used: the source, bus 0, is on the origin's row.
    elsewhere = frames_from_net(net, (0.0, 0.0))
    assert row(elsewhere.nodes, "pp:bus:0")["geometry"].y == pytest.approx(0.0)
    assert max(metres((0.0, 0.0), (point.x, point.y)) for point in elsewhere.nodes["geometry"]) < 2_000


@pytest.mark.parametrize("origin", [(179.999, 0.0), (-179.999, 10.0), (0.0, -85.04), (10.0, 90.0)])
def test_a_layout_that_would_leave_the_map_is_refused(multivoltage, origin):
    with pytest.raises(Invalid) as refused:
        frames_from_net(multivoltage, origin)
    assert "does not fit" in refused.value.detail and refused.value.field == "origin"


def test_layered_tree_hangs_several_sources_side_by_side():
    # 0 and 5 feed a chain 0-1-2-3-4-5 from both ends; 2 hangs on 0, 3 on 5 (nearest source).
    places = layered_tree(range(6), [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], [0, 5])
    assert places == {0: (0.0, 0), 1: (0.0, 1), 2: (0.0, 2), 5: (2.0, 0), 4: (2.0, 1), 3: (2.0, 2)}
