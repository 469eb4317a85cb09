"""Who sees what on the network map, in headless Chromium: a dispatcher signs in and operates a
switch (tests/e2e/test_trace_tool.py does it step by step), a planner traces but cannot switch,
an anonymous visitor sees the network without customers or tools and the API refuses it."""
from __future__ import annotations

import pytest

from tests.networks import protected_feeder

LOADED = "() => window.GridAtlas && GridAtlas.state.loads > 0 && GridAtlas.state.loading === 0"
SWITCH = """() => fetch('/api/switching', {method: 'POST', headers: {'Content-Type': 'application/json'},
  body: JSON.stringify({operations: [{device: 'SW2', action: 'open'}], reason: 'from the page'})})
  .then(r => r.json().then(body => [r.status, body.detail]))"""


@pytest.fixture()
def feeder(live_server):
    """protected_feeder with SW2 between s2 and s3."""
    live_server.reset()
    live_server.load(protected_feeder())
    return live_server


def _log(page):
    return page.evaluate("() => fetch('/api/switching/log').then(r => r.status)")


def test_an_anonymous_visitor_sees_the_network_but_no_customers_and_no_switching(feeder, page, screenshot):
    page.goto(feeder.url("/map/network"))
    page.wait_for_function(LOADED)
    assert page.evaluate("Object.keys(GridAtlas.layers).sort()") == [
        "areas", "segments", "substations", "switchgear", "transformers"]
    assert page.evaluate("typeof GridAtlas.trace") == "undefined"
    assert page.locator(".ga-trace").count() == 0 and page.locator(".ga-trace-operate").count() == 0
    assert page.locator(".ga-account a").inner_text() == "Sign in"
    status, detail = page.evaluate(SWITCH)
    assert status == 401 and "sign in" in detail
    assert _log(page) == 401
    assert page.evaluate("() => fetch('/api/network/service_points?bbox=-180,-90,180,90').then(r => r.status)") == 401
    screenshot(page, "access_anonymous_map")


def test_a_planner_traces_but_is_refused_switching(feeder, page, screenshot):
    feeder.sign_in(page, "planner")
    page.wait_for_function(LOADED)
    assert "e2e-planner · planner" in page.locator(".ga-account").inner_text()
    assert page.evaluate("typeof GridAtlas.trace.run") == "function"
    assert "customers" in page.evaluate("Object.keys(GridAtlas.layers)")
    page.evaluate("() => GridAtlas.trace.select('SW2')")
    page.wait_for_function("() => GridAtlas.trace.state.runs > 0 && GridAtlas.trace.state.busy === 0")
    assert page.locator(".ga-trace-operate").count() == 0  # no switching controls offered
    status, detail = page.evaluate(SWITCH)  # and the API refuses, even with the page's CSRF token
    assert status == 403 and "planner" in detail
    assert _log(page) == 200
    screenshot(page, "access_planner_map")


def test_a_dispatcher_signs_in_operates_and_signs_out(feeder, page, screenshot):
    feeder.sign_in(page, "dispatcher")
    page.wait_for_function(LOADED)
    assert "e2e-dispatcher · dispatcher" in page.locator(".ga-account").inner_text()
    open_before = int(page.get_attribute(".ga-summary li[data-open]", "data-open"))
    page.evaluate("() => GridAtlas.trace.select('SW2')")
    page.wait_for_function("() => GridAtlas.trace.state.runs > 0 && GridAtlas.trace.state.busy === 0")
    page.locator(".ga-trace-operate [name=reason]").fill("crew works on s3")
    page.locator(".ga-trace-operate button").click()
    page.wait_for_function("() => GridAtlas.trace.state.switching !== null && GridAtlas.trace.state.busy === 0")
    assert "SW2 opened" in page.locator(".ga-trace-switched").inner_text()
    counted = page.locator(".ga-summary li[data-open]").inner_text()  # the title bar follows the operation
    assert counted == f"{open_before + 1} open switch" + ("es" if open_before + 1 != 1 else "")
    log = page.evaluate("() => fetch('/api/switching/log').then(r => r.json())")
    assert log["operations"][0]["actor"] == "e2e-dispatcher"
    screenshot(page, "access_dispatcher_switched")
    with page.expect_navigation():
        page.locator(".ga-account button").click()
    assert "/login" in page.url
    assert page.evaluate(SWITCH)[0] in (401, 403)  # signed out: the session is gone


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_a_signed_in_title_bar_fits_a_phone(feeder, browser, locale, screenshot):
    """Name, role, sign-out, the language switch and the network's totals wrap inside 390 px."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale=locale, is_mobile=True,
                                  has_touch=True, bypass_csp=True)
    page = context.new_page()
    for role, path in (("dispatcher", "/map/network"), ("dispatcher", "/map/outlets"), ("admin", "/admin/audit")):
        feeder.sign_in(page, role, then=path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, (role, path)
        bar, out = page.locator(".ga-titlebar").bounding_box(), page.locator(".ga-account button").bounding_box()
        assert out["x"] + out["width"] <= 390 and out["y"] + out["height"] <= bar["y"] + bar["height"]
        with page.expect_navigation():
            page.locator(".ga-account button").click()
    screenshot(page, f"access_phone_{locale}")
    context.close()
