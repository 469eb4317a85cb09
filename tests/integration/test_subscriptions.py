"""Outage subscriptions over PostGIS and HTTP: subscribing, confirming with the code the outbox
carries, unsubscribing by the link's token, and every outage message the lifecycle's transitions
queue (acknowledgement, ETR, changed ETR, crew on site, progress, restored, still out after a
nested outage, planned work), each once however often its transition is replayed, by account and
by grid cell, in English and Chinese."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import shapely
from shapely.geometry import box
from sqlalchemy import text

from geo.cells import CellDraft, bump_revision, save_version
from geo.limits import limiter
from outages import lifecycle, notices
from outages.crews import create_crew
from outages.settings import OutageSettings
from tests.accounts import account_name, client_as
from tests.networks import protected_feeder
from topology.cache import TopologyCache
from topology.loader import load_network

PROBLEM = "application/problem+json"
PHONE = "+49 30 23125123"


@pytest.fixture()
def network(connection):
    """protected_feeder (B1 > R1 > ..., F1 > T1 > C1, C2, C3) and a crew near it."""
    load_network(connection, protected_feeder())
    create_crew(connection, "CR-A", "Crew A", depot_point=(7.943, 48.471), account=account_name("crew"))


@pytest.fixture()
def dispatcher(app):
    return client_as(app, "dispatcher")


def _outbox(connection, kind: str | None = None) -> list:
    return connection.execute(text(
        "SELECT kind, channel, recipient, subject, body, dedup_key, reference FROM notification_outbox "
        "WHERE kind LIKE coalesce(:kind, '%') ORDER BY id"), {"kind": kind}).all()


def _subscribe(app, connection, **body) -> dict:
    """A confirmed subscription: subscribe, read the code from the outbox, confirm it."""
    client = app.test_client()
    made = client.post("/api/subscriptions", json=body)
    assert made.status_code == 201, made.json
    code = re.search(r"\b(\d{6})\b", _outbox(connection, "subscription_code")[-1].body).group(1)
    confirmed = client.post(f"/api/subscriptions/{made.json['reference']}/confirm", json={"code": code})
    assert confirmed.status_code == 200 and confirmed.json["state"] == "confirmed", confirmed.json
    return confirmed.json


def _messages(connection, kind: str) -> dict[str, str]:
    """{recipient: body} of the outage messages ``kind``."""
    return {row.recipient: row.body for row in _outbox(connection, kind)}


def _cover_with_a_cell(connection, code: str = "GC-01") -> None:
    draft = CellDraft(code, "Cell one", None, (), shapely.to_wkb(box(7.0, 48.0, 9.0, 49.5)))
    save_version(connection, draft, code, None, "test", "a cell over the whole network")
    bump_revision(connection)


# -- subscribing -------------------------------------------------------------------------------------
def test_a_subscription_is_confirmed_with_the_code_sent_to_its_address(app, network, connection):
    client = app.test_client()
    made = client.post("/api/subscriptions", json={"channel": "sms", "address": PHONE, "account": "A-C1"})
    assert made.status_code == 201, made.json
    assert made.headers["Location"].endswith("/api/subscriptions/" + made.json["reference"])
    assert (made.json["state"], made.json["target"], made.json["address"]) == ("unconfirmed", "account", "+49********23")
    [sent] = _outbox(connection, "subscription_code")
    assert (sent.channel, sent.recipient) == ("sms", "+493023125123") and "23125123" not in str(made.json)
    code = re.search(r"\b(\d{6})\b", sent.body).group(1)
    wrong = client.post(f"/api/subscriptions/{made.json['reference']}/confirm",
                        json={"code": f"{(int(code) + 1) % 10**6:06d}"})
    assert wrong.status_code == 422 and wrong.content_type == PROBLEM and wrong.json["field"] == "code"
    right = client.post(f"/api/subscriptions/{made.json['reference']}/confirm", json={"code": code})
    assert right.status_code == 200 and right.json["state"] == "confirmed"
    shown = client.get(f"/api/subscriptions/{made.json['reference']}").json
    assert shown["state"] == "confirmed" and "23125123" not in str(shown) and shown["account"] == "***-C1"
    # Subscribing the same address to the same account again sends a new code, keeps one subscription.
    again = client.post("/api/subscriptions", json={"channel": "sms", "address": "+49 (30) 231-25123", "account": "A-C1"})
    assert again.json["reference"] == made.json["reference"] and len(_outbox(connection, "subscription_code")) == 2


def test_wrong_codes_run_out(app, network, connection):
    client = app.test_client()
    made = client.post("/api/subscriptions", json={"channel": "email", "address": "Jo@Example.org", "account": "A-C2"})
    code = re.search(r"\b(\d{6})\b", _outbox(connection, "subscription_code")[-1].body).group(1)
    other = f"{(int(code) + 1) % 10**6:06d}"
    statuses = [client.post(f"/api/subscriptions/{made.json['reference']}/confirm", json={"code": other}).status_code
                for _ in range(5)]
    assert statuses == [422] * 5
    late = client.post(f"/api/subscriptions/{made.json['reference']}/confirm", json={"code": code})
    assert late.status_code == 409 and late.content_type == PROBLEM


@pytest.mark.parametrize("body, status, field", [
    ({"channel": "pigeon", "address": PHONE, "account": "A-C1"}, 400, "channel"),
    ({"channel": "email", "address": "not an address", "account": "A-C1"}, 400, "address"),
    ({"channel": "sms", "address": "call me", "account": "A-C1"}, 400, "address"),
    ({"channel": "webhook", "address": "http://hooks.example.org/x", "account": "A-C1"}, 400, "address"),
    ({"channel": "webhook", "address": "https://10.0.0.7/x", "account": "A-C1"}, 400, "address"),
    ({"channel": "sms", "address": PHONE, "account": "A-C1", "cell": "GC-01"}, 400, None),
    ({"channel": "sms", "address": PHONE}, 400, None),
    ({"channel": "sms", "address": PHONE, "account": "A-C1", "language": "fr"}, 400, "language"),
    ({"channel": "sms", "address": PHONE, "account": "A-C1", "extra": 1}, 400, None),
    ({"channel": "sms", "address": PHONE, "account": "9999999999"}, 404, "account"),
    ({"channel": "sms", "address": PHONE, "cell": "GC-99"}, 404, "cell"),
])
def test_bad_subscriptions_are_refused_as_problems(app, network, connection, body, status, field):
    answer = app.test_client().post("/api/subscriptions", json=body)
    assert answer.status_code == status and answer.content_type == PROBLEM, answer.json
    assert answer.json.get("field") == field
    assert _outbox(connection, "subscription_code") == []


def test_problems_come_in_chinese(app, network):
    client = app.test_client()
    answer = client.post("/api/subscriptions", json={"channel": "email", "address": "x", "account": "A-C1"},
                         headers={"Accept-Language": "zh-CN"})
    assert answer.status_code == 400 and re.search(r"[\u4e00-\u9fff]", answer.json["detail"]), answer.json
    confirm = client.post("/api/subscriptions/SNOSUCHTHING/confirm", json={"code": "12"},
                          headers={"Accept-Language": "zh-CN"})
    assert confirm.status_code == 400 and re.search(r"[\u4e00-\u9fff]", confirm.json["detail"])
    missing = client.post("/api/subscriptions/SNOSUCHTHING/confirm", json={"code": "123456"})
    assert missing.status_code == 404 and missing.content_type == PROBLEM


def test_subscribing_is_rate_limited_per_address(app, network):
    app.config["PUBLIC_WRITE_RATE_LIMIT"] = "2 per minute"
    limiter.reset()
    try:
        for n in range(2):
            made = app.test_client().post("/api/subscriptions", json={"channel": "sms", "address": PHONE,
                                                                      "account": "A-C1"},
                                          environ_base={"REMOTE_ADDR": f"10.0.0.{n + 1}"})
            assert made.status_code == 201
        third = app.test_client().post("/api/subscriptions", json={"channel": "sms", "address": PHONE, "account": "A-C2"},
                                       environ_base={"REMOTE_ADDR": "10.0.0.9"})
        assert third.status_code == 429 and third.content_type == PROBLEM
    finally:
        limiter.reset()


def test_the_link_shows_then_unsubscribes(app, network, connection, dispatcher):
    _subscribe(app, connection, channel="email", address="jo@example.org", account="A-C1")
    dispatcher.post("/api/outages", json={"device": "T1"})
    [ack] = _outbox(connection, "outage_ack")
    link = re.search(r"(/unsubscribe/[A-Za-z0-9_-]+)$", ack.body).group(1)
    client = app.test_client()
    page = client.get(link)
    assert page.status_code == 200 and b"j***@e******.org" in page.data and b"jo@example.org" not in page.data
    assert client.get("/api" + link).json["state"] == "confirmed"  # looking changes nothing
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    done = client.post(link, data={"csrf_token": csrf})
    assert done.status_code == 200 and b'data-state="unsubscribed"' in done.data
    assert app.test_client().post("/api" + link).json["state"] == "unsubscribed"  # again: the same
    assert client.get("/api/unsubscribe/not-a-token").status_code == 404
    # What was queued before they left is not sent either.
    assert connection.execute(text("SELECT status FROM notification_outbox WHERE kind = 'outage_ack'")).scalar() == "cancelled"
    code = ack.reference.split(":")[1]
    dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "restored"})
    assert _outbox(connection, "outage_restored") == []


# -- the messages ------------------------------------------------------------------------------------
def test_each_transition_tells_the_subscribers_once(app, network, connection, dispatcher):
    _subscribe(app, connection, channel="sms", address=PHONE, account="A-C1")
    _subscribe(app, connection, channel="email", address="c3@example.org", account="A-C3", language="zh")
    _subscribe(app, connection, channel="sms", address="+49 30 999999", account="A-C4")  # not affected
    code = dispatcher.post("/api/outages", json={"device": "T1"}).json["outage"]["code"]
    ack = _messages(connection, "outage_ack")
    assert set(ack) == {"+493023125123", "c3@example.org"}
    assert "working on it" in ack["+493023125123"] and "/unsubscribe/" in ack["+493023125123"]
    assert re.search(r"[\u4e00-\u9fff]", ack["c3@example.org"])
    assert _outbox(connection, "outage_ack")[0].dedup_key.startswith(f"outage:{code}:outage_ack:0:sub:")

    etr = (datetime.now(timezone.utc) + timedelta(hours=3)).replace(microsecond=0)
    dispatcher.post(f"/api/outages/{code}/etr", json={"etr": etr.isoformat()})
    assert len(_outbox(connection, "outage_etr")) == 2
    dispatcher.post(f"/api/outages/{code}/etr", json={"etr": etr.isoformat()})  # the same ETR again
    assert len(_outbox(connection, "outage_etr")) == 2 and _outbox(connection, "outage_etr_changed") == []
    dispatcher.post(f"/api/outages/{code}/etr", json={"etr": (etr + timedelta(hours=1)).isoformat()})
    assert len(_outbox(connection, "outage_etr_changed")) == 2

    dispatcher.post(f"/api/outages/{code}/assign", json={"crew": "CR-A"})
    assert _outbox(connection, "outage_on_site") == []
    client_as(app, "crew").post("/api/crews/CR-A/status", json={"status": "on_site"})
    assert len(_outbox(connection, "outage_on_site")) == 2

    step = dispatcher.post(f"/api/outages/{code}/steps", json={"customers": ["C3"]})
    assert step.status_code == 200, step.json
    assert set(_messages(connection, "outage_restored")) == {"c3@example.org"}
    dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "restored"})
    assert set(_messages(connection, "outage_restored")) == {"+493023125123", "c3@example.org"}
    keys = [row.dedup_key for row in _outbox(connection)]
    assert len(keys) == len(set(keys))


def test_a_prediction_is_told_only_once_confirmed_with_its_etr(app, network, connection, dispatcher):
    _subscribe(app, connection, channel="sms", address=PHONE, account="A-C1")
    code = app.test_client().post("/api/calls", json={"account": "A-C1"}).json["outage"]
    assert _outbox(connection, "outage_%") == []  # a prediction: nobody is told yet
    dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "confirmed"})
    assert [row.kind for row in _outbox(connection, "outage_%")] == ["outage_ack", "outage_etr"]
    # The same transition replayed (the lifecycle's hook again) writes nothing new.
    outage_id = connection.execute(text("SELECT id FROM outages WHERE code = :c"), {"c": code}).scalar_one()
    out = lifecycle.customers_out(connection, outage_id)
    assert notices.on_confirmed(connection, outage_id, out, OutageSettings()) == 0
    assert len(_outbox(connection, "outage_%")) == 2


def test_progress_goes_out_every_interval_while_the_outage_lasts(app, network, connection, dispatcher):
    _subscribe(app, connection, channel="sms", address=PHONE, account="A-C1")
    code = dispatcher.post("/api/outages", json={"device": "T1"}).json["outage"]["code"]
    job = notices.periodic_job(OutageSettings(progress_hours=2.0))
    now = datetime.now(timezone.utc)
    assert job(connection, now + timedelta(hours=1)) == 0
    assert job(connection, now + timedelta(hours=2, minutes=1)) == 1
    assert job(connection, now + timedelta(hours=3)) == 0  # the same interval: once
    assert job(connection, now + timedelta(hours=4, minutes=1)) == 1
    assert [row.dedup_key.split(":sub:")[0] for row in _outbox(connection, "outage_progress")] == [
        f"outage:{code}:outage_progress:1", f"outage:{code}:outage_progress:2"]
    assert "still being repaired" in _outbox(connection, "outage_progress")[0].body
    dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "restored"})
    assert job(connection, now + timedelta(hours=6, minutes=1)) == 0  # over: no more


def test_still_out_after_the_repair_when_a_nested_outage_holds_the_customer(app, network, connection, session,
                                                                             dispatcher):
    _subscribe(app, connection, channel="sms", address=PHONE, account="A-C1")
    _subscribe(app, connection, channel="sms", address="+49 30 777777", account="A-C3")
    code = dispatcher.post("/api/outages", json={"device": "T1"}).json["outage"]["code"]
    parent = connection.execute(text("SELECT id FROM outages WHERE code = :c"), {"c": code}).scalar_one()
    nested, _nested_code = lifecycle.new_outage(connection, "confirmed", "manual", "C3", "unknown", parent_id=parent)
    lifecycle.freeze(connection, TopologyCache().get(connection), nested, "C3", "test")
    dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "restored"})
    assert set(_messages(connection, "outage_restored")) == {"+493023125123"}
    [still] = _outbox(connection, "outage_still_out")
    assert still.recipient == "+4930777777" and "reply to this message" in still.body


def test_an_area_subscription_hears_of_outages_touching_its_cell(app, network, connection, dispatcher):
    _cover_with_a_cell(connection)
    _subscribe(app, connection, channel="webhook", address="https://hooks.example.org/grid", cell="GC-01",
               language="zh")
    _subscribe(app, connection, channel="sms", address=PHONE, account="A-C1")
    code = dispatcher.post("/api/outages", json={"device": "T1"}).json["outage"]["code"]
    ack = _messages(connection, "outage_ack")
    assert set(ack) == {"https://hooks.example.org/grid", "+493023125123"}
    assert re.search(r"[\u4e00-\u9fff]", ack["https://hooks.example.org/grid"]) and code in ack["+493023125123"]
    dispatcher.post(f"/api/outages/{code}/steps", json={"customers": ["C3"]})
    assert _messages(connection, "outage_restored") == {}  # a cell hears when the whole outage is over
    dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "restored"})
    assert set(_messages(connection, "outage_restored")) == {"https://hooks.example.org/grid", "+493023125123"}


def test_an_area_outside_the_outage_hears_nothing(app, network, connection, dispatcher):
    draft = CellDraft("GC-02", "Far away", None, (), shapely.to_wkb(box(10.0, 50.0, 10.5, 50.5)))
    save_version(connection, draft, "GC-02", None, "test", "a cell without customers")
    bump_revision(connection)
    _subscribe(app, connection, channel="sms", address=PHONE, cell="GC-02")
    dispatcher.post("/api/outages", json={"device": "T1"})
    assert _outbox(connection, "outage_ack") == []


def test_planned_work_is_announced_ahead(app, network, connection, dispatcher):
    _subscribe(app, connection, channel="email", address="jo@example.org", account="A-C1", language="zh")
    now = datetime.now(timezone.utc)
    soon = now + timedelta(hours=5)
    dispatcher.post("/api/outages", json={"device": "T1", "planned_start": soon.isoformat(),
                                          "planned_end": (soon + timedelta(hours=2)).isoformat()})
    [notice] = _outbox(connection, "outage_planned")
    assert re.search(r"[\u4e00-\u9fff]", notice.body) and notice.subject and _outbox(connection, "outage_ack") == []
    later = now + timedelta(days=5)
    far = dispatcher.post("/api/outages", json={"device": "F1", "planned_start": later.isoformat(),
                                                "planned_end": (later + timedelta(hours=2)).isoformat()})
    assert far.status_code == 201 and len(_outbox(connection, "outage_planned")) == 1  # too early yet
    settings = OutageSettings(planned_lead_hours=48.0)
    assert notices.planned_due(connection, now + timedelta(days=2, hours=23), settings) == 0
    assert notices.planned_due(connection, now + timedelta(days=3, hours=1), settings) == 1  # 48 hours ahead
    assert notices.planned_due(connection, now + timedelta(days=3, hours=2), settings) == 0


def test_texts_in_both_languages():
    outage = notices.OutageFacts(1, "OUT-000001", "confirmed", "manual", datetime(2026, 12, 1, tzinfo=timezone.utc),
                                 datetime(2026, 12, 1, 17, 30, tzinfo=timezone.utc), None, None)
    for kind in notices.KINDS[:-1]:
        for target in notices.TARGETS:
            english = notices.in_language(notices._body(kind, target, outage, str), "en")
            chinese = notices.in_language(notices._body(kind, target, outage, str), "zh")
            assert "OUT-000001" in english and "OUT-000001" in chinese and english != chinese
            assert re.search(r"[\u4e00-\u9fff]", chinese)


# -- races -------------------------------------------------------------------------------------------
def test_racing_writers_leave_one_subscription_and_one_message_each(committed_app, committed_engine):
    """Real parallel requests and jobs on committed data: the database decides."""
    with committed_engine.begin() as connection:
        load_network(connection, protected_feeder())
    barrier = threading.Barrier(4)

    def subscribe(_n):
        client = committed_app.test_client()
        barrier.wait()
        return client.post("/api/subscriptions", json={"channel": "sms", "address": PHONE, "account": "A-C1"})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(subscribe, range(4)))
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json["reference"] for answer in answers}) == 1
    with committed_engine.begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM outage_subscriptions")).scalar_one() == 1
        connection.execute(text("UPDATE outage_subscriptions SET confirmed_at = now()"))
    assert client_as(committed_app, "dispatcher").post("/api/outages", json={"device": "T1"}).status_code == 201
    job, later = notices.periodic_job(OutageSettings()), datetime.now(timezone.utc) + timedelta(hours=2, minutes=5)

    def run(_n):
        with committed_engine.begin() as connection:
            barrier.wait()
            return job(connection, later)

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(run, range(4))) == 1
    with committed_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM notification_outbox WHERE kind = 'outage_progress'")
                                  ).scalar_one() == 1
