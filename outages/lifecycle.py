"""The outage lifecycle: states and the transitions allowed between them, outages created by hand
or planned, moved to another device, ETRs, restoration in steps, and the timeline.

Every change appends an ``outage_events`` row (who, when, note) in the transaction of the
change. A transition is decided by the database: ``UPDATE ... WHERE state = <the state it was
read in>``, so of two dispatchers confirming and cancelling at once exactly one wins and the
other gets a ``Conflict`` naming the transitions allowed from the state the winner left.
The customers an outage affects are computed by the tracing engine over the live switch states
and frozen in ``outage_steps`` (``affected``; each restoration step a ``restored`` row), so an
outage's history stays true after the network changes.

Examples
--------
>>> allowed_from("predicted")
('confirmed', 'cancelled')
>>> allowed_from("restored")
()
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from geo.errors import Conflict, Forbidden, Invalid, NotFound, Unprocessable
from geo.i18n import _
from geo.live import note_change
from outages import notices
from outages.models import CAUSES, OPEN_STATES
from outages.prediction import CANDIDATE_KINDS
from outages.settings import DEFAULT_ETR_HOURS, OutageSettings
from topology import places, trace
from topology.cache import TopologyCache
from topology.index import Topology

__all__ = [
    "TRANSITIONS", "allowed_from", "OutageView", "OutageChange", "Estimate", "outage_by_code", "transition",
    "create_outage", "move_outage", "set_etr", "estimate_etr", "restore_step", "freeze", "add_event",
    "release_reports", "view_of", "outage_view", "customers_out", "write_etr", "new_outage",
]

# Where each state may go. Crew states go back to ``confirmed`` when the crew is released.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "predicted": ("confirmed", "cancelled"),
    "confirmed": ("crew_assigned", "restored", "cancelled"),
    "crew_assigned": ("en_route", "on_site", "confirmed", "restored", "cancelled"),
    "en_route": ("on_site", "confirmed", "restored", "cancelled"),
    "on_site": ("restored", "confirmed"),
    "restored": (),
    "cancelled": (),
}
# Only these may be asked for directly; crew_assigned comes with an assignment, confirmed from a
# crew state with a release (outages/crews.py).
DIRECT = ("confirmed", "en_route", "on_site", "restored", "cancelled")
# What may be the device of an outage: a candidate device, or one service point.
OUTAGE_DEVICE_KINDS = (*CANDIDATE_KINDS, "switch", "segment", "service")
_CREW_STATES = ("crew_assigned", "en_route", "on_site")


def allowed_from(state: str) -> tuple[str, ...]:
    """The states an outage in ``state`` may move to."""
    return TRANSITIONS[state]


@dataclass(frozen=True)
class OutageView:
    """An outage as the API shows it."""

    code: str
    state: str
    origin: str
    device: str
    device_kind: str
    feeder: str | None
    cause: str
    started_at: datetime
    customers_affected: int
    customers_out: int
    calls: int
    meter_reports: int
    etr: datetime | None
    etr_source: str | None
    etr_confidence: float | None
    crew: str | None
    parent: str | None
    momentary: bool | None
    restored_at: datetime | None
    planned_start: datetime | None
    planned_end: datetime | None
    updated_at: datetime
    lon: float | None
    lat: float | None
    allowed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class OutageChange:
    """An outage after a change, and the timeline entry the change appended."""

    outage: OutageView
    event: dict

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"outage": self.outage.as_dict(), "event": self.event}


@dataclass(frozen=True)
class Estimate:
    """An estimated time of restoration from history: the median duration of like outages."""

    etr: datetime
    hours: float
    confidence: float
    samples: int
    basis: str

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"etr": self.etr, "hours": self.hours, "confidence": self.confidence, "samples": self.samples,
                "basis": self.basis}


_VIEW_SQL = """
SELECT o.id, o.code, o.state, o.origin, o.device, o.device_kind, o.feeder, o.cause, o.started_at,
       o.customers_affected, o.customers_out, o.calls, o.meter_reports, o.etr, o.etr_source, o.etr_confidence,
       c.code AS crew, p.code AS parent, o.momentary, o.restored_at, o.planned_start, o.planned_end,
       o.updated_at, ST_X(o.geom) AS lon, ST_Y(o.geom) AS lat
  FROM outages o LEFT JOIN crews c ON c.id = o.crew_id LEFT JOIN outages p ON p.id = o.parent_id
"""


def view_of(row) -> OutageView:
    """An outage row (of ``_VIEW_SQL``) as the API shows it."""
    values = dict(row._mapping)
    values.pop("id")
    return OutageView(**values, allowed=list(TRANSITIONS[values["state"]]))


def outage_by_code(connection: Connection, code: str, lock: bool = False, zone: frozenset[str] | None = None):
    """The outage row (with ``id``) by its code; ``NotFound`` when there is none, ``Forbidden`` when
    ``zone`` (a dispatcher's feeders) is given and the outage lies outside it."""
    row = connection.execute(text(_VIEW_SQL + " WHERE o.code = :code" + (" FOR UPDATE OF o" if lock else "")),
                             {"code": code}).first()
    if row is None:
        raise NotFound(_("no outage %(code)s", code=code))
    if zone is not None and row.feeder not in zone:
        raise Forbidden(_("outage %(code)s is outside your control zone (feeders %(zone)s)", code=code,
                          zone=", ".join(sorted(zone)) or "-"))
    return row


def outage_view(connection: Connection, outage_id: int) -> OutageView:
    """The outage ``outage_id`` as the API shows it."""
    return view_of(connection.execute(text(_VIEW_SQL + " WHERE o.id = :id"), {"id": outage_id}).one())


def add_event(connection: Connection, outage_id: int, kind: str, actor: str | None, note: str | None = None,
              from_state: str | None = None, to_state: str | None = None, data: dict | None = None) -> dict:
    """Append one timeline entry; return it as the API shows it."""
    row = connection.execute(_EVENT, {
        "outage": outage_id, "kind": kind, "from_state": from_state, "to_state": to_state, "actor": actor,
        "note": note, "data": json.dumps(data, default=str) if data is not None else None}).one()
    return {"kind": kind, "from_state": from_state, "to_state": to_state, "actor": actor, "note": note,
            "data": data, "occurred_at": row.occurred_at}


_EVENT = text("INSERT INTO outage_events (outage_id, kind, from_state, to_state, actor, note, data) "
              "VALUES (:outage, :kind, :from_state, :to_state, :actor, :note, CAST(:data AS jsonb)) RETURNING occurred_at")


def _refuse(code: str, state: str, wanted: str) -> Conflict:
    allowed = list(TRANSITIONS[state])
    return Conflict(_("outage %(code)s is %(state)s and cannot go to %(wanted)s; allowed: %(allowed)s",
                      code=code, state=state, wanted=wanted, allowed=", ".join(allowed) or "-"),
                    state=state, allowed=allowed)


def _check_note(note) -> str | None:
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise Invalid(_("note must be text of at most 2,000 characters"), field="note")
    return note or None


def _move_state(connection: Connection, row, to_state: str, actor: str, note: str | None,
                extra_sets: str = "", values: dict | None = None) -> dict:
    """Move the outage of ``row`` to ``to_state`` if it is still in ``row.state``; the event appended."""
    if to_state not in TRANSITIONS[row.state]:
        raise _refuse(row.code, row.state, to_state)
    changed = connection.execute(text(
        f"UPDATE outages SET state = :to, updated_at = now(){extra_sets} WHERE id = :id AND state = :from "
        "RETURNING id"), {"to": to_state, "id": row.id, "from": row.state, **(values or {})}).first()
    if changed is None:  # another request moved it first: refuse from the state it left
        now = connection.execute(text("SELECT state FROM outages WHERE id = :id"), {"id": row.id}).scalar_one()
        raise _refuse(row.code, now, to_state)
    return add_event(connection, row.id, to_state, actor, note, row.state, to_state)


def release_reports(connection: Connection, outage_id: int) -> None:
    """Clear the reports of an outage that ended: they no longer ask for a prediction."""
    for table in ("trouble_calls", "meter_events"):
        connection.execute(text(f"UPDATE {table} SET cleared_at = now() WHERE outage_id = :id AND cleared_at IS NULL"),
                           {"id": outage_id})


def _finish(connection: Connection, row, to_state: str, actor: str, note: str | None,
            settings: OutageSettings) -> dict:
    """Restore (the customers still out, as a last step) or cancel the outage, releasing its crew and reports."""
    if to_state == "restored":
        remaining = customers_out(connection, row.id)
        now = connection.execute(text("SELECT now()")).scalar_one()
        momentary = (now - row.started_at) < timedelta(minutes=settings.momentary_minutes)
        event = _move_state(connection, row, "restored", actor, note,
                            ", restored_at = now(), customers_out = 0, momentary = :momentary",
                            {"momentary": bool(momentary)})
        if len(remaining):
            _insert_step(connection, row.id, "restored", remaining, actor, note)
        if row.state != "predicted":  # nobody was told of a prediction: nobody is told it ended
            notices.on_restored(connection, row.id, remaining, True, settings)
    else:
        event = _move_state(connection, row, "cancelled", actor, note, ", customers_out = 0")
    from outages.crews import release_crew_of  # crews depend on the lifecycle, not the reverse

    release_crew_of(connection, row.id, actor)
    release_reports(connection, row.id)
    return event


def transition(session: Session, code: str, to_state: str, actor: str, note: str | None,
               settings: OutageSettings, zone: frozenset[str] | None = None) -> OutageChange:
    """Move an outage to ``to_state`` (confirmed, en_route, on_site, restored or cancelled).

    Raises ``Conflict`` (409) when the outage's state does not allow it, naming the allowed ones.
    """
    if to_state not in DIRECT:
        raise Invalid(_("to must be one of %(states)s; a crew is assigned with /assign and released with /release",
                        states=", ".join(DIRECT)), field="to")
    note = _check_note(note)
    with session.begin():
        connection = session.connection()
        row = outage_by_code(connection, code, lock=True, zone=zone)
        if to_state in ("restored", "cancelled"):
            event = _finish(connection, row, to_state, actor, note, settings)
        else:
            if to_state == "confirmed" and row.state in _CREW_STATES:
                raise Conflict(_("outage %(code)s has a crew: release it with /release", code=code),
                               state=row.state, allowed=list(TRANSITIONS[row.state]))
            event = _move_state(connection, row, to_state, actor, note)
            if to_state in ("en_route", "on_site") and row.crew is not None:
                connection.execute(text("UPDATE crews SET status = :s, status_at = now() WHERE code = :c"),
                                   {"s": to_state, "c": row.crew})
                note_change(connection, "crew", row.crew)
            _tell(connection, row.id, to_state, settings)
        note_change(connection, "outage", code)
        return OutageChange(outage_view(connection, row.id), event)


def _tell(connection: Connection, outage_id: int, to_state: str, settings: OutageSettings) -> None:
    """The subscribers' messages of a move to ``to_state``: confirmed (a prediction: the
    acknowledgement) or a crew on site."""
    if to_state == "confirmed":
        notices.on_confirmed(connection, outage_id, customers_out(connection, outage_id), settings)
    elif to_state == "on_site":
        notices.on_site(connection, outage_id, customers_out(connection, outage_id), settings)


# -- customers ---------------------------------------------------------------------------------------
def _device_customers(topology: Topology, device: str) -> tuple[np.ndarray, str, str | None]:
    """Service point ids out when ``device`` fails (in the live state), its kind, and its feeder."""
    data = topology.data
    found = data.find("service_points", [device])
    if found[0] >= 0:
        position = int(found[0])
        node = int(data.sp_node[position])
        feeder = data.feeder_code[data.node_feeder[node]] if data.node_feeder[node] >= 0 else None
        return np.array([data.sp_id[position]], dtype=np.int64), "service", feeder
    element, loss = trace.downstream(topology, device)  # NotFound for an unknown code
    if element.table != "edge":
        raise Unprocessable(_("an outage is at a device, a segment or one service point; %(code)s is a node",
                              code=device), field="device")
    kind = data.kind_of(element.index)
    node = int(data.edge_v[element.index])
    feeder = data.feeder_code[data.node_feeder[node]] if data.node_feeder[node] >= 0 else None
    return data.sp_id[loss.customers].astype(np.int64), kind, feeder


def _insert_step(connection: Connection, outage_id: int, kind: str, customers: np.ndarray, actor: str | None,
                 note: str | None, devices: Sequence[str] | None = None) -> int:
    """Append a frozen step; return its number."""
    return connection.execute(_STEP, {
        "outage": outage_id, "kind": kind, "customers": [int(c) for c in customers], "count": len(customers),
        "actor": actor, "note": note, "devices": list(devices) if devices else None}).scalar_one()


_STEP = text("INSERT INTO outage_steps (outage_id, number, kind, customers, customer_count, actor, note, devices) "
             "SELECT :outage, coalesce(max(number), 0) + 1, :kind, :customers, :count, :actor, :note, :devices "
             "FROM outage_steps WHERE outage_id = :outage RETURNING number")


def customers_out(connection: Connection, outage_id: int) -> np.ndarray:
    """The service point ids of the outage's latest ``affected`` step not given back by a later step."""
    rows = connection.execute(text(
        "SELECT kind, customers FROM outage_steps WHERE outage_id = :id AND number >= coalesce(("
        "SELECT max(number) FROM outage_steps WHERE outage_id = :id AND kind = 'affected'), 0) ORDER BY number"),
        {"id": outage_id}).all()
    if not rows:
        return np.zeros(0, dtype=np.int64)
    out = np.asarray(rows[0].customers, dtype=np.int64)
    restored = [np.asarray(r.customers, dtype=np.int64) for r in rows[1:]]
    return np.setdiff1d(out, np.concatenate(restored)) if restored else out


def freeze(connection: Connection, topology: Topology, outage_id: int, device: str, actor: str | None,
           note: str | None = None, customers: np.ndarray | None = None) -> int:
    """Freeze the customers ``device`` cuts off now as the outage's ``affected`` step; place the
    outage at the device with the outline of its customers. Return how many customers."""
    found, kind, feeder = _device_customers(topology, device)
    customers = found if customers is None else customers
    _insert_step(connection, outage_id, "affected", customers, actor, note)
    where, area = places.place_and_outline(connection, device, customers)
    connection.execute(_PLACED, {
        "device": device, "kind": kind, "feeder": feeder, "n": len(customers), "lon": where[0] if where else None,
        "lat": where[1] if where else None, "area": area, "id": outage_id})
    return len(customers)


_PLACED = text(
    "UPDATE outages SET device = :device, device_kind = :kind, feeder = :feeder, customers_affected = :n, "
    "customers_out = :n, geom = CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL "
    "ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, area = ST_GeomFromEWKT(:area), updated_at = now() "
    "WHERE id = :id")


def new_outage(connection: Connection, state: str, origin: str, device: str, cause: str,
               started_at: datetime | None = None, section_key: str | None = None, parent_id: int | None = None,
               planned: tuple[datetime, datetime] | None = None) -> tuple[int, str]:
    """Insert an outage row (its device and customers are set by ``freeze``); return its id and code."""
    row = connection.execute(text(
        "WITH n AS (SELECT nextval(pg_get_serial_sequence('outages', 'id')) AS id) "
        "INSERT INTO outages (id, code, state, origin, device, device_kind, cause, started_at, last_report_at, "
        "section_key, parent_id, planned_start, planned_end) "
        "SELECT n.id, 'OUT-' || lpad(n.id::text, 6, '0'), :state, :origin, :device, 'service', :cause, "
        "coalesce(:started, now()), :started, :key, :parent, :pstart, :pend FROM n RETURNING id, code"),
        {"state": state, "origin": origin, "device": device, "cause": cause, "started": started_at,
         "key": section_key, "parent": parent_id, "pstart": planned[0] if planned else None,
         "pend": planned[1] if planned else None}).one()
    return int(row.id), row.code


def predicted_outage(connection: Connection, topology: Topology, device: str, customers: np.ndarray | None,
                     started_at: datetime, section_key: str, estimate: Estimate, actor: str, data: dict) -> tuple[int, str]:
    """A new predicted outage at ``device`` in two statements (a storm makes hundreds): its place and
    outline, then the outage with its frozen customers, its timeline's first two entries and its
    ETR, nested in the confirmed outage whose customers include its first (if any)."""
    found, kind, feeder = _device_customers(topology, device)
    customers = found if customers is None else customers
    where, area = places.place_and_outline(connection, device, customers)
    etr = {"etr": estimate.etr.isoformat(), "before": None, "source": "history", "confidence": estimate.confidence,
           "samples": estimate.samples, "basis": estimate.basis, "hours": estimate.hours}
    row = connection.execute(_PREDICTED_OUTAGE, {
        "device": device, "kind": kind, "feeder": feeder, "started": started_at, "key": section_key,
        "n": len(customers), "customers": [int(c) for c in customers], "first": int(customers[0]) if len(customers) else None,
        "lon": where[0] if where else None, "lat": where[1] if where else None, "area": area,
        "etr": estimate.etr, "confidence": estimate.confidence, "actor": actor,
        "predicted": json.dumps(data), "etr_data": json.dumps(etr)}).one()
    return int(row.id), row.code


_PREDICTED_OUTAGE = text("""
WITH n AS (SELECT nextval(pg_get_serial_sequence('outages', 'id')) AS id),
parent AS (SELECT o.id FROM outages o JOIN outage_steps s ON s.outage_id = o.id AND s.kind = 'affected'
            WHERE o.state IN ('confirmed', 'crew_assigned', 'en_route', 'on_site')
              AND CAST(:first AS bigint) = ANY(s.customers) ORDER BY o.started_at DESC LIMIT 1),
made AS (
    INSERT INTO outages (id, code, state, origin, device, device_kind, feeder, cause, started_at, last_report_at,
                         section_key, parent_id, customers_affected, customers_out, geom, area, etr, etr_source,
                         etr_confidence)
    SELECT n.id, 'OUT-' || lpad(n.id::text, 6, '0'), 'predicted', 'predicted', :device, :kind, :feeder, 'unknown',
           :started, :started, :key, (SELECT id FROM parent), :n, :n,
           CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END,
           ST_GeomFromEWKT(:area), :etr, 'history', :confidence
      FROM n RETURNING id, code, parent_id),
step AS (
    INSERT INTO outage_steps (outage_id, number, kind, customers, customer_count, actor)
    SELECT id, 1, 'affected', CAST(:customers AS bigint[]), :n, :actor FROM made),
events AS (
    INSERT INTO outage_events (outage_id, kind, from_state, to_state, actor, data)
    SELECT id, 'predicted', NULL, 'predicted', :actor,
           CAST(:predicted AS jsonb) || jsonb_build_object('nested_in', parent_id) FROM made
    UNION ALL
    SELECT id, 'etr', NULL, NULL, :actor, CAST(:etr_data AS jsonb) FROM made)
SELECT id, code FROM made
""")


def _check_cause(cause) -> str:
    if cause is None:
        return "unknown"
    if cause not in CAUSES:
        raise Invalid(_("cause must be one of %(causes)s; got %(cause)r", causes=", ".join(CAUSES), cause=cause),
                      field="cause")
    return cause


def create_outage(session: Session, cache: TopologyCache, device: str, actor: str, cause: str | None = None,
                  note: str | None = None, planned: tuple[datetime, datetime] | None = None,
                  etr: datetime | None = None, settings: OutageSettings | None = None) -> OutageChange:
    """An outage a dispatcher creates at a device (confirmed at once), or a planned one with its window.

    The customers are those the device cuts off in the live state, frozen now. Their subscribers
    hear of it at once (a planned one: when its start is nearer than the lead time).
    """
    settings = OutageSettings() if settings is None else settings
    cause = "planned" if planned and cause is None else _check_cause(cause)
    note = _check_note(note)
    if planned is not None and planned[1] <= planned[0]:
        raise Invalid(_("a planned outage's end must come after its start"), field="planned_end")
    with session.begin():
        connection = session.connection()
        topology = cache.get(connection)
        outage_id, code = new_outage(connection, "confirmed", "planned" if planned else "manual", device, cause,
                                     started_at=planned[0] if planned else None, planned=planned)
        freeze(connection, topology, outage_id, device, actor, note)
        event = add_event(connection, outage_id, "created", actor, note, None, "confirmed",
                          {"device": device, "origin": "planned" if planned else "manual"})
        if etr is not None:
            write_etr(connection, outage_id, etr, "dispatcher", None, actor, None)
        out = customers_out(connection, outage_id)
        if planned:
            notices.on_planned(connection, outage_id, out, settings, connection.execute(text("SELECT now()")).scalar_one())
        else:
            notices.on_confirmed(connection, outage_id, out, settings)
        note_change(connection, "outage", code)
        return OutageChange(outage_view(connection, outage_id), event)


def move_outage(session: Session, cache: TopologyCache, code: str, device: str, actor: str,
                note: str | None = None, zone: frozenset[str] | None = None,
                settings: OutageSettings | None = None) -> OutageChange:
    """Place an open outage at another device: its customers are traced and frozen again (the
    subscribers of those newly out of a confirmed outage get its acknowledgement)."""
    settings = OutageSettings() if settings is None else settings
    note = _check_note(note)
    with session.begin():
        connection = session.connection()
        topology = cache.get(connection)
        row = outage_by_code(connection, code, lock=True, zone=zone)
        if row.state not in OPEN_STATES:
            raise Conflict(_("outage %(code)s is %(state)s: only an open outage can be moved", code=code,
                             state=row.state), state=row.state, allowed=[])
        if device == row.device:
            raise Conflict(_("outage %(code)s is at %(device)s already", code=code, device=device))
        count = freeze(connection, topology, row.id, device, actor, note)
        event = add_event(connection, row.id, "moved", actor, note, row.state, row.state,
                          {"from": row.device, "to": device, "customers": count})
        if row.state != "predicted" and row.origin != "planned":
            notices.on_confirmed(connection, row.id, customers_out(connection, row.id), settings)
        note_change(connection, "outage", code)
        return OutageChange(outage_view(connection, row.id), event)


# -- estimated time of restoration -------------------------------------------------------------------
def estimate_etr(connection: Connection, started_at: datetime, cause: str, kind: str,
                 settings: OutageSettings) -> Estimate:
    """The ETR from history: the median duration of restored, sustained outages of the same cause and
    device kind over the last year (then of the kind alone), with a confidence that grows with the
    number of such outages; without history a default per kind at confidence 0.1."""
    key = (cause, kind, settings.etr_history_days)
    cached = _ESTIMATES.get(key)
    if cached is not None and cached[0] > time.monotonic():
        hours, confidence, samples, basis = cached[1]
        return Estimate(started_at + timedelta(hours=hours), hours, confidence, samples, basis)
    found = _estimate_hours(connection, cause, kind, settings)
    _ESTIMATES[key] = (time.monotonic() + ESTIMATE_SECONDS, found)
    hours, confidence, samples, basis = found
    return Estimate(started_at + timedelta(hours=hours), hours, confidence, samples, basis)


# History changes by the hour, predictions by the second: each process keeps an estimate a while.
ESTIMATE_SECONDS = 60.0
_ESTIMATES: dict[tuple, tuple[float, tuple]] = {}


def _estimate_hours(connection: Connection, cause: str, kind: str, settings: OutageSettings) -> tuple:
    """(hours, confidence, samples, basis) of ``estimate_etr``, from the database."""
    since = datetime.now(timezone.utc) - timedelta(days=settings.etr_history_days)
    for basis, where in (("cause and device kind", "cause = :cause AND device_kind = :kind"),
                         ("device kind", "device_kind = :kind")):
        row = connection.execute(text(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM restored_at - started_at)), "
            "count(*) FROM outages WHERE state = 'restored' AND NOT coalesce(momentary, false) AND origin <> 'planned' "
            f"AND restored_at >= :since AND {where}"), {"cause": cause, "kind": kind, "since": since}).one()
        if row[1] >= 3:
            return round(float(row[0]) / 3600, 2), round(min(0.95, row[1] / (row[1] + 10)), 2), int(row[1]), basis
    return DEFAULT_ETR_HOURS.get(kind, 3.0), 0.1, 0, "default"


def write_etr(connection: Connection, outage_id: int, etr: datetime, source: str, confidence: float | None,
              actor: str | None, note: str | None, data: dict | None = None) -> dict:
    """Set the outage's ETR and append the change (with the ETR it replaces) to its timeline."""
    before = connection.execute(text(
        "UPDATE outages o SET etr = :etr, etr_source = :source, etr_confidence = :confidence, updated_at = now() "
        "FROM (SELECT etr FROM outages WHERE id = :id FOR UPDATE) AS old WHERE o.id = :id RETURNING old.etr"),
        {"etr": etr, "source": source, "confidence": confidence, "id": outage_id}).scalar_one()
    return add_event(connection, outage_id, "etr", actor, note, None, None,
                     {"etr": etr.isoformat(), "before": before.isoformat() if before else None, "source": source,
                      "confidence": confidence, **(data or {})})


def set_etr(session: Session, code: str, etr: datetime | None, actor: str, note: str | None,
            settings: OutageSettings, zone: frozenset[str] | None = None) -> OutageChange:
    """Set the ETR (``etr`` given: the dispatcher's), or estimate it from history (``etr`` None)."""
    note = _check_note(note)
    with session.begin():
        connection = session.connection()
        row = outage_by_code(connection, code, lock=True, zone=zone)
        if row.state not in OPEN_STATES:
            raise Conflict(_("outage %(code)s is %(state)s: its ETR can no longer change", code=code,
                             state=row.state), state=row.state, allowed=[])
        if etr is None:
            estimate = estimate_etr(connection, row.started_at, row.cause, row.device_kind, settings)
            event = write_etr(connection, row.id, estimate.etr, "history", estimate.confidence, actor, note,
                               {"samples": estimate.samples, "basis": estimate.basis, "hours": estimate.hours})
        else:
            now = connection.execute(text("SELECT now()")).scalar_one()
            if etr <= now - timedelta(minutes=1):
                raise Unprocessable(_("the ETR must not lie in the past"), field="etr")
            event = write_etr(connection, row.id, etr, "dispatcher", None, actor, note)
        notices.on_etr(connection, row.id, customers_out(connection, row.id), event["data"]["before"] is None, settings)
        note_change(connection, "outage", code)
        return OutageChange(outage_view(connection, row.id), event)


# -- restoration in steps ----------------------------------------------------------------------------
def restore_step(session: Session, cache: TopologyCache, code: str, actor: str, settings: OutageSettings,
                 device: str | None = None, customers: Sequence[str] | None = None,
                 note: str | None = None, zone: frozenset[str] | None = None,
                 crew_account: int | None = None) -> OutageChange:
    """Give back part of an outage's customers: those below ``device`` (traced in the live state) or
    the listed service points; the customers still out stay out. When none is left the outage is
    restored. ``Unprocessable`` when the step restores nobody who is out. With ``crew_account`` (a
    crew restoring) the outage must be that crew's assignment."""
    note = _check_note(note)
    if (device is None) == (customers is None):
        raise Invalid(_("give either device (the customers below it come back) or customers (service point codes)"))
    with session.begin():
        connection = session.connection()
        row = outage_by_code(connection, code, lock=True, zone=zone)
        if crew_account is not None:
            mine = connection.execute(text("SELECT code FROM crews WHERE account_id = :a"), {"a": crew_account}).scalar()
            if mine is None or mine != row.crew:
                raise Forbidden(_("a crew restores only the outage it is assigned to"))
        if row.state not in OPEN_STATES or row.state == "predicted":
            raise Conflict(_("outage %(code)s is %(state)s: only a confirmed outage is restored in steps",
                             code=code, state=row.state), state=row.state, allowed=list(TRANSITIONS[row.state]))
        out = customers_out(connection, row.id)
        topology = cache.get(connection)
        data = topology.data
        if device is not None:
            back, _kind, _feeder = _device_customers(topology, device)
        else:
            positions = data.find("service_points", list(customers))
            unknown = [c for c, p in zip(customers, positions) if p < 0]
            if unknown:
                raise NotFound(_("unknown service point(s): %(codes)s", codes=", ".join(unknown[:20])), codes=unknown[:20])
            back = data.sp_id[positions].astype(np.int64)
        back = np.intersect1d(out, back)
        if not len(back):
            raise Unprocessable(_("none of these customers is out in outage %(code)s", code=code))
        if len(back) == len(out):
            event = _finish(connection, row, "restored", actor, note, settings)
        else:
            number = _insert_step(connection, row.id, "restored", back, actor, note, [device] if device else None)
            connection.execute(text("UPDATE outages SET customers_out = :n, updated_at = now() WHERE id = :id"),
                               {"n": len(out) - len(back), "id": row.id})
            event = add_event(connection, row.id, "step", actor, note, row.state, row.state,
                              {"step": number, "restored": len(back), "still_out": len(out) - len(back),
                               "device": device})
            notices.on_restored(connection, row.id, back, False, settings)
        note_change(connection, "outage", code)
        return OutageChange(outage_view(connection, row.id), event)

