"""/map/cells in headless Chromium: a planner draws a cell over its neighbour with Leaflet-Geoman,
sees the overlap in red, drags the corners onto the neighbour's edge (snapping) and saves; a save
over someone else's newer version is answered with a reload offer; the history draws an older
version dashed; a dispatcher sees the cells without any drawing tool; the page in Chinese.

Network: tests/networks.py ``two_transformer_areas``; cell W covers x = -0.3..6, so that a cell E
east of it splits TA2."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from geo import cell_edits
from tests.e2e.conftest import TEST_CONTEXT
from tests.networks import ORIGIN, STEP, box, two_transformer_areas

# The lead looks at these: copies of the screenshots outside the repository.
SHOTS = Path("/work/notes/shots-cells")
READY = "() => window.GridAtlasCells && GridAtlasCells.state.loads > 0 && GridAtlasCells.state.coverageLoads > 0"

# The page position of a point given in grid steps.
SCREEN = """([x, y]) => {
  const map = GridAtlasCells.map, point = map.latLngToContainerPoint([%f + y * %f, %f + x * %f]);
  const box = map.getContainer().getBoundingClientRect();
  return {x: box.left + point.x, y: box.top + point.y};
}""" % (ORIGIN[1], STEP, ORIGIN[0], STEP)

# What the problems layer draws: each layer's colour and the problem's kind.
PROBLEM_LAYERS = """() => {
  const found = [];
  GridAtlasCells.layers().problems.eachLayer(l => found.push({kind: l.feature.properties.kind, color: l.options.color}));
  return found;
}"""


def _save_shot(screenshot, page, name: str) -> None:
    page.wait_for_timeout(300)  # a popup fades in
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot(page, name), SHOTS / f"{name}.png")


@pytest.fixture()
def west_cell(live_server):
    """The network and cell W (x = -0.3..6, version 1) committed; fresh for every test (they save)."""
    live_server.reset()
    live_server.load(two_transformer_areas())
    _write(live_server, "create", "W", {"name": "West", "geometry": box(-0.3, -1.3, 6, 1.3),
                                        "team": [{"name": "Li Wei", "phone": "+86 571 1234", "duty": "manager"}]})


def _write(live_server, how: str, code: str, body: dict, version: int | None = None) -> None:
    """Save a cell as another planner would, straight through geo.cell_edits."""
    with Session(live_server.engine) as session:  # cell_edits begins its own transaction
        fields = cell_edits.parse_fields(body)
        if how == "create":
            cell_edits.create(session, code, fields, "other-planner", "set up by the test")
        else:
            cell_edits.update(session, code, version, fields, "other-planner", "changed by the test")


def _open(page, live_server, role: str) -> None:
    """Sign in as ``role`` on /map/cells, with x = -0.5..10.5 and y = -1.5..1.5 in view."""
    live_server.sign_in(page, role, then="/map/cells")
    page.wait_for_function(READY)
    page.evaluate("([south, west, north, east]) => GridAtlasCells.map.fitBounds([[south, west], [north, east]], {animate: false})",
                  [ORIGIN[1] - 1.5 * STEP, ORIGIN[0] - 0.5 * STEP, ORIGIN[1] + 1.5 * STEP, ORIGIN[0] + 10.5 * STEP])


def _click_at(page, x: float, y: float) -> None:
    point = page.evaluate(SCREEN, [x, y])
    page.mouse.click(point["x"], point["y"])


def _drag(page, start: tuple[float, float], end: tuple[float, float], off_px: float = 0) -> None:
    """Drag the vertex at grid point ``start`` to ``off_px`` pixels beside grid point ``end``."""
    a, b = page.evaluate(SCREEN, list(start)), page.evaluate(SCREEN, list(end))
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move((a["x"] + b["x"]) / 2, (a["y"] + b["y"]) / 2, steps=4)
    page.mouse.move(b["x"] + off_px, b["y"] + off_px, steps=4)
    page.mouse.up()


def _validated(page, after: int) -> list[dict]:
    """The problems of the newest check, once more than ``after`` checks have been answered."""
    page.wait_for_function(f"() => GridAtlasCells.state.validations > {after}")
    page.wait_for_timeout(400)  # a later check may still be under way: take the newest
    return page.evaluate("GridAtlasCells.state.problems")


def test_a_planner_draws_an_overlapping_cell_fixes_it_and_saves(live_server, west_cell, page, screenshot, requests_seen):
    _open(page, live_server, "planner")
    assert page.locator(".leaflet-pm-toolbar.leaflet-pm-draw .button-container").count() == 2  # polygon, rectangle
    assert page.evaluate("GridAtlasCells.layers().cells.getLayers().length") == 1
    page.click("#ga-new-cell")
    # E drawn from x = 5.5: half a step over W.
    corners = [(5.5, -1.3), (10.3, -1.3), (10.3, 1.3), (5.5, 1.3)]
    for x, y in corners + corners[:1]:
        _click_at(page, x, y)
    problems = _validated(page, 0)
    assert [(p["kind"], p["other"]) for p in problems] == [("overlap", "W")], problems
    assert page.evaluate(PROBLEM_LAYERS) == [{"kind": "overlap", "color": "#d62728"}]
    assert "W" in page.locator(".ga-problem").inner_text()
    _save_shot(screenshot, page, "cells_overlap_in_red")
    # Drag both western corners onto W's eastern corners, a few pixels off: they snap onto them.
    seen = page.evaluate("GridAtlasCells.state.validations")
    _drag(page, (5.5, -1.3), (6, -1.3), off_px=4)
    assert [p["kind"] for p in _validated(page, seen)] == ["overlap"]  # half of it is left
    seen = page.evaluate("GridAtlasCells.state.validations")
    _drag(page, (5.5, 1.3), (6, 1.3), off_px=-4)
    assert _validated(page, seen) == []
    assert page.evaluate(PROBLEM_LAYERS) == []
    page.fill("#ga-cell-form input[name=code]", "E")
    page.fill("#ga-cell-form input[name=name]", "East")
    page.fill("#ga-cell-form input[name=manager_name]", "Wang Fang")
    page.fill("#ga-cell-form input[name=manager_phone]", "+86 571 5678")
    page.click(".ga-add-member")
    page.fill(".ga-area-managers .ga-member-name", "Zhao Lei")
    page.fill(".ga-area-managers .ga-member-phone", "+86 571 9999")
    page.fill(".ga-area-managers .ga-member-areas", "TA9")
    page.fill("#ga-cell-form input[name=reason]", "the eastern district")
    page.click("#ga-cell-form .ga-save")
    page.wait_for_function("() => GridAtlasCells.state.saves === 1 && GridAtlasCells.state.loads > 1")
    layer = page.evaluate("fetch('/api/cells').then(r => r.json())")
    east = next(f for f in layer["features"] if f["id"] == "E")
    assert east["properties"]["name"] == "East" and east["properties"]["version"] == 1
    assert east["properties"]["team"] == [
        {"name": "Wang Fang", "phone": "+86 571 5678", "duty": "manager", "transformer_areas": []},
        {"name": "Zhao Lei", "phone": "+86 571 9999", "duty": "transformer_area_manager", "transformer_areas": ["TA9"]}]
    # Snapped: E's western border is W's eastern one (to the vertex, 1e-7 degrees).
    west_x = ORIGIN[0] + 6 * STEP
    assert sum(abs(lon - west_x) < 1e-7 for lon, _lat in east["geometry"]["coordinates"][0][0]) == 3
    page.wait_for_selector("#ga-history .ga-version")
    assert "the eastern district" in page.locator("#ga-history").inner_text()
    _save_shot(screenshot, page, "cells_saved")
    assert live_server.only_local(requests_seen)


def test_a_save_after_someone_elses_is_refused_with_a_reload(live_server, west_cell, page, screenshot):
    _open(page, live_server, "planner")
    _click_at(page, 2, 0.5)
    page.wait_for_selector(".ga-cell-popup")
    assert "Li Wei" in page.locator(".ga-cell-popup").inner_text()
    page.click(".ga-cell-popup button:has-text('Edit')")
    page.wait_for_function("() => GridAtlasCells.state.editing === 'W' && GridAtlasCells.state.validations > 0")
    # Another planner renames W meanwhile.
    _write(live_server, "update", "W", {"name": "West (renamed)"}, version=1)
    page.fill("#ga-cell-form input[name=reason]", "my change")
    page.click("#ga-cell-form .ga-save")
    page.wait_for_selector(".ga-conflict:not([hidden])")
    assert "version 2" in page.locator(".ga-conflict").inner_text()
    _save_shot(screenshot, page, "cells_conflict")
    page.click(".ga-reload")
    page.wait_for_function("() => document.querySelector('#ga-cell-form input[name=name]').value === 'West (renamed)'")
    # Now from version 2, a new manager only: the shape is not sent, so not checked again.
    page.fill("#ga-cell-form input[name=manager_name]", "Chen Jie")
    page.fill("#ga-cell-form input[name=reason]", "new manager")
    with page.expect_request(lambda request: request.method == "PUT") as sent:
        page.click("#ga-cell-form .ga-save")
    assert set(json.loads(sent.value.post_data)) == {"version", "name", "notes", "team", "reason"}
    page.wait_for_function("() => GridAtlasCells.state.saves === 1")
    cell = page.evaluate("fetch('/api/cells/W').then(r => r.json())")
    assert (cell["version"], cell["name"], cell["team"][0]["name"]) == (3, "West (renamed)", "Chen Jie")
    versions = page.evaluate("fetch('/api/cells/W/versions').then(r => r.json())")["versions"]
    assert [v["reason"] for v in versions] == ["new manager", "changed by the test", "set up by the test"]


def test_the_history_draws_an_older_version_dashed(live_server, west_cell, page, screenshot):
    _write(live_server, "update", "W", {"geometry": box(-0.3, -1.3, 4, 1.3)}, version=1)
    _open(page, live_server, "planner")
    _click_at(page, 2, 0.5)
    page.wait_for_function("() => GridAtlasCells.state.historyLoads > 0")
    assert page.locator("#ga-history .ga-version").count() == 2
    page.click("#ga-history li[aria-label='Version 1'] .ga-compare")
    page.wait_for_function("() => GridAtlasCells.layers().compare.getLayers().length === 1")
    assert page.evaluate("GridAtlasCells.layers().compare.getLayers()[0].options.dashArray") == "8 6"
    # The uncovered part of the territory is the warning layer; C3 (x = 5) now lies in no cell.
    assert page.evaluate("GridAtlasCells.layers().uncovered.getLayers().length") >= 1
    assert "outside every cell" in page.locator(".ga-coverage-summary").inner_text()
    _save_shot(screenshot, page, "cells_history_compare")


def test_a_dispatcher_sees_the_cells_without_drawing_tools(live_server, west_cell, page, screenshot):
    _open(page, live_server, "dispatcher")
    assert page.evaluate("GridAtlasCells.layers().cells.getLayers().length") == 1
    assert page.locator(".leaflet-pm-toolbar").count() == 0
    assert page.evaluate("typeof L.PM") == "undefined"
    assert page.locator("#ga-new-cell, #ga-cell-form, #ga-import").count() == 0
    _click_at(page, 2, 0.5)
    page.wait_for_selector(".ga-cell-popup")
    assert page.locator(".ga-cell-popup button:has-text('Edit')").count() == 0
    _save_shot(screenshot, page, "cells_dispatcher")
    # The other maps link here.
    for path in ("/map/network", "/map/dispatch"):
        page.goto(live_server.url(path))
        assert page.locator(".ga-titlebar a[href='/map/cells']").inner_text() == "Grid cells"


def test_the_page_in_chinese(live_server, west_cell, browser, screenshot):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, **{**TEST_CONTEXT, "locale": "zh-CN"})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        _open(page, live_server, "planner")
        assert page.locator(".ga-heading").inner_text() == "网格"
        assert page.locator("#ga-new-cell").inner_text() == "绘制新网格"
        assert page.locator(".ga-cells-legend h2").inner_text() == "用户数"  # customers, the first figure
        assert "及以上" in page.locator(".ga-cells-legend").inner_text()
        titles = page.eval_on_selector_all(".leaflet-pm-draw a[title]", "links => links.map(a => a.title)")
        assert titles and not any(title.isascii() for title in titles), titles  # Geoman's own texts in Chinese too
        _click_at(page, 2, 0.5)
        page.wait_for_function("() => GridAtlasCells.state.historyLoads > 0")
        assert "历史" in page.locator("#ga-history h2").inner_text()
        _save_shot(screenshot, page, "cells_zh")
    finally:
        context.close()
    assert not errors, errors


def test_a_planner_gives_a_split_transformer_area_to_one_cell(live_server, west_cell, page, screenshot):
    _write(live_server, "create", "E", {"name": "East", "geometry": box(6, -1.3, 10.3, 1.3)})
    _open(page, live_server, "planner")
    row = page.locator(".ga-split-area[aria-label=TA2]")
    assert "W: 1 customer" in row.inner_text() and "E: 1 customer" in row.inner_text()
    _click_at(page, 2, 0.5)
    page.wait_for_selector(".ga-cell-popup")
    # TA2 is split, so in neither cell's list until a planner gives it to one.
    assert "without a manager: TA1\n" in page.locator(".ga-cell-popup").inner_text()
    _save_shot(screenshot, page, "cells_split_area")
    row.locator("select").select_option("E")
    coverage_loads = page.evaluate("GridAtlasCells.state.coverageLoads")
    row.locator("button").click()
    page.wait_for_function(f"() => GridAtlasCells.state.coverageLoads > {coverage_loads}")
    assert page.locator(".ga-split-area").count() == 0
    layer = page.evaluate("fetch('/api/cells').then(r => r.json())")
    assert {f["id"]: f["properties"]["figures"]["customers"] for f in layer["features"]} == {"W": 2, "E": 2}


def _east_edge(page, code: str) -> float:
    """The easternmost longitude of cell ``code``, in grid steps from the origin."""
    layer = page.evaluate("fetch('/api/cells').then(r => r.json())")
    feature = next(f for f in layer["features"] if f["id"] == code)
    return round((max(lon for polygon in feature["geometry"]["coordinates"] for lon, _lat in polygon[0]) - ORIGIN[0]) / STEP, 6)


def test_a_planner_cuts_a_piece_off_a_cell_and_restores_it(live_server, west_cell, page, screenshot):
    _open(page, live_server, "planner")
    _click_at(page, 2, 0.5)
    page.click(".ga-cell-popup button:has-text('Edit')")
    page.wait_for_function("() => GridAtlasCells.state.editing === 'W' && GridAtlasCells.state.validations > 0")
    seen = page.evaluate("GridAtlasCells.state.validations")
    page.click("#ga-cell-form .ga-cut")
    corners = [(4, -2), (7, -2), (7, 2), (4, 2)]
    for x, y in corners + corners[:1]:
        _click_at(page, x, y)
    assert _validated(page, seen) == []
    page.fill("#ga-cell-form input[name=reason]", "the east goes to a new cell")
    coverage_loads = page.evaluate("GridAtlasCells.state.coverageLoads")
    page.click("#ga-cell-form .ga-save")
    page.wait_for_function(f"() => GridAtlasCells.state.saves === 1 && GridAtlasCells.state.coverageLoads > {coverage_loads}")
    assert abs(_east_edge(page, "W") - 4) < 0.02  # where the clicks fell, to the pixel
    # C3 at x = 5 now lies in no cell, as C4 at x = 7 did.
    assert "2 customers lie outside every cell" in page.locator(".ga-coverage-summary").inner_text()
    page.click("#ga-history li[aria-label='Version 1'] .ga-restore")
    page.fill(".ga-restore-form input", "cut by mistake")
    loads = page.evaluate("GridAtlasCells.state.loads")
    page.click(".ga-restore-form button")
    page.wait_for_function(f"() => GridAtlasCells.state.loads > {loads}")
    assert _east_edge(page, "W") == 6
    page.wait_for_function("() => document.querySelectorAll('#ga-history .ga-version').length === 3")
    assert "cut by mistake" in page.locator("#ga-history").inner_text()
    _save_shot(screenshot, page, "cells_restored")


def test_a_planner_imports_a_file(live_server, west_cell, page, tmp_path):
    def cell_file(code: str, x0: float) -> str:
        path = tmp_path / f"{code}.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": box(x0, -1.3, 10.3, 1.3), "properties": {"code": code, "name": code}}]}))
        return str(path)

    _open(page, live_server, "planner")
    page.set_input_files("#ga-import input[type=file]", cell_file("E", 6))
    page.fill("#ga-import input[name=reason]", "district plan")
    page.click("#ga-import button[type=submit]")
    page.wait_for_function("() => GridAtlasCells.layers().cells.getLayers().length === 2")
    assert page.locator(".ga-import-result").inner_text() == "Imported: 1 new, 0 changed, 0 deleted."
    # A cell over W and E: nothing is imported, and where it overlaps is drawn.
    page.set_input_files("#ga-import input[type=file]", cell_file("E2", 5))
    page.click("#ga-import button[type=submit]")
    page.wait_for_function("() => document.querySelector('.ga-import-result').textContent.startsWith('Nothing was imported')")
    assert {layer["kind"] for layer in page.evaluate(PROBLEM_LAYERS)} == {"overlap"}
    assert page.evaluate("GridAtlasCells.layers().cells.getLayers().length") == 2


def test_the_page_runs_under_its_content_security_policy(live_server, west_cell, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # no bypass_csp
    page = context.new_page()
    refused, errors = [], []
    page.on("console", lambda message: refused.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        live_server.sign_in(page, "planner", then="/map/cells")
        _until(page, "GridAtlasCells.state.loads > 0 && GridAtlasCells.state.coverageLoads > 0")
        page.click("#ga-new-cell")
        for x, y in [(7, -1), (9, -1), (9, 1), (7, 1), (7, -1)]:
            _click_at(page, x, y)
        _until(page, "GridAtlasCells.state.validations > 0")
        assert page.evaluate("GridAtlasCells.state.problems") == []
        assert page.locator(".ga-cells-legend .ga-swatch").first.evaluate("s => getComputedStyle(s).backgroundColor") != "rgba(0, 0, 0, 0)"
    finally:
        context.close()
    assert refused == [] and errors == []


def _until(page, expression: str, seconds: float = 15) -> None:
    """Wait until ``expression`` is true (polled: wait_for_function needs 'unsafe-eval')."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true after {seconds} s: {expression}"
        time.sleep(0.1)


def test_a_deleted_cell_is_found_by_its_code_and_restored(live_server, west_cell, page, screenshot):
    _open(page, live_server, "planner")
    _click_at(page, 2, 0.5)
    page.click(".ga-cell-popup button:has-text('Edit')")
    page.wait_for_function("() => GridAtlasCells.state.editing === 'W'")
    page.fill("#ga-cell-form input[name=reason]", "merged into the neighbour")
    page.click("#ga-cell-form .ga-delete")
    assert page.locator("#ga-cell-form .ga-delete").inner_text() == "Click again to delete W"
    page.click("#ga-cell-form .ga-delete")
    page.wait_for_function("() => GridAtlasCells.layers().cells.getLayers().length === 0")
    page.reload()  # a later visit: the cell is no longer on the map, its history is found by its code
    page.wait_for_function(READY)
    page.fill("#ga-history-code", "W")
    page.click("#ga-history-lookup button")
    page.wait_for_selector("#ga-history li[aria-label='Version 2']")
    assert "deleted" in page.locator("#ga-history li[aria-label='Version 2']").inner_text()
    page.click("#ga-history li[aria-label='Version 1'] .ga-restore")
    page.fill(".ga-restore-form input", "not merged after all")
    page.click(".ga-restore-form button")
    page.wait_for_function("() => GridAtlasCells.layers().cells.getLayers().length === 1")
    assert page.locator(".ga-cells-status").inner_text() == "Cell W is at version 3 now."
