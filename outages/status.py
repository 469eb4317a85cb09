"""Is my power out? A customer's status by account number or by address: the outage its service
point is out in (state, cause, ETR, crew status, its public reference), and who answers for it
locally (the grid cell and its transformer-area manager). Nothing about any other customer.

An address that names several service points (the flats of a house) is answered for the address
as a whole: the most advanced outage any of them is out in, and how many of them are out. An
address query that names several addresses gets back the addresses to choose from (house level,
never a name or an account).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.addresses import resolve_address, sources_at
from geo.cells import AREA_MANAGER, MANAGER, cell_or_none, contents
from geo.errors import NotFound
from geo.i18n import _
from outages.public import public_status
from topology import places
from topology.cells import customer_homes

__all__ = ["OutageStatus", "ServiceStatus", "status_by_account", "status_by_address", "STATUSES"]

# From the most to the least telling: a service point out in several outages is answered by the first.
STATUSES = ("out", "planned", "investigating", "on")


@dataclass(frozen=True)
class OutageStatus:
    """An outage as a customer follows it (``reference``: GET /api/public/outages/<reference>)."""

    reference: str
    status: str
    state: str
    cause: str
    started_at: datetime
    etr: datetime | None
    etr_source: str | None
    crew_status: str | None
    updated_at: datetime
    customers_out: int
    planned_start: datetime | None
    planned_end: datetime | None


@dataclass(frozen=True)
class ServiceStatus:
    """The answer: the status, the outage behind it, who answers locally; or addresses to choose from."""

    status: str | None
    outage: OutageStatus | None = None
    address: str | None = None
    service_points: int = 0
    out: int = 0
    cell: dict | None = None
    contact: dict | None = None
    choices: list[str] = field(default_factory=list)
    at: datetime | None = None
    # Near the address asked for (rounded to 0.001 degrees, about 100 m), for a map to go to; never
    # given for an account.
    near: tuple[float, float] | None = None

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {"status": self.status, "outage": self.outage.__dict__ if self.outage else None,
                "address": self.address, "service_points": self.service_points, "out": self.out,
                "cell": self.cell, "contact": self.contact, "choices": self.choices, "at": self.at,
                "near": list(self.near) if self.near else None}


# The open outages some of ``ids`` are out in (their latest affected step, less the customers a
# later step restored), with how many of ``ids`` each holds: a read of the open outages' steps.
_OUT_IN = text("""
WITH latest AS (
  SELECT DISTINCT ON (s.outage_id) s.outage_id, s.number, s.customers
    FROM outage_steps s JOIN outages o ON o.id = s.outage_id
   WHERE o.state NOT IN ('restored', 'cancelled') AND s.kind = 'affected' AND s.customers && CAST(:ids AS bigint[])
   ORDER BY s.outage_id, s.number DESC),
held AS (
  SELECT l.outage_id, count(*) AS n FROM latest l, unnest(l.customers) AS c
   WHERE c = ANY(CAST(:ids AS bigint[])) AND NOT EXISTS (
         SELECT 1 FROM outage_steps r WHERE r.outage_id = l.outage_id AND r.kind = 'restored'
            AND r.number > l.number AND c = ANY(r.customers))
   GROUP BY l.outage_id)
SELECT o.code AS reference, o.state, o.cause, o.started_at, o.etr, o.etr_source, w.status AS crew_status,
       o.updated_at, o.customers_out, o.planned_start, o.planned_end, held.n
  FROM held JOIN outages o ON o.id = held.outage_id LEFT JOIN crews w ON w.id = o.crew_id
""")


def _status(row, now: datetime) -> str:
    if row.planned_start is not None and row.planned_start > now:
        return "planned"
    return "investigating" if row.state == "predicted" else "out"


def _outages_of(connection: Connection, ids: Sequence[int], now: datetime) -> tuple[OutageStatus | None, int]:
    """The most telling outage ``ids`` are out in (out, then planned, then investigating; the
    most customers first) and how many of ``ids`` are out or about to be."""
    rows = connection.execute(_OUT_IN, {"ids": [int(i) for i in ids]}).all()
    if not rows:
        return None, 0
    best = min(rows, key=lambda r: (STATUSES.index(_status(r, now)), -r.customers_out, r.reference))
    values = {name: getattr(best, name) for name in OutageStatus.__dataclass_fields__ if name != "status"}
    status = _status(best, now)
    counted = [r.n for r in rows if _status(r, now) == status]
    return OutageStatus(status=status, **values), min(len(ids), max(counted))


def _who_answers(connection: Connection, ids: Sequence[int]) -> tuple[dict | None, dict | None]:
    """The grid cell of the first of ``ids`` and the member of its team who answers for its
    transformer area (the cell's manager when no one is named for the area)."""
    homes = customer_homes(connection, ids[:1], contents(connection))
    area, code = homes.get(int(ids[0]), (None, None))
    found = cell_or_none(connection, code) if code else None
    if found is None:
        return None, None
    team = found.team
    member = next((m for m in team if m.get("duty") == AREA_MANAGER and area in m.get("transformer_areas", ())), None)
    member = member or next((m for m in team if m.get("duty") == MANAGER), None)
    contact = {"name": member["name"], "phone": member["phone"], "duty": member["duty"]} if member else None
    return {"code": found.code, "name": found.name}, contact


def _answer(connection: Connection, ids: Sequence[int], address: str | None,
            near: tuple[float, float] | None = None) -> ServiceStatus:
    now = datetime.now(timezone.utc)
    outage, out = _outages_of(connection, ids, now)
    cell, contact = _who_answers(connection, ids)
    return ServiceStatus(outage.status if outage else "on", outage, address, len(ids), out, cell, contact, at=now,
                         near=near)


def status_by_account(connection: Connection, account: str) -> ServiceStatus:
    """The status of the service point with ``account``; NotFound (field ``account``) for an
    unknown one. The answer does not repeat the customer's address."""
    customer = places.by_account(connection, account)
    if customer is None:
        raise NotFound(_("no customer has the account number %(account)s", account=account), field="account")
    return _answer(connection, [customer.id], None)


def status_by_address(connection: Connection, q: str) -> ServiceStatus:
    """The status at the address ``q`` names (every service point there, as a whole); when ``q``
    names several addresses, the addresses to choose from (status None). NotFound when no
    customer's connection is at the address."""
    match, did_you_mean = resolve_address(connection, q)
    if match is None:
        choices = [m.address for m in did_you_mean if m.source != "place"]
        if choices:
            return ServiceStatus(None, choices=list(dict.fromkeys(choices)))
        raise NotFound(_("%(q)r names a town or postcode; give a street and house number", q=q.strip()), field="q")
    ids = sources_at(connection, match.address)
    if not ids:
        raise NotFound(_("no customer is connected at %(address)s; give a street and house number",
                         address=match.address), field="q")
    return _answer(connection, ids, match.address, (round(match.lon, 3), round(match.lat, 3)))
