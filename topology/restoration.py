"""Restoration plans: once a fault is isolated, the switching that re-feeds the healthy sections
left without supply, each plan checked against the capacity of what would carry it.

A plan opens the isolation devices (``trace.isolation``) and closes, for each healthy part left
without supply, one open switch whose closing re-feeds it from a live neighbour: a
normally-open tie, or the breaker that tripped once the fault is cut off behind it. Every
element on the way from a closed switch to its source that has a rating is checked in the
plan's final state: conductors by ampacity, transformers by ``rated_kva``, the receiving
feeder by ``rating_kva``. Plans are ranked: feasible first, then most customers restored, then
most headroom (in percent of the limiting element's capacity), then fewest operations.
Method, capacity model and assumptions: docs/tracing.md, "Restoration plans".

Examples
--------
>>> from topology.index import Topology
>>> from topology.network import network_data_from_lists
>>> data = network_data_from_lists(  # src1 -B1- a -s1- b -SW- c -TIE(open)- d -B2- src2
...     nodes=["src1", "a", "b", "c", "d", "src2"], sources=[("S1", "src1"), ("S2", "src2")],
...     edges=[("B1", "breaker", "src1", "a", True), ("s1", "segment", "a", "b", True),
...            ("SW", "switch", "b", "c", True), ("TIE", "switch", "c", "d", False),
...            ("B2", "breaker", "src2", "d", True)],
...     service_points=[("C1", "c")])
>>> found = plans(Topology(data), "s1")
>>> [(plan.open, plan.close, plan.customer_count) for plan in found.plans]
[(['B1', 'SW'], ['TIE'], 1)]
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from geo.errors import Unprocessable
from geo.i18n import _
from topology import trace
from topology.index import Topology
from topology.network import NetworkData

__all__ = ["POWER_FACTOR", "Step", "Loading", "Plan", "Restoration", "Simulation", "demand_kw", "plans", "simulate"]

POWER_FACTOR = 0.95  # the load's power factor: kW = sqrt(3) x kV x A x pf, and kW = kVA x pf
MAX_OPTIONS = 4      # switches tried per healthy part, the best alone first
MAX_PLANS = 24       # combinations of those checked and ranked


@dataclass(frozen=True)
class Step:
    """One operation of a plan and the customers it gives supply back to."""

    action: str
    device: str
    customers: list[str]

    def as_dict(self) -> dict:
        """The API's JSON form."""
        return {"action": self.action, "device": self.device, "customer_count": len(self.customers),
                "customers": self.customers}


@dataclass(frozen=True)
class Loading:
    """An element with a rating, its load in a plan's final state and what it may carry (kW)."""

    kind: str         # feeder, segment or transformer
    code: str
    load_kw: float
    capacity_kw: float

    @property
    def headroom_kw(self) -> float:
        """What it could carry more (negative: overloaded)."""
        return self.capacity_kw - self.load_kw

    @property
    def headroom_percent(self) -> float:
        """The headroom in percent of the capacity."""
        return 100.0 * self.headroom_kw / self.capacity_kw if self.capacity_kw > 0 else -math.inf

    def reason(self) -> str:
        """Why a plan loading it this way is infeasible, in the reader's language."""
        return _("%(kind)s %(code)s would carry %(load).1f kW, over its %(capacity).1f kW",
                 kind=_KIND_NAMES.get(self.kind, self.kind), code=self.code, load=self.load_kw,
                 capacity=self.capacity_kw)


_KIND_NAMES = {"feeder": _("feeder"), "segment": _("segment"), "transformer": _("transformer")}


@dataclass(frozen=True)
class Plan:
    """Open ``open``, then close ``close``: the steps, the load moved and the tightest element."""

    open: list[str]
    close: list[str]
    steps: list[Step]
    transferred_kw: float
    loadings: list[Loading]
    powerflow: Any = None     # topology.powerflow.PowerFlow once verified (?verify=powerflow)

    @property
    def customer_count(self) -> int:
        """How many customers the plan gives supply back to."""
        return sum(len(step.customers) for step in self.steps)

    @property
    def limiting(self) -> Loading | None:
        """The checked element with the least headroom in percent (None when none has a rating)."""
        return min(self.loadings, key=lambda loading: loading.headroom_percent, default=None)

    @property
    def feasible(self) -> bool:
        """Whether every checked element carries its load within its capacity."""
        return all(loading.headroom_kw >= 0 for loading in self.loadings)

    def rank_key(self) -> tuple:
        """Feasible first, most customers, most headroom (unknown last), fewest operations."""
        limiting = self.limiting
        return (not self.feasible, -self.customer_count,
                math.inf if limiting is None else -limiting.headroom_percent, len(self.open) + len(self.close))

    def as_dict(self) -> dict:
        """The API's JSON form."""
        limiting = self.limiting
        headroom = None if limiting is None else {
            "kw": round(limiting.headroom_kw, 3), "percent": round(limiting.headroom_percent, 2),
            "element": limiting.code, "kind": limiting.kind}
        answer = {"open": self.open, "close": self.close, "steps": [step.as_dict() for step in self.steps],
                  "customer_count": self.customer_count, "transferred_kw": round(self.transferred_kw, 3),
                  "headroom": headroom, "feasible": self.feasible, "checked_elements": len(self.loadings),
                  "reasons": [loading.reason() for loading in self.loadings if loading.headroom_kw < 0]}
        if self.powerflow is not None:
            answer["powerflow"] = self.powerflow.as_dict()
        return answer


@dataclass(frozen=True)
class Restoration:
    """The isolation of a fault, the customers it leaves off, and the ranked plans."""

    element: str
    isolate: list[str]
    faulted: list[str]            # customers inside the faulted zone: no switching restores them
    healthy: list[str]            # customers outside it left without supply once it is isolated
    plans: list[Plan]
    unrestorable: list[str]       # healthy customers no plan gives supply back to
    assumptions: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"element": self.element, "isolate": self.isolate,
                "faulted": {"customer_count": len(self.faulted), "customers": self.faulted},
                "healthy": {"customer_count": len(self.healthy), "customers": self.healthy},
                "unrestorable": {"customer_count": len(self.unrestorable), "customers": self.unrestorable},
                "plans": [plan.as_dict() for plan in self.plans], "assumptions": self.assumptions}


@dataclass(frozen=True)
class _Option:
    """Closing ``edge`` alone in the isolated state: the healthy customers it restores and its path."""

    edge: int
    live: int                 # its end energised before it closes
    part: int                 # the lowest node of the part it restores: parts are told apart by it
    customers: np.ndarray
    path: list[int]           # edges from the switch to its source
    alone: Plan | None        # the plan closing only it, for ordering the options


# -- demand ----------------------------------------------------------------------------------------
def demand_kw(data: NetworkData) -> tuple[np.ndarray, float, int]:
    """Every service point's demand in kW, a missing one counted as the mean of the known ones
    (0 when none is known): (demands, the value assumed, how many were assumed)."""
    def build():
        known = data.sp_demand_kw.astype(np.float64)
        missing = np.isnan(known)
        fill = float(known[~missing].mean()) if (~missing).any() else 0.0
        return np.where(missing, fill, known), fill, int(missing.sum())
    return data.shared("restoration_demand", build)


def _capacity_kw(data: NetworkData, edge: int, power_factor: float) -> float | None:
    """What the edge may carry in kW: a conductor by its ampacity at its nodes' voltage, a
    transformer by its rating; None without a rating (or a conductor without a voltage)."""
    if data.edge_table[edge] == 0:
        ampacity = float(data.edge_ampacity_a[edge])
        volts = data.node_voltage_kv[[data.edge_u[edge], data.edge_v[edge]]]
        if math.isnan(ampacity) or np.isnan(volts).all():
            return None
        return math.sqrt(3) * float(np.nanmax(volts)) * ampacity * power_factor
    rated = float(data.edge_rated_kva[edge])
    return None if math.isnan(rated) or data.kind_of(edge) != "transformer" else rated * power_factor


def _load_through(state: Topology, edge: int, demand: np.ndarray) -> float:
    """The demand (kW) of the customers that only ``edge`` feeds in ``state``: those it cuts off."""
    return float(demand[trace.affected(state, open_edges=[edge]).customers].sum())


def _feeder_head(data: NetworkData, path: list[int], feeder: int) -> int | None:
    """The path's edge nearest the source that touches ``feeder``: the feeder's head, whose load
    is the feeder's."""
    touching = [e for e in path if feeder in (data.node_feeder[data.edge_u[e]], data.node_feeder[data.edge_v[e]])]
    return touching[-1] if touching else None


def _loadings(state: Topology, options: list[_Option], demand: np.ndarray, power_factor: float) -> list[Loading]:
    """Every rated element on the options' paths, and each receiving feeder, loaded as in ``state``."""
    data = state.data
    loadings: list[Loading] = []
    seen: set[int] = set()
    for option in options:
        for edge in option.path:
            capacity = _capacity_kw(data, edge, power_factor)
            if edge not in seen and capacity is not None:
                loadings.append(Loading(data.kind_of(edge), data.edge_code[edge],
                                        _load_through(state, edge, demand), capacity))
            seen.add(edge)
    feeders: set[int] = set()
    for option in options:
        feeder = int(data.node_feeder[option.live])
        rating = float(data.feeder_rating_kva[feeder]) if feeder >= 0 else math.nan
        head = _feeder_head(data, option.path, feeder) if not math.isnan(rating) else None
        if head is not None and feeder not in feeders:
            feeders.add(feeder)
            loadings.append(Loading("feeder", data.feeder_code[feeder], _load_through(state, head, demand),
                                    rating * power_factor))
    return loadings


# -- the healthy parts and the switches that re-feed them ------------------------------------------
def _healthy_nodes(topology: Topology, isolated: Topology, zone: np.ndarray, opened: np.ndarray) -> np.ndarray:
    """The nodes outside the faulted zone without supply once it is isolated: those the isolation
    cuts off, and, when protection has already de-energised the zone, the dead nodes of the
    zone's feeders (what the tripped device took with it)."""
    data = topology.data
    lost = trace.affected(topology, open_edges=opened).nodes
    if len(zone) and not topology.energised_at(zone).any():
        feeders = np.unique(data.node_feeder[zone])
        on_feeders = np.flatnonzero(np.isin(data.node_feeder, feeders[feeders >= 0]) & data.node_in_service)
        lost = np.union1d(lost, on_feeders[~isolated.energised_at(on_feeders)])
    return np.setdiff1d(lost, zone)


def _candidates(isolated: Topology, healthy: np.ndarray) -> np.ndarray:
    """Open in-service switchgear between a healthy dead node and a live one."""
    data = isolated.data
    edges = np.unique(data.incident_edges(healthy))
    u, v = data.edge_u[edges], data.edge_v[edges]
    usable = (data.is_switchgear(edges) & data.edge_in_service[edges] & ~isolated.closed[edges]
              & data.node_in_service[u] & data.node_in_service[v])
    live = isolated.energised
    return edges[usable & (live[u] ^ live[v])]


def _options(isolated: Topology, healthy: np.ndarray, zone: np.ndarray, demand: np.ndarray,
             power_factor: float) -> dict[int, list[_Option]]:
    """Per healthy part (by its lowest node), the switches whose closing alone re-feeds it
    without re-energising the zone, the best alone first, at most ``MAX_OPTIONS``."""
    data = isolated.data
    parts: dict[int, list[_Option]] = {}
    for edge in _candidates(isolated, healthy).tolist():
        after = isolated.operated({edge: True})
        if len(zone) and after.energised_at(zone).any():
            continue  # it would feed the fault
        restored = healthy[after.energised_at(healthy)]
        if not len(restored):
            continue
        found = trace.upstream(after, data.edge_code[edge])
        path = [int(max(data.find("segments", [code])[0], data.find("devices", [code])[0])) for code in found.path]
        live = int(data.edge_u[edge]) if isolated.energised_at(data.edge_u[[edge]])[0] else int(data.edge_v[edge])
        option = _Option(edge, live, int(restored.min()), data.customers_at(restored), path, None)
        # checked alone in its own state, so that each part's options can be ordered before combining
        option = replace(option, alone=_plan(after, [], [option], demand, power_factor))
        parts.setdefault(option.part, []).append(option)
    return {part: sorted(found, key=lambda o: o.alone.rank_key())[:MAX_OPTIONS] for part, found in parts.items()}


def _plan(final: Topology, opened: list[int], options: list[_Option], demand: np.ndarray,
          power_factor: float) -> Plan:
    """The plan opening ``opened`` and closing the options' switches, checked in its ``final`` state."""
    data = final.data
    steps = [Step("open", data.edge_code[e], []) for e in opened]
    steps += [Step("close", data.edge_code[o.edge], data.sp_code[o.customers].tolist()) for o in options]
    transferred = float(sum(demand[o.customers].sum() for o in options))
    return Plan(open=[data.edge_code[e] for e in opened], close=[data.edge_code[o.edge] for o in options],
                steps=steps, transferred_kw=transferred, loadings=_loadings(final, options, demand, power_factor))


# -- the plans -------------------------------------------------------------------------------------
def plans(topology: Topology, code: str, power_factor: float = POWER_FACTOR) -> Restoration:
    """The ranked switching plans that give supply back to the healthy customers a fault on the
    element leaves without it once isolated.

    ``NotFound`` for an unknown code; ``Unprocessable`` when a source lies inside the fault's zone
    (no switching isolates it).

    Notes
    -----
    One ``Topology.operated`` (a re-index of the sections touched) per candidate switch and per
    combination, and one ``affected`` per rated element on the paths: milliseconds on a feeder.
    """
    found = trace.isolation(topology, code)
    if not found.isolable:
        raise Unprocessable(_("%(code)s cannot be isolated: source(s) %(sources)s inside its zone",
                              code=code, sources=", ".join(found.sources_inside)), sources=found.sources_inside)
    data = topology.data
    opened = data.find("devices", [device.code for device in found.devices])
    isolated = topology.operated({int(e): False for e in opened}) if len(opened) else topology
    zone = data.find("nodes", found.zone.nodes)
    healthy = _healthy_nodes(topology, isolated, zone, opened)
    demand, assumed, without = demand_kw(data)
    options = _options(isolated, healthy, zone, demand, power_factor)
    ranked = sorted((_plan(isolated.operated({o.edge: True for o in combination}), opened.tolist(),
                           list(combination), demand, power_factor)
                     for combination in itertools.islice(itertools.product(*options.values()), MAX_PLANS)
                     if combination), key=Plan.rank_key)
    healthy_customers = data.customers_at(healthy)
    restorable = np.concatenate([o.customers for found in options.values() for o in found] + [np.zeros(0, np.int32)])
    return Restoration(
        element=code, isolate=[device.code for device in found.devices],
        faulted=found.zone.customers, healthy=data.sp_code[healthy_customers].tolist(), plans=ranked,
        unrestorable=data.sp_code[healthy_customers[~np.isin(healthy_customers, restorable)]].tolist(),
        assumptions={"power_factor": power_factor, "customers_without_demand": without,
                     "demand_assumed_kw": round(assumed, 3)})


@dataclass(frozen=True)
class Simulation:
    """What a plan changes: the customers it cuts off and those it gives supply back to, and
    whether the fault's zone is left without supply."""

    element: str
    isolates: bool
    lost: list[str]
    restored: list[str]
    off: int          # customers without supply once it is applied

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"element": self.element, "isolates": self.isolates,
                "lost": {"customer_count": len(self.lost), "customers": self.lost},
                "restored": {"customer_count": len(self.restored), "customers": self.restored},
                "customers_off": self.off}


def simulate(topology: Topology, code: str, open_codes: list[str], close_codes: list[str]) -> Simulation:
    """The plan ``open`` then ``close`` for a fault on the element, applied to a copy of the
    state: nothing is stored. ``isolates`` says whether it leaves the fault's zone without supply.

    Every code must name switchgear (``NotFound`` otherwise, ``Unprocessable`` for a segment,
    a transformer or a device named twice).
    """
    data = topology.data
    zone = data.find("nodes", trace.isolation(topology, code).zone.nodes)
    codes = open_codes + close_codes
    twice = sorted({c for c in codes if codes.count(c) > 1})
    elements = trace.resolve(data, [c for c in dict.fromkeys(codes)])
    wrong = twice + [element.code for element in elements
                     if element.table != "edge" or not data.is_switchgear(np.array([element.index]))[0]]
    if wrong:
        raise Unprocessable(_("a plan opens and closes switchgear, each device once; not: %(codes)s",
                              codes=", ".join(wrong)), codes=wrong)
    edges = [element.index for element in elements]
    closed = {edge: False for edge in edges[:len(open_codes)]} | {edge: True for edge in edges[len(open_codes):]}
    after = topology.operated(closed)
    served = data.customer_order
    before_on, after_on = topology.energised[data.sp_node[served]], after.energised[data.sp_node[served]]
    return Simulation(element=code, isolates=not after.energised_at(zone).any(), lost=data.sp_code[served[before_on & ~after_on]].tolist(),
                      restored=data.sp_code[served[~before_on & after_on]].tolist(),
                      off=int((~after_on).sum()))
