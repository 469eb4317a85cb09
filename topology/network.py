"""The network as arrays: ``NetworkData`` and the ways to build it from lists and frames.

``NetworkData`` holds nodes, edges (segments and devices), sources and service points in numpy
arrays addressed by position: everything that switching cannot change, shared by every state
(``topology.index.Topology``) built on it. ``topology.read.read_network`` fills it from PostGIS.

Examples
--------
>>> data = network_data_from_lists(
...     nodes=["src", "a", "b"], sources=[("S", "src")],
...     edges=[("B1", "breaker", "src", "a", True), ("s1", "segment", "a", "b", True)],
...     service_points=[("C1", "b")])
>>> data.kind_of(0), data.find("devices", ["B1"]).tolist()
('segment', [1])
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from topology.models import DeviceKind

__all__ = [
    "EDGE_KINDS", "EDGE_TABLES", "FREEZE_GC_PAST", "NetworkData", "gather_ranges",
    "network_data_from_frames", "network_data_from_lists", "network_data_from_network_frames",
]

# Edge kinds by number: segments are conductors, the rest are devices (switchgear 1 to 4).
EDGE_KINDS = ("segment", *(kind.value for kind in DeviceKind))
EDGE_TABLES = ("segments", "devices")
_KIND_NUMBER = {kind: number for number, kind in enumerate(EDGE_KINDS)}

# Past this many elements, objects built are moved out of the collector's sight (gc.freeze).
FREEZE_GC_PAST = 100_000


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
    # Capacity figures for restoration plans, NaN where unknown (float32: 4 bytes an element, and
    # nothing here needs more than 7 digits); None fills them with NaN.
    sp_demand_kw: np.ndarray | None = None
    edge_ampacity_a: np.ndarray | None = None   # segments' conductors (NaN for devices)
    edge_rated_kva: np.ndarray | None = None    # devices' ratings: transformers (NaN for segments)
    feeder_rating_kva: np.ndarray | None = None
    node_voltage_kv: np.ndarray | None = None
    # derived in __post_init__
    incidence_pointer: np.ndarray = field(init=False)
    incidence_edge: np.ndarray = field(init=False)
    customer_pointer: np.ndarray = field(init=False)
    customer_order: np.ndarray = field(init=False)
    is_root: np.ndarray = field(init=False)
    _segment_count: int = field(init=False)
    _lookups: dict = field(init=False, default_factory=dict)
    _shared: dict = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self):
        """Derive the incidence CSR, the customers by node and the root (source) nodes."""
        n = len(self.node_id)
        ends = np.concatenate([self.edge_u, self.edge_v])
        order, pointer = _group(ends, n)
        edges = np.concatenate([np.arange(len(self.edge_u))] * 2)
        set_ = object.__setattr__
        for name, size in (("sp_demand_kw", len(self.sp_id)), ("edge_ampacity_a", len(self.edge_u)),
                           ("edge_rated_kva", len(self.edge_u)), ("feeder_rating_kva", len(self.feeder_code)),
                           ("node_voltage_kv", n)):
            values = getattr(self, name)
            set_(self, name, np.full(size, np.nan, np.float32) if values is None else np.asarray(values, np.float32))
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

    def shared(self, name: str, build):
        """A structure that depends only on the network (not on switch states), built once by ``build()``."""
        value = self._shared.get(name)
        if value is None:
            with self._lock:
                value = self._shared.get(name)
                if value is None:
                    value = self._shared[name] = build()
        return value

    def customers_by_feeder(self, customers: np.ndarray) -> dict[str, int]:
        """How many of ``customers`` hang on each feeder's nodes (``unassigned``: nodes without one)."""
        counts = np.bincount(self.node_feeder[self.sp_node[customers]] + 1, minlength=len(self.feeder_code) + 1)
        names = ["unassigned"] + self.feeder_code.tolist()
        return {names[i]: int(counts[i]) for i in np.flatnonzero(counts)}

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


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float32, NaN where missing (or everywhere when the frame has no such column)."""
    if name not in frame:
        return np.full(len(frame), np.nan, np.float32)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float32, na_value=np.nan)


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
        sp_demand_kw=_floats(service_points, "demand_kw"),
        edge_ampacity_a=np.concatenate([_floats(segments, "ampacity_a"), np.full(len(devices), np.nan, np.float32)]),
        edge_rated_kva=np.concatenate([np.full(len(segments), np.nan, np.float32), _floats(devices, "rated_kva")]),
        feeder_rating_kva=_floats(feeders, "rating_kva"),
        node_voltage_kv=_floats(nodes, "voltage_kv"),
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
        feeders=pd.DataFrame({"id": feeder_ids.to_numpy(np.int64), "code": feeders["code"].to_numpy(object),
                              "rating_kva": column(feeders, "rating_kva", np.nan).to_numpy()}),
        nodes=pd.DataFrame({"id": node_ids.to_numpy(), "code": nodes["code"].to_numpy(object),
                            "in_service": column(nodes, "in_service", True).astype(bool).to_numpy(),
                            "feeder_id": column(nodes, "feeder", None).map(feeder_ids).astype(float).to_numpy(),
                            "voltage_kv": column(nodes, "voltage_kv", np.nan).to_numpy()}),
        segments=pd.DataFrame({"id": np.arange(1, len(frames.segments) + 1), "code": frames.segments["code"].to_numpy(object),
                               "from_node_id": ids(frames.segments["from_node"]), "to_node_id": ids(frames.segments["to_node"]),
                               "in_service": column(frames.segments, "in_service", True).astype(bool).to_numpy(),
                               "ampacity_a": column(frames.segments, "ampacity_a", np.nan).to_numpy()}),
        devices=pd.DataFrame({"id": np.arange(1, len(devices) + 1), "code": devices["code"].to_numpy(object),
                              "kind": devices["kind"].to_numpy(object),
                              "from_node_id": ids(devices["from_node"]), "to_node_id": ids(devices["to_node"]),
                              "normal_state": normal.to_numpy(object),
                              "current_state": column(devices, "current_state", None).where(
                                  lambda s: s.notna(), normal).to_numpy(object),
                              "in_service": column(devices, "in_service", True).astype(bool).to_numpy(),
                              "rated_kva": column(devices, "rated_kva", np.nan).to_numpy()}),
        sources=pd.DataFrame({"id": np.arange(1, len(frames.sources) + 1), "code": frames.sources["code"].to_numpy(object),
                              "node_id": ids(frames.sources["node"]),
                              "in_service": column(frames.sources, "in_service", True).astype(bool).to_numpy()}),
        service_points=pd.DataFrame({"id": np.arange(1, len(frames.service_points) + 1),
                                     "code": frames.service_points["code"].to_numpy(object),
                                     "node_id": ids(frames.service_points["node"]),
                                     "in_service": column(frames.service_points, "in_service", True).astype(bool).to_numpy(),
                                     "demand_kw": column(frames.service_points, "demand_kw", np.nan).to_numpy()}),
    )
