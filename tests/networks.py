"""Small named networks for tests, drawn as ASCII art and built as ``NetworkFrames``."""
from __future__ import annotations

import pandas as pd
from shapely.geometry import LineString, Point

from topology.loader import NetworkFrames, empty_frames

ORIGIN = (7.94, 48.47)  # Offenburg
STEP = 0.001


def drawn_network(
    nodes: dict[str, tuple[int, int]],
    segments: list[tuple[str, str, str]] = (),
    devices: list[tuple[str, str, str, str, str]] = (),
    sources: list[tuple[str, str]] = (),
    customers: list[tuple[str, str]] = (),
    feeder: str = "F1",
) -> NetworkFrames:
    """A network from grid positions.

    ``nodes`` maps codes to (x, y) grid positions; ``segments`` are (code, from, to);
    ``devices`` are (code, kind, from, to, state); ``sources`` are (code, node);
    ``customers`` are (code, node).
    """
    def point(node: str) -> Point:
        x, y = nodes[node]
        return Point(ORIGIN[0] + x * STEP, ORIGIN[1] + y * STEP)

    frames = empty_frames()
    frames.substations = pd.DataFrame([{"code": "S1", "name": "Substation 1", "geometry": point(next(iter(nodes)))}])
    frames.feeders = pd.DataFrame([{"code": feeder, "name": feeder, "substation": "S1", "voltage_kv": 20.0}])
    frames.nodes = pd.DataFrame([{"code": code, "kind": "junction", "feeder": feeder, "geometry": point(code)}
                                 for code in nodes])
    frames.segments = pd.DataFrame([{"code": code, "from_node": a, "to_node": b, "feeder": feeder,
                                     "geometry": LineString([point(a), point(b)])} for code, a, b in segments],
                                   columns=["code", "from_node", "to_node", "feeder", "geometry"])
    frames.devices = pd.DataFrame([{"code": code, "kind": kind, "from_node": a, "to_node": b, "feeder": feeder,
                                    "normal_state": state, "current_state": state, "geometry": point(a)}
                                   for code, kind, a, b, state in devices],
                                  columns=["code", "kind", "from_node", "to_node", "feeder", "normal_state",
                                           "current_state", "geometry"])
    frames.sources = pd.DataFrame([{"code": code, "node": node, "substation": "S1"} for code, node in sources],
                                  columns=["code", "node", "substation"])
    frames.service_points = pd.DataFrame([{"code": code, "account_number": f"A-{code}", "name": f"Customer {code}",
                                           "address": f"{i + 1} Test Street", "node": node, "geometry": point(node)}
                                          for i, (code, node) in enumerate(customers)],
                                         columns=["code", "account_number", "name", "address", "node", "geometry"])
    return frames


def feeder_with_tie() -> NetworkFrames:
    """Two feeders joined by a normally-open tie.

    ::

        src1 --B1-- a --s1-- b --SW1-- c --s2-- d        (c, d: customers C3, C4)
                                       |
                                      TIE (open)
                                       |
        src2 --B2-- e --s3-- f --------+                 (f: customer C6)
    """
    return drawn_network(
        nodes={"src1": (0, 2), "a": (1, 2), "b": (2, 2), "c": (3, 2), "d": (4, 2),
               "src2": (0, 0), "e": (1, 0), "f": (3, 0)},
        segments=[("s1", "a", "b"), ("s2", "c", "d"), ("s3", "e", "f")],
        devices=[("B1", "breaker", "src1", "a", "closed"), ("SW1", "switch", "b", "c", "closed"),
                 ("B2", "breaker", "src2", "e", "closed"), ("TIE", "switch", "c", "f", "open")],
        sources=[("SRC1", "src1"), ("SRC2", "src2")],
        customers=[("C3", "c"), ("C4", "d"), ("C6", "f")],
    )


def protected_feeder() -> NetworkFrames:
    """A feeder with a recloser, a sectionalising switch, a fused transformer tap and a tie.

    ::

        src --B1-- a --s1-- b --R1-- c --s2-- d --SW2-- e --s3-- f --TIE(open)-- x --B2-- src2
                            |                 (C4)                (C5)            (C9)
                           F1 (fuse)
                            |
                            g --T1 (transformer)-- h --s4-- i
                                                (C1, C2)   (C3)

    Devices are drawn at their from node; F1 and T1 are given from their lower end so that
    no two devices share a point on the map.
    """
    return drawn_network(
        nodes={"src": (0, 3), "a": (1, 3), "b": (2, 3), "c": (3, 3), "d": (4, 3), "e": (5, 3), "f": (6, 3),
               "x": (7, 3), "src2": (8, 3), "g": (2, 2), "h": (2, 1), "i": (3, 1)},
        segments=[("s1", "a", "b"), ("s2", "c", "d"), ("s3", "e", "f"), ("s4", "h", "i")],
        devices=[("B1", "breaker", "src", "a", "closed"), ("R1", "recloser", "b", "c", "closed"),
                 ("SW2", "switch", "d", "e", "closed"), ("F1", "fuse", "g", "b", "closed"),
                 ("T1", "transformer", "h", "g", "closed"), ("TIE", "switch", "f", "x", "open"),
                 ("B2", "breaker", "src2", "x", "closed")],
        sources=[("SRC1", "src"), ("SRC2", "src2")],
        customers=[("C1", "h"), ("C2", "h"), ("C3", "i"), ("C4", "d"), ("C5", "f"), ("C9", "x")],
    )


def with_capacity(frames: NetworkFrames, feeders: dict[str, list[str]] | None = None,
                  ratings: dict[str, float] | None = None, ampacity: dict[str, float] | None = None,
                  demand: dict[str, float] | None = None, voltage_kv: float = 20.0) -> NetworkFrames:
    """``frames`` with the figures restoration plans check: every node at ``voltage_kv``, the nodes
    listed in ``feeders`` (feeder code -> node codes) moved to feeders of their own (the rest stay
    on the first one), feeder ``ratings`` (kVA), segments' ``ampacity`` (A) and customers' ``demand`` (kW)."""
    feeders, ratings, ampacity, demand = feeders or {}, ratings or {}, ampacity or {}, demand or {}
    first = frames.feeders.iloc[0]
    extra = [{**first.to_dict(), "code": code, "name": code} for code in feeders if code != first["code"]]
    frames.feeders = pd.concat([frames.feeders, pd.DataFrame(extra)], ignore_index=True)
    frames.feeders["rating_kva"] = frames.feeders["code"].map(ratings).astype(float)
    moved = {node: code for code, nodes in feeders.items() for node in nodes}
    frames.nodes["feeder"] = frames.nodes["code"].map(moved).fillna(frames.nodes["feeder"])
    frames.nodes["voltage_kv"] = voltage_kv
    for layer in (frames.segments, frames.devices):
        layer["feeder"] = layer["from_node"].map(dict(zip(frames.nodes["code"], frames.nodes["feeder"])))
    frames.segments["ampacity_a"] = frames.segments["code"].map(ampacity).astype(float)
    frames.service_points["demand_kw"] = frames.service_points["code"].map(demand).astype(float)
    return frames


def feeders_with_ties(ties: tuple[str, ...] = ("TIE", "TIE2")) -> NetworkFrames:
    """Three feeders, F1 joined to F2 and F3 by normally-open ties, with demands and ratings.

    ::

        src1 --B1-- a --s1-- b --SW1-- c --s2-- d          C2 2 kW at b, C3 3 kW at c, C4 2 kW at d (F1)
                                       |        |
                                      TIE      TIE2 (both open)
                                       |        |
        src2 --B2-- e --s3-- f --------+        h --s4-- g --B3-- src3
                    C6 4 kW at f (F2, 100 kVA)  C8 1 kW at h  (F3, no rating)

    s3 carries 10 A, s4 only 0.1 A; every node is at 20 kV. ``ties`` chooses which ties exist.
    """
    drawn = [("TIE", "switch", "c", "f", "open"), ("TIE2", "switch", "d", "h", "open")]
    frames = drawn_network(
        nodes={"src1": (0, 2), "a": (1, 2), "b": (2, 2), "c": (3, 2), "d": (4, 2),
               "src2": (0, 0), "e": (1, 0), "f": (3, 0), "h": (4, 0), "g": (5, 0), "src3": (6, 0)},
        segments=[("s1", "a", "b"), ("s2", "c", "d"), ("s3", "e", "f"), ("s4", "h", "g")],
        devices=[("B1", "breaker", "src1", "a", "closed"), ("SW1", "switch", "b", "c", "closed"),
                 ("B2", "breaker", "src2", "e", "closed"), ("B3", "breaker", "src3", "g", "closed")]
        + [tie for tie in drawn if tie[0] in ties],
        sources=[("SRC1", "src1"), ("SRC2", "src2"), ("SRC3", "src3")],
        customers=[("C2", "b"), ("C3", "c"), ("C4", "d"), ("C6", "f"), ("C8", "h")],
    )
    return with_capacity(frames, feeders={"F2": ["src2", "e", "f"], "F3": ["h", "g", "src3"]},
                         ratings={"F2": 100.0}, ampacity={"s3": 10.0, "s4": 0.1},
                         demand={"C2": 2.0, "C3": 3.0, "C4": 2.0, "C6": 4.0, "C8": 1.0})


def two_transformer_areas() -> NetworkFrames:
    """A row of nodes x = 0..10 at y = 0; T1 feeds C1, C2 at (2, -1) (area TA1), T2 feeds C3 at
    (5, -1) and C4 at (7, -1) (area TA2), so that a cell border at x = 6 splits TA2.

    ::

        src --B1-- n0 -- n1 -- n2 -- ... -- n5 -- ... -- n10
                           T1 |          T2 |
                        lv1 (C1, C2)    lv2 (C3) --S-LV-- lv3 (C4)
    """
    nodes = {"src": (0, 1), **{f"n{x}": (x, 0) for x in range(11)}, "lv1": (2, -1), "lv2": (5, -1), "lv3": (7, -1)}
    frames = drawn_network(
        nodes=nodes, segments=[(f"S{x}", f"n{x - 1}", f"n{x}") for x in range(1, 11)] + [("S-LV", "lv2", "lv3")],
        devices=[("B1", "breaker", "src", "n0", "closed"), ("T1", "transformer", "n2", "lv1", "closed"),
                 ("T2", "transformer", "n5", "lv2", "closed")],
        sources=[("SRC", "src")], customers=[("C1", "lv1"), ("C2", "lv1"), ("C3", "lv2"), ("C4", "lv3")])
    frames.transformer_areas = pd.DataFrame([{"code": "TA1", "name": "Area one", "transformer": "T1"},
                                             {"code": "TA2", "name": "Area two", "transformer": "T2"}])
    frames.service_points["transformer_area"] = ["TA1", "TA1", "TA2", "TA2"]
    return frames


def box(x0: float, y0: float, x1: float, y1: float) -> dict:
    """A rectangle in grid steps (as ``drawn_network`` places nodes) as a GeoJSON Polygon."""
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return {"type": "Polygon", "coordinates": [[[ORIGIN[0] + x * STEP, ORIGIN[1] + y * STEP] for x, y in corners]]}
