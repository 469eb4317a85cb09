"""Power-flow verification on the demo city (3000 customers) loaded into PostGIS: the best plan
for a fault on a lateral's fuse and on a trunk segment is verified over HTTP, with the
conductors, lengths, transformer ratings and demands read back from the database."""
from __future__ import annotations

import pytest

from tests.accounts import client_as
from topology.demo import generate_city
from topology.loader import load_network

pytestmark = pytest.mark.pandapower
LATERAL_FUSE, TRUNK_SEGMENT = "UW001-F01-L01-FU", "UW001-F01-C02"


@pytest.fixture(scope="module")
def frames():
    """The demo city, generated once for the module."""
    return generate_city(3000, seed=3)


@pytest.fixture()
def client(app, connection, frames):
    """A dispatcher's client on the demo city (rolled back after the test)."""
    load_network(connection, frames)
    return client_as(app, "dispatcher")


@pytest.mark.parametrize("code", [LATERAL_FUSE, TRUNK_SEGMENT])
def test_the_best_plan_verifies(client, frames, code):
    response = client.get(f"/api/restoration/{code}?verify=powerflow")
    assert response.status_code == 200, response.get_data(as_text=True)
    best = response.get_json()["plans"][0]
    assert best["feasible"] and best["close"]
    flow = best["powerflow"]
    assert flow["converged"], flow
    # the energised part around the closed tie: the substation's feeders, MV and LV, hundreds of buses
    assert flow["buses"] > 500
    segments, devices = set(frames.segments["code"]), set(frames.devices["code"])
    nodes = set(frames.nodes["code"])
    assert flow["max_line_loading"]["element"] in segments and 0 < flow["max_line_loading"]["percent"] < 100
    assert flow["max_transformer_loading"]["element"] in devices
    assert 0 < flow["max_transformer_loading"]["percent"] < 100
    # sources at 1.0 pu; the LV ends a few percent lower, still within the band
    assert flow["max_voltage"] == {"bus": flow["max_voltage"]["bus"], "pu": pytest.approx(1.0)}
    assert flow["min_voltage"]["bus"] in nodes and 0.95 <= flow["min_voltage"]["pu"] < 0.99
    assert flow["ok"] and flow["reasons"] == []
