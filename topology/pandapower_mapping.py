"""A pandapower net as ``NetworkFrames``: buses, lines, switches, transformers, sources and loads.

The mapping keeps pandapower's meaning (docs/data-format.md, section "pandapower"):

- every element keeps the code ``pp:<table>:<index>``; elements the mapping derives carry the
  code of the element they come from plus a suffix (``pp:switch:99:node``, ``pp:trafo:0:area``,
  ``pp:line:3:feeder``, ``pp:bus:39:substation``);
- a switch is a device in series at the end of the element it belongs to, so an open line
  switch cuts its line and an open transformer switch its transformer, as in pandapower's graph;
- only ext_grids and slack gens are sources; out-of-service elements stay out of service;
- a net whose buses lack coordinates is laid out schematically from its graph around an origin
  the caller gives (``schematic_layout``), and every element is marked ``schematic``.

Errors name the pandapower table and the element's index (``ImportFailed("switch", 99, ...)``).
"""
from __future__ import annotations

import json
import math
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, Point
from shapely.ops import substring

from geo.errors import ImportFailed, Invalid
from geo.i18n import _
from topology.loader import LAYERS, NetworkFrames

__all__ = ["frames_from_net", "code", "schematic_layout", "layered_tree", "SWITCH_OFFSET_DEG", "SCHEMATIC_STEP_M"]

# A line switch sits this far (degrees, ~10 m) along its line from the bus, so that the
# switches of a station are separate points on the map; at most a tenth of a short line.
SWITCH_OFFSET_DEG = 1e-4
# Lines whose two ends are at the same place get this much length so that they stay valid.
_MIN_LENGTH_DEG = 1e-6
# Branch tables pandapower's graph treats as plain connections; imported as segments.
_CONNECTION_TABLES = ("impedance", "tcsc", "dcline")
# Tables pandapower's graph knows that have no counterpart here.
_UNSUPPORTED_TABLES = ("vsc", "line_dc", "bus_dc")
# One step of the schematic layout, in metres: from a bus to the next one down the graph, and
# between neighbouring branches. A short span of overhead line: at street zoom every bus stands
# apart, with its line switches (SWITCH_OFFSET_DEG, about 10 m) beside it.
SCHEMATIC_STEP_M = 100.0
# Metres in a degree of latitude (and of longitude at the equator), a mean over WGS 84: the
# layout is schematic, so 0.5 % of scale does not matter.
_METRES_PER_DEGREE = 111_320.0
# The web map (Web Mercator) shows latitudes up to here; a layout beyond could not be seen.
_MAP_LATITUDE = 85.05


def code(table: str, index: Any, *suffix: str) -> str:
    """The external code of a pandapower element (``pp:switch:99``) or of what derives from it.

    >>> code("switch", np.int64(99), "node")
    'pp:switch:99:node'
    """
    return ":".join(("pp", table, str(int(index)), *suffix))


def frames_from_net(net, origin: tuple[float, float] | None = None) -> NetworkFrames:
    """Map a pandapower net onto ``NetworkFrames`` (no database involved).

    When every bus has coordinates the elements are where those put them and ``origin`` is
    not used. Otherwise the whole net is laid out schematically around ``origin`` (longitude,
    latitude; ``schematic_layout``), the lines' own ``geo`` is not used either, and every row
    has ``schematic`` true; without an origin such a net is refused, naming a bus without
    coordinates.

    Notes
    -----
    Linear in the number of elements, plus two breadth-first searches for feeders and
    transformer areas (and one for the layout).
    """
    _refuse_unsupported(net)
    _check_bus_references(net)
    points, schematic = _bus_points(net, origin)
    rows = _Rows(schematic=schematic)
    switches = _switch_table(net)
    lines = _table(net, "line")
    # A line's own geo would join its schematic buses by a geographic path.
    line_geoms = pd.Series(np.full(len(lines), None, dtype=object) if schematic else _parse_geo("line", lines),
                           index=lines.index, dtype=object)
    _add_buses(net, points, rows)
    terminals = _add_switches(net, switches, points, line_geoms, rows)
    _add_lines(net, points, line_geoms, terminals, rows)
    _add_connections(net, points, rows)
    _add_transformers(net, points, terminals, rows)
    _add_sources(net, rows)
    _add_loads(net, points, rows)
    _derive_feeders_and_areas(net, switches, points, rows)
    return rows.frames()


# -- collecting rows -----------------------------------------------------------------------------
@dataclass
class _Rows:
    """Rows per layer as dicts, plus what the derivation step needs to know about them."""

    layers: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    # code -> (pandapower table, index) of the element each derived node or device belongs to
    owner: dict[str, tuple[str, int]] = field(default_factory=dict)
    # every element placed by the schematic layout (the whole net is, or none of it)
    schematic: bool = False

    def add(self, layer: str, **row) -> None:
        """Add one row to a layer."""
        self.layers[layer].append(row)

    def frames(self) -> NetworkFrames:
        """The rows as ``NetworkFrames``, every layer with all its columns."""
        frames = NetworkFrames()
        for name, layer in LAYERS.items():
            columns = layer.column_names + (["geometry"] if layer.geometry else [])
            frame = pd.DataFrame(self.layers.get(name, []), columns=columns)
            if "schematic" in columns:
                frame["schematic"] = pd.Series(self.schematic, index=frame.index, dtype=bool)
            setattr(frames, name, frame)
        return frames


def _table(net, name: str) -> pd.DataFrame:
    """A table of the net, empty when the net has none (older nets miss newer tables)."""
    table = net[name] if name in net else None
    return table if isinstance(table, pd.DataFrame) else pd.DataFrame()


def _rows(table: pd.DataFrame) -> Iterable[tuple[int, Any]]:
    """(index as int, row) pairs: pandapower indices are not contiguous, so never use positions."""
    for index, row in zip(table.index, table.itertuples(index=False)):
        yield int(index), row


def _in_service(row) -> bool:
    """A row's ``in_service``; true when the table has no such column or no value."""
    value = getattr(row, "in_service", True)
    return bool(value) if pd.notna(value) else True


def _name(row) -> str | None:
    """A row's ``name`` column (from ``itertuples``), None when blank."""
    return _text(getattr(row, "name", None))


def _text(value) -> str | None:
    """A stripped string, None when blank or not a string."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def _number(value) -> float | None:
    """A finite float, or None."""
    return float(value) if value is not None and pd.notna(value) and np.isfinite(float(value)) else None


# -- checks --------------------------------------------------------------------------------------
def _refuse_unsupported(net) -> None:
    """Refuse the DC tables, which have no counterpart here."""
    for name in _UNSUPPORTED_TABLES:
        table = _table(net, name)
        if len(table):
            raise ImportFailed(name, int(table.index[0]), _("pandapower %(name)s elements are not supported", name=name))


_BUS_COLUMNS = {
    "line": ("from_bus", "to_bus"), "trafo": ("hv_bus", "lv_bus"), "trafo3w": ("hv_bus", "mv_bus", "lv_bus"),
    "switch": ("bus",), "ext_grid": ("bus",), "gen": ("bus",), "load": ("bus",),
    **{name: ("from_bus", "to_bus") for name in _CONNECTION_TABLES},
}


def _check_bus_references(net) -> None:
    """Every bus an element names exists; a branch joins two different buses."""
    buses = net.bus.index
    for name, columns in _BUS_COLUMNS.items():
        table = _table(net, name)
        if not len(table):
            continue
        for column in columns:
            unknown = ~table[column].isin(buses)
            if unknown.any():
                index = table.index[np.flatnonzero(unknown.to_numpy())[0]]
                raise ImportFailed(name, int(index), _("%(column)s %(bus)s is not a bus of the net", column=column, bus=int(table.at[index, column])))
        if len(columns) > 1:
            same = np.zeros(len(table), dtype=bool)
            for first, second in zip(columns, columns[1:]):
                same |= table[first].to_numpy() == table[second].to_numpy()
            if same.any():
                raise ImportFailed(name, int(table.index[np.flatnonzero(same)[0]]), _("connects a bus to itself"))


# -- geometry ------------------------------------------------------------------------------------
def _parse_geo(table_name: str, table: pd.DataFrame) -> np.ndarray:
    """Shapely geometries of a table's ``geo`` column (GeoJSON strings or dicts); None where absent."""
    if "geo" not in table.columns:
        return np.full(len(table), None, dtype=object)
    texts = np.array([json.dumps(value) if isinstance(value, dict) else
                      value if isinstance(value, str) and value.strip() else None
                      for value in table["geo"]], dtype=object)
    geoms = shapely.from_geojson(texts, on_invalid="ignore")
    unreadable = (texts != None) & shapely.is_missing(geoms)  # noqa: E711 (elementwise)
    if unreadable.any():
        position = int(np.flatnonzero(unreadable)[0])
        raise ImportFailed(table_name, int(table.index[position]), _("geo is not a GeoJSON geometry"))
    return geoms


def _bus_points(net, origin: tuple[float, float] | None) -> tuple[pd.Series, bool]:
    """Each bus's point, and whether the points are a schematic layout.

    Geographic when every bus has coordinates (``_located_points``); else the schematic layout
    around ``origin``, or a refusal naming the first bus without coordinates when there is none.
    """
    points = _located_points(net)
    missing = shapely.is_missing(points.to_numpy())
    if missing.any():
        if origin is None:
            raise ImportFailed("bus", int(points.index[np.flatnonzero(missing)[0]]),
                               _("has no coordinates (no geo, no bus_geodata, no line geo ending there); give an "
                                 "origin, --origin LON,LAT, to lay the net out schematically"))
        return schematic_layout(net, origin), True
    for bus, geom in points.items():
        if geom.geom_type != "Point":
            raise ImportFailed("bus", int(bus), _("geo must be a Point, not a %(geom_type)s", geom_type=geom.geom_type))
        if not (-180 <= geom.x <= 180 and -90 <= geom.y <= 90):
            raise ImportFailed("bus", int(bus), _("coordinates (%(x)s, %(y)s) are not longitude/latitude", x=geom.x, y=geom.y))
    return points, False


def _located_points(net) -> pd.Series:
    """Each bus's own coordinates: its ``geo``, else the old ``bus_geodata``, else the end of a
    line with ``geo`` there; None where it has none."""
    geoms = _parse_geo("bus", net.bus)
    points = pd.Series(geoms, index=net.bus.index, dtype=object)
    geodata = _table(net, "bus_geodata")
    if len(geodata) and {"x", "y"} <= set(geodata.columns):
        known = geodata.index.intersection(points.index[shapely.is_missing(points.to_numpy())])
        points.loc[known] = shapely.points(geodata.loc[known, ["x", "y"]].to_numpy(dtype=float))
    missing = shapely.is_missing(points.to_numpy())
    if missing.any():
        lines = _table(net, "line")
        line_geoms = _parse_geo("line", lines) if len(lines) else np.array([], dtype=object)
        for (index, line), geom in zip(_rows(lines), line_geoms):
            if geom is None or geom.geom_type != "LineString":
                continue
            for bus, end in ((line.from_bus, 0), (line.to_bus, -1)):
                if shapely.is_missing(points.at[bus]):
                    points.at[bus] = Point(geom.coords[end])
    return points


def _line_geometry(index: int, geom, start: Point, end: Point) -> LineString:
    """The line's own geometry when it has a usable one, else a straight line between its buses."""
    if geom is not None and geom.geom_type == "MultiLineString":
        geom = shapely.line_merge(geom)
    if geom is None or geom.geom_type != "LineString" or not geom.is_valid:
        geom = LineString([start, end])
    elif Point(geom.coords[0]).distance(start) > Point(geom.coords[0]).distance(end):
        geom = geom.reverse()  # drawn from to_bus to from_bus
    if not (-180 <= geom.bounds[0] and geom.bounds[2] <= 180 and -90 <= geom.bounds[1] and geom.bounds[3] <= 90):
        raise ImportFailed("line", index, _("geo coordinates are not longitude/latitude"))
    if geom.length < _MIN_LENGTH_DEG:
        x, y = geom.coords[0]
        geom = LineString([(x, y), (x + _MIN_LENGTH_DEG, y)])
    return geom


# -- schematic layout -----------------------------------------------------------------------------
def schematic_layout(net, origin: tuple[float, float]) -> pd.Series:
    """Each bus's point in a schematic layout of the net's graph around ``origin`` (lon, lat).

    The buses form a layered tree (``layered_tree``) grown from the sources (ext_grids, then
    slack gens) over every branch, whatever its switches and service state, so that the drawing
    does not change when a switch is operated. Depth runs south, branches spread west to east,
    ``SCHEMATIC_STEP_M`` apart both ways, converted to degrees at the origin's latitude; the
    top row is centred on the origin. Raises ``Invalid`` when the layout would not fit on the
    web map around ``origin`` (beyond 85.05° of latitude, or across the 180th meridian).

    Notes
    -----
    Linear in buses and branches, up to sorting neighbours; deterministic.
    """
    longitude, latitude = origin
    roots = [int(grid.bus) for _index, grid in _rows(_table(net, "ext_grid"))]
    roots += [int(gen.bus) for _index, gen in _rows(_table(net, "gen")) if bool(getattr(gen, "slack", False))]
    places = layered_tree([int(bus) for bus in net.bus.index], _bus_pairs(net), roots)
    slots = np.array([slot for slot, _depth in places.values()], dtype=float)
    depths = np.array([depth for _slot, depth in places.values()], dtype=float)
    east = (slots - (slots.min() + slots.max()) / 2) * SCHEMATIC_STEP_M if len(slots) else slots
    south = depths * SCHEMATIC_STEP_M
    per_degree_east = _METRES_PER_DEGREE * math.cos(math.radians(latitude))
    lons = longitude + east / per_degree_east if per_degree_east > 0 else np.full(len(east), np.inf)
    lats = latitude - south / _METRES_PER_DEGREE
    if len(lons) and not (np.all(np.abs(lons) <= 180) and np.all(np.abs(lats) <= _MAP_LATITUDE)):
        raise Invalid(_("a schematic layout %(width).1f km wide and %(height).1f km high does not fit around "
                        "%(longitude)g, %(latitude)g on the map; choose an origin further from the poles and "
                        "the 180th meridian", width=(np.ptp(east) + SCHEMATIC_STEP_M) / 1000,
                        height=(np.ptp(south) + SCHEMATIC_STEP_M) / 1000, longitude=longitude, latitude=latitude),
                      field="origin")
    return pd.Series(list(shapely.points(lons, lats)), index=net.bus.index, dtype=object)


def _bus_pairs(net) -> list[tuple[int, int]]:
    """The buses every branch and bus-bus switch joins, in or out of service, open or closed."""
    pairs = []
    for name, columns in _BUS_COLUMNS.items():
        table = _table(net, name)
        if len(columns) > 1 and len(table):
            ends = table[list(columns)].to_numpy(dtype=np.int64)
            pairs += [(int(row[0]), int(other)) for row in ends for other in row[1:]]
    switch = _table(net, "switch")
    if len(switch):
        couplers = switch[switch["et"] == "b"]
        pairs += list(zip(couplers["bus"].astype(int).tolist(), couplers["element"].astype(int).tolist()))
    return pairs


def layered_tree(nodes: Iterable[int], edges: Iterable[tuple[int, int]],
                 roots: Iterable[int]) -> dict[int, tuple[float, int]]:
    """``{node: (slot, depth)}``: a layered drawing of a graph as the tree of a breadth-first search.

    The search starts from all ``roots`` at once (each node hangs on the root nearest to it)
    and visits neighbours in increasing order; nodes no root reaches start trees of their
    own, lowest node first. Leaves take consecutive slots in depth-first order, trees one
    empty slot apart, and every parent sits midway between its first and last child: each
    subtree has a slot range of its own, so no two nodes share a (slot, depth).

    Examples
    --------
    A root 0 with a ring 1-2-3 below it, and a node 4 no root reaches::

        0
        |
        1
        | \\
        2 - 3     4

    >>> layered_tree([0, 1, 2, 3, 4], [(0, 1), (1, 2), (1, 3), (2, 3)], [0])
    {0: (0.5, 0), 1: (0.5, 1), 2: (0.0, 2), 3: (1.0, 2), 4: (3.0, 0)}

    Notes
    -----
    O(n + m log m) for n nodes and m edges (the neighbours are sorted); no recursion, so
    a long radial chain is no problem.
    """
    nodes = list(nodes)
    depth, children, order, trees = _search_tree(nodes, edges, roots)
    slot: dict[int, float] = {}
    free = 0
    for tree in trees:
        stack = [tree]
        while stack:
            node = stack.pop()
            if children[node]:
                stack.extend(reversed(children[node]))
            else:
                slot[node], free = float(free), free + 1
        free += 1
    for node in reversed(order):  # children come after their parent in breadth-first order
        if children[node]:
            slot[node] = (slot[children[node][0]] + slot[children[node][-1]]) / 2
    return {node: (slot[node], depth[node]) for node in nodes}


def _search_tree(nodes: list[int], edges: Iterable[tuple[int, int]], roots: Iterable[int]):
    """The tree of ``layered_tree``'s search: (depth, children, visiting order, tree roots)."""
    adjacency: dict[int, set[int]] = defaultdict(set)
    for first, second in edges:
        adjacency[first].add(second)
        adjacency[second].add(first)
    depth: dict[int, int] = {}
    children: dict[int, list[int]] = defaultdict(list)
    order, trees = [], []
    for starts in (list(dict.fromkeys(roots)), *([node] for node in sorted(nodes))):
        queue = deque(start for start in starts if start not in depth)
        trees += queue
        depth.update((start, 0) for start in queue)
        while queue:
            node = queue.popleft()
            order.append(node)
            for neighbour in sorted(adjacency[node]):
                if neighbour not in depth:
                    depth[neighbour] = depth[node] + 1
                    children[node].append(neighbour)
                    queue.append(neighbour)
    return depth, children, order, trees


# -- switches ------------------------------------------------------------------------------------
def _switch_table(net) -> pd.DataFrame:
    """The switch table, checked: each switch joins two buses or sits at an end of its element."""
    switch = _table(net, "switch")
    if not len(switch):
        return pd.DataFrame({"bus": [], "element": [], "et": [], "closed": [], "type": [], "name": []})
    ends = {"l": ("line", ("from_bus", "to_bus")), "t": ("trafo", ("hv_bus", "lv_bus")),
            "t3": ("trafo3w", ("hv_bus", "mv_bus", "lv_bus"))}
    for index, row in _rows(switch):
        if row.et == "b":
            if int(row.element) not in net.bus.index:
                raise ImportFailed("switch", index, _("element %(element)s is not a bus of the net", element=int(row.element)))
            if int(row.element) == int(row.bus):
                raise ImportFailed("switch", index, _("joins a bus to itself"))
            continue
        if row.et not in ends:
            raise ImportFailed("switch", index, _("unknown element type et=%(et)r; expected l, t, t3 or b", et=row.et))
        table_name, columns = ends[row.et]
        table = _table(net, table_name)
        if int(row.element) not in table.index:
            raise ImportFailed("switch", index, _("element %(element)s is not a %(table_name)s of the net", element=int(row.element), table_name=table_name))
        if int(row.bus) not in {int(table.at[int(row.element), column]) for column in columns}:
            raise ImportFailed("switch", index, _("bus %(bus)s is not an end of %(table_name)s %(element)s", bus=int(row.bus), table_name=table_name, element=int(row.element)))
    return switch


def _switch_kind(value) -> str:
    """pandapower's switch type: CB is a breaker; LBS, LS, DS and anything else a switch."""
    return "breaker" if isinstance(value, str) and value.strip().upper() == "CB" else "switch"


def _add_switches(net, switch: pd.DataFrame, points: pd.Series, line_geoms: pd.Series, rows: _Rows) -> dict:
    """Add every switch as a device; return ``{(et, element, bus): node}`` where the element now ends.

    An ``l``/``t``/``t3`` switch goes between its bus and a new node, and the element starts at
    that node instead, so that opening the switch cuts the element off the bus. Several
    switches at the same end are chained in index order.
    """
    chains: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    for index, row in _rows(switch):
        state = "closed" if bool(row.closed) else "open"
        common = dict(kind=_switch_kind(row.type), name=_name(row), normal_state=state, current_state=state,
                      in_service=_in_service(row), rated_kva=None, feeder=None)
        if row.et == "b":
            rows.add("devices", code=code("switch", index), from_node=code("bus", row.bus),
                     to_node=code("bus", row.element), geometry=points.at[int(row.bus)], **common)
            rows.owner[code("switch", index)] = ("switch", index)
        else:
            chains[(row.et, int(row.element), int(row.bus))].append(index)
            rows.add("devices", code=code("switch", index), geometry=None, **common)
    by_code = {row["code"]: row for row in rows.layers["devices"]}
    terminals = {}
    for (et, element, bus), indices in chains.items():
        position = points.at[bus]
        if et == "l":
            position = _switch_point(net.line.loc[element], element, line_geoms.at[element], points, bus)
        previous = code("bus", bus)
        owner = {"l": "line", "t": "trafo", "t3": "trafo3w"}[et]
        for index in sorted(indices):
            node = code("switch", index, "node")
            rows.add("nodes", code=node, kind="junction", voltage_kv=_number(net.bus.at[bus, "vn_kv"]),
                     in_service=True, feeder=None, geometry=position)
            device = by_code[code("switch", index)]
            device.update(from_node=previous, to_node=node, geometry=position)
            rows.owner[node] = rows.owner[device["code"]] = (owner, element)
            previous = node
        terminals[(et, element, bus)] = previous
    return terminals


def _switch_point(line, index: int, geom, points: pd.Series, bus: int) -> Point:
    """Where a line switch at ``bus`` sits: a short way along the line from that bus."""
    shape = _line_geometry(index, geom, points.at[int(line.from_bus)], points.at[int(line.to_bus)])
    offset = min(SWITCH_OFFSET_DEG, 0.1 * shape.length)
    return shape.interpolate(offset if bus == int(line.from_bus) else shape.length - offset)


# -- elements ------------------------------------------------------------------------------------
def _bus_kind(vn_kv, bus_type) -> str:
    """Node kind of a bus: lv below 1 kV, busbar for type b, else junction."""
    if vn_kv is not None and vn_kv < 1:
        return "lv"
    return "busbar" if bus_type == "b" else "junction"


def _add_buses(net, points: pd.Series, rows: _Rows) -> None:
    """Each bus a node."""
    for index, bus in _rows(net.bus):
        voltage = _number(bus.vn_kv)
        rows.add("nodes", code=code("bus", index), kind=_bus_kind(voltage, getattr(bus, "type", None)),
                 voltage_kv=voltage, in_service=_in_service(bus), feeder=None, geometry=points.at[index])
        rows.owner[code("bus", index)] = ("bus", index)


def _add_lines(net, points: pd.Series, line_geoms: pd.Series, terminals: dict, rows: _Rows) -> None:
    """Each line a segment between its ends (a line switch's node where it has one)."""
    for (index, line), geom in zip(_rows(_table(net, "line")), line_geoms):
        start, end = int(line.from_bus), int(line.to_bus)
        shape = _line_geometry(index, geom, points.at[start], points.at[end])
        offset = min(SWITCH_OFFSET_DEG, 0.1 * shape.length)
        cut_start = offset if ("l", index, start) in terminals else 0.0
        cut_end = shape.length - offset if ("l", index, end) in terminals else shape.length
        if cut_start or cut_end < shape.length:
            shape = substring(shape, cut_start, cut_end)
        length_km = _number(getattr(line, "length_km", None))
        rows.add("segments", code=code("line", index),
                 from_node=terminals.get(("l", index, start), code("bus", start)),
                 to_node=terminals.get(("l", index, end), code("bus", end)), feeder=None,
                 length_m=None if length_km is None else length_km * 1000.0,
                 conductor=line.std_type if isinstance(getattr(line, "std_type", None), str) else None,
                 ampacity_a=_amperes(getattr(line, "max_i_ka", None), getattr(line, "parallel", None)), in_service=_in_service(line), geometry=shape)
        rows.owner[code("line", index)] = ("line", index)


def _add_connections(net, points: pd.Series, rows: _Rows) -> None:
    """Impedances, TCSCs and DC lines connect two buses in pandapower's graph: straight segments."""
    for name in _CONNECTION_TABLES:
        for index, element in _rows(_table(net, name)):
            start, end = int(element.from_bus), int(element.to_bus)
            shape = _line_geometry(index, None, points.at[start], points.at[end])
            rows.add("segments", code=code(name, index), from_node=code("bus", start), to_node=code("bus", end),
                     feeder=None, length_m=None, conductor=name, in_service=_in_service(element), geometry=shape)
            rows.owner[code(name, index)] = (name, index)


def _add_transformers(net, points: pd.Series, terminals: dict, rows: _Rows) -> None:
    """A trafo is a transformer device hv -> lv with its area; a trafo3w a star of three."""
    for index, trafo in _rows(_table(net, "trafo")):
        hv, lv = int(trafo.hv_bus), int(trafo.lv_bus)
        device = code("trafo", index)
        rows.add("devices", code=device, kind="transformer", name=_name(trafo),
                 from_node=terminals.get(("t", index, hv), code("bus", hv)),
                 to_node=terminals.get(("t", index, lv), code("bus", lv)), feeder=None,
                 normal_state="closed", current_state="closed", in_service=_in_service(trafo),
                 rated_kva=_kva(getattr(trafo, "sn_mva", None)), geometry=points.at[lv])
        rows.owner[device] = ("trafo", index)
        rows.add("transformer_areas", code=code("trafo", index, "area"), name=_name(trafo), transformer=device,
                 geometry=None)
    for index, trafo in _rows(_table(net, "trafo3w")):
        star = code("trafo3w", index)
        rows.add("nodes", code=star, kind="junction", voltage_kv=None, in_service=True, feeder=None,
                 geometry=points.at[int(trafo.hv_bus)])
        rows.owner[star] = ("trafo3w", index)
        for side in ("hv", "mv", "lv"):
            bus = int(getattr(trafo, f"{side}_bus"))
            end = terminals.get(("t3", index, bus), code("bus", bus))
            device = code("trafo3w", index, side)
            rows.add("devices", code=device, kind="transformer", name=_name(trafo),
                     from_node=end if side == "hv" else star, to_node=star if side == "hv" else end, feeder=None,
                     normal_state="closed", current_state="closed", in_service=_in_service(trafo),
                     rated_kva=_kva(getattr(trafo, f"sn_{side}_mva", None)), geometry=points.at[bus])
            rows.owner[device] = ("trafo3w", index)
            if side != "hv":
                rows.add("transformer_areas", code=code("trafo3w", index, side, "area"), name=_name(trafo),
                         transformer=device, geometry=None)


def _amperes(kiloamperes, parallel) -> float | None:
    """A line's ``max_i_ka`` as A, for all its ``parallel`` systems together (pandapower's meaning)."""
    value, systems = _number(kiloamperes), _number(parallel)
    return None if value is None else value * 1000.0 * (1.0 if systems is None else systems)


def _kva(mva) -> float | None:
    """MVA as kVA."""
    value = _number(mva)
    return None if value is None else value * 1000.0


def _kw(p_mw, scaling) -> float | None:
    """A load's active power in kW, scaled as pandapower scales it (``scaling`` defaults to 1)."""
    value, factor = _number(p_mw), _number(scaling)
    return None if value is None else value * 1000.0 * (1.0 if factor is None else factor)


def _add_sources(net, rows: _Rows) -> None:
    """ext_grids and slack gens feed the network; other generators do not."""
    for index, grid in _rows(_table(net, "ext_grid")):
        rows.add("sources", code=code("ext_grid", index), kind="ext_grid", node=code("bus", grid.bus),
                 substation=None, in_service=_in_service(grid))
    for index, gen in _rows(_table(net, "gen")):
        if bool(getattr(gen, "slack", False)):
            rows.add("sources", code=code("gen", index), kind="generator", node=code("bus", gen.bus),
                     substation=None, in_service=_in_service(gen))


def _add_loads(net, points: pd.Series, rows: _Rows) -> None:
    """Each load is a customer on its bus; its account number is its code, spelled PP-LOAD-<index>."""
    for index, load in _rows(_table(net, "load")):
        rows.add("service_points", code=code("load", index), account_number=f"PP-LOAD-{index}", name=_name(load),
                 phone=None, address=None, node=code("bus", load.bus), transformer_area=None,
                 demand_kw=_kw(getattr(load, "p_mw", None), getattr(load, "scaling", None)),
                 in_service=_in_service(load), geometry=points.at[int(load.bus)])
        rows.owner[code("load", index)] = ("bus", int(load.bus))


# -- feeders, substations, transformer areas -----------------------------------------------------
def _normal_edges(net, switch: pd.DataFrame) -> list[tuple[int, int, str, tuple[str, int]]]:
    """The bus-to-bus connections of the normal state: (bus, bus, kind, element)."""
    opened = switch[~switch["closed"].astype(bool)] if len(switch) else switch
    open_at = {(row.et, int(row.element), int(row.bus)) for _, row in _rows(opened)}
    open_elements = {(et, element) for et, element, _ in open_at}
    edges = []
    for index, line in _rows(_table(net, "line")):
        if _in_service(line) and ("l", index) not in open_elements:
            edges.append((int(line.from_bus), int(line.to_bus), "line", ("line", index)))
    for name in _CONNECTION_TABLES:
        for index, element in _rows(_table(net, name)):
            if _in_service(element):
                edges.append((int(element.from_bus), int(element.to_bus), "line", (name, index)))
    for index, trafo in _rows(_table(net, "trafo")):
        if _in_service(trafo) and ("t", index) not in open_elements:
            edges.append((int(trafo.hv_bus), int(trafo.lv_bus), "trafo", ("trafo", index)))
    for index, trafo in _rows(_table(net, "trafo3w")):
        buses = [int(trafo.hv_bus), int(trafo.mv_bus), int(trafo.lv_bus)]
        for first, second in ((0, 1), (0, 2), (1, 2)):
            pair = (buses[first], buses[second])
            if _in_service(trafo) and not any(("t3", index, bus) in open_at for bus in pair):
                edges.append((*pair, "trafo", ("trafo3w", index)))
    for index, row in _rows(switch):
        if row.et == "b" and bool(row.closed):
            edges.append((int(row.bus), int(row.element), "bus_switch", ("switch", index)))
    return edges


def _search(adjacency: dict, seeds: Iterable[tuple[int, str]], enter: Callable[[int], bool],
            cross: Callable[[str], bool]) -> dict[int, str]:
    """Multi-source breadth-first search: each bus gets the label of the first seed to reach it.

    Only buses for which ``enter`` holds are visited, over connections whose kind ``cross`` allows.
    """
    label = {}
    queue = deque()
    for bus, name in seeds:
        if bus not in label and enter(bus):
            label[bus] = name
            queue.append(bus)
    while queue:
        bus = queue.popleft()
        for neighbour, kind in adjacency[bus]:
            if neighbour not in label and cross(kind) and enter(neighbour):
                label[neighbour] = label[bus]
                queue.append(neighbour)
    return label


def _derive_feeders_and_areas(net, switch: pd.DataFrame, points: pd.Series, rows: _Rows) -> None:
    """Substations, feeders and each load's transformer area, from the normal state.

    A substation is a group of buses joined to an in-service source by transformers and bus
    switches only; each in-service line leaving it starts a feeder, which holds the buses the
    normal state reaches from that line without going back into a substation. A load belongs
    to the area of the first transformer found from the load's bus without crossing another.
    """
    in_service = set(net.bus.index[net.bus["in_service"].astype(bool)]) if len(net.bus) else set()
    adjacency: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for first, second, kind, _element in _normal_edges(net, switch):
        adjacency[first].append((second, kind))
        adjacency[second].append((first, kind))
    source_buses = sorted({int(row["node"].split(":")[2]) for row in rows.layers["sources"] if row["in_service"]})
    # Each station's buses are labelled with the code of a substation named after its lowest source bus.
    station = _search(adjacency, [(bus, code("bus", bus, "substation")) for bus in source_buses],
                      enter=in_service.__contains__, cross=lambda kind: kind in ("trafo", "bus_switch"))
    for substation in sorted(set(station.values()), key=lambda text: int(text.split(":")[2])):
        bus = int(substation.split(":")[2])
        name = _text(net.bus.at[bus, "name"]) if "name" in net.bus.columns else None
        rows.add("substations", code=substation, name=f"Substation {name}" if name else None, geometry=points.at[bus])
    for row in rows.layers["sources"]:
        row["substation"] = station.get(int(row["node"].split(":")[2]))

    heads = []
    for index, line in _rows(_table(net, "line")):
        ends = (int(line.from_bus), int(line.to_bus))
        inside = [bus in station for bus in ends]
        if _in_service(line) and sum(inside) == 1:
            busbar, far = ends if inside[0] else ends[::-1]
            feeder = code("line", index, "feeder")
            rows.add("feeders", code=feeder, name=_name(line), substation=station[busbar],
                     voltage_kv=_number(net.bus.at[busbar, "vn_kv"]))
            heads.append((far, feeder, index))
    feeder_of = _search(adjacency, [(far, feeder) for far, feeder, _ in heads],
                        enter=lambda bus: bus in in_service and bus not in station, cross=lambda kind: True)
    head_lines = {index: feeder for _, feeder, index in heads}

    areas = [(int(trafo.lv_bus), code("trafo", index, "area"))
             for index, trafo in _rows(_table(net, "trafo")) if _in_service(trafo)]
    areas += [(int(getattr(trafo, f"{side}_bus")), code("trafo3w", index, side, "area"))
              for index, trafo in _rows(_table(net, "trafo3w")) if _in_service(trafo) for side in ("mv", "lv")]
    area_of = _search(adjacency, areas, enter=in_service.__contains__, cross=lambda kind: kind != "trafo")

    _label_elements(net, rows, feeder_of, head_lines, area_of)


def _label_elements(net, rows: _Rows, feeder_of: dict, head_lines: dict, area_of: dict) -> None:
    """Give nodes, segments, devices and service points the feeder / area of where they hang.

    An element takes the feeder its line heads, else the feeder of its first bus that has one
    (a transformer's high-voltage side first).
    """
    def element_feeder(table: str, index: int) -> str | None:
        """The feeder of a pandapower element."""
        if table == "line" and index in head_lines:
            return head_lines[index]
        return next((feeder_of[bus] for bus in _ends(net, table, index) if bus in feeder_of), None)

    for layer in ("segments", "devices", "nodes"):
        for row in rows.layers[layer]:
            row["feeder"] = element_feeder(*rows.owner[row["code"]])
    for row in rows.layers["service_points"]:
        row["transformer_area"] = area_of.get(rows.owner[row["code"]][1])


def _ends(net, table: str, index: int) -> list[int]:
    """The buses an element connects (a bus: itself)."""
    if table == "bus":
        return [index]
    columns = ("bus", "element") if table == "switch" else _BUS_COLUMNS[table]  # only b switches get here
    return [int(net[table].at[index, column]) for column in columns]
