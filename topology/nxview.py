"""The network as a networkx graph, keyed like pandapower's: for traces that want paths, and the oracle.

The request path never needs it (numpy arrays answer the traces): ``shared_graph`` builds it
once per network on demand.
"""
from __future__ import annotations

import gc

import networkx as nx
import numpy as np

from topology.network import EDGE_TABLES, FREEZE_GC_PAST, NetworkData

__all__ = ["to_networkx", "shared_graph"]


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
    if len(edges) > FREEZE_GC_PAST:
        gc.freeze()
    return graph


def shared_graph(data: NetworkData) -> nx.MultiGraph:
    """The networkx graph of every in-service element (see ``to_networkx``), built once per network."""
    return data.shared("networkx", lambda: to_networkx(data))
