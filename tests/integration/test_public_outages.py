"""The public outage API over PostGIS and HTTP: "is my power out?" by account and by address, the
open feed's coarse areas (nothing personal in it), its ETag and 304, the grid cells' totals, the
history with customer-minutes, and bad input as problem+json in both languages."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import text

from tests.accounts import client_as
from tests.networks import box, protected_feeder, two_transformer_areas
from topology.loader import load_network

PROBLEM = "application/problem+json"
TEAM = [{"name": "Li Wei", "phone": "+86 571 1234", "duty": "manager"},
        {"name": "Wang Fang", "phone": "+86 571 5678", "duty": "transformer_area_manager", "transformer_areas": ["TA1"]}]


@pytest.fixture()
def areas(app, connection):
    """two_transformer_areas (T1 feeds C1, C2 in TA1; T2 feeds C3, C4 in TA2) in one cell W with a team."""
    frames = two_transformer_areas()
    load_network(connection, frames)
    answer = client_as(app, "planner").post("/api/cells", json={
        "code": "W", "name": "West", "geometry": box(-0.3, -1.3, 10.3, 1.3), "reason": "drawn", "team": TEAM})
    assert answer.status_code == 201, answer.json
    return frames


@pytest.fixture()
def public(app):
    return app.test_client()


def _outage(app, device: str, **body) -> str:
    answer = client_as(app, "dispatcher").post("/api/outages", json={"device": device, **body})
    assert answer.status_code == 201, answer.json
    return answer.json["outage"]["code"]


def _status(client, **query):
    return client.get("/api/status", query_string=query)


def test_a_customer_learns_its_outage_and_who_answers_for_its_transformer_area(app, areas, public):
    code = _outage(app, "T1", cause="equipment")
    answer = _status(public, account="A-C1")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.json
    assert body["status"] == "out" and body["outage"]["reference"] == code and body["outage"]["cause"] == "equipment"
    assert body["outage"]["state"] == "confirmed" and body["outage"]["crew_status"] is None
    assert body["cell"] == {"code": "W", "name": "West"}
    assert body["contact"] == {"name": "Wang Fang", "phone": "+86 571 5678", "duty": "transformer_area_manager"}
    assert body["follow"] == f"/api/public/outages/{code}" and body["address"] is None and body["near"] is None
    followed = public.get(body["follow"])
    assert followed.status_code == 200 and followed.json["properties"]["status"] == "out"
    # C3 is on (TA2 has no manager of its own: the cell's manager answers); nothing of C1 in either answer.
    other = _status(public, account="A-C3").json
    assert other["status"] == "on" and other["outage"] is None and other["contact"]["name"] == "Li Wei"
    for text_ in (str(body), str(other), str(followed.json)):
        assert "A-C" not in text_ and "Customer" not in text_ and "Test Street" not in text_


def test_a_predicted_outage_is_being_looked_into(app, areas, public):
    first = public.post("/api/calls", json={"account": "A-C1"})
    assert first.status_code == 201
    body = _status(public, account="A-C1").json
    assert body["status"] == "investigating" and body["outage"]["state"] == "predicted"
    assert _status(public, account="A-C4").json["status"] == "on"


def test_an_address_is_answered_as_a_whole_and_an_ambiguous_one_asks_which(app, areas, public, connection):
    # C2 moves in with C1: two flats at one address; only C2's side is out after a step.
    connection.execute(text("UPDATE service_points SET address = '1 Test Street' WHERE code = 'C2'"))
    code = _outage(app, "T1")
    body = _status(public, q="1 Test Street").json
    assert (body["status"], body["service_points"], body["out"], body["address"]) == ("out", 2, 2, "1 Test Street")
    assert body["near"] and all(len(str(v).split(".")[-1]) <= 3 for v in body["near"])
    step = client_as(app, "dispatcher").post(f"/api/outages/{code}/steps", json={"customers": ["C1"]})
    assert step.status_code == 200, step.json
    assert _status(public, q="1 Test Street").json["out"] == 1
    choices = _status(public, q="Test Street").json
    assert choices["status"] is None and "3 Test Street" in choices["choices"]
    assert all(re.fullmatch(r"\d+ Test Street", c) for c in choices["choices"])


def test_status_refuses_bad_input_in_the_callers_language(app, areas, public):
    both = _status(public, account="A-C1", q="1 Test Street")
    assert both.status_code == 400 and both.content_type == PROBLEM and both.json["field"] == "q"
    assert _status(public).status_code == 400
    unknown = _status(public, account="9999999999")
    assert unknown.status_code == 404 and unknown.json["field"] == "account"
    odd = _status(public, account="<script>")
    assert odd.status_code == 400 and odd.json["field"] == "account"
    town = public.get("/api/status", query_string={"q": "Nowhere-at-all-Strasse 999"})
    assert town.status_code in (200, 404) and town.status_code != 500
    chinese = public.get("/api/status", headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 400 and re.search(r"[\u4e00-\u9fff]", chinese.json["detail"])
    history = public.get("/api/public/outages/history?from=yesterday", headers={"Accept-Language": "zh"})
    assert history.status_code == 400 and history.content_type == PROBLEM and history.json["field"] == "from"
    assert re.search(r"[\u4e00-\u9fff]", history.json["detail"])
    backwards = public.get("/api/public/outages/history?from=2026-11-30T10:00:00Z&to=2026-11-29T10:00:00Z")
    assert backwards.status_code == 400
    assert public.get("/api/public/outages/OUT-999999").status_code == 404


def _feature_of(collection: dict, code: str) -> dict:
    return next(f for f in collection["features"] if f["id"] == code)


def test_the_feed_publishes_coarse_areas_and_nothing_personal(app, connection, public, monkeypatch):
    load_network(connection, protected_feeder())
    connection.execute(text("UPDATE service_points SET phone = '+49 781 9' || lpad(id::text, 5, '0')"))
    code = _outage(app, "B1", cause="weather")  # five customers out: C1-C5
    small = _outage(app, "SW2")  # nested below it; C5 alone
    answer = public.get("/api/public/outages")
    assert answer.status_code == 200 and answer.mimetype == "application/geo+json"
    assert answer.headers["Cache-Control"] == "public, max-age=5" and answer.headers["ETag"]
    feature = _feature_of(answer.json, code)
    assert feature["properties"]["customers_out"] == 5 and feature["properties"]["cause"] == "weather"
    area = shape(feature["geometry"])
    points = [Point(x, y) for x, y in connection.execute(text(
        "SELECT ST_X(geom), ST_Y(geom) FROM service_points WHERE code IN ('C1','C2','C3','C4','C5')")).all()]
    # Every customer lies inside, at least the buffer (100 m, about 0.0009 degrees) from the edge.
    assert all(area.contains(p) and area.exterior.distance(p) > 0.0008 for p in points) if area.geom_type == "Polygon" \
        else all(area.contains(p) for p in points)
    assert _feature_of(answer.json, small)["geometry"] is None  # one customer: no area of its own
    body = answer.get_data(as_text=True)
    customers = connection.execute(text("SELECT code, account_number, name, address, phone FROM service_points")).all()
    assert all(row.phone for row in customers)
    for row in customers:
        for value in (row.code, row.account_number, row.name, row.address, row.phone):
            assert value not in body
    # The outline's corners lie on the grid, none on or near a customer (10 m).
    corners = [Point(c) for ring in [area.exterior] for c in ring.coords] if area.geom_type == "Polygon" else \
        [Point(c) for polygon in area.geoms for c in polygon.exterior.coords]
    assert all(corner.distance(p) > 0.0001 for corner in corners for p in points)
    # Below the threshold nothing is drawn, however big the outage.
    monkeypatch.setitem(app.config, "PUBLIC_AREA_MIN_CUSTOMERS", 6)
    assert _feature_of(public.get("/api/public/outages").json, code)["geometry"] is None


def test_the_feed_answers_304_until_an_outage_changes(app, areas, public):
    code = _outage(app, "T1")
    first = public.get("/api/public/outages")
    etag = first.headers["ETag"]
    again = public.get("/api/public/outages", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    version = public.get("/api/public/outages/version")
    assert version.headers["Cache-Control"] == "public, no-cache" and version.json["version"] in etag
    client_as(app, "dispatcher").post(f"/api/outages/{code}/etr", json={"etr": "2030-01-01T10:00:00+00:00"})
    changed = public.get("/api/public/outages", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert _feature_of(changed.json, code)["properties"]["etr"].startswith("2030-01-01T10:00:00")
    assert public.get("/api/public/outages/version").json["version"] != version.json["version"]


def test_cell_totals_count_customers_out_with_the_earliest_etr(app, areas, public):
    first = _outage(app, "T1", cause="animal", etr="2030-01-01T12:00:00+00:00")
    _outage(app, "T2", cause="vegetation", etr="2030-01-01T09:00:00+00:00")
    client_as(app, "dispatcher").post(f"/api/outages/{first}/assign", json={})
    [cell] = public.get("/api/public/outages/cells").json["features"]
    totals = cell["properties"]
    assert (cell["id"], totals["customers_out"], totals["outages"]) == ("W", 4, 2)
    assert totals["etr"].startswith("2030-01-01T09:00:00")
    assert totals["causes"] == {"animal": 1, "vegetation": 1}
    assert "Li Wei" not in str(cell) and "+86" not in str(cell)


def test_history_gives_closed_outages_with_customer_minutes(app, areas, public, connection):
    code = _outage(app, "T1")
    connection.execute(text("UPDATE outages SET started_at = now() - interval '90 minutes' WHERE code = :c"),
                       {"c": code})
    done = client_as(app, "dispatcher").post(f"/api/outages/{code}/transitions", json={"to": "restored"})
    assert done.status_code == 200, done.json
    start = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    answer = public.get("/api/public/outages/history", query_string={"from": start})
    assert answer.status_code == 200 and answer.headers["ETag"]
    [feature] = answer.json["features"]
    properties = feature["properties"]
    assert properties["code"] == code and properties["customers_affected"] == 2
    assert 2 * 89 <= properties["customer_minutes"] <= 2 * 92
    assert answer.json["truncated"] is False
    assert public.get("/api/public/outages/history", query_string={"from": start},
                      headers={"If-None-Match": answer.headers["ETag"]}).status_code == 304
    assert code not in [f["id"] for f in public.get("/api/public/outages").json["features"]]


def test_status_look_ups_are_limited_per_address(app, areas, monkeypatch):
    from geo.limits import limiter

    monkeypatch.setitem(app.config, "PUBLIC_LOOKUP_RATE_LIMIT", "2 per minute")
    limiter.reset()
    try:
        client = app.test_client()
        statuses = [_status(client, account=f"A-C{n}").status_code for n in (1, 2, 3)]
        assert statuses == [200, 200, 429]
        refused = _status(client, account="A-C1")
        assert refused.content_type == PROBLEM and int(refused.headers["Retry-After"]) > 0
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
        assert _status(other, account="A-C1").status_code == 200
        # The open feed is cacheable and not limited: a news site's poller is not refused.
        assert all(client.get("/api/public/outages/version").status_code == 200 for _ in range(3))
    finally:
        limiter.reset()
