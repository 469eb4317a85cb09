"""The base-map routes: a BASEMAP_FILE's tiles and metadata over HTTP, the street names of the
light base layer (and nothing personal with them), the registered outlines, and what the map
pages are given."""
from __future__ import annotations

import gzip
import json
import re

import pytest

from geo import basemap
from tests.basemap_tiles import png_tile, vector_tile, write_mbtiles, write_pmtiles
from tests.networks import ORIGIN, STEP, drawn_network
from topology.loader import load_network

PROBLEM = "application/problem+json"
RED = png_tile((200, 30, 30))
WRITERS = {"mbtiles": write_mbtiles, "pmtiles": write_pmtiles}


@pytest.mark.parametrize("kind", WRITERS)
def test_the_app_serves_a_raster_file_with_its_media_type_and_caching(app, client, tmp_path, kind):
    app.config["BASEMAP_FILE"] = str(WRITERS[kind](tmp_path / f"city.{kind}", "png", {(2, 1, 3): RED}))
    response = client.get("/basemap/2/1/3")
    assert response.status_code == 200 and response.data == RED
    assert response.mimetype == "image/png" and "Content-Encoding" not in response.headers
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    again = client.get("/basemap/2/1/3", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    absent = client.get("/basemap/2/1/2")
    assert absent.status_code == 404 and absent.mimetype == PROBLEM
    meta = client.get("/basemap/metadata").get_json()
    assert meta == {"format": "png", "bounds": [-180.0, -85.0, 180.0, 85.0], "min_zoom": 2, "max_zoom": 2,
                    "attribution": "Test tiles", "name": "test tiles", "layers": []}


@pytest.mark.parametrize("kind", WRITERS)
def test_the_app_serves_gzipped_vector_tiles_for_the_browser_to_unpack(app, client, tmp_path, kind):
    packed = gzip.compress(vector_tile("water"))
    app.config["BASEMAP_FILE"] = str(WRITERS[kind](tmp_path / f"city.{kind}", "pbf", {(0, 0, 0): packed},
                                                   layers=("water",)))
    response = client.get("/basemap/0/0/0")
    assert response.mimetype == "application/vnd.mapbox-vector-tile"
    assert response.headers["Content-Encoding"] == "gzip" and response.data == packed
    assert client.get("/basemap/metadata").get_json()["layers"] == ["water"]


@pytest.mark.parametrize("path", ["/basemap/x/0/0", "/basemap/1/2/0", "/basemap/30/0/0", "/basemap/1/0/-1"])
def test_a_bad_tile_address_is_a_problem_in_the_users_language(app, client, tmp_path, path):
    app.config["BASEMAP_FILE"] = str(write_mbtiles(tmp_path / "city.mbtiles", "png", {(0, 0, 0): RED}))
    response = client.get(path)
    assert response.status_code == 400 and response.mimetype == PROBLEM
    chinese = client.get(path, headers={"Accept-Language": "zh-CN"}).get_json()["detail"]
    assert re.search("[\u4e00-\u9fff]", chinese), chinese


def test_without_a_file_the_tile_routes_say_so(client):
    for path in ("/basemap/0/0/0", "/basemap/metadata"):
        response = client.get(path)
        assert response.status_code == 404 and "BASEMAP_FILE" in response.get_json()["detail"]


def _street_network():
    """Three streets over a small grid: Lindenstraße east-west (6 houses), Bergweg north-south
    (4), Hofgasse with only 2 houses (too few for a label of its own)."""
    nodes = {f"l{i}": (i, 0) for i in range(6)} | {f"b{i}": (8, i + 1) for i in range(4)} | {"h0": (3, 6), "h1": (4, 6)}
    customers = [(f"C{code}", code) for code in nodes]
    frames = drawn_network(nodes=nodes, segments=[], devices=[], sources=[], customers=customers)
    streets = {"l": "Lindenstraße", "b": "Bergweg", "h": "Hofgasse"}
    frames.service_points["address"] = [f"{streets[node[0]]} {int(node[1:]) + 1}, 77652 Offenburg"
                                        for _code, node in customers]
    frames.service_points["name"] = [f"Private Person {code}" for code, _node in customers]
    return frames


def test_street_names_come_with_a_place_and_angle_but_nothing_personal(app, client, connection):
    frames = _street_network()
    load_network(connection, frames)
    response = client.get("/basemap/streets")
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    features = {feature["properties"]["name"]: feature for feature in response.get_json()["features"]}
    assert set(features) == {"Lindenstraße", "Bergweg"}  # Hofgasse's two houses are not labelled
    linden, berg = features["Lindenstraße"], features["Bergweg"]
    assert linden["properties"]["angle"] == 0.0 and abs(berg["properties"]["angle"]) == 90.0
    assert linden["properties"]["length_m"] == pytest.approx(6 * STEP * 73_000, rel=0.15)
    lon, lat = linden["geometry"]["coordinates"]
    assert lon == pytest.approx(ORIGIN[0] + 2.5 * STEP, abs=1e-4) and lat == pytest.approx(ORIGIN[1], abs=1e-4)
    assert all(set(feature["properties"]) == {"name", "angle", "length_m", "axis"} for feature in features.values())
    # No house's point, account, code, name or number is in the answer.
    houses = {(round(p.x, 4), round(p.y, 4)) for p in frames.service_points["geometry"]}
    assert not houses & {tuple(feature["geometry"]["coordinates"]) for feature in features.values()}
    text = response.get_data(as_text=True)
    assert not re.search(r"A-C|Private Person|\"C[lbh]\d|Offenburg|77652|straße \d", text), text


def test_street_names_follow_the_bbox_and_refuse_a_bad_one(app, client, connection):
    load_network(connection, _street_network())
    far = client.get("/basemap/streets?bbox=0,0,1,1").get_json()
    assert far["features"] == [] and far["numberReturned"] == 0
    west = f"{ORIGIN[0] - STEP},{ORIGIN[1] - STEP},{ORIGIN[0] + 6 * STEP},{ORIGIN[1] + STEP / 2}"
    assert [f["properties"]["name"] for f in client.get(f"/basemap/streets?bbox={west}").get_json()["features"]] \
        == ["Lindenstraße"]
    bad = client.get("/basemap/streets?bbox=1,2,3")
    assert bad.status_code == 400 and bad.mimetype == PROBLEM


def test_the_territory_outline_surrounds_the_network(app, client, connection):
    from tests.networks import feeder_with_tie

    load_network(connection, feeder_with_tie())
    collection = client.get("/basemap/outlines/territory").get_json()
    (territory,) = collection["features"]
    ring = territory["geometry"]["coordinates"][0]
    lons, lats = [lon for lon, _lat in ring], [lat for _lon, lat in ring]
    assert min(lons) < ORIGIN[0] < ORIGIN[0] + 4 * STEP < max(lons)
    assert min(lats) < ORIGIN[1] < ORIGIN[1] + 2 * STEP < max(lats)
    assert client.get("/basemap/outlines/transformer_areas?bbox=0,0,1,1").get_json()["features"] == []
    missing = client.get("/basemap/outlines/nowhere")
    assert missing.status_code == 404 and "territory" in missing.get_json()["detail"]


def test_a_package_adds_an_outline_by_registering_it(app, client, connection):
    from sqlalchemy import literal, select
    from sqlalchemy import func

    load_network(connection, _street_network())
    cell = basemap.Outline(id="test_cells", title="Cells", min_zoom=12, style={"color": "#888"},
                           query=lambda bbox: select(literal("cell-1").label("id"),
                                                     func.ST_MakeEnvelope(7.9, 48.4, 8.0, 48.5, 4326).label("geom")))
    basemap.register_outline(cell)
    try:
        assert client.get("/basemap/outlines/test_cells").get_json()["features"][0]["id"] == "cell-1"
        page = client.get("/map/network").get_data(as_text=True)
        config = json.loads(re.search(r"GridAtlasBasemap\.attach\(\w+, (\{.*?\})\);", page)[1])
        assert [o["id"] for o in config["own"]["outlines"]][-1] == "test_cells"
    finally:
        basemap._OUTLINES.pop("test_cells")


@pytest.mark.parametrize("path", ["/map/network", "/map/outlets"])
def test_every_map_page_gets_its_base_map_from_the_shell(app, client, tmp_path, path):
    def config() -> dict:
        page = client.get(path).get_data(as_text=True)
        assert "js/basemap.js" in page and "tile.openstreetmap.org" not in page.split("GridAtlasBasemap")[0]
        return json.loads(re.search(r"GridAtlasBasemap\.attach\(\w+, (\{.*?\})\);", page)[1])

    assert config()["mode"] == "own"
    app.config["BASEMAP_URL"] = "https://tiles.example.org/{z}/{x}/{y}.png"
    assert (config()["mode"], config()["url"]) == ("url", "https://tiles.example.org/{z}/{x}/{y}.png")
    app.config["BASEMAP_FILE"] = str(write_mbtiles(tmp_path / "city.mbtiles", "pbf", {(0, 0, 0): b"x"}, layers=("roads",)))
    found = config()
    assert found["mode"] == "file" and found["file"]["url"] == "/basemap/{z}/{x}/{y}"
    assert "vendor/Leaflet.VectorGrid.bundled.min.js" in client.get(path).get_data(as_text=True)
