"""The tracing contract, pinned on small drawn networks (tests/networks.py), without a database."""
from __future__ import annotations

import pytest

from geo.errors import Invalid, NotFound, Unprocessable
from tests.networks import feeder_with_tie, protected_feeder
from topology import trace
from topology.index import Topology
from topology.network import network_data_from_lists, network_data_from_network_frames


def _topology(frames) -> Topology:
    """The topology of drawn frames, without a database."""
    return Topology(network_data_from_network_frames(frames))


def _operated(topology: Topology, **states: str) -> Topology:
    """The topology with devices set open or closed by code."""
    positions = topology.data.find("devices", list(states))
    return topology.operated({int(p): s == "closed" for p, s in zip(positions, states.values())})


def _customers(topology: Topology, open=(), out_of_service=()) -> list[str]:
    """The sorted codes of the customers a change affects."""
    return sorted(trace.affected_by_codes(topology, open, out_of_service).customer_codes())


@pytest.fixture()
def feeder() -> Topology:
    """protected_feeder in its normal state."""
    return _topology(protected_feeder())


# -- energised -------------------------------------------------------------------------------------
def test_everything_is_energised_in_the_normal_state(feeder):
    assert feeder.energised.all() and feeder.is_radial


def test_an_open_device_stops_supply_and_an_out_of_service_one_too():
    data = network_data_from_lists(
        nodes=["src", "a", "b", "c"], sources=[("S", "src")],
        edges=[("B", "breaker", "src", "a", True), ("SW", "switch", "a", "b", False), ("s", "segment", "a", "c", True)],
        out_of_service=["s"])
    energised = Topology(data).energised
    assert [code for code, live in zip(data.node_code, energised) if live] == ["src", "a"]


def test_an_out_of_service_source_feeds_nothing():
    data = network_data_from_lists(nodes=["src", "a"], sources=[("S", "src")],
                                   edges=[("B", "breaker", "src", "a", True)], out_of_service=["S"])
    assert not Topology(data).energised.any()


# -- affected --------------------------------------------------------------------------------------
@pytest.mark.parametrize("open_codes, failed, expected", [
    (["R1"], [], ["C4", "C5"]),
    (["F1"], [], ["C1", "C2", "C3"]),
    (["SW2"], [], ["C5"]),
    ([], ["s4"], ["C3"]),
    ([], ["T1"], ["C1", "C2", "C3"]),
    ([], ["h"], ["C1", "C2", "C3"]),
    ([], ["src"], ["C1", "C2", "C3", "C4", "C5"]),
    (["B1"], [], ["C1", "C2", "C3", "C4", "C5"]),
    (["TIE"], [], []),                         # already open
    (["F1", "SW2"], ["s4"], ["C1", "C2", "C3", "C5"]),  # several faults, one nested in another
    (["B2"], [], ["C9"]),
])
def test_affected_customers_of_a_change(feeder, open_codes, failed, expected):
    assert _customers(feeder, open_codes, failed) == expected


def test_the_supply_loss_lists_what_loses_supply(feeder):
    loss = trace.affected_by_codes(feeder, open=["R1"]).as_dict()
    assert loss["customer_count"] == 2
    assert sorted(loss["nodes"]) == ["c", "d", "e", "f"]
    assert sorted(loss["segments"]) == ["s2", "s3"]
    # R1 keeps a live terminal; TIE keeps its live side at x
    assert loss["devices"] == ["SW2"]
    assert loss["by_feeder"] == {"F1": 2}


def test_a_failed_element_is_itself_de_energised(feeder):
    loss = trace.affected_by_codes(feeder, out_of_service=["s2"]).as_dict()
    assert sorted(loss["segments"]) == ["s2", "s3"] and loss["customers"] == ["C4", "C5"]


def test_closing_the_tie_re_feeds_the_far_side_through_the_other_feeder(feeder):
    tied = _operated(feeder, TIE="closed")
    assert not tied.is_radial
    assert _customers(tied, open=["R1"]) == []             # c, d are fed back through SW2 and the tie
    assert _customers(tied, open=["B1"]) == []             # the whole feeder hangs on src2 now
    assert _customers(tied, open=["B1", "SW2"]) == ["C1", "C2", "C3", "C4"]
    assert _customers(tied, open=["B1", "B2"]) == ["C1", "C2", "C3", "C4", "C5", "C9"]
    transferred = _operated(tied, SW2="open")                # make-before-break transfer done
    assert transferred.is_radial
    assert _customers(transferred, open=["B2"]) == ["C5", "C9"]
    assert _customers(transferred, open=["R1"]) == ["C4"]


def test_a_loop_inside_one_feeder_is_meshed_and_still_right():
    data = network_data_from_lists(
        nodes=["src", "a", "b", "c"], sources=[("S", "src")],
        edges=[("B", "breaker", "src", "a", True), ("s1", "segment", "a", "b", True),
               ("s2", "segment", "b", "c", True), ("s3", "segment", "c", "a", True)],
        service_points=[("C1", "b"), ("C2", "c")])
    topology = Topology(data)
    assert not topology.is_radial
    assert _customers(topology, out_of_service=["s1"]) == []
    assert _customers(topology, out_of_service=["s1", "s3"]) == ["C1", "C2"]


def test_opening_anything_but_switchgear_is_refused(feeder):
    with pytest.raises(Unprocessable, match="transformer T1"):
        trace.affected_by_codes(feeder, open=["T1"])
    with pytest.raises(Unprocessable, match="segment s1"):
        trace.affected_by_codes(feeder, open=["s1"])


def test_unknown_codes_are_named_all_at_once(feeder):
    with pytest.raises(NotFound) as missing:
        trace.affected_by_codes(feeder, open=["R1", "nope"], out_of_service=["gone"])
    assert missing.value.extra["codes"] == ["nope", "gone"]


def test_a_code_shared_by_two_tables_is_refused_as_ambiguous():
    data = network_data_from_lists(nodes=["src", "a"], sources=[("S", "src")], edges=[("a", "segment", "src", "a", True)])
    with pytest.raises(Invalid, match="more than one element"):
        trace.downstream(Topology(data), "a")


# -- downstream, upstream, isolation, connected ----------------------------------------------------
def test_downstream_of_switchgear_is_what_opening_it_cuts(feeder):
    element, loss = trace.downstream(feeder, "R1")
    assert element.type(feeder.data) == "recloser"
    assert sorted(loss.customer_codes()) == ["C4", "C5"]
    _, loss = trace.downstream(feeder, "s1")
    assert sorted(loss.customer_codes()) == ["C1", "C2", "C3", "C4", "C5"]


def test_downstream_follows_the_current_state(feeder):
    transferred = _operated(_operated(feeder, TIE="closed"), SW2="open")
    _, loss = trace.downstream(transferred, "B2")
    assert sorted(loss.customer_codes()) == ["C5", "C9"]


def test_upstream_lists_the_protective_devices_nearest_first(feeder):
    body = trace.upstream(feeder, "i")
    assert body.path == ["s4", "T1", "F1", "s1", "B1"]
    assert body.nodes == ["i", "h", "g", "b", "a", "src"]
    assert [d.code for d in body.protective_devices] == ["F1", "B1"]
    assert body.source == "SRC1"


def test_upstream_of_a_device_starts_with_it_and_does_not_list_it(feeder):
    body = trace.upstream(feeder, "F1")
    assert body.path == ["F1", "s1", "B1"] and [d.code for d in body.protective_devices] == ["B1"]


def test_upstream_of_a_customer_is_that_of_its_node(feeder):
    assert trace.upstream(feeder, "C4").path == trace.upstream(feeder, "d").path


def test_upstream_of_a_de_energised_element_is_empty(feeder):
    body = trace.upstream(_operated(feeder, R1="open"), "d")
    assert body.energised is False and body.path == []


def test_upstream_after_a_transfer_leads_to_the_other_source(feeder):
    transferred = _operated(_operated(feeder, TIE="closed"), SW2="open")
    body = trace.upstream(transferred, "e")
    assert body.path == ["s3", "TIE", "B2"] and body.source == "SRC2"


def test_isolation_opens_the_nearest_devices_on_every_side_with_a_source(feeder):
    body = trace.isolation(feeder, "s2")
    assert [(d.code, d.side) for d in body.devices] == [("R1", "supply"), ("SW2", "load")]
    assert sorted(body.customers) == ["C4", "C5"] and body.zone.nodes == ["c", "d"]
    assert body.isolable


def test_isolation_reports_open_boundary_devices_and_skips_dead_ends(feeder):
    body = trace.isolation(feeder, "s3")
    assert [d.code for d in body.devices] == ["SW2"] and body.already_open == ["TIE"]
    # the fused tap has no source beyond it, so isolating s1 does not need F1 opened
    assert [d.code for d in trace.isolation(feeder, "s1").devices] == ["B1", "R1"]


def test_isolation_crosses_transformers_but_not_switchgear(feeder):
    body = trace.isolation(feeder, "s4")
    assert [d.code for d in body.devices] == ["F1"]
    assert sorted(body.zone.nodes) == ["g", "h", "i"] and body.customer_count == 3


def test_a_fault_next_to_a_source_cannot_be_isolated(feeder):
    body = trace.isolation(feeder, "src")
    assert body.isolable is False and body.sources_inside == ["SRC1"]


def test_connected_ignores_open_switches():
    topology = _topology(feeder_with_tie())
    body = trace.connected(topology, "d")
    assert sorted(body.nodes) == ["a", "b", "c", "d", "e", "f", "src1", "src2"]
    assert body.open_devices == ["TIE"] and body.customer_count == 3


def test_opening_the_only_feed_of_a_loop_cuts_the_loop_whichever_end_the_source_is_on():
    """::

        a --B-- src        (B drawn from a to src: the source is at its to end)
        |\\
        b-c                (a loop, fed through B alone)
    """
    data = network_data_from_lists(
        nodes=["src", "a", "b", "c"], sources=[("S", "src")],
        edges=[("B", "breaker", "a", "src", True), ("s1", "segment", "a", "b", True),
               ("s2", "segment", "b", "c", True), ("s3", "segment", "c", "a", True)],
        service_points=[("C1", "b"), ("C2", "c")])
    topology = Topology(data)
    assert not topology.is_radial
    assert _customers(topology, open=["B"]) == ["C1", "C2"]
    assert sorted(trace.downstream(topology, "B")[1].node_codes()) == ["a", "b", "c"]


def test_opening_a_node_or_a_service_point_is_refused_naming_them(feeder):
    with pytest.raises(Unprocessable, match="node a, service point C1 cannot"):
        trace.affected_by_codes(feeder, open=["a", "C1"])


def _sorted_parts(parts) -> list:
    """Map parts with their codes sorted (the traces list them in preorder)."""
    return [(table, role, sorted(codes)) for table, role, codes in parts]


def test_the_parts_of_each_trace_for_the_map(feeder):
    assert trace.upstream(feeder, "i").feature_parts() == [
        ("segment", "path", ["s4", "s1"]), ("device", "protective", ["F1", "B1"]), ("device", "path", ["T1"])]
    assert _sorted_parts(trace.isolation(feeder, "SW2").feature_parts()) == [
        ("device", "isolate", ["R1"]), ("device", "already_open", ["TIE"]), ("segment", "zone", ["s2", "s3"]),
        ("device", "zone", ["SW2"]), ("service_point", "affected", ["C4", "C5"])]
    assert _sorted_parts(trace.connected(feeder, "F1").feature_parts()) == [
        ("segment", "connected", ["s1", "s2", "s3", "s4"]),
        ("device", "connected", ["B1", "B2", "F1", "R1", "SW2", "T1", "TIE"]),
        ("service_point", "connected", ["C1", "C2", "C3", "C4", "C5", "C9"])]
    assert _sorted_parts(trace.affected_by_codes(feeder, open=["R1"]).feature_parts("lost")) == [
        ("segment", "lost", ["s2", "s3"]), ("device", "lost", ["SW2"]), ("service_point", "lost", ["C4", "C5"])]
