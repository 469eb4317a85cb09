"""The dispatcher's trace tool on /map/network in headless Chromium: click an element to trace
it, see the answer highlighted and summed up, operate a switch from the map, and see the
de-energised part drawn grey."""
from __future__ import annotations

import pytest

from tests.networks import protected_feeder

LOADED = "() => window.GridAtlas && GridAtlas.trace && GridAtlas.state.loads > 0 && GridAtlas.state.loading === 0 && !GridAtlas.state.scheduled"
IDLE = "() => GridAtlas.trace.state.busy === 0 && GridAtlas.state.loading === 0 && !GridAtlas.state.scheduled"

# Where an element is drawn, in page coordinates (a device's centre, a segment's middle).
SCREEN_POINT = """(code) => {
  const hit = GridAtlas.findFeature(code), map = GridAtlas.map;
  const latlng = hit.layer.getLatLng ? hit.layer.getLatLng() : hit.layer.getCenter();
  const point = map.latLngToContainerPoint(latlng), box = map.getContainer().getBoundingClientRect();
  return {x: box.left + point.x, y: box.top + point.y};
}"""


@pytest.fixture()
def feeder(live_server):
    """protected_feeder committed to the server's database (fresh for every test: tests switch)."""
    live_server.reset()
    live_server.load(protected_feeder())


def _open_map(page, live_server, role: str = "dispatcher"):
    """Sign in as ``role`` (the trace tool is for dispatchers and planners) and open /map/network
    close enough to click elements one by one."""
    live_server.sign_in(page, role, then="/map/network")
    page.wait_for_function(LOADED)
    page.wait_for_function("() => GridAtlas.trace.state.supplyLoads > 0")
    # close enough to click segments and customers one by one
    page.evaluate("() => GridAtlas.map.setView(GridAtlas.map.getCenter(), 17, {animate: false})")
    page.wait_for_function(IDLE)


def _click(page, code: str) -> None:
    """Click an element where it is drawn and wait for its trace."""
    runs = page.evaluate("GridAtlas.trace.state.runs")
    point = page.evaluate(SCREEN_POINT, code)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(f"() => GridAtlas.trace.state.runs > {runs} && GridAtlas.trace.state.busy === 0")


def _mode(page, trace: str) -> None:
    """Pick the trace to run on a click."""
    page.locator(f".ga-trace-modes button[data-trace={trace}]").click()


def _highlighted(page) -> list[tuple[str, str]]:
    """(code, role) of every halo drawn (the trace's halos carry a role; the light base layer's
    outlines, also not interactive, do not)."""
    return [tuple(pair) for pair in page.evaluate("""() => {
      const found = [];
      GridAtlas.map.eachLayer(l => { if (l.feature && l.options && l.options.interactive === false
                                         && l.feature.properties && l.feature.properties.role !== undefined)
        found.push([l.feature.id, l.feature.properties.role]); });
      return found.sort();
    }""")]


def test_clicking_a_recloser_shows_what_is_downstream(live_server, feeder, page, requests_seen, screenshot):
    _open_map(page, live_server)
    assert "Every customer is supplied" in page.locator(".ga-trace").inner_text()
    _click(page, "R1")
    result = page.locator(".ga-trace-result").inner_text()
    assert "2 customers lose supply if R1 opens" in result
    assert page.locator(".ga-popup").count() == 0  # the panel answers instead of the popup
    assert sorted(code for code, _ in _highlighted(page)) == ["C4", "C5", "SW2", "s2", "s3"]
    screenshot(page, "trace_downstream")
    assert live_server.only_local(requests_seen)


def test_upstream_lists_the_protection_nearest_first(live_server, feeder, page, screenshot):
    _open_map(page, live_server)
    _mode(page, "upstream")
    _click(page, "C3")
    result = page.locator(".ga-trace-result").inner_text()
    assert "Fed from SRC1 over 5 elements" in result
    assert result.index("F1") < result.index("B1")
    assert ("F1", "protective") in _highlighted(page) and ("s4", "path") in _highlighted(page)
    screenshot(page, "trace_upstream")


def test_isolation_of_a_segment(live_server, feeder, page, screenshot):
    _open_map(page, live_server)
    _mode(page, "isolation")
    _click(page, "s2")
    result = page.locator(".ga-trace-result").inner_text()
    assert "R1 recloser (supply side)" in result and "SW2 switch (load side)" in result
    assert "Costs 2 customers" in result
    assert ("R1", "isolate") in _highlighted(page) and ("s2", "zone") in _highlighted(page)
    screenshot(page, "trace_isolation")


def test_operating_a_switch_from_the_map_greys_what_lost_supply(live_server, feeder, page, screenshot):
    _open_map(page, live_server)
    _click(page, "SW2")
    form = page.locator(".ga-trace-operate")
    assert "Operate SW2 (closed)" in form.inner_text()
    form.locator("button").click()  # no reason yet: the browser refuses to submit
    assert form.locator("[name=reason]").evaluate("input => input.validity.valueMissing")
    form.locator("[name=reason]").fill("   ")  # blanks only: the tool refuses
    form.locator("button").click()
    assert "Say why" in page.locator(".ga-trace .ga-error").inner_text()
    assert page.evaluate("() => fetch('/api/switching/log').then(r => r.json())")["operations"] == []
    assert page.locator(".ga-trace-operate [name=actor]").count() == 0  # the operator is who signed in
    page.locator(".ga-trace-operate [name=reason]").fill("crew works on s3")
    loads = page.evaluate("GridAtlas.trace.state.supplyLoads")
    page.locator(".ga-trace-operate button").click()
    page.wait_for_function(f"() => GridAtlas.trace.state.supplyLoads > {loads} && GridAtlas.trace.state.busy === 0")
    page.wait_for_function(IDLE)
    switched = page.locator(".ga-trace-switched").inner_text()
    assert "SW2 opened" in switched and "Lost supply: 1 customer (C5)" in switched
    assert "1 customer without supply" in page.locator(".ga-trace-supply").inner_text()
    grey = page.evaluate("GridAtlas.colours.deenergised")
    assert page.evaluate("GridAtlas.findFeature('s3').layer.options.color") == grey
    assert page.evaluate("GridAtlas.findFeature('s2').layer.options.color") != grey
    assert page.evaluate("GridAtlas.findFeature('SW2').feature.properties.current_state") == "open"
    screenshot(page, "trace_switched")
    # the operation is in the log with its reason and operator: the signed-in dispatcher
    log = page.evaluate("() => fetch('/api/switching/log').then(r => r.json())")
    assert log["operations"][0]["reason"] == "crew works on s3" and log["operations"][0]["actor"] == "e2e-dispatcher"
    # and closing it again restores supply
    assert "Operate SW2 (open)" in page.locator(".ga-trace-operate").inner_text()
    page.locator(".ga-trace-operate [name=reason]").fill("work done")
    loads = page.evaluate("GridAtlas.trace.state.supplyLoads")
    page.locator(".ga-trace-operate button").click()
    page.wait_for_function(f"() => GridAtlas.trace.state.supplyLoads > {loads} && GridAtlas.trace.state.busy === 0")
    assert "Regained supply: 1 customer (C5)" in page.locator(".ga-trace-switched").inner_text()
    assert page.evaluate("GridAtlas.findFeature('s3').layer.options.color") != grey


def test_a_de_energised_network_is_grey_when_the_page_opens(live_server, feeder, page):
    with live_server.engine.begin() as connection:
        from sqlalchemy import text

        connection.execute(text("UPDATE devices SET current_state = 'open' WHERE code = 'F1'"))
        connection.execute(text("UPDATE topology_state SET version = version + 1, changed_at = now()"))
    _open_map(page, live_server)
    grey = page.evaluate("GridAtlas.colours.deenergised")
    assert page.evaluate("GridAtlas.findFeature('s4').layer.options.color") == grey
    assert page.evaluate("GridAtlas.findFeature('C3').layer.options.fillColor") == grey
    assert "3 customers without supply" in page.locator(".ga-trace-supply").inner_text()


def test_with_trace_on_click_off_the_popup_comes_back(live_server, feeder, page):
    _open_map(page, live_server)
    page.locator(".ga-trace-armed input").uncheck()
    point = page.evaluate(SCREEN_POINT, "R1")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector(".ga-popup")
    assert page.evaluate("GridAtlas.trace.state.runs") == 0


def test_a_switch_another_dispatcher_opens_shows_on_this_map_without_panning(live_server, feeder, page, browser):
    _open_map(page, live_server, role="planner")
    other = browser.new_page()
    try:
        live_server.sign_in(other, "dispatcher", then="/map/network")
        answer = other.evaluate("""() => fetch('/api/switching', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({operations: [{device: 'SW2', action: 'open'}], reason: 'crew works on s3'})})
            .then(r => r.status)""")
        assert answer == 201
    finally:
        other.close()
    page.wait_for_function("() => GridAtlas.trace.state.liveSwitching > 0", timeout=5000)
    page.wait_for_function(IDLE)
    assert page.evaluate("GridAtlas.findFeature('SW2').feature.properties.current_state") == "open"
    page.wait_for_function("() => GridAtlas.findFeature('s3').layer.options.color === GridAtlas.colours.deenergised")
