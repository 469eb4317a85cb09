"""End-to-end fixtures: the real app behind a real HTTP server, and headless Chromium driving it.

The server commits for real, so it gets a database of its own, ``<TEST_DB_NAME>_e2e`` in the
embedded cluster (or ``E2E_DATABASE_URL``), created fresh and migrated once per session; the
rolled-back integration tests never see it. Every test under tests/e2e/ is marked ``e2e``.

Usage::

    from tests.networks import feeder_with_tie

    def test_something(live_server, page, requests_seen, screenshot):
        live_server.reset()                          # empty every data table
        live_server.load(feeder_with_tie())          # commit a network (NetworkFrames)
        with live_server.engine.begin() as connection:   # or add rows of your own
            ...
        page.goto(live_server.url("/map/network"))
        page.wait_for_function("window.GridAtlas && GridAtlas.state.loads > 0")
        assert live_server.only_local(requests_seen), requests_seen
        screenshot(page, "my_page")                  # tests/e2e/screenshots/my_page.png

Fixtures:

``live_server`` (session)
    A ``LiveServer``: ``url(path)``, ``engine``, ``app``, ``load(frames)``, ``reset()`` (which
    also makes an account ``e2e-<role>`` per role), ``sign_in(page, role)``, ``only_local(urls)``. It serves with threads on a free port of 127.0.0.1, with
    ``BASEMAP_URL=none`` so that a page needs no other host.
``browser`` (session)
    Playwright's Chromium (Debian's /usr/bin/chromium, headless).
``page`` (per test)
    A fresh page (1400x900) in its own context; JavaScript errors on the page fail the test.
``requests_seen`` (per test)
    Every URL the ``page`` requested, in order (``page.on("request")``).
``screenshot``
    ``screenshot(page, name)`` saves tests/e2e/screenshots/<name>.png (git-ignored) and returns its path.
"""
from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from app import create_app
from geo import accounts
from geo.auth import ROLES
from geo.db import make_engine, session_scope
from geo.migrate import upgrade
from outages.settler import Service, wait_settled
from tests.accounts import add_role_accounts
from tests.conftest import _test_database_url, empty_tables
from topology.loader import NetworkFrames, load_network

CHROMIUM = "/usr/bin/chromium"
# Playwright's wait_for_function polls by evaluating its expression as a string, which our
# Content-Security-Policy (no 'unsafe-eval') refuses; the tests' pages set the policy aside.
# tests/e2e/test_security.py opens every page under its real policy.
# English whatever the machine's locale: the pages follow the browser's Accept-Language (tests of the
# Chinese pages set locale="zh-CN").
TEST_CONTEXT = {"bypass_csp": True, "locale": "en-US"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
SCREENSHOTS = Path(__file__).parent / "screenshots"
E2E_PASSWORD = "the e2e accounts' password"


def pytest_collection_modifyitems(items):
    """Mark every test of this folder ``e2e`` (deselect them with ``-m 'not e2e'``)."""
    folder = Path(__file__).parent
    for item in items:
        if folder in item.path.parents:
            item.add_marker(pytest.mark.e2e)


class LiveServer:
    """The app served over HTTP from a thread, on its own committed database."""

    def __init__(self, database_url: str, config: dict | None = None):
        self.engine = make_engine(database_url, pool_size=4)
        upgrade(self.engine)
        self.app = create_app({"DATABASE_URL": database_url, "ENGINE": self.engine, "BASEMAP_URL": "none",
                               "TESTING": True, **(config or {})})
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="e2e-server", daemon=True)

    def start(self) -> "LiveServer":
        """Serve in the background, with the settler that production runs beside the web workers."""
        self._thread.start()
        self.settler = Service.of(self.app).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the database connections."""
        self._server.shutdown()
        self._thread.join(timeout=10)
        self.settler.stop()
        self.app.extensions["reads"].close()
        self.engine.dispose()

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def load(self, frames: NetworkFrames) -> dict[str, int]:
        """Load and commit a network; return its row counts."""
        with self.engine.begin() as connection:
            return load_network(connection, frames)

    def settled(self, timeout: float = 20.0) -> None:
        """Wait until the server has settled every report it answered (outages/settler.py)."""
        assert wait_settled(self.engine, timeout), "reports still waiting to be settled"

    def reset(self) -> None:
        """Empty every data table (every package's), and bump the topology version; then an account
        ``e2e-<role>`` with ``E2E_PASSWORD`` and the fixed token of tests/accounts.py for each role."""
        self.settled()
        self.settler.stop()  # emptying the tables under a settler's reads could deadlock
        empty_tables(self.engine)
        self.settler = Service.of(self.app).start()
        with session_scope(self.engine) as session:
            add_role_accounts(session.connection())
            for role in ROLES:
                accounts.create_account(session, f"e2e-{role}", role, E2E_PASSWORD)

    def sign_in(self, page, role: str, then: str = "/map/network") -> None:
        """Sign ``page`` in as ``e2e-<role>`` through the sign-in form, landing on ``then``."""
        page.goto(self.url(f"/login?next={then}"))
        page.fill("#ga-name", f"e2e-{role}")
        page.fill("#ga-password", E2E_PASSWORD)
        with page.expect_navigation():
            page.click("form.ga-form button[type=submit]")
        assert urlsplit(page.url).path == then, page.url

    def only_local(self, urls: list[str]) -> bool:
        """Whether every URL is on this server (or inline: data:, blob:, about:)."""
        return all(urlsplit(url).scheme in ("data", "blob", "about")
                   or (urlsplit(url).hostname, urlsplit(url).port) == ("127.0.0.1", self.port) for url in urls)


@pytest.fixture(scope="session")
def live_server():
    """The app on a real server over the e2e database (see the module docstring)."""
    server = LiveServer(_test_database_url("E2E_DATABASE_URL", suffix="_e2e")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture()
def requests_seen() -> list[str]:
    """The URLs the test's page requested."""
    return []


@pytest.fixture()
def page(browser, requests_seen):
    """A fresh 1400x900 page recording its requests; an uncaught JavaScript error fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, **TEST_CONTEXT)
    page = context.new_page()
    errors: list[str] = []
    page.on("request", lambda request: requests_seen.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def save_screenshot(page, name: str) -> Path:
    """Save a screenshot of ``page`` as tests/e2e/screenshots/<name>.png and return its path."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture()
def screenshot():
    """``screenshot(page, name)``: save a screenshot under tests/e2e/screenshots/."""
    return save_screenshot
