"""OGC API - Features under /ogc on a real PostGIS: the documents' shapes, paging with next/prev
links, bbox filtering, single features, 400/404 problems, and the role rules for the layer
with customers' data."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.accounts import client_as
from tests.networks import ORIGIN, STEP, drawn_network
from topology.loader import load_network

PROBLEM = "application/problem+json"
PUBLIC_COLLECTIONS = {"feeders", "segments", "devices", "transformer_areas", "outlets", "grid_cells"}
# A row of seven nodes joined by six segments (x = 0..6), a breaker at the start and a
# transformer feeding three customers at the end.
SEGMENTS = [f"S{i}" for i in range(1, 7)]


@pytest.fixture()
def network(connection):
    nodes = {"src": (-1, 0), **{f"n{x}": (x, 0) for x in range(7)}, "lv": (6, -1)}
    frames = drawn_network(
        nodes=nodes, segments=[(f"S{x}", f"n{x - 1}", f"n{x}") for x in range(1, 7)],
        devices=[("B1", "breaker", "src", "n0", "closed"), ("T1", "transformer", "lv", "n6", "closed")],
        sources=[("SRC", "src")], customers=[("C1", "lv"), ("C2", "lv"), ("C3", "lv")])
    load_network(connection, frames)
    return frames


def _links(document: dict) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in document["links"]}


def test_landing_page_links_conformance_collections_and_the_api(app):
    answer = app.test_client().get("/ogc/")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    links = _links(answer.get_json())
    assert links["conformance"] == "http://localhost/ogc/conformance"
    assert links["data"] == "http://localhost/ogc/collections"
    assert links["service-desc"] == "http://localhost/openapi.json"
    classes = app.test_client().get("/ogc/conformance").get_json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in classes


def test_links_follow_the_forwarded_host_and_scheme_behind_a_proxy(app):
    app.config["TRUST_PROXY"] = True
    from werkzeug.middleware.proxy_fix import ProxyFix
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    answer = app.test_client().get("/ogc/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "grid.example"})
    assert _links(answer.get_json())["data"] == "https://grid.example/ogc/collections"


def test_collections_hide_customers_from_anonymous_callers_and_crews(app, network):
    for role in (None, "crew", "admin", "integration"):
        listed = {found["id"] for found in client_as(app, role).get("/ogc/collections").get_json()["collections"]}
        assert listed == PUBLIC_COLLECTIONS, role
    for role in ("dispatcher", "planner"):
        listed = {found["id"] for found in client_as(app, role).get("/ogc/collections").get_json()["collections"]}
        assert listed == PUBLIC_COLLECTIONS | {"service_points"}, role


def test_a_collection_has_its_extent_and_items_link(app, network):
    found = app.test_client().get("/ogc/collections/segments").get_json()
    assert found["id"] == "segments" and found["itemType"] == "feature"
    west, south, east, north = found["extent"]["spatial"]["bbox"][0]
    assert west == pytest.approx(ORIGIN[0] - STEP) and east == pytest.approx(ORIGIN[0] + 6 * STEP)
    assert south == pytest.approx(ORIGIN[1] - STEP) and north == pytest.approx(ORIGIN[1])
    assert _links(found)["items"] == "http://localhost/ogc/collections/segments/items"


def test_items_page_by_limit_and_offset_with_next_and_prev_links(app, network):
    client = app.test_client()
    first = client.get("/ogc/collections/segments/items?limit=4")
    assert first.status_code == 200 and first.mimetype == "application/geo+json"
    page = first.get_json()
    assert page["type"] == "FeatureCollection" and page["timeStamp"].endswith("Z")
    assert (page["numberMatched"], page["numberReturned"]) == (6, 4)
    assert [feature["id"] for feature in page["features"]] == SEGMENTS[:4]
    assert "prev" not in _links(page)
    following = _links(page)["next"]
    assert following.startswith("http://localhost/ogc/collections/segments/items?") and "offset=4" in following
    second = client.get(following).get_json()
    assert [feature["id"] for feature in second["features"]] == SEGMENTS[4:]
    assert (second["numberMatched"], second["numberReturned"]) == (6, 2)
    assert "next" not in _links(second) and "offset=0" in _links(second)["prev"]


def test_the_default_page_is_100_and_a_larger_limit_is_cut_to_10000(app, network):
    page = app.test_client().get("/ogc/collections/segments/items?limit=50000").get_json()
    assert "limit=10000" in _links(page)["self"]
    assert "limit=100" in _links(app.test_client().get("/ogc/collections/segments/items").get_json())["self"]


def test_bbox_keeps_the_features_inside_and_the_links_keep_the_bbox(app, network):
    # x from 0 to 2.5 steps: the segments S1 (n0-n1), S2 and S3 (n2-n3, which reaches into it).
    west, south = ORIGIN[0], ORIGIN[1] - STEP / 2
    bbox = f"{west},{south},{west + 2.5 * STEP},{ORIGIN[1] + STEP / 2}"
    page = app.test_client().get(f"/ogc/collections/segments/items?bbox={bbox}&limit=2").get_json()
    assert page["numberMatched"] == 3 and [feature["id"] for feature in page["features"]] == ["S1", "S2"]
    rest = app.test_client().get(_links(page)["next"]).get_json()
    assert [feature["id"] for feature in rest["features"]] == ["S3"]


def test_a_feeder_is_the_multilinestring_of_its_segments(app, network, connection):
    feeder = app.test_client().get("/ogc/collections/feeders/items/F1").get_json()
    assert feeder["geometry"]["type"] == "MultiLineString" and len(feeder["geometry"]["coordinates"]) == 6
    assert feeder["properties"]["segments"] == 6 and feeder["properties"]["substation"] == "S1"
    length = connection.execute(text("SELECT round(sum(length_m)::numeric, 1) FROM segments")).scalar_one()
    assert feeder["properties"]["length_m"] == pytest.approx(float(length))


def test_one_item_by_id_equals_the_database(app, network, connection):
    answer = app.test_client().get("/ogc/collections/segments/items/S3")
    assert answer.status_code == 200 and answer.mimetype == "application/geo+json"
    feature = answer.get_json()
    assert feature["type"] == "Feature" and feature["id"] == "S3" and feature["properties"]["feeder"] == "F1"
    stored = connection.execute(text("SELECT ST_AsText(geom) FROM segments WHERE code = 'S3'")).scalar_one()
    x0, x1 = ORIGIN[0] + 2 * STEP, ORIGIN[0] + 3 * STEP
    assert feature["geometry"]["coordinates"] == [[pytest.approx(x0), pytest.approx(ORIGIN[1])],
                                                  [pytest.approx(x1), pytest.approx(ORIGIN[1])]], stored
    assert _links(feature)["collection"] == "http://localhost/ogc/collections/segments"


@pytest.mark.parametrize("path", ["/ogc/collections/nothing", "/ogc/collections/nothing/items",
                                  "/ogc/collections/segments/items/NOPE"])
def test_unknown_collections_and_features_are_404(app, network, path):
    answer = app.test_client().get(path)
    assert answer.status_code == 404 and answer.mimetype == PROBLEM


@pytest.mark.parametrize("query", ["bbox=1,2,3", "bbox=a,b,c,d", "bbox=10,0,5,1", "limit=0", "limit=many",
                                   "offset=-1", "offset=x"])
def test_bad_parameters_are_400_problems_naming_the_parameter(app, network, query):
    answer = app.test_client().get(f"/ogc/collections/segments/items?{query}")
    assert answer.status_code == 400 and answer.mimetype == PROBLEM
    assert answer.get_json()["field"] == query.split("=")[0]


def test_a_bad_offset_is_explained_in_chinese(app, network):
    answer = app.test_client().get("/ogc/collections/segments/items?offset=x", headers={"Accept-Language": "zh"})
    assert answer.status_code == 400 and "offset" in answer.get_json()["detail"]
    assert any("\u4e00" <= char <= "\u9fff" for char in answer.get_json()["detail"])


@pytest.mark.parametrize("path", ["/ogc/collections/service_points", "/ogc/collections/service_points/items",
                                  "/ogc/collections/service_points/items/C1"])
def test_customers_are_refused_to_anonymous_callers_and_other_roles(app, network, path):
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 401 and anonymous.mimetype == PROBLEM
    assert "C1" not in anonymous.get_data(as_text=True)
    for role in ("crew", "admin", "integration"):
        refused = client_as(app, role).get(path)
        assert refused.status_code == 403 and refused.mimetype == PROBLEM, role


def test_dispatchers_and_planners_read_the_customers(app, network):
    for role in ("dispatcher", "planner"):
        page = client_as(app, role).get("/ogc/collections/service_points/items").get_json()
        assert [feature["id"] for feature in page["features"]] == ["C1", "C2", "C3"]
        assert page["features"][0]["properties"]["account_number"] == "A-C1"
        assert "name" not in page["features"][0]["properties"]  # never a customer's name


def test_outlets_are_a_public_collection(app, connection):
    connection.execute(text(
        "INSERT INTO outlets (code, name, address, country, timezone, geom) VALUES "
        "('OUT-1', 'Centre', '1 Main St', 'DE', 'Europe/Berlin', ST_SetSRID(ST_MakePoint(7.9, 48.4), 4326)), "
        "('OUT-2', 'Closed', '2 Main St', 'DE', 'Europe/Berlin', ST_SetSRID(ST_MakePoint(7.8, 48.3), 4326))"))
    connection.execute(text("UPDATE outlets SET active = false WHERE code = 'OUT-2'"))
    page = app.test_client().get("/ogc/collections/outlets/items").get_json()
    assert [feature["id"] for feature in page["features"]] == ["OUT-1"]
    assert page["features"][0]["geometry"] == {"type": "Point", "coordinates": [7.9, 48.4]}
    assert page["features"][0]["properties"]["name"] == "Centre"
