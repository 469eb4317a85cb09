"""The restoration panel of the trace tool on /map/network in headless Chromium: click an element,
see the ranked plans after a fault on it, pick one to see its switches on the map, simulate it and,
as a dispatcher, execute it; a planner sees the plans but cannot execute them. Network:
tests/networks.py ``feeders_with_ties`` (a fault on s1: open B1 and SW1, close TIE; TIE2 overloads s4)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.e2e.test_trace_tool import IDLE, LOADED, SCREEN_POINT
from tests.networks import feeders_with_ties

# Every ring drawn for the chosen plan: its switch, the tooltip's class and the ring's style.
PLAN_RINGS = """() => {
  const found = [];
  GridAtlas.map.eachLayer(l => {
    const tip = l.getTooltip && l.getTooltip();
    if (tip && l.options && l.options.interactive === false && l.getLatLng)
      found.push({code: tip.getContent(), className: tip.options.className, color: l.options.color,
                  dashArray: l.options.dashArray || null, fill: l.options.fill !== false});
  });
  return found.sort((a, b) => a.code < b.code ? -1 : 1);
}"""

# Whether the element's box lies inside the window.
INSIDE = """(selector) => {
  const box = document.querySelector(selector).getBoundingClientRect();
  return box.top >= 0 && box.left >= 0 && box.bottom <= window.innerHeight && box.right <= window.innerWidth;
}"""


@pytest.fixture()
def network(live_server):
    """feeders_with_ties committed to the server's database (fresh for every test: tests switch)."""
    live_server.reset()
    live_server.load(feeders_with_ties())


def _restoration_of(page, live_server, role: str, code: str = "s1", size: dict | None = None) -> None:
    """Sign in as ``role``, open /map/network, pick Restoration and click ``code`` on the map."""
    if size:
        page.set_viewport_size(size)
    live_server.sign_in(page, role, then="/map/network")
    page.wait_for_function(LOADED)
    page.wait_for_function("() => GridAtlas.trace.state.supplyLoads > 0")
    page.locator(".ga-trace-modes button[data-trace=restoration]").click()
    # the whole network in view, beside the panels on the left
    page.evaluate("""() => {
      const map = GridAtlas.map, panel = document.querySelector('.leaflet-top.leaflet-left').getBoundingClientRect();
      const box = map.getContainer().getBoundingClientRect();
      map.fitBounds(GridAtlas.layers.segments.getBounds(),
                    {paddingTopLeft: [panel.right - box.left + 60, 60], paddingBottomRight: [60, 60], animate: false});
    }""")
    page.wait_for_function(IDLE)
    runs = page.evaluate("GridAtlas.trace.state.runs")
    point = page.evaluate(SCREEN_POINT, code)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(f"() => GridAtlas.trace.state.runs > {runs} && GridAtlas.trace.state.busy === 0")
    assert page.evaluate("GridAtlas.trace.state.selected.code") == code


def _pick(page, rank: int) -> None:
    page.locator(f".ga-rest-pick[data-plan='{rank - 1}']").click()


def _devices(live_server) -> dict[str, str]:
    with live_server.engine.connect() as connection:
        return dict(connection.execute(text("SELECT code, current_state FROM devices WHERE code IN ('B1', 'SW1', 'TIE', 'TIE2')")).all())


def test_a_dispatcher_sees_simulates_and_executes_the_best_plan(live_server, network, page, tmp_path, screenshot):
    _restoration_of(page, live_server, "dispatcher", size={"width": 1280, "height": 720})
    result = page.locator(".ga-trace-result[data-trace=restoration]")
    summary = result.inner_text()
    assert "1 customer in the faulted zone" in summary
    assert "2 customers off once it is isolated; 0 customers that no plan restores." in summary
    plans = page.locator(".ga-rest-plan")
    assert plans.count() == 2
    best, other = plans.nth(0).inner_text(), plans.nth(1).inner_text()
    assert "Plan 1 feasible · restores 2 customers" in best
    assert "Open: B1, SW1" in best and "Close: TIE" in best
    assert "open B1" in best and "close TIE: restores 2 customers" in best
    # F2: 100 kVA x 0.95 = 95 kW, 9 kW with the transfer: 86 kW (91 %) left
    assert "Transfers 5 kW; headroom 86 kW (91%) on feeder F2." in best
    assert "Plan 2 overloads" in other and "Close: TIE2" in other
    assert "segment s4 would carry 6.0 kW, over its 3.3 kW" in plans.nth(1).locator(".ga-error").inner_text()
    # the faulted zone is the halo; nothing of a plan drawn before one is picked
    assert page.evaluate(PLAN_RINGS) == []
    assert page.locator(".ga-rest-simulate").count() == 0

    _pick(page, 1)
    assert page.locator(".ga-rest-plan.ga-rest-chosen").get_attribute("data-plan") == "0"
    rings = page.evaluate(PLAN_RINGS)
    assert [(r["code"], r["className"].split()[-1]) for r in rings] == [
        ("B1", "ga-plan-open"), ("SW1", "ga-plan-open"), ("TIE", "ga-plan-close")]
    opened, closed = rings[0], rings[2]
    assert opened["dashArray"] and not opened["fill"] and not closed["dashArray"] and closed["fill"]
    assert opened["color"] != closed["color"]
    assert [(m["code"], m["action"], m["drawn"]) for m in page.evaluate("GridAtlas.trace.state.planMarks")] == [
        ("B1", "open", True), ("SW1", "open", True), ("TIE", "close", True)]
    assert page.locator(".ga-plan-label.ga-plan-close").inner_text() == "TIE"
    legend = page.locator(".ga-rest-legend").inner_text()
    assert "to open" in legend and "to close" in legend

    # picking the other plan draws its own switches instead
    _pick(page, 2)
    assert [r["code"] for r in page.evaluate(PLAN_RINGS)] == ["B1", "SW1", "TIE2"]
    assert "This plan overloads" in page.locator(".ga-rest-execute").inner_text()
    _pick(page, 1)

    page.locator(".ga-rest-simulate").click()
    page.wait_for_function("() => GridAtlas.trace.state.simulations > 0 && GridAtlas.trace.state.busy === 0")
    simulation = page.locator(".ga-rest-simulation").inner_text()
    assert "Applied, it leaves 1 customer without supply." in simulation
    assert "Lost supply: 1 customer (C2)" in simulation
    assert _devices(live_server) == {"B1": "closed", "SW1": "closed", "TIE": "open", "TIE2": "open"}  # nothing changed

    # at 1280x720 the panel fits in the window, above the scale, and scrolls inside itself
    assert page.evaluate(INSIDE, ".ga-trace")
    assert page.evaluate("() => document.querySelector('.ga-trace').getBoundingClientRect().bottom"
                         " <= document.querySelector('.leaflet-control-scale').getBoundingClientRect().top")
    assert page.evaluate("() => { const p = document.querySelector('.ga-trace'); return p.scrollHeight > p.clientHeight; }")
    page.locator(".ga-rest-chosen").evaluate("plan => plan.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(tmp_path / "restoration-1280x720.png"))
    screenshot(page, "restoration-panel")
    page.locator(".ga-rest-execute").scroll_into_view_if_needed()
    assert page.evaluate(INSIDE, ".ga-rest-execute button")
    page.screenshot(path=str(tmp_path / "restoration-1280x720-execute.png"))
    screenshot(page, "restoration-panel-execute")

    form = page.locator(".ga-rest-execute")
    form.locator("[name=reason]").fill("   ")  # blanks only: the tool refuses
    form.locator("button").click()
    assert "Say why the plan is executed." in page.locator(".ga-trace .ga-error[role=alert]").inner_text()
    assert _devices(live_server)["TIE"] == "open"

    page.locator(".ga-rest-execute [name=reason]").fill("fault on s1: feed C3 and C4 from F2")
    page.locator(".ga-rest-execute button").click()
    page.wait_for_function("() => GridAtlas.trace.state.executions > 0 && GridAtlas.trace.state.busy === 0")
    page.wait_for_function(IDLE)
    assert _devices(live_server) == {"B1": "open", "SW1": "open", "TIE": "closed", "TIE2": "open"}
    log = page.evaluate("() => fetch('/api/switching/log').then(r => r.json())")["operations"]
    assert len(log) == 1 and log[0]["reason"] == "fault on s1: feed C3 and C4 from F2"
    assert sorted((d["code"], d["to_state"]) for d in log[0]["devices"]) == [("B1", "open"), ("SW1", "open"), ("TIE", "closed")]
    switched = page.locator(".ga-trace-switched").inner_text()
    assert "B1 opened, SW1 opened, TIE closed" in switched and "Lost supply: 1 customer (C2)" in switched
    # the map follows: the tie is drawn closed, and the faulted zone's customer grey
    page.wait_for_function("() => GridAtlas.findFeature('TIE').feature.properties.current_state === 'closed'")
    page.wait_for_function("() => GridAtlas.findFeature('C2').layer.options.fillColor === GridAtlas.colours.deenergised")
    assert "1 customer without supply" in page.locator(".ga-trace-supply").inner_text()


def test_a_planner_sees_the_plans_but_cannot_execute_them(live_server, network, page, tmp_path, screenshot):
    _restoration_of(page, live_server, "planner", size={"width": 820, "height": 1180})
    assert page.locator(".ga-rest-plan").count() == 2
    _pick(page, 1)
    assert [r["code"] for r in page.evaluate(PLAN_RINGS)] == ["B1", "SW1", "TIE"]
    page.locator(".ga-rest-simulate").click()
    page.wait_for_function("() => GridAtlas.trace.state.simulations > 0 && GridAtlas.trace.state.busy === 0")
    assert "leaves 1 customer without supply" in page.locator(".ga-rest-simulation").inner_text()
    assert page.locator(".ga-rest-execute").count() == 0
    assert page.locator(".ga-trace button", has_text="Execute").count() == 0
    assert page.evaluate(INSIDE, ".ga-trace")
    page.screenshot(path=str(tmp_path / "restoration-tablet.png"))
    screenshot(page, "restoration-panel-tablet")
    assert _devices(live_server) == {"B1": "closed", "SW1": "closed", "TIE": "open", "TIE2": "open"}
