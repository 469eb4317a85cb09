"""Repair crews: who they are, where they are, their status, and their assignments to outages.

A crew signs in with an account of role crew; its phone sends positions in batches (stored once
per crew and timestamp, so a batch sent twice changes nothing) and statuses. A dispatcher
assigns the nearest available crew to an outage, releases it, or sends another. "One crew per
outage and one outage per crew" is decided by the database: two partial unique indexes on the
open assignments, so two dispatchers sending the same crew at once get one success and one
``Conflict``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo.accounts import account_id_of, account_names
from geo.auth import Principal
from geo.errors import Conflict, Forbidden, Invalid, NotFound, Unprocessable
from geo.i18n import _
from geo.live import note_change
from geo.requests import instant
from outages import lifecycle

__all__ = ["CrewView", "NearCrew", "Position", "crew_views", "crew_of_account", "parse_positions", "record_positions",
           "set_status", "nearest_crews", "assign", "release", "release_crew_of", "add_note", "create_crew",
           "MAX_POSITIONS", "TRAVEL_KMH"]

MAX_POSITIONS = 1000
TRAVEL_KMH = 30.0  # a repair van's average speed through a city, for the ETA to an outage
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
# What a crew may say about itself from its phone; assigned comes with an assignment.
CREW_SETS = ("available", "en_route", "on_site", "off_duty")


@dataclass(frozen=True)
class CrewView:
    """A crew as a dispatcher sees it."""

    code: str
    name: str
    vehicle: str | None
    depot: str | None
    skills: list[str]
    status: str
    status_at: datetime
    members: list[dict]
    lon: float | None
    lat: float | None
    position_at: datetime | None
    outage: str | None
    account: str | None = None

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


_CREW_SQL = """
SELECT w.id, w.code, w.name, w.vehicle, w.depot, w.skills, w.status, w.status_at,
       coalesce((SELECT json_agg(json_build_object('name', m.name, 'phone', m.phone, 'duty', m.duty) ORDER BY m.id)
                   FROM crew_members m WHERE m.crew_id = w.id), '[]') AS members,
       ST_X(coalesce(w.geom, w.depot_geom)) AS lon, ST_Y(coalesce(w.geom, w.depot_geom)) AS lat, w.position_at,
       (SELECT o.code FROM crew_assignments a JOIN outages o ON o.id = a.outage_id
         WHERE a.crew_id = w.id AND a.released_at IS NULL) AS outage,
       w.account_id AS account
  FROM crews w
"""


def _views(connection: Connection, rows) -> list[CrewView]:
    """Crew rows as views, each with its sign-in account's name."""
    names = account_names(connection, [row.account for row in rows])
    views = []
    for row in rows:
        values = dict(row._mapping)
        values.pop("id")
        values["account"] = names.get(values["account"])
        views.append(CrewView(**values))
    return views


def _view(connection: Connection, row) -> CrewView:
    return _views(connection, [row])[0]


def crew_views(connection: Connection) -> list[CrewView]:
    """Every crew, by code."""
    return _views(connection, connection.execute(text(_CREW_SQL + " ORDER BY w.code")).all())


def _crew(connection: Connection, code: str, lock: bool = False):
    row = connection.execute(text(_CREW_SQL + " WHERE w.code = :code" + (" FOR UPDATE OF w" if lock else "")),
                             {"code": code}).first()
    if row is None:
        raise NotFound(_("no crew %(code)s", code=code))
    return row


def crew_of_account(connection: Connection, account_id: int) -> CrewView | None:
    """The crew an account signs in for, or None."""
    row = connection.execute(text(_CREW_SQL + " WHERE w.account_id = :account"), {"account": account_id}).first()
    return _view(connection, row) if row else None


def _own_crew(connection: Connection, code: str, principal: Principal, lock: bool = False):
    """The crew ``code`` if ``principal`` may speak for it: its own account (a dispatcher or admin for any)."""
    row = _crew(connection, code, lock)
    if principal.role == "crew":
        owner = connection.execute(text("SELECT account_id FROM crews WHERE code = :code"), {"code": code}).scalar()
        if owner != principal.account_id:
            raise Forbidden(_("this account sends for another crew, not for %(code)s", code=code))
    return row


def create_crew(connection: Connection, code: str, name: str, vehicle: str | None = None, depot: str | None = None,
                depot_point: tuple[float, float] | None = None, skills: list[str] | None = None,
                members: list[dict] | None = None, account: str | None = None) -> None:
    """Add a crew (the demo, the CLI); ``account`` names its sign-in account (role crew)."""
    if not _CODE.match(code):
        raise Invalid(_("a crew code is 1 to 40 letters, digits, dots, dashes or underscores"), field="code")
    if connection.execute(text("SELECT 1 FROM crews WHERE code = :c"), {"c": code}).first() is not None:
        raise Conflict(_("a crew %(code)s exists already", code=code), field="code")
    account_id = None
    if account is not None:
        account_id = account_id_of(connection, account, "crew")
        if account_id is None:
            raise NotFound(_("no crew account %(name)s", name=account), field="account")
    crew_id = connection.execute(text(
        "INSERT INTO crews (code, name, vehicle, depot, depot_geom, skills, account_id, geom, position_at) "
        "VALUES (:code, :name, :vehicle, :depot, CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL "
        "ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, :skills, :account, "
        "CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, "
        "CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL ELSE now() END) RETURNING id"),
        {"code": code, "name": name, "vehicle": vehicle, "depot": depot, "lon": depot_point[0] if depot_point else None,
         "lat": depot_point[1] if depot_point else None, "skills": skills or [], "account": account_id}).scalar_one()
    for member in members or []:
        connection.execute(text("INSERT INTO crew_members (crew_id, name, phone, duty) VALUES (:c, :n, :p, :d)"),
                           {"c": crew_id, "n": member["name"], "p": member.get("phone"), "d": member.get("duty")})


# -- positions and statuses --------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    """One position from a crew's phone."""

    lon: float
    lat: float
    at: datetime
    accuracy_m: float | None = None


def parse_positions(body: Any) -> list[Position]:
    """``{"positions": [{"lon", "lat", "at", "accuracy_m"?}, ...]}`` checked."""
    if not isinstance(body, dict) or not isinstance(body.get("positions"), list) or set(body) - {"positions"}:
        raise Invalid(_('the body must be {"positions": [{"lon": 8.4, "lat": 49.0, "at": "2026-11-30T12:00:00Z"}]}'))
    items = body["positions"]
    if not 1 <= len(items) <= MAX_POSITIONS:
        raise Invalid(_("a batch holds 1 to %(max)s positions; got %(count)s", max=MAX_POSITIONS, count=len(items)),
                      field="positions")
    found = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"lon", "lat", "at", "accuracy_m"}:
            raise Invalid(_("a position is an object with lon, lat, at and optionally accuracy_m"), field="positions")
        lon, lat, accuracy = item.get("lon"), item.get("lat"), item.get("accuracy_m")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lon, lat)) \
                or not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise Invalid(_("lon and lat must be numbers: longitude -180..180 and latitude -90..90"), field="lon")
        if accuracy is not None and (not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool)
                                     or not 0 <= accuracy <= 100_000):
            raise Invalid(_("accuracy_m must be a number of metres"), field="accuracy_m")
        when = instant(item.get("at"), "at")
        found.append(Position(float(lon), float(lat), when, float(accuracy) if accuracy is not None else None))
    return found


def record_positions(session: Session, code: str, principal: Principal, positions: list[Position]) -> dict:
    """Store a batch of positions (each timestamp once) and move the crew to the newest; counts."""
    with session.begin():
        connection = session.connection()
        row = _own_crew(connection, code, principal)
        crew_id = connection.execute(text("SELECT id FROM crews WHERE code = :c"), {"c": code}).scalar_one()
        skew = datetime.now(timezone.utc) + timedelta(minutes=5)
        inserted = connection.execute(text(
            "INSERT INTO crew_positions (crew_id, recorded_at, geom, accuracy_m) "
            "SELECT :crew, d.at, ST_SetSRID(ST_MakePoint(d.lon, d.lat), 4326), d.accuracy "
            "FROM unnest(CAST(:ats AS timestamptz[]), CAST(:lons AS float8[]), CAST(:lats AS float8[]), "
            "CAST(:accuracies AS float8[])) AS d(at, lon, lat, accuracy) "
            "ON CONFLICT (crew_id, recorded_at) DO NOTHING RETURNING recorded_at"),
            {"crew": crew_id, "ats": [min(p.at, skew) for p in positions], "lons": [p.lon for p in positions],
             "lats": [p.lat for p in positions], "accuracies": [p.accuracy_m for p in positions]}).all()
        newest = max(positions, key=lambda p: p.at)
        moved = connection.execute(text(
            "UPDATE crews SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), position_at = :at "
            "WHERE id = :crew AND (position_at IS NULL OR position_at < :at) RETURNING id"),
            {"lon": newest.lon, "lat": newest.lat, "at": min(newest.at, skew), "crew": crew_id}).first()
        if moved is not None:
            note_change(connection, "crew", code)
        return {"crew": row.code, "accepted": len(inserted), "duplicates": len(positions) - len(inserted)}


def set_status(session: Session, code: str, status: str, principal: Principal, note: str | None,
               settings) -> CrewView:
    """A crew's status from its phone (or a dispatcher): en route and on site move its outage too."""
    if status not in CREW_SETS:
        raise Invalid(_("status must be one of %(statuses)s", statuses=", ".join(CREW_SETS)), field="status")
    outage_code = None
    with session.begin():
        connection = session.connection()
        row = _own_crew(connection, code, principal, lock=True)
        if status in ("available", "off_duty") and row.outage is not None:
            raise Conflict(_("crew %(code)s is assigned to %(outage)s: restore it or ask the dispatcher to release "
                             "the crew", code=code, outage=row.outage), outage=row.outage)
        if status in ("en_route", "on_site"):
            if row.outage is None:
                raise Conflict(_("crew %(code)s has no assignment to be %(status)s for", code=code, status=status))
            outage_code = row.outage
        else:
            connection.execute(text("UPDATE crews SET status = :s, status_at = now() WHERE code = :c"),
                               {"s": status, "c": code})
            note_change(connection, "crew", code)
    if outage_code is not None:
        lifecycle.transition(session, outage_code, status, principal.name, note, settings)
    with session.begin():
        return _view(session.connection(), _crew(session.connection(), code))


def add_note(session: Session, code: str, principal: Principal, note: Any) -> dict:
    """An on-site note from a crew, added to its outage's timeline."""
    if not isinstance(note, str) or not note.strip() or len(note) > 2000:
        raise Invalid(_("note must be text of 1 to 2,000 characters"), field="note")
    with session.begin():
        connection = session.connection()
        row = _own_crew(connection, code, principal)
        if row.outage is None:
            raise Conflict(_("crew %(code)s has no assignment to note on", code=code))
        outage = lifecycle.outage_by_code(connection, row.outage)
        event = lifecycle.add_event(connection, outage.id, "note", principal.name, note.strip(), data={"crew": code})
        note_change(connection, "outage", row.outage)
        return {"outage": row.outage, "event": event}


# -- nearest crews and assignments -------------------------------------------------------------------
@dataclass(frozen=True)
class NearCrew:
    """A crew by its distance to an outage, with the time to get there at ``TRAVEL_KMH``."""

    code: str
    name: str
    status: str
    distance_m: float | None
    eta_minutes: float | None
    outage: str | None
    skills: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def nearest_crews(connection: Connection, outage_code: str, limit: int = 5,
                  available_only: bool = False) -> list[NearCrew]:
    """Crews nearest to the outage's device, available ones first, then by distance (off duty left out)."""
    outage = lifecycle.outage_by_code(connection, outage_code)
    rows = connection.execute(text(f"""
        SELECT w.code, w.name, w.status, w.skills,
               ST_Distance(geography(coalesce(w.geom, w.depot_geom)), geography(o.geom)) AS metres,
               (SELECT x.code FROM crew_assignments a JOIN outages x ON x.id = a.outage_id
                 WHERE a.crew_id = w.id AND a.released_at IS NULL) AS outage
          FROM crews w, outages o
         WHERE o.id = :outage AND w.status <> 'off_duty' {"AND w.status = 'available'" if available_only else ""}
         ORDER BY w.status <> 'available',
                  ST_Distance(geography(coalesce(w.geom, w.depot_geom)), geography(o.geom)) NULLS LAST, w.code
         LIMIT :limit"""), {"outage": outage.id, "limit": limit}).all()
    return [NearCrew(r.code, r.name, r.status, round(r.metres, 1) if r.metres is not None else None,
                     round(r.metres / 1000 / TRAVEL_KMH * 60, 1) if r.metres is not None else None, r.outage,
                     list(r.skills or [])) for r in rows]


def release_crew_of(connection: Connection, outage_id: int, actor: str | None) -> str | None:
    """Close the outage's open assignment and make its crew available; the crew's code (None: none)."""
    row = connection.execute(text(
        "UPDATE crew_assignments SET released_at = now(), released_by = :actor "
        "WHERE outage_id = :outage AND released_at IS NULL RETURNING crew_id"),
        {"actor": actor, "outage": outage_id}).first()
    if row is None:
        return None
    code = connection.execute(text("UPDATE crews SET status = 'available', status_at = now() WHERE id = :id "
                                   "AND status <> 'off_duty' RETURNING code"), {"id": row.crew_id}).scalar()
    connection.execute(text("UPDATE outages SET crew_id = NULL WHERE id = :id"), {"id": outage_id})
    code = code or connection.execute(text("SELECT code FROM crews WHERE id = :id"), {"id": row.crew_id}).scalar()
    note_change(connection, "crew", code)
    return code


def assign(session: Session, outage_code: str, crew_code: str | None, actor: str, note: str | None = None,
           zone: frozenset[str] | None = None):
    """Send a crew (``None``: the nearest available one) to a confirmed outage; a crew already on it
    is released first (reassignment). ``Conflict`` when the crew is busy or the outage not confirmed."""
    with session.begin():
        connection = session.connection()
        outage = lifecycle.outage_by_code(connection, outage_code, lock=True, zone=zone)
        if outage.state == "predicted":
            raise Conflict(_("outage %(code)s is predicted: confirm it before sending a crew", code=outage_code),
                           state=outage.state, allowed=list(lifecycle.TRANSITIONS[outage.state]))
        if outage.state not in ("confirmed", "crew_assigned", "en_route", "on_site"):
            raise Conflict(_("outage %(code)s is %(state)s: no crew is sent to it", code=outage_code,
                             state=outage.state), state=outage.state, allowed=[])
        if crew_code is None:
            near = nearest_crews(connection, outage_code, limit=1, available_only=True)
            if not near:
                raise Unprocessable(_("no crew is available"))
            crew_code = near[0].code
        crew = _crew(connection, crew_code, lock=True)
        if crew.outage == outage_code:
            raise Conflict(_("crew %(crew)s is on outage %(code)s already", crew=crew_code, code=outage_code))
        if crew.status == "off_duty":
            raise Conflict(_("crew %(crew)s is off duty", crew=crew_code), status=crew.status)
        previous = release_crew_of(connection, outage.id, actor)
        try:
            with connection.begin_nested():
                connection.execute(text(
                    "INSERT INTO crew_assignments (crew_id, outage_id, assigned_by) "
                    "SELECT id, :outage, :actor FROM crews WHERE code = :crew"),
                    {"outage": outage.id, "actor": actor, "crew": crew_code})
        except IntegrityError:
            raise Conflict(_("crew %(crew)s is assigned to another outage (%(other)s); release it there first",
                             crew=crew_code, other=crew.outage or "?"), outage=crew.outage) from None
        connection.execute(text("UPDATE crews SET status = 'assigned', status_at = now() WHERE code = :c"),
                           {"c": crew_code})
        state = "crew_assigned"
        connection.execute(text("UPDATE outages SET crew_id = (SELECT id FROM crews WHERE code = :c), state = :s, "
                                "updated_at = now() WHERE id = :id"), {"c": crew_code, "s": state, "id": outage.id})
        event = lifecycle.add_event(connection, outage.id, "crew_assigned", actor, note, outage.state, state,
                                    {"crew": crew_code, "released": previous})
        note_change(connection, "crew", crew_code)
        note_change(connection, "outage", outage_code)
        return lifecycle.OutageChange(lifecycle.outage_view(connection, outage.id), event)


def release(session: Session, outage_code: str, actor: str, note: str | None = None,
            zone: frozenset[str] | None = None):
    """Take the crew off an outage: the crew is available again and the outage back to confirmed."""
    with session.begin():
        connection = session.connection()
        outage = lifecycle.outage_by_code(connection, outage_code, lock=True, zone=zone)
        if outage.crew is None:
            raise Conflict(_("outage %(code)s has no crew to release", code=outage_code), state=outage.state,
                           allowed=list(lifecycle.TRANSITIONS[outage.state]))
        crew = release_crew_of(connection, outage.id, actor)
        connection.execute(text("UPDATE outages SET state = 'confirmed', updated_at = now() WHERE id = :id"),
                           {"id": outage.id})
        event = lifecycle.add_event(connection, outage.id, "released", actor, note, outage.state, "confirmed",
                                    {"crew": crew})
        note_change(connection, "outage", outage_code)
        return lifecycle.OutageChange(lifecycle.outage_view(connection, outage.id), event)

