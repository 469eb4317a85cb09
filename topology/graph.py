"""The network as arrays, its radial index, and the networkx graph.

``read_network`` loads the whole network from PostGIS with one query per table into
``NetworkData``: numpy arrays of nodes, edges (segments and devices), sources and service
points, addressed by position. ``Topology`` is one state of it (switch positions) with the
index that answers traces: the conducting graph is cut at every source node, so that each
piece (a *section*) is fed through its own source edges, and every radial section (one
source edge, no loop) is held as a DFS preorder in which "everything downstream of X" is a
contiguous slice. Operating switches re-indexes only the sections the switches touch.
``topology.cache.TopologyCache`` keeps one ``Topology`` per process.

Examples
--------
>>> data = network_data_from_lists(
...     nodes=["src", "a", "b"], sources=[("S", "src")],
...     edges=[("B1", "breaker", "src", "a", True), ("s1", "segment", "a", "b", True)],
...     service_points=[("C1", "b")])
>>> topology = Topology(data)
>>> [data.node_code[n] for n in topology.energised_nodes()]
['src', 'a', 'b']
"""
from __future__ import annotations

import gc
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, depth_first_order
from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = [
    "EDGE_KINDS", "SWITCHGEAR", "PROTECTIVE", "NetworkData", "Radial", "Island", "Topology",
    "read_network", "read_version", "network_data_from_lists", "to_networkx",
    "network_data_from_network_frames", "gather_ranges", "SplitGraph", "EDGE_TABLES", "ROOT", "ISOLATED",
    "REMOVED",
]

# Edge kinds by number: segments are conductors, the rest are devices.
EDGE_KINDS = ("segment", "breaker", "recloser", "switch", "fuse", "transformer")
SWITCHGEAR = frozenset({"breaker", "recloser", "switch", "fuse"})
PROTECTIVE = frozenset({"breaker", "recloser", "fuse"})
EDGE_TABLES = ("segments", "devices")
_KIND_NUMBER = {kind: number for number, kind in enumerate(EDGE_KINDS)}

# Past this many elements, objects built are moved out of the collector's sight (gc.freeze).
_LARGE = 100_000

# node_section values that are not section numbers
ROOT = -1      # an in-service node with an in-service source: always energised
ISOLATED = -2  # an in-service node with no conducting edge and no source
REMOVED = -3   # an out-of-service node: in no graph


def gather_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, e)`` for every pair, without a Python loop.

    >>> gather_ranges(np.array([0, 5]), np.array([2, 8])).tolist()
    [0, 1, 5, 6, 7]
    """
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total)


def _group(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSR grouping: positions sorted by ``keys`` and the pointer array over ``0..size``."""
    order = np.argsort(keys, kind="stable")
    pointer = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=size), out=pointer[1:])
    return order, pointer


@dataclass(frozen=True, eq=False)
class NetworkData:
    """The elements of a network in arrays; edges are segments then devices.

    Everything that switching cannot change lives here, shared by every ``Topology`` built on it.
    """

    node_id: np.ndarray
    node_code: np.ndarray
    node_in_service: np.ndarray
    node_feeder: np.ndarray          # position in feeder_code, or -1
    feeder_code: np.ndarray
    edge_table: np.ndarray           # 0 segment, 1 device
    edge_id: np.ndarray
    edge_code: np.ndarray
    edge_kind: np.ndarray            # position in EDGE_KINDS
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_in_service: np.ndarray
    edge_normal_closed: np.ndarray
    edge_closed: np.ndarray          # the current state as stored
    source_code: np.ndarray
    source_node: np.ndarray
    source_in_service: np.ndarray
    sp_id: np.ndarray
    sp_code: np.ndarray
    sp_node: np.ndarray
    sp_in_service: np.ndarray
    # derived in __post_init__
    incidence_pointer: np.ndarray = field(init=False)
    incidence_edge: np.ndarray = field(init=False)
    customer_pointer: np.ndarray = field(init=False)
    customer_order: np.ndarray = field(init=False)
    is_root: np.ndarray = field(init=False)
    _segment_count: int = field(init=False)
    _lookups: dict = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self):
        """Derive the incidence CSR, the customers by node and the root (source) nodes."""
        n = len(self.node_id)
        ends = np.concatenate([self.edge_u, self.edge_v])
        order, pointer = _group(ends, n)
        edges = np.concatenate([np.arange(len(self.edge_u))] * 2)
        set_ = object.__setattr__
        set_(self, "incidence_edge", edges[order].astype(np.int32))
        set_(self, "incidence_pointer", pointer)
        served = np.flatnonzero(self.sp_in_service)
        order, pointer = _group(self.sp_node[served], n)
        set_(self, "customer_order", served[order].astype(np.int32))
        set_(self, "customer_pointer", pointer)
        root = np.zeros(n, dtype=bool)
        root[self.source_node[self.source_in_service]] = True
        set_(self, "is_root", root & self.node_in_service)
        set_(self, "_segment_count", int(np.count_nonzero(self.edge_table == 0)))

    @property
    def node_count(self) -> int:
        """How many nodes (in service or not)."""
        return len(self.node_id)

    @property
    def edge_count(self) -> int:
        """How many edges: segments and devices."""
        return len(self.edge_u)

    def kind_of(self, edge: int) -> str:
        """The kind of ``edge``: segment, breaker, recloser, switch, fuse or transformer."""
        return EDGE_KINDS[self.edge_kind[edge]]

    def is_switchgear(self, edges: np.ndarray) -> np.ndarray:
        """Whether each edge is a breaker, recloser, switch or fuse."""
        return (self.edge_kind[edges] >= 1) & (self.edge_kind[edges] <= 4)

    def incident_edges(self, nodes: np.ndarray) -> np.ndarray:
        """Every edge touching ``nodes`` (with repeats), whatever its state."""
        return self.incidence_edge[gather_ranges(self.incidence_pointer[nodes], self.incidence_pointer[nodes + 1])]

    def customers_at(self, nodes: np.ndarray) -> np.ndarray:
        """The in-service service points hanging on ``nodes``, in the order of ``nodes``."""
        return self.customer_order[gather_ranges(self.customer_pointer[nodes], self.customer_pointer[nodes + 1])]

    @property
    def segment_count(self) -> int:
        """Edges ``0 .. segment_count`` are segments, the rest devices."""
        return self._segment_count

    def find(self, table: str, codes: Sequence[str]) -> np.ndarray:
        """Positions of ``codes`` in ``table`` (nodes, segments, devices, service_points); -1 if absent.

        Segments and devices come back as edge positions.
        """
        index = self._lookups.get(table)
        if index is None:
            with self._lock:
                index = self._lookups.get(table)
                if index is None:
                    first = self.segment_count
                    codes_of = {"nodes": self.node_code, "segments": self.edge_code[:first],
                                "devices": self.edge_code[first:], "service_points": self.sp_code}[table]
                    index = self._lookups[table] = pd.Index(codes_of)
        if len(codes) <= 256:  # get_loc is a plain hash probe; get_indexer costs ~1 ms of overhead
            positions = np.array([_get_loc(index, code) for code in codes], dtype=np.int64)
        else:
            positions = index.get_indexer(list(codes))
        if table == "devices":
            positions = np.where(positions >= 0, positions + self.segment_count, -1)
        return positions

    def warm_lookups(self) -> None:
        """Build every code index now rather than on the first request."""
        for table in ("nodes", "segments", "devices", "service_points"):
            self.find(table, [""])

    def source_codes_at(self, node: int) -> list[str]:
        """The codes of the in-service sources on ``node``."""
        mask = (self.source_node == node) & self.source_in_service
        return self.source_code[mask].tolist()


def _get_loc(index: pd.Index, code: str) -> int:
    """The position of ``code`` in a unique index, or -1."""
    try:
        return int(index.get_loc(code))
    except (KeyError, TypeError):
        return -1


# -- reading ---------------------------------------------------------------------------------------
_TABLES = {
    "feeders": ("feeders", ["id", "code"]),
    "nodes": ("nodes", ["id", "code", "in_service", "coalesce(feeder_id, -1) AS feeder_id"]),
    "segments": ("segments", ["id", "code", "from_node_id", "to_node_id", "in_service"]),
    "devices": ("devices", ["id", "code", "kind::text AS kind", "from_node_id", "to_node_id",
                            "normal_state::text AS normal_state", "current_state::text AS current_state", "in_service"]),
    "sources": ("sources", ["id", "code", "node_id", "in_service"]),
    "service_points": ("service_points", ["id", "code", "node_id", "in_service"]),
}


def _read_table(connection: Connection, table: str, columns: list[str]) -> pd.DataFrame:
    """A whole table as one row of arrays in the binary protocol, sorted by id.

    One row of ``array_agg`` per column costs the client a few C-level conversions instead
    of millions of row tuples (about ten times less CPU than fetching rows or COPY lines).
    """
    names = [column.split(" AS ")[-1] for column in columns]
    selected = ", ".join(f"array_agg({name})" for name in names)
    cursor = connection.connection.driver_connection.cursor(binary=True)
    try:
        cursor.execute(f"SELECT {selected} FROM (SELECT {', '.join(columns)} FROM {table}) AS t")
        row = cursor.fetchone()
    finally:
        cursor.close()
    frame = pd.DataFrame({name: (values if values is not None else []) for name, values in zip(names, row)})
    if len(frame) and not (np.diff(frame["id"].to_numpy()) > 0).all():
        frame = frame.sort_values("id", kind="stable", ignore_index=True)
    if "feeder_id" in frame:
        frame["feeder_id"] = frame["feeder_id"].astype(float).where(frame["feeder_id"] >= 0)
    for name in ("id", "from_node_id", "to_node_id", "node_id"):
        if name in frame:
            frame[name] = frame[name].astype(np.int64)
    if "in_service" in frame:
        frame["in_service"] = frame["in_service"].astype(bool)
    return frame


def read_version(connection: Connection) -> tuple[int, datetime]:
    """The topology version and when it changed: the key a cached ``Topology`` is valid under."""
    row = connection.execute(text("SELECT version, changed_at FROM topology_state WHERE id = 1")).one()
    return int(row.version), row.changed_at


def read_network(connection: Connection) -> tuple[NetworkData, tuple[int, datetime]]:
    """The whole network and the version it is at, read with one query per table.

    The version is read before and after; every change bumps it in the same transaction, so
    equal versions prove the tables were read in one consistent state (else it reads again).
    """
    for _ in range(5):
        before = read_version(connection)
        frames = {name: _read_table(connection, table, columns) for name, (table, columns) in _TABLES.items()}
        after = read_version(connection)
        if before == after:
            return network_data_from_frames(**frames), after
    raise RuntimeError("the network kept changing while it was read; try again")


def network_data_from_frames(feeders: pd.DataFrame, nodes: pd.DataFrame, segments: pd.DataFrame,
                             devices: pd.DataFrame, sources: pd.DataFrame,
                             service_points: pd.DataFrame) -> NetworkData:
    """``NetworkData`` from one frame per table, with database ids and node ids as references."""
    node_id = nodes["id"].to_numpy(np.int64)
    if len(node_id) > 1 and not (np.diff(node_id) > 0).all():
        raise ValueError("nodes must be sorted by id")

    def position(ids) -> np.ndarray:
        return np.searchsorted(node_id, np.asarray(ids, dtype=np.int64)).astype(np.int32)

    feeder_id = feeders["id"].to_numpy(np.int64)
    node_feeder = np.full(len(nodes), -1, dtype=np.int32)
    has_feeder = nodes["feeder_id"].notna().to_numpy()
    node_feeder[has_feeder] = np.searchsorted(feeder_id, nodes["feeder_id"].to_numpy()[has_feeder].astype(np.int64))
    kinds = devices["kind"].map(_KIND_NUMBER).to_numpy(np.uint8) if len(devices) else np.zeros(0, np.uint8)
    return NetworkData(
        node_id=node_id,
        node_code=nodes["code"].to_numpy(object),
        node_in_service=nodes["in_service"].to_numpy(bool),
        node_feeder=node_feeder,
        feeder_code=feeders["code"].to_numpy(object),
        edge_table=np.concatenate([np.zeros(len(segments), np.uint8), np.ones(len(devices), np.uint8)]),
        edge_id=np.concatenate([segments["id"].to_numpy(np.int64), devices["id"].to_numpy(np.int64)]),
        edge_code=np.concatenate([segments["code"].to_numpy(object), devices["code"].to_numpy(object)]),
        edge_kind=np.concatenate([np.zeros(len(segments), np.uint8), kinds]),
        edge_u=np.concatenate([position(segments["from_node_id"]), position(devices["from_node_id"])]),
        edge_v=np.concatenate([position(segments["to_node_id"]), position(devices["to_node_id"])]),
        edge_in_service=np.concatenate([segments["in_service"].to_numpy(bool), devices["in_service"].to_numpy(bool)]),
        edge_normal_closed=np.concatenate([np.ones(len(segments), bool),
                                           devices["normal_state"].to_numpy(object) == "closed"]),
        edge_closed=np.concatenate([np.ones(len(segments), bool), devices["current_state"].to_numpy(object) == "closed"]),
        source_code=sources["code"].to_numpy(object),
        source_node=position(sources["node_id"]),
        source_in_service=sources["in_service"].to_numpy(bool),
        sp_id=service_points["id"].to_numpy(np.int64),
        sp_code=service_points["code"].to_numpy(object),
        sp_node=position(service_points["node_id"]),
        sp_in_service=service_points["in_service"].to_numpy(bool),
    )


def network_data_from_lists(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str, str, str, bool] | tuple[str, str, str, str, bool, bool]],
    sources: Sequence[tuple[str, str]] = (),
    service_points: Sequence[tuple[str, str]] = (),
    out_of_service: Iterable[str] = (),
) -> NetworkData:
    """A small network from codes, for tests and examples.

    ``edges`` are (code, kind, from node, to node, closed[, normally closed]);
    ``out_of_service`` names nodes, edges, sources or service points that are out of service.
    The edge ids count segments and devices together (unlike the database, which does not matter here).
    """
    off = set(out_of_service)
    position = {code: number for number, code in enumerate(nodes)}
    edges = sorted(edges, key=lambda e: e[1] != "segment")  # segments first, as from the database
    objects = lambda values: np.array(list(values) + [None], dtype=object)[:-1]  # noqa: E731 (keeps str)
    return NetworkData(
        node_id=np.arange(1, len(nodes) + 1, dtype=np.int64), node_code=objects(nodes),
        node_in_service=np.array([c not in off for c in nodes], dtype=bool),
        node_feeder=np.zeros(len(nodes), dtype=np.int32), feeder_code=objects(["F1"]),
        edge_table=np.array([e[1] != "segment" for e in edges], dtype=np.uint8),
        edge_id=np.arange(1, len(edges) + 1, dtype=np.int64), edge_code=objects(e[0] for e in edges),
        edge_kind=np.array([_KIND_NUMBER[e[1]] for e in edges], dtype=np.uint8),
        edge_u=np.array([position[e[2]] for e in edges], dtype=np.int32),
        edge_v=np.array([position[e[3]] for e in edges], dtype=np.int32),
        edge_in_service=np.array([e[0] not in off for e in edges], dtype=bool),
        edge_normal_closed=np.array([e[-1] for e in edges], dtype=bool),
        edge_closed=np.array([e[4] for e in edges], dtype=bool),
        source_code=objects(s[0] for s in sources),
        source_node=np.array([position[s[1]] for s in sources], dtype=np.int32),
        source_in_service=np.array([s[0] not in off for s in sources], dtype=bool),
        sp_id=np.arange(1, len(service_points) + 1, dtype=np.int64), sp_code=objects(c[0] for c in service_points),
        sp_node=np.array([position[c[1]] for c in service_points], dtype=np.int32),
        sp_in_service=np.array([c[0] not in off for c in service_points], dtype=bool),
    )


def network_data_from_network_frames(frames) -> NetworkData:
    """``NetworkData`` straight from ``NetworkFrames`` (the loader's layout), without a database."""
    def column(frame: pd.DataFrame, name: str, default) -> pd.Series:
        if name in frame and len(frame):
            return frame[name].where(frame[name].notna(), default)
        return pd.Series([default] * len(frame), index=frame.index, dtype=object)

    nodes = frames.nodes.reset_index(drop=True)
    node_ids = pd.Series(np.arange(1, len(nodes) + 1), index=nodes["code"].to_numpy())
    feeders = frames.feeders.reset_index(drop=True)
    feeder_ids = pd.Series(np.arange(1, len(feeders) + 1, dtype=float), index=feeders["code"].to_numpy())

    def ids(values: pd.Series) -> np.ndarray:
        return node_ids.loc[values.to_numpy()].to_numpy(np.int64)

    devices = frames.devices.reset_index(drop=True)
    normal = column(devices, "normal_state", "closed")
    return network_data_from_frames(
        feeders=pd.DataFrame({"id": feeder_ids.to_numpy(np.int64), "code": feeders["code"].to_numpy(object)}),
        nodes=pd.DataFrame({"id": node_ids.to_numpy(), "code": nodes["code"].to_numpy(object),
                            "in_service": column(nodes, "in_service", True).astype(bool).to_numpy(),
                            "feeder_id": column(nodes, "feeder", None).map(feeder_ids).astype(float).to_numpy()}),
        segments=pd.DataFrame({"id": np.arange(1, len(frames.segments) + 1), "code": frames.segments["code"].to_numpy(object),
                               "from_node_id": ids(frames.segments["from_node"]), "to_node_id": ids(frames.segments["to_node"]),
                               "in_service": column(frames.segments, "in_service", True).astype(bool).to_numpy()}),
        devices=pd.DataFrame({"id": np.arange(1, len(devices) + 1), "code": devices["code"].to_numpy(object),
                              "kind": devices["kind"].to_numpy(object),
                              "from_node_id": ids(devices["from_node"]), "to_node_id": ids(devices["to_node"]),
                              "normal_state": normal.to_numpy(object),
                              "current_state": column(devices, "current_state", None).where(
                                  lambda s: s.notna(), normal).to_numpy(object),
                              "in_service": column(devices, "in_service", True).astype(bool).to_numpy()}),
        sources=pd.DataFrame({"id": np.arange(1, len(frames.sources) + 1), "code": frames.sources["code"].to_numpy(object),
                              "node_id": ids(frames.sources["node"]),
                              "in_service": column(frames.sources, "in_service", True).astype(bool).to_numpy()}),
        service_points=pd.DataFrame({"id": np.arange(1, len(frames.service_points) + 1),
                                     "code": frames.service_points["code"].to_numpy(object),
                                     "node_id": ids(frames.service_points["node"]),
                                     "in_service": column(frames.service_points, "in_service", True).astype(bool).to_numpy()}),
    )


# -- sections --------------------------------------------------------------------------------------
@dataclass(eq=False)
class Radial:
    """A radial section fed through one source edge, held as a DFS preorder.

    Position ``p`` holds ``nodes[p]``; its subtree is positions ``p .. p + size[p]``; its
    parent is position ``parent[p]`` (-1: the source node) over edge ``parent_edge[p]``.
    ``customers[cust_ptr[a]:cust_ptr[b]]`` are the service points at positions ``a .. b``.
    """

    nodes: np.ndarray
    size: np.ndarray
    parent: np.ndarray
    parent_edge: np.ndarray
    cust_ptr: np.ndarray
    customers: np.ndarray
    source_node: int
    source_edge: int
    kind = "radial"
    energised = True


@dataclass(eq=False)
class Island:
    """A section that is not radial: ``meshed`` (fed, with loops or several source edges) or ``dead``."""

    kind: str
    nodes: np.ndarray

    @property
    def energised(self) -> bool:
        """Meshed sections are fed; dead ones are not."""
        return self.kind == "meshed"


@dataclass
class _Indexed:
    """What indexing a set of nodes produced, to be written into a ``Topology``."""

    nodes: np.ndarray          # the real nodes indexed
    section: np.ndarray        # their section number (local, >= 0) or ISOLATED
    position: np.ndarray       # their position in a radial section, else -1
    sections: list             # local section number -> Radial | Island
    tree_edges: np.ndarray     # conducting edges inside radial sections (including source edges)
    tree_children: np.ndarray  # the child node of each


class SplitGraph:
    """The conducting graph on a set of real nodes, each source endpoint split into its own copy.

    Local ids: the real nodes ``0..n`` (``nodes`` must be sorted), then one virtual source per
    edge end at a root. Every edge must have its non-root ends among ``nodes``.
    """

    def __init__(self, data: NetworkData, conducting: np.ndarray, nodes: np.ndarray,
                 edges: np.ndarray | None = None):
        self.data, self.nodes = data, nodes
        if edges is None:
            edges = np.unique(data.incident_edges(nodes))
            edges = edges[conducting[edges]]
        self.edges = edges
        n = len(nodes)
        u, v = data.edge_u[edges], data.edge_v[edges]
        root_u, root_v = data.is_root[u], data.is_root[v]
        a, b = self.local(u), self.local(v)
        virtual = n + np.arange(int(root_u.sum() + root_v.sum()))
        a[root_u] = virtual[: int(root_u.sum())]
        b[root_v] = virtual[int(root_u.sum()):]
        self.a, self.b = a, b
        self.virtual_root_node = np.concatenate([u[root_u], v[root_v]])
        self.size = n + len(virtual)

    def local(self, nodes: np.ndarray) -> np.ndarray:
        """Local ids of real nodes (meaningless for nodes not in the graph, such as roots)."""
        return np.minimum(np.searchsorted(self.nodes, nodes), max(len(self.nodes) - 1, 0))

    def matrix(self, mask: np.ndarray | None = None, extra: tuple[np.ndarray, np.ndarray] | None = None,
               size: int | None = None) -> csr_matrix:
        """The symmetric adjacency matrix over the edges in ``mask`` plus ``extra`` (a, b) pairs."""
        a, b = (self.a, self.b) if mask is None else (self.a[mask], self.b[mask])
        if extra is not None:
            a, b = np.concatenate([a, extra[0]]), np.concatenate([b, extra[1]])
        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        size = size or self.size
        return csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))

    def reached_from_sources(self) -> np.ndarray:
        """Which real nodes a virtual source reaches (a multi-source search)."""
        count, labels = connected_components(self.matrix(), directed=False)
        fed = np.zeros(count, dtype=bool)
        fed[labels[len(self.nodes):]] = True
        return fed[labels[: len(self.nodes)]]


def _index(data: NetworkData, conducting: np.ndarray, nodes: np.ndarray,
           edges: np.ndarray | None = None) -> _Indexed:
    """Sections of ``nodes`` (real, in service, not roots; closed under conduction) and their index.

    Notes
    -----
    Linear in the nodes and edges given: one connected-components pass classifies the
    sections, one BFS and one DFS from a super-root over the radial ones give the preorder,
    and subtree sizes are summed level by level from the BFS.
    """
    graph = SplitGraph(data, conducting, nodes, edges)
    n = len(nodes)
    count, labels = connected_components(graph.matrix(), directed=False)
    real = np.bincount(labels[:n], minlength=count)
    virtual = np.bincount(labels[n:], minlength=count)
    edge_count = np.bincount(labels[graph.a], minlength=count)
    radial = (virtual == 1) & (edge_count == real)
    single = (real == 1) & (virtual == 0) & (edge_count == 0)

    # Radial sections: a super-root joined to each radial section's virtual source.
    roots = np.flatnonzero(radial[labels[n:]]) + n
    super_root = graph.size
    in_radial = radial[labels[graph.a]]
    matrix = graph.matrix(in_radial, (np.full(len(roots), super_root), roots), graph.size + 1)
    preorder, _ = depth_first_order(matrix, super_root, directed=True, return_predecessors=True)
    breadth, parent = breadth_first_order(matrix, super_root, directed=True, return_predecessors=True)
    subtree = _subtree_sizes(breadth, parent, graph.size + 1)
    preorder = preorder[preorder < n]                       # real nodes only, grouped by section
    section_of = labels[preorder]
    starts = np.flatnonzero(np.r_[True, section_of[1:] != section_of[:-1]]) if len(preorder) else np.zeros(0, int)
    start_of = np.zeros(count, dtype=np.int64)
    start_of[section_of[starts]] = starts
    local_position = np.full(n, -1, dtype=np.int64)
    local_position[preorder] = np.arange(len(preorder)) - start_of[section_of]

    # The edge to each node's parent: in a tree the child is the end whose parent is the other end.
    tree = np.flatnonzero(in_radial)
    a, b = graph.a[tree], graph.b[tree]
    child_is_b = parent[b] == a
    child = np.where(child_is_b, b, a)
    edge_to_parent = np.full(graph.size, -1, dtype=np.int64)
    edge_to_parent[child] = graph.edges[tree]
    parent_pos = np.where(parent[preorder] < n, local_position[np.minimum(parent[preorder], n - 1)], -1)

    counts = np.diff(data.customer_pointer)[nodes[preorder]]
    cumulative = np.zeros(len(preorder) + 1, dtype=np.int64)
    np.cumsum(counts, out=cumulative[1:])
    customers = data.customers_at(nodes[preorder]).astype(np.int32)

    sections: list = [None] * count
    ends = np.r_[starts[1:], len(preorder)]
    for start, end in zip(starts.tolist(), ends.tolist()):
        first_edge = int(edge_to_parent[preorder[start]])
        source = data.edge_u[first_edge] if data.is_root[data.edge_u[first_edge]] else data.edge_v[first_edge]
        sections[int(section_of[start])] = Radial(
            nodes=nodes[preorder[start:end]].astype(np.int32),
            size=subtree[preorder[start:end]].astype(np.int32),
            parent=parent_pos[start:end].astype(np.int32),
            parent_edge=edge_to_parent[preorder[start:end]].astype(np.int32),
            cust_ptr=cumulative[start:end + 1] - cumulative[start],
            customers=customers[cumulative[start]:cumulative[end]],
            source_node=int(source), source_edge=first_edge,
        )
    others = np.flatnonzero(~radial & ~single & (real > 0))
    if len(others):
        member = np.flatnonzero(np.isin(labels[:n], others))
        member = member[np.argsort(labels[member], kind="stable")]
        bounds = np.flatnonzero(np.r_[True, labels[member][1:] != labels[member][:-1], True])
        for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            label = int(labels[member[start]])
            kind = "meshed" if virtual[label] else "dead"
            sections[label] = Island(kind, nodes[member[start:end]].astype(np.int32))
    section = labels[:n].astype(np.int64)
    section[single[labels[:n]]] = ISOLATED
    tree_children = child[child < n]
    tree_edges = graph.edges[tree][child < n]
    return _Indexed(nodes=nodes, section=section, position=local_position, sections=sections,
                    tree_edges=tree_edges, tree_children=nodes[tree_children])


def _subtree_sizes(breadth: np.ndarray, parent: np.ndarray, size: int) -> np.ndarray:
    """Subtree sizes of a tree from its BFS order, summed one level at a time (deepest first)."""
    subtree = np.zeros(size, dtype=np.int64)
    subtree[breadth] = 1
    if len(breadth) < 2:
        return subtree
    position = np.empty(size, dtype=np.int64)
    position[breadth] = np.arange(len(breadth))
    parent_position = np.r_[-1, position[parent[breadth[1:]]]]  # non-decreasing in BFS order
    levels, end = [], 1
    while end < len(breadth):
        next_end = int(np.searchsorted(parent_position, end, side="left"))
        levels.append((end, next_end))
        end = next_end
    for start, end in reversed(levels):
        children = breadth[start:end]
        parents = parent[children]
        first = np.flatnonzero(np.r_[True, parents[1:] != parents[:-1]])
        subtree[parents[first]] += np.add.reduceat(subtree[children], first)
    return subtree


# -- the state and its index -----------------------------------------------------------------------
class Topology:
    """One state of the network (device positions) with the index that answers traces.

    Immutable: ``operated`` returns a new ``Topology``, so threads can share one freely.

    Parameters
    ----------
    data : NetworkData
    closed : array of bool, optional
        Whether each edge is closed (segments always are); default: the stored current state.
    version : tuple, optional
        The ``topology_state`` key this state belongs to.
    """

    def __init__(self, data: NetworkData, closed: np.ndarray | None = None, version=None):
        self.data = data
        self.version = version
        self.closed = (data.edge_closed if closed is None else np.asarray(closed, dtype=bool)).copy()
        self.conducting = self._conducting(np.arange(data.edge_count))
        n = data.node_count
        self.node_section = np.full(n, REMOVED, dtype=np.int32)
        self.node_section[data.node_in_service] = ISOLATED
        self.node_section[data.is_root] = ROOT
        self.node_position = np.full(n, -1, dtype=np.int32)
        self.edge_child = np.full(data.edge_count, -1, dtype=np.int32)
        self.sections: list = []
        real = np.flatnonzero(data.node_in_service & ~data.is_root)
        edges = np.flatnonzero(self.conducting & ~(data.is_root[data.edge_u] & data.is_root[data.edge_v]))
        self._write(_index(data, self.conducting, real, edges))
        self._shared_graphs: dict = {}
        self.reindexed = real  # the nodes whose index this state built (all of them here)

    def _conducting(self, edges: np.ndarray) -> np.ndarray:
        """Whether each edge conducts in this state."""
        data = self.data
        return (data.edge_in_service[edges] & self.closed[edges]
                & data.node_in_service[data.edge_u[edges]] & data.node_in_service[data.edge_v[edges]])

    def _write(self, indexed: _Indexed) -> None:
        """Record a new index of some nodes: their sections, positions and tree edges."""
        offset = len(self.sections)
        self.sections.extend(indexed.sections)
        section = np.where(indexed.section >= 0, indexed.section + offset, indexed.section)
        self.node_section[indexed.nodes] = section
        self.node_position[indexed.nodes] = indexed.position
        self.edge_child[indexed.tree_edges] = indexed.tree_children

    # -- state -----------------------------------------------------------------------------------
    def _fed(self) -> np.ndarray:
        """Whether each section is fed, then three entries for REMOVED, ISOLATED and ROOT."""
        cached = self.__dict__.get("_fed_sections")
        if cached is None:
            # node_section -3, -2, -1 index the last three entries: removed, isolated, root
            cached = np.array([s is not None and s.energised for s in self.sections] + [False, False, True], dtype=bool)
            self.__dict__["_fed_sections"] = cached
        return cached

    @property
    def energised(self) -> np.ndarray:
        """Whether each node is energised (reachable from a source over conducting edges)."""
        cached = self.__dict__.get("_energised")
        if cached is None:
            cached = self.__dict__["_energised"] = self._fed()[self.node_section]
        return cached

    def energised_at(self, nodes: np.ndarray) -> np.ndarray:
        """``energised[nodes]`` without computing it for every node."""
        return self._fed()[self.node_section[nodes]]

    def energised_nodes(self) -> np.ndarray:
        """The positions of the energised nodes."""
        return np.flatnonzero(self.energised)

    def edge_energised(self, edges: np.ndarray) -> np.ndarray:
        """Whether each edge is energised: in service with at least one energised terminal."""
        data = self.data
        live = self.energised
        return data.edge_in_service[edges] & (live[data.edge_u[edges]] | live[data.edge_v[edges]])

    @property
    def is_radial(self) -> bool:
        """Whether every energised section is radial (no loops, one source edge each)."""
        return not any(s is not None and s.kind == "meshed" for s in self.sections)

    def operated(self, closed: dict[int, bool], version=None) -> Topology:
        """This network with the edges in ``closed`` set open (False) or closed (True).

        Only the sections containing the operated edges' ends are indexed again.
        """
        data = self.data
        new = object.__new__(Topology)
        new.data, new.version, new._shared_graphs = data, version, self._shared_graphs
        new.closed = self.closed.copy()
        edges = np.fromiter(closed.keys(), dtype=np.int64, count=len(closed))
        new.closed[edges] = np.fromiter(closed.values(), dtype=bool, count=len(closed))
        new.conducting = self.conducting.copy()
        new.conducting[edges] = new._conducting(edges)
        ends = np.unique(np.concatenate([data.edge_u[edges], data.edge_v[edges]]))
        ends = ends[self.node_section[ends] != REMOVED]
        ends = ends[self.node_section[ends] != ROOT]
        touched = np.unique(self.node_section[ends][self.node_section[ends] >= 0])
        nodes = np.unique(np.concatenate([ends] + [self.sections[s].nodes for s in touched]))
        new.sections = list(self.sections)
        for s in touched:
            new.sections[s] = None
        new.node_section = self.node_section.copy()
        new.node_position = self.node_position.copy()
        new.edge_child = self.edge_child.copy()
        incident = np.unique(data.incident_edges(nodes))
        new.edge_child[incident] = -1
        new.node_position[nodes] = -1
        new._write(_index(data, new.conducting, nodes, incident[new.conducting[incident]]))
        new.reindexed = nodes
        return new

    # -- graphs shared by the states of one network ----------------------------------------------
    def shared(self, name: str, build):
        """A structure that depends only on the network (not on switch states), built once."""
        value = self._shared_graphs.get(name)
        if value is None:
            with self.data._lock:
                value = self._shared_graphs.get(name)
                if value is None:
                    value = self._shared_graphs[name] = build()
        return value

    def graph(self) -> nx.MultiGraph:
        """The networkx graph of every in-service element (see ``to_networkx``), built once."""
        return self.shared("networkx", lambda: to_networkx(self.data))


def to_networkx(data: NetworkData, closed: np.ndarray | None = None) -> nx.MultiGraph:
    """A networkx MultiGraph of the network, nodes by position, edges keyed (table, database id).

    As pandapower's ``create_nxgraph``: out-of-service elements are left out, and with
    ``closed`` given, edges that are not closed are left out too. Each edge carries its
    position in ``NetworkData`` as ``index``.

    Notes
    -----
    About 10 s and 1.3 GB per million customers; ``gc`` is frozen while building, since the
    millions of new dicts would otherwise trigger full collections again and again.
    """
    keep = data.edge_in_service & data.node_in_service[data.edge_u] & data.node_in_service[data.edge_v]
    if closed is not None:
        keep &= closed
    edges = np.flatnonzero(keep)
    tables = np.array(EDGE_TABLES, dtype=object)[data.edge_table[edges]]
    graph = nx.MultiGraph()
    frozen = gc.isenabled()
    gc.disable()
    try:
        graph.add_nodes_from(np.flatnonzero(data.node_in_service).tolist())
        graph.add_edges_from(zip(data.edge_u[edges].tolist(), data.edge_v[edges].tolist(),
                                 zip(tables.tolist(), data.edge_id[edges].tolist()),
                                 ({"index": e} for e in edges.tolist())))
    finally:
        if frozen:
            gc.enable()
    if len(edges) > _LARGE:
        gc.freeze()
    return graph
