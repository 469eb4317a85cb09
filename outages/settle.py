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

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.live import note_change
from outages import lifecycle
from outages.prediction import Report, predict
from outages.settings import OutageSettings
from topology.index import Radial, Topology

__all__ = ["section_keys", "settle", "confirmed_outages", "confirmed_outage_of", "PREDICTION_ACTOR"]

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


def _positions(topology: Topology, ids) -> np.ndarray:
    """Service point positions of the ids that the network still has."""
    sp_id = topology.data.sp_id
    ids = np.asarray(ids if ids is not None else [], dtype=np.int64)
    found = np.searchsorted(sp_id, ids)
    return found[(found < len(sp_id)) & (sp_id[np.minimum(found, len(sp_id) - 1)] == ids)]


def confirmed_outages(connection: Connection, topology: Topology) -> list[_Open]:
    """The open outages past ``predicted`` (planned ones once their window has begun), with the
    preorder span of their device in the live state (or, for a device outside every radial section
    now, the customers still out in it)."""
    data = topology.data
    rows = connection.execute(text(
        "SELECT o.id, o.code, o.device, o.device_kind, (SELECT array_agg(c) FROM outage_steps s, unnest(s.customers) c "
        "WHERE s.outage_id = o.id AND s.kind = 'restored') AS restored FROM outages o "
        "WHERE o.state IN ('confirmed', 'crew_assigned', 'en_route', 'on_site') "
        "AND (o.planned_start IS NULL OR o.planned_start <= now()) ORDER BY o.started_at")).all()
    found = []
    for row in rows:
        restored = _positions(topology, row.restored)
        if row.device_kind == "service":
            position = int(data.find("service_points", [row.device])[0])
            if position >= 0:
                found.append(_Open(row.id, row.code, row.device, -1, 0, 0, position, restored))
            continue
        edge = int(data.find("devices", [row.device])[0])
        if edge < 0:
            edge = int(data.find("segments", [row.device])[0])
        child = int(topology.edge_child[edge]) if edge >= 0 else -1
        if child < 0:  # not inside a radial section now: its frozen customers say who is out in it
            out = _positions(topology, lifecycle.customers_out(connection, row.id))
            found.append(_Open(row.id, row.code, row.device, -1, 0, 0, -1, members=out))
            continue
        section, position = int(topology.node_section[child]), int(topology.node_position[child])
        tree = topology.sections[section]
        found.append(_Open(row.id, row.code, row.device, section, position, position + int(tree.size[position]), -1,
                           restored))
    return found


def confirmed_outage_of(topology: Topology, opened: list[_Open], customers: np.ndarray) -> np.ndarray:
    """For each service point position, the id of the latest confirmed outage it is out in (else 0).

    Inside a radial section a customer is below a device when its node's preorder position lies
    in the device's span: one vector comparison per open outage, no search.
    """
    data = topology.data
    nodes = data.sp_node[customers]
    section, position = topology.node_section[nodes], topology.node_position[nodes]
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


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _pool(connection: Connection, key: str):
    """The key's reports not explained by a confirmed outage: (table, id, service point id, seconds, out, outage id)."""
    return connection.execute(text("""
        SELECT 'call' AS source, c.id::text AS id, c.service_point_id, extract(epoch FROM c.received_at) AS at,
               true AS out, c.outage_id
          FROM trouble_calls c LEFT JOIN outages o ON o.id = c.outage_id
         WHERE c.section_key = :key AND c.cleared_at IS NULL AND (c.outage_id IS NULL OR o.state = 'predicted')
        UNION ALL
        SELECT 'meter', m.event_id, m.service_point_id, extract(epoch FROM m.occurred_at), m.kind = 'last_gasp',
               m.outage_id
          FROM meter_events m LEFT JOIN outages o ON o.id = m.outage_id
         WHERE m.section_key = :key AND m.cleared_at IS NULL AND (m.outage_id IS NULL OR o.state = 'predicted')
    """), {"key": key}).all()


def _parent_of(connection: Connection, service_point_id: int) -> int | None:
    """The open confirmed outage a new outage nests in: one whose frozen customers include it."""
    return connection.execute(text(
        "SELECT o.id FROM outages o JOIN outage_steps s ON s.outage_id = o.id AND s.kind = 'affected' "
        "WHERE o.state IN ('confirmed', 'crew_assigned', 'en_route', 'on_site') AND :sp = ANY(s.customers) "
        "ORDER BY o.started_at DESC LIMIT 1"), {"sp": service_point_id}).scalar()


def settle(connection: Connection, topology: Topology, keys: list[str], settings: OutageSettings) -> list[str]:
    """Settle the reports of each section key into predicted outages (in the caller's transaction);
    return the codes of the outages created, moved, updated or cancelled."""
    changed: list[str] = []
    for key in sorted(set(keys)):
        changed.extend(_settle_one(connection, topology, key, settings))
    if changed:
        note_change(connection, "outage", changed)
    return changed


def _settle_one(connection: Connection, topology: Topology, key: str, settings: OutageSettings) -> list[str]:
    data = topology.data
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 8))"), {"key": key})
    rows = _pool(connection, key)
    existing = {row.id: row for row in connection.execute(text(
        "SELECT id, code, device, state, started_at FROM outages WHERE section_key = :key AND state = 'predicted'"),
        {"key": key}).all()}
    if not rows and not existing:
        return []
    sp_ids = np.array([row.service_point_id for row in rows], dtype=np.int64)
    positions = np.searchsorted(data.sp_id, sp_ids)
    known = (positions < len(data.sp_id)) & (data.sp_id[np.minimum(positions, len(data.sp_id) - 1)] == sp_ids)
    reports = [Report(int(p), float(row.at), bool(row.out)) for p, row, ok in zip(positions, rows, known) if ok]
    predictions = predict(topology, reports, settings.rules)

    wanted, taken, changed = _reconcile(connection, topology, key, predictions, existing, rows, positions, known,
                                        settings)
    _attach(connection, rows, positions, known, wanted)
    _recount(connection, sorted(taken | set(existing)))
    if not predictions:
        # Nothing is reporting out any more: the power-restored messages have done their work.
        for table in ("trouble_calls", "meter_events"):
            connection.execute(text(f"UPDATE {table} SET cleared_at = now() WHERE section_key = :key "
                                    "AND cleared_at IS NULL AND outage_id IS NULL"), {"key": key})
    return sorted(set(changed))


def _recount(connection: Connection, touched: list[int]) -> None:
    """Bring the outages' counts of calls and last gasps and their latest report up to date."""
    if touched:
        connection.execute(text("""
            UPDATE outages o SET
                calls = (SELECT count(*) FROM trouble_calls c WHERE c.outage_id = o.id),
                meter_reports = (SELECT count(*) FROM meter_events m WHERE m.outage_id = o.id AND m.kind = 'last_gasp'),
                last_report_at = greatest(o.last_report_at,
                    (SELECT max(received_at) FROM trouble_calls c WHERE c.outage_id = o.id),
                    (SELECT max(occurred_at) FROM meter_events m WHERE m.outage_id = o.id)),
                updated_at = now()
            WHERE o.id = ANY(:ids)"""), {"ids": touched})


def _reconcile(connection: Connection, topology: Topology, key: str, predictions, existing: dict, rows,
               positions: np.ndarray, known: np.ndarray, settings: OutageSettings):
    """Match the predictions to the key's predicted outages: keep, move, create, cancel. Returns the
    outage wanted for each customer position, the outages kept or made, and the codes changed."""
    # Which outage each report is attached to now, by customer (a customer's reports go together).
    attached: dict[int, set[int]] = {}
    for p, row, ok in zip(positions.tolist(), rows, known):
        if ok and row.outage_id is not None:
            attached.setdefault(int(row.outage_id), set()).add(p)
    by_device = {row.device: outage_id for outage_id, row in existing.items()}
    taken: set[int] = set()
    wanted: dict[int, int] = {}  # customer position -> outage id
    changed: list[str] = []
    for prediction in predictions:
        explained = set(prediction.reports)
        outage_id = by_device.get(prediction.code)
        if outage_id is None or outage_id in taken:
            overlaps = [(len(explained & attached.get(o, set())), o) for o in existing if o not in taken]
            overlaps = [(n, o) for n, o in overlaps if n]
            outage_id = max(overlaps)[1] if overlaps else None
            if outage_id is not None:  # the reports it explained point elsewhere now: move it
                lifecycle.freeze(connection, topology, outage_id, prediction.code, PREDICTION_ACTOR)
                lifecycle.add_event(connection, outage_id, "moved", PREDICTION_ACTOR, None, "predicted", "predicted",
                                    {"from": existing[outage_id].device, "to": prediction.code,
                                     "reports": len(explained)})
                changed.append(existing[outage_id].code)
        if outage_id is None:
            outage_id = _create(connection, topology, key, prediction, settings)
            changed.append(connection.execute(text("SELECT code FROM outages WHERE id = :id"),
                                              {"id": outage_id}).scalar_one())
        taken.add(outage_id)
        for customer in explained:
            wanted[customer] = outage_id

    for outage_id, row in existing.items():
        if outage_id not in taken:
            lifecycle.add_event(connection, outage_id, "cancelled", PREDICTION_ACTOR, None, "predicted", "cancelled",
                                {"reason": "no_reports"})  # its customers sent power-restored messages
            connection.execute(text("UPDATE outages SET state = 'cancelled', customers_out = 0, updated_at = now() "
                                    "WHERE id = :id AND state = 'predicted'"), {"id": outage_id})
            changed.append(row.code)

    return wanted, taken, changed


def _create(connection: Connection, topology: Topology, key: str, prediction, settings: OutageSettings) -> int:
    """A new predicted outage for ``prediction``, its customers frozen and its ETR estimated from history."""
    data = topology.data
    started = datetime.fromtimestamp(prediction.first_at, tz=timezone.utc)
    first_customer = int(data.sp_id[prediction.reports[0]])
    parent = _parent_of(connection, first_customer)
    outage_id, code = lifecycle.new_outage(connection, "predicted", "predicted", prediction.code, "unknown",
                                           started_at=started, section_key=key, parent_id=parent)
    customers = np.array([first_customer], dtype=np.int64) if prediction.kind == "service" else None
    lifecycle.freeze(connection, topology, outage_id, prediction.code, PREDICTION_ACTOR, customers=customers)
    lifecycle.add_event(connection, outage_id, "predicted", PREDICTION_ACTOR, None, None, "predicted",
                        {"device": prediction.code, "kind": prediction.kind, "reports": len(prediction.reports),
                         "nested_in": parent})
    estimate = lifecycle.estimate_etr(connection, started, "unknown", prediction.kind, settings)
    lifecycle.write_etr(connection, outage_id, estimate.etr, "history", estimate.confidence, PREDICTION_ACTOR,
                         None, {"samples": estimate.samples, "basis": estimate.basis, "hours": estimate.hours})
    return outage_id


def _attach(connection: Connection, rows, positions: np.ndarray, known: np.ndarray, wanted: dict[int, int]) -> None:
    """Point each report at the outage that explains its customer now (NULL: none), writing only changes."""
    calls, meters = ([], []), ([], [])
    for p, row, ok in zip(positions.tolist(), rows, known):
        target = wanted.get(p) if ok else None
        if target != row.outage_id:
            ids, outages = calls if row.source == "call" else meters
            ids.append(row.id)
            outages.append(target)
    if calls[0]:
        connection.execute(text(
            "UPDATE trouble_calls t SET outage_id = d.outage FROM unnest(CAST(:ids AS bigint[]), "
            "CAST(:outages AS bigint[])) AS d(id, outage) WHERE t.id = d.id"),
            {"ids": [int(i) for i in calls[0]], "outages": calls[1]})
    if meters[0]:
        connection.execute(text(
            "UPDATE meter_events t SET outage_id = d.outage FROM unnest(CAST(:ids AS text[]), "
            "CAST(:outages AS bigint[])) AS d(id, outage) WHERE t.event_id = d.id"),
            {"ids": meters[0], "outages": meters[1]})
