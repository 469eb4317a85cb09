"""Traces over a ``Topology``: energised, affected customers, downstream, upstream, isolation, connected.

Elements are named by their external codes. Semantics (docs/tracing.md):

- **energised**: reachable from an in-service source over conducting edges; an edge conducts
  when it and both its nodes are in service and, for a device, when it is closed.
- **affected** by a change (devices opened, elements taken out of service): the service
  points energised before it and not after.
- **downstream** of X: what loses supply if X opens (switchgear) or fails (anything else).
- **upstream** of X: the path from X to its source, with the protective devices on it.
- **isolation** of a fault on X: the switchgear on every side of X's switching zone beyond
  which a source can be reached, and the customers that opening them costs.
- **connected** to X: everything reachable over in-service elements, whatever the switch states.

``affected`` answers radial sections from slices of their DFS preorder and meshed sections
with a multi-source search over that section only; ``recompute_affected`` is the plain full
recomputation with networkx, the oracle of the property tests and the benchmark's baseline.

Examples
--------
>>> from topology.index import Topology
>>> from topology.network import network_data_from_lists
>>> data = network_data_from_lists(
...     nodes=["src", "a", "b", "c"], sources=[("S", "src")],
...     edges=[("B1", "breaker", "src", "a", True), ("s1", "segment", "a", "b", True),
...            ("F1", "fuse", "b", "c", True)],
...     service_points=[("C1", "b"), ("C2", "c")])
>>> topology = Topology(data)
>>> affected_by_codes(topology, open=["F1"]).customer_codes()
['C2']
>>> upstream(topology, "c").as_dict()["protective_devices"]
[{'code': 'F1', 'kind': 'fuse', 'state': 'closed'}, {'code': 'B1', 'kind': 'breaker', 'state': 'closed'}]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Iterable, Sequence

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from geo.errors import Invalid, NotFound, Unprocessable
from geo.i18n import Joined, _
from topology.index import REMOVED, ROOT, Meshed, Radial, SplitGraph, Topology
from topology.models import PROTECTIVE, SWITCHGEAR
from topology.network import EDGE_TABLES, NetworkData
from topology.nxview import to_networkx

__all__ = [
    "Element", "Part", "SupplyLoss", "resolve", "affected", "affected_by_codes", "downstream", "DeviceOnPath",
    "Upstream", "upstream", "IsolatingDevice", "Isolation", "isolation", "Elements", "Connected", "connected", "SupplyState", "supply_state", "Deenergised", "deenergised",
    "recompute_affected", "energised_by_networkx", "outside_zone",
]


# -- naming elements -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Element:
    """A network element by position: ``table`` is node, edge or service_point."""

    table: str
    index: int
    code: str

    def type(self, data: NetworkData) -> str:
        """``node``, ``service_point``, ``segment`` or the device's kind."""
        return data.kind_of(self.index) if self.table == "edge" else self.table

    def describe(self, data: NetworkData) -> str:
        """``segment s1``, ``switch SW1``, ``node a``, ``service point C1`` (in the reader's language)."""
        kind = self.type(data)
        return _("%(kind)s %(code)s", kind=_ELEMENT_NAMES.get(kind, kind), code=self.code)


# What each type of element is called in a message.
_ELEMENT_NAMES = {"segment": _("segment"), "breaker": _("breaker"), "recloser": _("recloser"), "switch": _("switch"),
                  "fuse": _("fuse"), "transformer": _("transformer"), "node": _("node"),
                  "service_point": _("service point")}


def resolve(data: NetworkData, codes: Iterable[str]) -> list[Element]:
    """The elements named by ``codes``; ``NotFound`` names every unknown code at once."""
    codes = list(codes)
    found: dict[str, list[Element]] = {code: [] for code in codes}
    for table, stored in (("edge", "segments"), ("edge", "devices"), ("node", "nodes"),
                          ("service_point", "service_points")):
        for code, position in zip(codes, data.find(stored, codes)):
            if position >= 0:
                found[code].append(Element(table, int(position), code))
    unknown = [code for code, matches in found.items() if not matches]
    if unknown:
        raise NotFound(_("unknown element code(s): %(unknown)s", unknown=', '.join(map(repr, unknown))), codes=unknown)
    ambiguous = [code for code, matches in found.items() if len(matches) > 1]
    if ambiguous:
        raise Invalid(_("code(s) naming more than one element: %(ambiguous)s", ambiguous=', '.join(map(repr, ambiguous))), codes=ambiguous)
    return [found[code][0] for code in codes]


# -- affected customers ----------------------------------------------------------------------------
Part = tuple[str, str, list[str]]  # elements of a result for a map: (segment | device | service_point, role, codes)


@dataclass
class SupplyLoss:
    """The elements that lose supply in a change: node and service point positions."""

    topology: Topology
    nodes: np.ndarray
    customers: np.ndarray
    removed_edges: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def customer_count(self) -> int:
        """How many service points lose supply."""
        return len(self.customers)

    def customer_codes(self) -> list[str]:
        """The codes of the affected service points (in preorder where radial)."""
        return self.topology.data.sp_code[self.customers].tolist()

    def node_codes(self) -> list[str]:
        """The codes of the nodes that lose supply."""
        return self.topology.data.node_code[self.nodes].tolist()

    def edges(self) -> np.ndarray:
        """The edges energised before the change and not after (in service, one terminal live)."""
        topology, data = self.topology, self.topology.data
        candidates = np.concatenate([data.incident_edges(self.nodes), self.removed_edges])
        lost = np.zeros(data.node_count, dtype=bool)
        lost[self.nodes] = True
        live = topology.energised
        u, v = data.edge_u[candidates], data.edge_v[candidates]
        in_service = data.edge_in_service[candidates]
        before = in_service & (live[u] | live[v])
        after = in_service & ((live[u] & ~lost[u]) | (live[v] & ~lost[v]))
        if len(self.removed_edges):
            after &= ~np.isin(candidates, self.removed_edges)
        return np.unique(candidates[before & ~after])

    def edge_codes(self) -> tuple[list[str], list[str]]:
        """The codes of the segments and of the devices that lose supply (see ``edges``)."""
        data = self.topology.data
        edges = self.edges()
        return (data.edge_code[edges[data.edge_table[edges] == 0]].tolist(),
                data.edge_code[edges[data.edge_table[edges] == 1]].tolist())

    def by_feeder(self) -> dict[str, int]:
        """Affected customers per feeder of their node (``unassigned`` for nodes without one)."""
        return self.topology.data.customers_by_feeder(self.customers)

    def as_dict(self) -> dict:
        """The API's JSON body: counts, codes and customers per feeder."""
        segments, devices = self.edge_codes()
        return {
            "customer_count": self.customer_count, "node_count": len(self.nodes),
            "segment_count": len(segments), "device_count": len(devices),
            "customers": self.customer_codes(),
            "nodes": self.node_codes(),
            "segments": segments,
            "devices": devices,
            "by_feeder": self.by_feeder(),
        }

    def feature_parts(self, role: str = "affected") -> list[Part]:
        """Its segments, devices and customers for a map, each in ``role``."""
        segments, devices = self.edge_codes()
        return [("segment", role, segments), ("device", role, devices), ("service_point", role, self.customer_codes())]


def affected(topology: Topology, open_edges: Sequence[int] = (), out_of_service_edges: Sequence[int] = (),
             out_of_service_nodes: Sequence[int] = ()) -> SupplyLoss:
    """What loses supply when ``open_edges`` open and the other elements go out of service.

    Notes
    -----
    A cut inside a radial section, or on a bridge of a meshed one, loses the subtree below it:
    a slice of the section's preorder, so the cost is that of the answer (a few microseconds for
    one device). Cuts are merged per section as nested-or-disjoint intervals. A cut on a cycle of
    a meshed section loses nothing by itself; two or more cuts in one block, or a node lost in it,
    are told apart by their edges' labels, without a search (docs/tracing.md).
    """
    data = topology.data
    conducting, node_section = topology.conducting, topology.node_section
    removed_edges = np.asarray(out_of_service_edges, dtype=np.int64)
    # Changes name a few elements: plain Python sets beat numpy's per-call overhead here.
    cut = {int(e) for e in open_edges} | set(removed_edges.tolist())
    removed = sorted({int(n) for n in out_of_service_nodes})
    removed = [n for n in removed if node_section[n] != REMOVED]
    lost_roots = [n for n in removed if node_section[n] == ROOT]
    for root in lost_roots:  # a source node lost: every edge it feeds is cut
        cut.update(data.incident_edges(np.array([root])).tolist())
    cut = sorted(e for e in cut if conducting[e])
    intervals, blocks = _cut_sections(topology, cut, removed)

    node_parts, customer_parts = [], []
    if lost_roots:
        node_parts.append(np.array(lost_roots, dtype=np.int64))
        customer_parts.append(data.customers_at(node_parts[0]))
    if blocks:
        _search_blocks(topology, blocks, set(cut), set(removed), intervals, node_parts, customer_parts)
    sections = topology.sections
    for section, spans in intervals.items():
        tree = sections[section]
        nodes, customers, pointer = tree.nodes, tree.customers, tree.cust_ptr
        end = -1
        # spans in a tree, and the parts between their ends, are nested or disjoint: the widest first
        for start, stop in sorted(spans, key=lambda span: (span[0], -span[1])) if len(spans) > 1 else spans:
            if start >= end:
                node_parts.append(nodes[start:stop])
                customer_parts.append(customers[pointer[start]:pointer[stop]])
                end = stop
    return SupplyLoss(topology, _joined(node_parts), _joined(customer_parts), removed_edges)


def _cut_sections(topology: Topology, cut: list[int], removed: list[int]
                  ) -> tuple[dict[int, list[tuple[int, int]]], dict[int, dict[int, list]]]:
    """Where the cuts fall: spans of preorder positions per section (below a radial section's
    edge or a meshed section's bridge), and per meshed section the blocks that need a search,
    each with its cut edges and lost positions."""
    # The index's arrays read once: each is a property of the Topology.
    data, node_section, node_position = topology.data, topology.node_section, topology.node_position
    sections, edge_child = topology.sections, topology.edge_child
    intervals: dict[int, list[tuple[int, int]]] = {}
    blocks: dict[int, dict[int, list]] = {}

    def span_below(section: int, position: int) -> None:
        intervals.setdefault(section, []).append((position, position + int(sections[section].size[position])))

    for edge in cut:
        child = int(edge_child[edge])
        if child >= 0:  # a radial section's edge, or a meshed section's bridge
            span_below(int(node_section[child]), int(node_position[child]))
            continue
        for end in (int(data.edge_u[edge]), int(data.edge_v[edge])):
            section = int(node_section[end])
            if section >= 0 and isinstance(sections[section], Meshed):
                block = int(sections[section].block[node_position[end]])
                blocks.setdefault(section, {}).setdefault(block, [[], []])[0].append(edge)
                break  # an edge on a cycle lies inside one block
    for node in removed:
        section = int(node_section[node])
        if section < 0:
            continue
        tree, position = sections[section], int(node_position[node])
        if isinstance(tree, Radial):
            span_below(section, position)
        elif isinstance(tree, Meshed):
            block = int(tree.block[position])
            if tree.block_entry[block] == position:  # the block's only way in: all below it is lost
                span_below(section, position)
            else:
                blocks.setdefault(section, {}).setdefault(block, [[], []])[1].append(position)
    return intervals, blocks


def _search_blocks(topology: Topology, blocks: dict[int, dict[int, list]], cut: set[int], removed: set[int],
                   intervals: dict[int, list[tuple[int, int]]], node_parts: list, customer_parts: list) -> None:
    """What the cuts and lost nodes inside blocks of meshed sections cost, from the edges' labels
    (``Meshed``): the labels of a block's cut edges (a lost node's edges with them) that XOR to
    zero in some combination are a cut; Gaussian elimination over GF(2) gives a basis of those
    combinations, and each cuts off the positions under an odd number of its tree edges. Those
    positions go to ``intervals`` as spans (with the bridges' subtrees hanging below them). A block
    keeps every node after one cut (it is 2-edge-connected): it costs nothing."""
    data = topology.data
    for section, cut_blocks in blocks.items():
        tree = topology.sections[section]
        for block, (edges, gone) in cut_blocks.items():
            if len(edges) < 2 and not gone:
                continue
            edges = set(edges)
            for position in gone:  # a lost node: every edge it has in the block is cut
                node = np.array([tree.nodes[position]])
                edges.update(e for e in data.incident_edges(node).tolist() if topology.conducting[e])
            # every conducting edge at a section's node is the section's (a source edge too)
            labels, lowers = tree.labels_of(sorted(edges))
            for combination in _dependent(labels):
                spans = [(lowers[i], lowers[i] + int(tree.size[lowers[i]])) for i in combination if lowers[i] >= 0]
                intervals.setdefault(section, []).extend(_odd_parts(spans))


def _dependent(labels: list[int]) -> list[list[int]]:
    """A basis of the combinations of ``labels`` that XOR to zero (as lists of indices): Gaussian
    elimination over GF(2), each label kept with the indices it is the XOR of."""
    pivots: dict[int, tuple[int, int]] = {}  # leading bit -> (reduced label, indices as a bit mask)
    found = []
    for i, label in enumerate(labels):
        value, mask = label, 1 << i
        while value:
            top = value.bit_length() - 1
            if top not in pivots:
                pivots[top] = (value, mask)
                break
            value ^= pivots[top][0]
            mask ^= pivots[top][1]
        if not value:
            found.append([j for j in range(len(labels)) if mask >> j & 1])
    return found


def _odd_parts(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The positions covered by an odd number of ``spans``, as disjoint spans."""
    points: dict[int, int] = {}
    for start, stop in spans:
        points[start] = points.get(start, 0) ^ 1
        points[stop] = points.get(stop, 0) ^ 1
    parts, odd, opened = [], 0, 0
    for point in sorted(points):
        if not points[point]:
            continue
        if not odd:
            opened = point
        elif point > opened:
            parts.append((opened, point))
        odd ^= 1
    return parts


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The parts one after another (the part itself, a view, when there is only one)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _change_from_codes(topology: Topology, open: Sequence[str], out_of_service: Sequence[str]):
    """Positions of the elements of a change; refuses opening anything but switchgear."""
    data = topology.data
    elements = resolve(data, list(open) + list(out_of_service))
    opened, failed = elements[: len(open)], elements[len(open):]
    not_switchgear = [e for e in opened if e.table != "edge" or data.kind_of(e.index) not in SWITCHGEAR]
    if not_switchgear:
        names = Joined(_(", "), [e.describe(data) for e in not_switchgear])
        raise Unprocessable(
            _("only breakers, reclosers, switches and fuses can be opened; %(names)s cannot (list a failed element under out_of_service instead)", names=names),
            codes=[e.code for e in not_switchgear])
    customers = [e for e in failed if e.table == "service_point"]
    if customers:
        raise Unprocessable(
            _("service points are not network elements; name the node or device that feeds %(codes)s", codes=', '.join(e.code for e in customers)), codes=[e.code for e in customers])
    return ([e.index for e in opened], [e.index for e in failed if e.table == "edge"],
            [e.index for e in failed if e.table == "node"])


def affected_by_codes(topology: Topology, open: Sequence[str] = (), out_of_service: Sequence[str] = ()) -> SupplyLoss:
    """``affected`` for elements named by code."""
    opened, edges, nodes = _change_from_codes(topology, open, out_of_service)
    return affected(topology, opened, edges, nodes)


# -- supply state ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SupplyState:
    """Counts of energised and de-energised customers, and whether the state is radial."""

    topology_version: int
    customers: int
    energised_customers: int
    deenergised_customers: int
    radial: bool
    meshed_sections: int

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return asdict(self)


def supply_state(topology: Topology) -> SupplyState:
    """How many in-service customers are energised and how many not, and how many sections are meshed."""
    data = topology.data
    served = data.sp_in_service
    live = topology.energised[data.sp_node] & served
    meshed = [s for s in topology.sections if s is not None and s.kind == "meshed"]
    return SupplyState(
        topology_version=topology.version[0],
        customers=int(served.sum()),
        energised_customers=int(live.sum()),
        deenergised_customers=int((served & ~live).sum()),
        radial=not meshed,
        meshed_sections=len(meshed),
    )


@dataclass(frozen=True)
class Deenergised:
    """The database ids of the elements without supply (out-of-service service points included)."""

    segment_ids: np.ndarray
    device_ids: np.ndarray
    service_point_ids: np.ndarray


def deenergised(topology: Topology) -> Deenergised:
    """The segments, devices and service points that are not energised in this state."""
    data = topology.data
    dead_edges = np.flatnonzero(~topology.edge_energised(np.arange(data.edge_count)))
    dead_customers = np.flatnonzero(~topology.energised[data.sp_node] | ~data.sp_in_service)
    return Deenergised(segment_ids=data.edge_id[dead_edges[data.edge_table[dead_edges] == 0]],
                       device_ids=data.edge_id[dead_edges[data.edge_table[dead_edges] == 1]],
                       service_point_ids=data.sp_id[dead_customers])


# -- single-element traces -------------------------------------------------------------------------
def _element(topology: Topology, code: str) -> Element:
    """The one element named ``code``."""
    return resolve(topology.data, [code])[0]


def _node_of(topology: Topology, element: Element) -> int | None:
    """The node a node or service point element stands for (None for an edge)."""
    if element.table == "node":
        return element.index
    if element.table == "service_point":
        return int(topology.data.sp_node[element.index])
    return None


def downstream(topology: Topology, code: str) -> tuple[Element, SupplyLoss]:
    """What loses supply if the element opens (switchgear) or fails (anything else)."""
    element = _element(topology, code)
    data = topology.data
    if element.table == "edge":
        if data.kind_of(element.index) in SWITCHGEAR:
            return element, affected(topology, open_edges=[element.index])
        return element, affected(topology, out_of_service_edges=[element.index])
    return element, affected(topology, out_of_service_nodes=[_node_of(topology, element)])


def _path_to_source(topology: Topology, node: int) -> tuple[list[int], list[int]] | None:
    """(edges, nodes) from ``node`` to the nearest source, nearest first; None when not energised."""
    section = int(topology.node_section[node])
    if section == ROOT:
        return [], [node]
    if section < 0 or not topology.sections[section].energised:
        return None
    tree = topology.sections[section]
    if isinstance(tree, Radial):
        edges, nodes, position = [], [node], int(topology.node_position[node])
        while position != -1:
            edges.append(int(tree.parent_edge[position]))
            position = int(tree.parent[position])
            nodes.append(int(tree.nodes[position]) if position != -1 else tree.source_node)
        return edges, nodes
    return _path_in_meshed(topology, np.sort(tree.nodes), node)  # a SplitGraph takes its nodes sorted


def _path_in_meshed(topology: Topology, nodes: np.ndarray, start: int) -> tuple[list[int], list[int]]:
    """The fewest-hops path from ``start`` to a source inside a meshed section (a BFS)."""
    data = topology.data
    graph = SplitGraph(data, topology.conducting, nodes)
    origin = int(graph.local(np.array([start]))[0])
    order, predecessors = breadth_first_order(graph.matrix(), origin, directed=True,
                                              return_predecessors=True)
    n = len(nodes)
    target = int(order[np.argmax(order >= n)])
    hops = [target]
    while hops[-1] != origin:
        hops.append(int(predecessors[hops[-1]]))
    hops.reverse()
    keys = np.minimum(graph.a, graph.b) * graph.size + np.maximum(graph.a, graph.b)
    order_keys = np.argsort(keys)
    path_keys = [min(x, y) * graph.size + max(x, y) for x, y in zip(hops[:-1], hops[1:])]
    edges = graph.edges[order_keys[np.searchsorted(keys[order_keys], path_keys)]].tolist()
    path_nodes = [int(nodes[h]) if h < n else int(graph.virtual_root_node[h - n]) for h in hops]
    return edges, path_nodes


@dataclass(frozen=True)
class DeviceOnPath:
    """A protective device on an upstream path and its current state (open or closed)."""

    code: str
    kind: str
    state: str


@dataclass(frozen=True)
class Upstream:
    """The path from an element to its source: edge and node codes nearest first, and its sources.

    ``segments`` and ``devices`` split ``path`` by table, for a map; ``as_dict`` leaves them out.
    """

    element: str
    energised: bool
    path: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    protective_devices: list[DeviceOnPath] = field(default_factory=list)
    source: str | None = None
    sources: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"element": self.element, "energised": self.energised, "path": self.path, "nodes": self.nodes,
                "protective_devices": [asdict(device) for device in self.protective_devices],
                "source": self.source, "sources": self.sources}

    def feature_parts(self) -> list[Part]:
        """The path's segments and devices for a map, its protective devices in a role of their own."""
        protective = [device.code for device in self.protective_devices]
        return [("segment", "path", self.segments), ("device", "protective", protective),
                ("device", "path", [code for code in self.devices if code not in protective])]


def _path_from_edge(topology: Topology, edge: int) -> tuple[list[int], list[int]] | None:
    """The edge, then the shorter way to a source from one of its nodes that does not run back through it."""
    data = topology.data
    options = [p for p in (_path_to_source(topology, int(data.edge_u[edge])),
                           _path_to_source(topology, int(data.edge_v[edge])))
               if p is not None and edge not in p[0]]
    if not options:
        return None
    edges, nodes = min(options, key=lambda p: len(p[0]))
    return [edge] + edges, nodes


def upstream(topology: Topology, code: str) -> Upstream:
    """The path from the element to its source, with the protective devices on it, nearest first.

    For an edge the path starts with the edge itself and continues from whichever of its
    nodes has the shorter way to a source that does not run back through it. The element
    itself is not listed among the protective devices.
    """
    element = _element(topology, code)
    data = topology.data
    node = _node_of(topology, element)
    found = _path_to_source(topology, node) if node is not None else _path_from_edge(topology, element.index)
    if found is None:
        return Upstream(code, energised=False)
    edges, nodes = found
    edges = np.array(edges, dtype=np.int64)
    sources = data.source_codes_at(nodes[-1])
    protective = [
        DeviceOnPath(data.edge_code[e], data.kind_of(e), "closed" if topology.closed[e] else "open")
        for e in edges.tolist() if data.kind_of(e) in PROTECTIVE and not (element.table == "edge" and e == element.index)
    ]
    return Upstream(code, energised=True, path=data.edge_code[edges].tolist(), nodes=data.node_code[nodes].tolist(),
                    protective_devices=protective, source=sources[0] if sources else None, sources=sources,
                    segments=data.edge_code[edges[data.edge_table[edges] == 0]].tolist(),
                    devices=data.edge_code[edges[data.edge_table[edges] == 1]].tolist())


# -- connected and isolation -----------------------------------------------------------------------
def _physical_labels(topology: Topology) -> np.ndarray:
    """Components over every in-service element, switch states ignored (shared per network)."""
    def build() -> np.ndarray:
        data = topology.data
        keep = data.edge_in_service & data.node_in_service[data.edge_u] & data.node_in_service[data.edge_v]
        return _labels(data.node_count, data.edge_u[keep], data.edge_v[keep])
    return topology.data.shared("physical_labels", build)


def _labels(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component labels of ``count`` nodes joined by the pairs (a, b)."""
    matrix = csr_matrix((np.ones(len(a), np.int8), (a, b)), shape=(count, count))
    return connected_components(matrix, directed=False)[1]


def _ends(topology: Topology, element: Element) -> list[int]:
    """The node of a node or service point, both nodes of an edge."""
    data = topology.data
    node = _node_of(topology, element)
    if node is not None:
        return [node]
    return [int(data.edge_u[element.index]), int(data.edge_v[element.index])]


def outside_zone(topology: Topology, codes: Iterable[str], feeders: frozenset[str]) -> list[str]:
    """The codes whose element touches none of ``feeders`` (by its end nodes' feeders): what a
    dispatcher held to those feeders may not trace. Unknown codes raise ``NotFound``.

    >>> from topology.index import Topology
    >>> from topology.network import network_data_from_lists
    >>> topology = Topology(network_data_from_lists(  # every node on feeder "F1"
    ...     nodes=["src", "a"], sources=[("S", "src")], edges=[("s1", "segment", "src", "a", True)], service_points=[]))
    >>> outside_zone(topology, ["s1"], frozenset({"F1"})), outside_zone(topology, ["s1"], frozenset({"F9"}))
    ([], ['s1'])
    """
    data = topology.data
    outside = []
    for element in resolve(data, codes):
        positions = data.node_feeder[_ends(topology, element)]
        if not {data.feeder_code[p] for p in positions if p >= 0} & feeders:
            outside.append(element.code)
    return outside


@dataclass(frozen=True)
class Elements:
    """Codes and counts of some nodes, the in-service edges between them and their customers."""

    customer_count: int
    node_count: int
    segment_count: int
    device_count: int
    open_device_count: int
    customers: list[str]
    nodes: list[str]
    segments: list[str]
    devices: list[str]
    open_devices: list[str]

    def as_dict(self) -> dict:
        """The API's JSON body (the lists themselves, not copies: a whole network's are millions long)."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


def _elements_on(topology: Topology, nodes: np.ndarray) -> dict:
    """The fields of ``Elements``: codes and counts of the nodes, in-service edges between them and their customers."""
    data = topology.data
    edges = np.unique(data.incident_edges(nodes))
    inside = np.isin(data.edge_u[edges], nodes) & np.isin(data.edge_v[edges], nodes) & data.edge_in_service[edges]
    edges = edges[inside]
    customers = data.customers_at(nodes)
    segments, devices = edges[data.edge_table[edges] == 0], edges[data.edge_table[edges] == 1]
    opened = devices[~topology.closed[devices]]
    return dict(
        customer_count=len(customers), node_count=len(nodes), segment_count=len(segments),
        device_count=len(devices), open_device_count=len(opened),
        customers=data.sp_code[customers].tolist(), nodes=data.node_code[nodes].tolist(),
        segments=data.edge_code[segments].tolist(), devices=data.edge_code[devices].tolist(),
        open_devices=data.edge_code[opened].tolist(),
    )


@dataclass(frozen=True)
class Connected(Elements):
    """What ``element`` reaches over in-service elements, whatever the switch states."""

    element: str

    def feature_parts(self) -> list[Part]:
        """The segments, devices and customers for a map."""
        return [("segment", "connected", self.segments), ("device", "connected", self.devices),
                ("service_point", "connected", self.customers)]


def connected(topology: Topology, code: str) -> Connected:
    """Everything reachable from the element over in-service elements, whatever the switch states."""
    element = _element(topology, code)
    data = topology.data
    ends = [n for n in _ends(topology, element) if data.node_in_service[n]]
    labels = _physical_labels(topology)
    nodes = np.flatnonzero(np.isin(labels, labels[ends])) if ends else np.zeros(0, np.int64)
    nodes = nodes[data.node_in_service[nodes]]
    return Connected(**_elements_on(topology, nodes), element=code)


@dataclass(frozen=True)
class _Zones:
    """Switching zones: components over in-service segments and transformers (never switchgear)."""

    label: np.ndarray       # zone of every node
    device: np.ndarray      # in-service switchgear edges between in-service nodes
    a: np.ndarray           # zone at each such device's from end
    b: np.ndarray           # and at its to end
    fed: np.ndarray         # whether each zone holds a source
    count: int


def _zones(topology: Topology) -> _Zones:
    """The switching zones of the network (built once per network, switch states do not matter)."""
    def build() -> _Zones:
        data = topology.data
        usable = data.edge_in_service & data.node_in_service[data.edge_u] & data.node_in_service[data.edge_v]
        gear = data.is_switchgear(np.arange(data.edge_count))
        plain = np.flatnonzero(usable & ~gear)
        label = _labels(data.node_count, data.edge_u[plain], data.edge_v[plain])
        count = int(label.max()) + 1 if len(label) else 0
        device = np.flatnonzero(usable & gear)
        fed = np.zeros(count, dtype=bool)
        fed[label[data.is_root]] = True
        return _Zones(label, device, label[data.edge_u[device]], label[data.edge_v[device]], fed, count)
    return topology.data.shared("zones", build)


@dataclass(frozen=True)
class IsolatingDevice:
    """A device to open to isolate a fault; ``side`` is ``supply`` when its far side stays energised, else ``load``."""

    code: str
    kind: str
    side: str


@dataclass(frozen=True)
class Isolation:
    """The switchgear that isolates a fault from every source, and what opening it costs."""

    element: str
    devices: list[IsolatingDevice]
    already_open: list[str]
    isolable: bool
    sources_inside: list[str]
    customer_count: int
    customers: list[str]
    zone: Elements

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"element": self.element, "devices": [asdict(device) for device in self.devices],
                "already_open": self.already_open, "isolable": self.isolable, "sources_inside": self.sources_inside,
                "customer_count": self.customer_count, "customers": self.customers, "zone": self.zone.as_dict()}

    def feature_parts(self) -> list[Part]:
        """The devices to open, those already open, the zone and the customers cut off, for a map."""
        isolating = [device.code for device in self.devices]
        return [("device", "isolate", isolating), ("device", "already_open", self.already_open),
                ("segment", "zone", self.zone.segments),
                ("device", "zone", [code for code in self.zone.devices if code not in isolating]),
                ("service_point", "affected", self.customers)]


def _boundary_devices(topology: Topology, zones: _Zones, faulted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The switchgear around the ``faulted`` zones with a source beyond it: (closed ones, open ones).

    A faulted switchgear element is never among them: its zones on both sides are faulted."""
    a_in, b_in = np.isin(zones.a, faulted), np.isin(zones.b, faulted)
    boundary = a_in ^ b_in
    outside = ~(a_in | b_in)
    matrix = csr_matrix((np.ones(int(outside.sum()), np.int8), (zones.a[outside], zones.b[outside])),
                        shape=(zones.count, zones.count))
    _, component = connected_components(matrix, directed=False)
    fed_component = np.zeros(int(component.max()) + 1 if zones.count else 0, dtype=bool)
    source_zones = np.flatnonzero(zones.fed)
    source_zones = source_zones[~np.isin(source_zones, faulted)]
    fed_component[component[source_zones]] = True
    devices = zones.device[boundary]
    far = np.where(a_in[boundary], zones.b[boundary], zones.a[boundary])
    sourced = fed_component[component[far]] if len(far) else np.zeros(0, bool)
    return devices[sourced & topology.closed[devices]], devices[sourced & ~topology.closed[devices]]


def isolation(topology: Topology, code: str) -> Isolation:
    """The switchgear that isolates a fault on the element from every source, and what it costs.

    The fault's zone is what the element reaches without crossing switchgear (for a
    switchgear element, the zones on both its sides). A boundary device is listed when a
    source lies beyond it: now, or by closing open switches elsewhere. Those still closed are
    the ones to open (``devices``); open ones are ``already_open``. Sides leading to no source
    at all need no switching. Each device's ``side`` is ``supply`` when its far side stays
    energised once the devices are open, else ``load``. ``customer_count`` and ``customers`` are what opening
    ``devices`` de-energises (the zone and everything fed through it).
    """
    element = _element(topology, code)
    data = topology.data
    zones = _zones(topology)
    ends = [n for n in _ends(topology, element) if data.node_in_service[n]]
    faulted = np.unique(zones.label[ends])
    needed, already_open = _boundary_devices(topology, zones, faulted)
    loss = affected(topology, open_edges=needed)
    zone_nodes = np.flatnonzero(np.isin(zones.label, faulted) & data.node_in_service)
    inside_sources = [code for node in zone_nodes[data.is_root[zone_nodes]].tolist()
                      for code in data.source_codes_at(node)]
    far = np.where(np.isin(data.edge_u[needed], zone_nodes), data.edge_v[needed], data.edge_u[needed])
    supplied = topology.energised[far] & ~np.isin(far, loss.nodes)
    return Isolation(
        element=code,
        devices=[IsolatingDevice(data.edge_code[e], data.kind_of(e), "supply" if fed else "load")
                 for e, fed in zip(needed.tolist(), supplied.tolist())],
        already_open=data.edge_code[already_open].tolist(),
        isolable=not inside_sources,
        sources_inside=inside_sources,
        customer_count=loss.customer_count,
        customers=loss.customer_codes(),
        zone=Elements(**_elements_on(topology, zone_nodes)),
    )


# -- the oracle: full recomputation with networkx --------------------------------------------------
def energised_by_networkx(data: NetworkData, closed: np.ndarray, cut_edges: Iterable[int] = (),
                          removed_nodes: Iterable[int] = (), graph: nx.MultiGraph | None = None) -> set[int]:
    """The energised nodes by a from-scratch multi-source search over a networkx graph.

    ``graph`` (from ``to_networkx(data, closed)``) may be passed to skip building it; the cut
    edges and the removed nodes' edges are taken out of it for the search and put back after.
    """
    graph = to_networkx(data, closed) if graph is None else graph
    removed = {int(n) for n in removed_nodes if n in graph}
    taken: dict[tuple, dict] = {}
    for edge in cut_edges:
        key = (int(data.edge_u[edge]), int(data.edge_v[edge]), (EDGE_TABLES[data.edge_table[edge]], int(data.edge_id[edge])))
        if graph.has_edge(*key):
            taken[key] = graph.edges[key]
    for node in removed:
        for u, v, key, attributes in graph.edges(node, keys=True, data=True):
            taken[(u, v, key)] = attributes
    graph.remove_edges_from(list(taken))
    try:
        reached: set[int] = set()
        for source in data.source_node[data.source_in_service].tolist():
            if source in graph and source not in removed and source not in reached:
                reached |= nx.node_connected_component(graph, source)
        return reached - removed
    finally:
        graph.add_edges_from((u, v, key, attributes) for (u, v, key), attributes in taken.items())


def recompute_affected(data: NetworkData, closed: np.ndarray, open_edges: Iterable[int] = (),
                       out_of_service_edges: Iterable[int] = (), out_of_service_nodes: Iterable[int] = (),
                       graph: nx.MultiGraph | None = None) -> set[int]:
    """The affected service points by full recomputation: energised before minus after."""
    before = energised_by_networkx(data, closed, graph=graph)
    after = energised_by_networkx(data, closed, list(open_edges) + list(out_of_service_edges),
                                  out_of_service_nodes, graph=graph)
    lost = np.array(sorted(before - after), dtype=np.int64)
    return set(data.customers_at(lost).tolist())

