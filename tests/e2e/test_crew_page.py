"""The crew's phone page (/crew) in headless Chromium: a crew on a phone with its position shared.

The crew CR-1 is tied to the account e2e-crew; a dispatcher (over HTTP, with its token) confirms
an outage at the recloser R1 of the protected feeder and sends CR-1. On the phone the crew sees
the assignment and the way to it, its position reaches the server, On site moves the outage, a
note lands in the timeline, and "All restored" restores the outage; a new assignment then shows
without a reload. Screenshots: /tmp/crew-*.png (English and Chinese).
"""
from __future__ import annotations

import pytest
import requests

from outages.crews import create_crew
from tests.accounts import HEADERS
from tests.e2e.conftest import TEST_CONTEXT
from tests.networks import protected_feeder

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
# Where the phone says it is: about 300 m east-south-east of the recloser R1 (7.942, 48.473).
HERE = {"longitude": 7.9455, "latitude": 48.4718, "accuracy": 12}
DISPATCHER = HEADERS["dispatcher"]


def _context(browser, **options):
    """A phone context sharing ``HERE``; its pages' JavaScript errors are kept in ``context.errors``."""
    context = browser.new_context(**{**TEST_CONTEXT, **PHONE, **options})
    context.errors = []
    context.on("page", lambda page: page.on("pageerror", lambda e: context.errors.append(str(e))))
    return context


def _api(server, method: str, path: str, **kwargs) -> dict:
    """A dispatcher's API call; the answer's JSON (failing on an error status)."""
    response = requests.request(method, server.url(path), headers=DISPATCHER, timeout=10, **kwargs)
    assert response.ok, (response.status_code, response.text)
    return response.json()


def _outage_for_crew(server, device: str) -> str:
    """Confirm an outage at ``device`` and send CR-1 to it; its code."""
    code = _api(server, "POST", "/api/outages", json={"device": device, "cause": "vegetation"})["outage"]["code"]
    _api(server, "POST", f"/api/outages/{code}/assign", json={"crew": "CR-1"})
    return code


def _shot(page, name: str) -> None:
    """/tmp/crew-<name>.png: the top of the page, and -<name>-end.png scrolled to its end."""
    page.evaluate("document.querySelector('.ga-main').scrollTop = 0")
    page.screenshot(path=f"/tmp/crew-{name}.png")
    page.evaluate("document.querySelector('.ga-main').scrollTop = 1e6")
    page.screenshot(path=f"/tmp/crew-{name}-end.png")
    page.evaluate("document.querySelector('.ga-main').scrollTop = 0")


@pytest.fixture()
def crew_server(live_server):
    """The protected feeder and the crew CR-1 of the account e2e-crew, at its depot."""
    live_server.reset()
    live_server.load(protected_feeder())
    with live_server.engine.begin() as connection:
        create_crew(connection, "CR-1", "Crew 1", vehicle="Van 7", depot_point=(7.943, 48.471), account="e2e-crew",
                    members=[{"name": "Anna Weber", "duty": "lead"}, {"name": "Li Wei", "duty": "lineman"}])
    return live_server


def test_a_crew_works_its_assignment_from_a_phone(crew_server, browser):
    code = _outage_for_crew(crew_server, "R1")
    context = _context(browser, geolocation=HERE, permissions=["geolocation"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    crew_server.sign_in(page, "crew", then="/crew")
    page.wait_for_function("CrewPage.state.loads > 0")

    # The assignment and the way to it: both markers and the line, drawn without a base map.
    assert page.inner_text("#cw-crew-name") == "CR-1 Crew 1"
    assert "Anna Weber (lead)" in page.inner_text("#cw-members")
    assert page.inner_text("#cw-outage-code") == code
    assert page.inner_text("#cw-outage-device") == "R1"
    assert page.get_attribute("#cw-outage-state", "data-status") == "crew_assigned"
    assert page.inner_text("#cw-outage-cause") == "Vegetation"
    assert page.inner_text("#cw-outage-out") == "2 of 2"

    # The phone's position reaches the server; the way is measured from it.
    page.wait_for_function("CrewPage.state.positionsSent > 0")
    assert page.inner_text("#cw-position").startswith("Position sent ")
    crews = _api(crew_server, "GET", "/api/crews")["features"]
    lon, lat = next(f for f in crews if f["properties"]["code"] == "CR-1")["geometry"]["coordinates"]
    assert (round(lon, 4), round(lat, 4)) == (HERE["longitude"], HERE["latitude"])
    way = page.inner_text("#cw-way-text")
    assert " m in a straight line, bearing 29" in way and way.endswith("(north-west)"), way
    assert page.locator("#cw-map path.leaflet-interactive").count() == 3  # two markers and the line
    assert page.get_attribute("#cw-navigate", "href").startswith("geo:48.473000,7.942000")

    # On site moves the outage; a refused status shows the API's reason.
    page.click("#cw-status-buttons [data-status=on_site]")
    page.wait_for_selector("#cw-outage-state[data-status=on_site]")
    assert _api(crew_server, "GET", f"/api/outages/{code}")["outage"]["state"] == "on_site"
    page.click("#cw-status-buttons [data-status=available]")
    page.wait_for_selector("#cw-error:not(:empty)")
    assert f"is assigned to {code}" in page.inner_text("#cw-error")

    # A note lands in the outage's timeline.
    page.fill("#cw-note", "Broken insulator on pole 14, replacing it")
    page.click("#cw-note-form button[type=submit]")
    page.wait_for_selector("#cw-timeline li:has-text('Broken insulator on pole 14')")
    timeline = _api(crew_server, "GET", f"/api/outages/{code}")["timeline"]
    assert [e["note"] for e in timeline if e["kind"] == "note"] == ["Broken insulator on pole 14, replacing it"]
    _shot(page, "en")

    # The same page in Chinese, through the language switch.
    with page.expect_navigation():
        page.click(".ga-lang a[lang=zh]")
    page.wait_for_function("CrewPage.state.loads > 0 && CrewPage.state.positionsSent > 0")
    assert page.get_attribute("html", "lang") == "zh-CN"
    _shot(page, "zh")
    with page.expect_navigation():
        page.click(".ga-lang a[lang=en]")
    page.wait_for_function("CrewPage.state.loads > 0")

    # "All restored" asks for a second tap, then restores the outage at its own device.
    page.click("#cw-all-restored")
    assert page.inner_text("#cw-all-restored") == "Tap again: all customers are back"
    page.click("#cw-all-restored")
    page.wait_for_selector("#cw-outage", state="hidden")
    assert page.inner_text("#cw-message") == f"Outage {code} restored"
    assert _api(crew_server, "GET", f"/api/outages/{code}")["outage"]["state"] == "restored"
    assert page.get_attribute("#cw-crew-status", "data-status") == "available"

    # A new assignment from the dispatcher shows by itself (the live feed).
    loads = page.evaluate("CrewPage.state.loads")
    second = _outage_for_crew(crew_server, "F1")
    page.wait_for_function(f"CrewPage.state.loads > {loads} && CrewPage.state.outage === {second!r}")
    assert page.inner_text("#cw-outage-code") == second
    _shot(page, "new-assignment")
    page.set_viewport_size({"width": 1024, "height": 768})
    page.screenshot(path="/tmp/crew-tablet.png")
    context.close()
    assert not context.errors, context.errors


def test_restoring_in_steps_and_positions_kept_while_offline(crew_server, browser):
    code = _outage_for_crew(crew_server, "R1")
    context = _context(browser, geolocation=HERE, permissions=["geolocation"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    crew_server.sign_in(page, "crew", then="/crew")
    page.wait_for_function("CrewPage.state.positionsSent > 0")

    # Offline, new positions wait in the queue; back online they are sent.
    context.set_offline(True)
    for step in range(1, 6):
        context.set_geolocation({**HERE, "latitude": HERE["latitude"] + step * 0.0001})
        page.wait_for_function(f"CrewPage.state.phone.lat > {HERE['latitude'] + (step - 0.5) * 0.0001}")
    page.wait_for_selector("#cw-position:has-text('Offline')")
    assert page.evaluate("CrewPage.state.queued") == 5
    context.set_offline(False)
    page.evaluate("CrewPage.sendPositions()")
    page.wait_for_function("CrewPage.state.queued === 0")
    crews = _api(crew_server, "GET", "/api/crews")["features"]
    lon, lat = next(f for f in crews if f["properties"]["code"] == "CR-1")["geometry"]["coordinates"]
    assert round(lat, 4) == round(HERE["latitude"] + 0.0005, 4)

    # Restore below SW2 (C5), then the rest at the outage's own device.
    page.fill("#cw-step-device", "SW2")
    page.click("#cw-step-form button[type=submit]")
    page.wait_for_selector("#cw-message:has-text('Restored below SW2')")
    assert page.inner_text("#cw-outage-out") == "1 of 2"
    page.fill("#cw-step-device", "R1")
    page.click("#cw-step-form button[type=submit]")
    page.wait_for_selector("#cw-outage", state="hidden")
    assert _api(crew_server, "GET", f"/api/outages/{code}")["outage"]["state"] == "restored"
    context.close()
    assert not context.errors, context.errors


def test_an_account_without_a_crew_is_told_to_ask_the_dispatcher(live_server, browser):
    live_server.reset()
    context = _context(browser)
    page = context.new_page()
    live_server.sign_in(page, "crew", then="/crew")
    assert "Ask the dispatcher" in page.inner_text("#cw-no-crew")
    page.screenshot(path="/tmp/crew-no-crew.png")
    context.close()
    assert not context.errors, context.errors
