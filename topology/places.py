"""What other packages ask of the network's tables: whose service point an account number, a
phone or a map point is; where an element is; the outline and the list of a set of customers.

``outages`` reads no network table itself (docs/architecture.md): it calls these functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import ARRAY, BigInteger, String, any_, bindparam, func, select, text, union_all
from sqlalchemy.engine import Connection

from geo.spatial import geodesic_distance_m, point
from topology.models import Device, ServicePoint
from topology.read import VERSION_COLUMNS

__all__ = ["CustomerRef", "CustomerDetail", "by_account", "by_phone", "nearest_customer", "element_points",
           "place_and_outline", "customer_details", "customer_codes"]

_sp = ServicePoint.__table__
_devices = Device.__table__
# How far a map point may lie from the service point it is snapped to.
SNAP_WITHIN_M = 250.0


@dataclass(frozen=True)
class CustomerRef:
    """A service point found for a caller: its id, code and place."""

    id: int
    code: str
    lon: float
    lat: float
    # The topology version the look-up's transaction saw, when the look-up read it along.
    topology_version: tuple | None = None


@dataclass(frozen=True)
class CustomerDetail:
    """A service point as a dispatcher sees it in an outage's customer list."""

    code: str
    account_number: str
    name: str | None
    address: str | None
    phone: str | None


def _refs(rows) -> list[CustomerRef]:
    return [CustomerRef(int(r.id), r.code, float(r.lon), float(r.lat)) for r in rows]


def _ref_columns():
    return _sp.c.id, _sp.c.code, func.ST_X(_sp.c.geom).label("lon"), func.ST_Y(_sp.c.geom).label("lat")


def by_account(connection: Connection, account_number: str) -> CustomerRef | None:
    """The in-service service point with this account number, or None (written as text: the
    look-up runs for every call, and building the select cost more than running it)."""
    rows = connection.execute(_BY_ACCOUNT, {"account": account_number}).all()
    if not rows:
        return None
    row = rows[0]
    return CustomerRef(int(row.id), row.code, float(row.lon), float(row.lat),
                       (int(row.topology_version), row.topology_changed_at))


# With the topology version: a call by account (most of a storm's) needs no statement of its own
# for it (an unknown account needs no topology: it is refused).
_BY_ACCOUNT = text(f"SELECT sp.id, sp.code, ST_X(sp.geom) AS lon, ST_Y(sp.geom) AS lat, {VERSION_COLUMNS} "
                   "FROM service_points sp WHERE sp.account_number = :account AND sp.in_service")


def by_phone(connection: Connection, phone: str, limit: int = 5) -> list[CustomerRef]:
    """The in-service service points whose phone is ``phone`` (E.164 spelling), at most ``limit``."""
    normal = func.regexp_replace(_sp.c.phone, "[^0-9+]", "", "g")
    return _refs(connection.execute(select(*_ref_columns()).where(
        normal == phone, _sp.c.in_service).order_by(_sp.c.id).limit(limit)).all())


def nearest_customer(connection: Connection, lon: float, lat: float,
                     within_m: float = SNAP_WITHIN_M) -> CustomerRef | None:
    """The in-service service point nearest to the point, if it lies within ``within_m`` metres."""
    here = point(lon, lat)
    row = connection.execute(select(*_ref_columns(), geodesic_distance_m(_sp.c.geom, here).label("metres"))
                             .where(_sp.c.in_service).order_by(_sp.c.geom.op("<->")(here)).limit(1)).first()
    if row is None or row.metres > within_m:
        return None
    return _refs([row])[0]


def element_points(connection: Connection, codes: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Where each device or service point of ``codes`` is: code -> (lon, lat)."""
    wanted = bindparam("codes", list(codes), type_=ARRAY(String))
    query = union_all(
        select(_devices.c.code, func.ST_X(_devices.c.geom), func.ST_Y(_devices.c.geom))
        .where(_devices.c.code == any_(wanted)),
        select(_sp.c.code, func.ST_X(_sp.c.geom), func.ST_Y(_sp.c.geom)).where(_sp.c.code == any_(wanted)))
    return {code: (float(x), float(y)) for code, x, y in connection.execute(query)}


def place_and_outline(connection: Connection, code: str, service_point_ids: Sequence[int],
                      buffer_m: float = 25.0) -> tuple[tuple[float, float] | None, str | None]:
    """Where the device or service point ``code`` is, and the outline of the customers (see
    ``outline``), in one query: placing an outage is part of every prediction under a storm."""
    ids = [int(i) for i in service_point_ids]
    row = connection.execute(_PLACE_AND_OUTLINE, {"code": code, "ids": ids, "buffer": buffer_m}).one()
    return ((float(row.lon), float(row.lat)) if row.lon is not None else None), row.outline


_PLACE_AND_OUTLINE = text("""
SELECT (SELECT ST_X(geom) FROM (SELECT geom FROM devices WHERE code = :code UNION ALL
                                SELECT geom FROM service_points WHERE code = :code LIMIT 1) AS p) AS lon,
       (SELECT ST_Y(geom) FROM (SELECT geom FROM devices WHERE code = :code UNION ALL
                                SELECT geom FROM service_points WHERE code = :code LIMIT 1) AS p) AS lat,
       (SELECT ST_AsEWKT(ST_Buffer(ST_ConvexHull(ST_Collect(geom)), :buffer / 111320.0, 4))
          FROM service_points WHERE id = ANY(CAST(:ids AS bigint[])) HAVING count(*) > 0) AS outline
""")
# The buffer is drawn in degrees (a metre is 1/111,320 of a degree of latitude, less of longitude
# away from the equator): an outline for the eye, at a tenth of the cost of buffering on the spheroid.


def customer_details(connection: Connection, service_point_ids: Sequence[int], limit: int) -> list[CustomerDetail]:
    """The customers of ``service_point_ids`` (at most ``limit``, by code) for a dispatcher."""
    ids = bindparam("ids", [int(i) for i in service_point_ids], type_=ARRAY(BigInteger))
    rows = connection.execute(select(_sp.c.code, _sp.c.account_number, _sp.c.name, _sp.c.address, _sp.c.phone)
                              .where(_sp.c.id == any_(ids)).order_by(_sp.c.code).limit(limit)).all()
    return [CustomerDetail(*row) for row in rows]


def customer_codes(connection: Connection, service_point_ids: Sequence[int]) -> list[str]:
    """The codes of ``service_point_ids``."""
    ids = bindparam("ids", [int(i) for i in service_point_ids], type_=ARRAY(BigInteger))
    return list(connection.execute(select(_sp.c.code).where(_sp.c.id == any_(ids))).scalars())

