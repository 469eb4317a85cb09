"""What the admin API does, each in one transaction: create, replace, retire, dated exceptions."""
from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from geo.errors import Invalid, Conflict
from geo.i18n import _
from outlets import store
from outlets.hours import DayException, HoursError, parse_intervals
from outlets.records import parse_outlet

__all__ = ["create_outlet", "replace_outlet", "retire_outlet", "set_exception", "delete_exception"]


def create_outlet(session: Session, body: Any) -> str:
    """Create an outlet from a JSON body; Conflict when its code exists. Returns the code."""
    record = parse_outlet(_object(body))
    with session.begin():
        connection = session.connection()
        if store.outlet_exists(connection, record.code):
            raise Conflict(_("outlet %(code)r already exists; PUT %(url)s replaces it", code=record.code,
                             url="/api/admin/outlets/" + record.code))
        store.save_outlet(connection, record)
    return record.code


def replace_outlet(session: Session, code: str, body: Any) -> bool:
    """Create or replace outlet ``code`` (a retired one comes back); True when created."""
    body = dict(_object(body))
    if body.setdefault("code", code) != code:
        raise Invalid(_("the body's code %(code)r differs from the URL's %(code2)r", code=body['code'], code2=code), field="code")
    record = parse_outlet(body)
    with session.begin():
        return store.save_outlet(session.connection(), record)


def retire_outlet(session: Session, code: str, now: datetime) -> None:
    """Retire outlet ``code``; Conflict while it has visits to come."""
    with session.begin():
        store.retire_outlet(session.connection(), code, now)


def set_exception(session: Session, code: str, day: date, body: Any) -> None:
    """Special hours on ``day`` from ``{"hours": "off" | "08:00-12:00,...", "note": "..."}``."""
    body = _object(body)
    if "hours" not in body:
        raise Invalid(_('send {"hours": "off"} or {"hours": "08:00-12:00", "note": "..."}'))
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 200
                             or any(unicodedata.category(c) == "Cc" for c in note)):
        raise Invalid(_("note must be a text of up to 200 characters, without control characters"), field="note")
    hours = body["hours"]
    if not isinstance(hours, (str, list)) or not all(isinstance(h, str) for h in (hours if isinstance(hours, list) else [])):
        raise Invalid(_('hours must be "off", "08:00-12:00,13:00-17:00" or a list of such intervals'), field="hours")
    try:
        intervals = parse_intervals(hours, where=f"exception {day}")
    except HoursError as error:
        raise Invalid(error.args[0]) from None
    with session.begin():
        store.set_exception(session.connection(), code, day, DayException(intervals, note.strip() if note else None))


def delete_exception(session: Session, code: str, day: date) -> None:
    """Return outlet ``code`` to its weekly hours on ``day``."""
    with session.begin():
        store.delete_exception(session.connection(), code, day)


def _object(body: Any) -> dict:
    """``body`` if it is a JSON object; Invalid otherwise."""
    if not isinstance(body, dict):
        raise Invalid(_("send a JSON object"))
    return body
