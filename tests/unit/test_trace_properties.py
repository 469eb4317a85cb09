"""Property tests: the fast path (radial preorder slices, per-section re-indexing, meshed
fallback) always equals the plain full recomputation with networkx, on random radial and
meshed networks with random switch states, random failures and random switching sequences.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topology import trace
from topology.graph import SWITCHGEAR, Topology, network_data_from_lists, to_networkx
from topology.trace import energised_by_networkx, recompute_affected

KINDS = ["segment", "segment", "segment", "breaker", "recloser", "switch", "switch", "fuse", "transformer"]
# The two tests of the fast path itself get the most examples; each example checks several changes.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRACE = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def networks(draw, meshed: bool):
    """A random tree of 2..30 nodes with ties, sources, customers and failed elements.

    Ties (extra edges) are open in radial mode; ``meshed`` adds more of them, of any kind and
    often closed, so that loops, parallel edges and sections fed from several sources are common.
    Tree devices are open now and then, which leaves dead parts behind them.
    """
    count = draw(st.integers(2, 30))
    nodes = [f"n{i}" for i in range(count)]
    spans = count - 1
    parents = draw(st.lists(st.integers(0, 1 << 16), min_size=spans, max_size=spans))
    kinds = draw(st.lists(st.integers(0, len(KINDS) - 1), min_size=spans, max_size=spans))
    opened = draw(st.lists(st.integers(0, 3), min_size=spans, max_size=spans))
    edges = [(f"e{i}", KINDS[kinds[i - 1]], nodes[parents[i - 1] % i], nodes[i],
              KINDS[kinds[i - 1]] == "segment" or opened[i - 1] > 0) for i in range(1, count)]
    extra = draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count - 1),
                                    st.integers(0, len(KINDS) - 1), st.booleans()), max_size=6 if meshed else 3))
    for j, (a, b, kind, closed) in enumerate(extra):
        if a != b:
            kind = KINDS[kind] if meshed else "switch"
            edges.append((f"x{j}", kind, nodes[a], nodes[b], meshed and (kind == "segment" or closed)))
    sources = [(f"S{k}", nodes[n]) for k, n in enumerate(draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=3)))]
    customers = [(f"C{k}", nodes[n]) for k, n in enumerate(draw(st.lists(st.integers(0, count - 1), max_size=40)))]
    elements = nodes + [e[0] for e in edges] + [s[0] for s in sources] + [c[0] for c in customers]
    out = [elements[i % len(elements)] for i in draw(st.lists(st.integers(0, 1 << 16), max_size=3))]
    return network_data_from_lists(nodes, edges, sources, customers, out_of_service=out)


@st.composite
def changes(draw, data):
    """A change: switchgear to open, edges and nodes to take out of service (several faults)."""
    gear = [e for e in range(data.edge_count) if data.kind_of(e) in SWITCHGEAR]
    picks = draw(st.lists(st.integers(0, 1 << 16), max_size=4))
    opened = [gear[i % len(gear)] for i in picks] if gear else []
    picks = draw(st.lists(st.integers(0, 1 << 16), max_size=3))
    failed_edges = [i % data.edge_count for i in picks] if data.edge_count else []
    failed_nodes = [i % data.node_count for i in draw(st.lists(st.integers(0, 1 << 16), max_size=2))]
    return opened, failed_edges, failed_nodes


def _oracle_energised(topology: Topology) -> np.ndarray:
    """The energised mask by the networkx oracle."""
    energised = energised_by_networkx(topology.data, topology.closed)
    return np.isin(np.arange(topology.data.node_count), list(energised))


def _assert_matches_oracle(topology: Topology, change) -> None:
    """Energised, affected customers, lost nodes and lost edges all equal the oracle's."""
    data = topology.data
    opened, failed_edges, failed_nodes = change
    assert np.array_equal(topology.energised, _oracle_energised(topology))
    outage = trace.affected(topology, opened, failed_edges, failed_nodes)
    expected = recompute_affected(data, topology.closed, opened, failed_edges, failed_nodes)
    assert sorted(outage.customers.tolist()) == sorted(expected)
    assert len(set(outage.customers.tolist())) == len(outage.customers)
    before = energised_by_networkx(data, topology.closed)
    after = energised_by_networkx(data, topology.closed, opened + failed_edges, failed_nodes)
    assert sorted(outage.nodes.tolist()) == sorted(before - after)
    # lost edges: in service, a live terminal before; out of service or no live terminal after
    removed_edges = set(failed_edges)
    expected_edges = {
        e for e in range(data.edge_count)
        if data.edge_in_service[e] and (data.edge_u[e] in before or data.edge_v[e] in before)
        and not (e not in removed_edges and (data.edge_u[e] in after or data.edge_v[e] in after))
    }
    assert set(outage.edges().tolist()) == expected_edges


def _assert_index_consistent(topology: Topology) -> None:
    """Every radial section's arrays describe a tree whose slices are exactly the subtrees."""
    data = topology.data
    for number, section in enumerate(topology.sections):
        if section is None or section.kind != "radial":
            continue
        assert (topology.node_section[section.nodes] == number).all()
        assert (topology.node_position[section.nodes] == np.arange(len(section.nodes))).all()
        for position in range(len(section.nodes)):
            parent = section.parent[position]
            if parent >= 0:
                start = parent
                assert start < position < start + section.size[start]
            edge = section.parent_edge[position]
            assert topology.conducting[edge] and topology.edge_child[edge] == section.nodes[position]
        customers = data.customers_at(section.nodes)
        assert np.array_equal(section.customers, customers)


@PROPERTY
@given(st.data(), st.booleans())
def test_fast_path_equals_full_recomputation(draw, meshed):
    data = draw.draw(networks(meshed))
    topology = Topology(data)
    _assert_index_consistent(topology)
    for _ in range(3):
        _assert_matches_oracle(topology, draw.draw(changes(data)))


@PROPERTY
@given(st.data(), st.booleans())
def test_switching_reindexes_to_the_same_answers_as_a_fresh_build(draw, meshed):
    data = draw.draw(networks(meshed))
    topology = Topology(data)
    devices = [e for e in range(data.edge_count) if data.edge_table[e] == 1]
    if not devices:
        return
    for _ in range(draw.draw(st.integers(1, 6))):
        picks = draw.draw(st.lists(st.integers(0, 1 << 16), min_size=1, max_size=3))
        operated = {devices[i % len(devices)] for i in picks}
        previous, topology = topology, topology.operated({e: not topology.closed[e] for e in operated})
        fresh = Topology(data, topology.closed)
        # supply can only change where the operation re-indexed (switching reports lost/regained from there)
        changed = np.flatnonzero(previous.energised != fresh.energised)
        assert set(changed.tolist()) <= set(topology.reindexed.tolist())
        _assert_index_consistent(topology)
        assert np.array_equal(topology.energised, fresh.energised)
        change = draw.draw(changes(data))
        _assert_matches_oracle(topology, change)
        assert sorted(trace.affected(topology, *change).customers.tolist()) == \
            sorted(trace.affected(fresh, *change).customers.tolist())


@TRACE
@given(st.data(), st.booleans())
def test_upstream_is_a_shortest_live_path_to_a_source(draw, meshed):
    data = draw.draw(networks(meshed))
    topology = Topology(data)
    graph = to_networkx(data, topology.closed)
    sources = {int(n) for n in data.source_node[data.source_in_service] if n in graph}
    node = draw.draw(st.integers(0, data.node_count - 1))
    body = trace.upstream(topology, data.node_code[node])
    assert body["energised"] == bool(topology.energised[node])
    if not body["energised"]:
        return
    distance = min((d for s, d in nx.single_source_shortest_path_length(graph, node).items() if s in sources))
    assert len(body["path"]) == distance == len(body["nodes"]) - 1
    codes = {code: i for i, code in enumerate(data.edge_code)}
    nodes = {code: i for i, code in enumerate(data.node_code)}
    for edge_code, a, b in zip(body["path"], body["nodes"], body["nodes"][1:]):
        edge = codes[edge_code]
        assert topology.conducting[edge]
        assert {int(data.edge_u[edge]), int(data.edge_v[edge])} == {nodes[a], nodes[b]}
    assert nodes[body["nodes"][-1]] in sources


@TRACE
@given(st.data(), st.booleans())
def test_isolation_cuts_the_zone_off_from_every_source(draw, meshed):
    data = draw.draw(networks(meshed))
    topology = Topology(data)
    edge = draw.draw(st.integers(0, data.edge_count - 1)) if data.edge_count else None
    if edge is None:
        return
    body = trace.isolation(topology, data.edge_code[edge])
    if not body["isolable"]:
        return
    # Worst case: every other device closed, only the isolation set and the already-open ones open.
    opened = {d["code"] for d in body["devices"]} | set(body["already_open"])
    closed = np.array([data.edge_code[e] not in opened for e in range(data.edge_count)])
    reachable = energised_by_networkx(data, closed)
    zone = {i for i, code in enumerate(data.node_code) if code in set(body["zone"]["nodes"])}
    assert not (zone & reachable)
    # and what it costs is what opening those devices costs now
    expected = recompute_affected(data, topology.closed, [int(np.flatnonzero(data.edge_code == d["code"])[0])
                                                          for d in body["devices"]])
    assert sorted(body["customers"]) == sorted(data.sp_code[sorted(expected)].tolist())


@TRACE
@given(st.data(), st.booleans())
def test_connected_ignores_switch_states(draw, meshed):
    data = draw.draw(networks(meshed))
    topology = Topology(data)
    node = draw.draw(st.integers(0, data.node_count - 1))
    body = trace.connected(topology, data.node_code[node])
    graph = to_networkx(data)
    expected = nx.node_connected_component(graph, node) if node in graph else set()
    assert sorted(body["nodes"]) == sorted(data.node_code[sorted(expected)].tolist())
