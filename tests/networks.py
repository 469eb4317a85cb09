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
