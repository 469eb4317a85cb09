"""The trace API over PostGIS: JSON and GeoJSON answers, problem+json for every bad request."""
from __future__ import annotations

import pytest

from tests.accounts import client_as
from tests.networks import protected_feeder
from topology.loader import load_network

PROBLEM = "application/problem+json"


@pytest.fixture()
def client(app):
    """Traces and the supply state are for dispatchers and planners: a dispatcher's client."""
    return client_as(app, "dispatcher")


@pytest.fixture()
def network(connection):
    """protected_feeder loaded in the test's rolled-back transaction."""
    load_network(connection, protected_feeder())


def _problem(response, status: int) -> dict:
    """The problem+json body of a response with ``status``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json()


@pytest.mark.parametrize("role, status", [(None, 401), ("crew", 403), ("admin", 403), ("planner", 200),
                                          ("dispatcher", 200)])
def test_traces_and_the_supply_state_are_for_dispatchers_and_planners(app, network, role, status):
    caller = client_as(app, role)
    for response in (caller.post("/api/trace/affected", json={"open": ["R1"]}), caller.get("/api/trace/downstream/R1"),
                     caller.get("/api/trace/upstream/C3"), caller.get("/api/trace/isolation/s2"),
                     caller.get("/api/trace/connected/i"), caller.get("/api/network/deenergised"),
                     caller.get("/api/network/supply")):
        assert response.status_code == status, (response.request.path, response.get_data(as_text=True))
        if status != 200:
            assert response.mimetype == PROBLEM and "customers" not in response.get_json()


def test_affected_customers_of_simultaneous_faults(client, network):
    response = client.post("/api/trace/affected", json={"open": ["F1"], "out_of_service": ["s3"]})
    assert response.status_code == 200
    body = response.get_json()
    assert body["customer_count"] == 4
    assert sorted(body["customers"]) == ["C1", "C2", "C3", "C5"]
    assert sorted(body["nodes"]) == ["f", "g", "h", "i"]
    assert sorted(body["segments"]) == ["s3", "s4"] and body["devices"] == ["T1"]
    assert body["by_feeder"] == {"F1": 4}


def test_affected_as_geojson_has_segments_and_service_points(client, network):
    response = client.post("/api/trace/affected?format=geojson", json={"open": ["R1"]})
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    collection = response.get_json()
    kinds = sorted((f["properties"]["element"], f["id"], f["geometry"]["type"]) for f in collection["features"])
    assert kinds == [("device", "SW2", "Point"), ("segment", "s2", "LineString"), ("segment", "s3", "LineString"),
                     ("service_point", "C4", "Point"), ("service_point", "C5", "Point")]
    assert collection["numberMatched"] == 5 and collection["truncated"] is False


def test_an_empty_change_affects_nobody(client, network):
    assert client.post("/api/trace/affected", json={}).get_json()["customer_count"] == 0


@pytest.mark.parametrize("body, detail", [
    ("not json", "must be a JSON object"),
    ([], "must be a JSON object"),
    ({"open": "R1"}, "open must be a list"),
    ({"open": [1, 2]}, "open must be a list of element codes"),
    ({"out_of_service": [""]}, "out_of_service must be a list"),
    ({"close": ["R1"]}, "unknown field(s): close"),
])
def test_malformed_change_bodies_are_400_saying_what_is_wrong(client, network, body, detail):
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    problem = _problem(client.post("/api/trace/affected", **kwargs), 400)
    assert detail in problem["detail"]


def test_unknown_codes_are_404_naming_them(client, network):
    problem = _problem(client.post("/api/trace/affected", json={"open": ["R1", "XX1"], "out_of_service": ["YY"]}), 404)
    assert problem["codes"] == ["XX1", "YY"] and "'XX1'" in problem["detail"] and "'YY'" in problem["detail"]
    for trace in ("downstream", "upstream", "isolation", "connected"):
        problem = _problem(client.get(f"/api/trace/{trace}/no-such-thing"), 404)
        assert problem["codes"] == ["no-such-thing"]


def test_opening_a_transformer_is_422(client, network):
    problem = _problem(client.post("/api/trace/affected", json={"open": ["T1"]}), 422)
    assert "transformer T1" in problem["detail"] and problem["codes"] == ["T1"]


def test_downstream(client, network):
    body = client.get("/api/trace/downstream/R1").get_json()
    assert body["element"] == "R1" and body["element_type"] == "recloser"
    assert sorted(body["customers"]) == ["C4", "C5"] and body["customer_count"] == 2


def test_upstream(client, network):
    body = client.get("/api/trace/upstream/C3").get_json()
    assert body["path"] == ["s4", "T1", "F1", "s1", "B1"]
    assert [d["code"] for d in body["protective_devices"]] == ["F1", "B1"] and body["source"] == "SRC1"
    collection = client.get("/api/trace/upstream/C3?format=geojson").get_json()
    roles = sorted((f["id"], f["properties"]["role"]) for f in collection["features"])
    assert roles == [("B1", "protective"), ("F1", "protective"), ("T1", "path"), ("s1", "path"), ("s4", "path")]


def test_isolation(client, network):
    body = client.get("/api/trace/isolation/s2").get_json()
    assert [d["code"] for d in body["devices"]] == ["R1", "SW2"] and sorted(body["customers"]) == ["C4", "C5"]
    collection = client.get("/api/trace/isolation/s2?format=geojson").get_json()
    roles = sorted((f["id"], f["properties"]["role"]) for f in collection["features"])
    assert roles == [("C4", "affected"), ("C5", "affected"), ("R1", "isolate"), ("SW2", "isolate"), ("s2", "zone")]


def test_connected(client, network):
    body = client.get("/api/trace/connected/i").get_json()
    assert body["customer_count"] == 6 and body["open_devices"] == ["TIE"]
    assert (body["node_count"], body["segment_count"], body["device_count"]) == (12, 4, 7)


def test_counts_only_and_a_capped_collection_for_big_traces(client, network):
    body = client.get("/api/trace/connected/i?lists=false").get_json()
    assert "nodes" not in body and "customers" not in body and body["customer_count"] == 6
    isolation = client.get("/api/trace/isolation/s2?lists=false").get_json()
    assert "nodes" not in isolation["zone"] and isolation["zone"]["node_count"] == 2
    collection = client.get("/api/trace/connected/i?format=geojson&limit=3").get_json()
    assert collection["numberReturned"] == 3 and collection["numberMatched"] == 17 and collection["truncated"]
    assert _problem(client.get("/api/trace/connected/i?lists=no"), 400)["detail"].startswith("lists must be")


def test_a_bad_format_is_400(client, network):
    problem = _problem(client.get("/api/trace/downstream/R1?format=kml"), 400)
    assert "format must be json or geojson" in problem["detail"]


def test_deenergised_elements_in_view(client, network):
    assert client.get("/api/network/deenergised?bbox=7.9,48.4,8.0,48.5").get_json()["features"] == []
    switched = client.post("/api/switching", json={"operations": [{"device": "SW2", "action": "open"}], "reason": "test"})
    assert switched.status_code == 201, switched.get_json()
    collection = client.get("/api/network/deenergised?bbox=7.9,48.4,8.0,48.5").get_json()
    assert sorted(f["id"] for f in collection["features"]) == ["C5", "s3"]
    # a box around the west end holds none of them
    assert client.get("/api/network/deenergised?bbox=7.9,48.4,7.942,48.5").get_json()["features"] == []
    supply = client.get("/api/network/supply").get_json()
    assert supply["deenergised_customers"] == 1 and supply["energised_customers"] == 5 and supply["radial"]


def test_a_bad_bbox_is_400(client, network):
    problem = _problem(client.get("/api/network/deenergised?bbox=1,2,3"), 400)
    assert "four numbers" in problem["detail"]


def test_traces_follow_the_network_after_an_import(client, connection):
    """The cache notices the version an import bumps (no restart)."""
    assert client.get("/api/network/supply").get_json()["customers"] == 0
    load_network(connection, protected_feeder())
    assert client.get("/api/network/supply").get_json()["customers"] == 6
    assert client.get("/api/trace/downstream/F1").get_json()["customer_count"] == 3
