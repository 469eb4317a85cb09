"""The network's vector tile layers (geo/tiles.py serves them): segments, devices, transformer
areas and service points.

Every tile holds everything of its layer in it: the map is never cut at a feature limit. What
changes with the zoom is the form, measured on the 1,000,000-customer demo city (580,502
segments; a zoom-10 tile covers a quarter of it):

- segments: from ``SEGMENTS_ONE_BY_ONE`` (14) each segment with its code, feeder, colour,
  level, in-service flag and whether it is energised now (a zoom-14 tile: about 3,000 of them,
  22 ms; a zoom-13 one would hold 11,852 and take 82 ms). Further out the segments of each feeder and level come merged and simplified from
  ``segment_overview`` (kept in Web Mercator: 26-41 ms for the zoom-10 tile that would hold
  326,000 segments and take 1.4 s one by one), with the de-energised segments one by one on top.
- devices: from zoom 14 all of them; further out the breakers, reclosers, any open device and
  (from zoom 12) the switches, through a partial index: fuses and transformers are nine in ten
  and too small to see there (a zoom-10 tile with every switch held 6,763 devices and took
  93 ms; a zoom-13 tile with everything 2,688 and 27-33 ms, 65 ms p95 under load).
- transformer areas from zoom 13 (a zoom-12 tile: 3,034 polygons, 22-62 ms), service points
  (for dispatchers and planners, inside a dispatcher's control zone) from zoom 15 (a zoom-14
  tile: 5,000 points, 343 kB, 28-50 ms).

Every layer's ETag follows the topology version, which imports and switching operations bump,
so a tile changes when a switch does. The overview is rebuilt (about 1.5 s at a million
customers) when the version moved by something other than switching.
"""
from __future__ import annotations

from sqlalchemy import (
    ARRAY, BigInteger, String, bindparam, case, delete, func, insert, literal, null, or_, select, true,
    text, union_all, update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from geo import tiles
from geo.auth import NETWORK_READERS, PUBLIC, control_feeders
from geo.tiles import MAX_ZOOM, Tile, TileLayer
from topology import trace
from topology.cache import topology_cache
from topology.layers import LAYERS, LV_MAX_KV, Filters, feeder_colour
from topology.models import (
    DEVICES_FAR_OUT, Device, DeviceKind, Feeder, Node, NodeKind, Segment, SegmentOverview, SwitchState, SwitchingEvent,
    TopologyState,
)
from topology.read import read_version

__all__ = ["register_tile_layers", "ensure_overview", "build_overview", "SEGMENTS_ONE_BY_ONE", "DEVICES_ALL_FROM",
           "AREAS_FROM", "SERVICE_POINTS_FROM", "OVERVIEW_TOLERANCE_M"]

SEGMENTS_ONE_BY_ONE = 14
DEVICES_ALL_FROM = 14
SWITCHES_FROM = 12
AREAS_FROM = 13
SERVICE_POINTS_FROM = 15
# In Web Mercator metres (about 2 m on the ground at 49° N): under a third of a zoom-10 tile
# unit (9.6 m) and about one at zoom 12, so no simplification shows.
OVERVIEW_TOLERANCE_M = 3.0

_segments, _feeders, _nodes, _devices = Segment.__table__, Feeder.__table__, Node.__table__, Device.__table__
_overview, _state, _events = SegmentOverview.__table__, TopologyState.__table__, SwitchingEvent.__table__
_OVERVIEW_LOCK = 0x6761_7469_6C65  # pg_advisory_xact_lock key: one builder at a time


def _level(from_node_id: ColumnElement) -> ColumnElement:
    """'lv' or 'mv' by the element's from-node (kind lv, or 1 kV or less), looked up per row as
    topology.layers does: joined, the planner would hash every node for a tile's few thousand."""
    n = _nodes
    low = select(or_(n.c.kind == NodeKind.lv, n.c.voltage_kv <= LV_MAX_KV)).where(n.c.id == from_node_id)
    return case((func.coalesce(low.scalar_subquery(), False), literal("lv")), else_=literal("mv"))


# -- what the ETag follows, and the de-energised segments of each version -------------------------
_DEAD: dict[tuple, list[int]] = {}
_DEAD_KEPT = 4


def _version(connection: Connection) -> str:
    """The topology version and when it changed (a restored database may count the same
    numbers again): every import and switching operation bumps it."""
    version, changed_at = read_version(connection)
    return f"{version}@{changed_at.isoformat()}"


def _dead_segments(connection: Connection) -> list[int]:
    """The ids of the segments without supply now, computed once per topology version."""
    topology = topology_cache().get(connection)
    key = (str(connection.engine.url), topology.version)
    if key not in _DEAD:
        while len(_DEAD) >= _DEAD_KEPT:
            _DEAD.pop(next(iter(_DEAD)))
        _DEAD[key] = trace.deenergised(topology).segment_ids.tolist()
    return _DEAD[key]


def _dead_ids(dead: list[int]) -> Select:
    """The ids as a subquery: ``id IN (SELECT unnest(...))`` is hashed in every plan, where
    ``id = ANY(...)`` goes through the array row by row once PostgreSQL settles on a generic plan
    (50,000 dead segments: 11 ms against 484 ms for a zoom-14 tile)."""
    return select(func.unnest(bindparam("dead_segments", dead, type_=ARRAY(BigInteger))))


# -- the generalised copy of the segments -----------------------------------------------------------
def build_overview(connection: Connection, version: int) -> int:
    """Replace ``segment_overview`` by the segments of each feeder and level merged, simplified
    and in Web Mercator, and record that it holds ``version``. Returns the rows written.

    Joined here (not looked up per row as in a tile): it reads every segment and node once,
    about 1.5 s at a million customers.
    """
    s, n = _segments, _nodes
    level = case((or_(n.c.kind == NodeKind.lv, n.c.voltage_kv <= LV_MAX_KV), literal("lv")), else_=literal("mv"))
    merged = func.ST_LineMerge(func.ST_Collect(s.c.geom))
    geom = func.ST_Multi(func.ST_Simplify(func.ST_Transform(merged, 3857), OVERVIEW_TOLERANCE_M, True))
    # Written LV first: a tile reads them in that order (a sequential or bitmap scan), so the MV
    # network is drawn over the LV without sorting wide rows per tile (4 ms a zoom-10 tile).
    rows = (select(s.c.feeder_id, level.label("level"), geom)
            .select_from(s.join(n, n.c.id == s.c.from_node_id)).group_by(s.c.feeder_id, level)
            .order_by(level, s.c.feeder_id))
    connection.execute(delete(_overview))
    written = connection.execute(insert(_overview).from_select(["feeder_id", "level", "geom"], rows)).rowcount
    connection.execute(update(_state).values(overview_version=version))
    return written


_FRESH: dict[tuple, bool] = {}  # (database, version) whose overview was found current, in this process


def _moved_only_by_switching(connection: Connection, since: int, until: int) -> bool:
    """Whether every version after ``since`` up to ``until`` came from a switching operation."""
    e = _events
    made = connection.execute(select(func.count(func.distinct(e.c.topology_version)))
                              .where(e.c.topology_version > since, e.c.topology_version <= until)).scalar_one()
    return made == until - since


def ensure_overview(connection: Connection) -> None:
    """Rebuild ``segment_overview`` if something other than switching changed the network since
    it was built (one builder at a time; the others wait and find it done)."""
    version, built, changed_at = connection.execute(
        select(_state.c.version, _state.c.overview_version, _state.c.changed_at)).one_or_none() or (0, 0, None)
    key = (str(connection.engine.url), version, changed_at)
    if key in _FRESH or built == version or (built is not None and _moved_only_by_switching(connection, built, version)):
        _FRESH[key] = True
        return
    connection.execute(select(func.pg_advisory_xact_lock(_OVERVIEW_LOCK)))
    version, built = connection.execute(select(_state.c.version, _state.c.overview_version)).one()
    if built != version:
        build_overview(connection, version)
    if len(_FRESH) > 64:
        _FRESH.clear()
    _FRESH[key] = True


# -- the layers' queries ------------------------------------------------------------------------------
def _segment_columns(feeder_id: ColumnElement) -> list[ColumnElement]:
    f = _feeders
    feeder = select(f.c.code).where(f.c.id == feeder_id).scalar_subquery()
    return [feeder.label("feeder"), feeder_colour(feeder_id).label("colour")]


def _segments_one_by_one(tile: Tile, dead: list[int]) -> Select:
    s = _segments
    return (select(s.c.geom, s.c.code, *_segment_columns(s.c.feeder_id), _level(s.c.from_node_id).label("level"),
                   s.c.in_service, s.c.id.not_in(_dead_ids(dead)).label("energised"))
            .where(tile.holds(s.c.geom)))


def _segments_overview(tile: Tile, dead: list[int]) -> Select:
    """The feeders' generalised lines in the tile, then the de-energised segments one by one on top."""
    o, s = _overview, _segments
    lines = (select(o.c.geom, null().cast(String).label("code"), *_segment_columns(o.c.feeder_id), o.c.level,
                    true().label("in_service"), true().label("energised"))
             .where(o.c.geom.op("&&")(tile.envelope())))
    if not dead:
        return lines
    dead_lines = (select(func.ST_Transform(s.c.geom, 3857), s.c.code, *_segment_columns(s.c.feeder_id),
                         _level(s.c.from_node_id), s.c.in_service, literal(False))
                  .where(s.c.id.in_(_dead_ids(dead)), tile.holds(s.c.geom)))
    return union_all(lines, dead_lines).subquery("segments").select()  # the grey ones drawn last, on top


def _segments_layer(connection: Connection, tile: Tile) -> Select:
    """The segments in the tile, one by one or generalised by its zoom; energised as of now."""
    dead = _dead_segments(connection)
    return (_segments_one_by_one if tile.z >= SEGMENTS_ONE_BY_ONE else _segments_overview)(tile, dead)


def _devices_layer(connection: Connection, tile: Tile) -> Select:
    d = _devices
    query = (select(d.c.geom, d.c.code, d.c.kind, d.c.name, select(_feeders.c.code).where(_feeders.c.id == d.c.feeder_id)
                    .scalar_subquery().label("feeder"), _level(d.c.from_node_id).label("level"), d.c.normal_state,
                    d.c.current_state, d.c.in_service, d.c.rated_kva)
             .where(tile.holds(d.c.geom)))
    if tile.z < DEVICES_ALL_FROM:
        shown = [DeviceKind.breaker.value, DeviceKind.recloser.value] + (
            [DeviceKind.switch.value] if tile.z >= SWITCHES_FROM else [])
        # The partial index's own predicate first, so that the planner sees it may use it.
        query = query.where(text(DEVICES_FAR_OUT), or_(d.c.kind.in_(shown), d.c.current_state == SwitchState.open))
    return query


def _without_id(query: Select) -> Select:
    """A map layer's query without its ``id`` column (the ``code`` beside it says the same)."""
    layer = query.subquery("layer")
    return select(*[column for column in layer.c if column.key != "id"])


def _areas(connection: Connection, tile: Tile) -> Select:
    return _without_id(LAYERS["transformer_areas"](tile.bbox(), Filters()))


def _service_points(connection: Connection, tile: Tile) -> Select:
    """Customers' service points, held to the signed-in dispatcher's control zone as the map's layer is."""
    return _without_id(LAYERS["service_points"](tile.bbox(), Filters(feeders=control_feeders())))


def register_tile_layers() -> None:
    """Register the network's tile layers with geo's vector tile registry."""
    public = frozenset({PUBLIC})
    for layer in (
        TileLayer("segments", "Line segments", "Every segment: one by one from zoom 14 (code, feeder, colour, "
                  "level, in service, energised), merged per feeder and level further out.", public, _segments_layer,
                  _version, max_zoom=MAX_ZOOM, prepare=ensure_overview),
        TileLayer("devices", "Devices", "Devices with kind, feeder, level, normal and current state; below zoom 14 "
                  "breakers, reclosers, open devices and (from zoom 12) switches only.", public, _devices_layer, _version, max_zoom=MAX_ZOOM),
        TileLayer("transformer_areas", "Transformer areas", "The area each distribution transformer supplies.",
                  public, _areas, _version, min_zoom=AREAS_FROM, max_zoom=MAX_ZOOM),
        TileLayer("service_points", "Service points", "Customers' service points with account numbers and "
                  "addresses, for dispatchers and planners (a dispatcher's control zone only).",
                  frozenset(NETWORK_READERS), _service_points, _version, min_zoom=SERVICE_POINTS_FROM,
                  max_zoom=MAX_ZOOM),
    ):
        tiles.register(layer)
