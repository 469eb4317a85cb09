"""An outlet as it arrives (JSON body, GeoJSON feature, CSV row), checked field by field.

``parse_outlet`` reports every problem of a record at once, so that an import's report can
name each bad row and each bad field in it.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

import phonenumbers

from geo.errors import Invalid, Unprocessable
from geo.i18n import Joined, _
from outlets.hours import DayException, HoursError, WeeklyHours, parse_exceptions, weekly_from_json, zone
from outlets.models import SERVICES

__all__ = ["OutletRecord", "RecordInvalid", "parse_outlet", "is_outlet_code", "parse_phone", "country_of_zone", "FIELDS"]

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,59}$")
FIELDS = ("code", "name", "address", "lon", "lat", "phone", "timezone", "country", "slot_minutes",
          "services", "hours", "exceptions", "active")


@dataclass
class OutletRecord:
    """A valid outlet, ready to store."""

    code: str
    name: str
    address: str
    lon: float
    lat: float
    timezone: str
    country: str
    services: dict[str, int]
    weekly: WeeklyHours | None = None
    exceptions: dict[date, DayException] = field(default_factory=dict)
    phone: str | None = None
    slot_minutes: int = 15
    active: bool = True


class RecordInvalid(Unprocessable):
    """A record with bad fields; ``errors`` lists ``{"field", "reason"}`` for each."""

    title = _("Invalid outlet")

    def __init__(self, errors: list[dict[str, str]]):
        summary = Joined(_("; "), [_("%(field)s: %(reason)s", field=e["field"], reason=e["reason"]) for e in errors])
        super().__init__(summary, errors=errors)
        self.errors = errors


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """IANA zone -> ISO country code, from tzdata's zone.tab."""
    table = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    rows = (line.split("\t") for line in table.splitlines() if line and not line.startswith("#"))
    return {row[2]: row[0] for row in rows if len(row) >= 3}


def is_outlet_code(text: str) -> bool:
    """Whether ``text`` has the shape of an outlet code (so that it can be looked up)."""
    return bool(_CODE.match(text))


def country_of_zone(name: str) -> str | None:
    """The country an IANA zone belongs to (``Europe/Berlin`` -> ``DE``), if it names one."""
    return _zone_countries().get(name)


def parse_phone(text: Any, region: str | None, what: str = "phone") -> str:
    """A phone number in E.164 (``+49721...``); national numbers are read in ``region``."""
    if not isinstance(text, str) or not text.strip():
        raise Invalid(_("%(what)s is required", what=what), field=what)
    example = phonenumbers.example_number(region) if region else None
    hint = (_(" (e.g. %(national)s or %(international)s)",
              national=phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL),
              international=phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
            if example else _(" (with its country code, e.g. +49 721 1234567)"))
    try:
        number = phonenumbers.parse(text.strip(), region)
    except phonenumbers.NumberParseException:
        raise Invalid(_("%(what)s %(text)r is not a phone number%(hint)s", what=what, text=text.strip(), hint=hint), field=what) from None
    if not phonenumbers.is_valid_number(number):
        raise Invalid(_("%(what)s %(text)r is not a valid phone number%(hint)s", what=what, text=text.strip(), hint=hint), field=what)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _text(values: Mapping[str, Any], name: str, limit: int, errors: list, required: bool = True) -> str | None:
    """A text field, stripped; None (and an error if required) when empty."""
    value = values.get(name)
    if value is None or not str(value).strip():
        if required:
            errors.append({"field": name, "reason": _("is required")})
        return None
    value = str(value).strip()
    if len(value) > limit:
        errors.append({"field": name, "reason": _("is longer than %(limit)s characters", limit=limit)})
    if any(unicodedata.category(c) == "Cc" for c in value):
        errors.append({"field": name, "reason": _("holds control characters")})
    return value


def _number(values: Mapping[str, Any], name: str, low: float, high: float, errors: list) -> float | None:
    """A number field within ``low``..``high``, or None and an error."""
    value = values.get(name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors.append({"field": name, "reason": "is required" if value in (None, "") else f"{value!r} is not a number"})
        return None
    if not low <= number <= high:
        errors.append({"field": name, "reason": _("%(number)s is outside %(low)s..%(high)s", number=number, low=low, high=high)})
        return None
    return number


def _services(value: Any, errors: list) -> dict[str, int]:
    """``{"billing": 2}``, ``["billing"]`` or ``"billing:2; meter"`` -> service -> capacity."""
    if isinstance(value, str):
        value = [part for part in re.split(r"[;,]", value) if part.strip()]
    if isinstance(value, (list, tuple)):
        pairs = []
        for item in value:
            name, _colon, capacity = str(item).partition(":")
            pairs.append((name.strip(), capacity.strip() or 1))
        value = dict(pairs)
    if not isinstance(value, Mapping) or not value:
        errors.append({"field": "services", "reason": _('is required: the services offered and the visits one slot takes, e.g. "billing:2; meter:1"')})
        return {}
    services = {}
    for name, capacity in value.items():
        if name not in SERVICES:
            errors.append({"field": "services", "reason": _("%(name)r is not a service (known: %(services)s)", name=name, services=', '.join(SERVICES))})
            continue
        try:
            number = float(capacity)
        except (TypeError, ValueError):
            number = math.nan
        if not (number.is_integer() and 1 <= number <= 1000):
            errors.append({"field": "services", "reason": _("%(name)s: capacity %(capacity)r is not a whole number 1..1000", name=name, capacity=capacity)})
            continue
        services[name] = int(number)
    return services


def _flag(value: Any, errors: list) -> bool:
    """A yes/no field (true by default)."""
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y"):
        return True
    if text in ("false", "0", "no", "n"):
        return False
    errors.append({"field": "active", "reason": _("%(value)r is not true or false", value=value)})
    return True


def _zone_and_country(values: Mapping[str, Any], errors: list[dict[str, str]]) -> tuple[str | None, str | None]:
    """The outlet's IANA zone and ISO country (from the zone when not given), or None where bad."""
    timezone = _text(values, "timezone", 64, errors)
    country = _text(values, "country", 2, errors, required=False)
    if timezone:
        try:
            zone(timezone)
        except HoursError as error:
            errors.append({"field": "timezone", "reason": error.args[0]})
            timezone = None
    if country:
        country = country.upper()
        if country not in phonenumbers.SUPPORTED_REGIONS:
            errors.append({"field": "country", "reason": _("%(country)r is not an ISO 3166 country code", country=country)})
    elif timezone:
        country = country_of_zone(timezone)
        if country is None:
            errors.append({"field": "country", "reason": _("is required: %(timezone)s belongs to no one country", timezone=timezone)})
    return timezone, country


def _slot_minutes(value: Any, errors: list[dict[str, str]]) -> int | None:
    """The length of a slot in minutes, 15 when not given."""
    if value in (None, ""):
        return 15
    try:
        minutes = int(str(value).strip())
        if not 5 <= minutes <= 480:
            raise ValueError
    except ValueError:
        errors.append({"field": "slot_minutes", "reason": _("%(value)r is not a whole number 5..480", value=value)})
        return None
    return minutes


def parse_outlet(values: Mapping[str, Any]) -> OutletRecord:
    """Check one outlet; raises RecordInvalid listing every bad field."""
    errors: list[dict[str, str]] = []
    unknown = sorted(set(values) - set(FIELDS) - {"geometry"})
    if unknown:
        errors.append({"field": unknown[0], "reason": _("unknown field(s) %(unknown)s (known: %(fields)s)", unknown=', '.join(unknown), fields=', '.join(FIELDS))})
    code = _text(values, "code", 60, errors)
    if code and not _CODE.match(code):
        errors.append({"field": "code", "reason": _("%(code)r may hold only letters, digits and . _ : - (starting with a letter or digit)", code=code)})
    name = _text(values, "name", 200, errors)
    address = _text(values, "address", 500, errors)
    lon = _number(values, "lon", -180, 180, errors)
    lat = _number(values, "lat", -90, 90, errors)
    timezone, country = _zone_and_country(values, errors)
    phone = _text(values, "phone", 40, errors, required=False)
    # Without a country a national number cannot be read; the zone's or country's error says why.
    if phone and country:
        try:
            phone = parse_phone(phone, country)
        except Invalid as error:
            errors.append({"field": "phone", "reason": error.detail})
    slot_minutes = _slot_minutes(values.get("slot_minutes"), errors)
    services = _services(values.get("services"), errors)
    weekly, exceptions = None, {}
    try:
        hours = values.get("hours")
        weekly = weekly_from_json(None if hours == "" else hours)
    except HoursError as error:
        errors.append({"field": "hours", "reason": error.args[0]})
    try:
        exceptions = parse_exceptions(values.get("exceptions"))
    except HoursError as error:
        errors.append({"field": "exceptions", "reason": error.args[0]})
    active = _flag(values.get("active"), errors)
    if errors:
        raise RecordInvalid(errors)
    return OutletRecord(code=code, name=name, address=address, lon=lon, lat=lat, timezone=timezone,
                        country=country, services=services, weekly=weekly, exceptions=exceptions,
                        phone=phone, slot_minutes=slot_minutes, active=active)
