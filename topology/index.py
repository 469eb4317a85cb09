"""The section index of one state of the network, and ``Topology``: that state with its index.

``Topology`` is one state of a ``NetworkData`` (switch positions) with the index that answers
traces: the conducting graph is cut at every source node, so that each piece (a *section*) is
fed through its own source edges, and every radial section (one source edge, no loop) is held
as a DFS preorder in which "everything downstream of X" is a contiguous slice. Operating
switches re-indexes only the sections the switches touch.

Examples
--------
>>> from topology.network import network_data_from_lists
>>> data = network_data_from_lists(
...     nodes=["src", "a", "b"], sources=[("S", "src")],
...     edges=[("B1", "breaker", "src", "a", True), ("s1", "segment", "a", "b", True)],
...     service_points=[("C1", "b")])
>>> topology = Topology(data)
>>> [data.node_code[n] for n in topology.energised_nodes()]
['src', 'a', 'b']
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, depth_first_order

from topology.network import NetworkData, gather_ranges

__all__ = ["ROOT", "ISOLATED", "REMOVED", "Radial", "Island", "Meshed", "SplitGraph", "SectionIndex", "Topology"]

# node_section values that are not section numbers
ROOT = -1      # an in-service node with an in-service source: always energised
ISOLATED = -2  # an in-service node with no conducting edge and no source
REMOVED = -3   # an out-of-service node: in no graph


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


@dataclass(eq=False)
class Meshed:
    """A fed section with loops or several source edges, held as the DFS preorder of its graph
    with all its source edges joined at one super-source, as ``Radial`` holds a tree.

    In that preorder the nodes below a *bridge* (an edge on no cycle through the super-source:
    ``edge_child`` names its lower end) are positions ``p .. p + size[p]`` of its lower end ``p``,
    exactly what losing the bridge cuts off, as in a radial section. An edge on a cycle cuts
    nobody off by itself; it lies inside a *block* (a 2-edge-connected component: ``block``
    gives each position's, ``block_entry`` the position its parent bridge enters by, -1 for the
    super-source's block). Several cuts in one block are told apart by their *labels* (``edges``,
    sorted, with ``edge_label`` and, for the DFS tree's edges, ``edge_lower``: the position of the
    lower end): a random 64-bit number per non-tree edge, and per tree edge the XOR of the non-tree
    edges whose cycle crosses it. A set of edges contains a cut exactly when some of their labels
    XOR to zero, and the nodes it cuts off are those under an odd number of its tree edges
    (``topology.trace``): no search. ``size`` is each position's DFS subtree size.
    """

    nodes: np.ndarray
    size: np.ndarray
    cust_ptr: np.ndarray
    customers: np.ndarray
    block: np.ndarray           # each position's block (numbered in preorder of their entries)
    block_entry: np.ndarray     # each block's entry position (-1: the super-source's block)
    block_order: np.ndarray     # positions sorted by block; block b's are block_order[block_ptr[b]:block_ptr[b+1]]
    block_ptr: np.ndarray
    bridge_parent: np.ndarray   # the bridges inside the section, as (upper position, lower position),
    bridge_child: np.ndarray    # sorted by the upper one (-1: the super-source)
    source_edges: np.ndarray    # the section's source edges
    edges: np.ndarray           # the section's conducting edges, sorted
    edge_label: np.ndarray      # their labels (uint64)
    edge_lower: np.ndarray      # for the DFS tree's edges, the lower end's position, else -1
    kind = "meshed"

    def labels_of(self, edges) -> tuple[list[int], list[int]]:
        """(labels, lower positions or -1) of some of the section's edges."""
        slot = np.searchsorted(self.edges, np.asarray(edges, dtype=np.int64))
        return self.edge_label[slot].tolist(), self.edge_lower[slot].tolist()
    energised = True

    def below_bridges_at(self, positions: np.ndarray) -> np.ndarray:
        """The lower ends of the bridges hanging from ``positions`` (-1: the super-source)."""
        first = np.searchsorted(self.bridge_parent, positions, side="left")
        last = np.searchsorted(self.bridge_parent, positions, side="right")
        return self.bridge_child[gather_ranges(first, last)] if len(positions) else np.zeros(0, dtype=np.int64)

    def block_positions(self, block: int) -> np.ndarray:
        """The positions of one block."""
        return self.block_order[self.block_ptr[block]:self.block_ptr[block + 1]]


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
    sections: list = [None] * count
    radials, position, tree, child = _radial_sections(data, graph, labels, radial)
    others = np.flatnonzero(~radial & ~single & (real > 0))
    islands = _islands(nodes, labels, others[virtual[others] == 0], virtual)
    meshed, bridge_edges, bridge_children = _meshed_sections(data, graph, labels, others[virtual[others] > 0],
                                                             position)
    for label, found in (radials | islands | meshed).items():
        sections[label] = found
    section = labels[:n].astype(np.int64)
    section[single[labels[:n]]] = ISOLATED
    tree_children = child[child < n]
    tree_edges = graph.edges[tree][child < n]
    return _Indexed(nodes=nodes, section=section, position=position, sections=sections,
                    tree_edges=np.concatenate([tree_edges, bridge_edges]),
                    tree_children=np.concatenate([nodes[tree_children], nodes[bridge_children]]))


def _radial_sections(data: NetworkData, graph: SplitGraph, labels: np.ndarray,
                     radial: np.ndarray) -> tuple[dict[int, Radial], np.ndarray, np.ndarray, np.ndarray]:
    """The radial sections by label, each node's position in its section, and the tree edges with their child ends.

    One DFS and one BFS from a super-root joined to each radial section's virtual source.
    """
    nodes, n = graph.nodes, len(graph.nodes)
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
    start_of = np.zeros(len(radial), dtype=np.int64)
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

    sections: dict[int, Radial] = {}
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
    return sections, local_position, tree, child


def _meshed_sections(data: NetworkData, graph: SplitGraph, labels: np.ndarray, meshed: np.ndarray,
                     position: np.ndarray) -> tuple[dict[int, Meshed], np.ndarray, np.ndarray]:
    """The meshed sections by label; writes their nodes' positions into ``position`` and returns
    the bridges with their lower ends (local ids), for ``edge_child``.

    Notes
    -----
    Per section: one DFS from a super-source joined to every source edge; a tree edge (p, c) is
    a bridge unless an edge from c's subtree reaches above c (the classic low-link test: ``low``
    is a subtree minimum, reduced level by level from a BFS of the DFS tree, as subtree sizes are);
    the blocks are the connected components left without the bridges. Linear in the section.
    """
    found: dict[int, Meshed] = {}
    bridge_edges, bridge_children = [], []
    n = len(graph.nodes)
    in_section = labels[graph.a]
    for label in meshed.tolist():
        mine = np.flatnonzero(in_section == label)
        members = np.flatnonzero(labels[:n] == label)
        # compact ids: 0 the super-source, 1.. the section's real nodes
        compact = np.zeros(graph.size, dtype=np.int64)
        compact[members] = np.arange(1, len(members) + 1)
        a, b = compact[graph.a[mine]], compact[graph.b[mine]]
        dfs = _Dfs.of(a, b, len(members) + 1)
        is_bridge = dfs.bridges()
        bridges = dfs.children[is_bridge]
        marks, lower = dfs.labels(a, b)
        block_of = dfs.blocks(is_bridge)
        real_order = dfs.preorder[1:]  # positions: the preorder without the super-source
        local = members[real_order - 1]  # graph-local ids of the real nodes, in preorder
        position[local] = np.arange(len(local))
        block = block_of[real_order]
        blocks = int(block_of.max()) + 1
        entry = np.full(blocks, -1, dtype=np.int64)
        entry[block_of[bridges]] = dfs.pre[bridges] - 1
        ptr = np.zeros(blocks + 1, dtype=np.int64)
        np.cumsum(np.bincount(block, minlength=blocks), out=ptr[1:])
        upper = dfs.pre[dfs.parent[bridges]] - 1
        by_upper = np.argsort(upper, kind="stable")
        cumulative = np.zeros(len(local) + 1, dtype=np.int64)
        np.cumsum(np.diff(data.customer_pointer)[graph.nodes[local]], out=cumulative[1:])
        edge_order = np.argsort(graph.edges[mine], kind="stable")
        found[label] = Meshed(
            nodes=graph.nodes[local].astype(np.int32), size=dfs.sizes[real_order].astype(np.int32),
            cust_ptr=cumulative, customers=data.customers_at(graph.nodes[local]).astype(np.int32),
            block=block.astype(np.int32), block_entry=entry,
            block_order=np.argsort(block, kind="stable").astype(np.int32), block_ptr=ptr,
            bridge_parent=upper[by_upper], bridge_child=(dfs.pre[bridges] - 1)[by_upper],
            source_edges=np.unique(graph.edges[mine[(a == 0) | (b == 0)]]),
            edges=graph.edges[mine][edge_order], edge_label=marks[edge_order], edge_lower=lower[edge_order])
        # each bridge's edge: a bridge pair is single, so its key names one edge
        bridge_edges.append(graph.edges[mine[dfs.first_of[dfs.slot[is_bridge]]]])
        bridge_children.append(members[bridges - 1])
    empty = np.zeros(0, dtype=np.int64)
    return (found, np.concatenate(bridge_edges) if bridge_edges else empty,
            np.concatenate(bridge_children) if bridge_children else empty)


@dataclass
class _Dfs:
    """The DFS of one meshed section from its super-source (id 0), over its distinct node pairs."""

    size: int
    pairs: np.ndarray          # the distinct pairs, as keys low * size + high
    first_of: np.ndarray       # an edge of each pair (its index in the section's edges)
    multiplicity: np.ndarray   # how many edges each pair has
    preorder: np.ndarray
    parent: np.ndarray
    pre: np.ndarray            # each id's preorder number
    children: np.ndarray       # every id but the root, in preorder
    slot: np.ndarray           # the pair of each child's tree edge
    breadth: np.ndarray        # a BFS of the DFS tree, and its parents, for subtree reductions
    tree_parent: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, size: int) -> "_Dfs":
        keys = np.minimum(a, b) * size + np.maximum(a, b)
        pairs, first_of, multiplicity = np.unique(keys, return_index=True, return_counts=True)
        u, v = pairs // size, pairs % size
        symmetric = csr_matrix((np.ones(2 * len(u), dtype=np.int8), (np.r_[u, v], np.r_[v, u])), shape=(size, size))
        preorder, parent = depth_first_order(symmetric, 0, directed=True, return_predecessors=True)
        pre = np.empty(size, dtype=np.int64)
        pre[preorder] = np.arange(size)
        children = preorder[1:]
        slot = np.searchsorted(pairs, np.minimum(children, parent[children]) * size + np.maximum(children, parent[children]))
        tree = csr_matrix((np.ones(len(children), dtype=np.int8), (parent[children], children)), shape=(size, size))
        breadth, tree_parent = breadth_first_order(tree, 0, directed=True, return_predecessors=True)
        sizes = _subtree_reduce(breadth, tree_parent, np.ones(size, dtype=np.int64), np.add)
        return cls(size, pairs, first_of, multiplicity, preorder, parent, pre, children, slot, breadth, tree_parent,
                   sizes)

    def bridges(self) -> np.ndarray:
        """Whether each child's tree edge is a bridge: nothing from its subtree reaches above it
        (``up``: the smallest preorder number an id reaches by a non-tree edge or a doubled tree edge)."""
        u, v = self.pairs // self.size, self.pairs % self.size
        other = np.ones(len(self.pairs), dtype=bool)
        other[self.slot] = False
        pre, up = self.pre, self.pre.copy()
        deep = np.where(pre[u[other]] > pre[v[other]], u[other], v[other])
        np.minimum.at(up, deep, np.minimum(pre[u[other]], pre[v[other]]))
        doubled = self.multiplicity[self.slot] > 1
        np.minimum.at(up, self.children[doubled], pre[self.parent[self.children[doubled]]])
        low = _subtree_reduce(self.breadth, self.tree_parent, up, np.minimum)
        return low[self.children] >= pre[self.children]

    def labels(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each edge's label and, for tree edges, its lower end's position (else -1): a random
        label for an edge that is not its pair's tree edge; for a tree edge the XOR of those whose
        cycle crosses it (the subtree XOR of their ends' labels)."""
        rng = np.random.default_rng(0x6A7A5 + len(a))  # fixed: the same network, the same labels
        tree_index = self.first_of[self.slot]
        other = np.ones(len(a), dtype=bool)
        other[tree_index] = False
        marks = np.zeros(len(a), dtype=np.uint64)
        marks[other] = rng.integers(1, np.iinfo(np.int64).max, size=int(other.sum()), dtype=np.int64).astype(np.uint64)
        ends = np.zeros(self.size, dtype=np.uint64)
        np.bitwise_xor.at(ends, a[other], marks[other])
        np.bitwise_xor.at(ends, b[other], marks[other])
        marks[tree_index] = _subtree_reduce(self.breadth, self.tree_parent, ends, np.bitwise_xor)[self.children]
        lower = np.full(len(a), -1, dtype=np.int64)
        lower[tree_index] = self.pre[self.children] - 1
        return marks, lower

    def blocks(self, is_bridge: np.ndarray) -> np.ndarray:
        """Each id's block: the components without the bridges, numbered by first node in preorder."""
        u, v = self.pairs // self.size, self.pairs % self.size
        keep = np.ones(len(self.pairs), dtype=bool)
        keep[self.slot[is_bridge]] = False
        _, block_of = connected_components(csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.int8), (u[keep], v[keep])), shape=(self.size, self.size)), directed=False)
        first_seen = np.full(block_of.max() + 1, self.size, dtype=np.int64)
        np.minimum.at(first_seen, block_of, self.pre)
        renumber = np.empty(len(first_seen), dtype=np.int64)
        renumber[np.argsort(first_seen)] = np.arange(len(first_seen))
        return renumber[block_of]


def _islands(nodes: np.ndarray, labels: np.ndarray, others: np.ndarray, virtual: np.ndarray) -> dict[int, Island]:
    """The sections labelled ``others`` by label: meshed where they hold a virtual source, else dead."""
    if not len(others):
        return {}
    n = len(nodes)
    member = np.flatnonzero(np.isin(labels[:n], others))
    member = member[np.argsort(labels[member], kind="stable")]
    bounds = np.flatnonzero(np.r_[True, labels[member][1:] != labels[member][:-1], True])
    islands = {}
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        label = int(labels[member[start]])
        islands[label] = Island("meshed" if virtual[label] else "dead", nodes[member[start:end]].astype(np.int32))
    return islands


def _subtree_sizes(breadth: np.ndarray, parent: np.ndarray, size: int) -> np.ndarray:
    """Subtree sizes of a tree from its BFS order, summed one level at a time (deepest first)."""
    subtree = np.zeros(size, dtype=np.int64)
    subtree[breadth] = 1
    return _subtree_reduce(breadth, parent, subtree, np.add)


def _subtree_reduce(breadth: np.ndarray, parent: np.ndarray, values: np.ndarray, ufunc) -> np.ndarray:
    """``ufunc`` (np.add, np.minimum) of ``values`` over each node's subtree, from the tree's BFS
    order, one level at a time (deepest first); nodes outside the tree keep their value."""
    subtree = values.copy()
    size = len(values)
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
        subtree[parents[first]] = ufunc(subtree[parents[first]], ufunc.reduceat(subtree[children], first))
    return subtree


# -- the state and its index -----------------------------------------------------------------------
def _conducting(data: NetworkData, closed: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Whether each of ``edges`` conducts: in service, closed, between in-service nodes."""
    return (data.edge_in_service[edges] & closed[edges]
            & data.node_in_service[data.edge_u[edges]] & data.node_in_service[data.edge_v[edges]])


@dataclass(eq=False)
class SectionIndex:
    """One state (which edges are ``closed``) and where every node sits in it.

    ``node_section`` is a node's section number, or ROOT, ISOLATED or REMOVED; ``node_position``
    its position in its radial section's preorder (else -1); ``edge_child`` the child node of
    each edge inside a radial section (else -1); ``reindexed`` the nodes this index (re)built.
    """

    closed: np.ndarray
    conducting: np.ndarray
    node_section: np.ndarray
    node_position: np.ndarray
    edge_child: np.ndarray
    sections: list
    reindexed: np.ndarray

    @classmethod
    def build(cls, data: NetworkData, closed: np.ndarray) -> SectionIndex:
        """The index of the whole network in the state ``closed`` (kept, not copied)."""
        conducting = _conducting(data, closed, np.arange(data.edge_count))
        node_section = np.full(data.node_count, REMOVED, dtype=np.int32)
        node_section[data.node_in_service] = ISOLATED
        node_section[data.is_root] = ROOT
        real = np.flatnonzero(data.node_in_service & ~data.is_root)
        index = cls(closed, conducting, node_section, node_position=np.full(data.node_count, -1, dtype=np.int32),
                    edge_child=np.full(data.edge_count, -1, dtype=np.int32), sections=[], reindexed=real)
        edges = np.flatnonzero(conducting & ~(data.is_root[data.edge_u] & data.is_root[data.edge_v]))
        index._write(_index(data, conducting, real, edges))
        return index

    def operated(self, data: NetworkData, closed: dict[int, bool]) -> SectionIndex:
        """A new index with the edges in ``closed`` set open (False) or closed (True).

        Only the sections containing the operated edges' ends are indexed again.
        """
        edges = np.fromiter(closed.keys(), dtype=np.int64, count=len(closed))
        state = self.closed.copy()
        state[edges] = np.fromiter(closed.values(), dtype=bool, count=len(closed))
        conducting = self.conducting.copy()
        conducting[edges] = _conducting(data, state, edges)
        ends = np.unique(np.concatenate([data.edge_u[edges], data.edge_v[edges]]))
        ends = ends[self.node_section[ends] != REMOVED]
        ends = ends[self.node_section[ends] != ROOT]
        touched = np.unique(self.node_section[ends][self.node_section[ends] >= 0])
        nodes = np.unique(np.concatenate([ends] + [self.sections[s].nodes for s in touched]))
        sections = list(self.sections)
        for s in touched:
            sections[s] = None
        incident = np.unique(data.incident_edges(nodes))
        index = SectionIndex(state, conducting, self.node_section.copy(), self.node_position.copy(),
                             self.edge_child.copy(), sections, reindexed=nodes)
        index.edge_child[incident] = -1
        index.node_position[nodes] = -1
        index._write(_index(data, conducting, nodes, incident[conducting[incident]]))
        return index

    def _write(self, indexed: _Indexed) -> None:
        """Record a new index of some nodes: their sections, positions and tree edges."""
        offset = len(self.sections)
        self.sections.extend(indexed.sections)
        section = np.where(indexed.section >= 0, indexed.section + offset, indexed.section)
        self.node_section[indexed.nodes] = section
        self.node_position[indexed.nodes] = indexed.position
        self.edge_child[indexed.tree_edges] = indexed.tree_children


def _from_index(name: str, doc: str) -> property:
    """A read-only attribute of ``Topology`` that is its index's."""
    return property(lambda topology: getattr(topology.index, name), doc=doc)


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
    index : SectionIndex, optional
        The state's index when it is built already (``operated`` builds it from this one's);
        ``closed`` is then the index's own and may not be given.
    """

    def __init__(self, data: NetworkData, closed: np.ndarray | None = None, version=None,
                 index: SectionIndex | None = None):
        if index is None:
            index = SectionIndex.build(data, np.array(data.edge_closed if closed is None else closed, dtype=bool))
        elif closed is not None:
            raise ValueError("give closed or index, not both: the index holds its state")
        self.data = data
        self.version = version
        self.index = index
        self._fed_sections: np.ndarray | None = None  # both computed on first use
        self._energised: np.ndarray | None = None

    closed = _from_index("closed", "Whether each edge is closed in this state.")
    conducting = _from_index("conducting", "Whether each edge conducts in this state.")
    node_section = _from_index("node_section", "Each node's section number, or ROOT, ISOLATED or REMOVED.")
    node_position = _from_index("node_position", "Each node's position in its radial section (else -1).")
    edge_child = _from_index("edge_child", "The child node of each edge inside a radial section (else -1).")
    sections = _from_index("sections", "Section number -> ``Radial``, ``Island``, or None where indexed again.")
    reindexed = _from_index("reindexed", "The nodes whose index this state built (all, unless from ``operated``).")

    # -- state -----------------------------------------------------------------------------------
    def _fed(self) -> np.ndarray:
        """Whether each section is fed, then three entries for REMOVED, ISOLATED and ROOT."""
        if self._fed_sections is None:
            # node_section -3, -2, -1 index the last three entries: removed, isolated, root
            self._fed_sections = np.array([s is not None and s.energised for s in self.sections] + [False, False, True],
                                          dtype=bool)
        return self._fed_sections

    @property
    def energised(self) -> np.ndarray:
        """Whether each node is energised (reachable from a source over conducting edges)."""
        if self._energised is None:
            self._energised = self._fed()[self.node_section]
        return self._energised

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
        return Topology(self.data, version=version, index=self.index.operated(self.data, closed))
