"""Outlet records, phone numbers, booking requests and codes: checks that need no database."""
from __future__ import annotations

from datetime import date

import pytest

from geo.errors import Invalid, NotFound
from outlets.booking import CODE_ALPHABET, format_code, new_code, normalise_code, parse_booking_request
from outlets.demo import public_holidays
from outlets.records import RecordInvalid, country_of_zone, parse_outlet, parse_phone
from tests.outlet_data import outlet_values


def test_a_valid_outlet():
    record = parse_outlet(outlet_values(services="billing:2; meter", exceptions="2026-12-25 off Christmas Day"))
    assert record.country == "DE" and record.phone == "+497211334455"
    assert record.services == {"billing": 2, "meter": 1}
    assert record.exceptions[date(2026, 12, 25)].note == "Christmas Day"
    assert record.slot_minutes == 30 and record.active is True


@pytest.mark.parametrize("services, expected", [
    ({"billing": 2}, {"billing": 2}),
    (["billing", "meter:3"], {"billing": 1, "meter": 3}),
    ("billing:2, complaints", {"billing": 2, "complaints": 1}),
    ({"billing": "2"}, {"billing": 2}),
])
def test_services_in_every_form(services, expected):
    assert parse_outlet(outlet_values(services=services)).services == expected


@pytest.mark.parametrize("changes, field, reason", [
    ({"code": "has space"}, "code", "may hold only"),
    ({"code": None}, "code", "is required"),
    ({"lat": 95}, "lat", "outside -90..90"),
    ({"timezone": "CEST+2"}, "timezone", "not an IANA time zone"),
    ({"timezone": "UTC"}, "country", "belongs to no one country"),
    ({"country": "XX"}, "country", "not an ISO 3166"),
    ({"phone": "+49 1"}, "phone", "not a phone number"),
    ({"services": {}}, "services", "is required"),
    ({"services": {"billing": 0}}, "services", "not a whole number 1..1000"),
    ({"services": {"billing": 1.5}}, "services", "not a whole number 1..1000"),
    ({"services": "bogus"}, "services", "'bogus' is not a service"),
    ({"slot_minutes": "ten"}, "slot_minutes", "not a whole number 5..480"),
    ({"hours": 42}, "hours", "must be a text"),
    ({"exceptions": "2026-12-25 08:00-09:00,08:30-10:00"}, "exceptions", "overlaps"),
    ({"active": "maybe"}, "active", "not true or false"),
    ({"colour": "red"}, "colour", "unknown field(s) colour"),
])
def test_bad_fields_are_named(changes, field, reason):
    with pytest.raises(RecordInvalid) as invalid:
        parse_outlet(outlet_values(**changes))
    assert any(e["field"] == field and reason in e["reason"] for e in invalid.value.errors), invalid.value.errors


def test_a_country_given_outright_reads_national_numbers():
    record = parse_outlet(outlet_values(timezone="UTC", country="at", phone="01 5123456"))
    assert record.country == "AT" and record.phone == "+4315123456"


@pytest.mark.parametrize("zone, country", [("Europe/Berlin", "DE"), ("America/New_York", "US"),
                                           ("Australia/Lord_Howe", "AU"), ("UTC", None)])
def test_country_of_zone(zone, country):
    assert country_of_zone(zone) == country


@pytest.mark.parametrize("text, region, e164", [
    ("0721 1234567", "DE", "+497211234567"),
    ("+49 (0)721 123-4567", "DE", "+497211234567"),
    ("+1 202 555 0143", "DE", "+12025550143"),
    ("(202) 555-0143", "US", "+12025550143"),
])
def test_phone_numbers_become_e164(text, region, e164):
    assert parse_phone(text, region) == e164


@pytest.mark.parametrize("text", ["", "12", "not a number", "0721", "+999 1234567"])
def test_bad_phone_numbers_are_refused_with_an_example(text):
    with pytest.raises(Invalid, match="phone"):
        parse_phone(text, "DE")


def test_codes_are_random_readable_and_forgiving():
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200 and all(len(c) == 12 and set(c) <= set(CODE_ALPHABET) for c in codes)
    code = next(iter(codes))
    shown = format_code(code)
    assert shown.count("-") == 2 and normalise_code(shown.lower()) == code
    assert normalise_code(f" {shown[:4]} {shown[5:]} ".replace("-", " ")) == code
    for wrong in ("", "ABC", code + "A", "0" * 12):
        with pytest.raises(NotFound):
            normalise_code(wrong)


def test_booking_request_shape():
    body = {"outlet": "A", "service": "billing", "start": "2026-12-01T10:00", "name": "  Erika   M ",
            "phone": "0721 1", "idempotency_key": "k"}
    assert parse_booking_request(body).name == "Erika M"
    assert parse_booking_request({**body, "idempotency_key": None}, "from-header").idempotency_key == "from-header"
    with pytest.raises(Invalid, match="differ"):
        parse_booking_request(body, "other")
    with pytest.raises(Invalid, match="control characters"):
        parse_booking_request({**body, "name": "Erika\u0000"})
    with pytest.raises(Invalid, match="service is required"):
        parse_booking_request({**body, "service": 5})


def test_public_holidays_follow_easter():
    holidays = public_holidays(2026, "DE")
    assert holidays[date(2026, 4, 3)] == "Good Friday" and holidays[date(2026, 5, 14)] == "Ascension Day"
    assert date(2026, 10, 3) not in public_holidays(2026, "FR")
