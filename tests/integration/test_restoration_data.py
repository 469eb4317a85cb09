"""The figures restoration plans check, kept through every way a network travels: loaded into
PostGIS and read back as arrays, exported and imported again, mapped from pandapower, drawn by
the demo city; refused when negative."""
from __future__ import annotations

import numpy as np
import pandapower.networks
import pytest

from geo.errors import ImportFailed
from tests.networks import feeders_with_ties
from topology.demo import AMPACITY_A, generate_city
from topology.importers import export_network, read_network_file
from topology.loader import load_network, normalise_layer
from topology.pandapower_mapping import frames_from_net
from topology.read import read_network


def _by_code(codes, values) -> dict:
    """Code -> value, NaN left out."""
    return {code: float(value) for code, value in zip(codes.tolist(), values.tolist()) if not np.isnan(value)}


def test_read_back_from_postgis_and_exported_again(connection, tmp_path):
    load_network(connection, feeders_with_ties())
    data, _version = read_network(connection)
    assert _by_code(data.sp_code, data.sp_demand_kw) == {"C2": 2.0, "C3": 3.0, "C4": 2.0, "C6": 4.0, "C8": 1.0}
    assert _by_code(data.edge_code, data.edge_ampacity_a) == {"s3": 10.0, "s4": pytest.approx(0.1)}
    assert _by_code(data.feeder_code, data.feeder_rating_kva) == {"F2": 100.0}
    assert set(data.node_voltage_kv.tolist()) == {20.0}
    export_network(connection, tmp_path / "network.gpkg")
    back = read_network_file(tmp_path / "network.gpkg")
    assert back.service_points.set_index("code")["demand_kw"].to_dict() == {
        "C2": 2.0, "C3": 3.0, "C4": 2.0, "C6": 4.0, "C8": 1.0}
    assert back.segments.set_index("code")["ampacity_a"].dropna().to_dict() == {"s3": 10.0, "s4": 0.1}
    assert back.feeders.set_index("code")["rating_kva"].dropna().to_dict() == {"F2": 100.0}


@pytest.mark.parametrize("layer, column", [("service_points", "demand_kw"), ("segments", "ampacity_a"),
                                           ("feeders", "rating_kva")])
def test_negative_figures_are_refused(layer, column):
    frame = getattr(feeders_with_ties(), layer)
    frame[column] = -1.0
    with pytest.raises(ImportFailed, match=f"{column} must be at least 0"):
        normalise_layer(layer, frame)


@pytest.mark.pandapower
def test_pandapower_loads_lines_and_transformers_carry_their_figures():
    net = pandapower.networks.mv_oberrhein()
    frames = frames_from_net(net)
    demand = frames.service_points.set_index("code")["demand_kw"]
    load = net.load.index[0]
    assert demand[f"pp:load:{load}"] == pytest.approx(net.load.at[load, "p_mw"] * 1000 * net.load.at[load, "scaling"])
    ampacity = frames.segments.set_index("code")["ampacity_a"]
    line = net.line.index[0]
    assert ampacity[f"pp:line:{line}"] == pytest.approx(net.line.at[line, "max_i_ka"] * 1000 * net.line.at[line, "parallel"])


def test_the_demo_city_gives_every_customer_a_demand_and_every_conductor_an_ampacity():
    frames = generate_city(300, seed=3)
    assert frames.service_points["demand_kw"].between(1.0, 6.0).all()
    assert frames.segments["ampacity_a"].isin(list(AMPACITY_A.values())).all()
    assert frames.feeders["rating_kva"].gt(0).all()
    again = generate_city(300, seed=3)
    assert frames.service_points["demand_kw"].equals(again.service_points["demand_kw"])
