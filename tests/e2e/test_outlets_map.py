"""The outlet finder in headless Chromium: find an outlet, pick a time, book it, see the code.

Screenshots (tests/e2e/screenshots/outlets_*.png) show the desk and the phone layouts.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.conftest import TEST_CONTEXT, save_screenshot
from tests.outlet_data import CENTRE, add_outlet

BERLIN = ZoneInfo("Europe/Berlin")
CODE = re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$")
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


@pytest.fixture()
def town(live_server):
    """Three outlets in the city centre: open around the clock, office hours, hours unknown."""
    live_server.reset()
    with live_server.engine.begin() as connection:
        add_outlet(connection, "DESK-24", name="Customer Centre Marktplatz", hours="24/7",
                   address="Kaiserstraße 12, 76133 Karlsruhe", services={"billing": 2, "meter": 1})
        add_outlet(connection, "DESK-OFFICE", name="Customer Centre Kaiserallee", hours="Mo-Fr 08:00-17:00",
                   address="Kaiserallee 12, 76185 Karlsruhe", lon=CENTRE[0] - 0.02, lat=CENTRE[1] + 0.004)
        add_outlet(connection, "DESK-UNKNOWN", name="Service Point Durlach", hours=None,
                   address="Pfinztalstraße 2, 76227 Karlsruhe", lon=CENTRE[0] + 0.05, lat=CENTRE[1] - 0.01)
    return live_server


def _context(browser, **options):
    """A browser context whose pages fail the test on a JavaScript error (as the ``page`` fixture)."""
    context = browser.new_context(**TEST_CONTEXT, **options)
    context.errors = []
    context.seen = []
    context.on("page", lambda page: (page.on("pageerror", lambda e: context.errors.append(str(e))),
                                     page.on("request", lambda r: context.seen.append(r.url))))
    return context


def _book_first_free_time(page, name: str) -> str:
    """In the open outlet's panel: choose tomorrow, the first free time, fill the form, book."""
    page.wait_for_selector("#of-detail-view:not([hidden])")
    tomorrow = (datetime.now(timezone.utc).astimezone(BERLIN) + timedelta(days=1)).date().isoformat()
    loads = page.evaluate("OutletFinder.state.slotLoads")
    page.fill("#of-book-date", tomorrow)
    page.dispatch_event("#of-book-date", "change")
    page.wait_for_function(f"OutletFinder.state.slotLoads > {loads}")
    page.wait_for_selector(".of-slot:not([disabled])")
    slot = page.locator(".of-slot:not([disabled])").first
    start = slot.get_attribute("data-start")
    slot.click()
    assert page.get_attribute(".of-slot[aria-pressed=true]", "data-start") == start
    page.fill("#of-book-name", name)
    page.fill("#of-book-phone", "0721 1234567")
    page.click("#of-book-submit")
    page.wait_for_selector("#of-confirmation:not([hidden])")
    return start


def test_search_an_address_and_book_a_visit(town, browser):
    context = _context(browser, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(town.url("/map/outlets"))
    page.wait_for_function("OutletFinder.state.searches > 0")
    assert page.locator(".of-result").count() == 3
    page.fill("#of-q", "Kaiserstr. 12")
    page.press("#of-q", "Enter")
    page.wait_for_function("OutletFinder.state.searches > 1")
    assert "nearest to Kaiserstraße 12, 76133 Karlsruhe" in page.inner_text("#of-status")
    first = page.locator(".of-result").first
    assert "Customer Centre Marktplatz" in first.inner_text() and "Open" in first.inner_text()
    assert "Hours unknown" in page.locator(".of-result").nth(2).inner_text()
    save_screenshot(page, "outlets_desk_results")

    first.click()
    page.wait_for_selector("#of-detail h2")
    assert "Opening hours" in page.inner_text("#of-detail")
    start = _book_first_free_time(page, "Erika Mustermann")
    code = page.inner_text("#of-confirmation-code")
    assert CODE.match(code), code
    assert "Billing and payment at Customer Centre Marktplatz" in page.inner_text("#of-confirmation")
    save_screenshot(page, "outlets_desk_booked")

    booking = requests.get(town.url(f"/api/bookings/{code}")).json()
    assert booking["status"] == "confirmed" and booking["start"] == start and booking["name"] == "Erika Mustermann"
    assert page.get_attribute("#of-confirmation a[download]", "href") == f"/api/bookings/{code}.ics"
    # Only our own server was asked for anything (BASEMAP_URL=none: no tiles either).
    assert town.only_local(context.seen), context.seen
    assert not context.errors
    context.close()


def test_locate_me_on_a_phone(town, browser):
    context = _context(browser, **PHONE, geolocation={"longitude": CENTRE[0] + 0.001, "latitude": CENTRE[1]},
                       permissions=["geolocation"])
    page = context.new_page()
    page.goto(town.url("/map/outlets"))
    page.wait_for_function("OutletFinder.state.searches > 0")
    page.click("#of-locate")
    page.wait_for_function("OutletFinder.state.searches > 1")
    assert "nearest to your location" in page.inner_text("#of-status")
    distances = page.locator(".of-distance").all_inner_texts()
    assert distances[0] in ("73 m", "74 m")
    # The sheet leaves the upper part of the screen to the map.
    panel = page.locator("#of-panel").bounding_box()
    assert panel["y"] > 300 and panel["width"] == 390
    save_screenshot(page, "outlets_phone_located")

    page.locator(".of-result").first.click()
    _book_first_free_time(page, "Max Mustermann")
    assert CODE.match(page.inner_text("#of-confirmation-code"))
    page.locator("#of-confirmation").scroll_into_view_if_needed()
    save_screenshot(page, "outlets_phone_booked")
    # Every control is within the phone's width: nothing to scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not context.errors
    context.close()


def test_an_ambiguous_address_offers_did_you_mean_and_a_refused_location_explains(town, browser):
    context = _context(browser, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(town.url("/map/outlets"))
    page.wait_for_function("OutletFinder.state.searches > 0")
    page.fill("#of-q", "Kaiser 12")
    page.click("#of-search button[type=submit]")
    page.wait_for_function("OutletFinder.state.searches > 1")
    choices = page.locator("#of-did-you-mean button")
    assert sorted(choices.all_inner_texts()) == ["Kaiserallee 12, 76185 Karlsruhe", "Kaiserstraße 12, 76133 Karlsruhe"]
    choices.filter(has_text="Kaiserallee").click()
    page.wait_for_function("OutletFinder.state.searches > 2")
    assert page.locator(".of-result").first.inner_text().startswith("Customer Centre Kaiserallee")
    page.click("#of-locate")  # no permission granted in this context
    page.wait_for_function("document.querySelector('#of-status').classList.contains('of-error')")
    assert "search an address instead" in page.inner_text("#of-status")
    assert not context.errors
    context.close()


def test_manage_a_booking_by_its_code(town, browser):
    start = datetime.now(timezone.utc).astimezone(BERLIN).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    code = requests.post(town.url("/api/bookings"), json={
        "outlet": "DESK-24", "service": "meter", "start": start.isoformat(), "name": "Erika Mustermann",
        "phone": "0721 1234567", "idempotency_key": "manage-1"}).json()["code"]
    context = _context(browser, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(town.url("/map/outlets"))
    page.wait_for_function("OutletFinder.state.searches > 0")
    page.click("#of-manage summary")
    page.fill("#of-manage-code", code.lower().replace("-", ""))
    page.click("#of-manage-form button")
    page.wait_for_selector("#of-manage-result h3")
    assert "You are booked" in page.inner_text("#of-manage-result")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#of-manage-result .of-danger")
    page.wait_for_function("document.querySelector('#of-manage-result h3').textContent.includes('cancelled')")
    assert requests.get(town.url(f"/api/bookings/{code}")).json()["status"] == "cancelled"
    assert not context.errors
    context.close()


def test_the_last_date_chosen_wins_when_an_earlier_answer_comes_late(town, browser):
    """Two dates chosen quickly: the first date's answer arrives after the second's and is dropped."""
    context = _context(browser, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(town.url("/map/outlets"))
    page.wait_for_function("OutletFinder.state.searches > 0")
    page.locator(".of-result", has_text="Customer Centre Marktplatz").click()
    page.wait_for_function("OutletFinder.state.slotLoads > 0")  # the panel's own first load is done
    today = datetime.now(timezone.utc).astimezone(BERLIN).date()
    first, second = (today + timedelta(days=1)).isoformat(), (today + timedelta(days=2)).isoformat()

    held = []  # the first date's request, answered only once the second date's slots are drawn
    page.route(re.compile(rf"/api/outlets/[^/]+/slots\?.*date={first}"), lambda route: held.append(route))
    loads = page.evaluate("OutletFinder.state.slotLoads")
    for date in (first, second):
        page.fill("#of-book-date", date)  # fires the input's change event
    page.wait_for_function(f"OutletFinder.state.slotLoads > {loads}")
    assert len(held) == 1
    assert {s[:10] for s in page.locator(".of-slot").evaluate_all("bs => bs.map(b => b.dataset.start)")} == {second}

    # Now the first date's request goes on and its answer arrives late (unless the page has aborted
    # it already); either way the page must keep showing the second date's times.
    try:
        held[0].continue_()
    except Exception as aborted:  # the page aborted the request: nothing left to answer
        assert "abort" in str(aborted).lower() or "closed" in str(aborted).lower(), aborted
    # Drawn (slotLoads) or dropped (staleSlotLoads): either way the page has handled it.
    page.wait_for_function(f"OutletFinder.state.slotLoads + (OutletFinder.state.staleSlotLoads || 0) > {loads + 1}")
    starts = page.locator(".of-slot").evaluate_all("bs => bs.map(b => b.dataset.start)")
    assert starts and {s[:10] for s in starts} == {second}, starts
    assert page.input_value("#of-book-date") == second
    assert page.locator("#of-slots").inner_text().count("Loading") == 0
    save_screenshot(page, "outlets_last_date_wins")
    assert not context.errors
    context.close()
