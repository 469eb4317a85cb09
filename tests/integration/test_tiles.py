"""Vector tiles under /tiles on a real PostGIS, decoded with mapbox-vector-tile: the features of
each layer in tile space, the generalised segments far out, caching (ETag, 304) and its change
after a switching operation, the role rules and control zones for service points, bad tile
coordinates, and the index and OpenAPI entries."""
from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from geo import accounts
from geo.auth import DISPATCHER
from geo.tiles import EXTENT, MVT, Tile
from tests.accounts import HEADERS, client_as
from tests.networks import ORIGIN, STEP, protected_feeder
from topology.loader import load_network
from topology.tiles import SEGMENTS_ONE_BY_ONE, SERVICE_POINTS_FROM

PROBLEM = "application/problem+json"
SEGMENTS = {"s1", "s2", "s3", "s4"}
PUBLIC_LAYERS = {"segments", "devices", "transformer_areas"}


@pytest.fixture()
def network(connection):
    frames = protected_feeder()
    load_network(connection, frames)
    return frames


def tile_around(lon: float, lat: float, z: int) -> Tile:
    """The tile of zoom ``z`` holding the point."""
    n = 2 ** z
    return Tile(z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n))


def tile_units(lon: float, lat: float, tile: Tile) -> tuple[float, float]:
    """Where the point falls in ``tile``, in tile units (0..EXTENT, y down)."""
    n = 2 ** tile.z
    x = (lon + 180) / 360 * n
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return (x - tile.x) * EXTENT, (y - tile.y) * EXTENT


def _url(layer: str, tile: Tile) -> str:
    return f"/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.mvt"


def _features(answer, layer: str) -> list[dict]:
    assert answer.status_code == 200 and answer.mimetype == MVT, answer.data[:200]
    if not answer.data:
        return []
    decoded = mapbox_vector_tile.decode(answer.data, default_options={"y_coord_down": True})
    return decoded[layer]["features"] if layer in decoded else []


def _near(z: int) -> Tile:
    """The tile of zoom ``z`` around the middle of the drawing (from zoom 14 out it holds all of it)."""
    return tile_around(ORIGIN[0] + 4 * STEP, ORIGIN[1] + 2 * STEP, z)


def _drawing_tiles(z: int) -> list[Tile]:
    """The tiles of zoom ``z`` that cover the drawing (x 0..8, y 0..3 steps from ORIGIN)."""
    corner, far = tile_around(ORIGIN[0], ORIGIN[1] + 3 * STEP, z), tile_around(ORIGIN[0] + 8 * STEP, ORIGIN[1], z)
    return [Tile(z, x, y) for x in range(corner.x, far.x + 1) for y in range(corner.y, far.y + 1)]


def _codes(client, layer: str, z: int, headers: dict | None = None) -> set[str]:
    """The codes of the layer's features over the whole drawing at zoom ``z``."""
    return {f["properties"]["code"] for tile in _drawing_tiles(z)
            for f in _features(client.get(_url(layer, tile), headers=headers or {}), layer)}


def test_segments_one_by_one_in_tile_space(app, network):
    assert _codes(app.test_client(), "segments", SEGMENTS_ONE_BY_ONE) == SEGMENTS
    tile = tile_around(ORIGIN[0] + 1.5 * STEP, ORIGIN[1] + 3 * STEP, 16)  # s1's middle
    features = _features(app.test_client().get(_url("segments", tile)), "segments")
    s1 = next(f for f in features if f["properties"]["code"] == "s1")
    assert s1["properties"]["feeder"] == "F1" and s1["properties"]["energised"] is True
    assert s1["properties"]["level"] == "mv" and s1["properties"]["colour"].startswith("#")
    # s1 runs from a (1, 3) to b (2, 3) on the drawing's grid.
    start, end = s1["geometry"]["coordinates"]
    for got, (x, y) in ((start, (1, 3)), (end, (2, 3))):
        expected = tile_units(ORIGIN[0] + x * STEP, ORIGIN[1] + y * STEP, tile)
        assert got == pytest.approx(expected, abs=1)
    assert all(-64 <= value <= EXTENT + 64 for point in s1["geometry"]["coordinates"] for value in point)


def test_far_out_every_segment_comes_merged_per_feeder_and_level(app, network, connection):
    tile = _near(SEGMENTS_ONE_BY_ONE - 2)
    features = _features(app.test_client().get(_url("segments", tile)), "segments")
    assert _drawing_tiles(tile.z) == [tile]
    assert features and {f["properties"]["feeder"] for f in features} == {"F1"}
    assert all(f["properties"].get("code") is None and f["properties"]["energised"] for f in features)
    built = connection.execute(text("SELECT sum(ST_NumGeometries(geom)) FROM segment_overview")).scalar_one()
    assert built >= 1  # four segments, merged where they touch
    assert connection.execute(text("SELECT overview_version = version FROM topology_state")).scalar_one()


def test_answers_carry_cache_headers_and_304_on_the_same_etag(app, network):
    client = app.test_client()
    first = client.get(_url("segments", _near(14)))
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, no-cache" and etag.startswith('"')
    again = client.get(_url("segments", _near(14)), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag


def test_a_switching_operation_changes_the_etag_and_the_tiles(app, network):
    client = app.test_client()
    tile = _near(14)
    before = client.get(_url("segments", tile))
    body = {"operations": [{"device": "SW2", "action": "open"}], "reason": "work"}
    assert client.post("/api/switching", json=body, headers=HEADERS[DISPATCHER]).status_code == 201
    after = client.get(_url("segments", tile), headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    dead = {f["properties"]["code"] for f in _features(after, "segments") if not f["properties"]["energised"]}
    assert dead == {"s3"}  # beyond SW2, up to the open tie
    devices = {f["properties"]["code"]: f["properties"] for tile in _drawing_tiles(14)
               for f in _features(client.get(_url("devices", tile)), "devices")}
    assert devices["SW2"]["current_state"] == "open" and devices["SW2"]["normal_state"] == "closed"
    far = _features(client.get(_url("segments", _near(SEGMENTS_ONE_BY_ONE - 2))), "segments")
    assert {f["properties"]["code"] for f in far if not f["properties"]["energised"]} == {"s3"}


def test_service_points_only_for_dispatchers_and_planners(app, network):
    tile = _near(SERVICE_POINTS_FROM)
    anonymous = app.test_client().get(_url("service_points", tile))
    assert anonymous.status_code == 401 and anonymous.mimetype == PROBLEM
    for role in ("crew", "admin", "integration"):
        assert client_as(app, role).get(_url("service_points", tile)).status_code == 403, role
    for role in ("dispatcher", "planner"):
        client = client_as(app, role)
        assert _codes(client, "service_points", SERVICE_POINTS_FROM) == {f"C{i}" for i in (1, 2, 3, 4, 5, 9)}, role
        answer = client.get(_url("service_points", tile))
        assert answer.headers["Cache-Control"] == "private, no-cache" and "Authorization" in answer.headers["Vary"]
        assert "account_number" in _features(answer, "service_points")[0]["properties"]


def test_a_zoned_dispatcher_gets_only_its_feeders_service_points(app, network, session):
    tile = _near(SERVICE_POINTS_FROM)
    accounts.create_account(session, "d.zone", DISPATCHER, None, ["ELSEWHERE"])
    issued = accounts.issue_token(session, "d.zone")
    session.commit()
    zone = {"Authorization": f"Bearer {issued.token}"}
    assert _codes(app.test_client(), "service_points", SERVICE_POINTS_FROM, HEADERS[DISPATCHER])
    assert _codes(app.test_client(), "service_points", SERVICE_POINTS_FROM, zone) == set()
    everywhere = app.test_client().get(_url("service_points", tile), headers=HEADERS[DISPATCHER])
    zoned = app.test_client().get(_url("service_points", tile), headers=zone)
    assert zoned.headers["ETag"] != everywhere.headers["ETag"]


def test_below_a_layers_zooms_its_tiles_are_empty(app, network):
    answer = client_as(app, "planner").get(_url("service_points", _near(SERVICE_POINTS_FROM - 1)))
    assert answer.status_code == 200 and answer.data == b""


@pytest.mark.parametrize("path, status", [
    ("/tiles/segments/3/8/0.mvt", 404),      # x past 2^z - 1
    ("/tiles/segments/3/0/8.mvt", 404),      # y past 2^z - 1
    ("/tiles/segments/25/0/0.mvt", 400),     # zoom past the deepest
    ("/tiles/nothing/3/0/0.mvt", 404),       # no such layer
])
def test_bad_tiles_are_problems(app, path, status):
    answer = app.test_client().get(path)
    assert answer.status_code == status and answer.mimetype == PROBLEM


@pytest.mark.parametrize("path", ["/tiles/segments/-1/0/0.mvt", "/tiles/segments/a/0/0.mvt", "/tiles/segments/1/0/0.png"])
def test_a_path_that_is_no_tile_is_not_found(app, path):
    answer = app.test_client().get(path)
    assert answer.status_code == 404 and answer.mimetype == PROBLEM


def test_the_index_lists_what_the_caller_may_read(app):
    anonymous = {layer["id"]: layer for layer in app.test_client().get("/tiles").get_json()["layers"]}
    assert set(anonymous) >= PUBLIC_LAYERS and "service_points" not in anonymous
    assert anonymous["segments"]["tiles"] == "/tiles/segments/{z}/{x}/{y}.mvt"
    planner = {layer["id"]: layer for layer in client_as(app, "planner").get("/tiles").get_json()["layers"]}
    assert planner["service_points"]["minzoom"] == SERVICE_POINTS_FROM and not planner["service_points"]["public"]


def test_the_openapi_document_has_the_tiles(app):
    paths = app.test_client().get("/openapi.json").get_json()["paths"]
    operation = paths["/tiles/{layer}/{z}/{x}/{y}.mvt"]["get"]
    assert MVT in operation["responses"]["200"]["content"] and "304" in operation["responses"]
    assert "/tiles" in paths
