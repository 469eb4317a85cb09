"""Service outlets, their hours and counters, and bookings (PostGIS, SRID 4326).

Capacity lives in ``slot_bookings``: one counter row per (outlet, slot start, service) whose
CHECK keeps ``booked`` between 0 and ``capacity``; a booking takes a place with one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE booked < capacity`` (outlets/booking.py), so the
database, not Python, decides who gets the last place.
"""
from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, SmallInteger, String,
    Text, func, text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base
from geo.i18n import _

__all__ = ["SERVICES", "Outlet", "OutletService", "OutletException", "SlotCounter", "Booking", "BOOKING_STATUSES"]

# The services an outlet may offer: code -> what a customer reads.
SERVICES = {
    "new_connection": _("New connection"),
    "billing": _("Billing and payment"),
    "meter": _("Meters and readings"),
    "complaints": _("Complaints"),
}
BOOKING_STATUSES = ("confirmed", "cancelled")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    """A CHECK expression: ``column`` takes one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Outlet(Base):
    """A customer-service outlet; ``weekly_hours`` NULL means its hours are unknown."""

    __tablename__ = "outlets"
    __table_args__ = (
        CheckConstraint("slot_minutes BETWEEN 5 AND 480", name="outlet_slot_minutes_range"),
        CheckConstraint("country ~ '^[A-Z]{2}$'", name="outlet_country_iso"),
        # The nearest search orders by sphere distance on this index (KNN on geography).
        Index("ix_outlets_geog", text("(geom::geography)"), postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))
    slot_minutes: Mapped[int] = mapped_column(SmallInteger, default=15, server_default="15")
    weekly_hours: Mapped[dict | None] = mapped_column(JSONB)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Kept by triggers (migration 0004) for reads that would otherwise aggregate per outlet:
    # {service: capacity} from outlet_services, and {day: [hours, note]} from outlet_exceptions,
    # from two days before the last change on. Never written by the application.
    service_capacities: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    exceptions_ahead: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class OutletService(Base):
    """A service an outlet offers and its counter: how many visits one slot can take."""

    __tablename__ = "outlet_services"
    __table_args__ = (CheckConstraint("capacity BETWEEN 1 AND 1000", name="outlet_service_capacity_range"),)

    outlet_id: Mapped[int] = mapped_column(ForeignKey("outlets.id", ondelete="CASCADE"), primary_key=True)
    service: Mapped[str] = mapped_column(String(40), primary_key=True)
    capacity: Mapped[int] = mapped_column(SmallInteger)


class OutletException(Base):
    """A dated change to the week: the intervals starting that day (none: closed) and a note."""

    __tablename__ = "outlet_exceptions"

    outlet_id: Mapped[int] = mapped_column(ForeignKey("outlets.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hours: Mapped[list] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)


class SlotCounter(Base):
    """How many visits are booked into one slot of one service; the CHECK is the capacity guard."""

    __tablename__ = "slot_bookings"
    __table_args__ = (
        CheckConstraint("booked >= 0 AND booked <= capacity", name="slot_within_capacity"),
    )

    outlet_id: Mapped[int] = mapped_column(ForeignKey("outlets.id", ondelete="CASCADE"), primary_key=True)
    slot_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    service: Mapped[str] = mapped_column(String(40), primary_key=True)
    booked: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)


class Booking(Base):
    """A customer's visit; ``code`` is the confirmation code and the only key to its personal data."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(_one_of("status", BOOKING_STATUSES), name="booking_status_known"),
        CheckConstraint("slot_end > slot_start", name="booking_slot_ordered"),
        Index("ix_bookings_outlet_slot", "outlet_id", "slot_start"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    outlet_id: Mapped[int] = mapped_column(ForeignKey("outlets.id", ondelete="RESTRICT"))
    service: Mapped[str] = mapped_column(String(40))
    slot_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    slot_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="confirmed", server_default="confirmed")
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # The request the key was first used with: a replay with other values is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    # RFC 5545 SEQUENCE: bumped by every reschedule or cancellation.
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
