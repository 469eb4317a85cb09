"""Spatial clause builders: small functions that return SQL expressions, composed in one ``select()``.

Everything a user sends stays a bind parameter; no SQL is formatted from strings.
"""
from __future__ import annotations

from typing import NamedTuple

from geoalchemy2 import Geography
from sqlalchemy import Float, func, true
from sqlalchemy.sql import ColumnElement

__all__ = ["SRID", "BBox", "envelope", "in_bbox", "point", "geography", "geodesic_distance_m", "knn_order"]

SRID = 4326


class BBox(NamedTuple):
    """A longitude/latitude box in degrees (SRID 4326), in the order of RFC 7946 and OGC API."""

    west: float
    south: float
    east: float
    north: float


def envelope(bbox: BBox) -> ColumnElement:
    """``ST_MakeEnvelope(west, south, east, north, 4326)`` with bound parameters."""
    return func.ST_MakeEnvelope(bbox.west, bbox.south, bbox.east, bbox.north, SRID)


def in_bbox(geom: ColumnElement, bbox: BBox | None) -> ColumnElement:
    """``ST_Intersects(geom, envelope)`` (answered from the GiST index); always true without a bbox."""
    if bbox is None:
        return true()
    return func.ST_Intersects(geom, envelope(bbox))


def point(lon, lat) -> ColumnElement:
    """A WGS 84 point from two values or bound parameters."""
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)


def geography(geom: ColumnElement) -> ColumnElement:
    """``geom::geography``: distances in metres on the WGS 84 spheroid.

    Written as the cast function, not ``CAST(... AS geography(GEOMETRY,-1))`` as GeoAlchemy2's
    type renders it: that type modifier makes the expression differ from the KNN index's.
    """
    return func.geography(geom, type_=Geography)


def geodesic_distance_m(geom: ColumnElement, other: ColumnElement) -> ColumnElement:
    """The geodesic (spheroidal) distance in metres between two WGS 84 geometries."""
    return func.ST_Distance(geography(geom), geography(other), True, type_=Float)


def knn_order(geom: ColumnElement, other: ColumnElement) -> ColumnElement:
    """KNN ordering on a ``(geom::geography)`` GiST index: nearest first by sphere distance."""
    return geography(geom).op("<->", return_type=Float)(geography(other))
