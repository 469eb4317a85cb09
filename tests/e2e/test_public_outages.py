"""The public outage pages in headless Chromium: "is my power out?" (/status) on a phone, in
English and Chinese, with the report form filing a call; the public outage map (/map/outages)
showing an outage and its cell's total within 10 s of a dispatcher's change, without a reload,
and forgetting it once restored. Screenshots go to /work/notes/shots-public/ (SHOTS)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from tests.accounts import HEADERS
from tests.e2e.conftest import TEST_CONTEXT
from tests.networks import box, two_transformer_areas

SHOTS = Path(os.environ.get("PUBLIC_SHOTS", "/work/notes/shots-public"))
PHONE = {"width": 360, "height": 740}
TEAM = [{"name": "Li Wei", "phone": "+86 571 1234", "duty": "manager"},
        {"name": "Wang Fang", "phone": "+86 571 5678", "duty": "transformer_area_manager", "transformer_areas": ["TA1"]}]
# A change must be on the open map within 10 s (it asks for the version every 3 s).
CHANGE_SEEN_S = 10


@pytest.fixture()
def city(live_server, monkeypatch):
    """two_transformer_areas in one grid cell W with its team; areas drawn from 2 customers out."""
    live_server.reset()
    live_server.load(two_transformer_areas())
    monkeypatch.setitem(live_server.app.config, "PUBLIC_AREA_MIN_CUSTOMERS", 2)
    answer = requests.post(live_server.url("/api/cells"), headers=HEADERS["planner"], json={
        "code": "W", "name": "West", "geometry": box(-0.3, -1.3, 10.3, 1.3), "reason": "drawn", "team": TEAM})
    assert answer.status_code == 201, answer.text
    return live_server


def _dispatch(server, path: str, body: dict) -> dict:
    answer = requests.post(server.url(path), headers=HEADERS["dispatcher"], json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _opened(browser, size: dict, locale: str = "en-US"):
    context = browser.new_context(viewport=size, **{**TEST_CONTEXT, "locale": locale})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(15_000)
    return context, page, errors


def _look_up(page, account: str, lookups: int) -> None:
    page.check('#os-form input[value="account"]')
    page.fill("#os-q", account)
    page.click("#os-form button[type=submit]")
    page.wait_for_function(f"OutageStatus.state.lookups >= {lookups}")


def test_status_on_a_phone_tells_an_outage_and_files_a_report(browser, city):
    code = _dispatch(city, "/api/outages", {"device": "T1", "cause": "vegetation",
                                            "etr": "2030-01-01T18:00:00+00:00"})["outage"]["code"]
    context, page, errors = _opened(browser, PHONE)
    page.goto(city.url("/status"))
    _look_up(page, "A-C1", 1)
    answer = page.locator("#os-answer")
    assert answer.get_attribute("data-status") == "out"
    text = answer.inner_text()
    assert "Your power is out" in text and code in text and "trees or plants" in text and "Wang Fang" in text
    assert page.locator("#os-report").is_hidden()
    # The page fits the phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(page, "status-phone-out")

    _look_up(page, "A-C3", 2)  # C3 is on: the report form is offered, with the account filled in
    assert page.locator("#os-answer").get_attribute("data-status") == "on"
    assert page.input_value("#os-report-account") == "A-C3"
    page.check("#os-report-flicker")
    page.click("#os-report-submit")
    page.wait_for_function("OutageStatus.state.reports >= 1")
    receipt = page.locator("#os-receipt").inner_text()
    assert "Your reference is" in receipt
    _shot(page, "status-phone-reported")
    context.close()
    assert not errors, errors

    context, page, errors = _opened(browser, PHONE, "zh-CN")
    page.goto(city.url("/status"))
    _look_up(page, "A-C1", 1)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "停电" in page.locator("#os-answer").inner_text()
    _shot(page, "status-phone-zh")
    context.close()
    assert not errors, errors


def _wait_for(page, expression: str, since: float) -> float:
    page.wait_for_function(expression, timeout=CHANGE_SEEN_S * 1000)
    return time.monotonic() - since


def test_the_outage_map_shows_a_change_within_ten_seconds(browser, city):
    context, page, errors = _opened(browser, {"width": 1400, "height": 900})
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.goto(city.url("/map/outages"))
    page.wait_for_function("window.OutageMap && OutageMap.state.loads > 0")
    assert page.locator("#om-totals").inner_text() == "No outages right now"
    assert "Last updated" in page.locator("#om-updated").inner_text()

    began = time.monotonic()
    code = _dispatch(city, "/api/outages", {"device": "B1", "cause": "weather"})["outage"]["code"]
    took = _wait_for(page, "OutageMap.state.areas === 1 && OutageMap.state.cells === 1", began)
    assert took < CHANGE_SEEN_S
    assert page.locator("#om-totals").inner_text() == "4 customers out in 1 outage"
    assert page.locator(".om-count").first.inner_text() == "4"
    page.locator(".om-count").first.click()
    page.wait_for_timeout(400)  # the popup fades in
    popup = page.locator(".om-popup").inner_text()
    assert "West" in popup and "weather" in popup and "4 customers out" in popup
    _shot(page, "map-desktop-outage")

    page.fill("#os-q", "1 Test Street")
    page.click("#os-form button[type=submit]")
    page.wait_for_function("OutageStatus.state.lookups >= 1")
    assert page.locator("#os-answer").get_attribute("data-status") == "out"
    _shot(page, "map-desktop-search")

    began = time.monotonic()
    _dispatch(city, f"/api/outages/{code}/transitions", {"to": "restored"})
    assert _wait_for(page, "OutageMap.state.areas === 0 && OutageMap.state.cells === 0", began) < CHANGE_SEEN_S
    assert page.locator("#om-totals").inner_text() == "No outages right now"
    assert city.only_local(seen), seen
    # Nothing the map asked for names a customer.
    for url in seen:
        assert "A-C" not in url
    context.close()
    assert not errors, errors


def test_the_outage_map_on_a_phone(browser, city):
    _dispatch(city, "/api/outages", {"device": "T2", "cause": "animal"})
    context, page, errors = _opened(browser, PHONE)
    page.goto(city.url("/map/outages"))
    page.wait_for_function("window.OutageMap && OutageMap.state.loads > 0 && OutageMap.state.areas === 1")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    panel = page.locator("#om-panel").bounding_box()
    assert panel["y"] > PHONE["height"] / 2  # a bottom sheet: the map stays in view above it
    _shot(page, "map-phone")
    page.click("#om-grip")
    _shot(page, "map-phone-open")
    context.close()
    assert not errors, errors


def _sent_code(server, recipient: str) -> str:
    """The code the subscription's message carries (the outbox holds it until a sender sends it)."""
    import re

    from sqlalchemy import text

    with server.engine.connect() as connection:
        body = connection.execute(text("SELECT body FROM notification_outbox WHERE kind = 'subscription_code' "
                                       "AND recipient = :r ORDER BY id DESC LIMIT 1"), {"r": recipient}).scalar_one()
    return re.search(r"\b(\d{6})\b", body).group(1)


@pytest.mark.parametrize("locale, done", [("en-US", "Done"), ("zh-CN", "完成")])
def test_a_customer_subscribes_from_the_status_page_and_hears_of_the_outage(browser, city, locale, done):
    code = _dispatch(city, "/api/outages", {"device": "T1", "cause": "weather"})["outage"]["code"]
    context, page, errors = _opened(browser, PHONE, locale)
    page.goto(city.url("/status"))
    _look_up(page, "A-C1", 1)
    assert page.locator("#os-follow").is_visible()
    page.fill("#os-follow-address", "+49 170 1234567")
    page.click("#os-follow-submit")
    page.wait_for_selector("#os-confirm-form:not([hidden])")
    assert "1234567" not in page.locator("#os-confirm-sent").inner_text()  # the number is shown masked
    page.fill("#os-confirm-code", "000000" if _sent_code(city, "+491701234567") != "000000" else "111111")
    page.click("#os-confirm-form button[type=submit]")
    page.wait_for_function("document.getElementById('os-confirm-error').textContent.length > 0")
    page.fill("#os-confirm-code", _sent_code(city, "+491701234567"))
    page.click("#os-confirm-form button[type=submit]")
    page.wait_for_function("OutageStatus.state.subscriptions >= 1")
    assert done in page.locator("#os-follow-done").inner_text()
    _shot(page, f"status-phone-subscribed-{locale}")
    context.close()
    assert not errors, errors
    # The next change of that outage reaches the new subscriber through the outbox.
    _dispatch(city, f"/api/outages/{code}/etr", {"etr": "2030-01-01T18:00:00+00:00"})
    from sqlalchemy import text

    with city.engine.connect() as connection:
        kinds = connection.execute(text("SELECT kind FROM notification_outbox WHERE recipient = '+491701234567' "
                                        "AND kind <> 'subscription_code'")).scalars().all()
    assert kinds, "the subscriber is told of the new ETR"
