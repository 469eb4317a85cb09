"""What lies in each grid cell: its transformer areas and customers, derived from where they are.

The rule (one SQL statement, ``_HOMES``), so that every customer belongs to exactly one cell:

1. a transformer area a planner gave to a cell belongs to that cell;
2. otherwise an area whose customers all lie in one cell (customers outside every cell aside)
   belongs to it; an area without customers, to the cell holding its transformer;
3. an area whose customers lie in several cells is *split*: it is listed for the planner to give
   to one cell, and meanwhile each of its customers counts where it lies;
4. a customer belongs to its area's cell, else to the cell it lies in, else to no cell (listed).

geo owns the polygons (``geo.cells.CELL_POLYGONS``, ``AREA_ASSIGNMENTS``); this module only joins
to them. The network's hull is the service territory when
the admin imported none: the same outline the light base map draws (topology/basemap.py).
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from geo import demo
from geo.cells import (AREA_ASSIGNMENTS, AREA_MANAGER, CELL_POLYGONS, MANAGER, CellDraft, Contents, Figure, Member,
                       assign, bump_revision, register_contents, register_figures, register_territory, register_zone,
                       save_version)
from geo.demo import DemoContext
from geo.i18n import _

__all__ = ["contents", "customer_cells", "customer_homes", "network_hull", "register", "add_demo_cells", 
           "OUTSIDE_POINTS"]

# How many customers outside every cell are listed by place (all are counted).
OUTSIDE_POINTS = 2_000

_HOMES = f"""
WITH cells AS {CELL_POLYGONS},
hit AS (SELECT DISTINCT ON (sp.id) sp.id, c.code AS cell FROM service_points sp
        JOIN cells c ON ST_Intersects(c.geom, sp.geom) WHERE sp.in_service ORDER BY sp.id, c.code),
located AS (SELECT sp.id, sp.transformer_area_id AS area_id, hit.cell FROM service_points sp
            LEFT JOIN hit ON hit.id = sp.id WHERE sp.in_service),
spread AS (SELECT area_id, count(DISTINCT cell) AS cells, min(cell) AS only_cell FROM located
           WHERE area_id IS NOT NULL AND cell IS NOT NULL GROUP BY area_id),
peopled AS (SELECT DISTINCT area_id FROM located WHERE area_id IS NOT NULL),
homes AS (
  SELECT ta.id AS area_id, ta.code AS area, ta.name, spread.cells > 1 AS split,
         COALESCE(given.cell_code, CASE WHEN spread.cells = 1 THEN spread.only_cell END,
                  CASE WHEN peopled.area_id IS NULL THEN (SELECT c.code FROM cells c JOIN devices d
                       ON d.id = ta.transformer_id AND ST_Intersects(c.geom, d.geom) ORDER BY c.code LIMIT 1) END)
           AS home, given.cell_code IS NOT NULL AS given
  FROM transformer_areas ta
  LEFT JOIN {AREA_ASSIGNMENTS} given ON given.transformer_area = ta.code
  LEFT JOIN spread ON spread.area_id = ta.id LEFT JOIN peopled ON peopled.area_id = ta.id)
"""

# One pass over the customers (3 s at a million, of which 1 s the spatial join): per area and
# cell lain in, how many; the customers' cells follow in Python (rule 4).
_AREAS = text(_HOMES + """
SELECT homes.area, homes.name, homes.home, homes.split AND NOT homes.given AS split, counted.lies_in,
       COALESCE(counted.n, 0) AS n
FROM homes FULL JOIN (SELECT area_id, cell AS lies_in, count(*) AS n FROM located GROUP BY area_id, cell) AS counted
  ON counted.area_id = homes.area_id
""")

_OUTSIDE = text(f"""
SELECT ST_X(sp.geom) AS lon, ST_Y(sp.geom) AS lat FROM service_points sp
LEFT JOIN transformer_areas ta ON ta.id = sp.transformer_area_id
WHERE sp.in_service AND (ta.code IS NULL OR NOT ta.code = ANY(:homed))
  AND NOT EXISTS (SELECT 1 FROM {CELL_POLYGONS} c WHERE ST_Intersects(c.geom, sp.geom))
ORDER BY sp.id LIMIT :limit
""")

# Where given customers lie and their area: with the areas' homes (kept with the contents), their
# cells by the same rule, in time proportional to them.
_LIE_IN = text(f"""
SELECT sp.id, ta.code AS area,
       (SELECT c.code FROM {CELL_POLYGONS} c WHERE ST_Intersects(c.geom, sp.geom) ORDER BY c.code LIMIT 1) AS lies_in
FROM service_points sp LEFT JOIN transformer_areas ta ON ta.id = sp.transformer_area_id
WHERE sp.id = ANY(:ids) AND sp.in_service
""")


_KEPT: dict[tuple, tuple[tuple, Contents]] = {}
_ONLY_SWITCHING = text("SELECT count(DISTINCT topology_version) FROM switching_events "
                       "WHERE topology_version > :old AND topology_version <= :new")


def _only_switched(connection: Connection, old: tuple, new: tuple) -> bool:
    """Whether every topology version after ``old`` up to ``new`` came from switching, which moves
    no customer, area or cell (the topology cache catches up the same way)."""
    if not old or not new or new[0] <= old[0]:
        return False
    return connection.execute(_ONLY_SWITCHING, {"old": old[0], "new": new[0]}).scalar_one() == new[0] - old[0]


def contents(connection: Connection, revision: tuple | None = None) -> Contents:
    """``_contents``, kept per revision of the cells and topology version (a network loaded, a cell
    saved: computed again; switching only: kept): the figures and every cell's page need them,
    and at a million customers they take seconds."""
    from topology.basemap import topology_version

    if revision is None:
        return _contents(connection)
    key, version = (str(connection.engine.url), revision), topology_version(connection)
    kept = _KEPT.get(key)
    if kept is None or (kept[0] != version and not _only_switched(connection, kept[0], version)):
        kept = (version, _contents(connection))
        _KEPT.clear()
    _KEPT[key] = (version, kept[1])
    return kept[1]


def _contents(connection: Connection) -> Contents:
    """Each cell's transformer areas (code, name, customers) and customers, the split areas
    ({cell: customers}), each area's cell, and the customers outside every cell (counted, and
    placed up to OUTSIDE_POINTS). Linear in the service points; one spatial join with the cells."""
    areas: dict[str, dict[str, dict]] = defaultdict(dict)
    split: dict[str, dict[str, int]] = defaultdict(dict)
    counts: dict[str | None, int] = defaultdict(int)
    homes: dict[str, str] = {}
    for row in connection.execute(_AREAS):
        if row.area is not None and row.home is not None:
            homes[row.area] = row.home
            entry = areas[row.home].setdefault(row.area, {"code": row.area, "name": row.name, "customers": 0})
            entry["customers"] += row.n
        if row.split and row.lies_in is not None:
            split[row.area][row.lies_in] = row.n
        if row.n:
            counts[row.home if row.home is not None else row.lies_in] += row.n
    outside = counts.pop(None, 0)
    points = [(row.lon, row.lat) for row in connection.execute(
        _OUTSIDE, {"homed": list(homes), "limit": OUTSIDE_POINTS})] if outside else []
    return Contents(transformer_areas={cell: sorted(held.values(), key=lambda a: a["code"]) for cell, held in areas.items()},
                    customers=dict(counts), split_areas=dict(split), outside=outside, outside_points=points,
                    area_homes=homes)


def customer_cells(connection: Connection, service_points, held: Contents) -> dict[int, str | None]:
    """The cell each of ``service_points`` (ids) belongs to by the same rule (None: none), given
    the cells' contents ``held`` (for their areas' cells)."""
    return {sp: cell for sp, (_area, cell) in customer_homes(connection, service_points, held).items()}


def customer_homes(connection: Connection, service_points, held: Contents) -> dict[int, tuple[str | None, str | None]]:
    """(transformer area code, cell) of each of ``service_points`` (ids), by the rule above."""
    ids = [int(i) for i in service_points]
    if not ids:
        return {}
    return {row.id: (row.area, held.area_homes.get(row.area, row.lies_in) if row.area is not None else row.lies_in)
            for row in connection.execute(_LIE_IN, {"ids": ids})}


_HULLS: dict[tuple, bytes | None] = {}


def network_hull(connection: Connection) -> bytes | None:
    """The territory the light base map draws (topology.basemap.territory_query: a concave hull
    of the network with a margin) as WKB, or None without a network. Kept per topology version
    (0.8-1.7 s at 717,000 nodes), so that checking a cell does not compute it again."""
    from topology.basemap import topology_version, territory_query

    key = (str(connection.engine.url), topology_version(connection))
    if key not in _HULLS:
        outline = territory_query(None).subquery()
        found = connection.execute(select(func.ST_AsBinary(func.ST_Multi(outline.c.geom)))).scalar()
        _HULLS.clear()  # one network per process; the previous version's hull is no longer needed
        _HULLS[key] = bytes(found) if found is not None else None
    return _HULLS[key]


_ZONE = text(f"""
SELECT DISTINCT f.code FROM {CELL_POLYGONS} cells
JOIN devices d ON d.kind = 'transformer' AND ST_Intersects(cells.geom, d.geom)
JOIN feeders f ON f.id = d.feeder_id WHERE cells.code = ANY(:cells)
""")


def feeders_in_cells(connection: Connection, cells: list[str]) -> set[str]:
    """The feeders of the transformers standing inside ``cells``: a control zone given as cells.
    One index probe of the devices per cell."""
    return set(connection.execute(_ZONE, {"cells": cells}).scalars())


def _figures(connection: Connection, held: Contents) -> dict[str, dict[str, float]]:
    return {"customers": dict(held.customers),
            "transformer_areas": {cell: len(areas) for cell, areas in held.transformer_areas.items()}}


def register() -> None:
    """Answer geo's questions about cells: their contents, two figures, and the territory."""
    register_contents(contents)
    register_territory(network_hull)
    register_zone(feeders_in_cells)
    register_figures("topology", (Figure("customers", _("customers")),
                                  Figure("transformer_areas", _("transformer areas"))), _figures)
    demo.register("cells", add_demo_cells)


# -- the demo city's cells ---------------------------------------------------------------------------
# About this many customers a cell: a team of a manager and a handful of area managers.
DEMO_CUSTOMERS_PER_CELL = 2_500
# Transformer areas one area manager answers for in the demo.
DEMO_AREAS_PER_MANAGER = 12
_DEMO_SURNAMES = ("王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林")
_DEMO_GIVEN = ("伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超")


def _centres(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k centres of ``points`` (k-means, a few rounds; metres-like axes)."""
    centres = points[rng.choice(len(points), size=k, replace=False)]
    for _round in range(12):
        nearest = np.argmin(((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2), axis=1)
        for index in range(k):
            members = points[nearest == index]
            if len(members):
                centres[index] = members.mean(axis=0)
    return centres


def _demo_polygons(connection: Connection, seed: int, customers: int) -> list:
    """Voronoi cells around k-means centres of the transformers, cut to the territory: they tile
    it, so borders coincide and nothing is left uncovered."""
    hull = network_hull(connection)
    rows = connection.execute(text(
        "SELECT ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat FROM transformer_areas ta "
        "JOIN devices d ON d.id = ta.transformer_id ORDER BY ta.id")).all()
    if hull is None or len(rows) < 4:
        return []
    territory = shapely.from_wkb(hull)
    lonlat = np.array([(row.lon, row.lat) for row in rows])
    scale = np.array([math.cos(math.radians(lonlat[:, 1].mean())), 1.0])
    k = int(min(60, max(4, round(customers / DEMO_CUSTOMERS_PER_CELL)), len(rows)))
    centres = _centres(lonlat * scale, k, np.random.default_rng(seed)) / scale
    centres = centres[np.lexsort((centres[:, 0], -centres[:, 1]))]  # numbered from the north-west
    regions = shapely.voronoi_polygons(MultiPoint(centres), extend_to=territory)
    by_centre = []
    for centre in centres:
        region = next(r for r in regions.geoms if r.contains(Point(centre)))
        by_centre.append(region.intersection(territory))
    return by_centre


def _demo_team(rng: np.random.Generator, number: int, areas: list[str]) -> tuple[Member, ...]:
    def person(k: int) -> tuple[str, str]:
        return (f"{rng.choice(_DEMO_SURNAMES)}{rng.choice(_DEMO_GIVEN)}{rng.choice(_DEMO_GIVEN)}",
                f"+49 721 5555{number:02d}{k:02d}")  # fiction numbers, as the customers' are
    name, phone = person(0)
    team = [Member(name, phone, MANAGER)]
    for k, start in enumerate(range(0, len(areas), DEMO_AREAS_PER_MANAGER), start=1):
        name, phone = person(k)
        team.append(Member(name, phone, AREA_MANAGER, tuple(areas[start:start + DEMO_AREAS_PER_MANAGER])))
    return tuple(team)


def add_demo_cells(context: DemoContext) -> None:
    """The demo city's grid cells (about one per 2,500 customers), each area split by a border
    given to the cell with most of its customers, and a team for each cell."""
    connection = context.connection
    if connection.execute(text(f"SELECT count(*) FROM {CELL_POLYGONS} c")).scalar_one():
        return
    polygons = _demo_polygons(connection, context.seed, context.customers)
    for number, polygon in enumerate(polygons, start=1):
        draft = CellDraft(f"GC-{number:02d}", f"Netzzelle {number:02d}", None, (), shapely.to_wkb(polygon))
        save_version(connection, draft, draft.code, None, "demo", "the demo city's cells")
    bump_revision(connection)
    for area, spread in contents(connection).split_areas.items():
        assign(connection, area, max(spread, key=spread.get), "demo")
    bump_revision(connection)  # the assignments are a change: what the cells hold is read again
    held, rng = contents(connection), np.random.default_rng(context.seed)
    for number, polygon in enumerate(polygons, start=1):
        code = f"GC-{number:02d}"
        areas = [area["code"] for area in held.transformer_areas.get(code, [])]
        draft = CellDraft(code, f"Netzzelle {number:02d}", None, _demo_team(rng, number, areas), shapely.to_wkb(polygon))
        save_version(connection, draft, code, 1, "demo", "the cell's team")
    context.progress(f"{len(polygons)} grid cells with their teams")
