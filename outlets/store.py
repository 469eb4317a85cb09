"""Reading and writing outlets, their services and their exceptions (Core SQL on a Connection).

Spatial SQL comes from geo.spatial's clause builders; everything a user sends is a bind parameter.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable

import phonenumbers
from sqlalchemy import Boolean, Select, String, Text, bindparam, cast, delete, func, literal_column, select, \
    update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from geo.errors import Conflict, NotFound
from geo.i18n import _
from geo.spatial import BBox, in_bbox, point
from outlets.hours import DayException, Schedule, format_intervals, format_weekly, parse_intervals, \
    weekly_from_json, weekly_to_json, zone
from outlets.models import SERVICES, Booking, Outlet, OutletException, OutletService
from outlets.records import OutletRecord, is_outlet_code

__all__ = [
    "OutletView", "save_outlet", "load_outlet",
    "load_outlets", "active_outlets", "outlets_extent", "outlet_exists", "retire_outlet", "set_exception", "delete_exception", "outlet_summary", "outlet_feature",
    "export_records",
]

outlets = Outlet.__table__
services_table = OutletService.__table__
exceptions_table = OutletException.__table__
bookings = Booking.__table__


# -- loading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutletView:
    """An outlet as read: its fields, its services with their capacities, and its schedule."""

    id: int
    code: str
    name: str
    address: str
    phone: str | None
    country: str
    timezone: str
    slot_minutes: int
    lon: float
    lat: float
    active: bool
    services: dict[str, int]
    schedule: Schedule


def outlet_columns() -> list[ColumnElement]:
    """The columns ``view_from_row`` reads. Services and exceptions come as the JSON text of the
    columns the triggers keep (jsonb's text is canonical: equal data reads as equal text, which
    is parsed once)."""
    return [
        outlets.c.id, outlets.c.code, outlets.c.name, outlets.c.address, outlets.c.phone, outlets.c.country,
        outlets.c.timezone, outlets.c.slot_minutes, cast(outlets.c.weekly_hours, Text).label("weekly_hours"),
        outlets.c.active,
        func.ST_X(outlets.c.geom).label("lon"), func.ST_Y(outlets.c.geom).label("lat"),
        cast(outlets.c.service_capacities, Text).label("services"),
        cast(outlets.c.exceptions_ahead, Text).label("exceptions"),
    ]


@functools.lru_cache(maxsize=4096)
def schedule_from_text(timezone: str, weekly: str | None, exceptions: str | None) -> Schedule:
    """A Schedule from an outlet's stored JSON text, built once per distinct text.

    Outlets share their hours and holidays, and a Schedule keeps the instants it has computed,
    so a search reuses them. The key is the data itself: an outlet that changes reads as new
    text and gets a new Schedule; nothing can go stale.
    """
    days = {
        date.fromisoformat(day): DayException(parse_intervals(hours), note)
        for day, (hours, note) in (json.loads(exceptions) if exceptions else {}).items()
    }
    return Schedule(weekly_from_json(json.loads(weekly) if weekly else None), zone(timezone), days)


_SERVICE_ORDER = {service: index for index, service in enumerate(SERVICES)}


@functools.lru_cache(maxsize=1024)
def _services_from_text(services: str) -> tuple[tuple[str, int], ...]:
    """``{service: capacity}`` JSON text as pairs in SERVICES order, parsed once per distinct text."""
    return tuple(sorted(json.loads(services).items(), key=lambda item: _SERVICE_ORDER.get(item[0], len(SERVICES))))


def view_from_row(row: Any) -> OutletView:
    """An OutletView from a row selected with ``outlet_columns``."""
    return OutletView(
        id=row.id, code=row.code, name=row.name, address=row.address, phone=row.phone, country=row.country,
        timezone=row.timezone, slot_minutes=row.slot_minutes, lon=row.lon, lat=row.lat, active=row.active,
        services=dict(_services_from_text(row.services)),
        schedule=schedule_from_text(row.timezone, row.weekly_hours, row.exceptions),
    )


@functools.cache
def _outlet_by_code(active_only: bool) -> Select:
    """One outlet by ``:code`` (built once)."""
    query = select(*outlet_columns()).where(outlets.c.code == bindparam("code", type_=String))
    return query.where(outlets.c.active) if active_only else query


def load_outlet(connection: Connection, code: str, *, active_only: bool = True) -> OutletView:
    """The outlet ``code``, its schedule knowing its exceptions from two days ago on; NotFound if
    there is none."""
    if not is_outlet_code(code):
        raise NotFound(_("there is no outlet %(code)r", code=code))
    row = connection.execute(_outlet_by_code(active_only), {"code": code}).one_or_none()
    if row is None:
        raise NotFound(_("there is no outlet %(code)r", code=code))
    return view_from_row(row)


def load_outlets(connection: Connection, where: Iterable[ColumnElement] = (),
                 limit: int | None = None) -> list[OutletView]:
    """The outlets matching ``where`` (at most ``limit``), ordered by code."""
    query = select(*outlet_columns()).where(*where).order_by(outlets.c.code).limit(limit)
    return [view_from_row(row) for row in connection.execute(query)]


def active_outlets(connection: Connection, bbox: BBox | None, limit: int) -> tuple[list[OutletView], bool]:
    """The active outlets in ``bbox`` (all without one), at most ``limit``, ordered by code, and
    whether there were more."""
    found = load_outlets(connection, [outlets.c.active, in_bbox(outlets.c.geom, bbox)], limit=limit + 1)
    return found[:limit], len(found) > limit


# -- writing -------------------------------------------------------------------------------------
def _exception_rows(outlet_id: int, exceptions: dict[date, DayException]) -> list[dict]:
    """Exceptions as rows of outlet_exceptions."""
    return [{"outlet_id": outlet_id, "day": day, "hours": [str(i) for i in exception.intervals],
             "note": exception.note} for day, exception in exceptions.items()]


def save_outlet(connection: Connection, record: OutletRecord) -> bool:
    """Insert or replace the outlet ``record.code`` with its services and exceptions; True if new.

    Bookings already made stay valid whatever changes: a customer keeps the visit they booked.
    """
    values = {
        "code": record.code, "name": record.name, "address": record.address, "phone": record.phone,
        "country": record.country, "timezone": record.timezone, "slot_minutes": record.slot_minutes,
        "weekly_hours": weekly_to_json(record.weekly), "active": record.active,
        "geom": point(record.lon, record.lat), "updated_at": func.now(),
    }
    statement = insert(outlets).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[outlets.c.code], set_={k: statement.excluded[k] for k in values if k != "code"})
    # xmax is 0 for a row this statement inserted, and set for one it updated.
    outlet_id, created = connection.execute(
        statement.returning(outlets.c.id, literal_column("xmax = 0", Boolean))).one()
    connection.execute(delete(services_table).where(services_table.c.outlet_id == outlet_id))
    connection.execute(insert(services_table), [
        {"outlet_id": outlet_id, "service": service, "capacity": capacity}
        for service, capacity in record.services.items()])
    connection.execute(delete(exceptions_table).where(exceptions_table.c.outlet_id == outlet_id))
    if record.exceptions:
        connection.execute(insert(exceptions_table), _exception_rows(outlet_id, record.exceptions))
    return created


def retire_outlet(connection: Connection, code: str, now: datetime) -> None:
    """Take outlet ``code`` out of search and booking; refused while it has visits to come.

    The row stays so that past bookings keep their outlet; saving the code again brings it back.
    """
    if not is_outlet_code(code):
        raise NotFound(_("there is no outlet %(code)r", code=code))
    outlet_id = connection.execute(select(outlets.c.id).where(outlets.c.code == code, outlets.c.active)
                                   .with_for_update()).scalar_one_or_none()
    if outlet_id is None:
        raise NotFound(_("there is no outlet %(code)r", code=code))
    coming = connection.execute(select(func.count()).select_from(bookings).where(
        bookings.c.outlet_id == outlet_id, bookings.c.status == "confirmed", bookings.c.slot_start > now)).scalar_one()
    if coming:
        raise Conflict(_("outlet %(code)r has %(coming)s booked visit(s) to come; cancel or move them first", code=code, coming=coming),
                       bookings=coming)
    connection.execute(update(outlets).where(outlets.c.id == outlet_id).values(active=False, updated_at=func.now()))


def outlets_extent(connection: Connection) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of the active outlets, or None when there are none."""
    box = connection.execute(select(func.ST_XMin(func.ST_Extent(outlets.c.geom)), func.ST_YMin(func.ST_Extent(outlets.c.geom)),
                                    func.ST_XMax(func.ST_Extent(outlets.c.geom)), func.ST_YMax(func.ST_Extent(outlets.c.geom)))
                             .where(outlets.c.active)).one()
    return None if box[0] is None else tuple(box)


def outlet_exists(connection: Connection, code: str) -> bool:
    """Whether an outlet (active or retired) has ``code``."""
    return connection.execute(select(outlets.c.id).where(outlets.c.code == code)).first() is not None


def _outlet_id(connection: Connection, code: str) -> int:
    """The id of active outlet ``code``; NotFound otherwise."""
    if not is_outlet_code(code):
        raise NotFound(_("there is no outlet %(code)r", code=code))
    outlet_id = connection.execute(select(outlets.c.id).where(outlets.c.code == code, outlets.c.active)).scalar_one_or_none()
    if outlet_id is None:
        raise NotFound(_("there is no outlet %(code)r", code=code))
    return outlet_id


def set_exception(connection: Connection, code: str, day: date, exception: DayException) -> None:
    """Give outlet ``code`` special hours (none: closed) on ``day``, replacing any it had."""
    outlet_id = _outlet_id(connection, code)
    statement = insert(exceptions_table).values(_exception_rows(outlet_id, {day: exception}))
    connection.execute(statement.on_conflict_do_update(
        index_elements=[exceptions_table.c.outlet_id, exceptions_table.c.day],
        set_={"hours": statement.excluded.hours, "note": statement.excluded.note}))


def delete_exception(connection: Connection, code: str, day: date) -> None:
    """Return outlet ``code`` to its weekly hours on ``day``."""
    outlet_id = _outlet_id(connection, code)
    deleted = connection.execute(delete(exceptions_table).where(
        exceptions_table.c.outlet_id == outlet_id, exceptions_table.c.day == day)).rowcount
    if not deleted:
        raise NotFound(_("outlet %(code)r has no exception on %(day)s", code=code, day=day))


# -- presenting ----------------------------------------------------------------------------------
def phone_fields(phone: str | None) -> dict[str, str | None]:
    """``phone`` (E.164, for tel: links) and ``phone_display`` (international format, for reading)."""
    return {"phone": phone, "phone_display": _readable_phone(phone) if phone else None}


@functools.lru_cache(maxsize=10_000)
def _readable_phone(phone: str) -> str:
    """+497211234567 -> +49 721 1234567 (parsing is slow, and an outlet's number is read often)."""
    return phonenumbers.format_number(phonenumbers.parse(phone, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def outlet_summary(outlet: OutletView, now: datetime) -> dict[str, Any]:
    """What anyone may read about an outlet: where, what, when (no personal data)."""
    schedule = outlet.schedule
    today = schedule.local_date(now)
    return {
        "code": outlet.code, "name": outlet.name, "address": outlet.address, **phone_fields(outlet.phone),
        "lon": round(outlet.lon, 7), "lat": round(outlet.lat, 7), "timezone": outlet.timezone,
        "services": list(outlet.services),
        "service_labels": {service: SERVICES.get(service, service) for service in outlet.services},
        "capacity": outlet.services, "slot_minutes": outlet.slot_minutes,
        "hours_known": schedule.known,
        "hours": schedule.hours_text,
        "week": weekly_to_json(schedule.weekly),
        "exceptions": [
            {"date": day.isoformat(), "hours": format_intervals(exception.intervals), "note": exception.note}
            for day, exception in sorted(schedule.exceptions.items()) if day >= today
        ],
    }


def outlet_feature(outlet: OutletView, now: datetime) -> dict[str, Any]:
    """The outlet as an RFC 7946 Feature."""
    properties = outlet_summary(outlet, now)
    return {"type": "Feature", "id": outlet.code,
            "geometry": {"type": "Point", "coordinates": [properties.pop("lon"), properties.pop("lat")]},
            "properties": properties}


def export_records(connection: Connection, today: date) -> list[dict[str, Any]]:
    """Every active outlet in the import layout (docs/outlets.md), future exceptions included."""
    rows = []
    for outlet in load_outlets(connection, [outlets.c.active]):
        rows.append({
            "code": outlet.code, "name": outlet.name, "address": outlet.address, "lon": outlet.lon,
            "lat": outlet.lat, "phone": outlet.phone or "", "timezone": outlet.timezone,
            "country": outlet.country, "slot_minutes": outlet.slot_minutes,
            "services": "; ".join(f"{s}:{c}" for s, c in outlet.services.items()),
            "hours": format_weekly(outlet.schedule.weekly),
            "exceptions": "; ".join(
                # A note may not hold the separator of the text form.
                " ".join(filter(None, (day.isoformat(), format_intervals(e.intervals), (e.note or "").replace(";", ","))))
                for day, e in sorted(outlet.schedule.exceptions.items()) if day >= today),
        })
    return rows
