"""Outage prediction: trouble calls and meters' last gasps rolled up to the most likely failed device.

A *report* says that a service point has no power (a customer's call, a smart meter's last
gasp) or, with ``out=False``, that it has power again (a meter's "power restored"). ``predict``
explains a set of reports with the fewest likely failed devices, walking up the radial tree of
the current state (``topology.index.Topology``) through the *candidate devices*: breakers,
reclosers, fuses and transformers (switches are operated, not tripped, so they never are one).

Rules (``Rules``; N = ``min_reports``, K = ``siblings``, T = ``window_minutes``):

1. **Power restored.** Each service point's reports are taken in time order. One whose latest
   report is ``out=False`` is *known powered*: its earlier reports are withdrawn, and no
   device above it is predicted in any outage that had begun when it reported power (the
   meter has power, so nothing above it is open). A restoration thus moves a prediction down
   to a device not above the powered meter, or cancels it when no report is left. A service
   point's out reports after its last restoration are one outage for it: it counts once, at
   the first of them (the later ones only extend ``last_at``).
2. **Time window.** Service points are sorted by the time they went out; a gap of more than
   T minutes starts a new outage, and each outage is rolled up on its own (reports far apart
   in time give separate predictions, even at the same device).
3. **Roll-up**, on the tree of candidate devices (a device's parent is the next candidate
   device above it), deepest first. ``reported(d)`` is the number of reporting service
   points below d, ``customers(d)`` the number of service points below d in this state.
   A device d with no known-powered service point below it is predicted when

   a. N or more reporting service points have d as their lowest candidate device, or
   b. ``reported(d) / customers(d) >= min_share`` and the reports do not all lie below a
      single child device c of d (c would explain them better), or
   c. K or more of the devices directly below d are predicted.

   A predicted device replaces every prediction below it. Reports no device explains stay
   as service-level predictions, one per service point (the service itself for a lone call).
4. Service points outside a radial, energised section (meshed sections, dead islands,
   service points out of service) or with no candidate device above them get service-level
   predictions. Prediction in meshed sections comes with the meshed-tracing work.

The tree of candidate devices of each radial section is computed once per ``Radial`` and
cached on it (a ``weakref.WeakKeyDictionary``): switching re-indexes only the sections it
touches, so their trees are rebuilt and the others kept.

Examples
--------
A feeder with a recloser, a transformer and two LV fuses (A and B, three customers each)::

    src --B1-- a --R1-- b --T1-- lv --FA-- x (C1, C2, C3)
                                  +---FB-- y (C4, C5, C6)

>>> from topology.index import Topology
>>> from topology.network import network_data_from_lists
>>> data = network_data_from_lists(
...     nodes=["src", "a", "b", "lv", "x", "y"], sources=[("S", "src")],
...     edges=[("B1", "breaker", "src", "a", True), ("R1", "recloser", "a", "b", True),
...            ("T1", "transformer", "b", "lv", True), ("FA", "fuse", "lv", "x", True),
...            ("FB", "fuse", "lv", "y", True)],
...     service_points=[(f"C{i}", "x" if i <= 3 else "y") for i in range(1, 7)])
>>> topology = Topology(data)
>>> [data.edge_code[d] for d in candidate_chain(topology, 0)]
['FA', 'T1', 'R1', 'B1']

Two calls under FA predict FA; a lone call predicts its service:

>>> [(p.code, p.kind, p.reports) for p in predict(topology, [Report(0, at=0.0), Report(1, at=60.0)])]
[('FA', 'fuse', (0, 1))]
>>> [(p.code, p.kind) for p in predict(topology, [Report(3, at=0.0)])]
[('C4', 'service')]

Half the transformer's customers, in both its branches, predict the transformer; C4's meter
reporting power again moves the outage down to FA:

>>> calls = [Report(0, 0.0), Report(1, 30.0), Report(3, 60.0)]
>>> [(p.code, p.customers, p.first_at, p.last_at) for p in predict(topology, calls)]
[('T1', 6, 0.0, 60.0)]
>>> [p.code for p in predict(topology, calls + [Report(3, 600.0, out=False)])]
['FA']

Notes
-----
With R reports, of which S service points, and A candidate devices above them (their
ancestors in the candidate tree, of depth h): sorting the reports is O(R log R), the roll-up
of each outage O(S log S + A h) in numpy, with one Python step per tree level and per
prediction made. 20,000 reports from 20 faults over a 100,000-customer network take 12 to
25 ms on one core.
The first call on a section builds its candidate tree in O(n log depth) for its n nodes.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from topology.index import Radial, Topology
from topology.network import EDGE_KINDS

__all__ = ["CANDIDATE_KINDS", "Rules", "Report", "Prediction", "candidate_chain", "downstream_customers", "predict", "predict_arrays"]

CANDIDATE_KINDS = ("breaker", "recloser", "fuse", "transformer")  # devices an outage can be predicted at

# Whether each edge kind (by number, topology.network.EDGE_KINDS) is a candidate device.
_CANDIDATE_KIND = np.array([kind in CANDIDATE_KINDS for kind in EDGE_KINDS], dtype=bool)


@dataclass(frozen=True)
class Rules:
    """The thresholds of the roll-up (see the module's description)."""

    min_reports: int = 2        # N: N reports whose lowest candidate device is d predict d
    min_share: float = 0.5      # a share of d's customers reporting predicts d, when the reports lie in >= 2 of d's branches
    siblings: int = 3           # K: K or more predicted devices directly below one device move up to it
    window_minutes: float = 30  # T: reports more than T minutes apart start a new outage

    def __post_init__(self):
        """Refuse thresholds that make no sense."""
        if not self.min_reports >= 1:
            raise ValueError(f"min_reports must be at least 1, not {self.min_reports!r}")
        if not 0 < self.min_share <= 1:
            raise ValueError(f"min_share must be a share in (0, 1], not {self.min_share!r}")
        if not self.siblings >= 2:
            raise ValueError(f"siblings must be at least 2 (one predicted device moves up by itself never), "
                             f"not {self.siblings!r}")
        if not self.window_minutes > 0:
            raise ValueError(f"window_minutes must be positive, not {self.window_minutes!r}")


@dataclass(frozen=True)
class Report:
    """A service point without power (a call, a last gasp) or, with ``out=False``, with power again."""

    customer: int          # position of the service point in NetworkData.sp_* arrays
    at: float              # seconds (epoch or any monotonic clock)
    out: bool = True       # False: a meter's "power restored"


@dataclass(frozen=True)
class Prediction:
    """A predicted outage: the device most likely failed (or one service) and the reports it explains."""

    device: int | None     # edge position of the predicted device; None for a service-level outage
    customer: int | None   # for a service-level outage: the service point position; else None
    code: str              # the device code, or the service point code for a service-level outage
    kind: str              # "breaker" | "recloser" | "fuse" | "transformer" | "service"
    reports: tuple[int, ...]   # the service point positions whose reports it explains (sorted, unique)
    customers: int         # customers downstream of the device in the current state (1 for service)
    first_at: float
    last_at: float


# -- the candidate tree of a radial section --------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _CandidateTree:
    """The candidate devices of one radial section, numbered in preorder.

    ``nearest[p]`` is the number of the lowest candidate device at or above position ``p``
    (its parent edge or one above it), -1 if none; candidate ``k`` is the parent edge
    ``edge[k]`` of position ``position[k]``, its subtree ends before position ``end[k]``,
    ``parent[k]`` is the next candidate above it (-1: none) at ``depth[k]`` in the candidate tree.
    """

    nearest: np.ndarray
    position: np.ndarray
    end: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    edge: np.ndarray
    customers: np.ndarray


_trees: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Radial -> _CandidateTree


def _candidate_tree(topology: Topology, section: Radial) -> _CandidateTree:
    """The candidate tree of ``section``, built on first use and kept as long as the section."""
    tree = _trees.get(section)
    if tree is None:
        tree = _trees[section] = _build_tree(topology, section)
    return tree


def _build_tree(topology: Topology, section: Radial) -> _CandidateTree:
    """The candidate tree of a radial section, by pointer jumping (O(n log depth))."""
    n = len(section.nodes)
    is_candidate = _CANDIDATE_KIND[topology.data.edge_kind[section.parent_edge]]
    # up[p]: p itself when its parent edge is a candidate, else its parent; n stands for "none".
    up = np.where(is_candidate, np.arange(n), section.parent).astype(np.int64)
    up = np.append(np.where(up >= 0, up, n), n)
    while True:  # doubling: after i rounds each pointer has skipped 2**i non-candidates
        jumped = up[up]
        if np.array_equal(jumped, up):
            break
        up = jumped
    number = np.cumsum(is_candidate) - 1
    nearest = np.where(up[:n] < n, number[np.minimum(up[:n], n - 1)], -1)
    position = np.flatnonzero(is_candidate)
    above = section.parent[position]
    parent = np.where(above >= 0, nearest[np.maximum(above, 0)], -1)
    depth = _depths(parent)
    end = position + section.size[position]
    return _CandidateTree(
        nearest=nearest.astype(np.int64), position=position.astype(np.int64), end=end.astype(np.int64),
        parent=parent.astype(np.int64), depth=depth, edge=section.parent_edge[position].astype(np.int64),
        customers=(section.cust_ptr[end] - section.cust_ptr[position]).astype(np.int64))


def _depths(parent: np.ndarray) -> np.ndarray:
    """Each node's depth in a forest given by ``parent`` (-1: a root), by pointer jumping."""
    m = len(parent)
    up = np.append(np.where(parent >= 0, parent, m), m)
    depth = np.append((parent >= 0).astype(np.int64), 0)
    while (up[:m] < m).any():
        depth = depth + depth[up] * (up < m)
        up = up[up]
    return depth[:m]


def _locate(topology: Topology, customers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each service point's radial section number and position, or (-1, -1) outside radial, fed sections."""
    data = topology.data
    node = data.sp_node[customers]
    section = topology.node_section[node].astype(np.int64)
    position = topology.node_position[node].astype(np.int64)
    inside = data.sp_in_service[customers] & (section >= 0) & (position >= 0)
    for s in np.unique(section[inside]).tolist():
        if not isinstance(topology.sections[s], Radial):
            inside &= section != s
    return np.where(inside, section, -1), np.where(inside, position, -1)


def _check_customers(topology: Topology, customers: np.ndarray) -> None:
    """Refuse service point positions that name no service point."""
    count = len(topology.data.sp_code)
    bad = customers[(customers < 0) | (customers >= count)]
    if len(bad):
        raise ValueError(f"service point position(s) {sorted(set(bad.tolist()))[:10]} out of range "
                         f"(the network has {count} service points)")


def candidate_chain(topology: Topology, customer: int) -> list[int]:
    """The candidate devices (edge positions) above a service point, lowest first (empty when not in a radial, energised section).

    O(depth) once the section's candidate tree is built.
    """
    _check_customers(topology, np.array([customer], dtype=np.int64))
    section, position = _locate(topology, np.array([customer], dtype=np.int64))
    if section[0] < 0:
        return []
    tree = _candidate_tree(topology, topology.sections[int(section[0])])
    chain, k = [], int(tree.nearest[position[0]])
    while k >= 0:
        chain.append(int(tree.edge[k]))
        k = int(tree.parent[k])
    return chain


def downstream_customers(topology: Topology, device: int) -> np.ndarray:
    """Service point positions below a candidate device in the current state (a preorder slice).

    Empty when the device is open, out of service or not inside a radial section. O(answer).
    """
    child = int(topology.edge_child[device])
    if child < 0:
        return np.zeros(0, dtype=np.int64)
    section = topology.sections[int(topology.node_section[child])]
    if not isinstance(section, Radial):
        return np.zeros(0, dtype=np.int64)
    p = int(topology.node_position[child])
    return section.customers[section.cust_ptr[p]:section.cust_ptr[p + section.size[p]]].astype(np.int64)


# -- predict ---------------------------------------------------------------------------------------
@dataclass
class _Forest:
    """The candidate trees of the sections some reports touch, joined with offsets into one forest."""

    nearest: np.ndarray      # by (offset) position
    position: np.ndarray     # by candidate number, all below by candidate number too
    end: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    edge: np.ndarray
    customers: np.ndarray


def _forest(topology: Topology, sections: np.ndarray) -> tuple[_Forest, np.ndarray]:
    """The forest of ``sections`` (sorted) and each one's position offset."""
    trees = [_candidate_tree(topology, topology.sections[s]) for s in sections.tolist()]
    sizes = np.array([len(t.nearest) for t in trees], dtype=np.int64)
    counts = np.array([len(t.position) for t in trees], dtype=np.int64)
    offset = np.cumsum(sizes) - sizes
    numbers = np.cumsum(counts) - counts

    def joined(name: str, shift: np.ndarray | None, keep_negative: bool = False) -> np.ndarray:
        parts = [getattr(t, name) for t in trees]
        if shift is not None:
            parts = [np.where(p >= 0, p + s, -1) if keep_negative else p + s for p, s in zip(parts, shift.tolist())]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    return _Forest(nearest=joined("nearest", numbers, True), position=joined("position", offset),
                   end=joined("end", offset), parent=joined("parent", numbers, True), depth=joined("depth", None),
                   edge=joined("edge", None), customers=joined("customers", None)), offset


def predict(topology: Topology, reports: Sequence[Report], rules: Rules = Rules()) -> list[Prediction]:
    """The predicted outages explaining the reports, sorted by (first_at, code).

    See the module's description for the rules and their cost.
    """
    if not len(reports):
        return []
    customer = np.fromiter((r.customer for r in reports), dtype=np.int64, count=len(reports))
    at = np.fromiter((r.at for r in reports), dtype=np.float64, count=len(reports))
    out = np.fromiter((r.out for r in reports), dtype=bool, count=len(reports))
    return predict_arrays(topology, customer, at, out, rules)


def predict_arrays(topology: Topology, customer: np.ndarray, at: np.ndarray, out: np.ndarray,
                   rules: Rules = Rules()) -> list[Prediction]:
    """``predict`` on the reports as three arrays (service point positions, times, out or restored):
    what settling stored reports uses, without a ``Report`` object per report."""
    if not len(customer):
        return []
    customer, at, out = (np.asarray(customer, dtype=np.int64), np.asarray(at, dtype=np.float64),
                         np.asarray(out, dtype=bool))
    _check_customers(topology, customer)
    reporting, went_out, last_out, powered, powered_at = _current(customer, at, out)
    if not len(reporting):
        return []

    # Outages in time: a gap of more than T between service points going out starts a new one.
    cuts = np.flatnonzero(np.diff(went_out) > rules.window_minutes * 60.0) + 1
    bounds = np.r_[0, cuts, len(reporting)]

    forest, where = _place(topology, np.concatenate([reporting, powered]))
    lowest = np.where(where >= 0, forest.nearest[np.maximum(where, 0)] if len(forest.nearest) else -1, -1)
    report_where, report_lowest = where[:len(reporting)], lowest[:len(reporting)]
    radial = where[len(reporting):] >= 0
    powered_where, powered_at = where[len(reporting):][radial], powered_at[radial]
    by_restoration = np.argsort(powered_at, kind="stable")
    powered_where, powered_at = powered_where[by_restoration], powered_at[by_restoration]

    predictions: list[Prediction] = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        # Meters that reported power once this outage had begun rule out every device above them.
        in_force = np.sort(powered_where[np.searchsorted(powered_at, went_out[a], side="left"):])
        predictions += _roll_up(topology, forest, rules, reporting[a:b], went_out[a:b], last_out[a:b],
                                report_where[a:b], report_lowest[a:b], in_force)
    predictions.sort(key=lambda p: (p.first_at, p.code))
    return predictions


def _current(customer: np.ndarray, at: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, ...]:
    """The service points out now, by the time they went out, and the known-powered ones.

    Returns the reporting service points with the first and last time of their out reports
    since their last restoration (sorted by the first), and the service points whose latest
    report is a restoration with its time.
    """
    order = np.lexsort((~out, at, customer))                   # a restoration last among equal times
    customer, at, out = customer[order], at[order], out[order]
    new = np.r_[True, customer[1:] != customer[:-1]]
    start, group, index = np.flatnonzero(new), np.cumsum(new) - 1, np.arange(len(customer))
    last_restored = np.maximum.reduceat(np.where(out, -1, index), start)
    kept = np.flatnonzero(out & (index > last_restored[group]))
    last = np.r_[start[1:], len(customer)] - 1
    powered, powered_at = customer[last][~out[last]], at[last][~out[last]]

    boundary = customer[kept][1:] != customer[kept][:-1]
    first, final = (kept[np.r_[True, boundary]], kept[np.r_[boundary, True]]) if len(kept) else (kept, kept)
    by_time = np.argsort(at[first], kind="stable")
    return customer[first][by_time], at[first][by_time], at[final][by_time], powered, powered_at


def _place(topology: Topology, customers: np.ndarray) -> tuple[_Forest, np.ndarray]:
    """The forest of the radial sections holding ``customers`` and each one's position in it (-1: outside)."""
    section, local = _locate(topology, customers)
    touched = np.unique(section[section >= 0])
    forest, offset = _forest(topology, touched)
    if not len(touched):
        return forest, np.full(len(customers), -1, dtype=np.int64)
    slot = np.minimum(np.searchsorted(touched, section), len(touched) - 1)
    return forest, np.where(section >= 0, offset[slot] + local, -1)


def _roll_up(topology: Topology, forest: _Forest, rules: Rules, reporting: np.ndarray, went_out: np.ndarray,
             last_out: np.ndarray, where: np.ndarray, lowest: np.ndarray, powered: np.ndarray) -> list[Prediction]:
    """The predictions of one outage in time: its reporting service points and the powered ones (sorted positions)."""
    data = topology.data
    explaining = np.full(len(reporting), -1, dtype=np.int64)  # a candidate's number in the forest; -1: the service
    inside = np.flatnonzero(lowest >= 0)
    if len(inside):
        explaining[inside] = _explaining(forest, rules, where[inside], lowest[inside], powered)
    explained = np.flatnonzero(explaining >= 0)
    explained = explained[np.lexsort((reporting[explained], explaining[explained]))]
    predictions: list[Prediction] = []
    if len(explained):
        groups = np.flatnonzero(np.r_[True, explaining[explained][1:] != explaining[explained][:-1]])
        devices = explaining[explained][groups]
        firsts = np.minimum.reduceat(went_out[explained], groups)
        lasts = np.maximum.reduceat(last_out[explained], groups)
        members = np.split(reporting[explained], groups[1:])
        for device, count, explains, first, last in zip(forest.edge[devices].tolist(),
                                                         forest.customers[devices].tolist(), members,
                                                         firsts.tolist(), lasts.tolist()):
            predictions.append(Prediction(device=device, customer=None, code=str(data.edge_code[device]),
                                          kind=data.kind_of(device), reports=tuple(explains.tolist()),
                                          customers=count, first_at=first, last_at=last))
    alone = explaining < 0
    for c, first, last in zip(reporting[alone].tolist(), went_out[alone].tolist(), last_out[alone].tolist()):
        predictions.append(Prediction(device=None, customer=c, code=str(data.sp_code[c]), kind="service",
                                      reports=(c,), customers=1, first_at=first, last_at=last))
    return predictions


def _explaining(forest: _Forest, rules: Rules, where: np.ndarray, lowest: np.ndarray,
                powered: np.ndarray) -> np.ndarray:
    """For service points at forest positions ``where`` with their lowest candidates, the predicted device above each.

    The topmost predicted device at or above each one's lowest candidate (a number in the
    forest), or -1 where none is; ``powered`` are the sorted positions of known-powered meters.
    """
    # The candidate devices involved: the reporting service points' lowest ones and all above.
    found = [np.unique(lowest)]
    while len(found[-1]):
        above = forest.parent[found[-1]]
        found.append(np.unique(above[above >= 0]))
    involved = np.unique(np.concatenate(found))
    m = len(involved)
    parent = forest.parent[involved]
    has_parent = parent >= 0
    parent = np.where(has_parent, np.searchsorted(involved, parent), -1)
    start, end = forest.position[involved], forest.end[involved]
    below = np.sort(where)
    reported = np.searchsorted(below, end) - np.searchsorted(below, start)
    blocked = (np.searchsorted(powered, end) - np.searchsorted(powered, start)) > 0
    direct = np.bincount(np.searchsorted(involved, lowest), minlength=m)
    widest_child = np.zeros(m, dtype=np.int64)
    np.maximum.at(widest_child, parent[has_parent], reported[has_parent])
    share = reported / np.maximum(forest.customers[involved], 1)
    alone = (direct >= rules.min_reports) | ((share >= rules.min_share) & (widest_child < reported))

    # Deepest first: a device's count of predicted children is complete before its own turn.
    depth = forest.depth[involved]
    levels = [np.flatnonzero(depth == level) for level in range(int(depth.max()) + 1)]
    predicted = np.zeros(m, dtype=bool)
    children = np.zeros(m, dtype=np.int64)
    for level in reversed(levels):
        predicted[level] = ~blocked[level] & (alone[level] | (children[level] >= rules.siblings))
        up = level[has_parent[level]]
        np.add.at(children, parent[up], predicted[up])
    # Top down: the topmost predicted device at or above each device explains its reports.
    owner = np.full(m, -1, dtype=np.int64)
    for level in levels:
        inherited = np.where(has_parent[level], owner[np.maximum(parent[level], 0)], -1)
        owner[level] = np.where(inherited >= 0, inherited, np.where(predicted[level], level, -1))
    owner = owner[np.searchsorted(involved, lowest)]
    return np.where(owner >= 0, involved[np.maximum(owner, 0)], -1)
