"""The pages in Chinese in headless Chromium (locale zh-CN): the outlet finder from an address
search to a booking, and the network map with its trace tool; no English text on them.

Screenshots: /tmp/i18n-outlets-zh.png, /tmp/i18n-network-zh.png (and under tests/e2e/screenshots/).
"""
from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.e2e.conftest import TEST_CONTEXT, save_screenshot
from tests.e2e.test_outlets_map import _book_first_free_time
from tests.e2e.test_trace_tool import _click, _open_map
from tests.networks import protected_feeder
from tests.outlet_data import CENTRE, add_outlet

CHINESE = {**TEST_CONTEXT, "locale": "zh-CN", "viewport": {"width": 1400, "height": 900}}
# Words of our English texts that must not show on a Chinese page (data such as addresses may be Latin).
ENGLISH = re.compile(r"\b(?:[Oo]pen|[Cc]losed|[Bb]ook\w*|[Nn]earest|[Ss]earch\w*|[Ss]ervices?|[Tt]oday|[Ww]alk|[Dd]rive|"
                     r"[Oo]utlets?|[Hh]ours|[Pp]hone|[Cc]ustomers?|[Ff]eeders?|[Ss]ubstations?|[Ll]oad\w*|[Zz]oom|"
                     r"[Ll]egend|[Tt]race|[Ss]witch\w*|[Cc]lick|[Ll]ayers?|[Mm]in|[Dd]irections|[Cc]all|[Ll]ocate|"
                     r"[Ss]upply|[Cc]onfirmation|[Cc]ancel|[Cc]alendar|[Ll]eft|[Tt]imes?)\b")


def _english_on(page) -> list[str]:
    """English words among the page's visible texts and labels."""
    text = page.evaluate("""() => document.body.innerText + " " + Array.from(
        document.querySelectorAll("[title],[aria-label],[placeholder]"),
        e => [e.title, e.getAttribute("aria-label"), e.placeholder].join(" ")).join(" ")""")
    return sorted(set(ENGLISH.findall(text)))


@pytest.fixture()
def chinese_town(live_server):
    """Two outlets with Chinese names: one open around the clock, one with office hours."""
    live_server.reset()
    with live_server.engine.begin() as connection:
        add_outlet(connection, "DESK-24", name="城东供电营业厅", hours="24/7",
                   address="Kaiserstraße 12, 76133 Karlsruhe", services={"billing": 2, "meter": 1})
        add_outlet(connection, "DESK-OFFICE", name="城西供电服务网点", hours="Mo-Fr 08:00-17:00",
                   address="Kaiserallee 12, 76185 Karlsruhe", lon=CENTRE[0] - 0.02, lat=CENTRE[1] + 0.004)
    return live_server


def test_the_outlet_finder_in_chinese(chinese_town, browser):
    context = browser.new_context(**CHINESE)
    errors = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(chinese_town.url("/map/outlets"))
    page.wait_for_function("OutletFinder.state.searches > 0")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.locator(".ga-heading").inner_text() == "营业厅查询"
    page.fill("#of-q", "Kaiserstr. 12")
    page.press("#of-q", "Enter")
    page.wait_for_function("OutletFinder.state.searches > 1")
    assert page.inner_text("#of-status") == "距 Kaiserstraße 12, 76133 Karlsruhe 最近的 2 个营业厅"
    first = page.locator(".of-result").first.inner_text()
    assert "城东供电营业厅" in first and "24 小时营业" in first and "步行" in first and "电费账单与缴费" in first
    assert re.search(r"\d+ 米", first)
    save_screenshot(page, "i18n_outlets_zh_results")

    page.locator(".of-result").first.click()
    page.wait_for_selector("#of-detail-view:not([hidden])")
    detail = page.inner_text("#of-detail")
    assert "营业时间" in detail and "星期一" in detail and "办理业务" in detail
    assert page.inner_text("#of-book h3") == "预约到访"
    _book_first_free_time(page, "张三")
    confirmation = page.inner_text("#of-confirmation")
    assert "预约成功" in confirmation and "确认码" in confirmation and "城东供电营业厅 · " in confirmation
    assert re.search(r"\d+月\d+日", confirmation), confirmation  # the date written the Chinese way
    save_screenshot(page, "i18n_outlets_zh_booked")

    # The detail view again with the booking panel, for the screenshot.
    page.click("#of-back")
    loads = page.evaluate("OutletFinder.state.slotLoads")
    page.locator(".of-result", has_text="城西供电服务网点").click()
    page.wait_for_function(f"OutletFinder.state.slotLoads > {loads}")
    assert page.inner_text("#of-detail h2") == "城西供电服务网点"
    assert "星期六\t不营业" in page.inner_text("#of-detail")  # a day off, not a switch's closed state
    assert _english_on(page) == []
    shutil.copy(save_screenshot(page, "i18n_outlets_zh"), "/tmp/i18n-outlets-zh.png")
    assert not errors
    context.close()


def test_the_network_map_and_trace_tool_in_chinese(live_server, browser):
    live_server.reset()
    live_server.load(protected_feeder())
    context = browser.new_context(**CHINESE)
    errors = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    _open_map(page, live_server)
    summary = page.locator(".ga-summary").inner_text().split("\n")
    assert [re.sub(r"[\d,]+", "N", item) for item in summary] == ["N 座变电站", "N 条馈线", "N 户用户", "N 台开关处于分位"]
    assert "图例" in page.inner_text(".ga-legend") and "所有用户均正常供电" in page.inner_text(".ga-trace")
    assert "图层" in page.evaluate("getComputedStyle(document.querySelector('.leaflet-control-layers-overlays'), '::before').content")
    _click(page, "SW2")
    assert "操作 SW2（合位）" in page.inner_text(".ga-trace-operate")
    assert "户用户" in page.inner_text(".ga-trace-result")
    assert _english_on(page) == []
    shutil.copy(save_screenshot(page, "i18n_network_zh"), "/tmp/i18n-network-zh.png")
    assert not errors
    context.close()


def test_the_switch_turns_a_chinese_page_english_and_back(chinese_town, browser):
    context = browser.new_context(**CHINESE)
    page = context.new_page()
    page.goto(chinese_town.url("/map/outlets"))
    with page.expect_navigation():
        page.click(".ga-lang a[lang=en]")
    page.wait_for_function("OutletFinder.state.searches > 0")
    assert page.get_attribute("html", "lang") == "en" and page.url.endswith("/map/outlets")
    assert json.loads(page.inner_text("#ga-texts"))["Layers"] == "Layers"
    page.goto(chinese_town.url("/map/network"))  # remembered on another page
    assert page.locator(".ga-heading").inner_text() == "Network"
    with page.expect_navigation():
        page.click(".ga-lang a[lang=zh]")
    assert page.locator(".ga-heading").inner_text() == "电网"
    context.close()


def test_the_chinese_outlet_finder_fits_a_phone(chinese_town, browser):
    context = browser.new_context(**{**CHINESE, "viewport": {"width": 390, "height": 844}, "is_mobile": True,
                                     "has_touch": True, "device_scale_factor": 2})
    page = context.new_page()
    page.goto(chinese_town.url("/map/outlets"))
    page.wait_for_function("OutletFinder.state.searches > 0")
    # The title bar holds the heading and the language switch side by side, nothing to scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    heading, switch = page.locator(".ga-heading").bounding_box(), page.locator(".ga-lang").bounding_box()
    assert heading["x"] + heading["width"] <= switch["x"] and switch["x"] + switch["width"] <= 390
    save_screenshot(page, "i18n_outlets_zh_phone")
    context.close()
