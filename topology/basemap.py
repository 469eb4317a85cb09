"""The network's outlines on the light base map (geo/basemap.py): the territory and the
transformer areas, drawn when a page has no base map or its tile server does not answer."""
from __future__ import annotations

from typing import Hashable

from geoalchemy2 import Geometry
from sqlalchemy import distinct, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from geo import basemap
from geo.i18n import _
from geo.spatial import BBox, geography
from topology.layers import LAYERS, Filters
from topology.models import Node, TopologyState

__all__ = ["territory_query", "register_outlines", "topology_version"]

# The hull may bend inwards this much (PostGIS's target_percent: 1 is the convex hull); a city's
# outline keeps its bays at 0.3. It is taken around the nodes snapped to a grid of HULL_GRID_DEG
# (at 717,000 nodes 0.8 s instead of 17 s around every node), and buffered by more than a snap
# can move a node (at most about 135 m), so that the line passes outside the outermost assets.
HULL_CONCAVITY = 0.3
HULL_GRID_DEG = 0.002
HULL_MARGIN_M = 200.0


def territory_query(bbox: BBox | None) -> Select:
    """The territory: a concave hull around the network's nodes, with a margin (one feature,
    the whole territory whatever ``bbox``)."""
    nodes = Node.__table__
    snapped = func.ST_SnapToGrid(nodes.c.geom, HULL_GRID_DEG)
    hull = func.ST_ConcaveHull(func.ST_Collect(distinct(snapped)), HULL_CONCAVITY)
    outline = func.geometry(func.ST_Buffer(geography(hull), HULL_MARGIN_M), type_=Geometry)
    return select(literal("territory").label("id"), outline.label("geom")).having(func.count() > 0)


def topology_version(connection: Connection) -> Hashable:
    state = TopologyState.__table__
    return tuple(connection.execute(select(state.c.version, state.c.changed_at)).one_or_none() or ())


def _transformer_areas(bbox: BBox | None) -> Select:
    return LAYERS["transformer_areas"](bbox, Filters())


def register_outlines() -> None:
    """Register the territory and the transformer areas with geo's base-map registry."""
    basemap.register_outline(basemap.Outline(
        id="territory", title=_("Territory"), query=territory_query, version=topology_version,
        style={"color": "#a89f8c", "weight": 2, "dashArray": "6 4", "fillColor": "#f5f1e7", "fillOpacity": 1}))
    basemap.register_outline(basemap.Outline(
        id="transformer_areas", title=_("Transformer areas"), query=_transformer_areas, min_zoom=14,
        style={"color": "#d3cab8", "weight": 1, "fillColor": "#f4efe4", "fillOpacity": 0.5}))
