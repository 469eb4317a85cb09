"""OGC API - Features read by a real client: GDAL's OAPIF driver (through pyogrio) against a live
server on its own database, as QGIS reads it. The rows read back must be the database's; the
collection with customers' data is not listed to an anonymous client and is read with a token."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from shapely import wkt
from sqlalchemy import text

pyogrio = pytest.importorskip("pyogrio")

from tests.accounts import BEARER, add_role_accounts  # noqa: E402
from tests.conftest import _test_database_url  # noqa: E402
from tests.e2e.conftest import LiveServer  # noqa: E402
from topology.demo import generate_city  # noqa: E402

# GDAL runs in a child process: its calls hold the GIL, and the live server's thread in this
# process could then never answer them. The child prints what it read as JSON.
CLIENT = """
import json, sys
import pyogrio
url, action, layer, token, bbox = json.loads(sys.argv[1])
# The token as an "Authorization: Bearer" header: the OAPIF driver sends its own Accept header,
# which replaces GDAL_HTTP_HEADERS, so the token goes as GDAL_HTTP_AUTH=BEARER (GDAL 3.9+).
pyogrio.set_gdal_config_options({"GDAL_HTTP_MAX_RETRY": "0"})
if action == "layers":
    print(json.dumps([str(name) for name, _ in pyogrio.list_layers(url)]))
else:
    frame = pyogrio.read_dataframe(url, layer=layer, bbox=tuple(bbox) if bbox else None, PAGE_SIZE="500")
    print(json.dumps({"columns": list(frame.columns),
                      "rows": {str(row["code"]): row.geometry.wkt for _, row in frame.iterrows()}}))
"""


@pytest.fixture(scope="module")
def live():
    server = LiveServer(_test_database_url("OGC_LIVE_DATABASE_URL", suffix="_ogc_live")).start()
    server.reset()
    with server.engine.begin() as connection:
        add_role_accounts(connection)
    server.load(generate_city(2000, seed=3))
    yield server
    server.stop()


def _gdal(live, action: str, layer: str | None = None, token: str | None = None, bbox=None):
    answer = subprocess.run([sys.executable, "-c", CLIENT, json.dumps([f"OAPIF:{live.url('/ogc/')}", action, layer,
                                                                        token, bbox])],
                            capture_output=True, text=True, timeout=300, check=True,
                            env={**os.environ, **({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": token.removeprefix("Bearer ")}
                                                if token else {})})
    return json.loads(answer.stdout.strip().splitlines()[-1])


def _read(live, layer: str, token: str | None = None, bbox=None) -> dict:
    return _gdal(live, "read", layer, token, bbox)


def _layers(live, token: str | None = None) -> set[str]:
    return set(_gdal(live, "layers", token=token))


def test_gdal_reads_every_segment_as_stored(live):
    # A page of 500 makes GDAL follow several next links (the city has thousands of segments).
    read = _read(live, "segments")["rows"]
    with live.engine.connect() as connection:
        stored = dict(connection.execute(text("SELECT code, ST_AsText(geom) FROM segments")).all())
    assert len(read) == len(stored) and len(stored) > 500
    assert sorted(read) == sorted(stored)
    for code in sorted(stored)[::250]:
        assert wkt.loads(read[code]).equals_exact(wkt.loads(stored[code]), 1e-6), code


def test_gdal_lists_the_public_collections_and_customers_only_with_a_token(live):
    anonymous = _layers(live)
    assert {"segments", "devices", "feeders", "transformer_areas", "outlets"} <= anonymous
    assert "service_points" not in anonymous
    assert "service_points" in _layers(live, BEARER["planner"])
    read = _read(live, "service_points", BEARER["planner"])
    with live.engine.connect() as connection:
        stored = set(connection.execute(text("SELECT code FROM service_points")).scalars())
    assert set(read["rows"]) == stored and len(stored) >= 2000
    assert "account_number" in read["columns"] and "name" not in read["columns"]


def test_gdal_filters_by_bbox_on_the_server(live):
    with live.engine.connect() as connection:
        west, south, east, north = connection.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e FROM devices) x")).one()
        # Inside the extent: a device on its edge, rounded to 6 decimals in GeoJSON, could fall
        # outside and be dropped by GDAL's own check of each feature against the box.
        box = (west + (east - west) / 10, south + (north - south) / 10, (west + east) / 2, (south + north) / 2)
        inside = set(connection.execute(text(
            "SELECT code FROM devices WHERE ST_Intersects(geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326))"),
            dict(zip("wsen", box))).scalars())
    read = _read(live, "devices", bbox=list(box))["rows"]
    assert set(read) == inside and 0 < len(inside)


def test_gdal_reads_the_grid_cells(live):
    from geo.demo import DemoContext
    from topology.cells import add_demo_cells

    with live.engine.begin() as connection:
        add_demo_cells(DemoContext(connection, 2000, 3, (0, 0, 0, 0), "demo", lambda message: None))
        stored = dict(connection.execute(text("SELECT code, ST_AsText(geom) FROM grid_cells")).all())
    assert "grid_cells" in _layers(live)
    read = _read(live, "grid_cells")
    assert sorted(read["rows"]) == sorted(stored) and len(stored) == 4
    assert {"name", "version", "manager"} <= set(read["columns"])
    for code, shape in stored.items():
        assert wkt.loads(read["rows"][code]).equals_exact(wkt.loads(shape), 1e-6), code
