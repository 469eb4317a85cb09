"""Outages over PostGIS and HTTP: calls and meter events settled into predicted outages, the
lifecycle with its 409s, crews, restoration in steps with frozen customers, and the live feed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from outages.crews import create_crew
from tests.accounts import HEADERS, account_name, client_as
from tests.networks import protected_feeder
from topology.loader import load_network

PROBLEM = "application/problem+json"


@pytest.fixture()
def network(connection):
    """protected_feeder (B1 > R1 > ..., F1 > T1 > C1, C2, C3) and two crews near it."""
    load_network(connection, protected_feeder())
    create_crew(connection, "CR-A", "Crew A", depot_point=(7.943, 48.471),
                account=account_name("crew"), members=[{"name": "A. Fitter", "phone": "+49 30 23125900"}])
    create_crew(connection, "CR-B", "Crew B", depot_point=(7.99, 48.50))


@pytest.fixture()
def dispatcher(app):
    return client_as(app, "dispatcher")


def _call(app, **body):
    return app.test_client().post("/api/calls", json=body)


def _outages(client) -> list[dict]:
    answer = client.get("/api/outages")
    assert answer.status_code == 200, answer.json
    return [feature["properties"] for feature in answer.json["features"]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def test_a_lone_call_predicts_its_service_and_a_second_one_moves_it_to_the_transformer(app, network, dispatcher):
    first = _call(app, account="A-C1", wire_down=True)
    assert first.status_code == 201, first.json
    assert first.headers["Location"].endswith("/api/calls/" + first.json["reference"])
    assert first.json["outage"] and first.json["state"] == "predicted"
    [outage] = _outages(dispatcher)
    assert (outage["device"], outage["device_kind"], outage["customers_affected"]) == ("C1", "service", 1)

    second = _call(app, account="A-C2")
    assert second.json["outage"] == first.json["outage"]  # the same outage, moved up
    [outage] = _outages(dispatcher)
    assert (outage["device"], outage["device_kind"], outage["calls"], outage["customers_affected"]) == \
        ("T1", "transformer", 2, 3)
    assert outage["etr"] is not None and outage["etr_source"] == "history"
    detail = dispatcher.get(f"/api/outages/{outage['code']}").json
    assert [e["kind"] for e in detail["timeline"]][:3] == ["predicted", "etr", "moved"]
    # The caller follows it by reference, and learns nothing about anyone else.
    status = app.test_client().get(f"/api/calls/{first.json['reference']}").json
    assert status["outage"] == outage["code"] and status["state"] == "predicted"
    assert "C1" not in str(status) and "A-C1" not in str(status)


def test_calls_are_refused_clearly(app, network):
    unknown = _call(app, account="9999999999")
    assert unknown.status_code == 404 and unknown.content_type == PROBLEM and unknown.json["field"] == "account"
    both = _call(app, account="A-C1", phone="+49 30 23125123")
    assert both.status_code == 400 and both.content_type == PROBLEM
    far = _call(app, lon=10.0, lat=50.0)
    assert far.status_code == 422
    near = _call(app, lon=7.9421, lat=48.4712)  # snapped to the nearest service point
    assert near.status_code == 201


def test_the_lifecycle_refuses_what_the_state_does_not_allow(app, network, dispatcher):
    code = _call(app, account="A-C1").json["outage"]
    _call(app, account="A-C2")
    assert dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "on_site"}).status_code == 409
    refused = dispatcher.post(f"/api/outages/{code}/assign", json={})
    assert refused.status_code == 409 and refused.json["allowed"] == ["confirmed", "cancelled"]
    confirmed = dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "confirmed", "note": "seen"})
    assert confirmed.status_code == 200 and confirmed.json["event"]["actor"] == account_name("dispatcher")
    again = dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "confirmed"})
    assert again.status_code == 409 and again.content_type == PROBLEM
    assert again.json["allowed"] == ["crew_assigned", "restored", "cancelled"]


def test_a_confirmed_outage_gets_the_nearest_crew_joins_calls_and_restores_in_steps(app, network, dispatcher, connection):
    code = _call(app, account="A-C1").json["outage"]
    _call(app, account="A-C2")
    dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "confirmed"})
    near = dispatcher.get(f"/api/outages/{code}/crews").json["crews"]
    assert [c["code"] for c in near] == ["CR-A", "CR-B"] and near[0]["distance_m"] < near[1]["distance_m"]
    assigned = dispatcher.post(f"/api/outages/{code}/assign", json={})
    assert assigned.status_code == 200 and assigned.json["outage"]["crew"] == "CR-A"
    assert assigned.json["outage"]["state"] == "crew_assigned"

    joined = _call(app, account="A-C3")  # out in the confirmed outage: joins it, no prediction
    assert joined.json["outage"] == code
    crew = client_as(app, "crew")
    assert crew.post("/api/crews/CR-A/status", json={"status": "on_site"}).status_code == 200
    assert _outages(dispatcher)[0]["state"] == "on_site"
    assert crew.post("/api/crews/CR-B/status", json={"status": "on_site"}).status_code == 403  # not its crew

    step = crew.post(f"/api/outages/{code}/steps", json={"customers": ["C1"], "note": "C1 on a generator"})
    assert step.status_code == 200, step.json
    assert (step.json["outage"]["customers_out"], step.json["outage"]["state"]) == (2, "on_site")
    # The network changes afterwards: the outage's history keeps the customers it had.
    connection.execute(text("UPDATE service_points SET in_service = false WHERE code = 'C3'"))
    done = dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "restored"})
    assert done.status_code == 200 and done.json["outage"]["customers_out"] == 0
    assert done.json["outage"]["momentary"] is True  # restored within 5 minutes of the first call
    detail = dispatcher.get(f"/api/outages/{code}").json
    assert [(s["kind"], s["customer_count"], s["customers"]) for s in detail["steps"]] == [
        ("affected", 1, ["C1"]), ("affected", 3, ["C1", "C2", "C3"]), ("restored", 1, ["C1"]),
        ("restored", 2, ["C2", "C3"])]
    crews = {f["properties"]["code"]: f["properties"] for f in dispatcher.get("/api/crews").json["features"]}
    assert crews["CR-A"]["status"] == "available" and crews["CR-A"]["outage"] is None
    # History is append-only.
    with pytest.raises(Exception, match="append-only"):
        with connection.begin_nested():
            connection.execute(text("DELETE FROM outage_events"))


def test_meter_events_are_idempotent_and_a_restored_meter_cancels_the_prediction(app, network, dispatcher):
    integration = client_as(app, "integration")
    at = _now()
    batch = {"events": [{"id": f"e-{c}", "meter": c, "kind": "last_gasp", "at": at} for c in ("C1", "C2", "C3")]}
    first = integration.post("/api/meter-events", json=batch)
    assert first.status_code == 200 and first.json["accepted"] == 3, first.json
    assert integration.post("/api/meter-events", json=batch).json == {
        "accepted": 0, "duplicates": 3, "unknown_meters": [], "joined": 0, "outages": []}
    [outage] = _outages(dispatcher)
    assert outage["device"] == "T1" and outage["meter_reports"] == 3
    later = (datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat()
    restored = {"events": [{"id": f"r-{c}", "meter": c, "kind": "power_restored", "at": later}
                           for c in ("C1", "C2", "C3")]}
    assert integration.post("/api/meter-events", json=restored).status_code == 200
    assert _outages(dispatcher) == []
    assert dispatcher.post("/api/meter-events", json=batch).status_code == 403


def test_a_dispatcher_creates_moves_and_plans_outages_by_hand(app, network, dispatcher):
    made = dispatcher.post("/api/outages", json={"device": "F1", "cause": "vegetation"})
    assert made.status_code == 201 and made.json["outage"]["state"] == "confirmed"
    code = made.json["outage"]["code"]
    moved = dispatcher.post(f"/api/outages/{code}/move", json={"device": "R1"})
    assert moved.status_code == 200 and moved.json["outage"]["customers_affected"] == 2
    etr = dispatcher.post(f"/api/outages/{code}/etr", json={"etr": None})
    assert etr.json["outage"]["etr_source"] == "history"
    start = datetime.now(timezone.utc) + timedelta(days=2)
    planned = dispatcher.post("/api/outages", json={
        "device": "T1", "planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=3)).isoformat()})
    assert planned.status_code == 201 and planned.json["outage"]["origin"] == "planned"
    assert dispatcher.post("/api/outages", json={"device": "NOPE"}).status_code == 404


def test_the_live_feed_names_what_changed(app, network, dispatcher):
    cursor = dispatcher.get("/api/live").json["cursor"]
    _call(app, account="A-C1")
    changes = dispatcher.get(f"/api/live?cursor={cursor}").json
    assert set(changes["kinds"]) >= {"call", "outage"}
    assert dispatcher.get("/api/live?cursor=x").status_code == 400


def test_a_second_fault_inside_an_area_being_restored_is_a_nested_outage(app, connection):
    from tests.integration.test_outage_races import _network

    load_network(connection, _network())
    dispatcher = client_as(app, "dispatcher")
    first = dispatcher.post("/api/outages", json={"device": "F1", "cause": "weather"}).json["outage"]["code"]
    # The lateral is fixed and T1's customers come back; T2 stays out.
    step = dispatcher.post(f"/api/outages/{first}/steps", json={"device": "T1", "note": "T1 re-fed"})
    assert step.json["outage"]["customers_out"] == 6
    # Two of T1's customers lose power again: a new fault inside the area being restored.
    for account in ("A-E1", "A-E2"):
        assert _call(app, account=account).status_code == 201
    nested = [o for o in _outages(dispatcher) if o["code"] != first]
    assert [(o["device"], o["parent"], o["state"]) for o in nested] == [("T1", first, "predicted")]
    # A call from T2, still out in the first outage, joins it.
    assert _call(app, account="A-G1").json["outage"] == first


def test_a_zoned_dispatcher_sees_and_moves_only_its_feeders_outages(app, network, connection):
    dispatcher = client_as(app, "dispatcher")
    code = dispatcher.post("/api/outages", json={"device": "F1"}).json["outage"]["code"]
    connection.execute(text("UPDATE accounts SET control_feeders = ARRAY['F9'] WHERE name = :n"),
                       {"n": account_name("dispatcher")})
    assert _outages(dispatcher) == []
    refused = dispatcher.post(f"/api/outages/{code}/transitions", json={"to": "cancelled"})
    assert refused.status_code == 403 and refused.content_type == PROBLEM
    assert dispatcher.post("/api/outages", json={"device": "T1"}).status_code == 403


def test_bad_outage_input_is_a_clear_4xx_and_changes_nothing(app, network, dispatcher, connection):
    code = dispatcher.post("/api/outages", json={"device": "F1"}).json["outage"]["code"]
    before = connection.execute(text("SELECT count(*) FROM outage_events")).scalar_one()
    for path, body in ((f"/api/outages/{code}/transitions", {"to": "crew_assigned"}),
                       (f"/api/outages/{code}/etr", {"etr": "tomorrow"}),
                       (f"/api/outages/{code}/steps", {"device": "F1", "customers": ["C1"]}),
                       (f"/api/outages/{code}/steps", {"customers": ["C9"]}),
                       ("/api/outages", {"device": "F1", "cause": "aliens"}),
                       ("/api/outages", {"device": "F1", "planned_start": "2030-01-01T10:00:00Z"}),
                       (f"/api/outages/{code}/assign", {"crew": "NOPE"})):
        answer = dispatcher.post(path, json=body, headers={"Accept-Language": "zh-CN"})
        assert 400 <= answer.status_code < 500 and answer.content_type == PROBLEM, (path, body, answer.json)
    assert connection.execute(text("SELECT count(*) FROM outage_events")).scalar_one() == before
    positions = client_as(app, "crew").post("/api/crews/CR-A/positions", json={"positions": [{"lon": 500, "lat": 0,
                                                                                              "at": _now()}]})
    assert positions.status_code == 400


def test_calls_from_behind_a_device_the_dispatcher_opened_join_its_outage(app, network, dispatcher):
    code = dispatcher.post("/api/outages", json={"device": "F1"}).json["outage"]["code"]
    opened = dispatcher.post("/api/switching", json={"operations": [{"device": "F1", "action": "open"}],
                                                     "reason": "isolate the fault"})
    assert opened.status_code == 201
    assert _call(app, account="A-C3").json["outage"] == code  # C3 is in a dead island now, out in that outage


def test_a_storm_replayed_on_the_demo_city_is_predicted_at_its_faults(app, connection):
    from topology.demo import generate_city

    load_network(connection, generate_city(customers=3000, seed=3))
    result = app.test_cli_runner().invoke(args=["outages", "storm", "--faults", "6", "--seed", "2"])
    assert result.exit_code == 0, result.output
    faults = result.output.split(" faults at ", 1)[1].split(";", 1)[0].split(", ")
    assert len(faults) == 6
    devices = {row.device for row in connection.execute(text(
        "SELECT device FROM outages WHERE state = 'predicted' AND device_kind <> 'service'"))}
    assert devices == set(faults)
    assert connection.execute(text("SELECT count(*) FROM outages WHERE device_kind = 'service'")).scalar_one() == 3


def test_a_call_before_a_planned_outage_begins_does_not_join_it(app, network, dispatcher):
    start = datetime.now(timezone.utc) + timedelta(days=1)
    planned = dispatcher.post("/api/outages", json={
        "device": "T1", "planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=2)).isoformat()})
    answer = _call(app, account="A-C1")
    assert answer.json["outage"] != planned.json["outage"]["code"] and answer.json["state"] == "predicted"


def test_the_live_feed_forgets_what_no_map_needs(connection):
    from geo.live import changes_since, note_change, prune

    note_change(connection, "crew", "CR-OLD")
    connection.execute(text("UPDATE live_changes SET at = now() - interval '2 hours'"))
    note_change(connection, "crew", "CR-NEW")
    assert prune(connection) == 1
    assert changes_since(connection, 0).kinds == {"crew": ["CR-NEW"]}


def test_a_batch_of_ten_thousand_meter_events_is_taken_in_one_request(app, connection):
    from topology.demo import generate_city

    frames = generate_city(customers=3000, seed=3)
    load_network(connection, frames)
    meters = frames.service_points["code"].tolist()
    batch = {"events": [{"id": f"hes-{n}", "meter": meters[n % len(meters)], "kind": "last_gasp",
                         "at": _now()} for n in range(10_000)]}
    answer = client_as(app, "integration").post("/api/meter-events", json=batch)
    assert answer.status_code == 200, answer.json
    assert (answer.json["accepted"], answer.json["duplicates"]) == (10_000, 0)
    assert len(answer.json["outages"]) >= 1


def test_a_customer_calling_again_joins_its_outage_without_counting_twice(app, network, dispatcher):
    first = _call(app, account="A-C1").json["outage"]
    again = _call(app, account="A-C1", note="still nothing")
    assert again.json["outage"] == first
    [outage] = _outages(dispatcher)
    assert (outage["device"], outage["calls"]) == ("C1", 2)  # one customer: still its service, not T1
