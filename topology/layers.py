"""The network's map layers: each a query over PostGIS whose features in a bbox come back as GeoJSON.

A layer is a function ``(bbox, kinds) -> Select`` whose columns are the feature's ``id`` (the
element's external code), its ``geom`` and its properties, in the form ``geo.geojson`` turns
into a FeatureCollection in SQL. Only what a public map may show is selected: service points
carry their code, account number and address, never a customer's name or phone. Every element
with a place of its own says whether that place is ``schematic`` (a layout of the graph, not
where the element is).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

from sqlalchemy import Numeric, case, cast, func, literal, not_, or_, select, union_all
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from geo.errors import Invalid, NotFound
from geo.geojson import FeatureCollection, feature_collection
from geo.i18n import _, ngettext
from geo.spatial import BBox, in_bbox
from topology.models import (
    SWITCHGEAR, Device, DeviceKind, Feeder, Node, NodeKind, Segment, ServicePoint, Source, Substation, SwitchState,
    TopologyState, TransformerArea,
)

__all__ = [
    "FEEDER_COLOURS", "LAYERS", "Filters", "in_zone", "parse_kinds", "parse_level", "parse_state", "network_layer",
    "network_extent", "network_overview", "feeder_list", "network_summary",
]

# Distinct colours for neighbouring feeders; red and grey are left out because the map uses
# them for open devices and for de-energised elements.
FEEDER_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf", "#8c564b",
    "#e377c2", "#bcbd22", "#393b79", "#637939", "#0b7a75", "#7b4173",
)
NO_FEEDER_COLOUR = "#555555"
LV_MAX_KV = 1.0

_substations, _feeders, _nodes = Substation.__table__, Feeder.__table__, Node.__table__
_segments, _devices, _sources = Segment.__table__, Device.__table__, Source.__table__
_areas, _service_points = TransformerArea.__table__, ServicePoint.__table__


class Filters(NamedTuple):
    """A layer's optional filters: device ``kinds`` and current ``state`` (devices), ``level`` "mv"
    or "lv" (segments, devices)."""

    kinds: Sequence[str] | None = None
    level: str | None = None
    state: str | None = None
    # A dispatcher's control zone: only customers on these feeders (None: everywhere).
    feeders: frozenset[str] | None = None


# Which layers each filter applies to, and its query parameter.
_FILTERED_LAYERS = {"kinds": ("devices",), "level": ("segments", "devices"), "state": ("devices",)}
_PARAMETERS = {"kinds": "kind", "level": "level", "state": "state"}
LEVELS = ("mv", "lv")


def feeder_colour(feeder_id: ColumnElement) -> ColumnElement:
    """The feeder's colour: its id picks a palette entry, so a feeder keeps its colour everywhere."""
    palette = array([literal(colour) for colour in FEEDER_COLOURS])
    return func.coalesce(palette[func.mod(feeder_id, len(FEEDER_COLOURS)) + 1], NO_FEEDER_COLOUR)


# The from-node is looked up row by row (a scalar subquery on its primary key): joined, the
# planner would rather hash every node than probe the index a few thousand times, because
# PostGIS prices the bbox test of the other side so high.
def _from_node_voltage(from_node_id: ColumnElement) -> ColumnElement:
    """The voltage of the element's from-node."""
    n = _nodes
    return select(n.c.voltage_kv).where(n.c.id == from_node_id).scalar_subquery()


def _at_level(query: Select, from_node_id: ColumnElement, level: str | None) -> Select:
    """Keep the elements at ``level``: an element is as LV as its from-node (kind lv, or 1 kV or less)."""
    if level is None:
        return query
    n = _nodes
    low_voltage = func.coalesce(
        select(or_(n.c.kind == NodeKind.lv, n.c.voltage_kv <= LV_MAX_KV)).where(n.c.id == from_node_id)
        .scalar_subquery(), False)
    return query.where(low_voltage) if level == "lv" else query.where(not_(low_voltage))


def _substations_layer(bbox: BBox | None, filters: Filters) -> Select:
    s = _substations
    return select(s.c.code.label("id"), s.c.geom, s.c.code, s.c.name, s.c.schematic).where(in_bbox(s.c.geom, bbox))


def _segments_layer(bbox: BBox | None, filters: Filters) -> Select:
    s, f = _segments, _feeders
    query = (
        select(s.c.code.label("id"), s.c.geom, s.c.code, f.c.code.label("feeder"),
               feeder_colour(s.c.feeder_id).label("colour"), _from_node_voltage(s.c.from_node_id).label("voltage_kv"),
               s.c.conductor, func.round(cast(s.c.length_m, Numeric), 1).label("length_m"), s.c.in_service,
               s.c.schematic)
        .select_from(s.outerjoin(f, f.c.id == s.c.feeder_id))
        .where(in_bbox(s.c.geom, bbox))
    )
    return _at_level(query, s.c.from_node_id, filters.level)


def _devices_layer(bbox: BBox | None, filters: Filters) -> Select:
    d, f = _devices, _feeders
    query = (
        select(d.c.code.label("id"), d.c.geom, d.c.code, d.c.kind, d.c.name, f.c.code.label("feeder"),
               _from_node_voltage(d.c.from_node_id).label("voltage_kv"), d.c.normal_state, d.c.current_state,
               d.c.in_service, d.c.rated_kva, d.c.schematic)
        .select_from(d.outerjoin(f, f.c.id == d.c.feeder_id))
        .where(in_bbox(d.c.geom, bbox))
    )
    if filters.kinds:
        query = query.where(d.c.kind.in_(filters.kinds))
    if filters.state:
        query = query.where(d.c.current_state == filters.state)
    return _at_level(query, d.c.from_node_id, filters.level)


def _transformers_layer(bbox: BBox | None, filters: Filters) -> Select:
    d, f, a, sp = _devices, _feeders, _areas, _service_points
    # Customers of the transformer's area; none known when it has no area.
    customers = select(func.count()).where(sp.c.transformer_area_id == a.c.id).scalar_subquery()
    return (
        select(d.c.code.label("id"), d.c.geom, d.c.code, d.c.name, f.c.code.label("feeder"), d.c.rated_kva,
               d.c.current_state, d.c.in_service, a.c.code.label("area"),
               case((a.c.id.is_(None), None), else_=customers).label("customers"), d.c.schematic)
        .select_from(d.outerjoin(f, f.c.id == d.c.feeder_id).outerjoin(a, a.c.transformer_id == d.c.id))
        .where(d.c.kind == DeviceKind.transformer, in_bbox(d.c.geom, bbox))
    )


def _sources_layer(bbox: BBox | None, filters: Filters) -> Select:
    s, n, sub = _sources, _nodes, _substations
    return (
        select(s.c.code.label("id"), n.c.geom, s.c.code, s.c.kind, sub.c.code.label("substation"), s.c.in_service,
               n.c.schematic)
        .select_from(s.join(n, n.c.id == s.c.node_id).outerjoin(sub, sub.c.id == s.c.substation_id))
        .where(in_bbox(n.c.geom, bbox))
    )


def _service_points_layer(bbox: BBox | None, filters: Filters) -> Select:
    sp, a = _service_points, _areas
    return (
        select(sp.c.code.label("id"), sp.c.geom, sp.c.code, sp.c.account_number, sp.c.address,
               a.c.code.label("transformer_area"), sp.c.in_service, sp.c.schematic)
        .select_from(sp.outerjoin(a, a.c.id == sp.c.transformer_area_id))
        .where(in_bbox(sp.c.geom, bbox), in_zone(sp, filters.feeders))
    )


def in_zone(table, feeders: frozenset[str] | None) -> ColumnElement:
    """The element lies on one of ``feeders`` (always true for None): a segment or device by its
    feeder, a service point or node by its node's feeder."""
    if feeders is None:
        return literal(True)
    n, f = _nodes, _feeders
    zone_feeders = select(f.c.id).where(f.c.code.in_(sorted(feeders)))
    if "feeder_id" in table.c:
        return table.c.feeder_id.in_(zone_feeders)
    return table.c.node_id.in_(select(n.c.id).where(n.c.feeder_id.in_(zone_feeders)))


def _transformer_areas_layer(bbox: BBox | None, filters: Filters) -> Select:
    a, d = _areas, _devices
    return (
        select(a.c.code.label("id"), a.c.geom, a.c.code, a.c.name, d.c.code.label("transformer"))
        .select_from(a.join(d, d.c.id == a.c.transformer_id))
        .where(a.c.geom.is_not(None), in_bbox(a.c.geom, bbox))
    )


LayerQuery = Callable[[BBox | None, Filters], Select]
LAYERS: dict[str, LayerQuery] = {
    "substations": _substations_layer,
    "segments": _segments_layer,
    "devices": _devices_layer,
    "transformers": _transformers_layer,
    "sources": _sources_layer,
    "service_points": _service_points_layer,
    "transformer_areas": _transformer_areas_layer,
}


def parse_kinds(value: str | None) -> list[str] | None:
    """The devices layer's ``kind`` filter, ``"breaker,switch"``: the kinds, or None for all.

    >>> parse_kinds("switch, fuse")
    ['switch', 'fuse']
    """
    if value is None or not value.strip():
        return None
    kinds = [kind.strip() for kind in value.split(",") if kind.strip()]
    known = {kind.value for kind in DeviceKind}
    unknown = [kind for kind in kinds if kind not in known]
    if unknown:
        raise Invalid(_("unknown device kind %(unknown)s; expected some of %(items)s", unknown=', '.join(map(repr, unknown)), items=', '.join(sorted(known))), field="kind")
    return kinds


def parse_level(value: str | None) -> str | None:
    """The segments layer's ``level`` filter: "mv", "lv", or None for both.

    >>> parse_level("MV")
    'mv'
    """
    if value is None or not value.strip():
        return None
    level = value.strip().lower()
    if level not in LEVELS:
        raise Invalid(_("level must be mv or lv; got %(value)r", value=value), field="level")
    return level


def parse_state(value: str | None) -> str | None:
    """The devices layer's ``state`` filter (their current state): "open", "closed", or None for both.

    >>> parse_state("open")
    'open'
    """
    if value is None or not value.strip():
        return None
    state = value.strip().lower()
    if state not in {member.value for member in SwitchState}:
        raise Invalid(_("state must be open or closed; got %(value)r", value=value), field="state")
    return state


def network_layer(connection: Connection, layer: str, bbox: BBox | None, limit: int,
                  filters: Filters = Filters()) -> FeatureCollection:
    """The features of ``layer`` intersecting ``bbox`` (everywhere when None), at most ``limit``.

    Raises ``NotFound`` for an unknown layer and ``Invalid`` for a filter the layer has not.
    """
    query = LAYERS.get(layer)
    if query is None:
        raise NotFound(_("no network layer %(layer)r; the layers are %(layers)s", layer=layer, layers=', '.join(LAYERS)), layer=layer)
    for name, value in filters._asdict().items():
        if value and name in _FILTERED_LAYERS and layer not in _FILTERED_LAYERS[name]:
            layers = _FILTERED_LAYERS[name]
            raise Invalid(ngettext("%(parameter)s filters the %(layers)s layer only, not %(layer)r",
                                   "%(parameter)s filters the %(layers)s layers only, not %(layer)r", len(layers),
                                   parameter=_PARAMETERS[name], layers=" and ".join(layers), layer=layer),
                          field=_PARAMETERS[name])
    return feature_collection(connection, query(bbox, filters), limit)


def network_extent(connection: Connection) -> BBox | None:
    """The box around every node, service point and substation; None for an empty network."""
    geoms = union_all(select(_nodes.c.geom), select(_service_points.c.geom), select(_substations.c.geom)).subquery()
    extent = select(func.ST_Extent(geoms.c.geom).label("box")).subquery()
    box = connection.execute(select(func.ST_XMin(extent.c.box), func.ST_YMin(extent.c.box),
                                    func.ST_XMax(extent.c.box), func.ST_YMax(extent.c.box))).one()
    return None if box[0] is None else BBox(*box)


# (database, topology version, its time) -> (extent, summary); a few recent versions are kept.
_OVERVIEWS: dict[tuple, tuple[BBox | None, dict[str, int]]] = {}
_OVERVIEWS_KEPT = 8


def network_overview(connection: Connection) -> tuple[BBox | None, dict[str, int]]:
    """``network_extent`` and ``network_summary``, computed once per topology version.

    Both read every row (about a second at a million customers) and change only with the
    topology, whose version every import and switching operation bumps.
    """
    state = TopologyState.__table__
    version = connection.execute(select(state.c.version, state.c.changed_at)).one_or_none()
    if version is None:
        return network_extent(connection), network_summary(connection)
    key = (str(connection.engine.url), *version)
    if key not in _OVERVIEWS:
        while len(_OVERVIEWS) >= _OVERVIEWS_KEPT:
            _OVERVIEWS.pop(next(iter(_OVERVIEWS)))
        _OVERVIEWS[key] = (network_extent(connection), network_summary(connection))
    return _OVERVIEWS[key]


def feeder_list(connection: Connection) -> list[dict]:
    """Every feeder with its substation, voltage and the colour its segments have on the map."""
    f, s = _feeders, _substations
    rows = connection.execute(
        select(f.c.code, f.c.name, s.c.code.label("substation"), f.c.voltage_kv, feeder_colour(f.c.id).label("colour"))
        .select_from(f.outerjoin(s, s.c.id == f.c.substation_id)).order_by(f.c.code)
    )
    return [dict(row._mapping) for row in rows]


def network_summary(connection: Connection) -> dict[str, int]:
    """Counts for a map's title bar: substations, feeders, customers and open switchgear."""
    d = _devices
    open_switchgear = (select(func.count()).select_from(d)
                       .where(d.c.kind.in_(SWITCHGEAR), d.c.current_state == SwitchState.open).scalar_subquery())
    counts = connection.execute(select(
        select(func.count()).select_from(_substations).scalar_subquery().label("substations"),
        select(func.count()).select_from(_feeders).scalar_subquery().label("feeders"),
        select(func.count()).select_from(_service_points).scalar_subquery().label("customers"),
        open_switchgear.label("open_switchgear"),
    )).one()
    return dict(counts._mapping)
