"""Outlets for tests: a valid record to vary, stored through the same code the API uses."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from outlets.records import parse_outlet
from outlets.search import Origin, nearest
from outlets.store import save_outlet

BERLIN = ZoneInfo("Europe/Berlin")
# Around Karlsruhe's market square.
CENTRE = (8.4037, 49.0094)


def outlet_values(code: str = "OUT-T1", **changes) -> dict:
    """A valid outlet as the admin API takes it; ``changes`` replace fields."""
    values = {
        "code": code, "name": f"Centre {code}", "address": "Kaiserstraße 12, 76133 Karlsruhe",
        "lon": CENTRE[0], "lat": CENTRE[1], "timezone": "Europe/Berlin", "phone": "0721 1334455",
        "slot_minutes": 30, "services": {"billing": 2, "meter": 1}, "hours": "Mo-Su 08:00-20:00",
    }
    values.update(changes)
    return values


def add_outlet(connection, code: str = "OUT-T1", **changes) -> dict:
    """Store an outlet (in the caller's transaction) and return its values."""
    values = outlet_values(code, **changes)
    save_outlet(connection, parse_outlet(values))
    return values


def local(day: date, hour: int, minute: int = 0, tz: ZoneInfo = BERLIN) -> datetime:
    """A wall-clock time in ``tz`` as an aware datetime."""
    return datetime.combine(day, time(hour, minute), tz)


def days_ahead(days: int, tz: ZoneInfo = BERLIN) -> date:
    """The local date ``days`` from today."""
    return datetime.now(timezone.utc).astimezone(tz).date() + timedelta(days=days)


def nearest_answers(connection, origin: Origin, now: datetime, **options) -> list[dict]:
    """The nearest search's results as the API shows them."""
    return [outlet.as_dict() for outlet in nearest(connection, origin, now, **options)]
