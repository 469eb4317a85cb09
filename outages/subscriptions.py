"""Subscriptions to outage messages: by SMS number, e-mail address or webhook URL, for one account
or one grid cell, in English or Chinese; confirmed with a code sent to the address, ended with
the unguessable token of the unsubscribe link in every message.

The address is personal: whatever a public route answers shows it masked (``mask``). Who
subscribes gets back a ``reference`` to confirm with; only the holder of the address learns the
code, and only the messages sent to the address carry the token that unsubscribes. The database
decides the rules that races could break: one live subscription per address and target (a unique
index; subscribing again sends a new code), and the wrong codes counted under a row lock.

Examples
--------
>>> normalise_address("sms", "+49 (30) 231-25123")
'+493023125123'
>>> mask("sms", "+493023125123"), mask("email", "Jo.Doe@example.org"), mask("webhook", "https://hooks.example.org/x/y")
('+49********23', 'J*****@e******.org', 'https://h****.example.org/***')
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from geo import outbox
from geo.cells import cell_or_none
from geo.errors import Conflict, Invalid, NotFound, Unprocessable
from geo.i18n import _
from outages.models import SUBSCRIPTION_CHANNELS, SUBSCRIPTION_LANGUAGES
from outages.notices import in_language
from topology import places

__all__ = ["FIELDS", "SubscriptionRequest", "SubscriptionView", "parse_subscription", "normalise_address", "mask", "subscribe",
           "confirm", "status", "by_token", "unsubscribe", "MAX_ATTEMPTS", "CODE_VALID"]

# Wrong codes allowed against one code: a million codes, five guesses.
MAX_ATTEMPTS = 5
CODE_VALID = timedelta(hours=24)
FIELDS = {"channel", "address", "account", "cell", "language"}
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_ACCOUNT = re.compile(r"^[0-9A-Za-z-]{1,40}$")
_CELL = re.compile(r"^[0-9A-Za-z_.-]{1,40}$")


@dataclass(frozen=True)
class SubscriptionRequest:
    """What a subscriber asked for: where to, in which language, about an account or a cell."""

    channel: str
    address: str
    language: str
    account: str | None = None
    cell: str | None = None


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription as a public route shows it: the address and account masked."""

    reference: str
    channel: str
    address: str
    language: str
    target: str
    account: str | None
    cell: str | None
    state: str
    created_at: datetime
    confirmed_at: datetime | None

    def as_dict(self) -> dict:
        """The API's JSON body."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# -- parsing -----------------------------------------------------------------------------------------
def _webhook(value: str) -> str:
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.scheme != "https" or not host or parts.username or parts.password or host == "localhost":
        raise Invalid(_("address must be an https URL of a public host for a webhook"), field="address")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return value
    if not ip.is_global:  # the sender must not be pointed at the utility's own network
        raise Invalid(_("address must be an https URL of a public host for a webhook"), field="address")
    return value


def normalise_address(channel: str, value) -> str:
    """The address in the form it is stored and compared in; ``Invalid`` when it is none."""
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 200:
        raise Invalid(_("address must be text of 1 to 200 characters"), field="address")
    value = value.strip()
    if channel == "sms":
        digits = re.sub(r"[\s().-]", "", value)
        if not re.fullmatch(r"\+?[0-9]{6,15}", digits):
            raise Invalid(_("address must be a phone number (digits, optionally starting with +) for SMS"),
                          field="address")
        return digits
    if channel == "email":
        if not _EMAIL.match(value):
            raise Invalid(_("address must be an e-mail address"), field="address")
        local, domain = value.rsplit("@", 1)
        return f"{local}@{domain.lower()}"
    return _webhook(value)


def parse_subscription(body: dict, language: str) -> SubscriptionRequest:
    """A subscription request from a JSON object (of ``FIELDS`` only): ``channel``, ``address``, exactly one of
    ``account`` (the account number) or ``cell`` (a grid cell's code), and optionally ``language``
    (default: the request's)."""
    channel = body.get("channel")
    if channel not in SUBSCRIPTION_CHANNELS:
        raise Invalid(_("channel must be one of %(channels)s", channels=", ".join(SUBSCRIPTION_CHANNELS)),
                      field="channel")
    chosen = body.get("language", language)
    if chosen not in SUBSCRIPTION_LANGUAGES:
        raise Invalid(_("language must be one of %(languages)s", languages=", ".join(SUBSCRIPTION_LANGUAGES)),
                      field="language")
    account, cell = body.get("account"), body.get("cell")
    if (account is None) == (cell is None):
        raise Invalid(_("give exactly one of: account (the account number on the bill) or cell (a grid cell's code)"))
    if account is not None and (not isinstance(account, str) or not _ACCOUNT.match(account.strip())):
        raise Invalid(_("account must be the account number on the bill (digits)"), field="account")
    if cell is not None and (not isinstance(cell, str) or not _CELL.match(cell.strip())):
        raise Invalid(_("cell must be a grid cell's code"), field="cell")
    return SubscriptionRequest(channel, normalise_address(channel, body.get("address")), chosen,
                               account.strip() if account else None, cell.strip() if cell else None)


def mask(channel: str, address: str) -> str:
    """``address`` with most of it hidden: enough for its owner to recognise it, too little to use."""
    def hide(part: str, keep: int = 1) -> str:
        return part[:keep] + "*" * max(len(part) - keep, 3)
    if channel == "sms":
        head = 3 if address.startswith("+") else 2
        return address[:head] + "*" * max(len(address) - head - 2, 3) + address[-2:]
    if channel == "email":
        local, domain = address.rsplit("@", 1)
        name, _dot, top = domain.rpartition(".")
        return f"{hide(local)}@{hide(name)}.{top}"
    parts = urlsplit(address)
    first, _dot, rest = (parts.hostname or "").partition(".")
    return f"{parts.scheme}://{hide(first)}{'.' + rest if rest else ''}/***"


# -- writing -----------------------------------------------------------------------------------------
def _code_hash(reference: str, code: str) -> str:
    return hashlib.sha256(f"{reference}:{code}".encode()).hexdigest()


_UPSERT = text("""
INSERT INTO outage_subscriptions (reference, token, channel, address, language, service_point_id, account_number,
                                  cell_code, code_hash)
VALUES (:reference, :token, :channel, :address, :language, :service_point, :account, :cell, '')
ON CONFLICT (channel, address, (coalesce(service_point_id, 0)), (coalesce(cell_code, ''))) WHERE unsubscribed_at IS NULL
DO UPDATE SET codes_sent = outage_subscriptions.codes_sent + 1, attempts = 0, code_sent_at = now(),
              language = EXCLUDED.language
RETURNING id, reference, codes_sent
""")
_SET_CODE = text("UPDATE outage_subscriptions SET code_hash = :hash WHERE id = :id")


def _target(connection: Connection, request: SubscriptionRequest) -> tuple[int | None, str | None]:
    """The service point of the account, or the cell; ``NotFound`` when there is none."""
    if request.account is not None:
        found = places.by_account(connection, request.account)
        if found is None:
            raise NotFound(_("no customer has account number %(account)s; check the number on your bill",
                             account=request.account), field="account")
        return found.id, None
    if cell_or_none(connection, request.cell) is None:
        raise NotFound(_("no grid cell %(code)s", code=request.cell), field="cell")
    return None, request.cell


def subscribe(session: Session, request: SubscriptionRequest) -> SubscriptionView:
    """Record the subscription (unconfirmed), or find the live one for the same address and
    target, and send a new code to the address through the outbox."""
    code = f"{secrets.randbelow(10 ** 6):06d}"
    with session.begin():
        connection = session.connection()
        service_point, cell = _target(connection, request)
        row = connection.execute(_UPSERT, {
            "reference": "S" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(11)),
            "token": secrets.token_urlsafe(32), "channel": request.channel, "address": request.address,
            "language": request.language, "service_point": service_point, "account": request.account,
            "cell": cell}).one()
        connection.execute(_SET_CODE, {"hash": _code_hash(row.reference, code), "id": row.id})
        now = connection.execute(text("SELECT now()")).scalar_one()
        body = in_language(_("GridAtlas: your confirmation code is %(code)s. Enter it to receive outage updates; "
                             "if you did not ask for them, ignore this message.", code=code), request.language)
        outbox.enqueue(connection, [outbox.Message(
            kind="subscription_code", recipient=request.address, body=body, due_at=now,
            reference=f"subscription:{row.id}", channel=request.channel,
            subject=in_language(_("GridAtlas: your confirmation code"), request.language),
            dedup_key=f"subscription:{row.id}:code:{row.codes_sent}")])
        return _view(connection, "s.id = :id", {"id": row.id})


_VIEW = """
SELECT s.reference, s.channel, s.address, s.language, s.cell_code, s.account_number, s.confirmed_at,
       s.unsubscribed_at, s.created_at, s.id, s.attempts, s.code_hash, s.code_sent_at
  FROM outage_subscriptions s
"""


def _row(connection: Connection, where: str, values: dict, lock: bool = False):
    row = connection.execute(text(_VIEW + " WHERE " + where + (" FOR UPDATE OF s" if lock else "")), values).first()
    if row is None:
        raise NotFound(_("no such subscription"))
    return row


def _as_view(row) -> SubscriptionView:
    state = "unsubscribed" if row.unsubscribed_at else "confirmed" if row.confirmed_at else "unconfirmed"
    account = row.account_number
    return SubscriptionView(
        row.reference, row.channel, mask(row.channel, row.address), row.language,
        "account" if row.cell_code is None else "area",
        "*" * max(len(account) - 3, 3) + account[-3:] if account else None, row.cell_code, state, row.created_at,
        row.confirmed_at)


def _view(connection: Connection, where: str, values: dict) -> SubscriptionView:
    return _as_view(_row(connection, where, values))


def status(connection: Connection, reference: str) -> SubscriptionView:
    """The subscription with this reference (masked)."""
    return _view(connection, "s.reference = :r", {"r": reference})


def confirm(session: Session, reference: str, code) -> SubscriptionView:
    """Confirm the subscription with the code sent to its address. A wrong code counts (committed,
    so that refusing does not undo the count); after ``MAX_ATTEMPTS`` or ``CODE_VALID`` a new code
    must be asked for by subscribing again."""
    if not isinstance(code, str) or not re.fullmatch(r"[0-9]{6}", code.strip()):
        raise Invalid(_("code must be the six digits sent to you"), field="code")
    with session.begin():
        connection = session.connection()
        row = _row(connection, "s.reference = :r AND s.unsubscribed_at IS NULL", {"r": reference}, lock=True)
        if row.confirmed_at is not None:
            return _as_view(row)
        now = connection.execute(text("SELECT now()")).scalar_one()
        if row.attempts >= MAX_ATTEMPTS or now - row.code_sent_at > CODE_VALID:
            raise Conflict(_("this code can no longer be used: subscribe again to get a new one"))
        right = hmac.compare_digest(row.code_hash, _code_hash(reference, code.strip()))
        connection.execute(text(
            "UPDATE outage_subscriptions SET attempts = attempts + CASE WHEN :right THEN 0 ELSE 1 END, "
            "confirmed_at = CASE WHEN :right THEN now() END WHERE id = :id"), {"right": right, "id": row.id})
        view = _view(connection, "s.id = :id", {"id": row.id})
    if not right:
        raise Unprocessable(_("the code does not match; %(left)s tries left", left=MAX_ATTEMPTS - row.attempts - 1),
                            field="code")
    return view


def by_token(connection: Connection, token: str) -> SubscriptionView:
    """The subscription an unsubscribe link names (masked)."""
    return _view(connection, "s.token = :t", {"t": token})


def unsubscribe(session: Session, token: str) -> SubscriptionView:
    """End the subscription the link names; again: nothing changes."""
    with session.begin():
        connection = session.connection()
        left = connection.execute(text("UPDATE outage_subscriptions SET unsubscribed_at = now() "
                                       "WHERE token = :t AND unsubscribed_at IS NULL RETURNING id"), {"t": token}).scalar()
        if left is not None:  # nothing more reaches them, not even what was queued before they left
            outbox.cancel_pending_to(connection, f":sub:{left}")
        return _view(connection, "s.token = :t", {"t": token})
