"""Two languages over HTTP: every page and a problem+json answer in English and in Chinese, the
language chosen by Accept-Language or remembered by the switch's cookie (docs/i18n.md)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from tests.accounts import BEARER, client_as
from tests.networks import protected_feeder
from tests.outlet_data import add_outlet, days_ahead, local
from topology.loader import load_network

ROOT = Path(__file__).resolve().parents[2]
CHINESE = re.compile(r"[\u4e00-\u9fff]")
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}
SERVICE_LABELS = ["New connection", "Billing and payment", "Meters and readings", "Complaints"]



@pytest.fixture(autouse=True)
def compiled_catalogs():
    """The Chinese catalog compiled, as `make install` leaves it (without it every page is English)."""
    if not (ROOT / "translations/zh/LC_MESSAGES/messages.mo").exists():
        pytest.fail("the catalogs are not compiled: run `make install` (pybabel compile -d translations)")


def html_pages(app, role: str | None = None) -> list[str]:
    """The path of every GET route without parameters that answers ``role`` (None: anonymous) a page (text/html)."""
    paths = sorted(rule.rule for rule in app.url_map.iter_rules()
                   if "GET" in rule.methods and not rule.arguments and rule.endpoint != "static")
    with client_as(app, role) as client:
        answers = {path: client.get(path) for path in paths}
    return [path for path, answer in answers.items() if answer.status_code == 200 and answer.mimetype == "text/html"]


def visible_text(html: str) -> str:
    """What a reader sees or hears of a page: its text and its labelling attributes, no scripts."""
    html = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    labels = " ".join(re.findall(r'(?:aria-label|placeholder|title)="([^"]*)"', html))
    title = " ".join(re.findall(r"<title>(.*?)</title>", html, flags=re.S))
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.split("<body", 1)[-1]) + " " + labels + " " + title)


def template_texts() -> list[str]:
    """The English texts the templates mark, without their placeholders (words to look for)."""
    found = set()
    for _name, _line, message, _comments, _context in extract_from_dir(str(ROOT / "templates"), [("**.html", "jinja2")]):
        for text in message if isinstance(message, tuple) else [message]:
            found.update(part.strip() for part in re.split(r"%\(\w+\)\w", text) if len(part.strip()) > 2)
    return sorted(found)


# Every page, as the roles that see it differently (the network map shows dispatchers more).
PAGES = [("/login", None), ("/map/network", None), ("/map/network", "dispatcher"), ("/map/outlets", None),
         ("/map/outages", None), ("/status", None),
         ("/admin/audit", "admin"), ("/admin/audit", "planner"), ("/docs", None),  # a planner: "not allowed"
         ("/map/dispatch", "dispatcher"), ("/crew", "crew"), ("/map/cells", "planner"), ("/map/cells", "dispatcher"),
         ("/reliability", "planner")]


def test_the_pages_are_the_sign_in_page_the_maps_the_audit_log_and_the_api_docs(app):
    public = ["/map/network", "/map/outages", "/map/outlets"]
    assert html_pages(app) == ["/docs", "/login", *public, "/status"]
    assert html_pages(app, "admin") == ["/admin/audit", "/docs", "/login", *public, "/reliability", "/status"]
    assert html_pages(app, "dispatcher") == ["/docs", "/login", "/map/cells", "/map/dispatch", *public,
                                             "/reliability", "/status"]
    assert html_pages(app, "planner") == ["/docs", "/login", "/map/cells", *public, "/reliability", "/status"]
    assert html_pages(app, "crew") == ["/crew", "/docs", "/login", *public, "/status"]
    assert {path for path, _ in PAGES} == set(html_pages(app, "admin")) | {"/map/dispatch", "/crew", "/map/cells"}


@pytest.mark.parametrize("path, role", PAGES)
def test_a_chinese_browser_gets_every_page_in_chinese(app, path, role):
    response = client_as(app, role).get(path, headers=ZH)
    html = response.get_data(as_text=True)
    assert response.status_code == (403 if (path, role) == ("/admin/audit", "planner") else 200)
    assert '<html lang="zh-CN">' in html
    text = visible_text(html)
    assert len(CHINESE.findall(text)) > 20
    leaks = [english for english in template_texts() + SERVICE_LABELS
             if re.search(rf"(?<![\w-]){re.escape(english)}(?![\w-])", text)]
    assert leaks == []
    if not path.startswith("/map/"):
        return
    # The scripts' texts come in Chinese too.
    texts = json.loads(re.search(r'<script type="application/json" id="ga-texts"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert texts["Layers"] == "图层" and texts["Cancel booking"] == "取消预约"
    assert texts["%(num)s customer"] == ["%(num)s 户用户", "%(num)s 户用户"]


@pytest.mark.parametrize("path, role", PAGES)
def test_an_english_browser_gets_every_page_in_english(app, path, role):
    html = client_as(app, role).get(path, headers=EN).get_data(as_text=True)
    assert '<html lang="en">' in html
    text = visible_text(html)
    assert CHINESE.findall(text) == ["中", "文"]  # only the switch's own name of Chinese
    assert {"/login": "Sign in", "/map/outlets": "Outlet finder", "/map/network": "Network",
            "/admin/audit": "Audit log" if role == "admin" else "Not allowed",
            "/docs": "every route with its parameters", "/map/dispatch": "Dispatch", "/crew": "Crew",
            "/map/cells": "Grid cells", "/map/outages": "Outage map", "/status": "Is my power out?",
            "/reliability": "Month by month"}[path] in text


def test_the_network_totals_count_in_each_language(client):
    assert "0 座变电站" in visible_text(client.get("/map/network", headers=ZH).get_data(as_text=True))
    assert "0 substations" in visible_text(client.get("/map/network", headers=EN).get_data(as_text=True))


@pytest.mark.parametrize("header, lang", [("zh-TW", "zh-CN"), ("zh-Hans-CN", "zh-CN"), ("zh", "zh-CN"),
                                          ("fr-FR, de;q=0.8", "en"), ("", "en"), ("de, zh;q=0.5", "zh-CN")])
def test_the_best_accepted_language_wins(client, header, lang):
    assert f'<html lang="{lang}">' in client.get("/map/outlets", headers={"Accept-Language": header}).get_data(as_text=True)


def test_the_language_switch_is_remembered(client):
    html = client.get("/map/outlets", headers=EN).get_data(as_text=True)
    assert 'href="/lang/zh?next=/map/outlets"' in html
    response = client.get("/lang/zh?next=/map/outlets", headers=EN)
    assert response.status_code == 302 and response.headers["Location"] == "/map/outlets"
    assert "lang=zh" in response.headers["Set-Cookie"]
    # The cookie wins over the browser's language, on every page, until switched back.
    for path in ("/map/outlets", "/map/network"):
        assert '<html lang="zh-CN">' in client.get(path, headers=EN).get_data(as_text=True)
    client.get("/lang/en?next=/map/network", headers=ZH)
    assert '<html lang="en">' in client.get("/map/network", headers=ZH).get_data(as_text=True)


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "map", ""])
def test_the_switch_goes_back_only_to_this_site(client, target):
    response = client.get("/lang/zh", query_string={"next": target} if target else None)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_an_unknown_language_changes_nothing(client):
    response = client.get("/lang/xx?next=/map/outlets")
    assert response.headers["Location"] == "/map/outlets" and "Set-Cookie" not in response.headers


def test_a_problem_comes_in_the_clients_language(client):
    answer = client.get("/api/outlets/nearest?lat=abc&lon=8.4", headers=ZH)
    assert answer.status_code == 400 and answer.mimetype == "application/problem+json"
    assert answer.get_json() == {"type": "about:blank", "status": 400, "title": "请求有误",
                                 "detail": "lat 须为数字，而不是 'abc'", "field": "lat"}
    english = client.get("/api/outlets/nearest?lat=abc&lon=8.4", headers=EN).get_json()
    assert (english["title"], english["detail"]) == ("Bad request", "lat must be a number, not 'abc'")


def test_werkzeugs_errors_and_nested_messages_are_translated_too(client):
    assert client.get("/api/no-such-thing", headers=ZH).get_json()["title"] == "未找到"
    # A message made of another message (the hours' error inside the booking's) is translated whole.
    answer = client.get("/api/outlets/X/slots?date=2026-13-01", headers=ZH).get_json()
    assert CHINESE.search(answer["detail"]) and "not a date" not in answer["detail"]


def test_a_time_in_a_problem_is_written_the_clients_way(client, connection):
    add_outlet(connection, "DESK-1", hours="24/7", services={"billing": 1})
    body = {"outlet": "DESK-1", "service": "billing", "start": local(days_ahead(-2), 10).isoformat(),
            "name": "张三", "phone": "0721 1234567", "idempotency_key": "i18n-1"}
    chinese = client.post("/api/bookings", json=body, headers=ZH)
    assert chinese.status_code == 422 and chinese.get_json()["title"] == "无法处理的请求"
    assert re.fullmatch(r"周[一二三四五六日] \d{4}-\d\d-\d\d 10:00 \(UTC\+0[12]00\) 已经过去", chinese.get_json()["detail"])
    english = client.post("/api/bookings", json=body, headers=EN).get_json()["detail"]
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d\d-\d\d 10:00 \(UTC\+0[12]00\) is in the past", english)


def test_the_elements_a_problem_names_are_named_in_the_clients_language(client, connection):
    load_network(connection, protected_feeder())
    body = {"open": ["T1", "s2"]}
    client.environ_base["HTTP_AUTHORIZATION"] = BEARER["dispatcher"]
    chinese = client.post("/api/trace/affected", json=body, headers=ZH).get_json()["detail"]
    assert chinese.startswith("只能断开断路器、重合器、开关和熔断器；变压器 T1、线路段 s2 不能断开")
    english = client.post("/api/trace/affected", json=body, headers=EN).get_json()["detail"]
    assert english.startswith("only breakers, reclosers, switches and fuses can be opened; transformer T1, segment s2 cannot")
