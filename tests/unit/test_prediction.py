"""Outage prediction (outages.prediction) on small drawn networks and a replayed storm, without a database."""
from __future__ import annotations

import numpy as np
import pytest

from outages.prediction import (CANDIDATE_KINDS, Prediction, Report, Rules, candidate_chain, downstream_customers,
                                predict)
from outages.storm import pick_faults
from tests.networks import drawn_network, feeder_with_tie
from topology.demo import generate_city
from topology.index import Topology
from topology.network import network_data_from_network_frames

MINUTE = 60.0


def fused_laterals():
    """A recloser feeding two fused laterals: one transformer with LV fuses, and three transformers.

    ::

        src --B1-- a --R1-- b --s1-- c
                            |        |
                           L1       L2 (fuses)
                            |        |
                            e        n --s2-- p --s3-- q
                            |        |        |        |
                           T1       T2       T3       T4    (transformers)
                            |        |        |        |
                            f        t2       t3       t4   (D1-D6, E1-E6, G1-G6: six customers each)
                      (C7, C8 on f)
                         /    \\
                       FA      FB   (LV fuses)
                       |        |
                       g        h
                   (C1-C3)   (C4-C6)
    """
    customers = ([(f"C{i}", "g") for i in (1, 2, 3)] + [(f"C{i}", "h") for i in (4, 5, 6)]
                 + [("C7", "f"), ("C8", "f")]
                 + [(f"{letter}{i}", node) for letter, node in (("D", "t2"), ("E", "t3"), ("G", "t4"))
                    for i in range(1, 7)])
    return drawn_network(
        nodes={"src": (0, 5), "a": (1, 5), "b": (2, 5), "c": (3, 5), "e": (2, 4), "f": (2, 3), "g": (1, 2),
               "h": (3, 2), "n": (3, 4), "p": (4, 4), "q": (5, 4), "t2": (3, 3), "t3": (4, 3), "t4": (5, 3)},
        segments=[("s1", "b", "c"), ("s2", "n", "p"), ("s3", "p", "q")],
        devices=[("B1", "breaker", "src", "a", "closed"), ("R1", "recloser", "a", "b", "closed"),
                 ("L1", "fuse", "b", "e", "closed"), ("L2", "fuse", "c", "n", "closed"),
                 ("T1", "transformer", "e", "f", "closed"), ("FA", "fuse", "f", "g", "closed"),
                 ("FB", "fuse", "f", "h", "closed"), ("T2", "transformer", "n", "t2", "closed"),
                 ("T3", "transformer", "p", "t3", "closed"), ("T4", "transformer", "q", "t4", "closed")],
        sources=[("SRC", "src")],
        customers=customers,
    )


@pytest.fixture(scope="module")
def laterals() -> Topology:
    """fused_laterals in its normal state."""
    return Topology(network_data_from_network_frames(fused_laterals()))


def _reports(topology: Topology, codes: list[str], at: float = 0.0, out: bool = True,
             step: float = 1.0) -> list[Report]:
    """Reports from the service points named, ``step`` seconds apart from ``at``."""
    positions = topology.data.find("service_points", codes)
    assert (positions >= 0).all()
    return [Report(int(p), at + i * step, out) for i, p in enumerate(positions)]


def _codes(predictions: list[Prediction]) -> list[tuple[str, str]]:
    """The (kind, code) of each prediction, in the order given."""
    return [(p.kind, p.code) for p in predictions]


# -- the candidate tree ----------------------------------------------------------------------------
def test_the_candidate_chain_runs_from_the_lowest_device_up_and_skips_switches(laterals):
    data = laterals.data
    [c1, d1] = data.find("service_points", ["C1", "D1"])
    assert [data.edge_code[e] for e in candidate_chain(laterals, c1)] == ["FA", "T1", "L1", "R1", "B1"]
    assert [data.edge_code[e] for e in candidate_chain(laterals, d1)] == ["T2", "L2", "R1", "B1"]
    topology = Topology(network_data_from_network_frames(feeder_with_tie()))
    [c4] = topology.data.find("service_points", ["C4"])
    assert [topology.data.edge_code[e] for e in candidate_chain(topology, c4)] == ["B1"]  # SW1 is no candidate


def test_downstream_customers_are_a_preorder_slice(laterals):
    data = laterals.data
    [t1, l2, b1] = data.find("devices", ["T1", "L2", "B1"])
    assert sorted(data.sp_code[downstream_customers(laterals, t1)]) == [f"C{i}" for i in range(1, 9)]
    assert len(downstream_customers(laterals, l2)) == 18
    assert len(downstream_customers(laterals, b1)) == 26


def test_switching_rebuilds_the_chain_of_the_sections_it_touches(laterals):
    data = laterals.data
    [c1] = data.find("service_points", ["C1"])
    [l1] = data.find("devices", ["L1"])
    assert candidate_chain(laterals, c1)
    opened = laterals.operated({int(l1): False})
    assert candidate_chain(opened, c1) == []                         # a dead island now
    assert len(downstream_customers(opened, l1)) == 0
    assert _codes(predict(opened, _reports(opened, ["C1", "C2"]))) == [("service", "C1"), ("service", "C2")]
    assert len(candidate_chain(laterals, c1)) == 5                   # the old state keeps its own tree


# -- one rule at a time ----------------------------------------------------------------------------
def test_n_reports_under_a_transformer_predict_it(laterals):
    [prediction] = predict(laterals, _reports(laterals, ["D1", "D2"], at=100.0, step=30.0))
    assert (prediction.kind, prediction.code, prediction.customers) == ("transformer", "T2", 6)
    assert prediction.device == laterals.data.find("devices", ["T2"])[0] and prediction.customer is None
    assert prediction.reports == tuple(sorted(laterals.data.find("service_points", ["D1", "D2"]).tolist()))
    assert (prediction.first_at, prediction.last_at) == (100.0, 130.0)
    assert _codes(predict(laterals, _reports(laterals, ["D1", "D2"]), Rules(min_reports=3))) == [
        ("service", "D1"), ("service", "D2")]


def test_a_lone_call_predicts_the_service(laterals):
    [prediction] = predict(laterals, _reports(laterals, ["D3"]))
    [d3] = laterals.data.find("service_points", ["D3"])
    assert prediction == Prediction(device=None, customer=int(d3), code="D3", kind="service", reports=(int(d3),),
                                    customers=1, first_at=0.0, last_at=0.0)


def test_a_customer_calling_twice_counts_once(laterals):
    reports = _reports(laterals, ["D3"]) + _reports(laterals, ["D3"], at=5 * MINUTE)
    [prediction] = predict(laterals, reports)
    assert (prediction.kind, prediction.code, prediction.first_at, prediction.last_at) == ("service", "D3", 0.0, 300.0)


def test_a_share_of_a_device_s_customers_in_two_branches_predicts_it(laterals):
    # T1 has 8 customers: C1-C3 behind FA, C4-C6 behind FB, C7 and C8 on its LV bus.
    reports = _reports(laterals, ["C1", "C4", "C7", "C8"])
    assert _codes(predict(laterals, reports, Rules(min_reports=3))) == [("transformer", "T1")]
    assert _codes(predict(laterals, reports, Rules(min_reports=3, min_share=0.6))) == [
        ("service", "C1"), ("service", "C4"), ("service", "C7"), ("service", "C8")]


def test_reports_in_one_branch_only_do_not_move_up(laterals):
    # Every customer of T1 calls: L1 (T1 is its only branch) and R1 (only its L1 branch) stay out.
    reports = _reports(laterals, [f"C{i}" for i in range(1, 9)])
    assert _codes(predict(laterals, reports)) == [("transformer", "T1")]
    # All of FA's customers: FA, not T1 (3 of 8, one branch).
    assert _codes(predict(laterals, _reports(laterals, ["C1", "C2", "C3"]))) == [("fuse", "FA")]


def test_k_predicted_siblings_move_up_to_their_parent(laterals):
    three = _reports(laterals, ["D1", "D2", "E1", "E2", "G1", "G2"])  # 6 of L2's 18: no share
    [prediction] = predict(laterals, three)
    assert (prediction.code, prediction.customers, len(prediction.reports)) == ("L2", 18, 6)
    two = _reports(laterals, ["D1", "D2", "E1", "E2"])
    assert _codes(predict(laterals, two)) == [("transformer", "T2"), ("transformer", "T3")]
    assert _codes(predict(laterals, three, Rules(siblings=4))) == [
        ("transformer", "T2"), ("transformer", "T3"), ("transformer", "T4")]


def test_reports_more_than_the_window_apart_are_two_outages(laterals):
    early = _reports(laterals, ["D1", "D2"], at=0.0)
    late = _reports(laterals, ["D3", "D4"], at=2 * 3600.0)
    predictions = predict(laterals, late + early)
    assert [(p.code, p.first_at) for p in predictions] == [("T2", 0.0), ("T2", 7200.0)]
    assert predictions[0].reports != predictions[1].reports
    # 30 minutes apart is still one outage, a second more is two.
    one = predict(laterals, _reports(laterals, ["D1", "D2"], step=30 * MINUTE))
    assert _codes(one) == [("transformer", "T2")]
    two = predict(laterals, _reports(laterals, ["D1", "D2"], step=30 * MINUTE + 1))
    assert _codes(two) == [("service", "D1"), ("service", "D2")]


def test_power_restored_moves_a_prediction_down(laterals):
    reports = _reports(laterals, ["C1", "C2", "C4", "C5"])
    assert _codes(predict(laterals, reports)) == [("transformer", "T1")]
    restored = reports + _reports(laterals, ["C4"], at=10 * MINUTE, out=False)
    # C4 has power: FB, T1 and everything above it cannot be out; FA keeps its two calls.
    assert _codes(predict(laterals, restored)) == [("fuse", "FA"), ("service", "C5")]


def test_power_restored_everywhere_cancels_the_outage(laterals):
    reports = _reports(laterals, ["C1", "C2", "C4", "C5"])
    restored = _reports(laterals, ["C1", "C2", "C4", "C5"], at=40 * MINUTE, out=False)
    assert predict(laterals, reports + restored) == []
    # A new outage after the restoration is predicted again.
    again = _reports(laterals, ["C1", "C2"], at=3 * 3600.0)
    assert _codes(predict(laterals, reports + restored + again)) == [("fuse", "FA")]


def test_power_restored_before_an_outage_began_does_not_block_it(laterals):
    stale = _reports(laterals, ["C4"], at=-3600.0, out=False)
    reports = _reports(laterals, ["C1", "C5", "C7", "C8"])
    assert _codes(predict(laterals, stale + reports)) == [("transformer", "T1")]


def test_a_meshed_section_falls_back_to_the_service_level():
    topology = Topology(network_data_from_network_frames(feeder_with_tie()))
    [tie] = topology.data.find("devices", ["TIE"])
    meshed = topology.operated({int(tie): True})
    assert not meshed.is_radial
    reports = _reports(meshed, ["C3", "C4", "C6"])
    assert _codes(predict(meshed, reports)) == [("service", "C3"), ("service", "C4"), ("service", "C6")]
    assert _codes(predict(topology, reports)) == [("breaker", "B1"), ("breaker", "B2")]  # C6 is all of B2
    assert candidate_chain(meshed, int(reports[0].customer)) == []


def test_no_reports_no_predictions(laterals):
    assert predict(laterals, []) == []


def test_an_unknown_service_point_is_refused(laterals):
    with pytest.raises(ValueError, match="out of range"):
        predict(laterals, [Report(10_000, 0.0)])


@pytest.mark.parametrize("fields, message", [
    ({"min_reports": 0}, "min_reports must be at least 1"),
    ({"min_share": 0}, "min_share must be a share"),
    ({"min_share": 1.5}, "min_share must be a share"),
    ({"siblings": 1}, "siblings must be at least 2"),
    ({"window_minutes": 0}, "window_minutes must be positive"),
    ({"window_minutes": -5}, "window_minutes must be positive"),
])
def test_rules_refuse_thresholds_that_make_no_sense(fields, message):
    with pytest.raises(ValueError, match=message):
        Rules(**fields)


@pytest.mark.parametrize("fields", [{"min_reports": 1}, {"min_share": 1}, {"min_share": 0.01}, {"siblings": 2},
                                    {"window_minutes": 0.5}])
def test_rules_take_thresholds_at_their_edges(fields):
    rules = Rules(**fields)  # the smallest and largest values that make sense are taken as given
    assert all(getattr(rules, name) == value for name, value in fields.items())


# -- a storm replayed on the demo city -------------------------------------------------------------
@pytest.fixture(scope="module")
def city() -> Topology:
    """The demo city of 3,000 customers in its normal state."""
    return Topology(network_data_from_network_frames(generate_city(customers=3000, seed=3)))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_storm_is_rolled_up_to_its_faults(city, seed):
    rules = Rules()
    rng = np.random.default_rng(seed)
    faults, loners = pick_faults(city, rng, rules)
    kinds = {city.data.kind_of(f) for f in faults}
    assert len(faults) == 8 and kinds == {"breaker", "recloser", "fuse", "transformer"} and len(loners) == 3
    reports = []
    for number, fault in enumerate(faults):
        struck = number * 7 * MINUTE                     # the faults strike within the window of each other
        customers = downstream_customers(city, fault)
        callers = customers[rng.random(len(customers)) < 0.15]
        gasps = customers[rng.random(len(customers)) < 0.70]
        reports += [Report(int(c), struck + rng.uniform(60, 1200)) for c in callers]
        reports += [Report(int(c), struck + rng.uniform(0, 5)) for c in gasps]
    reports += [Report(c, rng.uniform(0, 3600)) for c in loners]
    reports = [reports[i] for i in rng.permutation(len(reports))]

    predictions = predict(city, reports, rules)
    assert {p.device for p in predictions if p.device is not None} == set(faults)
    assert sorted(p.customer for p in predictions if p.device is None) == sorted(loners)
    assert len(predictions) == len(faults) + len(loners)
    explained = sorted(c for p in predictions for c in p.reports)
    assert explained == sorted({r.customer for r in reports})
    for p in predictions:
        if p.device is not None:
            assert set(p.reports) <= set(downstream_customers(city, p.device).tolist())
            assert p.customers == len(downstream_customers(city, p.device))


def test_the_candidate_chain_matches_a_walk_up_the_tree(city):
    data = city.data
    for customer in range(0, len(data.sp_code), 7):
        node = data.sp_node[customer]
        section, position, walk = city.sections[city.node_section[node]], city.node_position[node], []
        while position >= 0:
            if data.kind_of(section.parent_edge[position]) in CANDIDATE_KINDS:
                walk.append(int(section.parent_edge[position]))
            position = section.parent[position]
        assert candidate_chain(city, customer) == walk
