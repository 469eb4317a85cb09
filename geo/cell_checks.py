"""Checks on a grid cell's polygon, before any save: the shape itself (shapely), then against the
other cells and the territory (PostGIS, in metres in the cell's UTM zone).

A problem names its kind and carries the geometry where it is, so that the planner's map can
draw it in red:

- ``not_closed``, ``too_few_points`` (the rings as sent), ``invalid`` (a self-intersection, a
  ring crossing another; shapely's reason and the point where it happens);
- ``overlap``: the part shared with another cell, when larger than ``OVERLAP_TOLERANCE_M2``;
- ``outside``: the part more than ``TERRITORY_MARGIN_M`` outside the service territory, when
  larger than the same tolerance;
- ``border_gap``: a sliver between this cell and a neighbour, narrower than ``BORDER_SNAP_M``:
  two borders meant to be shared that do not coincide.

Parts of the territory that no cell covers are not a problem of one save; ``coverage`` lists
them as a warning layer.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.validation import explain_validity
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.cells import territory_wkb
from geo.errors import Invalid
from geo.i18n import _

__all__ = ["Problem", "OVERLAP_TOLERANCE_M2", "BORDER_SNAP_M", "TERRITORY_MARGIN_M", "MAX_VERTICES", "parse_polygon", "shape_problems",
           "check", "coverage", "territory_outline", "utm_srid"]

# The tolerance: two cells may share up to half a square metre (digitising noise).
OVERLAP_TOLERANCE_M2 = 0.5
# A sliver narrower than this between two cells is a border that should have been shared.
BORDER_SNAP_M = 1.0
# A cell drawn by hand has hundreds of vertices; a district boundary imported from a GIS a few
# thousand. More is refused before any geometry work.
MAX_VERTICES = 50_000
# How far around a cell neighbours are looked for, in degrees (about 5 m): only they can touch it.
_NEAR_DEG = 5e-5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a cell: its kind, a sentence, where (GeoJSON), the other cell, how big."""

    kind: str
    detail: str
    geometry: dict | None = None
    other: str | None = None
    area_m2: float | None = None

    def as_dict(self) -> dict:
        return {"kind": self.kind, "detail": self.detail, "geometry": self.geometry, "other": self.other,
                "area_m2": None if self.area_m2 is None else round(self.area_m2, 2)}


def _rings(value: dict) -> list[list]:
    polygons = [value["coordinates"]] if value["type"] == "Polygon" else value["coordinates"]
    return [ring for polygon in polygons for ring in polygon]


def _ring_problems(value: dict) -> list[Problem]:
    """The rings as sent: closed (first position = last) and at least four positions."""
    problems = []
    for ring in _rings(value):
        start = {"type": "Point", "coordinates": ring[0][:2]} if ring else None
        if len(ring) < 4:
            problems.append(Problem("too_few_points", _("a ring needs at least 4 positions (3 corners and the first "
                                                        "again); this one has %(n)s", n=len(ring)), start))
        elif list(ring[0][:2]) != list(ring[-1][:2]):
            problems.append(Problem("not_closed", _("a ring must end where it starts"), start))
    return problems


def _positions_ok(value: Any) -> bool:
    def position(p: Any) -> bool:
        return (isinstance(p, list) and len(p) in (2, 3) and all(isinstance(x, (int, float)) and math.isfinite(x)
                                                                    for x in p) and -180 <= p[0] <= 180 and -90 <= p[1] <= 90)
    try:
        return all(isinstance(ring, list) and all(position(p) for p in ring) for ring in _rings(value))
    except (TypeError, KeyError):
        return False


def parse_polygon(value: Any) -> tuple[Polygon | MultiPolygon | None, list[Problem]]:
    """A GeoJSON Polygon or MultiPolygon (a Feature's geometry also) as shapely, with the problems
    of its rings; Invalid when it is not a polygon at all."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in ("Polygon", "MultiPolygon") or not isinstance(
            value.get("coordinates"), list):
        raise Invalid(_("geometry must be a GeoJSON Polygon or MultiPolygon"), field="geometry")
    if value["type"] == "MultiPolygon" and not all(isinstance(p, list) for p in value["coordinates"]):
        raise Invalid(_("geometry must be a GeoJSON Polygon or MultiPolygon"), field="geometry")
    if not _positions_ok(value):
        raise Invalid(_("geometry: every position must be [longitude, latitude] in degrees"), field="geometry")
    if sum(len(ring) for ring in _rings(value)) > MAX_VERTICES:
        raise Invalid(_("geometry has more than %(n)s positions", n=MAX_VERTICES), field="geometry")
    problems = _ring_problems(value)
    if problems or not _rings(value):
        return None, problems or [Problem("too_few_points", _("the polygon has no ring"))]
    return shape(value), []


def shape_problems(geometry: Polygon | MultiPolygon) -> list[Problem]:
    """``invalid`` with shapely's reason and its place, or nothing.

    >>> bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    >>> [(p.kind, p.geometry["type"]) for p in shape_problems(bowtie)]
    [('invalid', 'Point')]
    """
    if geometry.is_valid and not geometry.is_empty:
        return []
    reason = explain_validity(geometry) if not geometry.is_empty else "Empty"
    where = None
    if "[" in reason:
        x, y = (float(v) for v in reason[reason.index("[") + 1:reason.index("]")].split()[:2])
        where = {"type": "Point", "coordinates": [x, y]}
    return [Problem("invalid", _("the polygon is not valid: %(reason)s", reason=reason.split("[")[0].strip()), where)]


def utm_srid(geometry: Polygon | MultiPolygon) -> int:
    """The EPSG code of the UTM zone of the geometry's centre, where metres are metres.

    >>> utm_srid(Polygon([(8.3, 49.0), (8.5, 49.0), (8.5, 49.1), (8.3, 49.0)]))
    32632
    """
    centre = geometry.centroid
    zone = min(60, int((centre.x + 180) // 6) + 1)
    return (32600 if centre.y >= 0 else 32700) + zone


_NEIGHBOURS = text("""
WITH cand AS (SELECT ST_Transform(ST_GeomFromWKB(:wkb, 4326), :srid) AS g),
near AS (SELECT code, ST_Transform(geom, :srid) AS g FROM grid_cells
         WHERE code IS DISTINCT FROM :code AND geom && ST_Expand(ST_GeomFromWKB(:wkb, 4326), :near)
           AND ST_DWithin(geom, ST_GeomFromWKB(:wkb, 4326), :near)),
pair AS (SELECT near.code, cand.g AS a, near.g AS b, ST_Union(cand.g, near.g) AS u FROM cand, near),
shared AS (SELECT code, ST_Intersection(a, b) AS part FROM pair WHERE ST_Intersects(a, b)),
gaps AS (SELECT code, (ST_Dump(ST_Difference(ST_Buffer(ST_Buffer(u, :snap), -:snap), u))).geom AS part, a, b FROM pair)
SELECT 'overlap' AS kind, code, ST_Area(part) AS area, CAST(ST_AsGeoJSON(ST_Transform(part, 4326), 7) AS json) AS geometry
  FROM shared WHERE ST_Area(part) > :tolerance
UNION ALL
SELECT 'border_gap', code, ST_Area(part), CAST(ST_AsGeoJSON(ST_Transform(part, 4326), 7) AS json)
  FROM gaps WHERE ST_Area(part) > :tolerance AND ST_DWithin(part, a, :touch) AND ST_DWithin(part, b, :touch)
ORDER BY 1, 2
""")

# A border drawn along the territory's edge is not outside: a vertex snapped to the edge in the
# browser lies on it only to the precision of the coordinates sent, and the edge's straight
# segments bend apart from the cell's in UTM (1.5 cm over 9 km); along kilometres either makes
# square metres. Anything past 10 cm is outside.
TERRITORY_MARGIN_M = 0.1

_OUTSIDE = text("""
WITH parts AS (SELECT ST_Difference(ST_Transform(ST_GeomFromWKB(:wkb, 4326), :srid),
                                    ST_Buffer(ST_Transform(ST_GeomFromWKB(:territory, 4326), :srid), :margin)) AS part)
SELECT ST_Area(part) AS area, CAST(ST_AsGeoJSON(ST_Transform(part, 4326), 7) AS json) AS geometry FROM parts
WHERE ST_Area(part) > :tolerance
""")


def check(connection: Connection, code: str | None, geometry: Polygon | MultiPolygon) -> list[Problem]:
    """Every problem of ``geometry`` as cell ``code`` (None: a new cell) among the live cells."""
    problems = shape_problems(geometry)
    if problems:
        return problems  # overlap and territory tests need a valid polygon
    wkb, srid = shapely.to_wkb(geometry), utm_srid(geometry)
    for row in connection.execute(_NEIGHBOURS, {
            "wkb": wkb, "srid": srid, "code": code, "near": _NEAR_DEG, "snap": BORDER_SNAP_M / 2,
            "touch": BORDER_SNAP_M / 10, "tolerance": OVERLAP_TOLERANCE_M2}).mappings():
        if row["kind"] == "overlap":
            detail = _("overlaps cell %(other)s by %(area)s m²", other=row["code"], area=f"{row['area']:,.1f}")
        else:
            detail = _("leaves a gap of %(area)s m² along the border with cell %(other)s: the borders should coincide",
                       other=row["code"], area=f"{row['area']:,.1f}")
        problems.append(Problem(row["kind"], detail, row["geometry"], row["code"], row["area"]))
    territory, _source = territory_wkb(connection)
    if territory is not None:
        row = connection.execute(_OUTSIDE, {"wkb": wkb, "territory": territory, "srid": srid,
                                            "tolerance": OVERLAP_TOLERANCE_M2, "margin": TERRITORY_MARGIN_M}).mappings().first()
        if row is not None:
            problems.append(Problem("outside", _("%(area)s m² lie outside the service territory",
                                                 area=f"{row['area']:,.1f}"), row["geometry"], None, row["area"]))
    return problems


_UNCOVERED = text("""
WITH t AS (SELECT ST_GeomFromWKB(:territory, 4326) AS g),
covered AS (SELECT ST_Union(geom) AS g FROM grid_cells),
rest AS (SELECT (ST_Dump(CASE WHEN covered.g IS NULL THEN t.g ELSE ST_Difference(t.g, covered.g) END)).geom AS part
         FROM t, covered)
SELECT CAST(ST_AsGeoJSON(part, 7) AS json) AS geometry, ST_Area(geography(part)) AS area FROM rest
WHERE ST_Area(geography(part)) > :tolerance ORDER BY area DESC
""")


def territory_outline(connection: Connection) -> tuple[dict | None, str]:
    """The service territory as GeoJSON (None without one) and where it comes from."""
    territory, source = territory_wkb(connection)
    return (None if territory is None else _as_geojson(connection, territory)), source


def _as_geojson(connection: Connection, wkb: bytes) -> dict:
    return json.loads(connection.execute(text("SELECT ST_AsGeoJSON(ST_GeomFromWKB(:t, 4326), 9)"),
                                         {"t": wkb}).scalar_one())


def coverage(connection: Connection) -> dict:
    """The territory (and where it comes from) and its parts no cell covers, as GeoJSON."""
    territory, source = territory_wkb(connection)
    if territory is None:
        return {"territory": None, "source": source, "uncovered": {"type": "FeatureCollection", "features": []},
                "uncovered_m2": 0.0}
    rows = connection.execute(_UNCOVERED, {"territory": territory, "tolerance": OVERLAP_TOLERANCE_M2}).mappings().all()
    outline = _as_geojson(connection, territory)
    features = [{"type": "Feature", "geometry": row["geometry"],
                 "properties": {"kind": "uncovered", "area_m2": round(row["area"], 1)}} for row in rows]
    return {"territory": outline, "source": source, "uncovered": {"type": "FeatureCollection", "features": features},
            "uncovered_m2": round(sum(row["area"] for row in rows), 1)}
