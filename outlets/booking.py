"""Slots and bookings: capacity enforced by the database, idempotent requests, atomic changes.

A booking takes a place in its slot's counter row with one statement,

    INSERT INTO slot_bookings ... VALUES (..., booked = 1)
    ON CONFLICT (outlet_id, slot_start, service) DO UPDATE SET booked = slot_bookings.booked + 1
    WHERE slot_bookings.booked < EXCLUDED.capacity RETURNING booked

which locks the row: concurrent requests queue on it and each sees the count the previous one
committed, so no two can take the last place (the CHECK ``booked <= capacity`` backs it up).
No row back means the slot is full: the transaction, with the booking row it inserted, is
rolled back. A reschedule takes the new place before it gives back the old one, in one
transaction; two reschedules crossing each other may deadlock, and are retried.

The confirmation code is the only key to a booking and its personal data (name, phone).
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import wraps
from typing import Any, Callable, Mapping, TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from geo import outbox
from geo.errors import Invalid, Conflict, NotFound, Unprocessable
from geo.i18n import Moment, _
from outlets.hours import FIRST_YEAR, LAST_YEAR, Schedule, Slot, format_intervals, in_range
from outlets.models import SERVICES, Booking, SlotCounter
from outlets.records import parse_phone
from outlets.store import OutletView, load_outlet, outlets, phone_fields

__all__ = [
    "BOOKING_HORIZON_DAYS", "BookingRequest", "BookingView", "DaySlots", "SlotPlaces", "parse_booking_request",
    "parse_start", "day_slots", "check_slot",
    "book", "get_booking", "cancel_booking", "reschedule_booking", "booking_ics", "format_code", "normalise_code",
]

UTC = timezone.utc
BOOKING_HORIZON_DAYS = 90
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: codes are read over the phone
CODE_LENGTH = 12  # 30^12 ≈ 2^59: not guessable
LATE_REMINDER_BEFORE = timedelta(hours=2)  # when the day before at the same time has passed

bookings = Booking.__table__
counters = SlotCounter.__table__
T = TypeVar("T")


# -- codes ---------------------------------------------------------------------------------------
def new_code() -> str:
    """A random confirmation code (stored without dashes)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """``ABCDEFGHJKMN`` -> ``ABCD-EFGH-JKMN``, as a customer reads it."""
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def normalise_code(text: str) -> str:
    """What the customer typed -> the stored code; NotFound for anything that cannot be one."""
    code = re.sub(r"[\s-]", "", text or "").upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        raise NotFound(_("there is no booking with this code"))
    return code


# -- requests ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BookingRequest:
    """A booking as posted, fields checked for shape (the slot is checked against the outlet)."""

    outlet: str
    service: str
    start: str
    name: str
    phone: str
    idempotency_key: str


_REQUIRED = ("outlet", "service", "start", "name", "phone", "idempotency_key")


def _clean_text(value: Any, field: str, limit: int) -> str:
    """A required text field with its spaces collapsed; Invalid when empty, long or odd."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(_("%(field)s is required", field=field), field=field)
    value = " ".join(value.split())
    if len(value) > limit:
        raise Invalid(_("%(field)s is longer than %(limit)s characters", field=field, limit=limit), field=field)
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise Invalid(_("%(field)s holds control characters", field=field), field=field)
    return value


def parse_booking_request(body: Any, idempotency_header: str | None = None) -> BookingRequest:
    """A JSON body -> BookingRequest; Invalid says which field is missing or malformed."""
    if not isinstance(body, Mapping):
        raise Invalid(_("send a JSON object with %(required)s", required=", ".join(_REQUIRED)))
    unknown = sorted(set(body) - set(_REQUIRED))
    if unknown:
        raise Invalid(_("unknown field(s) %(unknown)s (send %(required)s)", unknown=', '.join(unknown), required=', '.join(_REQUIRED)))
    key = body.get("idempotency_key") or idempotency_header
    if body.get("idempotency_key") and idempotency_header and body["idempotency_key"] != idempotency_header:
        raise Invalid(_("the Idempotency-Key header and idempotency_key differ"), field="idempotency_key")
    return BookingRequest(
        outlet=_clean_text(body.get("outlet"), "outlet", 60),
        service=_clean_text(body.get("service"), "service", 40),
        start=_clean_text(body.get("start"), "start", 40),
        name=_clean_text(body.get("name"), "name", 120),
        phone=_clean_text(body.get("phone"), "phone", 40),
        idempotency_key=_clean_text(key, "idempotency_key (or the Idempotency-Key header)", 200),
    )


def parse_start(value: str, outlet: OutletView) -> datetime:
    """An ISO 8601 start -> a UTC instant; without an offset it is the outlet's wall-clock time."""
    try:
        start = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise Invalid(_("start %(value)r is not an ISO 8601 date and time (e.g. 2026-12-01T10:30:00+01:00)", value=value), field="start") from None
    if not in_range(start):
        raise Invalid(_("start %(value)r is outside the years %(first_year)s to %(last_year)s", value=value, first_year=FIRST_YEAR, last_year=LAST_YEAR), field="start")
    if start.tzinfo is None:
        start = start.replace(tzinfo=outlet.schedule.tz)
    return start.astimezone(UTC)


def _when(outlet: OutletView, at: datetime) -> str:
    """An instant as a customer reads it on the outlet's clock."""
    return Moment(outlet.schedule.local(at), "%a %Y-%m-%d %H:%M (UTC%z)", "EEE yyyy-MM-dd HH:mm ('UTC'xx)")


def _check_service(outlet: OutletView, service: str) -> int:
    """The capacity of ``service`` at ``outlet``; Unprocessable when it is not offered."""
    if service not in SERVICES:
        raise Unprocessable(_("unknown service %(service)r (known: %(services)s)", service=service, services=', '.join(SERVICES)))
    if service not in outlet.services:
        raise Unprocessable(_("outlet %(code)s does not offer %(service)r (it offers: %(services)s)", code=outlet.code, service=service, services=', '.join(outlet.services)))
    return outlet.services[service]


def check_slot(outlet: OutletView, service: str, start: datetime, now: datetime) -> Slot:
    """The slot of ``service`` starting at ``start``, or Unprocessable saying why there is none."""
    _check_service(outlet, service)
    schedule = outlet.schedule
    if start <= now:
        raise Unprocessable(_("%(when)s is in the past", when=_when(outlet, start)))
    if start > now + timedelta(days=BOOKING_HORIZON_DAYS):
        raise Unprocessable(_("bookings open %(booking_horizon_days)s days ahead; %(when)s is later", booking_horizon_days=BOOKING_HORIZON_DAYS, when=_when(outlet, start)))
    if not schedule.known:
        raise Unprocessable(_("the opening hours of outlet %(code)s are unknown, so it takes no bookings", code=outlet.code))
    day = schedule.local_date(start)
    slots = schedule.slots(day, outlet.slot_minutes)
    if any(slot.start == start for slot in slots):
        return next(slot for slot in slots if slot.start == start)
    note = schedule.note(day)
    if not schedule.is_open(start):
        if not schedule.intervals_starting(day):
            raise Unprocessable(_("outlet %(code)s is closed on %(day)s (%(note)s)", code=outlet.code, day=Moment(day, "%a %Y-%m-%d", "EEE yyyy-MM-dd"), note=note)
                                if note else _("outlet %(code)s is closed on %(day)s", code=outlet.code, day=Moment(day, "%a %Y-%m-%d", "EEE yyyy-MM-dd")))
        hours = format_intervals(schedule.intervals_starting(day))
        raise Unprocessable(_("%(when)s is outside the opening hours of outlet %(code)s (that day: %(hours)s; %(note)s)",
                              when=_when(outlet, start), code=outlet.code, hours=hours, note=note) if note else
                            _("%(when)s is outside the opening hours of outlet %(code)s (that day: %(hours)s)",
                              when=_when(outlet, start), code=outlet.code, hours=hours))
    before = [s for s in slots if s.start < start][-1:]
    after = [s for s in slots if s.start > start][:1]
    nearest = [schedule.local(s.start).strftime("%H:%M") for s in before + after]
    when, minutes = _when(outlet, start), outlet.slot_minutes
    if len(nearest) == 2:
        raise Unprocessable(_("%(when)s is not a slot start: slots last %(minutes)s minutes; the nearest start at "
                              "%(before)s or %(after)s", when=when, minutes=minutes, before=nearest[0], after=nearest[1]))
    if nearest:
        raise Unprocessable(_("%(when)s is not a slot start: slots last %(minutes)s minutes; the nearest start at "
                              "%(nearest)s", when=when, minutes=minutes, nearest=nearest[0]))
    raise Unprocessable(_("%(when)s is not a slot start: slots last %(minutes)s minutes", when=when, minutes=minutes))


# -- slots ---------------------------------------------------------------------------------------
_BOOKED = select(counters.c.slot_start, counters.c.service, counters.c.booked).where(
    counters.c.outlet_id == bindparam("outlet_id"), counters.c.slot_start.between(bindparam("first"), bindparam("last")))


def _booked(connection: Connection, outlet_id: int, first: datetime, last: datetime) -> dict[tuple, int]:
    """(slot start, service) -> places taken, for the slots of one outlet from ``first`` to ``last``."""
    rows = connection.execute(_BOOKED, {"outlet_id": outlet_id, "first": first, "last": last})
    return {(row.slot_start, row.service): row.booked for row in rows}


@dataclass(frozen=True)
class SlotPlaces:
    """One slot of one service and how many of its places are left."""

    start: datetime
    end: datetime
    service: str
    capacity: int
    remaining: int
    # With ``by=shift``: the opening it belongs to, as {"date": its start day, "hours": "18:00-02:00"}.
    shift: dict | None = None

    def as_dict(self) -> dict[str, Any]:
        answer = {"start": self.start.isoformat(), "end": self.end.isoformat(), "service": self.service,
                  "capacity": self.capacity, "remaining": self.remaining}
        if self.shift is not None:
            answer["shift"] = self.shift
        return answer


@dataclass(frozen=True)
class DaySlots:
    """An outlet's bookable slots on one local day, or a note saying why there are none."""

    outlet: OutletView
    day: date
    hours: dict
    slots: list[SlotPlaces]
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"outlet": self.outlet.code, "date": self.day.isoformat(), "timezone": self.outlet.timezone,
                "slot_minutes": self.outlet.slot_minutes, "hours": self.hours,
                "slots": [slot.as_dict() for slot in self.slots], "note": self.note}


def _no_slots_note(schedule: Schedule, day: date, now: datetime) -> str | None:
    """Why ``day`` offers no slots whatever its hours: in the past, beyond the horizon, hours unknown."""
    last_day = schedule.local_date(now + timedelta(days=BOOKING_HORIZON_DAYS))
    if day < schedule.local_date(now):
        return "this date is in the past"
    if day > last_day:
        return f"bookings open {BOOKING_HORIZON_DAYS} days ahead (until {last_day})"
    if not schedule.known:
        return "the opening hours of this outlet are unknown, so it takes no bookings"
    return None


def _shift_slots(schedule: Schedule, day: date, minutes: int, now: datetime) -> list[tuple[Slot, dict]]:
    """The slots of the openings that start on ``day``, each with its opening; on the outlet's
    today also the rest of last night's opening, which is still running."""
    days = [day - timedelta(days=1), day] if day == schedule.local_date(now) else [day]
    return [(slot, {"date": start.isoformat(), "hours": str(interval)})
            for start in days for interval, slots in schedule.shift_slots(start, minutes) for slot in slots]


def day_slots(connection: Connection, code: str, day: date, service: str | None, now: datetime,
              by_shift: bool = False) -> DaySlots:
    """The bookable slots of outlet ``code`` starting on local ``day`` (``by_shift``: those of the
    openings that start on it, each slot naming its opening), with the places left."""
    outlet = load_outlet(connection, code)
    wanted = list(outlet.services) if service is None else [service]
    if service is not None:
        _check_service(outlet, service)
    schedule = outlet.schedule
    note = _no_slots_note(schedule, day, now)
    if by_shift:
        found = _shift_slots(schedule, day, outlet.slot_minutes, now) if note is None else []
    else:
        found = [(s, None) for s in schedule.slots(day, outlet.slot_minutes)] if note is None else []
    found = [(slot, shift) for slot, shift in found if slot.start > now]
    booked = _booked(connection, outlet.id, found[0][0].start, found[-1][0].start) if found else {}
    places = [SlotPlaces(schedule.local(slot.start), schedule.local(slot.end), name, outlet.services[name],
                         max(0, outlet.services[name] - booked.get((slot.start, name), 0)), shift)
              for slot, shift in found for name in wanted]
    return DaySlots(outlet, day, schedule.day_hours(day), places, note)


# -- transactions --------------------------------------------------------------------------------
_RETRIED_STATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def _retrying(function: Callable[..., T]) -> Callable[..., T]:
    """Run a transaction again (up to three times) when PostgreSQL broke a deadlock with it."""

    @wraps(function)
    def run(*args, **kwargs):
        for attempt in range(3):
            try:
                return function(*args, **kwargs)
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) not in _RETRIED_STATES or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return run


def _take_place(connection: Connection, outlet: OutletView, service: str, start: datetime) -> bool:
    """Take one place in the slot's counter; False when it is full (decided by the database)."""
    statement = insert(counters).values(outlet_id=outlet.id, slot_start=start, service=service, booked=1,
                                        capacity=outlet.services[service])
    statement = statement.on_conflict_do_update(
        index_elements=[counters.c.outlet_id, counters.c.slot_start, counters.c.service],
        set_={"booked": counters.c.booked + 1, "capacity": statement.excluded.capacity},
        where=counters.c.booked < statement.excluded.capacity,
    )
    try:
        return connection.execute(statement.returning(counters.c.booked)).first() is not None
    except IntegrityError as error:
        # The CHECK is the last guard; reaching it is still "full", never a 500.
        if "slot_within_capacity" in str(error.orig):
            return False
        raise


_BOOKED_ONE = select(counters.c.booked).where(
    counters.c.outlet_id == bindparam("outlet_id"), counters.c.slot_start == bindparam("start"),
    counters.c.service == bindparam("service"))


def _already_full(connection: Connection, outlet: OutletView, service: str, start: datetime) -> bool:
    """Whether the slot was full when last committed (a hint; ``_take_place`` decides)."""
    booked = connection.execute(_BOOKED_ONE, {"outlet_id": outlet.id, "start": start, "service": service}).scalar()
    return booked is not None and booked >= outlet.services[service]


def _full(outlet: OutletView, service: str, start: datetime) -> Conflict:
    """The 409 for a fully booked slot."""
    local = outlet.schedule.local(start)
    return Conflict(_("the %(time)s slot for %(service)s at outlet %(code)s on %(date)s is fully booked; pick another slot",
                      time=local.strftime("%H:%M"), service=service, code=outlet.code, date=local.strftime("%Y-%m-%d")), reason="slot_full")


def _give_back_place(connection: Connection, outlet_id: int, service: str, start: datetime) -> None:
    """Free one place in the slot's counter."""
    connection.execute(update(counters).where(
        counters.c.outlet_id == outlet_id, counters.c.slot_start == start, counters.c.service == service,
    ).values(booked=counters.c.booked - 1))


def _request_hash(outlet: str, service: str, start: datetime, name: str, phone: str) -> str:
    """A fingerprint of a booking request, to tell a replay from another request."""
    canonical = json.dumps([outlet, service, start.isoformat(), name, phone], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- notifications -------------------------------------------------------------------------------
def _message(kind: str, booking: Mapping, outlet: OutletView) -> str:
    """The text of one outbox message about ``booking``."""
    when = outlet.schedule.local(booking["slot_start"]).strftime("%a %d %b %Y at %H:%M")
    what = SERVICES.get(booking["service"], booking["service"])
    place = f"{outlet.name}, {outlet.address}"
    code = format_code(booking["code"])
    return {
        "booking_confirmation": f"Your visit is booked: {what} at {place}, {when}. Code {code}.",
        "booking_reminder": f"Reminder: your visit for {what} at {place} is on {when}. Code {code}.",
        "booking_rescheduled": f"Your visit has moved: {what} at {place}, now {when}. Code {code}.",
        "booking_cancelled": f"Your visit for {what} at {place} on {when} is cancelled. Code {code}.",
    }[kind]


def _reminder_times(start: datetime, outlet: OutletView) -> tuple[datetime, datetime]:
    """When a reminder of a visit at ``start`` may go, the first choice first: the same wall-clock
    time the day before on the outlet's clock (23 or 25 hours before across a clock change; a time
    the clock skips moves on with it, a repeated one is taken at its first showing), then 2 hours before."""
    return (outlet.schedule.local(start) - timedelta(days=1)).astimezone(UTC), start - LATE_REMINDER_BEFORE


def _notify(connection: Connection, booking: Mapping, outlet: OutletView, now: datetime, *kinds: str,
            new: bool = False) -> None:
    """Write the messages ``kinds`` (due now) and, for a live booking, its reminder to the outbox;
    the reminder written before (unless the booking is ``new``) is cancelled."""
    reference = f"booking:{booking['id']}"
    if not new:
        outbox.cancel_pending(connection, reference, "booking_reminder")
    rows = [{"kind": kind, "due_at": now} for kind in kinds]
    if booking["status"] == "confirmed":
        due = next((at for at in _reminder_times(booking["slot_start"], outlet) if at > now + timedelta(minutes=30)),
                   None)
        if due is not None:
            rows.append({"kind": "booking_reminder", "due_at": due})
    outbox.enqueue(connection, (
        outbox.Message(kind=row["kind"], recipient=booking["phone"], body=_message(row["kind"], booking, outlet),
                       due_at=row["due_at"], reference=reference) for row in rows))


# -- bookings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BookingView:
    """A booking as whoever holds its code sees it; ``code`` as stored (without dashes)."""

    code: str
    status: str
    outlet: OutletView
    service: str
    slot_start: datetime
    slot_end: datetime
    name: str
    phone: str
    sequence: int

    @classmethod
    def of(cls, booking: Mapping, outlet: OutletView) -> BookingView:
        """The view of a booking row (or the values it was inserted with)."""
        return cls(booking["code"], booking["status"], outlet, booking["service"], booking["slot_start"],
                   booking["slot_end"], booking["name"], booking["phone"], booking["sequence"])

    @property
    def display_code(self) -> str:
        """The code as the customer reads it: three groups of four, e.g. ``7KQ2-M9XD-4TPA``."""
        return format_code(self.code)

    def as_dict(self) -> dict[str, Any]:
        """As the API shows it."""
        outlet, code = self.outlet, self.display_code
        return {
            "code": code,
            "status": self.status,
            "outlet": {"code": outlet.code, "name": outlet.name, "address": outlet.address, **phone_fields(outlet.phone),
                       "lon": round(outlet.lon, 7), "lat": round(outlet.lat, 7), "timezone": outlet.timezone},
            "service": self.service,
            "service_label": SERVICES.get(self.service, self.service),
            "start": outlet.schedule.local(self.slot_start).isoformat(),
            "end": outlet.schedule.local(self.slot_end).isoformat(),
            "name": self.name,
            **phone_fields(self.phone),
            "ics_url": f"/api/bookings/{code}.ics",
            "sequence": self.sequence,
        }


def _booking_row(connection: Connection, where, lock: bool = False) -> Mapping | None:
    """One booking (with its outlet's code) matching ``where``, row-locked if ``lock``."""
    query = select(bookings, outlets.c.code.label("outlet_code")).join(outlets, outlets.c.id == bookings.c.outlet_id) \
        .where(where)
    if lock:
        query = query.with_for_update(of=bookings)
    row = connection.execute(query).mappings().first()
    return dict(row) if row else None


def _outlet_of(connection: Connection, booking: Mapping) -> OutletView:
    """The outlet of ``booking``, retired or not."""
    return load_outlet(connection, booking["outlet_code"], active_only=False)


@_retrying
def book(session: Session, request: BookingRequest, now: datetime) -> tuple[BookingView, bool]:
    """Book ``request``; returns the booking and whether it is new (False: an idempotent replay).

    Conflict when the slot is full; Unprocessable when the slot is not bookable or the
    idempotency key was used for another request.
    """
    with session.begin():
        connection = session.connection()
        outlet = load_outlet(connection, request.outlet)
        start = parse_start(request.start, outlet)
        phone = parse_phone(request.phone, outlet.country)
        fingerprint = _request_hash(outlet.code, request.service, start, request.name, phone)
        try:
            slot = check_slot(outlet, request.service, start, now)
        except Unprocessable:
            # A replay of a booking made earlier still gets it, even once its slot has passed.
            replayed = _replay(connection, request.idempotency_key, fingerprint)
            if replayed is None:
                raise
            return replayed, False
        if _already_full(connection, outlet, request.service, slot.start):
            # A quick look first: a full slot is refused without writing anything (a replay of a
            # booking that filled it still gets its booking). The upsert below stays the guard.
            replayed = _replay(connection, request.idempotency_key, fingerprint)
            if replayed is not None:
                return replayed, False
            raise _full(outlet, request.service, slot.start)
        values = {"code": new_code(), "outlet_id": outlet.id, "service": request.service, "slot_start": slot.start,
                  "slot_end": slot.end, "name": request.name, "phone": phone, "status": "confirmed",
                  "idempotency_key": request.idempotency_key, "request_hash": fingerprint, "sequence": 0}
        # A concurrent request with the same key waits here on the unique index, then inserts nothing.
        inserted = connection.execute(insert(bookings).values(values).on_conflict_do_nothing(
            index_elements=[bookings.c.idempotency_key]).returning(bookings.c.id)).scalar_one_or_none()
        if inserted is None:
            return _replay(connection, request.idempotency_key, fingerprint), False
        values["id"] = inserted
        _notify(connection, values, outlet, now, "booking_confirmation", new=True)
        # Last before the commit: the counter row stays locked for as short a time as can be.
        if not _take_place(connection, outlet, request.service, slot.start):
            raise _full(outlet, request.service, slot.start)
        return BookingView.of(values, outlet), True


def _replay(connection: Connection, key: str, fingerprint: str) -> BookingView | None:
    """The booking made with ``key``, or None; Unprocessable if it was another request."""
    row = _booking_row(connection, bookings.c.idempotency_key == key)
    if row is None:
        return None
    if row["request_hash"] != fingerprint:
        raise Unprocessable(_("this idempotency_key was already used for a different booking request; send a new key for a new booking"), reason="idempotency_key_reused")
    return BookingView.of(row, _outlet_of(connection, row))


def get_booking(connection: Connection, code: str) -> BookingView:
    """The booking with confirmation code ``code`` (NotFound otherwise)."""
    row = _booking_row(connection, bookings.c.code == normalise_code(code))
    if row is None:
        raise NotFound(_("there is no booking with this code"))
    return BookingView.of(row, _outlet_of(connection, row))


def _locked_booking(connection: Connection, code: str) -> Mapping:
    """The booking with ``code``, locked for the rest of the transaction; NotFound otherwise."""
    row = _booking_row(connection, bookings.c.code == normalise_code(code), lock=True)
    if row is None:
        raise NotFound(_("there is no booking with this code"))
    return row


@_retrying
def cancel_booking(session: Session, code: str, now: datetime) -> BookingView:
    """Cancel a booking and free its place; cancelling twice is harmless. Conflict once it began."""
    with session.begin():
        connection = session.connection()
        row = _locked_booking(connection, code)
        outlet = _outlet_of(connection, row)
        if row["status"] == "cancelled":
            return BookingView.of(row, outlet)
        if row["slot_start"] <= now:
            raise Conflict(_("this visit has already begun or passed; it can no longer be cancelled"), reason="visit_begun")
        row.update(status="cancelled", sequence=row["sequence"] + 1)
        connection.execute(update(bookings).where(bookings.c.id == row["id"]).values(
            status="cancelled", cancelled_at=now, updated_at=now, sequence=row["sequence"]))
        _give_back_place(connection, row["outlet_id"], row["service"], row["slot_start"])
        _notify(connection, row, outlet, now, "booking_cancelled")
        return BookingView.of(row, outlet)


@_retrying
def reschedule_booking(session: Session, code: str, changes: Any, now: datetime) -> BookingView:
    """Move a booking to another slot (and service): the new place is taken before the old one is
    given back, in one transaction, so a full slot leaves the booking as it was."""
    if not isinstance(changes, Mapping) or "start" not in changes or set(changes) - {"start", "service"}:
        raise Invalid(_("send a JSON object with start (and optionally service)"))
    with session.begin():
        connection = session.connection()
        row = _locked_booking(connection, code)
        if row["status"] == "cancelled":
            raise Conflict(_("this booking is cancelled; book a new visit instead"), reason="booking_cancelled")
        if row["slot_start"] <= now:
            raise Conflict(_("this visit has already begun or passed; it can no longer be moved"), reason="visit_begun")
        outlet = load_outlet(connection, row["outlet_code"])
        service = _clean_text(changes.get("service", row["service"]), "service", 40)
        start = parse_start(_clean_text(changes["start"], "start", 40), outlet)
        if (start, service) == (row["slot_start"], row["service"]):
            return BookingView.of(row, outlet)
        slot = check_slot(outlet, service, start, now)
        old_service, old_start = row["service"], row["slot_start"]
        row.update(service=service, slot_start=slot.start, slot_end=slot.end, sequence=row["sequence"] + 1)
        connection.execute(update(bookings).where(bookings.c.id == row["id"]).values(
            service=service, slot_start=slot.start, slot_end=slot.end, sequence=row["sequence"], updated_at=now))
        _notify(connection, row, outlet, now, "booking_rescheduled")
        # The new place before the old one is given back; a full slot rolls all of this back.
        if not _take_place(connection, outlet, service, slot.start):
            raise Conflict(_("the %(time)s slot for %(service)s on %(date)s is fully booked; your booking is unchanged",
                             time=outlet.schedule.local(slot.start).strftime("%H:%M"), service=service,
                             date=outlet.schedule.local(slot.start).strftime("%Y-%m-%d")),
                           reason="slot_full")
        _give_back_place(connection, row["outlet_id"], old_service, old_start)
        return BookingView.of(row, outlet)


def booking_ics(connection: Connection, code: str, now: datetime) -> bytes:
    """The booking as an RFC 5545 calendar: one event in the outlet's zone, with its VTIMEZONE."""
    from icalendar import Alarm, Calendar, Event, vGeo

    row = _booking_row(connection, bookings.c.code == normalise_code(code))
    if row is None:
        raise NotFound(_("there is no booking with this code"))
    outlet = _outlet_of(connection, row)
    calendar = Calendar()
    calendar.add("prodid", "-//GridAtlas//Outlet bookings//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"booking-{row['code']}@gridatlas")
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", outlet.schedule.local(row["slot_start"]))
    event.add("dtend", outlet.schedule.local(row["slot_end"]))
    event.add("summary", f"{SERVICES.get(row['service'], row['service'])} at {outlet.name}")
    event.add("location", f"{outlet.name}, {outlet.address}")
    event.add("geo", vGeo((outlet.lat, outlet.lon)))
    event.add("description", f"Booking code {format_code(row['code'])}. "
                             f"To cancel or move it, use this code on the outlet finder.")
    event.add("status", "CANCELLED" if row["status"] == "cancelled" else "CONFIRMED")
    event.add("sequence", row["sequence"])
    if row["status"] == "confirmed":
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", f"Visit at {outlet.name}")
        alarm.add("trigger", timedelta(hours=-1))
        event.add_component(alarm)
    calendar.add_component(event)
    # The zone's rules from the year before the visit to the year after it, not since 1970.
    year = outlet.schedule.local(row["slot_start"]).year
    calendar.add_missing_timezones(first_date=date(year - 1, 1, 1), last_date=date(year + 2, 1, 1))
    return calendar.to_ical()
