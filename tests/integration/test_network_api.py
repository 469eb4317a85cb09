"""The network's bbox layer endpoints, extent and feeders on a real PostGIS."""
from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from geo import accounts
from tests.accounts import client_as
from tests.networks import ORIGIN, STEP, feeder_with_tie
from topology.layers import FEEDER_COLOURS
from topology.loader import load_network

# The whole of feeder_with_tie (grid x 0..4, y 0..2), with a margin.
EVERYTHING = f"{ORIGIN[0] - STEP},{ORIGIN[1] - STEP},{ORIGIN[0] + 5 * STEP},{ORIGIN[1] + 3 * STEP}"
# Only the top row (y = 2): feeder F1's a-b-c-d, not feeder 2's e-f.
TOP_ROW = f"{ORIGIN[0] - STEP},{ORIGIN[1] + 1.5 * STEP},{ORIGIN[0] + 5 * STEP},{ORIGIN[1] + 3 * STEP}"
FAR_AWAY = "-10,-10,-9,-9"


@pytest.fixture()
def network(connection):
    """feeder_with_tie, loaded into the test's rolled-back transaction."""
    load_network(connection, feeder_with_tie())


def _features(client, path: str) -> dict:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/geo+json"
    return response.get_json(force=True)


def _ids(collection: dict) -> set[str]:
    return {feature["id"] for feature in collection["features"]}


def test_segments_are_a_feature_collection_with_feeder_colours(client, network):
    collection = _features(client, f"/api/network/segments?bbox={EVERYTHING}")
    assert collection["type"] == "FeatureCollection"
    assert _ids(collection) == {"s1", "s2", "s3"}
    assert collection["numberReturned"] == collection["numberMatched"] == 3
    assert collection["truncated"] is False
    s1 = next(feature for feature in collection["features"] if feature["id"] == "s1")
    assert s1["type"] == "Feature" and s1["geometry"]["type"] == "LineString"
    assert s1["geometry"]["coordinates"][0] == pytest.approx([ORIGIN[0] + STEP, ORIGIN[1] + 2 * STEP])
    assert s1["properties"]["feeder"] == "F1"
    assert s1["properties"]["colour"] in FEEDER_COLOURS
    assert 70 < s1["properties"]["length_m"] < 80


def test_the_bbox_selects_what_it_intersects(client, network):
    assert _ids(_features(client, f"/api/network/segments?bbox={TOP_ROW}")) == {"s1", "s2"}
    assert _ids(_features(client, f"/api/network/devices?bbox={TOP_ROW}")) == {"B1", "SW1", "TIE"}
    assert _features(client, f"/api/network/segments?bbox={FAR_AWAY}")["features"] == []


def test_devices_carry_their_states_and_filter_by_kind(client, network):
    collection = _features(client, f"/api/network/devices?bbox={EVERYTHING}&kind=switch")
    states = {f["id"]: (f["properties"]["kind"], f["properties"]["normal_state"], f["properties"]["current_state"])
              for f in collection["features"]}
    assert states == {"SW1": ("switch", "closed", "closed"), "TIE": ("switch", "open", "open")}
    assert _ids(_features(client, f"/api/network/devices?bbox={EVERYTHING}&kind=breaker,fuse")) == {"B1", "B2"}
    assert len(_features(client, f"/api/network/devices?bbox={EVERYTHING}")["features"]) == 4
    assert _ids(_features(client, f"/api/network/devices?bbox={EVERYTHING}&state=open")) == {"TIE"}
    assert _ids(_features(client, f"/api/network/devices?bbox={EVERYTHING}&state=closed&kind=switch")) == {"SW1"}


def test_segments_and_devices_filter_by_level(client, connection):
    frames = feeder_with_tie()
    frames.nodes["voltage_kv"] = 20.0
    frames.nodes.loc[frames.nodes.code == "c", "kind"] = "lv"  # s2 starts at c
    frames.nodes.loc[frames.nodes.code == "e", "voltage_kv"] = 0.4  # s3 starts at e
    load_network(connection, frames)
    assert _ids(_features(client, f"/api/network/segments?bbox={EVERYTHING}&level=mv")) == {"s1"}
    assert _ids(_features(client, f"/api/network/segments?bbox={EVERYTHING}&level=LV")) == {"s2", "s3"}
    s1 = _features(client, f"/api/network/segments?bbox={EVERYTHING}&level=mv")["features"][0]
    assert s1["properties"]["voltage_kv"] == 20.0
    # Devices too are as LV as their from-node: TIE starts at c.
    assert _ids(_features(client, f"/api/network/devices?bbox={EVERYTHING}&level=lv")) == {"TIE"}
    assert _ids(_features(client, f"/api/network/devices?bbox={EVERYTHING}&level=mv&kind=switch")) == {"SW1"}


def test_segments_of_unknown_voltage_count_as_mv(client, network):
    assert _ids(_features(client, f"/api/network/segments?bbox={EVERYTHING}&level=mv")) == {"s1", "s2", "s3"}
    assert _features(client, f"/api/network/segments?bbox={EVERYTHING}&level=lv")["features"] == []


def test_service_points_show_no_personal_data(app, network):
    # Customers' points (account numbers, addresses) are for dispatchers and planners.
    collection = _features(client_as(app, "dispatcher"), f"/api/network/service_points?bbox={EVERYTHING}")
    assert _ids(collection) == {"C3", "C4", "C6"}
    properties = collection["features"][0]["properties"]
    assert {"code", "account_number", "address"} <= set(properties)
    assert not {"name", "phone"} & set(properties)
    assert "Customer" not in str(collection)


@pytest.mark.parametrize("role, status", [(None, 401), ("crew", 403), ("admin", 403), ("planner", 200),
                                          ("dispatcher", 200)])
def test_service_points_are_for_dispatchers_and_planners(app, network, role, status):
    response = client_as(app, role).get(f"/api/network/service_points?bbox={EVERYTHING}")
    assert response.status_code == status, response.get_data(as_text=True)
    if status != 200:
        assert response.mimetype == "application/problem+json" and "C3" not in response.get_data(as_text=True)
    else:
        assert _ids(response.get_json(force=True)) == {"C3", "C4", "C6"}


@pytest.mark.parametrize("feeders, expected", [(["F1"], {"C3", "C4", "C6"}), (["F2"], set()), ([], set())])
def test_a_dispatcher_limited_to_feeders_sees_only_their_customers(app, connection, network, feeders, expected):
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    accounts.create_account(session, "zoned", "dispatcher", None, feeders)
    token = accounts.issue_token(session, "zoned").token
    session.flush()
    zoned = app.test_client()
    zoned.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert _ids(_features(zoned, f"/api/network/service_points?bbox={EVERYTHING}")) == expected
    # The network itself is not hidden from it.
    assert _ids(_features(zoned, f"/api/network/segments?bbox={EVERYTHING}")) == {"s1", "s2", "s3"}


@pytest.mark.parametrize("layer, expected", [
    ("substations", {"S1"}), ("sources", {"SRC1", "SRC2"}), ("transformers", set()), ("transformer_areas", set()),
])
def test_every_layer_answers(client, network, layer, expected):
    assert _ids(_features(client, f"/api/network/{layer}?bbox={EVERYTHING}")) == expected


def test_transformers_count_the_customers_of_their_area(client, connection):
    frames = feeder_with_tie()
    frames.devices.loc[len(frames.devices)] = {
        "code": "T1", "kind": "transformer", "from_node": "c", "to_node": "d", "feeder": "F1",
        "normal_state": "closed", "current_state": "closed", "geometry": frames.nodes.geometry[2]}
    frames.transformer_areas = frames.transformer_areas.reindex(range(1))
    frames.transformer_areas.loc[0, ["code", "transformer", "geometry"]] = ["TA1", "T1", frames.nodes.geometry[3].buffer(0.0005)]
    frames.service_points["transformer_area"] = ["TA1", "TA1", None]
    load_network(connection, frames)
    (transformer,) = _features(client, f"/api/network/transformers?bbox={EVERYTHING}")["features"]
    assert transformer["id"] == "T1"
    assert transformer["properties"]["area"] == "TA1" and transformer["properties"]["customers"] == 2
    (area,) = _features(client, f"/api/network/transformer_areas?bbox={EVERYTHING}")["features"]
    assert area["properties"]["transformer"] == "T1" and area["geometry"]["type"] == "Polygon"


def test_the_limit_truncates_and_says_so(client, network):
    collection = _features(client, f"/api/network/segments?bbox={EVERYTHING}&limit=2")
    assert len(collection["features"]) == collection["numberReturned"] == 2
    assert "numberMatched" not in collection and collection["truncated"] is True


def test_the_limit_is_capped_by_the_configuration(app, client, network):
    app.config["API_MAX_FEATURES"] = 2
    assert _features(client, f"/api/network/segments?bbox={EVERYTHING}")["numberReturned"] == 2
    assert _features(client, f"/api/network/segments?bbox={EVERYTHING}&limit=100")["numberReturned"] == 2


def test_without_a_bbox_the_whole_layer_comes_back(client, network):
    assert _ids(_features(client, "/api/network/segments")) == {"s1", "s2", "s3"}


@pytest.mark.parametrize("query, mentions", [
    ("bbox=1,2,3", "four numbers"),
    ("bbox=1,2,3,4,5", "four numbers"),
    ("bbox=a,b,c,d", "four numbers"),
    ("bbox=1,2,nan,4", "finite"),
    ("bbox=8,48,7,49", "west is greater than east"),
    ("bbox=7,49,8,48", "south is greater than north"),
    ("bbox=-181,0,0,1", "longitudes"),
    ("bbox=0,-91,1,1", "latitudes"),
    ("limit=0", "at least 1"),
    ("limit=ten", "whole number"),
    ("kind=teleporter", "unknown device kind 'teleporter'"),
])
def test_bad_parameters_are_400_problems(client, query, mentions):
    response = client.get(f"/api/network/devices?{query}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert mentions in response.get_json(force=True)["detail"]


@pytest.mark.parametrize("path, mentions", [
    ("/api/network/segments?kind=switch", "kind filters the devices layer only"),
    ("/api/network/transformers?level=mv", "level filters the segments and devices layers only"),
    ("/api/network/segments?level=hv", "level must be mv or lv"),
    ("/api/network/devices?state=half", "state must be open or closed"),
    ("/api/network/segments?state=open", "state filters the devices layer only"),
])
def test_a_filter_on_the_wrong_layer_is_refused(client, path, mentions):
    response = client.get(path)
    assert response.status_code == 400 and mentions in response.get_json(force=True)["detail"]


def test_an_unknown_layer_is_a_404_naming_the_layers(client):
    response = client.get("/api/network/pylons?bbox=0,0,1,1")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert "'pylons'" in response.get_json(force=True)["detail"] and "segments" in response.get_json(force=True)["detail"]


def test_extent_covers_the_network(client, network):
    west, south, east, north = client.get("/api/network/extent").get_json()["bbox"]
    assert (west, south) == pytest.approx(ORIGIN)
    assert (east, north) == pytest.approx((ORIGIN[0] + 4 * STEP, ORIGIN[1] + 2 * STEP))


def test_extent_of_an_empty_network_is_null(client):
    assert client.get("/api/network/extent").get_json() == {"bbox": None}


def test_the_extent_follows_the_topology_version(client, connection):
    assert client.get("/api/network/extent").get_json() == {"bbox": None}
    load_network(connection, feeder_with_tie())  # bumps the version
    assert client.get("/api/network/extent").get_json()["bbox"] is not None


def test_feeders_list_their_colours(client, network):
    (feeder,) = client.get("/api/network/feeders").get_json()["feeders"]
    assert feeder["code"] == "F1" and feeder["substation"] == "S1" and feeder["colour"] in FEEDER_COLOURS


def test_the_map_page_renders_with_local_assets_only(client, network):
    response = client.get("/map/network")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "GridAtlas — Network" in html and "/static/vendor/leaflet.markercluster.js" in html
    assert "/static/js/network_map.js" in html and '"detailZoom": 16' in html
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    assert "\"extent\": [" in html  # the page fits its first view to the network's extent
    assert "/api/network/" in html and '"features"' not in html  # layers are fetched, not embedded


def test_the_map_page_of_an_empty_network(client):
    response = client.get("/map/network")
    assert response.status_code == 200 and '"extent": null' in response.get_data(as_text=True)
