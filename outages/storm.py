"""Storms for demos, benchmarks and tests: faults the prediction rules can tell apart, and the
calls and last gasps their customers send.

``pick_faults`` chooses faulted devices of every kind on a network (none above another, no
device above them holding K faulted children or a share of faulted customers that would fool
the rules), ``storm_reports`` the reports of their customers over a span of time, and
``replay`` sends them through the intake as a head-end and callers would (``flask --app app
outages storm`` on the demo city).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from outages.prediction import CANDIDATE_KINDS, Rules, candidate_chain, downstream_customers
from topology.index import Topology

__all__ = ["DEFAULT_FAULTS", "StormReport", "device_tree", "pick_faults", "storm_reports"]

# How many faults of each group a storm has by default.
DEFAULT_FAULTS = {"breaker": 1, "recloser": 1, "lateral fuse": 2, "transformer": 2, "LV fuse": 2}


def device_tree(topology: Topology) -> tuple[dict[int, list[int]], dict[int, set[int]]]:
    """Each candidate device with customers: the candidate devices above it (lowest first) and its customers."""
    data = topology.data
    above, customers = {}, {}
    for device in range(data.edge_count):
        if data.kind_of(device) not in CANDIDATE_KINDS:
            continue
        below = downstream_customers(topology, device)
        if len(below):
            chain = candidate_chain(topology, int(below[0]))
            if device in chain:
                above[device] = chain[chain.index(device) + 1:]
                customers[device] = set(below.tolist())
    return above, customers


def pick_faults(topology: Topology, rng: np.random.Generator, rules: Rules = Rules(),
                wanted: dict[str, int] | None = None, loners: int = 3) -> tuple[list[int], list[int]]:
    """Faulted devices of the kinds and counts ``wanted`` (default ``DEFAULT_FAULTS``), none above
    another, no device above them with K faulted children or a share of faulted customers reaching
    ``min_share``; every faulted device but an LV fuse has two branches (with one, its single child
    explains the reports as well). Then ``loners`` customers elsewhere that a lone call of theirs
    cannot make the rules predict a device for. ``RuntimeError`` when the network has too few."""
    wanted = wanted or DEFAULT_FAULTS
    data = topology.data
    above, customers = device_tree(topology)
    children: dict[int, list[int]] = {}
    for device, ups in above.items():
        if ups:
            children.setdefault(ups[0], []).append(device)

    def group(device: int) -> str:
        """The kind of fault a device makes: an LV fuse (a transformer's -FA/-FB) apart from a lateral fuse."""
        if str(data.edge_code[device]).endswith(("-FA", "-FB")):
            return "LV fuse"
        return "lateral fuse" if data.kind_of(device) == "fuse" else data.kind_of(device)

    faults: list[int] = []
    faulted: dict[int, set[int]] = {}

    def fits(device: int) -> bool:
        """Whether faulting ``device`` too keeps every fault unambiguous."""
        if any(f == device or f in above[device] or device in above[f] for f in faults):
            return False
        for up in above[device]:
            siblings = sum(1 for f in faults + [device] if above[f][:1] == [up])
            share = len(faulted.get(up, set()) | customers[device]) / len(customers[up])
            if siblings >= rules.siblings or share >= rules.min_share:
                return False
        return True

    for key, count in wanted.items():
        taken = 0
        for device in rng.permutation([d for d in above if group(d) == key]).tolist():
            if taken == count:
                break
            if key != "LV fuse" and len(children.get(device, [])) < 2 or len(customers[device]) < 6:
                continue
            if fits(device):
                faults.append(device)
                taken += 1
                for up in above[device]:
                    faulted.setdefault(up, set()).update(customers[device])
        if taken < count:
            raise RuntimeError(f"only {taken} unambiguous {key} faults in this city, not {count}")
    return faults, _loners(topology, rng, rules, faults, faulted, customers, loners)


def _loners(topology: Topology, rng: np.random.Generator, rules: Rules, faults: list[int],
            faulted: dict[int, set[int]], customers: dict[int, set[int]], count: int) -> list[int]:
    """``count`` customers outside the faults whose lone call stays a service-level outage."""
    struck = set().union(*(customers[f] for f in faults)) if faults else set()
    lone: list[int] = []
    for customer in rng.permutation(len(topology.data.sp_code)).tolist():
        if len(lone) == count:
            break
        chain = candidate_chain(topology, customer)
        if customer in struck or not chain or faulted.get(chain[0]):
            continue
        if all((len(faulted.get(d, set())) + 1) / len(customers[d]) < rules.min_share for d in chain):
            lone.append(customer)
            for d in chain:
                faulted.setdefault(d, set()).add(customer)
    return lone


@dataclass(frozen=True)
class StormReport:
    """One report of a storm: a call or a last gasp of a service point position, ``at`` seconds in."""

    kind: str
    customer: int
    at: float


def storm_reports(topology: Topology, faults: list[int], loners: list[int], rng: np.random.Generator,
                  calls: float = 0.15, gasps: float = 0.70, minutes: float = 30.0) -> list[StormReport]:
    """The reports of a storm in time order: each fault strikes at a time within ``minutes``; a share
    ``gasps`` of its customers' meters gasp within seconds, a share ``calls`` call within 20 minutes;
    each lone caller calls once."""
    reports = []
    for fault in faults:
        struck = rng.uniform(0, minutes * 60)
        customers = downstream_customers(topology, fault)
        reports += [StormReport("call", int(c), struck + rng.uniform(60, 1200))
                    for c in customers[rng.random(len(customers)) < calls]]
        reports += [StormReport("last_gasp", int(c), struck + rng.uniform(0, 5))
                    for c in customers[rng.random(len(customers)) < gasps]]
    reports += [StormReport("call", c, rng.uniform(0, minutes * 60)) for c in loners]
    return sorted(reports, key=lambda r: r.at)


def replay(session, cache, reports: list[StormReport], settings, start, progress=None) -> dict[str, int]:
    """Send ``reports`` through the intake as they would come (calls one by one by account number,
    last gasps in batches of the meters' head-end), their times counted from ``start``; counts."""
    from datetime import timedelta

    from outages.intake import CallRequest, MeterEventIn, file_call, record_meter_events
    from topology import places

    with session.begin():
        topology = cache.get(session.connection())
        ids = topology.data.sp_id[[r.customer for r in reports if r.kind == "call"]]
        accounts = {d.code: d.account_number for d in places.customer_details(session.connection(), ids, len(ids))}
    data, counts, pending = topology.data, {"calls": 0, "meter_events": 0}, []

    def flush():
        if pending:
            record_meter_events(session, cache, list(pending), settings)
            counts["meter_events"] += len(pending)
            pending.clear()

    for number, report in enumerate(reports):
        code = str(data.sp_code[report.customer])
        if report.kind == "call":
            flush()
            file_call(session, cache, CallRequest("account", account=accounts[code]), settings)
            counts["calls"] += 1
        else:
            at = start + timedelta(seconds=report.at)
            pending.append(MeterEventIn(f"storm-{start:%Y%m%d%H%M%S}-{number}", code, report.kind, at))
            if len(pending) == 1000:
                flush()
        if progress is not None:
            progress(1)
    flush()
    return counts
