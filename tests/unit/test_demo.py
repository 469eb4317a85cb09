"""The demo city generator: deterministic, radial and fully energised, realistic data."""
from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pandas as pd
import phonenumbers
import pytest
import shapely

from topology.demo import (
    CITY, DRAMA_NUMBER_PREFIXES, MAX_CUSTOMERS, MIN_CUSTOMERS, STREET_NAMES, account_numbers, city_for,
    generate_city, luhn_valid,
)
from topology.loader import LAYERS

CUSTOMERS = 1500


@pytest.fixture(scope="module")
def frames():
    """A small demo city (built once for the module)."""
    return generate_city(CUSTOMERS, seed=7)


@pytest.fixture(scope="module", params=[CUSTOMERS, 45_000], ids=["one district", "2x2 districts"])
def network(request, frames):
    """The small city, and one of several districts whose feeders tie across district boundaries."""
    return frames if request.param == CUSTOMERS else generate_city(request.param, seed=7)


def normal_state_graph(frames) -> nx.Graph:
    """The network in its normal state: in-service segments and closed, in-service devices."""
    graph = nx.Graph()
    graph.add_nodes_from(frames.nodes["code"])
    for layer in (frames.segments, frames.devices):
        conducting = layer["in_service"].astype(bool)
        if "normal_state" in layer:
            conducting &= layer["normal_state"] == "closed"
        for row in layer[conducting].itertuples():
            assert not graph.has_edge(row.from_node, row.to_node), f"parallel edge {row.code}"
            graph.add_edge(row.from_node, row.to_node, code=row.code)
    return graph


def test_same_size_and_seed_give_identical_frames(frames):
    again = generate_city(CUSTOMERS, seed=7)
    for (name, one), (_, other) in zip(frames.items(), again.items()):
        geometry = "geometry" in one
        pd.testing.assert_frame_equal(one.drop(columns="geometry") if geometry else one,
                                      other.drop(columns="geometry") if geometry else other, obj=name)
        if geometry:
            assert shapely.equals_exact(np.asarray(one["geometry"]), np.asarray(other["geometry"]), 0).all(), name


def test_another_seed_gives_other_customers_on_the_same_grid(frames):
    other = generate_city(CUSTOMERS, seed=8)
    assert other.counts()["transformer_areas"] == frames.counts()["transformer_areas"]
    assert list(other.feeders["code"]) == list(frames.feeders["code"])
    assert set(other.service_points["name"]) != set(frames.service_points["name"])


def test_frames_have_the_layout_columns_and_unique_codes(frames):
    for name, frame in frames.items():
        layer = LAYERS[name]
        assert list(frame.columns) == layer.column_names + (["geometry"] if layer.geometry else []), name
        assert frame["code"].is_unique, name
    all_codes = pd.concat([frame["code"] for _, frame in frames.items()])
    assert all_codes.is_unique


def test_references_resolve(frames):
    nodes = set(frames.nodes["code"])
    for layer in (frames.segments, frames.devices):
        assert set(layer["from_node"]) <= nodes and set(layer["to_node"]) <= nodes
    assert set(frames.sources["node"]) <= nodes and set(frames.service_points["node"]) <= nodes
    feeders = set(frames.feeders["code"])
    for layer in (frames.nodes, frames.segments, frames.devices):
        assert set(layer["feeder"].dropna()) <= feeders
    assert set(frames.transformer_areas["transformer"]) == set(
        frames.devices.loc[frames.devices["kind"] == "transformer", "code"])
    assert set(frames.service_points["transformer_area"]) <= set(frames.transformer_areas["code"])


def test_radial_and_fully_energised_in_the_normal_state(network):
    graph = normal_state_graph(network)
    sources = set(network.sources["node"])
    for component in nx.connected_components(graph):
        assert len(component & sources) == 1, "every island has exactly one source"
    assert nx.is_forest(graph), "no loops in the normal state"
    energised = nx.node_connected_component(graph, next(iter(sources)))
    for source in sources:
        energised |= nx.node_connected_component(graph, source)
    assert set(network.nodes["code"]) == energised
    assert set(network.service_points["node"]) <= energised


def test_every_feeder_is_one_tree_from_its_breaker(network):
    graph = normal_state_graph(network)
    busbars = set(network.nodes.loc[network.nodes["kind"] == "busbar", "code"])
    graph.remove_nodes_from(busbars)
    feeder_of = dict(zip(network.nodes["code"], network.nodes["feeder"]))
    components = list(nx.connected_components(graph))
    assert len(components) == len(network.feeders)
    for component in components:
        assert len({feeder_of[node] for node in component}) == 1
    breakers = network.devices[network.devices["kind"] == "breaker"]
    assert sorted(breakers["feeder"]) == sorted(network.feeders["code"])
    assert set(breakers["from_node"]) <= busbars


def test_ties_are_open_and_join_two_feeders(network):
    devices = network.devices
    feeder_of = dict(zip(network.nodes["code"], network.nodes["feeder"]))
    ties = devices[devices["normal_state"] == "open"]
    assert len(ties) > 0 and (ties["kind"] == "switch").all()
    for tie in ties.itertuples():
        assert feeder_of[tie.from_node] != feeder_of[tie.to_node], tie.code
    tied = {feeder_of[n] for n in ties["from_node"]} | {feeder_of[n] for n in ties["to_node"]}
    assert tied == set(network.feeders["code"]), "every feeder can be re-fed through a tie"
    # Closing all ties makes loops (ties join energised feeders).
    graph = normal_state_graph(network)
    graph.add_edges_from(zip(ties["from_node"], ties["to_node"]))
    assert not nx.is_forest(graph)


def test_protection_and_switchgear_on_every_feeder(network):
    devices = network.devices[network.devices["normal_state"] == "closed"]
    per_feeder = devices.groupby(["feeder", "kind"]).size().unstack(fill_value=0)
    assert (per_feeder["breaker"] == 1).all()
    assert (per_feeder["recloser"] >= 1).all()
    assert (per_feeder["switch"] >= 1).all()
    assert (per_feeder["fuse"] > per_feeder["transformer"]).all()  # laterals and LV outlets


def test_every_element_is_in_one_feeder_except_the_busbars(network):
    nodes = network.nodes
    assert nodes.loc[nodes["feeder"].isna(), "kind"].eq("busbar").all()
    assert nodes.loc[nodes["kind"] == "busbar", "feeder"].isna().all()
    assert network.segments["feeder"].notna().all() and network.devices["feeder"].notna().all()
    assert len(network.sources) == 2 * len(network.substations)
    assert set(network.sources["node"]) == set(nodes.loc[nodes["kind"] == "busbar", "code"])


def test_transformers_serve_5_to_60_customers_with_a_rating(frames):
    transformers = frames.devices[frames.devices["kind"] == "transformer"]
    assert transformers["rated_kva"].isin([100, 160, 250, 400, 630]).all()
    per_area = frames.service_points.groupby("transformer_area").size()
    assert len(per_area) == len(frames.transformer_areas)
    assert per_area.between(5, 60).all()
    assert len(frames.service_points) == CUSTOMERS
    polygons = np.asarray(frames.transformer_areas["geometry"])
    assert shapely.is_valid(polygons).all()
    points = np.asarray(frames.service_points["geometry"])
    area_of = dict(zip(frames.transformer_areas["code"], polygons))
    inside = shapely.contains(np.array([area_of[a] for a in frames.service_points["transformer_area"]]), points)
    assert inside.all(), "every customer lies in its transformer area"


def test_customer_data_looks_real(frames):
    customers = frames.service_points
    assert customers["account_number"].is_unique
    assert customers["account_number"].map(luhn_valid).all()
    assert customers["address"].str.fullmatch(r"[^,]+ \d+, \d{5} [^,]+").all()
    assert customers["address"].str.contains("Karlsruhe").all()
    assert customers["name"].str.len().gt(3).all()
    phones = customers["phone"].dropna()
    assert 0.7 < len(phones) / len(customers) < 1
    for phone in phones.sample(200, random_state=1):
        number = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(number) and number.country_code == 49, phone
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL) == phone
        assert any(phone.startswith(prefix) for prefix in DRAMA_NUMBER_PREFIXES)


def test_house_numbers_are_unique_per_street_and_start_at_1_or_2(frames):
    parts = frames.service_points["address"].str.extract(r"^(?P<street>.+) (?P<number>\d+), (?P<town>.+)$")
    nodes = frames.service_points["node"]
    houses = parts.assign(node=nodes).drop_duplicates("node")
    assert not houses.duplicated(["street", "town", "number"]).any(), "one house per address"
    numbers = houses["number"].astype(int)
    first = houses.assign(number=numbers, odd=numbers % 2).groupby(["street", "town", "odd"])["number"].min()
    assert set(first) <= {1, 2}


def test_segment_lengths_match_their_geometry(frames):
    segments = frames.segments
    metres = segments["length_m"].to_numpy()
    assert (metres > 0).all() and metres.max() < 2000
    lines = np.asarray(segments["geometry"])
    assert shapely.is_valid(lines).all()
    # Degrees to metres at 49 N: good enough to catch a wrong path.
    lon_lat = shapely.get_coordinates(lines)
    approx = shapely.length(shapely.transform(lines, lambda c: c * [111_320 * np.cos(np.radians(49.01)), 111_200]))
    assert np.allclose(approx, metres, rtol=0.01, atol=0.5)
    assert lon_lat[:, 0].min() > 8 and lon_lat[:, 1].min() > 48.5


def test_geometries_lie_in_the_city_bbox(frames):
    west, south, east, north = city_for(CUSTOMERS).bbox
    for name, frame in frames.items():
        if "geometry" in frame:
            bounds = shapely.total_bounds(np.asarray(frame["geometry"]))
            assert west <= bounds[0] and south <= bounds[1] and bounds[2] <= east and bounds[3] <= north, name


@pytest.mark.parametrize("customers", [1000, 1500, 20_000, 100_000, 1_000_000])
def test_layout_scales_with_the_customers(customers):
    city = city_for(customers)
    assert 5 * city.blocks <= customers <= 60 * city.blocks
    assert city.feeders >= 4
    west, south, east, north = city.bbox
    assert west < 8.4037 < east and south < 49.0094 < north
    area_km2 = (east - west) * 73.0 * (north - south) * 111.2
    assert 1500 < customers / area_km2 < 5000, "customers per square kilometre of a German city"


def test_default_city_is_karlsruhe_for_make_run():
    assert CITY.name == "Karlsruhe" and CITY == city_for(20_000)


@pytest.mark.parametrize("customers", [MIN_CUSTOMERS - 1, MAX_CUSTOMERS + 1])
def test_refuses_sizes_out_of_range(customers):
    with pytest.raises(ValueError, match="customers must be between"):
        city_for(customers)


def test_street_names_unique_within_a_town():
    assert len(set(STREET_NAMES)) == len(STREET_NAMES)
    streets = city_for(1_000_000).streets(seed=3)
    assert not streets.duplicated(["name", "town"]).any()
    assert streets["name"].str.contains(r"(?:straße|weg|allee|gasse|ring|pfad|Straße|Weg|Allee|Gasse|Ring|Pfad)$").all()
    assert set(streets["postcode"]) > {"76131", "76133", "76227", "76275"}


def test_account_numbers_distinct_at_scale():
    numbers = account_numbers(200_000, seed=5)
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"[1-9]\d{9}", n) for n in numbers[:1000])


def test_progress_is_silent_unless_asked(capsys):
    generate_city(MIN_CUSTOMERS, seed=1)
    assert capsys.readouterr().err == ""
    generate_city(MIN_CUSTOMERS, seed=1, progress=True)
    assert "demo city" in capsys.readouterr().err


def test_the_meshed_city_closes_every_tie_and_doubles_each_feeder_exit(network):
    from topology.demo import mesh
    from topology.index import Meshed, Topology
    from topology.network import network_data_from_lists

    meshed = mesh(network)
    ties = meshed.devices["code"].str.startswith("TIE-")
    assert ties.any() and (meshed.devices.loc[ties, ["normal_state", "current_state"]] == "closed").all().all()
    exits = meshed.segments[meshed.segments["code"].str.endswith("-EX")]
    doubles = meshed.segments[meshed.segments["code"].str.endswith("-EX2")]
    assert len(doubles) == len(exits) == len(network.feeders)
    assert sorted(zip(doubles["from_node"], doubles["to_node"])) == sorted(zip(exits["from_node"], exits["to_node"]))
    # Indexed: no radial section is left, every section is fed through several source edges,
    # and every node is energised.
    edges = [(row.code, "segment", row.from_node, row.to_node, True) for row in meshed.segments.itertuples()]
    edges += [(row.code, row.kind, row.from_node, row.to_node, row.current_state == "closed")
              for row in meshed.devices.itertuples()]
    data = network_data_from_lists(meshed.nodes["code"].tolist(), edges,
                                   list(zip(meshed.sources["code"], meshed.sources["node"])),
                                   list(zip(meshed.service_points["code"], meshed.service_points["node"])))
    topology = Topology(data)
    sections = [s for s in topology.sections if s is not None]
    assert sections and all(isinstance(s, Meshed) and len(s.source_edges) >= 2 for s in sections)
    assert topology.energised[data.sp_node].all()


@pytest.mark.parametrize("customers", [CUSTOMERS, 20_000])
def test_the_main_street_through_the_centre_is_kaiserstrasse_once_per_town(customers, frames):
    city = frames if customers == CUSTOMERS else generate_city(customers, seed=1)
    parts = city.service_points["address"].str.extract(r"^(?P<street>.+) (?P<number>\d+), \d{5} (?P<town>.+)$")
    on_it = (parts["street"] == "Kaiserstraße").to_numpy()
    assert on_it.any(), "the street a visitor types first is in the demo city"
    assert set(parts["town"][on_it]) == {"Karlsruhe"}
    # Its houses line one east-west street (within a block's depth north or south of it).
    latitudes = shapely.get_y(city.service_points.geometry.to_numpy()[on_it])
    assert latitudes.max() - latitudes.min() < 0.003
