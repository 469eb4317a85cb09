"""Outage messages to subscribers: acknowledgement, first and changed ETR, crew on site, progress,
restored, still out after the repair (nested damage) and planned work ahead, through geo's outbox.

The lifecycle calls these in the transaction of the transition they announce, so a transition
that rolls back leaves no message and one that commits cannot lose its messages. Each message
has a dedup key ``outage:<code>:<kind>:<n>:sub:<subscription id>``: the outbox writes a key once,
so a transition replayed (or a periodic job run twice) writes nothing new.

Who hears of an outage: the confirmed, live subscriptions of the customers it concerns (by
service point), and those of the grid cells holding any of those customers (topology.cells'
rule: a customer belongs to exactly one cell). One ``INSERT ... SELECT`` per message kind writes
a message to every one of them, each in its subscriber's language, so that an outage of 100,000
subscribed customers is queued in one statement (bench/notify.py).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from babel import Locale
from babel.dates import format_datetime
from babel.support import NullTranslations, Translations
from sqlalchemy import column, select, text
from sqlalchemy.engine import Connection

from geo import cells as geo_cells
from geo.i18n import Message, _
from geo import outbox
from outages.models import CONFIRMED_STATES, SUBSCRIPTION_LANGUAGES
from outages.settings import OutageSettings
from topology.cells import customer_cells

__all__ = ["KINDS", "OutageFacts", "enqueue_for_outage", "in_language", "written_time", "on_confirmed", "on_etr",
           "on_site", "on_restored", "on_planned", "progress_due", "planned_due", "periodic_job"]

KINDS = ("outage_ack", "outage_etr", "outage_etr_changed", "outage_on_site", "outage_progress", "outage_restored",
         "outage_still_out", "outage_planned")
TARGETS = ("account", "area")
_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class OutageFacts:
    """What a message says about an outage."""

    id: int
    code: str
    state: str
    origin: str
    started_at: datetime
    etr: datetime | None
    planned_start: datetime | None
    planned_end: datetime | None


_FACTS = text("SELECT id, code, state, origin, started_at, etr, planned_start, planned_end FROM outages WHERE id = :id")


def facts_of(connection: Connection, outage_id: int) -> OutageFacts:
    """The outage ``outage_id`` as its messages tell it."""
    return OutageFacts(**connection.execute(_FACTS, {"id": outage_id}).one()._mapping)


# -- texts -------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _catalog(language: str):
    if language == "en":
        return NullTranslations()
    return Translations.load(str(_ROOT / "translations"), [language])


def in_language(message: Message | str, language: str) -> str:
    """``message`` written in ``language`` (``en`` or ``zh``), whatever the request's language:
    a subscriber reads the language it chose when subscribing.

    >>> in_language(_("outage %(code)s", code="OUT-000001"), "en")
    'outage OUT-000001'
    """
    if not isinstance(message, Message):
        return str(message)
    wording = _catalog(language).gettext(message.msgid)
    return wording % message.params if message.params else wording


def written_time(value: datetime, language: str, zone: str) -> str:
    """A time as a message gives it, on the utility's clock.

    >>> from datetime import timezone
    >>> moment = datetime(2026, 12, 1, 17, 30, tzinfo=timezone.utc)
    >>> written_time(moment, "en", "Europe/Berlin"), written_time(moment, "zh", "Europe/Berlin")
    ('Tue 1 Dec 18:30', '12月1日周二 18:30')
    """
    local = value.astimezone(ZoneInfo(zone))
    if language == "zh":
        return format_datetime(local, "M月d日EEE HH:mm", tzinfo=local.tzinfo, locale=Locale.parse("zh"))
    return local.strftime("%a %-d %b %H:%M")


def _body(kind: str, target: str, outage: OutageFacts, when) -> Message:
    """The text of one message ``kind`` about ``outage`` for an ``account`` or ``area`` subscriber;
    ``when`` writes a time in the subscriber's language."""
    code = outage.code
    etr = when(outage.etr) if outage.etr else None
    if kind == "outage_ack":
        return (_("GridAtlas: we know about the power outage at your address (%(code)s) and are working on it.",
                  code=code) if target == "account" else
                _("GridAtlas: a power outage (%(code)s) affects the area you follow; we are working on it.",
                  code=code))
    if kind in ("outage_etr", "outage_etr_changed"):
        return (_("GridAtlas: power should be back by %(etr)s (outage %(code)s).", etr=etr, code=code)
                if kind == "outage_etr" else
                _("GridAtlas: the estimated restoration of outage %(code)s has changed to %(etr)s.", etr=etr, code=code))
    if kind == "outage_on_site":
        return _("GridAtlas: a repair crew has arrived at outage %(code)s.", code=code)
    if kind == "outage_progress":
        return (_("GridAtlas: outage %(code)s is still being repaired; power should be back by %(etr)s.",
                  code=code, etr=etr) if etr else
                _("GridAtlas: outage %(code)s is still being repaired; we will tell you when we know more.", code=code))
    if kind == "outage_restored":
        return (_("GridAtlas: power is back at your address (outage %(code)s).", code=code) if target == "account"
                else _("GridAtlas: outage %(code)s in the area you follow is repaired.", code=code))
    if kind == "outage_still_out":
        return _("GridAtlas: outage %(code)s is repaired, but further damage still cuts off your address and crews "
                 "are on it. If you are still without power, reply to this message or report it again.", code=code)
    return _("GridAtlas: planned work will cut the power from %(start)s to %(end)s (%(code)s).",
             start=when(outage.planned_start), end=when(outage.planned_end), code=code)


def _texts(kind: str, outage: OutageFacts, settings: OutageSettings) -> str:
    """Every language's and target's subject and body of a message (the body ends with the
    unsubscribe link but its token, which the statement adds per subscriber), as JSON rows."""
    rows = []
    for language in SUBSCRIPTION_LANGUAGES:
        def when(value, language=language):
            return written_time(value, language, settings.time_zone)
        stop = in_language(_("Unsubscribe:"), language)
        subject = in_language(_("GridAtlas: outage %(code)s", code=outage.code), language)
        for target in TARGETS:
            body = in_language(_body(kind, target, outage, when), language)
            rows.append({"language": language, "target": target, "subject": subject,
                         "body": f"{body} {stop} {settings.public_url}/unsubscribe/"})
    return json.dumps(rows, ensure_ascii=False)


# -- writing -----------------------------------------------------------------------------------------
# The subscribers of the given customers and cells, each with its text: one row per message.
_RECIPIENTS = text("""
SELECT CAST(:kind AS varchar) AS kind, s.channel, s.address AS recipient, t.subject, t.body || s.token AS body,
       CAST(:reference AS varchar) AS reference, CAST(:key AS varchar) || s.id AS dedup_key,
       CAST(:due AS timestamptz) AS due_at
  FROM (SELECT s.* FROM outage_subscriptions s
          JOIN unnest(CAST(:customers AS bigint[])) AS out(id) ON s.service_point_id = out.id
         WHERE s.confirmed_at IS NOT NULL AND s.unsubscribed_at IS NULL
        UNION ALL
        SELECT s.* FROM outage_subscriptions s
         WHERE s.cell_code = ANY(CAST(:cells AS text[])) AND s.confirmed_at IS NOT NULL AND s.unsubscribed_at IS NULL) s
  JOIN jsonb_to_recordset(CAST(:texts AS jsonb)) AS t(language text, target text, subject text, body text)
    ON t.language = s.language AND t.target = CASE WHEN s.cell_code IS NULL THEN 'account' ELSE 'area' END
""").columns(*(column(name) for name in ("kind", "channel", "recipient", "subject", "body", "reference",
                                         "dedup_key", "due_at")))

_AREA_FOLLOWED = text("SELECT EXISTS (SELECT 1 FROM outage_subscriptions WHERE cell_code IS NOT NULL "
                      "AND confirmed_at IS NOT NULL AND unsubscribed_at IS NULL)")


def cells_holding(connection: Connection, customers: np.ndarray) -> list[str]:
    """The grid cells ``customers`` (service point ids) belong to; none asked for when nobody
    follows an area (placing 100,000 customers takes a second)."""
    if not len(customers) or not connection.execute(_AREA_FOLLOWED).scalar_one():
        return []
    held = geo_cells.contents(connection)
    return sorted({cell for cell in customer_cells(connection, customers, held).values() if cell is not None})


def enqueue_for_outage(connection: Connection, outage: OutageFacts, kind: str, n: int | str, settings: OutageSettings,
                       customers: np.ndarray, area_customers: np.ndarray | None = None,
                       due_at: datetime | None = None, topic: str | None = None) -> int:
    """Queue message ``kind`` (its ``n``-th of the outage) to the subscribers of ``customers`` and
    of the cells holding ``area_customers`` (default: the same customers), in one statement;
    return how many were written (a dedup key written before is skipped). The keys name
    ``topic`` (default: the kind), so that kinds telling one thing share them.

    Linear in the subscribers reached (a hash join with the customers); 100,000 in about a second.
    """
    cells = cells_holding(connection, customers if area_customers is None else area_customers)
    if not len(customers) and not cells:
        return 0
    due = due_at or connection.execute(text("SELECT now()")).scalar_one()
    rows = _RECIPIENTS.bindparams(
        kind=kind, reference=f"outage:{outage.code}", key=f"outage:{outage.code}:{topic or kind}:{n}:sub:", due=due,
        customers=[int(c) for c in customers], cells=cells, texts=_texts(kind, outage, settings)).subquery()
    return outbox.enqueue_query(connection, select(*(rows.c[name] for name in outbox.QUERY_COLUMNS)))


# -- the lifecycle's transitions ---------------------------------------------------------------------
def _etr_key(etr: datetime) -> int:
    """An ETR's number in its messages' keys (first or changed alike): each ETR is announced once."""
    return int(etr.timestamp())


def on_confirmed(connection: Connection, outage_id: int, customers: np.ndarray, settings: OutageSettings) -> int:
    """An outage confirmed (or created by a dispatcher): the acknowledgement, and its first ETR if it has one."""
    outage = facts_of(connection, outage_id)
    written = enqueue_for_outage(connection, outage, "outage_ack", 0, settings, customers)
    if outage.etr is not None:
        written += enqueue_for_outage(connection, outage, "outage_etr", _etr_key(outage.etr), settings, customers,
                                      topic="etr")
    return written


def on_etr(connection: Connection, outage_id: int, customers: np.ndarray, first: bool, settings: OutageSettings) -> int:
    """A new ETR of a confirmed outage: the first one, or a change (a predicted outage's ETR is
    told with its acknowledgement)."""
    outage = facts_of(connection, outage_id)
    if outage.state not in CONFIRMED_STATES or outage.etr is None:
        return 0
    kind = "outage_etr" if first else "outage_etr_changed"
    return enqueue_for_outage(connection, outage, kind, _etr_key(outage.etr), settings, customers, topic="etr")


_ON_SITE_COUNT = text("SELECT count(*) FROM outage_events WHERE outage_id = :id AND kind = 'on_site'")


def on_site(connection: Connection, outage_id: int, customers: np.ndarray, settings: OutageSettings) -> int:
    """A crew on site (the n-th time, when a crew was released and another came)."""
    n = connection.execute(_ON_SITE_COUNT, {"id": outage_id}).scalar_one()
    return enqueue_for_outage(connection, facts_of(connection, outage_id), "outage_on_site", n, settings, customers)


_NESTED_OUT = text("""
SELECT coalesce(array_agg(DISTINCT c), '{}') FROM outages o
  JOIN outage_steps s ON s.outage_id = o.id AND s.kind = 'affected', unnest(s.customers) AS c
 WHERE o.parent_id = :id AND o.state NOT IN ('restored', 'cancelled')
   AND NOT EXISTS (SELECT 1 FROM outage_steps r WHERE r.outage_id = o.id AND r.kind = 'restored' AND c = ANY(r.customers))
""")


_AFFECTED = text("SELECT customers FROM outage_steps WHERE outage_id = :id AND kind = 'affected' "
                 "ORDER BY number DESC LIMIT 1")


def on_restored(connection: Connection, outage_id: int, back: np.ndarray, finished: bool,
                settings: OutageSettings) -> int:
    """Customers ``back`` given back by a step (``finished``: the last one, when the subscribers of
    the cells of all its affected customers hear it too). Those still out in an outage nested in
    this one hear that it is repaired but they may still be out, and how to say so."""
    outage = facts_of(connection, outage_id)
    nested = np.asarray(connection.execute(_NESTED_OUT, {"id": outage_id}).scalar_one(), dtype=np.int64)
    still_out = np.intersect1d(back, nested)
    restored = np.setdiff1d(back, still_out)
    affected = connection.execute(_AFFECTED, {"id": outage_id}).scalar() if finished else None
    area = np.asarray(affected or [], dtype=np.int64)
    written = enqueue_for_outage(connection, outage, "outage_restored", 0, settings, restored, area)
    if len(still_out):
        written += enqueue_for_outage(connection, outage, "outage_still_out", 0, settings, still_out,
                                      np.zeros(0, dtype=np.int64))
    return written


def on_planned(connection: Connection, outage_id: int, customers: np.ndarray, settings: OutageSettings,
               now: datetime) -> int:
    """A planned outage whose start is nearer than the lead time: announce it (once)."""
    outage = facts_of(connection, outage_id)
    if outage.planned_start is None or outage.planned_start - timedelta(hours=settings.planned_lead_hours) > now:
        return 0
    return enqueue_for_outage(connection, outage, "outage_planned", 0, settings, customers)


# -- periodic ----------------------------------------------------------------------------------------
_LASTING = text("SELECT id, started_at FROM outages WHERE state IN ('confirmed', 'crew_assigned', 'en_route', "
                "'on_site') AND started_at <= :since ORDER BY id")
_PLANNED_SOON = text("SELECT id FROM outages WHERE origin = 'planned' AND state = 'confirmed' "
                     "AND planned_start > :now AND planned_start <= :horizon ORDER BY id")


def progress_due(connection: Connection, now: datetime, settings: OutageSettings) -> int:
    """The progress message of every confirmed outage lasting another ``progress_hours`` (the n-th
    interval since it started, even when nothing changed), to the subscribers still out."""
    from outages.lifecycle import customers_out  # the lifecycle calls this module, not the reverse

    interval = timedelta(hours=settings.progress_hours)
    written = 0
    for row in connection.execute(_LASTING, {"since": now - interval}).all():
        n = math.floor((now - row.started_at) / interval)
        written += enqueue_for_outage(connection, facts_of(connection, row.id), "outage_progress", n, settings,
                                      customers_out(connection, row.id))
    return written


def planned_due(connection: Connection, now: datetime, settings: OutageSettings) -> int:
    """The notice of every planned outage whose lead time has come (created earlier than that)."""
    from outages.lifecycle import customers_out

    horizon = now + timedelta(hours=settings.planned_lead_hours)
    return sum(on_planned(connection, outage_id, customers_out(connection, outage_id), settings, now)
               for outage_id in connection.execute(_PLANNED_SOON, {"now": now, "horizon": horizon}).scalars())


def periodic_job(settings: OutageSettings):
    """The job the sender runs (``geo.outbox.register_periodic``): progress and planned notices."""
    def job(connection: Connection, now: datetime) -> int:
        return progress_due(connection, now, settings) + planned_due(connection, now, settings)
    return job
