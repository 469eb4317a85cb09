"""Settling reports into predicted outages: the prediction engine run against the stored reports.

Reports (calls and meter events) are grouped by the radial section of their service point,
named by its supply edge (the feeder's breaker in the demo city): a *section key*. Settling a
key takes a transaction-scoped advisory lock on it, so that two workers never settle the same
feeder at once while different feeders settle in parallel; reads the key's reports that are
not yet explained by a confirmed outage; runs ``outages.prediction.predict``; and reconciles
the predicted outages of that key with the answer: a prediction at the device of a predicted
outage keeps it, one that explains most of an outage's reports elsewhere moves it (power
restored shrinks it), a new one creates an outage, and a predicted outage left with no
prediction is cancelled. A report whose customer is out in a confirmed outage joins that
outage at once (``confirmed_outage_of``) and is never settled again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from geo.live import note_change
from outages import lifecycle
from outages.prediction import predict_arrays
from outages.settings import OutageSettings
from topology.index import Radial, Topology

__all__ = ["section_keys", "settle_pending", "confirmed_outages", "confirmed_outage_of", "PREDICTION_ACTOR"]

log = logging.getLogger(__name__)

PREDICTION_ACTOR = "prediction"
UNFED = "unfed"


def section_keys(topology: Topology, customers: np.ndarray) -> list[str]:
    """The section key of each service point position: its radial section's supply edge code, else
    its feeder's code (meshed or dead parts), else ``unfed``."""
    data = topology.data
    nodes = data.sp_node[customers]
    sections = topology.node_section[nodes]
    keys: list[str] = []
    memo: dict[int, str] = {}
    for node, section in zip(nodes.tolist(), sections.tolist()):
        key = memo.get(section) if section >= 0 else None
        if key is None:
            tree = topology.sections[section] if section >= 0 else None
            if isinstance(tree, Radial):
                key = str(data.edge_code[tree.source_edge])
                memo[section] = key
            else:
                feeder = int(data.node_feeder[node])
                key = str(data.feeder_code[feeder]) if feeder >= 0 else UNFED
        keys.append(key)
    return keys


@dataclass(frozen=True)
class _Open:
    """An open, confirmed (or later) outage: where its customers hang in the live state."""

    id: int
    code: str
    device: str
    section: int
    start: int
    stop: int
    service_point: int  # its one service point position, for a service-level outage; else -1
    # Service point positions a restoration step gave back: out again, they are a new (nested) outage.
    restored: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # When the device is not inside a radial section now (the dispatcher opened it, say): its
    # customers still out, from its frozen steps.
    members: np.ndarray | None = None
    predicted: bool = False  # still predicted (read with ``also_predicted``)


def _positions(topology: Topology, ids) -> np.ndarray:
    """Service point positions of the ids that the network still has."""
    sp_id = topology.data.sp_id
    ids = np.asarray(ids if ids is not None else [], dtype=np.int64)
    found = np.searchsorted(sp_id, ids)
    return found[(found < len(sp_id)) & (sp_id[np.minimum(found, len(sp_id) - 1)] == ids)]


_OPEN_OUTAGES = ("SELECT o.id, o.code, o.device, o.device_kind, o.state = 'predicted' AS predicted, (SELECT array_agg(c) FROM outage_steps s, "
                 "unnest(s.customers) c WHERE s.outage_id = o.id AND s.kind = 'restored') AS restored FROM outages o ")
_CONFIRMED_WHERE = ("o.state IN ('confirmed', 'crew_assigned', 'en_route', 'on_site') "
                    "AND (o.planned_start IS NULL OR o.planned_start <= now())")
_PREDICTED_WHERE = "o.state = 'predicted' AND o.section_key = :key"
_CONFIRMED = text(f"{_OPEN_OUTAGES} WHERE {_CONFIRMED_WHERE} ORDER BY o.started_at")
_PREDICTED_IN = text(f"{_OPEN_OUTAGES} WHERE {_PREDICTED_WHERE} ORDER BY o.started_at")
_BOTH_IN = text(f"{_OPEN_OUTAGES} WHERE ({_CONFIRMED_WHERE}) OR ({_PREDICTED_WHERE}) ORDER BY o.started_at")


def confirmed_outages(connection: Connection, topology: Topology, predicted_in: str | None = None,
                      also_predicted: str | None = None) -> list[_Open]:
    """The open outages past ``predicted`` (planned ones once their window has begun), with the
    preorder span of their device in the live state (or, for a device outside every radial section
    now, the customers still out in it). ``predicted_in``: the predicted outages of that section key
    instead; ``also_predicted``: those as well, in the same query (flagged ``predicted``)."""
    data = topology.data
    if also_predicted is not None:
        rows = connection.execute(_BOTH_IN, {"key": also_predicted}).all()
    elif predicted_in is None:
        rows = connection.execute(_CONFIRMED).all()
    else:
        rows = connection.execute(_PREDICTED_IN, {"key": predicted_in}).all()
    # Codes looked up in one probe per table (a feeder in a storm has dozens of predicted outages,
    # and every call reads them).
    services = {row.device for row in rows if row.device_kind == "service"}
    service_at = dict(zip(services, data.find("service_points", list(services)).tolist()))
    others = [row.device for row in rows if row.device_kind != "service"]
    edge_at = dict(zip(others, data.find("devices", others).tolist()))
    missing = [code for code, edge in edge_at.items() if edge < 0]
    edge_at.update(zip(missing, data.find("segments", missing).tolist()))
    empty = np.zeros(0, dtype=np.int64)
    found = []
    for row in rows:
        restored = _positions(topology, row.restored) if row.restored else empty
        if row.device_kind == "service":
            position = service_at[row.device]
            if position >= 0:
                found.append(_Open(row.id, row.code, row.device, -1, 0, 0, position, restored, predicted=row.predicted))
            continue
        edge = edge_at[row.device]
        child = int(topology.edge_child[edge]) if edge >= 0 else -1
        if child < 0:  # not inside a radial section now: its frozen customers say who is out in it
            out = _positions(topology, lifecycle.customers_out(connection, row.id))
            found.append(_Open(row.id, row.code, row.device, -1, 0, 0, -1, members=out, predicted=row.predicted))
            continue
        section, position = int(topology.node_section[child]), int(topology.node_position[child])
        tree = topology.sections[section]
        found.append(_Open(row.id, row.code, row.device, section, position, position + int(tree.size[position]), -1,
                           restored, predicted=row.predicted))
    return found


def confirmed_outage_of(topology: Topology, opened: list[_Open], customers: np.ndarray) -> np.ndarray:
    """For each service point position, the id of the latest confirmed outage it is out in (else 0).

    Inside a radial section a customer is below a device when its node's preorder position lies
    in the device's span: one vector comparison per open outage, no search.
    """
    data = topology.data
    nodes = data.sp_node[customers]
    section, position = topology.node_section[nodes], topology.node_position[nodes]
    if len(customers) == 1:  # a call: plain comparisons (a numpy call per outage costs more than the test)
        return np.array([_outage_of_one(opened, int(customers[0]), int(section[0]), int(position[0]))],
                        dtype=np.int64)
    found = np.zeros(len(customers), dtype=np.int64)
    for outage in opened:
        if outage.members is not None:
            hit = np.isin(customers, outage.members)
        elif outage.service_point >= 0:
            hit = customers == outage.service_point
        else:
            hit = (section == outage.section) & (position >= outage.start) & (position < outage.stop)
        if len(outage.restored):
            hit &= ~np.isin(customers, outage.restored)
        found[hit] = outage.id
    return found


def _outage_of_one(opened: list[_Open], customer: int, section: int, position: int) -> int:
    """``confirmed_outage_of`` for one service point position."""
    found = 0
    for outage in opened:
        if outage.members is not None:
            hit = customer in outage.members
        elif outage.service_point >= 0:
            hit = customer == outage.service_point
        else:
            hit = section == outage.section and outage.start <= position < outage.stop
        if hit and not (len(outage.restored) and customer in outage.restored):
            found = outage.id
    return found


@dataclass
class _Pool:
    """A section's reports that no confirmed outage explains, as arrays (one entry per report)."""

    call: np.ndarray        # True: a call (ids in ``call_ids``), False: a meter event (``event_ids``)
    ids: list               # the call's id or the meter event's id
    service_point: np.ndarray
    at: np.ndarray          # seconds since the epoch
    out: np.ndarray         # False: a power-restored message
    outage: np.ndarray      # the outage it is attached to now (0: none)
    waiting: np.ndarray     # not settled yet (``settled_at`` NULL): this settling takes it in

    def __len__(self) -> int:
        return len(self.call)


# The pools of the keys in ``w.key`` (one row of arrays per table and key: a row per report cost
# more than the prediction itself, 8 ms of SQLAlchemy rows for 1,600).
_CALL_POOL = """
SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}') AS call_ids,
       coalesce(array_agg(c.service_point_id ORDER BY c.id), '{}') AS call_sps,
       coalesce(array_agg(extract(epoch FROM c.received_at)::float8 ORDER BY c.id), '{}') AS call_ats,
       coalesce(array_agg(coalesce(c.outage_id, 0) ORDER BY c.id), '{}') AS call_outages,
       coalesce(array_agg(c.settled_at IS NULL ORDER BY c.id), '{}') AS call_waiting
  FROM trouble_calls c LEFT JOIN outages o ON o.id = c.outage_id
 WHERE c.section_key = w.key AND c.cleared_at IS NULL AND (c.outage_id IS NULL OR o.state = 'predicted')
"""
_EVENT_POOL = """
SELECT coalesce(array_agg(m.event_id), '{}') AS event_ids, coalesce(array_agg(m.service_point_id), '{}') AS event_sps,
       coalesce(array_agg(extract(epoch FROM m.occurred_at)::float8), '{}') AS event_ats,
       coalesce(array_agg(m.kind = 'last_gasp'), '{}') AS event_out,
       coalesce(array_agg(coalesce(m.outage_id, 0)), '{}') AS event_outages,
       coalesce(array_agg(m.settled_at IS NULL), '{}') AS event_waiting
  FROM meter_events m LEFT JOIN outages o ON o.id = m.outage_id
 WHERE m.section_key = w.key AND m.cleared_at IS NULL AND (m.outage_id IS NULL OR o.state = 'predicted')
"""
# The key's predicted outages, as arrays too.
_EXISTING = """
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids, coalesce(array_agg(code ORDER BY id), '{}') AS codes,
       coalesce(array_agg(device ORDER BY id), '{}') AS devices, coalesce(array_agg(calls ORDER BY id), '{}') AS calls,
       coalesce(array_agg(meter_reports ORDER BY id), '{}') AS gasps
  FROM outages WHERE section_key = w.key AND state = 'predicted'
"""

# Claiming the keys of a round: each key's lock if it is free (tried, never waited for), and for
# the keys locked with reports waiting to be settled, their pools and predicted outages. One
# statement for every key: under a storm the cores are full and every round trip waits for the
# scheduler twice, so a round of 15 feeders that took 7 round trips each waited longer for them
# than it computed (settled p99 186-504 ms).
_CLAIM = text(f"""
WITH locked AS MATERIALIZED (
    SELECT key FROM unnest(CAST(:keys AS text[])) AS key WHERE pg_try_advisory_xact_lock(hashtextextended(key, 8))),
w AS MATERIALIZED (
    SELECT key FROM locked
     WHERE EXISTS (SELECT 1 FROM trouble_calls WHERE section_key = locked.key AND settled_at IS NULL)
        OR EXISTS (SELECT 1 FROM meter_events WHERE section_key = locked.key AND settled_at IS NULL))
SELECT w.key, calls.*, events.*, existing.* FROM w
 CROSS JOIN LATERAL ({_CALL_POOL}) AS calls
 CROSS JOIN LATERAL ({_EVENT_POOL}) AS events
 CROSS JOIN LATERAL ({_EXISTING}) AS existing
 ORDER BY w.key
""")


@dataclass(frozen=True)
class _Predicted:
    """A predicted outage of the key being settled."""

    id: int
    code: str
    device: str
    calls: int
    meter_reports: int


def _pool(row) -> _Pool:
    """The key's reports not explained by a confirmed outage, from its claimed row."""
    calls, events = len(row.call_ids), len(row.event_ids)
    return _Pool(call=np.r_[np.ones(calls, dtype=bool), np.zeros(events, dtype=bool)],
                 ids=list(row.call_ids) + list(row.event_ids),
                 service_point=np.asarray(list(row.call_sps) + list(row.event_sps), dtype=np.int64),
                 at=np.asarray(list(row.call_ats) + list(row.event_ats), dtype=np.float64),
                 out=np.r_[np.ones(calls, dtype=bool), np.asarray(row.event_out, dtype=bool)],
                 outage=np.asarray(list(row.call_outages) + list(row.event_outages), dtype=np.int64),
                 waiting=np.asarray(list(row.call_waiting) + list(row.event_waiting), dtype=bool))


def _existing(row) -> dict[int, _Predicted]:
    return {int(i): _Predicted(int(i), code, device, calls, gasps)
            for i, code, device, calls, gasps in zip(row.ids, row.codes, row.devices, row.calls, row.gasps)}


def settle_pending(session, cache, keys: list[str], settings: OutageSettings,
                   topology: Topology | None = None) -> list[str]:
    """Settle the reports waiting in each section key, unless another request is settling it now;
    return the codes of the outages this call changed.

    One request at a time settles a key (a transaction-scoped advisory lock, tried, never waited
    for): it claims the waiting reports of every key it could lock, settles them all in one
    transaction, commits, and goes round again for the keys it held while reports arrived
    meanwhile. A request that finds a key's lock taken leaves its reports to the holder, which
    looks for waiting reports again after it lets go, so a report that commits while the holder
    works is never left behind. Under a storm one settling covers many reports of many feeders.
    ``topology``: the state the caller read in this request (else the cache's, read again).
    """
    changed: list[str] = []
    keys = sorted(set(keys))
    while keys:
        try:
            keys, now = _round(session, cache, keys, settings, topology)
            changed += now
        except OperationalError:
            raise  # the database is away: the caller keeps the keys and tries again
        except Exception:  # noqa: BLE001 - one feeder's reports must not hold up the others'
            if len(keys) == 1:
                raise
            for key in keys:
                try:
                    changed += settle_pending(session, cache, [key], settings, topology)
                except OperationalError:
                    raise
                except Exception:  # noqa: BLE001 - left waiting: the settler's sweep tries it again
                    log.exception("settling the reports of %s failed", key)
            break
    return sorted(set(changed))


def _round(session, cache, keys: list[str], settings: OutageSettings,
           topology: Topology | None) -> tuple[list[str], list[str]]:
    """One transaction settling every key it could lock: the keys to look at again (those settled
    now: reports may have been committed while their locks were held), and the outages changed."""
    now: list[str] = []
    with session.begin():
        connection = session.connection()
        claimed = connection.execute(_CLAIM, {"keys": keys}).all()
        if claimed:
            now = _settle_claimed(connection, topology or cache.get(connection), claimed, settings)
            if now:
                note_change(connection, "outage", now)
    return [row.key for row in claimed], now  # a key locked by another or with nothing waiting is done


def _settle_claimed(connection: Connection, topology: Topology, claimed, settings: OutageSettings) -> list[str]:
    """Settle each claimed key, then write where every report goes in one statement per table."""
    writes = _Writes()
    changed: list[str] = []
    for row in claimed:
        changed += _settle_one(connection, topology, row.key, _pool(row), _existing(row), settings, writes)
    writes.flush(connection)
    return sorted(set(changed))


def _settle_one(connection: Connection, topology: Topology, key: str, pool: _Pool, existing: dict,
                settings: OutageSettings, writes: "_Writes") -> list[str]:
    """Run the prediction on the key's reports and make its predicted outages agree (lock held);
    the reports' and counts' writes are left in ``writes``."""
    data = topology.data
    if not len(pool) and not existing:
        return []
    positions = np.searchsorted(data.sp_id, pool.service_point)
    known = (positions < len(data.sp_id)) & (data.sp_id[np.minimum(positions, len(data.sp_id) - 1)] == pool.service_point)
    positions = np.where(known, positions, -1)
    predictions = predict_arrays(topology, positions[known], pool.at[known], pool.out[known], settings.rules)
    target, taken, changed = _reconcile(connection, topology, key, predictions, existing, pool, positions, settings)
    writes.attach(pool, target)
    writes.recount(pool, target, sorted(taken), existing)
    if not predictions:
        writes.cleared.append(key)  # nothing reports out any more: the power-restored messages did their work
    return sorted(set(changed))


class _Writes:
    """Where a round's reports go and its outages' new counts, gathered over every key settled and
    written in one statement each at the end (``flush``)."""

    def __init__(self):
        self.calls: tuple[list, list, list] = ([], [], [])    # ids, outages (None: none), waiting
        self.events: tuple[list, list, list] = ([], [], [])
        self.counts: tuple[list, list, list, list] = ([], [], [], [])  # ids, calls, gasps, latest
        self.cleared: list[str] = []  # keys whose reports left without an outage are cleared

    def attach(self, pool: _Pool, target: np.ndarray) -> None:
        """Point each report at the outage that explains its customer now (NULL: none), and mark the
        waiting ones settled (when the prediction took them in): a write for each report that moved
        or waited, none for the others."""
        write = np.flatnonzero((target != pool.outage) | pool.waiting)
        for rows, mine in ((self.calls, write[pool.call[write]]), (self.events, write[~pool.call[write]])):
            rows[0].extend(pool.ids[i] for i in mine.tolist())
            rows[1].extend(int(o) or None for o in target[mine].tolist())
            rows[2].extend(pool.waiting[mine].tolist())

    def recount(self, pool: _Pool, target: np.ndarray, kept: list[int], existing: dict) -> None:
        """The kept outages' counts of calls and last gasps and their latest report, from the pool (it
        holds every report of a predicted outage); only those whose counts changed are written."""
        if not kept:
            return
        ids = np.asarray(kept, dtype=np.int64)
        slot = np.searchsorted(ids, target)
        mine = (slot < len(ids)) & (ids[np.minimum(slot, len(ids) - 1)] == target)
        calls = np.bincount(slot[mine & pool.call], minlength=len(ids))
        gasps = np.bincount(slot[mine & ~pool.call & pool.out], minlength=len(ids))
        latest = np.full(len(ids), -np.inf)
        np.maximum.at(latest, slot[mine], pool.at[mine])
        for n, outage in enumerate(kept):
            counts = (int(calls[n]), int(gasps[n]))
            if outage in existing and (existing[outage].calls, existing[outage].meter_reports) == counts:
                continue
            for column, value in zip(self.counts, (outage, *counts, float(latest[n]) if np.isfinite(latest[n]) else 0.0)):
                column.append(value)

    def flush(self, connection: Connection) -> None:
        if self.calls[0]:
            connection.execute(_ATTACH_CALLS, dict(zip(("ids", "outages", "waiting"), self.calls)))
        if self.events[0]:
            connection.execute(_ATTACH_EVENTS, dict(zip(("ids", "outages", "waiting"), self.events)))
        if self.counts[0]:
            connection.execute(_RECOUNT, dict(zip(("ids", "calls", "gasps", "latest"), self.counts)))
        if self.cleared:
            for table in ("trouble_calls", "meter_events"):
                connection.execute(text(f"UPDATE {table} SET cleared_at = now() WHERE section_key = ANY(:keys) "
                                        "AND cleared_at IS NULL AND outage_id IS NULL"), {"keys": self.cleared})


_RECOUNT = text(
    "UPDATE outages o SET calls = d.calls, meter_reports = d.gasps, updated_at = now(), "
    "last_report_at = CASE WHEN d.latest > 0 THEN to_timestamp(d.latest) ELSE o.last_report_at END "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:calls AS int[]), CAST(:gasps AS int[]), CAST(:latest AS float8[])) "
    "AS d(id, calls, gasps, latest) WHERE o.id = d.id")


def _reconcile(connection: Connection, topology: Topology, key: str, predictions, existing: dict, pool: _Pool,
               positions: np.ndarray, settings: OutageSettings):
    """Match the predictions to the key's predicted outages: keep, move, create, cancel. Returns the
    outage each report is wanted at (0: none), the outages kept or made, and the codes changed."""
    taken: set[int] = set()
    changed: list[str] = []
    by_device = {row.device: outage_id for outage_id, row in existing.items()}
    explained_customers, explained_by = [], []
    for prediction in predictions:
        explained = np.asarray(prediction.reports, dtype=np.int64)
        outage_id = by_device.get(prediction.code)
        if outage_id is None or outage_id in taken:
            # The outage whose reports it explains most: it moves to the new device.
            overlaps = [(int(np.isin(positions[pool.outage == o], explained).sum()), o)
                        for o in existing if o not in taken]
            overlaps = [(n, o) for n, o in overlaps if n]
            outage_id = max(overlaps)[1] if overlaps else None
            if outage_id is not None:
                lifecycle.freeze(connection, topology, outage_id, prediction.code, PREDICTION_ACTOR)
                lifecycle.add_event(connection, outage_id, "moved", PREDICTION_ACTOR, None, "predicted", "predicted",
                                    {"from": existing[outage_id].device, "to": prediction.code,
                                     "reports": len(explained)})
                changed.append(existing[outage_id].code)
        if outage_id is None:
            outage_id, code = _create(connection, topology, key, prediction, settings)
            changed.append(code)
        taken.add(outage_id)
        explained_customers.append(explained)
        explained_by.append(np.full(len(explained), outage_id, dtype=np.int64))

    for outage_id, row in existing.items():
        if outage_id not in taken:
            lifecycle.add_event(connection, outage_id, "cancelled", PREDICTION_ACTOR, None, "predicted", "cancelled",
                                {"reason": "no_reports"})  # its customers sent power-restored messages
            connection.execute(text("UPDATE outages SET state = 'cancelled', customers_out = 0, updated_at = now() "
                                    "WHERE id = :id AND state = 'predicted'"), {"id": outage_id})
            changed.append(row.code)

    # Each report goes where its customer is explained (a customer's reports go together).
    target = np.zeros(len(pool), dtype=np.int64)
    if explained_customers:
        customers, outages = np.concatenate(explained_customers), np.concatenate(explained_by)
        order = np.argsort(customers, kind="stable")
        customers, outages = customers[order], outages[order]
        slot = np.minimum(np.searchsorted(customers, positions), max(len(customers) - 1, 0))
        hit = (positions >= 0) & (len(customers) > 0) & (customers[slot] == positions)
        target[hit] = outages[slot[hit]]
    return target, taken, changed


def _create(connection: Connection, topology: Topology, key: str, prediction,
            settings: OutageSettings) -> tuple[int, str]:
    """A new predicted outage for ``prediction``, its customers frozen and its ETR estimated from history."""
    data = topology.data
    started = datetime.fromtimestamp(prediction.first_at, tz=timezone.utc)
    customers = (np.array([data.sp_id[prediction.reports[0]]], dtype=np.int64)
                 if prediction.kind == "service" else None)
    estimate = lifecycle.estimate_etr(connection, started, "unknown", prediction.kind, settings)
    return lifecycle.predicted_outage(connection, topology, prediction.code, customers, started, key, estimate,
                                      PREDICTION_ACTOR, {"device": prediction.code, "kind": prediction.kind,
                                                         "reports": len(prediction.reports)})


_ATTACH_SET = ("SET outage_id = d.outage, settled_at = CASE WHEN d.waiting THEN clock_timestamp() ELSE t.settled_at END "
               "FROM unnest(CAST(:ids AS {}[]), CAST(:outages AS bigint[]), CAST(:waiting AS boolean[])) "
               "AS d(id, outage, waiting)")
_ATTACH_CALLS = text("UPDATE trouble_calls t " + _ATTACH_SET.format("bigint") + " WHERE t.id = d.id")
_ATTACH_EVENTS = text("UPDATE meter_events t " + _ATTACH_SET.format("text") + " WHERE t.event_id = d.id")
