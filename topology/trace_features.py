"""The elements of trace results and of the supply state as GeoJSON, built in SQL.

A trace names its elements by code in *parts*: ``(element, role, codes)`` with ``element`` one
of segment, device or service_point; each becomes a feature with its ``role`` as a property.
"""
from __future__ import annotations

from dataclasses import replace

from sqlalchemy import ARRAY, BigInteger, String, any_, bindparam, literal, null, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from geo.geojson import FeatureCollection, feature_collection
from geo.spatial import BBox, in_bbox
from topology import trace
from topology.index import Topology
from topology.layers import in_zone
from topology.trace import Part
from topology.models import Device, Segment, ServicePoint

__all__ = ["trace_features", "deenergised_features"]

_TABLES = {"segment": Segment.__table__, "device": Device.__table__, "service_point": ServicePoint.__table__}
_EMPTY = FeatureCollection("", 0, 0, truncated=False)


def _identity(element: str) -> list[ColumnElement]:
    """A feature's ``id`` and ``geom`` columns, then its ``element`` property."""
    table = _TABLES[element]
    return [table.c.code.label("id"), table.c.geom.label("geom"), literal(element).label("element")]


def _code_and_kind(element: str) -> list[ColumnElement]:
    """The ``code`` and ``kind`` properties (a device's kind; null for the others)."""
    table = _TABLES[element]
    kind = table.c.kind if element == "device" else null()
    return [table.c.code.label("code"), kind.label("kind")]


def _collection(connection: Connection, selects: list[Select], limit: int) -> FeatureCollection:
    """The features of the union of ``selects``, at most ``limit`` (an empty collection without any)."""
    return feature_collection(connection, union_all(*selects), limit) if selects else _EMPTY


def trace_features(connection: Connection, parts: list[Part], limit: int) -> FeatureCollection:
    """A FeatureCollection of elements given as (element, role, codes); ``role`` becomes a property.

    Past ``limit`` elements only the first ``limit`` are looked up (a trace of a whole
    network names millions); ``numberMatched`` still counts them all.
    """
    matched, room, kept = sum(len(codes) for _, _, codes in parts), limit, []
    for element, role, codes in parts:
        kept.append((element, role, codes[:room]))
        room -= len(kept[-1][2])
    selects = [
        select(*_identity(element), literal(role).label("role"), *_code_and_kind(element))
        .where(_TABLES[element].c.code == any_(bindparam(f"codes_{number}", codes, type_=ARRAY(String))))
        for number, (element, role, codes) in enumerate(kept) if codes
    ]
    collection = _collection(connection, selects, limit)
    if selects and matched > collection.number_matched:
        return replace(collection, number_matched=matched, truncated=True)
    return collection


def deenergised_features(connection: Connection, topology: Topology, bbox: BBox | None,
                         limit: int, feeders: frozenset[str] | None = None) -> FeatureCollection:
    """The segments, devices and service points without supply in ``bbox``, at most ``limit``
    (only those on ``feeders``: a dispatcher's control zone)."""
    dead = trace.deenergised(topology)
    selects = []
    for element, ids in (("segment", dead.segment_ids), ("device", dead.device_ids),
                         ("service_point", dead.service_point_ids)):
        if len(ids):
            table = _TABLES[element]
            selects.append(
                select(*_identity(element), *_code_and_kind(element), table.c.in_service.label("in_service"))
                .where(table.c.id == any_(bindparam(f"ids_{element}", ids.tolist(), type_=ARRAY(BigInteger))),
                       in_bbox(table.c.geom, bbox), in_zone(table, feeders)))
    return _collection(connection, selects, limit)
