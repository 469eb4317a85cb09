"""Property tests: the fast path (radial preorder slices, per-section re-indexing, meshed
fallback) always equals an oracle built from the generated lists alone with plain networkx
(tests/oracles.py), on random radial and meshed networks with random switch states, random
out-of-service elements (customers, nodes, edges, sources), random failures and switching.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.oracles import PROTECTIVE, SWITCHGEAR, RawNetwork
from topology import trace
from topology.index import Meshed, Topology
from topology.network import network_data_from_lists

KINDS = ["segment", "segment", "segment", "breaker", "recloser", "switch", "switch", "fuse", "transformer"]
# The two tests of the fast path itself get the most examples; each example checks several changes.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRACE = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_index = st.integers(0, 1 << 16)


def _some(draw, codes: list[str], most: int) -> set[str]:
    """Up to ``most`` of ``codes``."""
    return {codes[i % len(codes)] for i in draw(st.lists(_index, max_size=most))} if codes else set()


@st.composite
def networks(draw, meshed: bool, rings: int = 6):
    """A random tree of 2..30 nodes (so at least one edge) with ties, sources, customers and out-of-service elements.

    Ties (extra edges) are open in radial mode; ``meshed`` adds more of them, of any kind and
    often closed, so that loops, parallel edges and sections fed from several sources are common.
    Tree devices are open now and then, which leaves dead parts behind them. Returns the raw
    lists (the oracle's input) and the ``NetworkData`` built from them.
    """
    count = draw(st.integers(2, 30))
    nodes = [f"n{i}" for i in range(count)]
    spans = count - 1
    parents = draw(st.lists(_index, min_size=spans, max_size=spans))
    kinds = draw(st.lists(st.integers(0, len(KINDS) - 1), min_size=spans, max_size=spans))
    opened = draw(st.lists(st.integers(0, 3), min_size=spans, max_size=spans))
    edges = [(f"e{i}", KINDS[kinds[i - 1]], nodes[parents[i - 1] % i], nodes[i],
              KINDS[kinds[i - 1]] == "segment" or opened[i - 1] > 0) for i in range(1, count)]
    extra = draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count - 1),
                                    st.integers(0, len(KINDS) - 1), st.booleans()), max_size=rings if meshed else 3))
    for j, (a, b, kind, closed) in enumerate(extra):
        if a != b:
            kind = KINDS[kind] if meshed else "switch"
            edges.append((f"x{j}", kind, nodes[a], nodes[b], meshed and (kind == "segment" or closed)))
    sources = [(f"S{k}", nodes[n]) for k, n in enumerate(draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=3)))]
    customers = [(f"C{k}", nodes[n]) for k, n in enumerate(draw(st.lists(st.integers(0, count - 1), max_size=40)))]
    out = (_some(draw, [c for c, _ in customers], 6) | _some(draw, nodes, 2)
           | _some(draw, [e[0] for e in edges], 2) | _some(draw, [s for s, _ in sources], 1))
    raw = RawNetwork(tuple(nodes), tuple(edges), tuple(sources), tuple(customers), frozenset(out))
    return raw, network_data_from_lists(nodes, edges, sources, customers, out_of_service=sorted(out))


@st.composite
def changes(draw, raw: RawNetwork):
    """A change by codes: switchgear to open, edges and nodes to take out of service (several faults)."""
    gear = [code for code, kind, *_ in raw.edges if kind in SWITCHGEAR]
    return (sorted(_some(draw, gear, 4)), sorted(_some(draw, [e[0] for e in raw.edges], 3)),
            sorted(_some(draw, list(raw.nodes), 2)))


def _positions(codes_in_data, codes) -> list[int]:
    """Positions of ``codes`` in one of the data's code arrays."""
    where = {code: i for i, code in enumerate(codes_in_data)}
    return [where[code] for code in codes]


def _energised(topology: Topology) -> set[str]:
    """The codes of the nodes the fast path says are energised."""
    return set(topology.data.node_code[topology.energised].tolist())


def _assert_matches_oracle(topology: Topology, raw: RawNetwork, change) -> None:
    """Energised, affected customers, lost nodes and lost edges all equal the oracle's."""
    data = topology.data
    opened, failed_edges, failed_nodes = change
    assert _energised(topology) == raw.energised()
    outage = trace.affected(topology, _positions(data.edge_code, opened), _positions(data.edge_code, failed_edges),
                            _positions(data.node_code, failed_nodes))
    expected = raw.loss(opened, failed_edges, failed_nodes)
    customers = data.sp_code[outage.customers].tolist()
    assert len(set(customers)) == len(customers)
    assert set(customers) == expected.customers
    assert set(data.node_code[outage.nodes].tolist()) == expected.nodes
    assert set(data.edge_code[outage.edges()].tolist()) == expected.edges
    # the full recomputation with networkx (the benchmark's baseline) agrees too
    slow = trace.recompute_affected(data, topology.closed, _positions(data.edge_code, opened),
                                    _positions(data.edge_code, failed_edges), _positions(data.node_code, failed_nodes))
    assert set(data.sp_code[sorted(slow)].tolist()) == expected.customers


def _assert_index_consistent(topology: Topology, raw: RawNetwork) -> None:
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
        expected = [c for node in data.node_code[section.nodes].tolist() for c in raw.customers_on({node})]
        assert data.sp_code[section.customers].tolist() == expected


@PROPERTY
@given(st.data(), st.booleans())
def test_fast_path_equals_full_recomputation(draw, meshed):
    raw, data = draw.draw(networks(meshed))
    topology = Topology(data)
    _assert_index_consistent(topology, raw)
    for _ in range(3):
        _assert_matches_oracle(topology, raw, draw.draw(changes(raw)))


@PROPERTY
@given(st.data(), st.booleans())
def test_switching_reindexes_to_the_same_answers_as_a_fresh_build(draw, meshed):
    raw, data = draw.draw(networks(meshed))
    topology = Topology(data)
    devices = [code for code, kind, *_ in raw.edges if kind != "segment"]
    if not devices:
        return
    states = {code: closed for code, _, _, _, closed in raw.edges}
    for _ in range(draw.draw(st.integers(1, 6))):
        operated = _some(draw.draw, devices, 3) or {devices[0]}
        states.update({code: not states[code] for code in operated})
        previous = topology
        topology = topology.operated({p: states[c] for c, p in zip(operated, _positions(data.edge_code, operated))})
        fresh = Topology(data, topology.closed)
        # supply can only change where the operation re-indexed (switching reports lost/regained from there)
        changed = np.flatnonzero(previous.energised != fresh.energised)
        assert set(changed.tolist()) <= set(topology.reindexed.tolist())
        _assert_index_consistent(topology, raw)
        now = raw.with_states(states)
        assert _energised(fresh) == now.energised()
        _assert_matches_oracle(topology, now, draw.draw(changes(raw)))


@TRACE
@given(st.data(), st.booleans())
def test_upstream_is_a_shortest_live_path_to_a_source(draw, meshed):
    raw, data = draw.draw(networks(meshed))
    topology = Topology(data)
    node = draw.draw(st.sampled_from(raw.nodes))
    body = trace.upstream(topology, node).as_dict()
    distance = raw.distance_to_source(node)
    assert body["energised"] == (distance is not None)
    if distance is None:
        assert body["path"] == body["nodes"] == body["protective_devices"] == [] and body["source"] is None
        return
    assert len(body["path"]) == distance == len(body["nodes"]) - 1
    assert body["nodes"][0] == node
    graph = raw.graph()
    for edge, a, b in zip(body["path"], body["nodes"], body["nodes"][1:]):
        assert graph.has_edge(a, b, key=edge)
    sources = [code for code, at in raw.sources if at == body["nodes"][-1] and raw.in_service(code)]
    assert body["sources"] == sources and body["source"] == sources[0]
    assert body["protective_devices"] == [{"code": e, "kind": raw.kind(e), "state": "closed"}
                                          for e in body["path"] if raw.kind(e) in PROTECTIVE]


@TRACE
@given(st.data(), st.booleans())
def test_upstream_of_an_edge_starts_with_it_and_goes_on_from_its_nearer_end(draw, meshed):
    raw, data = draw.draw(networks(meshed))
    topology = Topology(data)
    code, kind, a, b, _ = draw.draw(st.sampled_from(raw.edges))
    upstream = trace.upstream(topology, code)
    distances = [d for d in (raw.distance_to_source(a), raw.distance_to_source(b)) if d is not None]
    assert upstream.energised == bool(distances)
    if not distances:
        return
    assert upstream.path[0] == code and len(upstream.path) == 1 + min(distances) == len(upstream.nodes)
    assert upstream.nodes[0] in (a, b)
    assert upstream.segments == [e for e in upstream.path if raw.kind(e) == "segment"]
    assert upstream.devices == [e for e in upstream.path if raw.kind(e) != "segment"]
    assert [d.code for d in upstream.protective_devices] == \
        [e for e in upstream.path[1:] if raw.kind(e) in PROTECTIVE]


@TRACE
@given(st.data(), st.booleans())
def test_downstream_is_what_opening_or_losing_the_element_costs(draw, meshed):
    raw, data = draw.draw(networks(meshed))
    topology = Topology(data)
    kind, code = draw.draw(st.sampled_from([("node", n) for n in raw.nodes] + [(e[1], e[0]) for e in raw.edges]
                                           + [("customer", c) for c, _ in raw.customers]))
    element, outage = trace.downstream(topology, code)
    assert element.code == code
    if kind in SWITCHGEAR:
        expected = raw.loss(opened=[code])
    elif kind == "node":
        expected = raw.loss(removed_nodes=[code])
    elif kind == "customer":
        expected = raw.loss(removed_nodes=[dict(raw.customers)[code]])
    else:
        expected = raw.loss(removed_edges=[code])
    assert set(outage.customer_codes()) == expected.customers
    assert set(outage.node_codes()) == expected.nodes
    assert set(topology.data.edge_code[outage.edges()].tolist()) == expected.edges


@TRACE
@given(st.data(), st.booleans())
def test_supply_state_and_deenergised_elements_agree_with_the_oracle(draw, meshed):
    raw, data = draw.draw(networks(meshed))
    topology = Topology(data, version=(7, None))
    live = raw.energised()
    served = [code for code, _ in raw.customers if raw.in_service(code)]
    lit = raw.customers_on(live)
    state = trace.supply_state(topology)
    assert (state.topology_version, state.customers, state.energised_customers, state.deenergised_customers) == \
        (7, len(served), len(lit), len(served) - len(lit))
    assert state.radial == (state.meshed_sections == 0) == topology.is_radial
    assert state.as_dict()["deenergised_customers"] == state.deenergised_customers
    dead = trace.deenergised(topology)
    edges = {code: (kind, a in live or b in live) for code, kind, a, b, _ in raw.edges}
    code_of = dict(zip(data.edge_id.tolist(), data.edge_code.tolist()))
    assert sorted(code_of[i] for i in dead.segment_ids.tolist()) == \
        sorted(c for c, (kind, lit_) in edges.items() if kind == "segment" and not (lit_ and raw.in_service(c)))
    assert sorted(code_of[i] for i in dead.device_ids.tolist()) == \
        sorted(c for c, (kind, lit_) in edges.items() if kind != "segment" and not (lit_ and raw.in_service(c)))
    customer_of = dict(zip(data.sp_id.tolist(), data.sp_code.tolist()))
    assert sorted(customer_of[i] for i in dead.service_point_ids.tolist()) == \
        sorted(set(c for c, _ in raw.customers) - set(lit))


@TRACE
@given(st.data(), st.booleans())
def test_isolation_cuts_the_zone_off_from_every_source(draw, meshed):
    raw, data = draw.draw(networks(meshed))
    topology = Topology(data)
    edge = draw.draw(st.sampled_from(raw.edges))[0]
    body = trace.isolation(topology, edge).as_dict()
    if not body["isolable"]:
        return
    # Worst case: every other device closed, only the isolation set and the already-open ones open.
    opened = {d["code"] for d in body["devices"]} | set(body["already_open"])
    worst = raw.with_states({code: code not in opened for code, *_ in raw.edges})
    assert not (set(body["zone"]["nodes"]) & worst.energised())
    # and what it costs is what opening those devices costs now
    assert set(body["customers"]) == raw.loss(opened=[d["code"] for d in body["devices"]]).customers
    # each is in-service switchgear between in-service nodes, one end in the zone; "supply" when the far one stays live
    ends = {code: (kind, a, b, closed) for code, kind, a, b, closed in raw.edges}
    zone, after = set(body["zone"]["nodes"]), raw.energised(opened=[d["code"] for d in body["devices"]])
    for code, side in [(d["code"], d["side"]) for d in body["devices"]] + [(c, None) for c in body["already_open"]]:
        kind, a, b, closed = ends[code]
        assert kind in SWITCHGEAR and all(raw.in_service(x) for x in (code, a, b)) and (a in zone) != (b in zone)
        assert closed == (side is not None)
        if side is not None:
            assert side == ("supply" if (b if a in zone else a) in after else "load")


@TRACE
@given(st.data(), st.booleans())
def test_connected_ignores_switch_states(draw, meshed):
    raw, data = draw.draw(networks(meshed))
    topology = Topology(data)
    node = draw.draw(st.sampled_from(raw.nodes))
    body = trace.connected(topology, node).as_dict()
    graph = raw.graph(states=False)
    expected = nx.node_connected_component(graph, node) if node in graph else set()
    assert set(body["nodes"]) == expected
    assert set(body["customers"]) == set(raw.customers_on(expected))
    inside = [(code, kind, closed) for code, kind, a, b, closed in raw.edges
              if a in expected and b in expected and raw.in_service(code)]
    assert sorted(body["segments"]) == sorted(code for code, kind, _ in inside if kind == "segment")
    assert sorted(body["devices"]) == sorted(code for code, kind, _ in inside if kind != "segment")
    assert sorted(body["open_devices"]) == sorted(code for code, kind, closed in inside if kind != "segment" and not closed)


@st.composite
def many_cuts(draw, raw: RawNetwork):
    """A change of up to 8 failed edges and 2 failed nodes: several cuts inside one block."""
    return ([], sorted(_some(draw, [e[0] for e in raw.edges], 8)), sorted(_some(draw, list(raw.nodes), 2)))


@PROPERTY
@given(st.data())
def test_ring_heavy_networks_with_many_cuts_equal_the_oracle(draw):
    # Up to 14 extra edges on at most 30 nodes: blocks with several cycles, parallel edges and
    # several source edges, cut many times at once (the labels of Meshed, not the slices, decide).
    raw, data = draw.draw(networks(True, rings=14))
    topology = Topology(data)
    for _ in range(4):
        _assert_matches_oracle(topology, raw, draw.draw(many_cuts(raw)))


@TRACE
@given(st.data())
def test_meshed_bridges_are_the_bridges_with_the_sources_joined(draw):
    # The low-link test against networkx: with every source of a meshed section joined into one
    # node, an edge is a bridge exactly when networkx says so, and its slice is what it cuts off.
    raw, data = draw.draw(networks(True, rings=10))
    topology = Topology(data)
    for number, section in enumerate(topology.sections):
        if not isinstance(section, Meshed):
            continue
        graph = nx.MultiGraph()
        for edge in section.edges.tolist():
            u, v = (("S" if data.is_root[n] else int(n)) for n in (data.edge_u[edge], data.edge_v[edge]))
            graph.add_edge(u, v, key=edge)
        simple = nx.Graph(graph)
        single = {frozenset((a, b)) for a, b in nx.bridges(simple)}
        bridges = {edge for u, v, edge in graph.edges(keys=True)
                   if graph.number_of_edges(u, v) == 1 and frozenset((u, v)) in single}
        found = {edge for edge in section.edges.tolist() if topology.edge_child[edge] >= 0}
        assert found == bridges
        for edge in found:
            below = section.nodes[topology.node_position[topology.edge_child[edge]]:][
                :section.size[topology.node_position[topology.edge_child[edge]]]]
            cut = graph.copy()
            cut.remove_edge(*next((u, v) for u, v, k in graph.edges(keys=True) if k == edge), key=edge)
            assert set(below.tolist()) == set(graph.nodes) - set(nx.node_connected_component(cut, "S"))
