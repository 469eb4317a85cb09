"""/map/network in headless Chromium: far out the segments, and at zoom 16 the customers, come
as vector tiles, every one of them, where the GeoJSON answer is cut at the feature limit; close
in the map is GeoJSON again."""
from __future__ import annotations

import pytest

from topology.demo import generate_city

LOADED = "() => GridAtlas.state.loads > {loads} && GridAtlas.state.loading === 0 && !GridAtlas.state.scheduled"
# Pixels drawn on the vector tiles' canvases (the tile pane), and the tiles drawn.
TILE_PIXELS = """() => {
  let drawn = 0, tiles = 0;
  document.querySelectorAll('.leaflet-tile-pane canvas').forEach((canvas) => {
    if (!canvas.width) { return; }
    tiles += 1;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) { drawn += 1; } }
  });
  return {drawn, tiles};
}"""
LIMIT = 60  # far below the small city's MV segments, so a GeoJSON answer would be cut


@pytest.fixture(scope="module")
def small_city(live_server):
    """A demo city of 2,000 customers committed to the server's database."""
    live_server.reset()
    live_server.load(generate_city(customers=2_000, seed=1))


def _zoom_to(page, zoom: float) -> None:
    loads = page.evaluate("GridAtlas.state.loads")
    page.evaluate(f"GridAtlas.map.setZoom({zoom}, {{animate: false}}); 0")
    page.wait_for_function(LOADED.format(loads=loads))


def test_far_out_every_segment_comes_from_tiles(live_server, small_city, page, requests_seen, screenshot, monkeypatch):
    monkeypatch.setitem(live_server.app.config, "API_MAX_FEATURES", LIMIT)
    live_server.sign_in(page, "planner", then="/map/network")
    page.wait_for_function(LOADED.format(loads=0))
    assert page.evaluate("GridAtlas.map.getZoom()") >= 14  # the small city fits close in: GeoJSON, cut
    assert page.evaluate("GridAtlas.state.truncated.segments") is True
    assert "Showing the first" in page.locator(".ga-status").inner_text()

    _zoom_to(page, 13)
    state = page.evaluate("GridAtlas.state")
    assert state["tiled"]["segments"] is True and state["truncated"]["segments"] is False
    assert state["errors"] == []
    status = page.locator(".ga-status").inner_text()
    assert "Feeders: all, from vector tiles" in status and "Showing the first" not in status
    assert "every feeder in its colour" in page.locator(".ga-legend").inner_text()
    tile_urls = [url for url in requests_seen if "/tiles/segments/13/" in url]
    assert tile_urls and all(url.endswith(".mvt") for url in tile_urls)
    page.wait_for_function("() => Object.keys(GridAtlas.tileLayers.segments._tiles).length > 0 && "
                           "Object.values(GridAtlas.tileLayers.segments._tiles).every((t) => t.loaded)")
    pixels = page.evaluate(TILE_PIXELS)
    assert pixels["tiles"] > 0 and pixels["drawn"] > 5_000, pixels
    screenshot(page, "network_map_tiles_zoom_13")
    assert live_server.only_local(requests_seen)

    _zoom_to(page, 16)  # segments by bbox again, with popups and clicks; the customers from tiles
    state = page.evaluate("GridAtlas.state")
    assert state["tiled"]["segments"] is False and state["counts"]["segments"] > 0
    assert page.evaluate("GridAtlas.map.hasLayer(GridAtlas.tileLayers.segments)") is False
    assert state["tiled"]["customers"] is True and state["truncated"]["customers"] is False
    assert "Customers: all, from vector tiles" in page.locator(".ga-status").inner_text()
    assert any("/tiles/service_points/16/" in url for url in requests_seen)
    screenshot(page, "network_map_tiles_customers_zoom_16")

    _zoom_to(page, 17)  # close in: the customers by bbox too, clustered, with their popups
    state = page.evaluate("GridAtlas.state")
    assert state["tiled"]["customers"] is False and state["counts"]["customers"] > 0
    # Tiles still on their way would hold their tables' locks while the next module empties them.
    page.wait_for_load_state("networkidle")
