"""A year of outage history for the demo city, so that reliability indices, major event days, ETR
estimates and the history feed have something real to show.

Every outage is restored, at a real device with the customers it cuts off in the normal state,
and written as the lifecycle writes one: the outage, its ``affected`` step, ``restored`` steps
(a third of the larger ones in two or three steps, each with its own time), and its timeline.
Day to day faults of every kind (a quarter of the breaker and recloser ones momentary: a
reclose), planned work by day, a few nested outages (a customer out again after its outage was
restored) and storms: a handful of days with dozens of faults and long repairs, which the 2.5
beta method finds as major event days. Deterministic by seed; bulk SQL (one statement per table).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import text

from geo.demo import DemoContext
from outages.prediction import CANDIDATE_KINDS, downstream_customers
from topology import places
from topology.index import Topology
from topology.network import EDGE_KINDS
from topology.read import read_network

__all__ = ["add_outage_history", "HISTORY_DAYS", "History", "plan_history"]

HISTORY_DAYS = 365
# Ordinary faults a day per 20,000 customers (at least half that in a smaller city, so that its
# days are not all empty). Measured on the demo city of 20,000 (seed 1): SAIFI 4.3 and SAIDI 770
# minutes over the year, 580 of them on the four storm days (T_MED 25 minutes); far above a
# German city's, as a demo wants something to see every week. Written in 2.7 s.
FAULTS_PER_DAY = 2.5
# Kind of the ordinary faults, and the median repair in minutes (log-normal, sigma 0.6).
KINDS = {"service": (0.38, 100.0), "fuse": (0.30, 120.0), "transformer": (0.18, 160.0),
         "recloser": (0.10, 60.0), "breaker": (0.04, 30.0)}
CAUSES_BY_KIND = {"service": ("equipment", "third_party", "unknown"), "fuse": ("vegetation", "animal", "equipment"),
                  "transformer": ("equipment", "overload"), "recloser": ("weather", "vegetation", "animal"),
                  "breaker": ("equipment", "weather")}
STORMS = 4  # storm days a year; each has 30 to 80 faults per 20,000 customers (at least 16), mostly high up
STORM_KINDS = {"breaker": 0.05, "recloser": 0.35, "fuse": 0.35, "transformer": 0.2, "service": 0.05}
STORM_REPAIR_MINUTES = 300.0
PLANNED_SHARE = 0.03
NESTED_SHARE = 0.02
ACTOR = "demo-history"


@dataclass
class History:
    """The outages planned for the demo (rows of each table, as lists of columns)."""

    outages: list[tuple] = field(default_factory=list)
    steps: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)


def _devices(topology: Topology) -> dict[str, np.ndarray]:
    """The candidate devices by kind (edge positions); whether one has customers is asked when it is drawn."""
    data = topology.data
    return {kind: found for kind in CANDIDATE_KINDS
            if len(found := np.flatnonzero(data.edge_kind == EDGE_KINDS.index(kind)).astype(np.int64))}


def _fault(topology: Topology, devices: dict, rng: np.random.Generator, kind: str) -> tuple[str, str, np.ndarray]:
    """A device of ``kind`` (or a service point) with customers: its code, kind and service point ids."""
    data = topology.data
    if kind == "service" or kind not in devices:
        position = int(rng.integers(len(data.sp_id)))
        return str(data.sp_code[position]), "service", data.sp_id[position:position + 1].astype(np.int64)
    for _ in range(20):
        edge = int(rng.choice(devices[kind]))
        below = downstream_customers(topology, edge)
        if len(below):
            return str(data.edge_code[edge]), kind, data.sp_id[below].astype(np.int64)
    return _fault(topology, devices, rng, "service")


def _feeder(topology: Topology, customer: int) -> str | None:
    data = topology.data
    position = int(np.searchsorted(data.sp_id, customer))
    node = data.sp_node[position] if position < len(data.sp_id) and data.sp_id[position] == customer else -1
    return data.feeder_code[data.node_feeder[node]] if node >= 0 and data.node_feeder[node] >= 0 else None


def _restore_times(rng: np.random.Generator, start: datetime, minutes: float, count: int) -> list[tuple[float, int]]:
    """(minutes after the start, how many customers) of each restoration step; the last is ``minutes``."""
    if count < 20 or rng.random() > 0.35:
        return [(minutes, count)]
    steps = int(rng.integers(2, 4))
    times = sorted(rng.uniform(0.25, 0.9, steps - 1) * minutes) + [minutes]
    cuts = sorted(rng.choice(np.arange(1, count), steps - 1, replace=False).tolist())
    sizes = np.diff([0, *cuts, count]).tolist()
    return list(zip(times, sizes))


def _add(history: History, outage_id: int, fault: tuple, start: datetime, minutes: float, cause: str,
         rng: np.random.Generator, topology: Topology, planned: bool = False, parent: int | None = None) -> None:
    """One restored outage with its steps and timeline."""
    device, kind, customers = fault
    end = start + timedelta(minutes=minutes)
    momentary = minutes < 5.0
    origin = "planned" if planned else "manual"
    history.outages.append((outage_id, f"OUT-{outage_id:06d}", origin, device, kind, _feeder(topology, int(customers[0])),
                            cause, start, start if planned else None, end if planned else None, len(customers),
                            parent, momentary, end))
    history.steps.append((outage_id, 1, "affected", customers.tolist(), start))
    history.events.append((outage_id, "created", None, "confirmed", start, {"device": device, "origin": origin}))
    order = rng.permutation(customers)
    given, number = 0, 1
    for after, size in _restore_times(rng, start, minutes, len(customers)):
        number += 1
        at = start + timedelta(minutes=after)
        history.steps.append((outage_id, number, "restored", order[given:given + size].tolist(), at))
        given += size
        last = given == len(customers)
        history.events.append((outage_id, "restored" if last else "step", "confirmed", "restored" if last else "confirmed",
                               at, {"step": number, "restored": size, "still_out": len(customers) - given}))


def _ordinary(history: History, topology: Topology, devices: dict, rng: np.random.Generator, day_start: datetime,
              next_id) -> None:
    """One ordinary fault (momentary now and then), planned work or a nested outage after it."""
    kinds = list(KINDS)
    kind = str(rng.choice(kinds, p=[KINDS[k][0] for k in kinds]))
    start = day_start + timedelta(minutes=float(rng.uniform(0, 1440)))
    fault = _fault(topology, devices, rng, kind)
    if rng.random() < PLANNED_SHARE:
        start = day_start + timedelta(hours=float(rng.integers(8, 13)))
        _add(history, next_id(), _fault(topology, devices, rng, "transformer"), start, 240.0, "planned", rng, topology,
             planned=True)
        return
    momentary = kind in ("breaker", "recloser") and rng.random() < 0.25
    minutes = float(rng.uniform(0.3, 3.0)) if momentary else float(rng.lognormal(np.log(KINDS[kind][1]), 0.6))
    outage_id = next_id()
    _add(history, outage_id, fault, start, minutes, str(rng.choice(CAUSES_BY_KIND[kind])), rng, topology)
    if not momentary and rng.random() < NESTED_SHARE:
        customer = np.array([int(rng.choice(fault[2]))], dtype=np.int64)
        again = start + timedelta(minutes=minutes + float(rng.uniform(10, 120)))
        _add(history, next_id(), (fault[0], kind, customer), again, float(rng.lognormal(np.log(90.0), 0.5)),
             "equipment", rng, topology, parent=outage_id)


def _storm(history: History, topology: Topology, devices: dict, rng: np.random.Generator, day_start: datetime,
           faults: int, counter) -> None:
    """A storm's afternoon and evening: ``faults`` faults, mostly breakers and reclosers, long repairs."""
    kinds = list(STORM_KINDS)
    for _ in range(faults):
        kind = str(rng.choice(kinds, p=list(STORM_KINDS.values())))
        start = day_start + timedelta(hours=float(rng.uniform(13, 22)))
        _add(history, next(counter), _fault(topology, devices, rng, kind), start,
             float(rng.lognormal(np.log(STORM_REPAIR_MINUTES), 0.4)), "weather", rng, topology)


def plan_history(topology: Topology, customers: int, seed: int, now: datetime) -> History:
    """The outages of the ``HISTORY_DAYS`` before ``now`` (nothing after ``now``); deterministic by ``seed``."""
    rng = np.random.default_rng([seed, 1366])
    devices = _devices(topology)
    history = History()
    counter = iter(range(1, 10**9))
    scale = customers / 20_000
    first = (now - timedelta(days=HISTORY_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    storms = set(rng.choice(np.arange(2, HISTORY_DAYS - 2), STORMS, replace=False).tolist())
    for day in range(HISTORY_DAYS):
        day_start = first + timedelta(days=day)
        faults = rng.poisson(FAULTS_PER_DAY * max(scale, 0.5)) + (1 if day == 0 else 0)  # a year of history from day one
        for _ in range(faults):
            _ordinary(history, topology, devices, rng, day_start, lambda: next(counter))
        if day in storms:
            _storm(history, topology, devices, rng, day_start, max(16, int(rng.integers(30, 81) * scale)), counter)
    history.outages = [row for row in history.outages if row[-1] < now]
    kept = {row[0] for row in history.outages}
    history.steps = [row for row in history.steps if row[0] in kept]
    history.events = [row for row in history.events if row[0] in kept]
    return history


_OUTAGES = text("""
INSERT INTO outages (id, code, state, origin, device, device_kind, feeder, cause, started_at, last_report_at,
                     planned_start, planned_end, customers_affected, customers_out, parent_id, momentary, restored_at,
                     updated_at, geom)
SELECT u.id, 'OUT-' || lpad(u.id::text, 6, '0'), 'restored', u.origin, u.device, u.kind, u.feeder, u.cause, u.started,
       u.started, u.planned_start, u.planned_end, u.affected, 0, u.parent, u.momentary, u.restored, u.restored,
       CASE WHEN u.lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326) END
FROM unnest(CAST(:ids AS bigint[]), CAST(:origins AS text[]), CAST(:devices AS text[]), CAST(:kinds AS text[]),
            CAST(:feeders AS text[]), CAST(:causes AS text[]), CAST(:started AS timestamptz[]),
            CAST(:planned_start AS timestamptz[]), CAST(:planned_end AS timestamptz[]), CAST(:affected AS int[]),
            CAST(:parents AS bigint[]), CAST(:momentary AS boolean[]), CAST(:restored AS timestamptz[]),
            CAST(:lons AS float8[]), CAST(:lats AS float8[]))
  AS u(id, origin, device, kind, feeder, cause, started, planned_start, planned_end, affected, parent, momentary,
       restored, lon, lat)
""")
_STEPS = text("""
INSERT INTO outage_steps (outage_id, number, kind, customers, customer_count, actor, occurred_at)
SELECT u.outage, u.number, u.kind, CAST(u.customers AS bigint[]), cardinality(CAST(u.customers AS bigint[])), :actor, u.at
FROM unnest(CAST(:outages AS bigint[]), CAST(:numbers AS int[]), CAST(:kinds AS text[]), CAST(:customers AS text[]),
            CAST(:at AS timestamptz[])) AS u(outage, number, kind, customers, at)
""")
_EVENTS = text("""
INSERT INTO outage_events (outage_id, kind, from_state, to_state, actor, data, occurred_at)
SELECT u.outage, u.kind, u.from_state, u.to_state, :actor, CAST(u.data AS jsonb), u.at
FROM unnest(CAST(:outages AS bigint[]), CAST(:kinds AS text[]), CAST(:from_states AS text[]),
            CAST(:to_states AS text[]), CAST(:at AS timestamptz[]), CAST(:data AS text[]))
  AS u(outage, kind, from_state, to_state, at, data)
""")
_IDS = text("SELECT nextval(pg_get_serial_sequence('outages', 'id')) FROM generate_series(1, :n)")


def write_history(connection, history: History) -> None:
    """Insert the planned outages, steps and timeline entries: three statements, ids from the outages' sequence."""
    real = dict(zip((row[0] for row in history.outages), connection.execute(_IDS, {"n": len(history.outages)}).scalars()))
    points = places.element_points(connection, sorted({row[3] for row in history.outages}))
    columns = list(zip(*history.outages))
    connection.execute(_OUTAGES, {
        "ids": [real[i] for i in columns[0]], "origins": list(columns[2]), "devices": list(columns[3]),
        "kinds": list(columns[4]), "feeders": list(columns[5]), "causes": list(columns[6]), "started": list(columns[7]),
        "planned_start": list(columns[8]), "planned_end": list(columns[9]), "affected": list(columns[10]),
        "parents": [real.get(p) for p in columns[11]], "momentary": list(columns[12]), "restored": list(columns[13]),
        "lons": [points.get(d, (None, None))[0] for d in columns[3]],
        "lats": [points.get(d, (None, None))[1] for d in columns[3]]})
    steps = list(zip(*history.steps))
    connection.execute(_STEPS, {
        "outages": [real[i] for i in steps[0]], "numbers": list(steps[1]), "kinds": list(steps[2]),
        "customers": ["{" + ",".join(map(str, c)) + "}" for c in steps[3]], "at": list(steps[4]), "actor": ACTOR})
    events = list(zip(*history.events))
    connection.execute(_EVENTS, {
        "outages": [real[i] for i in events[0]], "kinds": list(events[1]), "from_states": list(events[2]),
        "to_states": list(events[3]), "at": list(events[4]), "data": [json.dumps(d) for d in events[5]], "actor": ACTOR})


def add_outage_history(context: DemoContext) -> None:
    """A year of restored outages before now, sized to the city (skipped when outages exist)."""
    connection = context.connection
    if connection.execute(text("SELECT EXISTS (SELECT 1 FROM outages)")).scalar_one():
        return
    data, version = read_network(connection)
    data.warm_lookups()
    topology = Topology(data, version=version)
    now = connection.execute(text("SELECT now()")).scalar_one()
    history = plan_history(topology, context.customers, context.seed, now)
    if history.outages:
        write_history(connection, history)
    customers = sum(row[10] for row in history.outages)
    context.progress(f"{len(history.outages)} restored outages over the last {HISTORY_DAYS} days "
                     f"({customers} customer interruptions)")
