"""What a dispatcher reads: the outages, calls and crews layers as GeoJSON (built in SQL), an
outage's detail with its timeline, steps, customers and calls, and the search box's answers."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import ARRAY, String, and_, any_, bindparam, func, literal, or_, select, text
from sqlalchemy.engine import Connection

from geo.addresses import suggest_addresses
from geo.geojson import FeatureCollection, feature_collection
from geo.spatial import BBox, in_bbox
from outages import lifecycle
from outages.models import Crew, CrewAssignment, Outage, TroubleCall
from topology import places
from topology.index import Topology

__all__ = ["outage_layer", "call_layer", "crew_layer", "OutageDetail", "outage_detail", "search", "Found",
           "OUTAGE_STATES_SHOWN"]

_o, _c, _w, _a = Outage.__table__, TroubleCall.__table__, Crew.__table__, CrewAssignment.__table__
OUTAGE_STATES_SHOWN = ("open", "all", "recent")
# How many of the customers of each step an outage's detail names.
STEP_CUSTOMERS = 100


def _in_zone(column, feeders: frozenset[str] | None):
    """Rows of a zoned dispatcher's feeders only (None: everywhere)."""
    if feeders is None:
        return literal(True)
    return column == any_(bindparam("zone", sorted(feeders), type_=ARRAY(String)))


def outage_layer(connection: Connection, bbox: BBox | None, limit: int, show: str = "open",
                 geometry: str = "point", feeders: frozenset[str] | None = None) -> FeatureCollection:
    """Outages as features at their device (``geometry="area"``: the outline of their customers).

    ``show``: ``open`` (default), ``recent`` (open, and closed in the last 24 hours) or ``all``.
    """
    crew = _w.alias("crew")
    parent = _o.alias("parent")
    geom = _o.c.geom if geometry == "point" else _o.c.area
    query = (select(_o.c.code.label("id"), geom.label("geom"), _o.c.code, _o.c.state, _o.c.origin, _o.c.device,
                    _o.c.device_kind, _o.c.feeder, _o.c.cause, _o.c.customers_affected, _o.c.customers_out,
                    _o.c.calls, _o.c.meter_reports, _o.c.etr, _o.c.etr_source, _o.c.etr_confidence,
                    crew.c.code.label("crew"), crew.c.status.label("crew_status"), _o.c.started_at,
                    _o.c.updated_at, _o.c.restored_at, _o.c.momentary, parent.c.code.label("parent"),
                    _o.c.planned_start, _o.c.planned_end)
             .select_from(_o.outerjoin(crew, crew.c.id == _o.c.crew_id).outerjoin(parent, parent.c.id == _o.c.parent_id))
             .where(in_bbox(geom, bbox), _in_zone(_o.c.feeder, feeders))
             .order_by(_o.c.customers_out.desc(), _o.c.started_at))
    if show == "open":
        query = query.where(_o.c.state.notin_(("restored", "cancelled")))
    elif show == "recent":
        query = query.where(or_(_o.c.state.notin_(("restored", "cancelled")),
                                _o.c.updated_at > func.now() - text("interval '24 hours'")))
    return feature_collection(connection, query, limit)


def call_layer(connection: Connection, bbox: BBox | None, limit: int, hours: int = 24) -> FeatureCollection:
    """The calls of the last ``hours`` at their service point: reference, details and outage (no caller data)."""
    outage = _o.alias("outage")
    query = (select(_c.c.reference.label("id"), _c.c.geom.label("geom"), _c.c.reference, _c.c.way, _c.c.wire_down,
                    _c.c.partial_power, _c.c.flickering, _c.c.received_at, outage.c.code.label("outage"),
                    (_c.c.cleared_at.is_(None)).label("active"))
             .select_from(_c.outerjoin(outage, outage.c.id == _c.c.outage_id))
             .where(in_bbox(_c.c.geom, bbox), _c.c.received_at > func.now() - func.make_interval(0, 0, 0, 0, hours))
             .order_by(_c.c.received_at.desc()))
    return feature_collection(connection, query, limit)


def crew_layer(connection: Connection, bbox: BBox | None, limit: int) -> FeatureCollection:
    """The crews at their last position (else their depot) with status and assignment."""
    outage = _o.alias("outage")
    assignment = _a.alias("assignment")
    where = func.coalesce(_w.c.geom, _w.c.depot_geom)
    query = (select(_w.c.code.label("id"), where.label("geom"), _w.c.code, _w.c.name, _w.c.status, _w.c.vehicle,
                    _w.c.skills, _w.c.position_at, _w.c.status_at, outage.c.code.label("outage"))
             .select_from(_w.outerjoin(assignment, and_(assignment.c.crew_id == _w.c.id,
                                                         assignment.c.released_at.is_(None)))
                          .outerjoin(outage, outage.c.id == assignment.c.outage_id))
             .where(in_bbox(where, bbox)).order_by(_w.c.code))
    return feature_collection(connection, query, limit)


@dataclass(frozen=True)
class OutageDetail:
    """An outage with its timeline, its steps, the first of its customers and its calls."""

    outage: lifecycle.OutageView
    timeline: list[dict]
    steps: list[dict]
    customers: list[dict]
    customers_listed: int
    calls: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"outage": self.outage.as_dict(), "timeline": self.timeline, "steps": self.steps,
                "customers": self.customers, "customers_listed": self.customers_listed, "calls": self.calls}


def outage_detail(connection: Connection, code: str, customer_limit: int = 200) -> OutageDetail:
    """The outage ``code`` in full (its customers still out first, at most ``customer_limit``)."""
    row = lifecycle.outage_by_code(connection, code)
    outage = lifecycle.view_of(row)
    timeline = [dict(r._mapping) for r in connection.execute(text(
        "SELECT kind, from_state, to_state, actor, note, data, occurred_at FROM outage_events "
        "WHERE outage_id = :id ORDER BY id"), {"id": row.id})]
    steps = [dict(r._mapping) for r in connection.execute(text(
        "SELECT number, kind, customer_count, actor, note, devices, occurred_at, customers[1:CAST(:n AS int)] "
        "AS customers FROM outage_steps WHERE outage_id = :id ORDER BY number"),
        {"id": row.id, "n": STEP_CUSTOMERS})]
    for step in steps:  # the customers each step froze, as codes (the first STEP_CUSTOMERS of them)
        step["customers"] = sorted(places.customer_codes(connection, step["customers"] or []))
    out = lifecycle.customers_out(connection, row.id)
    if not len(out) and outage.state in ("restored", "cancelled"):
        out = _latest_affected(connection, row.id)
    customers = [{**detail.__dict__, "out": outage.state not in ("restored", "cancelled")}
                 for detail in places.customer_details(connection, out, customer_limit)]
    calls = [dict(r._mapping) for r in connection.execute(text(
        "SELECT reference, way, wire_down, partial_power, flickering, note, received_at FROM trouble_calls "
        "WHERE outage_id = :id ORDER BY received_at DESC LIMIT 100"), {"id": row.id})]
    return OutageDetail(outage, timeline, steps, customers, len(out), calls)


def _latest_affected(connection: Connection, outage_id: int) -> np.ndarray:
    customers = connection.execute(text(
        "SELECT customers FROM outage_steps WHERE outage_id = :id AND kind = 'affected' ORDER BY number DESC LIMIT 1"),
        {"id": outage_id}).scalar()
    return np.asarray(customers or [], dtype=np.int64)


def outage_parts(topology: Topology, connection: Connection, code: str) -> list:
    """The outage's device and what it cuts off in the live state, for a map: (element, role, codes)."""
    from topology import trace

    row = lifecycle.outage_by_code(connection, code)
    if row.device_kind == "service":
        return [("service_point", "device", [row.device])]
    _element, loss = trace.downstream(topology, row.device)
    segments, devices = loss.edge_codes()
    return [("device", "device", [row.device]), ("segment", "affected", segments),
            ("device", "affected", [d for d in devices if d != row.device])]


@dataclass(frozen=True)
class Found:
    """A search answer: what it is, its code, a label and where."""

    kind: str
    code: str
    label: str
    lon: float | None
    lat: float | None

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def search(connection: Connection, topology: Topology, q: str, limit: int = 8) -> list[Found]:
    """Devices and outages by code, customers by account number, then addresses."""
    q = q.strip()
    found: list[Found] = []
    for row in connection.execute(text(
            "SELECT code, device, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM outages WHERE code = upper(:q)"),
            {"q": q}):
        found.append(Found("outage", row.code, f"{row.code} · {row.device}", row.lon, row.lat))
    data = topology.data
    for table, kind in (("devices", "device"), ("service_points", "service_point")):
        if data.find(table, [q])[0] >= 0:
            point = places.element_points(connection, [q]).get(q)
            found.append(Found(kind, q, q, *(point or (None, None))))
    customer = places.by_account(connection, q) if q.isdigit() else None
    if customer is not None:
        found.append(Found("account", customer.code, f"{q} · {customer.code}", customer.lon, customer.lat))
    if len(q) >= 3 and len(found) < limit:
        for match in suggest_addresses(connection, q, limit - len(found)):
            found.append(Found("address", match.address, match.address, match.lon, match.lat))
    return found[:limit]

