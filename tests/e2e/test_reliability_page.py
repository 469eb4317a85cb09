"""The reliability page (/reliability) in headless Chromium, on a demo city with its year of
outage history: a bar per month with the storms' months in red, the major event days named, the
table per feeder with and without them, and the page in Chinese. Screenshots:
/work/notes/shots-reliab/ when that folder exists, else tests/e2e/screenshots/."""
from __future__ import annotations

from pathlib import Path

from geo.demo import DemoContext
from outages.history_demo import add_outage_history
from tests.e2e.conftest import TEST_CONTEXT
from topology.demo import city_for, generate_city
from topology.loader import load_network

CUSTOMERS = 2000
SHOTS = Path("/work/notes/shots-reliab")


def _shot(page, screenshot, name: str) -> None:
    if SHOTS.is_dir():
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    else:
        screenshot(page, name)


def _city_with_history(live_server) -> None:
    live_server.reset()
    with live_server.engine.begin() as connection:
        load_network(connection, generate_city(CUSTOMERS, seed=3))
        add_outage_history(DemoContext(connection, CUSTOMERS, 3, city_for(CUSTOMERS).bbox, "demo", lambda _: None))


def test_the_reliability_page_charts_a_year_by_month(live_server, page, requests_seen, screenshot, browser):
    _city_with_history(live_server)
    live_server.sign_in(page, "planner", then="/reliability")
    page.wait_for_selector("body[data-loaded=true]")
    bars = page.locator("#rl-svg rect.rl-bar")
    assert bars.count() in (12, 13)
    assert 1 <= page.locator("#rl-svg rect.rl-bar-med").count() <= 4  # the storms' months
    assert "major event day" in page.inner_text("#rl-med-days")
    assert page.locator("#rl-table tbody tr").count() == 1 and "System" in page.inner_text("#rl-table")
    assert "SAIDI without MEDs" in page.inner_text("#rl-table thead")
    _shot(page, screenshot, "reliability-system")

    page.select_option("#rl-by", "feeder")
    page.evaluate("document.body.dataset.loaded = 'false'")
    page.click("#rl-form button[type=submit]")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("#rl-table tbody tr").count() > 1
    assert "by=feeder" in page.get_attribute("#rl-csv", "href") and "by=feeder" in page.url
    heights = page.eval_on_selector_all("#rl-svg rect.rl-bar", "bars => bars.map(b => Number(b.getAttribute('height')))")
    page.check("#rl-med")
    page.evaluate("document.body.dataset.loaded = 'false'")
    page.click("#rl-form button[type=submit]")
    page.wait_for_selector("body[data-loaded=true]")
    without = page.eval_on_selector_all("#rl-svg rect.rl-bar", "bars => bars.map(b => Number(b.getAttribute('height')))")
    assert without != heights  # the storms' minutes left out (the axis rescales too)
    _shot(page, screenshot, "reliability-feeders-without-med")
    assert live_server.only_local(requests_seen), requests_seen

    chinese = browser.new_context(**{**TEST_CONTEXT, "locale": "zh-CN"})
    zh = chinese.new_page()
    live_server.sign_in(zh, "planner", then="/reliability")
    zh.wait_for_selector("body[data-loaded=true]")
    assert "供电可靠性" in zh.inner_text("h1") and "重大事件日" in zh.inner_text("#rl-med-days")
    assert "全系统" in zh.inner_text("#rl-table")
    _shot(zh, screenshot, "reliability-zh")
    chinese.close()
