"""What anyone may know about outages: the open feed (current outages as coarse areas, closed ones
with their customer-minutes), the grid cells' totals the public map draws, and the feed's version
that its ETag and the map's refresh follow. Nothing here names a customer or places one.

The coarse area (docs/open-feed.md): an outage with fewer than ``min_customers`` customers out
has no area of its own (its geometry is null; it counts in its grid cells' totals). Otherwise its
frozen outline (a hull of its affected customers, outages.lifecycle.freeze) is buffered by
``buffer_m`` and replaced by the squares of a fixed ``grid_m`` grid it touches (Web Mercator
squares aligned to the projection's origin, sized by the outline's latitude so a side is about
``grid_m`` on the ground), joined into one outline. Every corner lies on the grid, at least
``buffer_m`` beyond the outermost affected customer, so the outline says where at least
``min_customers`` customers are out to within a square, never where any one of them lives.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.cells import CELL_POLYGONS, contents, revision
from geo.errors import NotFound
from geo.i18n import _
from outages.cells import cells_of_open_outages
from outages.settings import number_setting

__all__ = ["PublicSettings", "public_settings", "feed_version", "current_outages", "public_outage", "cell_totals",
           "closed_outages", "MAX_HISTORY_DAYS"]

MAX_HISTORY_DAYS = 366


@dataclass(frozen=True)
class PublicSettings:
    """How coarse the published areas are: no area below ``min_customers`` customers out; squares of
    ``grid_m`` metres around the outline buffered by ``buffer_m`` metres."""

    min_customers: int = 5
    grid_m: float = 250.0
    buffer_m: float = 100.0


def public_settings(config: Mapping) -> PublicSettings:
    """``PUBLIC_AREA_MIN_CUSTOMERS``, ``PUBLIC_AREA_GRID_M`` and ``PUBLIC_AREA_BUFFER_M`` from
    ``config`` (else the environment; else the defaults). The grid and the threshold never go
    below 50 m and 2 customers: a setting cannot publish where one customer lives."""
    default = PublicSettings()
    return PublicSettings(max(2, number_setting(config, "PUBLIC_AREA_MIN_CUSTOMERS", default.min_customers, int)),
                          max(50.0, number_setting(config, "PUBLIC_AREA_GRID_M", default.grid_m)),
                          max(0.0, number_setting(config, "PUBLIC_AREA_BUFFER_M", default.buffer_m)))


# What the feed shows of an open outage changes only with these columns (every change to an
# outage sets updated_at; a crew's status sets its status_at), so their digest over the open
# outages is the feed's version: one read of the open outages' partial index, no building.
_VERSION = text("""
SELECT md5(coalesce(string_agg(concat_ws('|', o.id, o.updated_at, o.state, o.customers_out, o.etr, w.status,
                                         w.status_at), ',' ORDER BY o.id), '')) AS digest,
       count(*) AS open, max(o.updated_at) AS changed
  FROM outages o LEFT JOIN crews w ON w.id = o.crew_id WHERE o.state NOT IN ('restored', 'cancelled')
""")


def feed_version(connection: Connection, settings: PublicSettings) -> tuple[str, datetime | None]:
    """(the version of the public outage data, when an open outage last changed): the version
    changes with any open outage, a crew's status, the grid cells and the publishing rule."""
    row = connection.execute(_VERSION).one()
    cells = revision(connection)
    seed = f"{row.digest}:{row.open}:{cells[0]}:{cells[1]}:{settings}"
    return hashlib.sha1(seed.encode()).hexdigest()[:20], row.changed


# The public columns of an outage and its coarse area (see the module's docstring). Crew states
# are the outage's own; crew_status is the crew's (assigned, en_route, on_site).
_PUBLIC = """
WITH chosen AS (
  SELECT o.id, o.code, o.state, o.origin, o.cause, o.started_at, o.restored_at, o.momentary, o.etr, o.etr_source,
         o.customers_affected, o.customers_out, o.planned_start, o.planned_end, o.updated_at,
         w.status AS crew_status, o.area, {counted} AS counted
    FROM outages o LEFT JOIN crews w ON w.id = o.crew_id WHERE {where}),
placed AS (
  SELECT chosen.*, CASE WHEN chosen.counted >= :min_customers AND chosen.area IS NOT NULL THEN (
           SELECT ST_Transform(ST_SetSRID(ST_Union(square.geom), 3857), 4326)
             FROM (SELECT ST_Buffer(ST_Transform(chosen.area, 3857), :buffer_m / f.scale) AS outline, f.scale
                     FROM (SELECT cos(radians(ST_Y(ST_Centroid(chosen.area)))) AS scale) f) b,
                  ST_SquareGrid(:grid_m / b.scale, b.outline) AS square
            WHERE ST_Intersects(square.geom, b.outline)) END AS coarse
    FROM chosen)
SELECT code, state, origin, cause, started_at, restored_at, momentary, etr, etr_source, customers_affected,
       customers_out, planned_start, planned_end, updated_at, crew_status, {extra}
       CAST(ST_AsGeoJSON(coarse, 5) AS json) AS geometry,
       CAST(ST_AsGeoJSON(ST_PointOnSurface(coarse), 5) AS json) AS marker
  FROM placed ORDER BY {order}
"""
_OPEN = "o.state NOT IN ('restored', 'cancelled') AND (o.planned_start IS NULL OR o.planned_start <= now())"
_CURRENT = text(_PUBLIC.format(counted="o.customers_out", where=_OPEN, extra="", order="customers_out DESC, code"))
_ONE = text(_PUBLIC.format(counted="CASE WHEN o.state IN ('restored', 'cancelled') THEN o.customers_affected "
                                   "ELSE o.customers_out END", where="o.code = :code", extra="", order="code"))
# Customer-minutes: each restoration step's customers times the minutes since the outage began
# (a transition to restored gives back the rest as a last step, outages.lifecycle).
_CLOSED = text(_PUBLIC.format(
    counted="o.customers_affected",
    where="o.state = 'restored' AND o.restored_at >= :start AND o.restored_at < :end",
    extra="(SELECT CAST(coalesce(round(sum(s.customer_count * extract(epoch FROM s.occurred_at - o2.started_at) / 60.0)), 0) AS float8) "
          "FROM outage_steps s JOIN outages o2 ON o2.id = s.outage_id WHERE o2.code = placed.code "
          "AND s.kind = 'restored') AS customer_minutes,",
    order="restored_at, code") + " LIMIT :limit")
_PROPERTIES = ("code", "state", "origin", "cause", "started_at", "etr", "etr_source", "customers_out",
               "customers_affected", "crew_status", "planned_start", "planned_end", "updated_at")


def _values(settings: PublicSettings, **more) -> dict:
    return {"min_customers": settings.min_customers, "grid_m": settings.grid_m, "buffer_m": settings.buffer_m,
            **more}


def _feature(row, names: tuple[str, ...], cells: list[str] | None = None) -> dict:
    """A row as a GeoJSON Feature: the coarse area (null below the threshold) and public properties."""
    properties = {name: getattr(row, name) for name in names}
    properties["status"] = public_status(row.state)
    properties["marker"] = row.marker["coordinates"] if row.marker else None
    if cells is not None:
        properties["cells"] = cells
    return {"type": "Feature", "id": row.code, "geometry": row.geometry, "properties": properties}


def public_status(state: str) -> str:
    """What an outage's state means to a customer.

    >>> [public_status(s) for s in ("predicted", "confirmed", "en_route", "restored")]
    ['investigating', 'out', 'out', 'restored']
    """
    return {"predicted": "investigating", "restored": "restored", "cancelled": "cancelled"}.get(state, "out")


def current_outages(connection: Connection, settings: PublicSettings) -> dict:
    """The open outages (planned ones from their start) as a FeatureCollection of coarse areas, each
    with the grid cells it has customers out in."""
    held = contents(connection)
    cells = {code: sorted(counter) for code, counter in _outage_cells(connection, held).items()}
    rows = connection.execute(_CURRENT, _values(settings)).all()
    return {"type": "FeatureCollection", "features": [_feature(row, _PROPERTIES, cells.get(row.code, []))
                                                     for row in rows]}


def public_outage(connection: Connection, code: str, settings: PublicSettings) -> dict:
    """One outage by its public reference (its code) as a Feature; NotFound when there is none."""
    row = connection.execute(_ONE, _values(settings, code=code)).first()
    if row is None:
        raise NotFound(_("no outage %(code)s", code=code))
    return _feature(row, (*_PROPERTIES, "restored_at", "momentary"))


def closed_outages(connection: Connection, start: datetime, end: datetime, settings: PublicSettings,
                   limit: int) -> dict:
    """Outages restored in [``start``, ``end``), oldest first, with their customer-minutes."""
    rows = connection.execute(_CLOSED, _values(settings, start=start, end=end, limit=limit + 1)).all()
    names = ("code", "origin", "cause", "started_at", "restored_at", "momentary", "customers_affected",
             "customer_minutes", "planned_start", "planned_end")
    features = [_feature(row, names) for row in rows[:limit]]
    for feature in features:
        for name in ("status", "marker"):
            feature["properties"].pop(name)
    return {"type": "FeatureCollection", "features": features, "truncated": len(rows) > limit}


def _outage_cells(connection: Connection, held) -> dict[str, Counter]:
    """{outage code: Counter(cell -> customers out)} of the open outages."""
    found = cells_of_open_outages(connection, held)
    codes = dict(connection.execute(text("SELECT id, code FROM outages WHERE id = ANY(:ids)"),
                                    {"ids": list(found)}).all()) if found else {}
    return {codes[outage]: counter for outage, counter in found.items()}


_CELLS = text(f"""
SELECT cells.code, cells.name, CAST(ST_AsGeoJSON(cells.geom, 5) AS json) AS geometry,
       CAST(ST_AsGeoJSON(ST_PointOnSurface(cells.geom), 5) AS json) AS marker
  FROM {CELL_POLYGONS} cells WHERE cells.code = ANY(:codes) ORDER BY cells.code
""")
_OUTAGE_FACTS = text("SELECT o.code, o.cause, o.etr, o.state, w.status AS crew_status FROM outages o "
                     "LEFT JOIN crews w ON w.id = o.crew_id WHERE o.code = ANY(:codes) AND " + _OPEN)


def cell_totals(connection: Connection) -> dict:
    """The grid cells with customers out now, as a FeatureCollection: each cell's outline and
    name, customers out, outages, the earliest ETR, and the causes and crew statuses of its outages."""
    per_outage = _outage_cells(connection, contents(connection))
    facts = {row.code: row for row in connection.execute(_OUTAGE_FACTS, {"codes": list(per_outage)})}
    totals: dict[str, dict] = {}
    for code, counter in per_outage.items():
        fact = facts.get(code)
        if fact is None:
            continue  # a planned outage not begun yet
        for cell, customers in counter.items():
            total = totals.setdefault(cell, {"customers_out": 0, "outages": 0, "etr": None, "causes": Counter(),
                                             "crew_statuses": Counter(), "investigating": 0})
            total["customers_out"] += customers
            total["outages"] += 1
            total["investigating"] += fact.state == "predicted"
            total["causes"][fact.cause] += 1
            total["crew_statuses"][fact.crew_status or "none"] += 1
            if fact.etr is not None and (total["etr"] is None or fact.etr < total["etr"]):
                total["etr"] = fact.etr
    features = []
    for row in connection.execute(_CELLS, {"codes": list(totals)}):
        total = totals[row.code]
        properties = {"code": row.code, "name": row.name, **total, "causes": dict(total["causes"]),
                      "crew_statuses": dict(total["crew_statuses"]),
                      "marker": row.marker["coordinates"] if row.marker else None}
        features.append({"type": "Feature", "id": row.code, "geometry": row.geometry, "properties": properties})
    return {"type": "FeatureCollection", "features": features}


def etag_of(body: dict) -> str:
    """A strong validator of a JSON body (for answers whose version is not known in advance)."""
    return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:20]
