"""The network's OGC API - Features collections (geo/features.py serves them).

Segments, devices, transformer areas and service points are the map's layers
(``topology.layers.LAYERS``) as they are; feeders are one feature each, the MultiLineString of
their segments, so that a planner sees a feeder's whole run as one thing to select and style.
Service points carry account numbers and addresses: only the roles that see the map's
customers (``NETWORK_READERS``) may read them, and a dispatcher only inside his control zone.
Every collection's extent is the whole network's, computed once per topology version.
"""
from __future__ import annotations

from sqlalchemy import Numeric, cast, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from geo import features
from geo.auth import NETWORK_READERS, PUBLIC, control_feeders
from geo.spatial import BBox, in_bbox
# The map's palette, so a feeder has the same colour in QGIS as on the network map.
from topology.layers import LAYERS, Filters, feeder_colour, network_overview
from topology.models import Feeder, Segment, Substation

__all__ = ["register_collections", "feeders_query"]

_feeders, _segments, _substations = Feeder.__table__, Segment.__table__, Substation.__table__


def feeders_query(bbox: BBox | None) -> Select:
    """Each feeder with a segment in ``bbox``, as the MultiLineString of all its segments."""
    f, s, sub = _feeders, _segments, _substations
    # Per feeder, so that a feeder crossing the box's edge comes whole, not cut at the edge.
    run = (select(func.ST_Multi(func.ST_Collect(s.c.geom)).label("geom"), func.count().label("segments"),
                  func.round(cast(func.sum(s.c.length_m), Numeric), 1).label("length_m"))
           .where(s.c.feeder_id == f.c.id).lateral("run"))
    query = (
        select(f.c.code.label("id"), run.c.geom, f.c.code, f.c.name, sub.c.code.label("substation"), f.c.voltage_kv,
               feeder_colour(f.c.id).label("colour"), run.c.segments, run.c.length_m)
        .select_from(f.join(run, run.c.segments > 0).outerjoin(sub, sub.c.id == f.c.substation_id))
    )
    if bbox is not None:
        query = query.where(f.c.id.in_(select(s.c.feeder_id).where(in_bbox(s.c.geom, bbox))))
    return query


def _layer(name: str):
    """A map layer without filters as a collection's query."""
    return lambda bbox: LAYERS[name](bbox, Filters())


def _service_points(bbox: BBox | None) -> Select:
    """Service points, held to the signed-in dispatcher's control zone like the map's layer."""
    return LAYERS["service_points"](bbox, Filters(feeders=control_feeders()))


def _extent(connection: Connection) -> BBox | None:
    return network_overview(connection)[0]


_PUBLIC = frozenset({PUBLIC})
_COLLECTIONS = (
    ("feeders", "Feeders", "Each feeder as the MultiLineString of its segments, with its substation, "
     "voltage, map colour, segment count and length in metres.", _PUBLIC, feeders_query),
    ("segments", "Line segments", "Cables and overhead lines: feeder, voltage, conductor, length in metres, "
     "in service, schematic (a laid-out place, not a surveyed one).", _PUBLIC, _layer("segments")),
    ("devices", "Devices", "Breakers, switches, fuses, transformers and other devices: kind, feeder, voltage, "
     "normal and current state, rating.", _PUBLIC, _layer("devices")),
    ("transformer_areas", "Transformer areas", "The area each distribution transformer supplies.", _PUBLIC,
     _layer("transformer_areas")),
    ("service_points", "Service points", "Customers' service points with account numbers and addresses: "
     "for dispatchers and planners only.", frozenset(NETWORK_READERS), _service_points),
)


def register_collections() -> None:
    """Register the network's collections with geo's OGC API - Features registry."""
    for identifier, title, description, roles, query in _COLLECTIONS:
        features.register(features.Collection(identifier, title, description, roles, query, _extent))
