"""Service outlets, their hours and counters, bookings and the notification outbox (PostGIS, SRID 4326).

Capacity lives in ``slot_bookings``: one counter row per (outlet, slot start, service) whose
CHECK keeps ``booked`` between 0 and ``capacity``; a booking takes a place with one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE booked < capacity`` (outlets/booking.py), so the
database, not Python, decides who gets the last place.
"""
from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, Date, DateTime, Float, ForeignKey, Index, Integer, SmallInteger, String,
    Text, func, text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base

__all__ = [
    "SERVICES", "address_key", "Outlet", "OutletService", "OutletException", "AddressPlace", "AddressStreet", "SlotCounter", "Booking",
    "NotificationOutbox", "BOOKING_STATUSES", "OUTBOX_STATUSES",
]

# The services an outlet may offer: code -> what a customer reads.
SERVICES = {
    "new_connection": "New connection",
    "billing": "Billing and payment",
    "meter": "Meters and readings",
    "complaints": "Complaints",
}
BOOKING_STATUSES = ("confirmed", "cancelled")
OUTBOX_STATUSES = ("pending", "sent", "failed", "cancelled")


def _spelled(address):
    """ß as ss, umlauts without their dots: how the address search spells addresses."""
    return func.translate(func.replace(address, "ß", "ss"), "ÄÖÜäöü", "AOUaou")


def spelled_sql(column: str) -> str:
    """``_spelled`` as SQL text over ``column``, for hand-written statements that must match the
    address indexes' expression.

    >>> spelled_sql("address")
    "translate(replace(address, 'ß', 'ss'), 'ÄÖÜäöü', 'AOUaou')"
    """
    from sqlalchemy import literal_column
    from sqlalchemy.dialects import postgresql

    return str(_spelled(literal_column(column)).compile(dialect=postgresql.dialect(),
                                                        compile_kwargs={"literal_binds": True}))


def address_key(address):
    """An address as the trigram search compares it (pg_trgm ignores case itself).
    Immutable, so an index can hold it."""
    return _spelled(address).label("address_key")


def address_prefix(address):
    """The same in lower case, for the search's prefix match (a ``text_pattern_ops`` btree
    serves ``LIKE 'karlstrasse%'``)."""
    return func.lower(_spelled(address)).label("address_prefix")


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
        Index("ix_outlets_address_trgm", address_key(text("address")), postgresql_using="gin",
              postgresql_ops={"address_key": "gin_trgm_ops"}),
        Index("ix_outlets_address_prefix", address_prefix(text("address")),
              postgresql_ops={"address_prefix": "text_pattern_ops"}),
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


class AddressPlace(Base):
    """A postcode and town of customers' and outlets' addresses: how many, and the sums of their
    coordinates (the centre is sum / count). Kept by triggers on service_points and outlets
    (migration 0005); never written by the application."""

    __tablename__ = "address_places"
    __table_args__ = (
        # The address search's place lookups: postcode-and-town and town prefixes, and typos.
        Index("ix_address_places_key", func.address_place_key(text("postcode"), text("town")).label("key"),
              postgresql_ops={"key": "text_pattern_ops"}),
        Index("ix_address_places_town_key", func.address_spelled(text("town")).label("town_key"),
              postgresql_ops={"town_key": "text_pattern_ops"}),
        Index("ix_address_places_trgm", func.address_place_key(text("postcode"), text("town")).label("trgm"),
              postgresql_using="gin", postgresql_ops={"trgm": "gin_trgm_ops"}),
    )

    postcode: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    town: Mapped[str] = mapped_column(Text, primary_key=True)
    addresses: Mapped[int] = mapped_column(Integer)
    sum_lon: Mapped[float] = mapped_column(Float(precision=53))
    sum_lat: Mapped[float] = mapped_column(Float(precision=53))


class AddressStreet(Base):
    """A street name of customers' and outlets' addresses and how many addresses it has, for
    matching a misspelt street. Kept by the triggers of migration 0005."""

    __tablename__ = "address_streets"
    __table_args__ = (
        Index("ix_address_streets_trgm", func.address_spelled(text("street")).label("trgm"),
              postgresql_using="gin", postgresql_ops={"trgm": "gin_trgm_ops"}),
    )

    street: Mapped[str] = mapped_column(Text, primary_key=True)
    addresses: Mapped[int] = mapped_column(Integer)


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


class NotificationOutbox(Base):
    """A message to send (SMS, e-mail, webhook) when ``due_at`` comes; a sender delivers it."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        CheckConstraint(_one_of("status", OUTBOX_STATUSES), name="outbox_status_known"),
        Index("ix_notification_outbox_due", "due_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20), default="sms", server_default="sms")
    recipient: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # What the message is about, e.g. ``booking:42``: lets its sender or a later change find it.
    reference: Mapped[str | None] = mapped_column(String(120), index=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(12), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def index_service_point_addresses() -> None:
    """Declare the address search's indexes on service_points, once the metadata knows the table.

    The address search also reads customers' addresses. service_points belongs to the network
    (outlets never imports topology), so its indexes are declared here on the table as the
    metadata knows it, which keeps Alembic's autogenerate from dropping them. Called at import
    and again by geo.models_registry, whichever order the packages were imported in."""
    table = Base.metadata.tables.get("service_points")
    if table is None or any(index.name == "ix_service_points_address_trgm" for index in table.indexes):
        return
    Index("ix_service_points_address_trgm", address_key(table.c.address),
          postgresql_using="gin", postgresql_ops={"address_key": "gin_trgm_ops"})
    Index("ix_service_points_address_prefix", address_prefix(table.c.address),
          postgresql_ops={"address_prefix": "text_pattern_ops"})


index_service_point_addresses()
