"""The electrical network in PostGIS (SRID 4326).

Nodes are connection points; segments (conductors) and devices (breakers, reclosers,
switches, fuses, transformers) are the edges between them. Sources are the nodes fed by a
substation or an external grid; service points (customers) hang on LV nodes. Every element
has a unique external ``code`` (``pp:<table>:<index>`` for pandapower imports). Elements with a
place say whether it is ``schematic`` (laid out from the graph) rather than geographic.
"""
from __future__ import annotations

import enum
from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, DateTime, Enum, Float, ForeignKey, Integer, String, Text,
    func,
)
from sqlalchemy import Index, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from geo.db import Base

__all__ = [
    "NodeKind", "DeviceKind", "SWITCHGEAR", "PROTECTIVE", "SwitchState", "SourceKind",
    "Substation", "Feeder", "Node", "Segment", "Device", "Source", "TransformerArea",
    "ServicePoint", "TopologyState", "SwitchingEvent", "SegmentOverview", "NETWORK_TABLES", "DEVICES_FAR_OUT",
]

SRID = 4326


class NodeKind(str, enum.Enum):
    busbar = "busbar"
    pole = "pole"
    junction = "junction"
    lv = "lv"


class DeviceKind(str, enum.Enum):
    breaker = "breaker"
    recloser = "recloser"
    switch = "switch"
    fuse = "fuse"
    transformer = "transformer"


# The devices that can be operated (opened and closed), and those that interrupt a fault themselves.
SWITCHGEAR = tuple(kind.value for kind in DeviceKind if kind is not DeviceKind.transformer)
PROTECTIVE = (DeviceKind.breaker.value, DeviceKind.recloser.value, DeviceKind.fuse.value)


# The devices a map shows before fuses and transformers (nine in ten) appear: topology/tiles.py's
# far-out tiles filter with this predicate too, so that PostgreSQL uses the partial index.
DEVICES_FAR_OUT = "(kind IN ('breaker', 'recloser', 'switch') OR current_state = 'open')"


class SwitchState(str, enum.Enum):
    open = "open"
    closed = "closed"


class SourceKind(str, enum.Enum):
    substation = "substation"
    ext_grid = "ext_grid"
    generator = "generator"


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    return Enum(kind, name=name, values_callable=lambda e: [m.value for m in e])


def _geometry(kind: str) -> Geometry:
    return Geometry(kind, srid=SRID, spatial_index=True)


def _schematic_flag():
    """True where the element's place comes from a schematic layout of the graph (a pandapower
    net without coordinates, docs/data-format.md), not from where it is."""
    return mapped_column(Boolean, default=False, server_default="false")


class Substation(Base):
    __tablename__ = "substations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    geom: Mapped[WKBElement] = mapped_column(_geometry("POINT"))
    schematic: Mapped[bool] = _schematic_flag()

    feeders: Mapped[list["Feeder"]] = relationship(back_populates="substation")


class Feeder(Base):
    __tablename__ = "feeders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    substation_id: Mapped[int | None] = mapped_column(ForeignKey("substations.id", ondelete="RESTRICT"), index=True)
    voltage_kv: Mapped[float | None] = mapped_column(Float)
    # What the feeder may carry at its head (its breaker, cable and busbar share), for restoration plans.
    rating_kva: Mapped[float | None] = mapped_column(Float)

    substation: Mapped[Substation | None] = relationship(back_populates="feeders")


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[NodeKind] = mapped_column(_enum(NodeKind, "node_kind"), default=NodeKind.junction)
    voltage_kv: Mapped[float | None] = mapped_column(Float)
    feeder_id: Mapped[int | None] = mapped_column(ForeignKey("feeders.id", ondelete="RESTRICT"), index=True)
    in_service: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    geom: Mapped[WKBElement] = mapped_column(_geometry("POINT"))
    schematic: Mapped[bool] = _schematic_flag()


class Segment(Base):
    """A conductor between two nodes."""

    __tablename__ = "segments"
    __table_args__ = (
        CheckConstraint("from_node_id <> to_node_id", name="segment_not_a_loop"),
        CheckConstraint("length_m >= 0", name="segment_length_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    from_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="RESTRICT"), index=True)
    to_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="RESTRICT"), index=True)
    feeder_id: Mapped[int | None] = mapped_column(ForeignKey("feeders.id", ondelete="RESTRICT"), index=True)
    length_m: Mapped[float] = mapped_column(Float)
    conductor: Mapped[str | None] = mapped_column(String(120))
    ampacity_a: Mapped[float | None] = mapped_column(Float)  # the conductor's continuous current rating
    in_service: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    geom: Mapped[WKBElement] = mapped_column(_geometry("LINESTRING"))
    schematic: Mapped[bool] = _schematic_flag()


class Device(Base):
    """A two-terminal device: it conducts only when in service and (for switchgear) closed."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("from_node_id <> to_node_id", name="device_not_a_loop"),
        # The devices vector tiles show far out (topology/tiles.py): one in ten of them.
        Index("idx_devices_geom_far", "geom", postgresql_using="gist",
              postgresql_where=text(DEVICES_FAR_OUT)),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[DeviceKind] = mapped_column(_enum(DeviceKind, "device_kind"))
    name: Mapped[str | None] = mapped_column(String(200))
    from_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="RESTRICT"), index=True)
    to_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="RESTRICT"), index=True)
    feeder_id: Mapped[int | None] = mapped_column(ForeignKey("feeders.id", ondelete="RESTRICT"), index=True)
    normal_state: Mapped[SwitchState] = mapped_column(_enum(SwitchState, "switch_state"), default=SwitchState.closed)
    current_state: Mapped[SwitchState] = mapped_column(_enum(SwitchState, "switch_state"), default=SwitchState.closed)
    in_service: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    rated_kva: Mapped[float | None] = mapped_column(Float)
    geom: Mapped[WKBElement] = mapped_column(_geometry("POINT"))
    schematic: Mapped[bool] = _schematic_flag()


class Source(Base):
    """A node fed from outside the modelled network (substation transformer, external grid)."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[SourceKind] = mapped_column(_enum(SourceKind, "source_kind"), default=SourceKind.substation)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="RESTRICT"), index=True)
    substation_id: Mapped[int | None] = mapped_column(ForeignKey("substations.id", ondelete="RESTRICT"))
    in_service: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")


class TransformerArea(Base):
    """The LV area a distribution transformer feeds."""

    __tablename__ = "transformer_areas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    transformer_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="RESTRICT"), unique=True)
    geom: Mapped[WKBElement | None] = mapped_column(_geometry("POLYGON"), nullable=True)


class ServicePoint(Base):
    """A customer's connection: an account at an address, hanging on an LV node."""

    __tablename__ = "service_points"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    account_number: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(Text)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="RESTRICT"), index=True)
    transformer_area_id: Mapped[int | None] = mapped_column(
        ForeignKey("transformer_areas.id", ondelete="RESTRICT"), index=True
    )
    demand_kw: Mapped[float | None] = mapped_column(Float)  # the customer's peak demand, for restoration plans
    in_service: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    geom: Mapped[WKBElement] = mapped_column(_geometry("POINT"))
    schematic: Mapped[bool] = _schematic_flag()


class TopologyState(Base):
    """One row: the topology version every import or switching operation bumps."""

    __tablename__ = "topology_state"
    __table_args__ = (CheckConstraint("id = 1", name="topology_state_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The version segment_overview was built at (None: never); topology/tiles.py rebuilds it when
    # something other than switching (an import) has changed the network since.
    overview_version: Mapped[int | None] = mapped_column(BigInteger)


class SwitchingEvent(Base):
    """One device operated (append-only): what changed, who did it, when and why.

    The devices of one atomic operation share an ``operation_id``.
    """

    __tablename__ = "switching_events"
    __table_args__ = (
        CheckConstraint("action IN ('open', 'close')", name="switching_event_action"),
        CheckConstraint("from_state IN ('open', 'closed') AND to_state IN ('open', 'closed') "
                        "AND from_state <> to_state", name="switching_event_changes_state"),
        CheckConstraint("btrim(reason) <> ''", name="switching_event_has_reason"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    operation_id: Mapped[str] = mapped_column(String(36), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="RESTRICT"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(120))
    # Worker processes catch up with the operations recorded since their cached version.
    topology_version: Mapped[int] = mapped_column(BigInteger, index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


class SegmentOverview(Base):
    """The segments of one feeder at one level (mv, lv) as one generalised MultiLineString in Web
    Mercator (SRID 3857), for the vector tiles of the whole city (topology/tiles.py): derived from
    ``segments``, rebuilt after an import, never edited."""

    __tablename__ = "segment_overview"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    feeder_id: Mapped[int | None] = mapped_column(BigInteger)  # no foreign key: an import replaces feeders first
    level: Mapped[str] = mapped_column(String(2))
    geom: Mapped[WKBElement] = mapped_column(Geometry("MULTILINESTRING", srid=3857, spatial_index=True))


# In dependency order: a table's references point only at tables before it.
NETWORK_TABLES = (Substation, Feeder, Node, Segment, Device, Source, TransformerArea, ServicePoint)
