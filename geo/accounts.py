"""Accounts, their passwords and their API tokens.

Passwords are kept as argon2id hashes. An API token is ``ga_<id>_<secret>``: the id finds the
row, the secret is 32 random bytes kept only as its SHA-256 (a secret of that size needs no slow
hash: nobody can guess it, and a stolen table gives nothing to try offline). A token is shown
once, expires, and can be revoked. A session remembers the account's ``stamp``, which changes
with its password or when it is disabled, so either signs every session of it out.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import (ARRAY, BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String, delete,
                        func, or_, select, update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo.auth import ROLES, SESSION_LIFETIME, Principal
from geo.db import Base, get_session, read
from geo.errors import Conflict, Invalid, NotFound, Unauthorized
from geo.i18n import _

__all__ = [
    "Account", "ApiToken", "AccountView", "IssuedToken", "TokenView", "NAME_PATTERN", "MIN_PASSWORD",
    "create_account", "change_account", "set_password", "set_disabled", "set_control_feeders", "set_control_cells", "authenticate", "list_accounts",
    "issue_token", "revoke_token", "list_tokens", "principal_for_token", "principal_for_session",
    "account_id_of", "account_names", "SignInSession", "start_session", "end_session",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 hashes any length; a cap keeps a login from being a CPU sink
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 3650
_TOKEN = re.compile(r"^ga_([0-9]{1,18})_([A-Za-z0-9_-]{20,100})$")
_hasher = PasswordHasher()
# Verified against when the name is unknown, so that a login takes as long either way and does
# not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Account(Base):
    """A person or an integration that signs in; ``role`` is one of ``geo.auth.ROLES``."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="account_role_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # A dispatcher limited to these feeders (codes); NULL: everywhere.
    control_feeders: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    # ... or to the feeders of the transformers inside these grid cells (both given: either).
    control_cells: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    # Changes with the password and when the account is disabled: sessions carrying an older one end.
    stamp: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A bearer token of an account, kept as the SHA-256 of its secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(120))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SignInSession(Base):
    """A signed-in browser session. The cookie carries ``<id>_<secret>``; the row keeps the secret's
    SHA-256, and signing out ends the row, so that no copy of the cookie signs anyone back in."""

    __tablename__ = "sign_in_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


_accounts = Account.__table__
_tokens = ApiToken.__table__
_sessions = SignInSession.__table__
_SESSION = re.compile(r"^([0-9]{1,18})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class AccountView:
    """An account as listed (never its hash)."""

    name: str
    role: str
    disabled: bool
    control_feeders: list[str] | None
    created_at: datetime
    last_login_at: datetime | None
    control_cells: list[str] | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "disabled": self.disabled, "control_feeders": self.control_feeders,
                "control_cells": self.control_cells,
                "created_at": self.created_at.isoformat(),
                "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None}


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: ``token`` is the only time its secret is seen."""

    id: int
    account: str
    token: str
    expires_at: datetime

    def as_dict(self) -> dict:
        return {"id": self.id, "account": self.account, "token": self.token, "expires_at": self.expires_at.isoformat()}


@dataclass(frozen=True)
class TokenView:
    """A token as listed: never its secret."""

    id: int
    account: str
    label: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def as_dict(self) -> dict:
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        return {"id": self.id, "account": self.account, "label": self.label, "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at), "revoked_at": iso(self.revoked_at),
                "last_used_at": iso(self.last_used_at)}


# -- checks ----------------------------------------------------------------------------------------
def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise Invalid(_("an account name is 2 to 64 letters, digits, '.', '_', '@' or '-', starting with a "
                        "letter or digit; got %(name)r", name=name), field="name")
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise Invalid(_("role must be one of %(roles)s; got %(role)r", roles=", ".join(ROLES), role=role), field="role")
    return role


def _check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise Invalid(_("a password has at least %(count)s characters", count=MIN_PASSWORD), field="password")
    if len(password) > MAX_PASSWORD:
        raise Invalid(_("a password has at most %(count)s characters", count=MAX_PASSWORD), field="password")
    return password


def _check_feeders(feeders: list[str] | None) -> list[str] | None:
    if feeders is None:
        return None
    if not isinstance(feeders, list) or not all(isinstance(code, str) and 0 < len(code) <= 64 for code in feeders):
        raise Invalid(_("control_feeders must be a list of feeder codes, or null for everywhere"),
                      field="control_feeders")
    return sorted(set(feeders))


def _check_cells(cells: list[str] | None) -> list[str] | None:
    if cells is None:
        return None
    if not isinstance(cells, list) or not all(isinstance(code, str) and 0 < len(code) <= 64 for code in cells):
        raise Invalid(_("control_cells must be a list of grid cell codes, or null"), field="control_cells")
    return sorted(set(cells))


def _account_id(session: Session, name: str) -> int:
    found = session.execute(select(_accounts.c.id).where(_accounts.c.name == name)).scalar()
    if found is None:
        raise NotFound(_("no account named %(name)r", name=name))
    return found


def account_id_of(connection, name: str, role: str) -> int | None:
    """The id of the account ``name`` if it has ``role`` (packages that tie their rows to an account:
    a crew to its sign-in account); None otherwise."""
    return connection.execute(select(_accounts.c.id).where(_accounts.c.name == name,
                                                           _accounts.c.role == role)).scalar()


def account_names(connection, ids) -> dict[int, str]:
    """Account id -> name for ``ids``."""
    ids = [int(i) for i in ids if i is not None]
    if not ids:
        return {}
    return dict(connection.execute(select(_accounts.c.id, _accounts.c.name).where(_accounts.c.id.in_(ids))).all())


# -- accounts --------------------------------------------------------------------------------------
def create_account(session: Session, name: str, role: str, password: str | None,
                   control_feeders: list[str] | None = None, control_cells: list[str] | None = None) -> AccountView:
    """A new account; ``password`` None makes one that signs in only with tokens (an integration)."""
    values = {"name": _check_name(name), "role": _check_role(role), "stamp": secrets.token_hex(16),
              "password_hash": _hasher.hash(_check_password(password)) if password is not None else None,
              "control_feeders": _check_feeders(control_feeders), "control_cells": _check_cells(control_cells)}
    try:
        with session.begin_nested():
            row = session.execute(_accounts.insert().values(**values).returning(_accounts)).one()
    except IntegrityError:
        raise Conflict(_("an account named %(name)r exists already", name=name)) from None
    return _view(row)


def _view(row) -> AccountView:
    return AccountView(row.name, row.role, row.disabled, row.control_feeders, row.created_at, row.last_login_at,
                       row.control_cells)


def set_password(session: Session, name: str, password: str) -> None:
    """A new password; every session of the account ends."""
    account_id = _account_id(session, name)
    session.execute(update(_accounts).where(_accounts.c.id == account_id).values(
        password_hash=_hasher.hash(_check_password(password)), stamp=secrets.token_hex(16)))


def set_disabled(session: Session, name: str, disabled: bool = True) -> None:
    """Disable (or enable) an account: its sessions end and its tokens stop working."""
    account_id = _account_id(session, name)
    session.execute(update(_accounts).where(_accounts.c.id == account_id).values(
        disabled=disabled, stamp=secrets.token_hex(16)))


def set_control_feeders(session: Session, name: str, feeders: list[str] | None) -> None:
    """Limit a dispatcher to ``feeders`` (None: everywhere)."""
    account_id = _account_id(session, name)
    session.execute(update(_accounts).where(_accounts.c.id == account_id).values(
        control_feeders=_check_feeders(feeders)))


def set_control_cells(session: Session, name: str, cells: list[str] | None) -> None:
    """Limit a dispatcher to the feeders of the transformers inside grid ``cells`` (None: no cells)."""
    account_id = _account_id(session, name)
    session.execute(update(_accounts).where(_accounts.c.id == account_id).values(control_cells=_check_cells(cells)))


def change_account(session: Session, name: str, changes: dict) -> None:
    """Apply ``disabled``, ``password``, ``control_feeders`` and ``control_cells`` from ``changes``
    (the ones present)."""
    if "password" in changes:
        set_password(session, name, changes["password"])
    if "control_feeders" in changes:
        set_control_feeders(session, name, changes["control_feeders"])
    if "control_cells" in changes:
        set_control_cells(session, name, changes["control_cells"])
    if "disabled" in changes:
        set_disabled(session, name, changes["disabled"])


def list_accounts(session: Session) -> list[AccountView]:
    """Every account, by name."""
    return [_view(row) for row in session.execute(select(_accounts).order_by(_accounts.c.name))]


def _principal(row, token_id: int | None = None) -> Principal:
    """The account as the guard sees it; a zone given as grid cells becomes the feeders of the
    transformers inside them now (cells and switching change, the zone follows)."""
    feeders = set(row.control_feeders) if row.control_feeders is not None else None
    if row.control_cells is not None:
        from geo.cells import zone_feeders

        feeders = (feeders or set()) | read(zone_feeders, row.control_cells)
        _end_read()
    return Principal(row.id, row.name, row.role, token_id, frozenset(feeders) if feeders is not None else None)


def authenticate(session: Session, name: str, password: str) -> tuple[Principal, str]:
    """The account and its session stamp when ``password`` is right; Unauthorized otherwise, with
    the same answer (and about the same time) for an unknown name, a wrong password and a disabled account."""
    row = session.execute(select(_accounts).where(_accounts.c.name == name)).first() if isinstance(name, str) else None
    hashed = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(hashed, password[:MAX_PASSWORD] if isinstance(password, str) else "")
        good = row is not None and row.password_hash is not None and not row.disabled
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        good = False
    if not good:
        raise Unauthorized(_("the name or the password is wrong, or the account is disabled"))
    session.execute(update(_accounts).where(_accounts.c.id == row.id).values(last_login_at=func.now()))
    return _principal(row), row.stamp


def start_session(session: Session, account_id: int) -> str:
    """A new server-side session of the account, lasting ``SESSION_LIFETIME`` from now; returns
    what its cookie carries. The account's ended and expired sessions are pruned on the way."""
    session.execute(delete(_sessions).where(_sessions.c.account_id == account_id,
                                            or_(_sessions.c.ended_at.is_not(None), _sessions.c.expires_at < func.now())))
    secret = secrets.token_urlsafe(32)
    session_id = session.execute(_sessions.insert().values(
        account_id=account_id, secret_sha256=_digest(secret), expires_at=datetime.now(timezone.utc) + SESSION_LIFETIME,
    ).returning(_sessions.c.id)).scalar_one()
    return f"{session_id}_{secret}"


def end_session(session: Session, value: str | None) -> None:
    """End the session a cookie carries (signing out); an unknown or malformed one is ignored."""
    parsed = _id_and_digest(_SESSION, value)
    if parsed is not None:
        session.execute(update(_sessions).where(_sessions.c.id == parsed[0], _sessions.c.ended_at.is_(None),
                                                _sessions.c.secret_sha256 == parsed[1]).values(ended_at=func.now()))


def principal_for_session(account_id: int, stamp: str | None, value: str | None) -> Principal | None:
    """The account a session cookie names, if it still exists, is enabled, its stamp holds, and
    the server-side session the cookie carries is neither ended nor expired."""
    parsed = _id_and_digest(_SESSION, value)
    if parsed is None or stamp is None:
        return None
    query = (select(_accounts, _sessions.c.secret_sha256.label("session_sha256"))
             .join(_sessions, _sessions.c.account_id == _accounts.c.id)
             .where(_accounts.c.id == account_id, _sessions.c.id == parsed[0], _sessions.c.ended_at.is_(None),
                    _sessions.c.expires_at > func.now()))
    row = read(lambda connection: connection.execute(query).first())
    _end_read()
    if row is None or row.disabled or not hmac.compare_digest(row.stamp, stamp) \
            or not hmac.compare_digest(row.session_sha256, parsed[1]):
        return None
    return _principal(row)


# -- tokens ----------------------------------------------------------------------------------------
def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _id_and_digest(pattern: re.Pattern, value: str | None) -> tuple[int, str] | None:
    """The row id and the secret's SHA-256 of a credential made as ``<id>_<secret>`` (a token, a
    session cookie's value), or None when ``value`` is not one."""
    match = pattern.match(value) if isinstance(value, str) else None
    return (int(match.group(1)), _digest(match.group(2))) if match is not None else None


def issue_token(session: Session, name: str, expires_days: int = DEFAULT_TOKEN_DAYS,
                label: str | None = None) -> IssuedToken:
    """A new token for the account, valid ``expires_days`` days."""
    if not isinstance(expires_days, int) or isinstance(expires_days, bool) or not 1 <= expires_days <= MAX_TOKEN_DAYS:
        raise Invalid(_("expires_days must be a whole number of days from 1 to %(most)s", most=MAX_TOKEN_DAYS),
                      field="expires_days")
    if label is not None and (not isinstance(label, str) or len(label) > 120):
        raise Invalid(_("label must be a text of at most 120 characters"), field="label")
    account_id = _account_id(session, name)
    secret = secrets.token_urlsafe(32)
    expires = datetime.now(timezone.utc) + timedelta(days=expires_days)
    token_id = session.execute(_tokens.insert().values(
        account_id=account_id, label=label, secret_sha256=_digest(secret), expires_at=expires,
    ).returning(_tokens.c.id)).scalar_one()
    return IssuedToken(token_id, name, f"ga_{token_id}_{secret}", expires)


def revoke_token(session: Session, token_id: int) -> None:
    """Revoke a token (NotFound when there is none with that id; revoking twice is harmless)."""
    found = session.execute(update(_tokens).where(_tokens.c.id == token_id).values(
        revoked_at=func.coalesce(_tokens.c.revoked_at, func.now())).returning(_tokens.c.id)).scalar()
    if found is None:
        raise NotFound(_("no token with id %(id)s", id=token_id))


def list_tokens(session: Session, name: str | None = None) -> list[TokenView]:
    """Tokens (of one account), newest first; never their secrets."""
    query = (select(_tokens, _accounts.c.name.label("account")).join(_accounts, _accounts.c.id == _tokens.c.account_id)
             .order_by(_tokens.c.id.desc()))
    if name is not None:
        query = query.where(_accounts.c.name == name)
    return [TokenView(row.id, row.account, row.label, row.created_at, row.expires_at, row.revoked_at, row.last_used_at)
            for row in session.execute(query)]


def principal_for_token(token: str) -> Principal | None:
    """The account of a live token (known, unexpired, unrevoked, of an enabled account), else None."""
    parsed = _id_and_digest(_TOKEN, token)
    if parsed is None:
        return None
    token_id, secret_sha256 = parsed
    row = read(lambda connection: connection.execute(
        select(_accounts, _tokens.c.secret_sha256, _tokens.c.last_used_at)
        .join(_tokens, _tokens.c.account_id == _accounts.c.id)
        .where(_tokens.c.id == token_id, _tokens.c.revoked_at.is_(None), _tokens.c.expires_at > func.now())
    ).first())
    good = row is not None and not row.disabled and hmac.compare_digest(row.secret_sha256, secret_sha256)
    # Its use is recorded at most once a minute: a crew phone polling every few seconds should not
    # write a row each time.
    if good and (row.last_used_at is None or datetime.now(timezone.utc) - row.last_used_at > timedelta(minutes=1)):
        get_session().execute(update(_tokens).where(_tokens.c.id == token_id).values(last_used_at=func.now()))
    _end_read()
    return _principal(row, token_id) if good else None


def _end_read() -> None:
    """Commit what the look-up began on the request's session (a token's last use; in the tests'
    app, reads share the session): the view's service functions begin their own transactions.
    The look-up itself runs on the thread's autocommit read connection: one round trip, no
    pool checkout, no BEGIN and COMMIT (1.8 ms a request on the session, measured)."""
    session = get_session()
    if session.in_transaction():
        session.commit()
