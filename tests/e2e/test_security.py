"""The map pages under their real Content-Security-Policy in headless Chromium: our scripts run,
a script without the response's nonce does not, and nothing is refused along the way."""
from __future__ import annotations

import time

import pytest

from tests.networks import feeder_with_tie
from tests.outlet_data import CENTRE, add_outlet

# Polled with page.evaluate: Playwright's wait_for_function would need 'unsafe-eval'.
READY = {"/map/network": "window.GridAtlas && GridAtlas.state.loads > 0 && GridAtlas.state.loading === 0",
         "/map/outlets": "window.OutletFinder && OutletFinder.state.searches > 0",
         "/map/outages": "window.OutageMap && OutageMap.state.loads > 0",
         "/status": "window.OutageStatus && document.getElementById('os-form') !== null"}
INJECTED = """() => {
  const script = document.createElement('script');
  script.textContent = 'window.injected = true';
  document.head.appendChild(script);
  return window.injected === true;
}"""


@pytest.fixture(scope="module")
def town(live_server):
    """A network and an outlet near it."""
    live_server.reset()
    live_server.load(feeder_with_tie())
    with live_server.engine.begin() as connection:
        add_outlet(connection, "CSP-1", lon=CENTRE[0], lat=CENTRE[1])
    return live_server


def _until(page, expression: str, seconds: float = 15) -> None:
    """Wait until ``expression`` is true in the page."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true after {seconds} s: {expression}"
        time.sleep(0.1)


@pytest.mark.parametrize("path", sorted(READY))
def test_a_map_page_runs_under_its_policy_and_refuses_a_script_without_the_nonce(browser, town, path, screenshot):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    refused, errors = [], []
    page.on("console", lambda message: refused.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(town.url(path))
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' 'nonce-" in policy and "frame-ancestors 'none'" in policy
    _until(page, READY[path])
    assert refused == [] and errors == []
    screenshot(page, f"csp_{path.strip('/').replace('/', '_')}")
    # An injected inline script has no nonce: the browser does not run it, and says why.
    assert page.evaluate(INJECTED) is False
    page.wait_for_timeout(200)
    assert refused and "inline script" in refused[0]
    context.close()
