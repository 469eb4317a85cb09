"""The dispatcher's live map (/map/dispatch) in headless Chromium, two dispatchers at once: a small
storm replayed over HTTP (calls, last gasps) shows on both maps without a reload; one dispatcher
confirms and sends the nearest crew, the other sees it; the crew's phone sends positions and its
marker moves on both maps; the other restores and the outage leaves the first one's board."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from geo import accounts
from geo.db import session_scope
from outages.crews import create_crew
from tests.accounts import HEADERS
from tests.e2e.conftest import TEST_CONTEXT
from tests.networks import protected_feeder

# A change made anywhere must be on every open map within 2 s; the map asks every second. The
# waits below start once the change's HTTP answer is back, and allow a little for the browser.
LIVE_MS = 2500
READY = ("() => window.GridAtlasDispatch && GridAtlasDispatch.state.polls > 1 && "
         "GridAtlasDispatch.state.loads.outages > 0 && GridAtlasDispatch.state.loads.crews > 0 && "
         "GridAtlasDispatch.state.loads.devices > 0")
DEPOT = (7.9425, 48.4715)
SCREENSHOTS = "/tmp/dispatch-{}.png"


@pytest.fixture()
def storm_network(live_server):
    """protected_feeder with crew CR-1 (the e2e crew account's) at its depot; the crew's token."""
    live_server.reset()
    live_server.load(protected_feeder())
    with live_server.engine.begin() as connection:
        create_crew(connection, "CR-1", "Crew 1", depot_point=DEPOT, account="e2e-crew")
    with session_scope(live_server.engine) as session:
        token = accounts.issue_token(session, "e2e-crew").token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def open_map(browser, live_server):
    """open_map(width, height): a dispatcher's /map/dispatch in a context of its own, ready."""
    contexts, errors = [], []

    def opened(width: int, height: int):
        context = browser.new_context(viewport={"width": width, "height": height}, **TEST_CONTEXT)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(15_000)
        live_server.sign_in(page, "dispatcher", then="/map/dispatch")
        page.wait_for_function(READY)
        return page

    yield opened
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _api(live_server, path: str) -> dict:
    answer = requests.get(live_server.url(path), headers=HEADERS["dispatcher"], timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _board(page) -> dict[str, str]:
    """code -> state of every outage on the page's board."""
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('.ga-board li'))
        .map(li => [li.dataset.code, li.dataset.state]))""")


def _wait_board(page, code: str, state: str | None) -> None:
    """Until the board shows ``code`` in ``state`` (None: until it is gone), within LIVE_MS."""
    selector = f'.ga-board li[data-code="{code}"]'
    if state is None:
        page.wait_for_function(f"() => !document.querySelector('{selector}')", timeout=LIVE_MS)
    else:
        page.wait_for_function(f"() => document.querySelector('{selector}[data-state=\"{state}\"]')", timeout=LIVE_MS)


def _crew_at(page) -> list[float]:
    return page.evaluate("() => { const p = GridAtlasDispatch.markers.crews['CR-1'].getLatLng(); return [p.lng, p.lat]; }")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _shot(page, name: str) -> None:
    page.wait_for_function("() => GridAtlasDispatch.state.busy === 0")
    page.screenshot(path=SCREENSHOTS.format(name))


def test_two_dispatchers_follow_a_storm_live(live_server, storm_network, open_map):
    first = open_map(1280, 720)
    second = open_map(1024, 768)
    assert _board(first) == {} and _board(second) == {}
    assert _crew_at(first) == pytest.approx(list(DEPOT))

    # The storm: two calls under T1, a last gasp at C9 (fed from the other source).
    for account in ("A-C1", "A-C2"):
        answer = requests.post(live_server.url("/api/calls"), json={"account": account}, timeout=10)
        assert answer.status_code == 201, answer.text
    events = [{"id": f"lg-{meter}", "meter": meter, "kind": "last_gasp", "at": _now()} for meter in ("C9",)]
    answer = requests.post(live_server.url("/api/meter-events"), json={"events": events},
                           headers=HEADERS["integration"], timeout=10)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    live_server.settled()  # the server settles reports after answering them
    outages = {f["id"]: f["properties"] for f in _api(live_server, "/api/outages")["features"]}
    assert len(outages) == 2, outages
    assert {p["state"] for p in outages.values()} == {"predicted"}
    for page in (first, second):
        for code in outages:
            _wait_board(page, code, "predicted")
        assert sorted(page.evaluate("Object.keys(GridAtlasDispatch.markers.outages)")) == sorted(outages)
        page.wait_for_function(f"() => GridAtlasDispatch.state.calls === 2", timeout=LIVE_MS)
    by_device = {p["device"]: code for code, p in outages.items()}
    storm = by_device["T1"]
    # sorted by customers out, the larger first
    largest = max(outages, key=lambda code: outages[code]["customers_out"])
    assert first.locator(".ga-board li").first.get_attribute("data-code") == largest
    _shot(first, "board-1280x720")

    # Page 1 opens the outage from its marker, confirms it and sends the nearest crew.
    first.locator(f'.ga-om[data-code="{storm}"]').click()
    first.wait_for_function("() => GridAtlasDispatch.state.detail && GridAtlasDispatch.state.busy === 0")
    panel = first.locator(".ga-outage")
    assert "T1" in panel.inner_text() and "3 out of 3 affected" in panel.inner_text()
    first.wait_for_function("() => GridAtlasDispatch.state.loads.affected > 0")
    assert first.evaluate("GridAtlasDispatch.layers.affected.getLayers().length") > 0
    panel.locator("[data-action=confirm]").click()
    first.wait_for_selector('.ga-outage[data-state="confirmed"]')
    _wait_board(second, storm, "confirmed")
    panel.locator("[data-action=crews]").click()
    first.wait_for_selector('[data-assign="CR-1"]')
    first.locator(".ga-dispatch-legend summary").click()  # the legend, unfolded
    _shot(first, "crews-1280x720")
    panel.locator('[data-assign="CR-1"]').click()
    first.wait_for_selector('.ga-outage[data-state="crew_assigned"] .ga-outage-crew')
    assert panel.locator(".ga-outage-crew").inner_text() == "CR-1"
    _wait_board(second, storm, "crew_assigned")
    status = _api(live_server, "/api/crews")["features"][0]["properties"]["status"]
    second.wait_for_function(f"() => document.querySelector('.ga-crewmark[data-code=\"CR-1\"]').dataset.status === '{status}'",
                             timeout=LIVE_MS)
    _shot(first, "outage-1280x720")

    # The crew's phone reports where it is: its marker moves on both maps.
    moved = [7.9441, 48.4712]
    answer = requests.post(live_server.url("/api/crews/CR-1/positions"), headers=storm_network, timeout=10,
                           json={"positions": [{"lon": moved[0], "lat": moved[1], "at": _now()}]})
    assert answer.status_code == 200, answer.text
    for page in (first, second):
        page.wait_for_function(
            f"() => {{ const p = GridAtlasDispatch.markers.crews['CR-1'].getLatLng(); "
            f"return Math.abs(p.lng - {moved[0]}) < 1e-9 && Math.abs(p.lat - {moved[1]}) < 1e-9; }}", timeout=LIVE_MS)

    # Page 2 restores what is left: the outage leaves page 1's board.
    second.locator(f'.ga-board li[data-code="{storm}"] button').click()
    second.wait_for_selector('.ga-outage[data-state="crew_assigned"]')
    _shot(second, "outage-1024x768")
    second.locator(".ga-outage [data-action=restore]").click()
    second.wait_for_selector('.ga-outage[data-state="restored"]')
    _wait_board(first, storm, None)
    first.wait_for_selector('.ga-outage[data-state="restored"]', timeout=LIVE_MS)  # its open panel follows
    assert list(_board(first)) == [code for code in outages if code != storm]

    # A portrait tablet: the panel below the map, nothing off the screen.
    second.set_viewport_size({"width": 768, "height": 1024})
    second.evaluate("() => GridAtlasDispatch.map.invalidateSize()")
    _shot(second, "outage-768x1024")
    for page in (first, second):
        assert page.evaluate("""() => { const panel = document.getElementById('ga-dispatch').getBoundingClientRect();
            return panel.bottom <= window.innerHeight && panel.right <= window.innerWidth
                   && document.documentElement.scrollHeight <= window.innerHeight; }""")


def test_search_the_switching_log_and_an_error_shown(live_server, storm_network, open_map):
    page = open_map(1280, 720)
    switched = requests.post(live_server.url("/api/switching"), headers=HEADERS["dispatcher"], timeout=10,
                             json={"operations": [{"device": "SW2", "action": "open"}], "reason": "storm damage on s3"})
    assert switched.status_code == 201, switched.text
    # Another dispatcher's switching: the device is redrawn, ringed as out of its normal state.
    page.wait_for_function("() => (GridAtlasDispatch.state.abnormal || []).includes('SW2')", timeout=LIVE_MS)
    page.locator('.ga-tabs [data-tab="log"]').click()
    page.wait_for_function("() => GridAtlasDispatch.state.logLoads > 0")
    assert "storm damage on s3" in page.locator(".ga-log").inner_text()
    assert "SW2 opened" in page.locator(".ga-log").inner_text()

    made = requests.post(live_server.url("/api/outages"), headers=HEADERS["dispatcher"], timeout=10,
                         json={"device": "F1", "cause": "vegetation"})
    code = made.json()["outage"]["code"]
    page.fill(".ga-dispatch-search [name=q]", code)
    page.locator(".ga-dispatch-search button").click()
    page.locator(".ga-found button").first.click()
    page.wait_for_selector('.ga-outage[data-state="confirmed"]')
    # A refused action shows the API's own words.
    page.fill(".ga-move-form [name=device]", "NOPE")
    page.locator(".ga-move-form button").click()
    page.wait_for_selector(".ga-outage .ga-error")
    assert "NOPE" in page.locator(".ga-outage .ga-error").inner_text()
    # An ETR typed in local time reaches the API with its offset.
    page.fill(".ga-etr-form [name=etr]", "2030-01-02T03:04")
    page.locator('.ga-etr-form button[type=submit]').click()
    page.wait_for_function("() => GridAtlasDispatch.state.detail.outage.etr_source === 'dispatcher'")
    etr = _api(live_server, f"/api/outages/{code}")["outage"]["etr"]
    # (the outage's detail writes its times as HTTP dates: "Wed, 02 Jan 2030 03:04:00 GMT")
    assert datetime.fromisoformat(etr) == datetime.fromisoformat(page.evaluate(
        "() => new Date('2030-01-02T03:04').toISOString()").replace("Z", "+00:00"))
    _shot(page, "search-1280x720")


# Whether every panel of the page is inside the window (nothing runs off the bottom or the side).
FITS = """(selectors) => selectors.every(selector => {
  const box = document.querySelector(selector).getBoundingClientRect();
  return box.bottom <= window.innerHeight + 0.5 && box.right <= window.innerWidth + 0.5;
}) && document.documentElement.scrollWidth <= window.innerWidth
   && document.documentElement.scrollHeight <= window.innerHeight"""


@pytest.mark.parametrize("width, height", [(1280, 800), (1280, 720), (768, 1024), (1024, 768)])
def test_the_network_map_fits_a_short_screen_and_a_tablet(live_server, browser, width, height):
    live_server.reset()
    live_server.load(protected_feeder())
    context = browser.new_context(viewport={"width": width, "height": height}, **TEST_CONTEXT)
    try:
        page = context.new_page()
        live_server.sign_in(page, "dispatcher", then="/map/network")
        page.wait_for_function("() => window.GridAtlas && GridAtlas.trace && GridAtlas.state.loads > 0 "
                               "&& GridAtlas.state.loading === 0 && !GridAtlas.state.scheduled")
        # zoomed out: the status panel above the trace panel grows a line of hints
        page.evaluate("() => GridAtlas.map.setZoom(GridAtlas.map.getZoom() - 3, {animate: false})")
        page.wait_for_function("() => GridAtlas.state.loading === 0 && !GridAtlas.state.scheduled")
        page.locator(".ga-trace-modes button[data-trace=isolation]").click()
        page.evaluate("() => GridAtlas.trace.select('SW2')")  # the longest panel: a result and the operate form
        page.wait_for_function("() => GridAtlas.trace.state.busy === 0 && GridAtlas.trace.state.runs > 0")
        page.screenshot(path=SCREENSHOTS.format(f"network-{width}x{height}"))
        assert page.evaluate(FITS, [".ga-trace", ".ga-legend", ".ga-status", ".ga-titlebar"])
        assert "Zoom in" in page.locator(".ga-status").inner_text()
        # the trace panel scrolls within the room left below the status panel
        assert page.locator(".ga-trace").evaluate("panel => panel.style.maxHeight !== ''")
        # the dispatcher's way to the live map
        assert page.locator(".ga-titlebar a.ga-titlelink", has_text="Dispatch map").get_attribute("href") == "/map/dispatch"
    finally:
        context.close()


def test_the_page_carries_its_script_texts(live_server, storm_network, open_map):
    page = open_map(1280, 720)
    texts = page.evaluate("() => JSON.parse(document.getElementById('ga-texts').textContent)")
    assert texts["Assign the nearest crew"] == "Assign the nearest crew" and "Trace" in texts
    assert texts["%(num)s out"] == ["%(num)s out", "%(num)s out"]


def test_the_page_runs_under_its_real_policy(live_server, storm_network, browser):
    """No CDN, no script or style the Content-Security-Policy refuses (the other tests set it aside)."""
    context = browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-US")
    try:
        page = context.new_page()
        refused, errors, seen = [], [], []
        page.on("console", lambda message: refused.append(message.text)
                if message.type == "error" and "Content Security Policy" in message.text else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: seen.append(request.url))
        live_server.sign_in(page, "dispatcher", then="/map/dispatch")
        # polled with evaluate: wait_for_function would need 'unsafe-eval'
        for _ in range(150):
            if page.evaluate("() => window.GridAtlasDispatch && GridAtlasDispatch.state.polls > 1 "
                             "&& GridAtlasDispatch.state.loads.outages > 0"):
                break
            page.wait_for_timeout(100)
        else:
            pytest.fail("the dispatch map did not start")
        assert refused == [] and errors == []
        assert live_server.only_local(seen), [url for url in seen if "127.0.0.1" not in url]
    finally:
        context.close()


@pytest.mark.parametrize("width, height", [(1280, 720), (768, 1024)])
def test_the_public_title_bar_fits_with_its_links_to_the_outage_pages(live_server, browser, width, height):
    live_server.reset()
    live_server.load(protected_feeder())
    context = browser.new_context(viewport={"width": width, "height": height}, **TEST_CONTEXT)
    try:
        page = context.new_page()
        page.goto(live_server.url("/map/network"))
        page.wait_for_function("() => window.GridAtlas && GridAtlas.state.loads > 0 && GridAtlas.state.loading === 0")
        links = page.locator(".ga-titlebar a.ga-titlelink")
        assert [links.nth(n).get_attribute("href") for n in range(links.count())] == ["/map/outages", "/status"]
        assert page.evaluate(FITS, [".ga-titlebar", ".ga-status"])
    finally:
        context.close()
