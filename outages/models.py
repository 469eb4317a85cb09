"""Trouble calls, meter events, outages with their append-only timeline and frozen customer steps,
and repair crews with their positions and assignments (PostGIS, SRID 4326).

The rules that must hold whatever the concurrency are kept by the database: an outage's state
changes with ``UPDATE ... WHERE state = <expected>`` (outages/lifecycle.py); a crew has at most one
open assignment and an outage at most one crew (partial unique indexes); a meter event is stored
once per event id and a position once per crew and timestamp (primary keys); the timeline and
the steps are append-only (a trigger refuses UPDATE and DELETE, migration 0008).
"""
from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, Text, func, text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base

__all__ = [
    "STATES", "OPEN_STATES", "ORIGINS", "CAUSES", "CREW_STATUSES", "CALL_WAYS", "METER_EVENT_KINDS",
    "Outage", "OutageEvent", "OutageStep", "TroubleCall", "MeterEvent", "Crew", "CrewMember",
    "CrewPosition", "CrewAssignment", "SUBSCRIPTION_CHANNELS", "SUBSCRIPTION_LANGUAGES", "Subscription",
]

# The lifecycle (outages/lifecycle.py holds the allowed transitions).
STATES = ("predicted", "confirmed", "crew_assigned", "en_route", "on_site", "restored", "cancelled")
# An outage a dispatcher has confirmed and not yet ended.
CONFIRMED_STATES = STATES[1:5]
OPEN_STATES = STATES[:5]
ORIGINS = ("predicted", "manual", "planned")
CAUSES = ("unknown", "weather", "equipment", "vegetation", "animal", "third_party", "overload", "planned")
CREW_STATUSES = ("available", "assigned", "en_route", "on_site", "off_duty")
CALL_WAYS = ("account", "phone", "point")
METER_EVENT_KINDS = ("last_gasp", "power_restored")
SUBSCRIPTION_CHANNELS = ("sms", "email", "webhook")
SUBSCRIPTION_LANGUAGES = ("en", "zh")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    """A CHECK expression: ``column`` takes one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Crew(Base):
    """A repair crew: its vehicle, depot, skills, status and last known position."""

    __tablename__ = "crews"
    __table_args__ = (CheckConstraint(_one_of("status", CREW_STATUSES), name="crew_status_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    vehicle: Mapped[str | None] = mapped_column(String(120))
    depot: Mapped[str | None] = mapped_column(String(200))
    depot_geom: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list, server_default="{}")
    status: Mapped[str] = mapped_column(String(20), default="available", server_default="available")
    # The account the crew signs in with (role crew); its token sends the positions.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), unique=True)
    geom: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))
    position_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CrewMember(Base):
    """A person in a crew."""

    __tablename__ = "crew_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(40))
    duty: Mapped[str | None] = mapped_column(String(80))


class CrewPosition(Base):
    """A position a crew's phone sent; once per crew and timestamp (a batch sent twice is stored once)."""

    __tablename__ = "crew_positions"

    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id", ondelete="CASCADE"), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Outage(Base):
    """An outage at a device (or one service point), from prediction or a dispatcher, and its state now.

    The customers it affects are frozen in ``outage_steps``; its history is ``outage_events``.
    """

    __tablename__ = "outages"
    __table_args__ = (
        CheckConstraint(_one_of("state", STATES), name="outage_state_known"),
        CheckConstraint(_one_of("origin", ORIGINS), name="outage_origin_known"),
        CheckConstraint(_one_of("cause", CAUSES), name="outage_cause_known"),
        CheckConstraint("etr_source IS NULL OR etr_source IN ('dispatcher', 'history')", name="outage_etr_source"),
        CheckConstraint("planned_end IS NULL OR planned_end > planned_start", name="outage_window_ordered"),
        Index("ix_outages_open", "state", postgresql_where=text("state NOT IN ('restored', 'cancelled')")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    state: Mapped[str] = mapped_column(String(20))
    origin: Mapped[str] = mapped_column(String(20))
    # The predicted or confirmed device (or the service point of a one-customer outage).
    device: Mapped[str] = mapped_column(String(120), index=True)
    device_kind: Mapped[str] = mapped_column(String(20))
    feeder: Mapped[str | None] = mapped_column(String(120))
    # Where the prediction engine settles its reports: the supply edge of the radial section.
    section_key: Mapped[str | None] = mapped_column(String(120), index=True)
    cause: Mapped[str] = mapped_column(String(20), default="unknown", server_default="unknown")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_report_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    planned_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    planned_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    etr: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    etr_source: Mapped[str | None] = mapped_column(String(20))
    etr_confidence: Mapped[float | None] = mapped_column(Float)
    customers_affected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    customers_out: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    meter_reports: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    crew_id: Mapped[int | None] = mapped_column(ForeignKey("crews.id", ondelete="SET NULL"), index=True)
    # A second fault inside an area being restored: the outage it is nested in.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("outages.id", ondelete="SET NULL"), index=True)
    momentary: Mapped[bool | None] = mapped_column(Boolean)
    restored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    geom: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))
    # The outline of the affected customers (a hull of their points), frozen with the step.
    area: Mapped[WKBElement | None] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False))


class OutageEvent(Base):
    """One entry of an outage's timeline (append-only): a transition, a move, an ETR, a step, a note."""

    __tablename__ = "outage_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outage_id: Mapped[int] = mapped_column(ForeignKey("outages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutageStep(Base):
    """The customers an outage affected (``affected``) or a restoration step gave back (``restored``),
    frozen when it happened so that history stays true after the network changes (append-only)."""

    __tablename__ = "outage_steps"
    __table_args__ = (CheckConstraint("kind IN ('affected', 'restored')", name="outage_step_kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outage_id: Mapped[int] = mapped_column(ForeignKey("outages.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    # Service point ids; every service point of a step is in ``customer_count``.
    customers: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    customer_count: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    # The switching operation of a step, when it restored by switching.
    devices: Mapped[list[str] | None] = mapped_column(ARRAY(String(120)))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TroubleCall(Base):
    """A customer's report of no power, by account number, phone or a point on the map."""

    __tablename__ = "trouble_calls"
    __table_args__ = (CheckConstraint(_one_of("way", CALL_WAYS), name="call_way_known"),
                      Index("ix_trouble_calls_active", "section_key", "received_at",
                            postgresql_where=text("cleared_at IS NULL")),
                      Index("ix_trouble_calls_waiting", "section_key", postgresql_where=text("settled_at IS NULL")))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # What the caller gets to follow the outage (random, unguessable).
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    service_point_id: Mapped[int] = mapped_column(ForeignKey("service_points.id", ondelete="CASCADE"), index=True)
    way: Mapped[str] = mapped_column(String(10))
    wire_down: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    partial_power: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    flickering: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    note: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(10))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("outages.id", ondelete="SET NULL"), index=True)
    # The supply edge of the caller's radial section when it arrived: the prediction's work unit.
    section_key: Mapped[str | None] = mapped_column(String(120))
    # Explained by a restoration (a later power-restored, or the outage restored): no longer reporting.
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a settling took it (NULL: waiting to be settled; outages/settle.py).
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the service point is (copied when the call comes in), for the dispatcher's map.
    geom: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))


class MeterEvent(Base):
    """A smart meter's last gasp or power-restored message; stored once per event id."""

    __tablename__ = "meter_events"
    __table_args__ = (CheckConstraint(_one_of("kind", METER_EVENT_KINDS), name="meter_event_kind_known"),
                      Index("ix_meter_events_active", "section_key", "occurred_at",
                            postgresql_where=text("cleared_at IS NULL")),
                      Index("ix_meter_events_waiting", "section_key", postgresql_where=text("settled_at IS NULL")))

    event_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    service_point_id: Mapped[int] = mapped_column(ForeignKey("service_points.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    section_key: Mapped[str | None] = mapped_column(String(120))
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("outages.id", ondelete="SET NULL"), index=True)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a settling took it (NULL: waiting to be settled; outages/settle.py).
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CrewAssignment(Base):
    """A crew sent to an outage, until released; at most one open assignment per crew and per outage."""

    __tablename__ = "crew_assignments"
    __table_args__ = (
        Index("uq_crew_assignment_open_crew", "crew_id", unique=True, postgresql_where=text("released_at IS NULL")),
        Index("uq_crew_assignment_open_outage", "outage_id", unique=True,
              postgresql_where=text("released_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id", ondelete="CASCADE"), index=True)
    outage_id: Mapped[int] = mapped_column(ForeignKey("outages.id", ondelete="CASCADE"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    assigned_by: Mapped[str | None] = mapped_column(String(120))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[str | None] = mapped_column(String(120))


class Subscription(Base):
    """A customer's request for outage messages by SMS, e-mail or webhook, for one account (service
    point) or one grid cell, in a language; used only once the code sent to the address is confirmed.

    ``reference`` is what the subscriber gets back to confirm with; ``token`` travels only in the
    messages sent to the address (its unsubscribe link). At most one live subscription per address
    and target (a unique index on expressions, migration 0015): subscribing again sends a new code.
    """

    __tablename__ = "outage_subscriptions"
    __table_args__ = (
        CheckConstraint(_one_of("channel", SUBSCRIPTION_CHANNELS), name="subscription_channel_known"),
        CheckConstraint(_one_of("language", SUBSCRIPTION_LANGUAGES), name="subscription_language_known"),
        CheckConstraint("(service_point_id IS NULL) <> (cell_code IS NULL)", name="subscription_one_target"),
        Index("ix_subscriptions_service_point", "service_point_id",
              postgresql_where=text("confirmed_at IS NOT NULL AND unsubscribed_at IS NULL")),
        Index("ix_subscriptions_cell", "cell_code",
              postgresql_where=text("confirmed_at IS NOT NULL AND unsubscribed_at IS NULL")),
        Index("ux_subscriptions_live", "channel", "address", text("coalesce(service_point_id, 0)"),
              text("coalesce(cell_code, '')"), unique=True, postgresql_where=text("unsubscribed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(10))
    address: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(5), default="en", server_default="en")
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_points.id", ondelete="CASCADE"))
    # The account number as given (shown masked): the subscriber's own words, read without topology.
    account_number: Mapped[str | None] = mapped_column(String(40))
    # A grid cell's code (geo's polygons; no foreign key: a cell may be redrawn or retired).
    cell_code: Mapped[str | None] = mapped_column(String(40))
    # sha256 of the code sent to the address; the code itself is never stored.
    code_hash: Mapped[str] = mapped_column(String(64))
    codes_sent: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Wrong codes tried against the latest code: a few, then a new code must be asked for.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    code_sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
