"""Slots and bookings on a real PostGIS: capacity in the database, idempotency, atomic changes."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import time_machine
from icalendar import Calendar
from sqlalchemy import text

from geo.errors import Conflict, Unprocessable
from outlets.booking import BookingRequest, book, cancel_booking, day_slots, reschedule_booking
from tests.outlet_data import add_outlet, days_ahead, local

UTC = timezone.utc


def _request(start: datetime | str, key: str = "key-1", service: str = "billing", outlet: str = "OUT-T1",
             phone: str = "0721 1234567", name: str = "Erika Mustermann") -> dict:
    return {"outlet": outlet, "service": service, "start": start if isinstance(start, str) else start.isoformat(),
            "name": name, "phone": phone, "idempotency_key": key}


@pytest.fixture()
def outlet(connection):
    """OUT-T1: open daily 08:00-20:00 in Berlin, 30-minute slots, billing x2 and meter x1."""
    return add_outlet(connection)


@pytest.fixture()
def tomorrow():
    return days_ahead(1)


def _counter(connection, start: datetime, service: str = "billing") -> int | None:
    return connection.execute(text(
        "SELECT booked FROM slot_bookings WHERE slot_start = :s AND service = :v"), {"s": start, "v": service}).scalar()


# -- slots ---------------------------------------------------------------------------------------
def test_slots_list_remaining_places_per_service(client, outlet, tomorrow):
    answer = client.get(f"/api/outlets/OUT-T1/slots?date={tomorrow}")
    assert answer.status_code == 200
    slots = answer.json["slots"]
    assert len(slots) == 24 * 2  # 12 hours of 30-minute slots, for two services
    first = slots[0]
    assert first == {"start": local(tomorrow, 8).isoformat(), "end": local(tomorrow, 8, 30).isoformat(),
                     "service": "billing", "capacity": 2, "remaining": 2}
    client.post("/api/bookings", json=_request(local(tomorrow, 8)))
    again = client.get(f"/api/outlets/OUT-T1/slots?date={tomorrow}&service=billing").json["slots"]
    assert again[0]["remaining"] == 1 and all(s["service"] == "billing" for s in again)


@time_machine.travel(local(days_ahead(0), 12, 10), tick=False)  # today, during opening hours
def test_slots_skip_the_past_and_explain_empty_days(client, outlet, connection):
    today = days_ahead(0)
    slots = client.get(f"/api/outlets/OUT-T1/slots?date={today}").json["slots"]
    # 12:30 to 19:30 is left of 08:00-20:00, for billing and meter.
    assert [s["start"] for s in slots[::2]] == [(local(today, 12, 30) + i * timedelta(minutes=30)).isoformat()
                                              for i in range(15)]
    assert len(slots) == 30 and all(datetime.fromisoformat(s["start"]) > datetime.now(UTC) for s in slots)
    past = client.get(f"/api/outlets/OUT-T1/slots?date={days_ahead(-3)}").json
    assert past["slots"] == [] and "past" in past["note"]
    far = client.get(f"/api/outlets/OUT-T1/slots?date={days_ahead(200)}").json
    assert far["slots"] == [] and "90 days" in far["note"]


@pytest.mark.parametrize("query, status, detail", [
    ("date=tomorrow", 400, "is not a date"),
    ("date=2026-12-01&service=plumbing", 422, "unknown service 'plumbing'"),
    ("date=2026-12-01&service=complaints", 422, "does not offer 'complaints'"),
])
def test_slots_refuse_bad_queries(client, outlet, query, status, detail):
    answer = client.get(f"/api/outlets/OUT-T1/slots?{query}")
    assert answer.status_code == status and detail in answer.json["detail"]
    assert answer.content_type == "application/problem+json"


def test_slots_of_an_unknown_outlet_are_404(client):
    assert client.get("/api/outlets/NOPE/slots").status_code == 404


def test_slots_on_a_dst_night_and_across_midnight(connection, session):
    add_outlet(connection, "NIGHT", hours="Sa 22:00-04:00", services={"billing": 1}, slot_minutes=60)
    now = datetime(2027, 3, 20, 12, tzinfo=UTC)
    # Saturday 27 March 2027, 22:00 CET, to Sunday 04:00 CEST: five hours of real time.
    saturday = [s["start"] for s in day_slots(connection, "NIGHT", date(2027, 3, 27), "billing", now).as_dict()["slots"]]
    sunday = [s["start"] for s in day_slots(connection, "NIGHT", date(2027, 3, 28), "billing", now).as_dict()["slots"]]
    assert saturday == ["2027-03-27T22:00:00+01:00", "2027-03-27T23:00:00+01:00"]
    assert sunday == ["2027-03-28T00:00:00+01:00", "2027-03-28T01:00:00+01:00", "2027-03-28T03:00:00+02:00"]
    booking = book(session, _parsed("2027-03-28T03:00:00+02:00", outlet="NIGHT"), now)[0].as_dict()
    assert booking["start"] == "2027-03-28T03:00:00+02:00" and booking["end"] == "2027-03-28T04:00:00+02:00"


def test_slots_by_shift_keep_an_overnight_opening_under_the_day_it_starts(client, connection):
    add_outlet(connection, "EVENING", hours="Mo-Fr 18:00-02:00", services={"billing": 1}, slot_minutes=60)
    slots = "/api/outlets/EVENING/slots"
    # Tuesday 1 December 2026: by date, Monday night's 00:00 and 01:00 come first; by shift they are Monday's.
    with time_machine.travel(datetime(2026, 11, 25, 12, tzinfo=UTC), tick=False):
        by_date = client.get(slots, query_string={"date": "2026-12-01"}).json
        by_shift = client.get(slots, query_string={"date": "2026-12-01", "by": "shift"}).json
        monday = client.get(slots, query_string={"date": "2026-11-30", "by": "shift"}).json
    assert [s["start"][11:16] for s in by_date["slots"]][:3] == ["00:00", "01:00", "18:00"]
    assert "shift" not in by_date["slots"][0]
    assert [s["start"][5:16] for s in by_shift["slots"]] == [
        "12-01T18:00", "12-01T19:00", "12-01T20:00", "12-01T21:00", "12-01T22:00", "12-01T23:00", "12-02T00:00", "12-02T01:00"]
    assert {(s["shift"]["date"], s["shift"]["hours"]) for s in by_shift["slots"]} == {("2026-12-01", "18:00-02:00")}
    assert monday["slots"][-1]["start"] == "2026-12-01T01:00:00+01:00"
    # Just after midnight on the outlet's today, last night's opening still running comes first, as its own day's.
    with time_machine.travel(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), tick=False):  # Wed 2 Dec, 00:30 in Berlin
        tonight = client.get(slots, query_string={"by": "shift"}).json
        today = client.get(slots, query_string={"date": "2026-12-02", "by": "shift"}).json
    assert [(s["start"][5:16], s["shift"]["date"]) for s in tonight["slots"]][:2] == [
        ("12-02T01:00", "2026-12-01"), ("12-02T18:00", "2026-12-02")]
    assert today["slots"] == tonight["slots"]
    assert client.get(slots, query_string={"by": "day"}).status_code == 400


def _parsed(start: str, **changes) -> BookingRequest:
    values = _request(start, **changes)
    return BookingRequest(**values)


# -- booking ---------------------------------------------------------------------------------------
def test_a_booking_has_a_code_and_is_readable_only_with_it(client, outlet, tomorrow, connection):
    answer = client.post("/api/bookings", json=_request(local(tomorrow, 10)))
    assert answer.status_code == 201, answer.json
    booking = answer.json
    assert answer.headers["Location"] == f"/api/bookings/{booking['code']}"
    assert answer.headers["Cache-Control"] == "no-store"
    assert booking["status"] == "confirmed" and booking["phone"] == "+497211234567"
    assert booking["start"] == local(tomorrow, 10).isoformat() and booking["outlet"]["code"] == "OUT-T1"
    assert len(booking["code"]) == 14 and booking["code"].count("-") == 2
    assert _counter(connection, local(tomorrow, 10)) == 1
    read = client.get(f"/api/bookings/{booking['code']}")
    assert read.status_code == 200 and read.json["name"] == "Erika Mustermann"
    # Lower case and without dashes: as a customer may type it.
    assert client.get(f"/api/bookings/{booking['code'].replace('-', '').lower()}").status_code == 200
    wrong = client.get("/api/bookings/AAAA-BBBB-CCCC")
    assert wrong.status_code == 404 and "Erika" not in wrong.get_data(as_text=True)
    assert client.get("/api/bookings/x").status_code == 404
    # Nothing public shows who booked.
    public = client.get(f"/api/outlets/OUT-T1/slots?date={tomorrow}").get_data(as_text=True) \
        + client.get("/api/outlets/OUT-T1").get_data(as_text=True)
    assert "Erika" not in public and "1234567" not in public


def test_capacity_is_enforced_by_the_database(client, outlet, tomorrow, connection):
    start = local(tomorrow, 11)
    codes = [client.post("/api/bookings", json=_request(start, key=f"k{i}")) for i in range(3)]
    assert [a.status_code for a in codes] == [201, 201, 409]
    assert "fully booked" in codes[2].json["detail"] and codes[2].json["reason"] == "slot_full"
    assert _counter(connection, start) == 2
    assert connection.execute(text("SELECT count(*) FROM bookings WHERE status = 'confirmed'")).scalar() == 2
    # The CHECK backs the guard up: no statement can push a counter past its capacity.
    with pytest.raises(Exception, match="slot_within_capacity"):
        with connection.begin_nested():
            connection.execute(text("UPDATE slot_bookings SET booked = booked + 1"))


def test_the_same_idempotency_key_returns_the_same_booking(client, outlet, tomorrow, connection):
    first = client.post("/api/bookings", json=_request(local(tomorrow, 12), key="same"))
    again = client.post("/api/bookings", json=_request(local(tomorrow, 12), key="same"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["code"] == first.json["code"] and again.headers["Idempotent-Replayed"] == "true"
    assert _counter(connection, local(tomorrow, 12)) == 1
    header = client.post("/api/bookings", json={**_request(local(tomorrow, 12)), "idempotency_key": None},
                         headers={"Idempotency-Key": "same"})
    assert header.status_code == 200 and header.json["code"] == first.json["code"]
    other = client.post("/api/bookings", json=_request(local(tomorrow, 13), key="same"))
    assert other.status_code == 422 and other.json["reason"] == "idempotency_key_reused"


@pytest.mark.parametrize("change, status, detail", [
    (lambda t: {"start": local(t, 7, 30).isoformat()}, 422, "outside the opening hours"),
    (lambda t: {"start": local(t, 10, 10).isoformat()}, 422, "not a slot start"),
    (lambda t: {"start": local(t, 19, 45).isoformat()}, 422, "not a slot start"),
    (lambda t: {"start": local(t - timedelta(days=3), 10).isoformat()}, 422, "in the past"),
    (lambda t: {"start": local(t + timedelta(days=120), 10).isoformat()}, 422, "90 days ahead"),
    (lambda t: {"service": "complaints"}, 422, "does not offer 'complaints'"),
    (lambda t: {"service": "plumbing"}, 422, "unknown service"),
    (lambda t: {"outlet": "NOPE"}, 404, "no outlet 'NOPE'"),
    (lambda t: {"phone": "12"}, 400, "not a valid phone number"),
    (lambda t: {"phone": "call me"}, 400, "not a phone number"),
    (lambda t: {"start": "tomorrow at ten"}, 400, "not an ISO 8601"),
    (lambda t: {"name": "  "}, 400, "name is required"),
    (lambda t: {"name": "x" * 121}, 400, "longer than 120"),
    (lambda t: {"idempotency_key": None}, 400, "idempotency_key"),
    (lambda t: {"colour": "red"}, 400, "unknown field(s) colour"),
])
def test_unbookable_requests_get_a_4xx_that_says_why(client, outlet, tomorrow, connection, change, status, detail):
    body = {**_request(local(tomorrow, 10)), **change(tomorrow)}
    answer = client.post("/api/bookings", json=body)
    assert answer.status_code == status, answer.json
    assert detail in answer.json["detail"]
    assert connection.execute(text("SELECT count(*) FROM bookings")).scalar() == 0


def test_a_closed_day_is_named_with_its_reason(client, connection, tomorrow):
    add_outlet(connection, exceptions=f"{tomorrow} off Staff training")
    answer = client.post("/api/bookings", json=_request(local(tomorrow, 10)))
    assert answer.status_code == 422
    assert "closed on" in answer.json["detail"] and "Staff training" in answer.json["detail"]


def test_an_outlet_with_unknown_hours_takes_no_bookings(client, connection, tomorrow):
    add_outlet(connection, hours=None)
    answer = client.post("/api/bookings", json=_request(local(tomorrow, 10)))
    assert answer.status_code == 422 and "unknown" in answer.json["detail"]
    assert "unknown" in client.get(f"/api/outlets/OUT-T1/slots?date={tomorrow}").json["note"]


@pytest.mark.parametrize("body", [None, "[]", '"text"'])
def test_a_body_that_is_not_an_object_is_400(client, outlet, body):
    answer = client.post("/api/bookings", data=body, content_type="application/json")
    assert answer.status_code == 400


def test_a_local_time_without_offset_is_the_outlets_wall_clock(client, outlet, tomorrow):
    answer = client.post("/api/bookings", json=_request(f"{tomorrow}T09:30"))
    assert answer.status_code == 201 and answer.json["start"] == local(tomorrow, 9, 30).isoformat()


# -- cancel, reschedule, calendar ------------------------------------------------------------------
def test_cancel_frees_the_place_and_is_harmless_twice(client, outlet, tomorrow, connection):
    code = client.post("/api/bookings", json=_request(local(tomorrow, 14))).json["code"]
    cancelled = client.delete(f"/api/bookings/{code}")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert _counter(connection, local(tomorrow, 14)) == 0
    assert client.delete(f"/api/bookings/{code}").json["status"] == "cancelled"
    assert _counter(connection, local(tomorrow, 14)) == 0
    refused = client.patch(f"/api/bookings/{code}", json={"start": local(tomorrow, 15).isoformat()})
    assert refused.status_code == 409 and refused.json["reason"] == "booking_cancelled"


def test_reschedule_moves_the_booking_atomically(client, outlet, tomorrow, connection):
    code = client.post("/api/bookings", json=_request(local(tomorrow, 9), service="meter", key="a")).json["code"]
    moved = client.patch(f"/api/bookings/{code}", json={"start": local(tomorrow, 10).isoformat()})
    assert moved.status_code == 200 and moved.json["start"] == local(tomorrow, 10).isoformat()
    assert moved.json["sequence"] == 1
    assert _counter(connection, local(tomorrow, 9), "meter") == 0
    assert _counter(connection, local(tomorrow, 10), "meter") == 1
    # 11:00 meter (capacity 1) is taken by someone else: the move fails and nothing changes.
    client.post("/api/bookings", json=_request(local(tomorrow, 11), service="meter", key="b"))
    refused = client.patch(f"/api/bookings/{code}", json={"start": local(tomorrow, 11).isoformat()})
    assert refused.status_code == 409 and "unchanged" in refused.json["detail"]
    assert client.get(f"/api/bookings/{code}").json["start"] == local(tomorrow, 10).isoformat()
    assert _counter(connection, local(tomorrow, 10), "meter") == 1
    assert _counter(connection, local(tomorrow, 11), "meter") == 1
    # Another service in the same move.
    switched = client.patch(f"/api/bookings/{code}", json={"start": local(tomorrow, 11).isoformat(), "service": "billing"})
    assert switched.status_code == 200 and switched.json["service"] == "billing"
    assert _counter(connection, local(tomorrow, 10), "meter") == 0


@pytest.mark.parametrize("body, detail", [
    ({}, "send a JSON object with start"),
    ({"start": "soon"}, "not an ISO 8601"),
    ({"start": "2026-12-01T10:00", "name": "x"}, "send a JSON object with start"),
])
def test_reschedule_refuses_bad_bodies(client, outlet, tomorrow, body, detail):
    code = client.post("/api/bookings", json=_request(local(tomorrow, 9))).json["code"]
    answer = client.patch(f"/api/bookings/{code}", json=body)
    assert answer.status_code == 400 and detail in answer.json["detail"]


def test_calendar_file_has_the_event_in_the_outlets_zone(client, outlet, tomorrow):
    code = client.post("/api/bookings", json=_request(local(tomorrow, 16))).json["code"]
    answer = client.get(f"/api/bookings/{code}.ics")
    assert answer.status_code == 200 and answer.mimetype == "text/calendar"
    assert "attachment" in answer.headers["Content-Disposition"]
    calendar = Calendar.from_ical(answer.data)
    zones = [c for c in calendar.walk("VTIMEZONE")]
    assert [str(z["TZID"]) for z in zones] == ["Europe/Berlin"]
    event = calendar.walk("VEVENT")[0]
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTSTART") == local(tomorrow, 16) and event.decoded("DTEND") == local(tomorrow, 16, 30)
    assert str(event["STATUS"]) == "CONFIRMED" and code in str(event["DESCRIPTION"])
    assert "Erika" not in answer.get_data(as_text=True)
    client.delete(f"/api/bookings/{code}")
    cancelled = Calendar.from_ical(client.get(f"/api/bookings/{code}.ics").data).walk("VEVENT")[0]
    assert str(cancelled["STATUS"]) == "CANCELLED" and cancelled["SEQUENCE"] == 1
    assert client.get("/api/bookings/AAAA-BBBB-CCCC.ics").status_code == 404


def _messages(connection):
    return connection.execute(text(
        "SELECT kind, status, due_at, recipient, body FROM notification_outbox ORDER BY id")).all()


@time_machine.travel(local(date(2027, 6, 7), 12), tick=False)  # a Monday, no clock change near
def test_reminders_go_to_the_outbox_and_follow_changes(client, outlet, connection):
    day = days_ahead(3)
    code = client.post("/api/bookings", json=_request(local(day, 10))).json["code"]

    def messages():
        return _messages(connection)

    confirmation, reminder = messages()
    assert (confirmation.kind, reminder.kind) == ("booking_confirmation", "booking_reminder")
    assert confirmation.due_at == datetime.now(UTC)
    assert reminder.status == "pending" and reminder.due_at == local(day - timedelta(days=1), 10)
    assert reminder.recipient == "+497211234567" and code in reminder.body
    client.patch(f"/api/bookings/{code}", json={"start": local(day, 12).isoformat()})
    kinds = [(m.kind, m.status) for m in messages()]
    assert kinds == [("booking_confirmation", "pending"), ("booking_reminder", "cancelled"),
                     ("booking_rescheduled", "pending"), ("booking_reminder", "pending")]
    assert messages()[-1].due_at == local(day - timedelta(days=1), 12)
    client.delete(f"/api/bookings/{code}")
    assert [(m.kind, m.status) for m in messages()][-3:] == [
        ("booking_rescheduled", "pending"), ("booking_reminder", "cancelled"), ("booking_cancelled", "pending")]


# Berlin's clocks go back in the night to Sunday 31 October 2027 and forward in the night to
# Sunday 28 March 2027. (booked at, visit, reminder due, real hours between them)
AUTUMN, SPRING = date(2027, 10, 31), date(2027, 3, 28)
DAY = timedelta(days=1)


@pytest.mark.parametrize("booked_at, visit, due, hours", [
    (local(AUTUMN - 3 * DAY, 12), local(AUTUMN, 10), local(AUTUMN - DAY, 10), 25),      # Thursday before
    (local(AUTUMN - DAY, 8), local(AUTUMN, 10), local(AUTUMN - DAY, 10), 25),           # Saturday before
    (local(AUTUMN - 3 * DAY, 12), local(AUTUMN + DAY, 10), local(AUTUMN, 10), 24),      # the Monday after
    (local(SPRING - 3 * DAY, 12), local(SPRING, 10), local(SPRING - DAY, 10), 23),
    (local(SPRING - DAY, 8), local(SPRING, 10), local(SPRING - DAY, 10), 23),
    # The day before at 02:30 does not exist (02:00 -> 03:00): it moves on with the clock, to 03:30.
    (local(SPRING - 3 * DAY, 12), local(SPRING + DAY, 2, 30), local(SPRING, 3, 30), 23),
    # The day before at 10:00 has passed: 2 hours before.
    (local(AUTUMN - DAY, 10, 30), local(AUTUMN, 10), local(AUTUMN, 8), 2),
    # Even 2 hours before is due within half an hour: no reminder.
    (local(AUTUMN, 7, 45), local(AUTUMN, 10), None, None),
], ids=["autumn-thursday", "autumn-saturday", "autumn-monday-visit", "spring-thursday", "spring-saturday",
        "spring-skipped-time", "day-before-passed", "too-late"])
def test_the_reminder_is_due_the_day_before_at_the_same_time(client, connection, booked_at, visit, due, hours):
    add_outlet(connection, hours="24/7")
    with time_machine.travel(booked_at, tick=False):
        answer = client.post("/api/bookings", json=_request(visit))
    assert answer.status_code == 201, answer.json
    reminders = [m.due_at for m in _messages(connection) if m.kind == "booking_reminder"]
    assert reminders == ([] if due is None else [due])
    if due is not None:
        assert visit - reminders[0] == timedelta(hours=hours)


def test_domain_functions_refuse_full_and_unbookable_slots(session, connection):
    add_outlet(connection, services={"billing": 1})
    now = datetime(2026, 12, 1, 7, tzinfo=UTC)
    book(session, _parsed(local(date(2026, 12, 2), 10).isoformat()), now)
    with pytest.raises(Conflict):
        book(session, _parsed(local(date(2026, 12, 2), 10).isoformat(), key="other"), now)
    with pytest.raises(Unprocessable, match="in the past"):
        book(session, _parsed(local(date(2026, 12, 1), 7).isoformat(), key="third"), now)
    code = book(session, _parsed(local(date(2026, 12, 2), 11).isoformat(), key="fourth"), now)[0].display_code
    with pytest.raises(Conflict, match="already begun"):
        cancel_booking(session, code, datetime(2026, 12, 2, 10, 30, tzinfo=UTC))
    with pytest.raises(Conflict, match="fully booked"):
        reschedule_booking(session, code, {"start": local(date(2026, 12, 2), 10).isoformat()}, now)
    # What was refused changed nothing: two bookings, each holding its own place.
    stored = connection.execute(text(
        "SELECT idempotency_key, slot_start, status, sequence FROM bookings ORDER BY slot_start")).all()
    assert stored == [("key-1", local(date(2026, 12, 2), 10), "confirmed", 0),
                      ("fourth", local(date(2026, 12, 2), 11), "confirmed", 0)]
    assert [_counter(connection, local(date(2026, 12, 2), hour)) for hour in (10, 11)] == [1, 1]


def test_the_counter_upsert_itself_refuses_a_full_slot(connection, outlet, tomorrow):
    # The quick look before it is only a hint; this statement is what concurrent requests meet.
    from outlets.booking import _take_place
    from outlets.store import load_outlet

    view = load_outlet(connection, "OUT-T1")
    start = local(tomorrow, 15)
    assert [_take_place(connection, view, "billing", start) for _ in range(3)] == [True, True, False]
    assert _counter(connection, start) == 2
