"""Maps without the internet, in headless Chromium: the light base layer from our own data
(BASEMAP_URL=none), a tile server that accepts connections and never answers, and a local
BASEMAP_FILE of raster (MBTiles) and vector (PMTiles) tiles. The screenshots are
tests/e2e/screenshots/basemap_*.png."""
from __future__ import annotations

import gzip
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from tests.basemap_tiles import png_tile, tiles_over, vector_tile, write_mbtiles, write_pmtiles
from topology.demo import city_for, generate_city

CUSTOMERS = 1500
LOADED = "() => window.GridAtlas && GridAtlas.state.loads > 0 && GridAtlas.state.loading === 0"
BASEMAP = "() => window.GridAtlasBasemap && GridAtlasBasemap.state && {condition}"
# The share of the map's view that a pane's canvas has drawn (alpha > 0), sampled every 4 pixels.
DRAWN_SHARE = """(pane) => {
  const map = GridAtlas.map, size = map.getSize(), ratio = window.devicePixelRatio || 1;
  let drawn = 0, all = 0;
  Object.values(map._layers).filter((layer) => layer instanceof L.Canvas && layer.options.pane === pane).forEach((renderer) => {
    const origin = map.containerPointToLayerPoint([0, 0]).subtract(renderer._bounds.min).multiplyBy(ratio);
    const data = renderer._ctx.getImageData(origin.x, origin.y, size.x * ratio, size.y * ratio).data;
    for (let i = 3; i < data.length; i += 16) { all += 1; if (data[i] > 0) { drawn += 1; } }
  });
  return all ? drawn / all : 0;
}"""
WATER = (170, 211, 223)


@pytest.fixture(scope="module")
def city(live_server):
    """A small demo city committed to the server's database; its bbox (west, south, east, north)."""
    live_server.reset()
    live_server.load(generate_city(CUSTOMERS, seed=2))
    return city_for(CUSTOMERS).bbox


@contextmanager
def configured(live_server, **settings):
    """The server's app with ``settings`` for the duration (the pages read them per request)."""
    before = {name: live_server.app.config.get(name) for name in settings}
    live_server.app.config.update(settings)
    try:
        yield
    finally:
        live_server.app.config.update(before)


@contextmanager
def silent_tile_server():
    """A server on 127.0.0.1 that accepts every connection, reads the request and never answers
    (until the test ends); yields its port and the list of connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=serve, name="silent-tiles", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


def _zoom_to_streets(page):
    page.evaluate("void GridAtlas.map.setZoom(16, {animate: false})")
    page.wait_for_function(BASEMAP.format(condition="GridAtlasBasemap.state.streets > 0"))
    page.wait_for_function(LOADED)


def test_without_a_base_map_the_city_is_drawn_from_our_own_data(live_server, city, page, requests_seen, screenshot):
    page.goto(live_server.url("/map/network"))
    page.wait_for_function(LOADED)
    page.wait_for_function(BASEMAP.format(condition="GridAtlasBasemap.state.outlines.territory === 1"))
    assert page.evaluate("GridAtlasBasemap.state.shown") == "own"
    screenshot(page, "basemap_own_city")
    # The territory's fill covers most of the city view.
    assert page.evaluate(DRAWN_SHARE, "gaBase") > 0.5
    _zoom_to_streets(page)
    names = page.locator(".ga-street-name").all_inner_texts()
    assert len(names) >= 5 and all(name and not name[-1].isdigit() for name in names), names
    assert page.evaluate(DRAWN_SHARE, "gaBaseStreets") > 0.03  # the streets' bands
    screenshot(page, "basemap_own_streets")
    assert live_server.only_local(requests_seen), [url for url in requests_seen if "127.0.0.1" not in url]


def test_a_tile_server_that_never_answers_stalls_nothing(live_server, city, page, requests_seen, screenshot):
    with silent_tile_server() as (port, accepted), \
            configured(live_server, BASEMAP_URL=f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png"):
        started = time.monotonic()
        page.goto(live_server.url("/map/network"), wait_until="load", timeout=10_000)
        loaded_after = time.monotonic() - started
        page.wait_for_function(LOADED)
        layers_after = time.monotonic() - started
        assert page.evaluate("GridAtlasBasemap.state.shown") == "url"
        # The watchdog gives up on the silent server and draws our own base layer.
        page.wait_for_function(BASEMAP.format(condition="GridAtlasBasemap.state.fallback === 'timeout'"))
        page.wait_for_function(BASEMAP.format(condition="GridAtlasBasemap.state.outlines.territory === 1"))
        state = page.evaluate("GridAtlasBasemap.state")
        assert state["tilesLoaded"] == 0 and state["shown"] == "own"
        assert accepted, "the page never asked the tile server"
        assert any(f"127.0.0.1:{port}/" in url for url in requests_seen)
        assert page.locator(".leaflet-tile").count() == 0  # the silent layer's tiles are gone
        assert "our own data" in page.locator(".leaflet-control-attribution").inner_text()
        screenshot(page, "basemap_silent_server")
    assert loaded_after < 3 and layers_after < 5, (loaded_after, layers_after)


def test_a_local_raster_file_is_drawn_as_tiles(live_server, city, page, requests_seen, screenshot, tmp_path):
    tiles = tiles_over(city, range(12, 18), png_tile(WATER, grid=(120, 160, 180)))
    path = write_mbtiles(tmp_path / "city.mbtiles", "png", tiles, bounds=city)
    with configured(live_server, BASEMAP_FILE=str(path), BASEMAP_URL="none"):
        page.goto(live_server.url("/map/network"))
        page.wait_for_function(LOADED)
        page.wait_for_function(BASEMAP.format(condition="GridAtlasBasemap.state.tilesLoaded >= 4"))
        assert page.evaluate("GridAtlasBasemap.state.shown") == "file"
        sources = page.eval_on_selector_all(".leaflet-tile-loaded", "tiles => tiles.map(tile => tile.src)")
        assert sources and all("/basemap/" in source for source in sources), sources
        # A tile's pixel is the file's colour.
        pixel = page.evaluate("""() => {
          const tile = document.querySelector(".leaflet-tile-loaded"), canvas = document.createElement("canvas");
          canvas.width = canvas.height = 8;
          const ctx = canvas.getContext("2d"); ctx.drawImage(tile, 64, 64, 8, 8, 0, 0, 8, 8);
          return Array.from(ctx.getImageData(4, 4, 1, 1).data);
        }""")
        assert pixel[:3] == list(WATER), pixel
        screenshot(page, "basemap_file_raster")
        assert live_server.only_local(requests_seen)


def test_a_local_vector_file_is_drawn_by_vectorgrid(live_server, city, page, screenshot, tmp_path):
    packed = gzip.compress(vector_tile("water"))
    path = write_pmtiles(tmp_path / "city.pmtiles", "pbf", tiles_over(city, range(12, 17), packed),
                         bounds=city, layers=("water",))
    with configured(live_server, BASEMAP_FILE=str(path), BASEMAP_URL="none"):
        page.goto(live_server.url("/map/network"))
        page.wait_for_function(BASEMAP.format(condition="GridAtlasBasemap.state.tilesLoaded >= 4"))
        assert page.evaluate("typeof L.vectorGrid.protobuf") == "function"
        # Each tile's square polygon is filled in the light style's water colour.
        share = page.evaluate("""(water) => {
          let hits = 0, all = 0;
          document.querySelectorAll(".leaflet-tile-container canvas").forEach((canvas) => {
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 0; i < data.length; i += 64) {
              all += 1;
              if (data[i + 3] > 200 && Math.abs(data[i] - water[0]) < 8 && Math.abs(data[i + 2] - water[2]) < 8) { hits += 1; }
            }
          });
          return all ? hits / all : 0;
        }""", list(WATER))
        assert share > 0.3, share
        screenshot(page, "basemap_file_vector")
