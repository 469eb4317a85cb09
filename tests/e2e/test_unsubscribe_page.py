"""The unsubscribe link of an outage message in headless Chromium: a customer subscribes over HTTP,
confirms with the code the outbox holds, an outage tells it, and the link in that message opens
a page that shows the address masked and unsubscribes with its button (English and Chinese).
Screenshots: tests/e2e/screenshots/unsubscribe-*.png.
"""
from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import text

from tests.accounts import HEADERS
from tests.e2e.conftest import TEST_CONTEXT
from tests.networks import protected_feeder


def _latest(server, kind: str) -> str:
    with server.engine.connect() as connection:
        return connection.execute(text("SELECT body FROM notification_outbox WHERE kind = :k ORDER BY id DESC LIMIT 1"),
                                  {"k": kind}).scalar_one()


def _subscribed_link(server, language: str) -> str:
    """Subscribe jo@example.org to account A-C1 in ``language``, confirm, confirm an outage at T1;
    the path of the unsubscribe link in its acknowledgement."""
    made = requests.post(server.url("/api/subscriptions"), timeout=10, json={
        "channel": "email", "address": "jo@example.org", "account": "A-C1", "language": language})
    assert made.status_code == 201, made.text
    code = re.search(r"\b(\d{6})\b", _latest(server, "subscription_code")).group(1)
    confirmed = requests.post(server.url(f"/api/subscriptions/{made.json()['reference']}/confirm"), timeout=10,
                              json={"code": code})
    assert confirmed.json()["state"] == "confirmed", confirmed.text
    outage = requests.post(server.url("/api/outages"), headers=HEADERS["dispatcher"], timeout=10, json={"device": "T1"})
    assert outage.status_code == 201, outage.text
    return re.search(r"(/unsubscribe/[A-Za-z0-9_-]+)$", _latest(server, "outage_ack")).group(1)


@pytest.mark.parametrize("language, locale", [("en", "en-US"), ("zh", "zh-CN")])
def test_the_link_shows_the_address_masked_and_unsubscribes(live_server, browser, screenshot, language, locale):
    live_server.reset()
    live_server.load(protected_feeder())
    link = _subscribed_link(live_server, language)
    context = browser.new_context(**{**TEST_CONTEXT, "locale": locale})
    page = context.new_page()
    page.goto(live_server.url(link))
    panel = page.locator("section[data-state]")
    assert panel.get_attribute("data-state") == "confirmed"
    assert "j***@e******.org" in panel.inner_text() and "jo@example.org" not in page.content()
    screenshot(page, f"unsubscribe-{language}")
    with page.expect_navigation():
        page.click("section[data-state] button[type=submit]")
    assert page.locator("section[data-state]").get_attribute("data-state") == "unsubscribed"
    assert page.locator(".ga-unsubscribed").is_visible()
    if language == "zh":
        assert "您已退订" in page.locator(".ga-unsubscribed").inner_text()
    screenshot(page, f"unsubscribe-{language}-done")
    context.close()
