"""/map/network in headless Chromium: layers load by bbox, open switches look open, nothing leaves localhost."""
from __future__ import annotations

import pytest

from tests.networks import feeder_with_tie

LOADED = "() => window.GridAtlas && GridAtlas.state.loads > {loads} && GridAtlas.state.loading === 0 && !GridAtlas.state.scheduled"

# The symbol of a drawn element as the canvas shows it: pixels at its centre and on its outline.
SYMBOL_PIXELS = """(code) => {
  const hit = GridAtlas.findFeature(code), layer = hit.layer, renderer = layer._renderer;
  const at = layer._point.subtract(renderer._bounds.min), ctx = renderer._ctx;
  const pixel = (dx, dy) => Array.from(ctx.getImageData(Math.round(at.x + dx), Math.round(at.y + dy), 1, 1).data);
  const point = GridAtlas.map.latLngToContainerPoint(layer.getLatLng());
  const box = GridAtlas.map.getContainer().getBoundingClientRect();
  return {layer: hit.layerName, centre: pixel(0, 0), outline: [pixel(6, 0), pixel(-6, 0), pixel(0, 6), pixel(0, -6)],
          x: box.left + point.x, y: box.top + point.y};
}"""


def _is_red(rgba) -> bool:
    red, green, blue, alpha = rgba
    return alpha > 200 and red > 180 and green < 110 and blue < 110


@pytest.fixture(scope="module")
def tie_network(live_server):
    """feeder_with_tie committed to the server's database."""
    live_server.reset()
    live_server.load(feeder_with_tie())


def _open_map(page, live_server):
    """The dispatcher's network map (with customers): signed in through the form."""
    live_server.sign_in(page, "dispatcher", then="/map/network")
    page.wait_for_function(LOADED.format(loads=0))
    return page.evaluate("GridAtlas.state")


def test_the_network_is_drawn_from_the_bbox_endpoints(live_server, tie_network, page, requests_seen, screenshot):
    state = _open_map(page, live_server)
    assert state["errors"] == []
    assert state["counts"] == {"segments": 3, "customers": 3, "transformers": 0, "switchgear": 4, "substations": 1}
    assert page.locator(".ga-heading").inner_text() == "Network"
    assert page.locator(".ga-summary").inner_text().split("\n") == [
        "1 substation", "1 feeder", "3 customers", "1 open switch"]
    assert "1 open" in page.locator(".ga-status").inner_text()
    layer_requests = [url for url in requests_seen if "/api/network/" in url]
    assert any("/api/network/segments?bbox=" in url for url in layer_requests)
    assert any("/api/network/devices?bbox=" in url and "kind=breaker" in url for url in layer_requests)
    screenshot(page, "network_map")
    assert live_server.only_local(requests_seen), [url for url in requests_seen if "127.0.0.1" not in url]


def test_the_open_tie_is_drawn_hollow_and_red(live_server, tie_network, page):
    _open_map(page, live_server)
    tie = page.evaluate(SYMBOL_PIXELS, "TIE")
    closed = page.evaluate(SYMBOL_PIXELS, "SW1")
    assert tie["layer"] == closed["layer"] == "switchgear"
    assert tie["centre"][:3] == [255, 255, 255]
    assert sum(_is_red(pixel) for pixel in tie["outline"]) >= 3
    assert not _is_red(closed["centre"]) and closed["centre"][:3] != [255, 255, 255]
    assert not any(_is_red(pixel) for pixel in closed["outline"])
    legend = page.locator(".ga-legend").inner_text()
    assert "open" in legend and "closed" in legend and "Breaker" in legend and "F1" in legend


def test_a_click_reaches_the_hook_and_opens_a_popup(live_server, tie_network, page):
    _open_map(page, live_server)
    page.evaluate("() => { window.clicked = []; GridAtlas.onFeatureClick((f, name) => { clicked.push([f.id, name]); }); }")
    tie = page.evaluate(SYMBOL_PIXELS, "TIE")
    page.mouse.click(tie["x"], tie["y"])
    page.wait_for_function("clicked.length > 0")
    assert page.evaluate("clicked") == [["TIE", "switchgear"]]
    # Tools on the page (the trace tool) may take a device's click; a substation's opens its popup.
    substation = page.evaluate(SYMBOL_PIXELS, "S1")
    page.mouse.click(substation["x"], substation["y"])
    page.wait_for_selector(".ga-popup")
    assert page.evaluate("clicked")[-1] == ["S1", "substations"]
    assert "Substation S1" in page.locator(".ga-popup").inner_text()


def test_customers_wait_for_a_close_zoom(live_server, tie_network, page):
    _open_map(page, live_server)
    loads = page.evaluate("GridAtlas.state.loads")
    page.evaluate("() => { GridAtlas.map.setZoom(15, {animate: false}); }")
    page.wait_for_function(LOADED.format(loads=loads))
    state = page.evaluate("GridAtlas.state")
    assert state["hidden"]["customers"] is True and state["counts"]["customers"] == 0
    assert state["counts"]["segments"] == 3
    assert "Zoom in to see customers and the LV network" in page.locator(".ga-status").inner_text()
