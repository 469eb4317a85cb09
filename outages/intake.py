"""Intake: trouble calls from customers and smart-meter events from the meter head-end.

A call names its service point by account number, by phone, or by a point on the map snapped to
the nearest service point. A report whose customer is out in a confirmed outage joins it; any
other is stored, then settled into the predicted outages of its section (outages/settle.py) by
this request or by the one settling that section at the moment.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np
import phonenumbers
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from geo.errors import Conflict, Invalid, NotFound, Unprocessable
from geo.i18n import _
from geo.live import maybe_prune, note_change, noted
from geo.requests import instant
from outages.settings import OutageSettings
from outages.settle import confirmed_outage_of, confirmed_outages, section_keys, settle_pending
from outages.settler import CHANNEL, notify
from topology import places
from topology.cache import TopologyCache
from topology.index import Topology

__all__ = ["CallRequest", "CallReceipt", "parse_call", "file_call", "call_status", "MeterEventIn",
           "MeterReceipt", "parse_meter_events", "record_meter_events", "MAX_METER_EVENTS"]

MAX_METER_EVENTS = 10_000
MAX_NOTE = 1000
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out on the phone
_ACCOUNT = re.compile(r"^[0-9A-Za-z-]{1,40}$")
_CALL_FIELDS = {"account", "phone", "lon", "lat", "wire_down", "partial_power", "flickering", "note"}
_FLAGS = ("wire_down", "partial_power", "flickering")


@dataclass(frozen=True)
class CallRequest:
    """A checked call: exactly one way to find the service point, and the details."""

    way: str
    account: str | None = None
    phone: str | None = None
    point: tuple[float, float] | None = None
    wire_down: bool = False
    partial_power: bool = False
    flickering: bool = False
    note: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class CallReceipt:
    """What the caller is told: a reference to follow, and the outage the call joined (if known yet)."""

    reference: str
    received_at: datetime
    outage: str | None
    state: str | None
    etr: datetime | None
    customers_affected: int | None

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _phone(value: str) -> str:
    """``value`` in E.164, or Invalid: the utility's numbers are German unless written with +."""
    try:
        number = phonenumbers.parse(value, "DE")
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise Invalid(_("phone %(phone)r is not a phone number we can read; write it as +49 30 1234567",
                        phone=value), field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_call(body: Any, language: str | None = None) -> CallRequest:
    """A ``CallRequest`` from a JSON body; Invalid names the field at fault."""
    if not isinstance(body, dict):
        raise Invalid(_('the body must be a JSON object, e.g. {"account": "1234567890", "wire_down": false}'))
    unknown = sorted(set(body) - _CALL_FIELDS)
    if unknown:
        raise Invalid(_("unknown field(s): %(unknown)s", unknown=", ".join(unknown)))
    ways = [way for way, present in (("account", "account" in body), ("phone", "phone" in body),
                                     ("point", "lon" in body or "lat" in body)) if present]
    if len(ways) != 1:
        raise Invalid(_("give exactly one of: account (the account number), phone, or lon and lat (a point on the map)"))
    flags = {}
    for flag in _FLAGS:
        value = body.get(flag, False)
        if not isinstance(value, bool):
            raise Invalid(_("%(field)s must be true or false", field=flag), field=flag)
        flags[flag] = value
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise Invalid(_("note must be text of at most %(max)s characters", max=MAX_NOTE), field="note")
    way = ways[0]
    if way == "account":
        account = body["account"]
        if not isinstance(account, str) or not _ACCOUNT.match(account.strip()):
            raise Invalid(_("account must be the account number on the bill (digits)"), field="account")
        return CallRequest("account", account=account.strip(), note=note or None, language=language, **flags)
    if way == "phone":
        if not isinstance(body["phone"], str) or len(body["phone"]) > 40:
            raise Invalid(_("phone must be text, e.g. +49 30 1234567"), field="phone")
        return CallRequest("phone", phone=_phone(body["phone"]), note=note or None, language=language, **flags)
    lon, lat = body.get("lon"), body.get("lat")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lon, lat)) \
            or not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise Invalid(_("lon and lat must be numbers: longitude -180..180 and latitude -90..90"), field="lon")
    return CallRequest("point", point=(float(lon), float(lat)), note=note or None, language=language, **flags)


def _find_customer(connection: Connection, request: CallRequest) -> places.CustomerRef:
    """The service point a call is about; NotFound, or Conflict when a phone names several."""
    if request.way == "account":
        found = places.by_account(connection, request.account)
        if found is None:
            raise NotFound(_("no customer has account number %(account)s; check the number on your bill",
                             account=request.account), field="account")
        return found
    if request.way == "phone":
        found = places.by_phone(connection, request.phone)
        if not found:
            raise NotFound(_("no customer has the phone number %(phone)s; give your account number instead",
                             phone=request.phone), field="phone")
        if len(found) > 1:
            raise Conflict(_("several customers share the phone number %(phone)s; give your account number instead",
                             phone=request.phone), field="phone")
        return found[0]
    found = places.nearest_customer(connection, *request.point)
    if found is None:
        raise Unprocessable(_("no customer's connection lies within %(metres)s m of that point; "
                              "give your account number instead", metres=int(places.SNAP_WITHIN_M)), field="lon")
    return found


def _reference() -> str:
    return "R" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(9))


def _position(topology: Topology, service_point_id: int) -> int:
    data = topology.data
    position = int(np.searchsorted(data.sp_id, service_point_id))
    if position >= len(data.sp_id) or data.sp_id[position] != service_point_id:
        raise Conflict(_("the network is being loaded again; try in a minute"))
    return position


def _outage_summary(connection: Connection, outage_id: int | None):
    if outage_id is None:
        return None
    return connection.execute(text("SELECT code, state, etr, customers_affected FROM outages WHERE id = :id"),
                              {"id": outage_id}).one()


def file_call(session: Session, cache: TopologyCache, request: CallRequest, settings: OutageSettings,
              settle: Callable[[Connection, list[str]], None] | None = None) -> CallReceipt:
    """Store a call and join it to the outage its customer is out in (a confirmed one, or the
    predicted one its earlier report is in); any other call waits to be settled into the
    predicted outages of its feeder (outages/settle.py). ``settle(connection, keys)``: hands the
    feeder to the settler in the call's transaction (``outages.settler.notify``) and answers at
    once, naming the predicted outage the customer lies under if there is one yet; None: this
    request settles (unless another is settling the feeder, which takes this call too) and the
    receipt says where the call went."""
    in_statement = settle is notify  # the settler's notice goes with the call's own statement
    with session.begin():
        connection = session.connection()
        customer = _find_customer(connection, request)
        topology = cache.get(connection, customer.topology_version)
        position = np.array([_position(topology, customer.id)])
        key = section_keys(topology, position)[0]
        opened = confirmed_outages(connection, topology, also_predicted=key)
        confirmed = int(confirmed_outage_of(topology, [o for o in opened if not o.predicted], position)[0])
        stored = connection.execute(_INSERT_CALL, {
            "reference": _reference(), "sp": customer.id, "way": request.way, "wire_down": request.wire_down,
            "partial": request.partial_power, "flickering": request.flickering, "note": request.note,
            "language": request.language, "key": key, "confirmed": confirmed or None, "lon": customer.lon,
            "lat": customer.lat, "customer": customer.code, "notify": in_statement, "channel": CHANNEL}).one()
        maybe_prune(connection)
        joined = stored.code is not None
        if not joined and settle is not None:
            if not in_statement:
                settle(connection, [key])
            # Where the call will most likely go: the predicted outage the customer lies under now.
            under = int(confirmed_outage_of(topology, [o for o in opened if o.predicted], position)[0]) or None
            outage = _outage_summary(connection, under)
    if joined:
        return CallReceipt(*stored[1:7])
    if settle is not None:
        return CallReceipt(stored.reference, stored.received_at, *(outage or (None, None, None, None)))
    settle_pending(session, cache, [key], settings, topology)
    with session.begin():
        return CallReceipt(*session.connection().execute(_RECEIPT, {"id": stored.id}).one())


# The call, the outage it joins counting it, the live maps' note and the settler's notice, in one
# statement (a storm is thousands of calls, each three round trips shorter): the confirmed outage its customer is out in (``:confirmed``), else the
# predicted outage of the customer's latest report if that report says "out". A customer's reports
# count once in the prediction (from the first since power came back), so a second call changes no
# prediction and needs no settling.
_RECEIPT = text("SELECT t.reference, t.received_at, o.code, o.state, o.etr, o.customers_affected "
               "FROM trouble_calls t LEFT JOIN outages o ON o.id = t.outage_id WHERE t.id = :id")
# Statements a call runs are parsed once (text() parses its bind parameters with a regular expression).
_INSERT_CALL = text("""
WITH latest AS (
    SELECT r.outage_id, r.out FROM (
        SELECT outage_id, received_at AS at, true AS out FROM trouble_calls
         WHERE service_point_id = :sp AND cleared_at IS NULL AND settled_at IS NOT NULL
        UNION ALL
        SELECT outage_id, occurred_at, kind = 'last_gasp' FROM meter_events
         WHERE service_point_id = :sp AND cleared_at IS NULL AND settled_at IS NOT NULL
    ) AS r ORDER BY r.at DESC LIMIT 1),
target AS (
    SELECT coalesce(CAST(:confirmed AS bigint),
                    (SELECT o.id FROM latest JOIN outages o ON o.id = latest.outage_id
                      WHERE latest.out AND o.state = 'predicted')) AS id),
joined AS (
    UPDATE outages SET calls = calls + 1, last_report_at = now(), updated_at = now()
     WHERE id = (SELECT id FROM target) RETURNING code, state, etr, customers_affected),
call AS (
    INSERT INTO trouble_calls (reference, service_point_id, way, wire_down, partial_power, flickering, note,
                               language, section_key, outage_id, settled_at, geom)
    SELECT :reference, :sp, :way, :wire_down, :partial, :flickering, :note, :language, :key, target.id,
           CASE WHEN target.id IS NULL THEN NULL ELSE now() END, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
      FROM target
    RETURNING id, reference, received_at),
""" + noted("SELECT 'call', CAST(:customer AS text) UNION ALL SELECT 'outage', code FROM joined") + """,
-- the settler's notice (delivered at commit) when the call waits to be settled
notified AS (SELECT pg_notify(:channel, CAST(:key AS text)) WHERE :notify AND NOT EXISTS (SELECT 1 FROM joined))
SELECT call.id, call.reference, call.received_at, joined.code, joined.state, joined.etr, joined.customers_affected,
       (SELECT count(*) FROM notified) AS notices
  FROM call LEFT JOIN joined ON true
""")


@dataclass(frozen=True)
class CallStatus:
    """What the holder of a call's reference may know: the outage's progress, nothing personal."""

    reference: str
    received_at: datetime
    outage: str | None
    state: str | None
    cause: str | None
    etr: datetime | None
    etr_source: str | None
    crew_status: str | None
    updated_at: datetime | None

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def call_status(connection: Connection, reference: str) -> CallStatus:
    """The progress of the outage a call joined; NotFound for an unknown reference."""
    row = connection.execute(text(
        "SELECT c.reference, c.received_at, o.code, o.state, o.cause, o.etr, o.etr_source, w.status AS crew_status, "
        "o.updated_at FROM trouble_calls c LEFT JOIN outages o ON o.id = c.outage_id "
        "LEFT JOIN crews w ON w.id = o.crew_id WHERE c.reference = :reference"), {"reference": reference}).first()
    if row is None:
        raise NotFound(_("no call has the reference %(reference)s", reference=reference))
    return CallStatus(*row)


# -- meter events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeterEventIn:
    """One checked meter event."""

    event_id: str
    meter: str
    kind: str
    at: datetime


@dataclass(frozen=True)
class MeterReceipt:
    """What a batch did: new events stored, duplicates ignored (idempotent by id), meters unknown,
    events joined to confirmed outages, and the outages its settling changed (none when the
    server settles after the answer, as it does: the dispatcher's map shows them a moment later)."""

    accepted: int
    duplicates: int
    unknown_meters: list[str] = field(default_factory=list)
    joined: int = 0
    outages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def parse_meter_events(body: Any) -> list[MeterEventIn]:
    """``{"events": [{"id", "meter", "kind", "at"}, ...]}`` checked; Invalid names the first event at fault."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list) or set(body) - {"events"}:
        raise Invalid(_('the body must be {"events": [{"id": ..., "meter": ..., "kind": "last_gasp", "at": ...}]}'))
    events = body["events"]
    if not 1 <= len(events) <= MAX_METER_EVENTS:
        raise Invalid(_("a batch holds 1 to %(max)s events; got %(count)s", max=MAX_METER_EVENTS, count=len(events)),
                      field="events")
    parsed = []
    for number, event in enumerate(events):
        where = _("event %(number)s", number=number)
        if not isinstance(event, dict) or set(event) - {"id", "meter", "kind", "at"}:
            raise Invalid(_("%(where)s must be an object with id, meter, kind and at", where=where), field="events")
        event_id, meter, kind = event.get("id"), event.get("meter"), event.get("kind")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 120:
            raise Invalid(_("%(where)s: id must be text of 1 to 120 characters", where=where), field="id")
        if not isinstance(meter, str) or not 0 < len(meter) <= 120:
            raise Invalid(_("%(where)s: meter must be the service point's code", where=where), field="meter")
        if kind not in ("last_gasp", "power_restored"):
            raise Invalid(_("%(where)s: kind must be last_gasp or power_restored", where=where), field="kind")
        parsed.append(MeterEventIn(event_id, meter, kind, instant(event.get("at"), "at", where)))
    return parsed


def record_meter_events(session: Session, cache: TopologyCache, events: list[MeterEventIn],
                        settings: OutageSettings,
                        settle: Callable[[Connection, list[str]], None] | None = None) -> MeterReceipt:
    """Store a batch (each event id once), join last gasps to confirmed outages, and settle the rest
    per section: by this request, or (``settle``) by the process's settler after the answer."""
    skew = datetime.now(timezone.utc) + timedelta(minutes=5)
    with session.begin():
        connection = session.connection()
        topology = cache.get(connection)
        data = topology.data
        positions = data.find("service_points", [event.meter for event in events])
        unknown = sorted({event.meter for event, p in zip(events, positions) if p < 0})
        kept = [(event, int(p)) for event, p in zip(events, positions) if p >= 0]
        if not kept:
            return MeterReceipt(0, 0, unknown[:100])
        customers = np.array([p for _, p in kept], dtype=np.int64)
        keys = section_keys(topology, customers)
        joined_ids = confirmed_outage_of(topology, confirmed_outages(connection, topology), customers)
        # An event in a confirmed outage joins it (a power-restored one too: it is recorded there); the
        # others wait to be settled.
        inserted = connection.execute(text(
            "INSERT INTO meter_events (event_id, service_point_id, kind, occurred_at, section_key, outage_id, "
            "settled_at) SELECT d.*, CASE WHEN d.outage IS NULL THEN NULL ELSE now() END "
            "FROM unnest(CAST(:ids AS text[]), CAST(:sps AS bigint[]), CAST(:kinds AS text[]), "
            "CAST(:ats AS timestamptz[]), CAST(:keys AS text[]), CAST(:outages AS bigint[])) "
            "AS d(id, sp, kind, at, key, outage) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id, section_key, outage_id"),
            {"ids": [e.event_id for e, _ in kept], "sps": data.sp_id[customers].astype(np.int64).tolist(),
             "kinds": [e.kind for e, _ in kept], "ats": [min(e.at, skew) for e, _ in kept], "keys": keys,
             "outages": [int(o) or None for o in joined_ids.tolist()]}).all()
        fresh_keys = sorted({row.section_key for row in inserted if row.outage_id is None})
        joined = sorted({row.outage_id for row in inserted if row.outage_id is not None})
        if joined:
            connection.execute(text(
                "UPDATE outages o SET meter_reports = (SELECT count(*) FROM meter_events m WHERE m.outage_id = o.id "
                "AND m.kind = 'last_gasp'), last_report_at = now(), updated_at = now() WHERE o.id = ANY(:ids)"),
                {"ids": joined})
        if inserted:
            note_change(connection, "meter", None)
        if settle is not None:
            settle(connection, fresh_keys)
    if settle is not None:
        changed = []
    else:
        changed = settle_pending(session, cache, fresh_keys, settings, topology)
    return MeterReceipt(len(inserted), len(kept) - len(inserted), unknown[:100],
                        sum(1 for row in inserted if row.outage_id is not None), changed)
