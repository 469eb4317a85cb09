"""The outlets' OGC API - Features collection (geo/features.py serves it): the active outlets,
public as on the outlet finder, with what a planner would label or filter them by."""
from __future__ import annotations

from sqlalchemy import Text, cast, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from geo import features
from geo.auth import PUBLIC
from geo.spatial import BBox, in_bbox
from outlets.store import outlets, outlets_extent

__all__ = ["outlets_query", "register_collections"]


def outlets_query(bbox: BBox | None) -> Select:
    """The active outlets in ``bbox``; services as JSON text ({service: capacity}), since a
    GIS client reads a nested object as a string field anyway."""
    o = outlets
    return (select(o.c.code.label("id"), o.c.geom, o.c.code, o.c.name, o.c.address, o.c.phone, o.c.country,
                   o.c.timezone, o.c.slot_minutes, cast(o.c.service_capacities, Text).label("services"))
            .where(o.c.active, in_bbox(o.c.geom, bbox)))


def _extent(connection: Connection) -> BBox | None:
    box = outlets_extent(connection)
    return None if box is None else BBox(*box)


def register_collections() -> None:
    """Register the outlets with geo's OGC API - Features registry."""
    features.register(features.Collection(
        "outlets", "Service outlets", "Active customer-service outlets: name, address, phone, country, time zone, "
        "booking slot minutes and services with their capacities.", frozenset({PUBLIC}), outlets_query, _extent))
