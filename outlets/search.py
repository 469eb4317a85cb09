"""The nearest outlets to a point (an address is resolved to one by geo.addresses).

PostGIS KNN (``<->`` on the ``(geom::geography)`` GiST index) streams candidates nearest
first; each gets its geodesic distance in metres and its opening state in its own zone. With
an "open at" filter the candidates come in growing batches until enough are open.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from sqlalchemy import Float, Integer, Select, String, bindparam, exists, select
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import Connection, Dialect

from geo.addresses import AddressMatch
from geo.errors import Invalid
from geo.i18n import _
from geo.spatial import geodesic_distance_m, knn_order, point
from outlets.hours import Opening
from outlets.models import SERVICES
from outlets.store import (
    OutletView, outlet_columns, outlets, phone_fields, services_table, view_from_row,
)

__all__ = ["nearest", "nearest_query", "nearest_parameters", "Origin", "NearbyOutlet", "travel_minutes", "directions",
           "MAX_RESULTS", "MAX_SCANNED"]

UTC = timezone.utc
MAX_RESULTS = 50
# An "open at" search looks at no more than this many nearest outlets before it gives up.
MAX_SCANNED = 5000
# Rough travel: straight-line distance times a detour factor, at a typical town speed.
WALK_M_PER_MIN, WALK_DETOUR = 80.0, 1.25      # 4.8 km/h
DRIVE_M_PER_MIN, DRIVE_DETOUR = 400.0, 1.35   # 24 km/h through town
DRIVE_PARKING_MIN = 3


def travel_minutes(distance_m: float) -> dict[str, int]:
    """Rough walking and driving times for a straight-line distance.

    >>> travel_minutes(800)
    {'walking_min': 13, 'driving_min': 6}
    """
    return {
        "walking_min": max(1, math.ceil(distance_m * WALK_DETOUR / WALK_M_PER_MIN)),
        "driving_min": max(1, math.ceil(distance_m * DRIVE_DETOUR / DRIVE_M_PER_MIN) + DRIVE_PARKING_MIN),
    }


def directions(outlet: OutletView, origin: tuple[float, float] | None, walking: bool) -> dict[str, str]:
    """Links that open directions in the user's map app (Google's universal link works on every
    platform; Apple Maps on iPhones; ``geo:`` on Android).

    >>> directions(OutletView(1, "A", "Centre & Co", "", None, "DE", "Europe/Berlin", 15, 8.4, 49.0, True,
    ...                       {}, None), (8.39, 49.01), walking=True)["url"]
    'https://www.google.com/maps/dir/?api=1&destination=49.000000,8.400000&travelmode=walking&origin=49.010000,8.390000'
    """
    destination = f"{outlet.lat:.6f},{outlet.lon:.6f}"
    google = f"https://www.google.com/maps/dir/?api=1&destination={destination}&travelmode={'walking' if walking else 'driving'}"
    apple = f"https://maps.apple.com/?daddr={destination}&dirflg={'w' if walking else 'd'}"
    if origin is not None:
        start = f"{origin[1]:.6f},{origin[0]:.6f}"
        google, apple = f"{google}&origin={start}", f"{apple}&saddr={start}"
    return {"url": google, "apple": apple, "geo": f"geo:{destination}?q={destination}({quote(outlet.name)})"}


def _open_at(outlet: OutletView, at: datetime) -> bool | None:
    """``at`` as an instant, or (naive) as a wall-clock time in the outlet's own zone."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=outlet.schedule.tz)
    return outlet.schedule.is_open(at)


@dataclass(frozen=True)
class Origin:
    """Where the customer is: a point, and the address it was found from, if any."""

    lon: float
    lat: float
    address: str | None = None
    source: str | None = None

    @classmethod
    def of(cls, match: AddressMatch) -> Origin:
        """The origin at a resolved address or place."""
        return cls(match.lon, match.lat, match.address, match.source)


@functools.cache
def nearest_query(with_service: bool = False) -> Select:
    """Active outlets nearest first from (``:lon``, ``:lat``) (KNN on the geography index), with
    their geodesic distance; ``:service`` keeps those offering it; ``:limit`` and ``:offset``
    page. Built once: a request only binds."""
    here = point(bindparam("lon", type_=Float), bindparam("lat", type_=Float))
    query = (select(*outlet_columns(), geodesic_distance_m(outlets.c.geom, here).label("distance_m"))
             .where(outlets.c.active)
             .order_by(knn_order(outlets.c.geom, here))
             .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)))
    if with_service:
        query = query.where(exists().where(services_table.c.outlet_id == outlets.c.id,
                                           services_table.c.service == bindparam("service", type_=String)))
    return query


@functools.lru_cache(maxsize=8)
def _compiled(with_service: bool, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """``nearest_query`` as the driver's SQL text with its constant parameters, compiled once."""
    compiled = nearest_query(with_service).compile(dialect=dialect)
    return str(compiled), {name: value for name, value in compiled.params.items() if value is not None}


def _fetch(connection: Connection, with_service: bool, parameters: dict[str, Any]) -> list[Any]:
    """The rows of ``nearest_query`` straight from the driver's cursor: the search's hot path,
    where SQLAlchemy's statement and result handling cost as much as the database (0.4 ms).
    Everything is still a bind parameter; a dropped connection surfaces as the driver's
    OperationalError (geo.db.read runs the search again)."""
    sql, constants = _compiled(with_service, connection.dialect)
    with connection.connection.driver_connection.cursor(row_factory=namedtuple_row) as cursor:
        cursor.execute(sql, {**constants, **parameters})
        return cursor.fetchall()


def nearest_parameters(origin: Origin, service: str | None = None) -> dict[str, Any]:
    """The values ``nearest_query`` binds for a search from ``origin``."""
    return {"lon": origin.lon, "lat": origin.lat, "service": service}


def nearest(connection: Connection, origin: Origin, now: datetime, n: int = 5, service: str | None = None,
            open_at: datetime | None = None) -> list[NearbyOutlet]:
    """The ``n`` nearest active outlets to ``origin``, nearest first (geodesic metres).

    ``service`` keeps outlets offering it; ``open_at`` keeps those open then, and those whose
    hours are unknown (shown as such). Complexity: O(log N + k) index work for k candidates.
    """
    if not 1 <= n <= MAX_RESULTS:
        raise Invalid(_("n must be 1..%(max_results)s", max_results=MAX_RESULTS), field="n")
    if service is not None and service not in SERVICES:
        raise Invalid(_("unknown service %(service)r (known: %(services)s)", service=service, services=', '.join(SERVICES)), field="service")
    parameters = nearest_parameters(origin, service)
    found: list[tuple[OutletView, float]] = []
    batch, seen = (n if open_at is None else max(4 * n, 32)), 0
    while True:
        rows = _fetch(connection, service is not None, {**parameters, "limit": batch, "offset": seen})
        for row in rows:
            outlet = view_from_row(row)
            if open_at is None or _open_at(outlet, open_at) is not False:
                found.append((outlet, row.distance_m))
                if len(found) == n:
                    break
        seen += len(rows)
        if len(found) == n or len(rows) < batch or seen >= MAX_SCANNED:
            break
        batch = min(batch * 4, MAX_SCANNED - seen)
    # KNN ranks by sphere distance; the reported spheroid distances can swap near-ties.
    found.sort(key=lambda item: item[1])
    return [_result(outlet, distance, origin, now, open_at) for outlet, distance in found]


@dataclass(frozen=True)
class NearbyOutlet:
    """One outlet as the nearest search found it: how far, open or not, how to get there."""

    outlet: OutletView
    distance_m: float
    opening: Opening
    travel: dict[str, int]
    directions: dict[str, str]
    # Whether it is open at the time the search asked about (None: hours unknown); absent
    # (``asked_open_at`` False) when the search asked about no time.
    open_at: bool | None = None
    asked_open_at: bool = False

    def as_dict(self) -> dict[str, Any]:
        """As the API shows it."""
        outlet = self.outlet
        result = {
            "code": outlet.code, "name": outlet.name, "address": outlet.address, **phone_fields(outlet.phone),
            "lon": round(outlet.lon, 7), "lat": round(outlet.lat, 7), "timezone": outlet.timezone,
            "services": list(outlet.services),
            "distance_m": round(self.distance_m, 1),
            **self.opening.as_dict(),
            "travel": self.travel,
            "directions": self.directions,
            "directions_url": self.directions["url"],
        }
        if self.asked_open_at:
            result["open_at"] = self.open_at
        return result


def _result(outlet: OutletView, distance_m: float, origin: Origin, now: datetime,
            open_at: datetime | None) -> NearbyOutlet:
    """One outlet as the nearest search reports it."""
    travel = travel_minutes(distance_m)
    return NearbyOutlet(outlet, distance_m, outlet.schedule.opening(now), travel,
                        directions(outlet, (origin.lon, origin.lat), walking=travel["walking_min"] <= 25),
                        _open_at(outlet, open_at) if open_at is not None else None, open_at is not None)
