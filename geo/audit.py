"""The audit log: every write made by an account or a token, and every sign-in and sign-out.

One ``after_request`` hook records each state-changing request that came with an account
(switching, outlet administration, account changes, imports, and whatever routes come later:
none can forget to): who (account and token), when, what (method, route, the answer's status
and a summary the view puts in ``note_audit``), and from which address. Refused attempts are
recorded too: a 403 on switching is exactly what an auditor looks for. A write's row is
inserted in the write's own transaction (a ``before_commit`` hook on the request's session) and
completed with the answer's status afterwards; no route changes or deletes the log.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy import BigInteger, DateTime, SmallInteger, String, event, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo.auth import SAFE_METHODS
from geo.db import Base, get_session, read
from geo.errors import Invalid, database_unavailable
from geo.i18n import _

__all__ = ["AuditEntry", "AuditRecord", "AuditPage", "note_audit", "record", "audit_log", "audited_actions", "init_app"]

MAX_PAGE = 500


class AuditEntry(Base):
    """One audited request."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    account: Mapped[str | None] = mapped_column(String(64), index=True)
    role: Mapped[str | None] = mapped_column(String(20))
    token_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(120), index=True)  # the route's endpoint, e.g. topology_trace.operate
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[int] = mapped_column(SmallInteger)
    address: Mapped[str | None] = mapped_column(INET)
    detail: Mapped[dict | None] = mapped_column(JSONB)


_audit = AuditEntry.__table__


@dataclass(frozen=True)
class AuditRecord:
    """An entry as read back."""

    id: int
    at: datetime
    account: str | None
    role: str | None
    token_id: int | None
    action: str
    method: str
    path: str
    status: int
    address: str | None
    detail: dict | None

    def as_dict(self) -> dict:
        return {"id": self.id, "at": self.at.isoformat(), "account": self.account, "role": self.role,
                "token_id": self.token_id, "action": self.action, "method": self.method, "path": self.path,
                "status": self.status, "address": self.address, "detail": self.detail}


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first, and where the next page starts (None: no more)."""

    entries: list[AuditRecord]
    next_before: int | None

    def as_dict(self) -> dict:
        return {"entries": [entry.as_dict() for entry in self.entries], "next_before": self.next_before}


def note_audit(**detail: Any) -> None:
    """Add to the audit entry of this request (an operation id, the outlet changed, counts)."""
    g.setdefault("audit_detail", {}).update(detail)


def _clean(value: Any) -> Any:
    """``value`` without NUL characters, which PostgreSQL's text and jsonb refuse (a path or a
    name can carry one: ``%00``); an audit row must never fail on what it records."""
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def record(connection, *, account: str | None, role: str | None, token_id: int | None, action: str, method: str,
           path: str, status: int, address: str | None, detail: dict | None) -> int:
    """Append one entry; its id."""
    return connection.execute(_audit.insert().values(
        account=_clean(account)[:64] if account else None, role=role, token_id=token_id, action=_clean(action)[:120],
        method=method, path=_clean(path)[:500], status=status, address=address, detail=_clean(detail),
    ).returning(_audit.c.id)).scalar_one()


def audit_log(connection, limit: int = 100, before: int | None = None, account: str | None = None,
              action: str | None = None) -> AuditPage:
    """The latest entries, newest first; ``before`` continues from a previous page's ``next_before``."""
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(_("limit must be between 1 and %(most)s", most=MAX_PAGE), field="limit")
    query = select(_audit).order_by(_audit.c.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(_audit.c.id < before)
    if account:
        query = query.where(_audit.c.account == account)
    if action:
        query = query.where(_audit.c.action == action)
    rows = connection.execute(query).all()
    entries = [AuditRecord(row.id, row.at, row.account, row.role, row.token_id, row.action, row.method, row.path,
                           row.status, str(row.address) if row.address is not None else None, row.detail)
               for row in rows[:limit]]
    return AuditPage(entries, entries[-1].id if len(rows) > limit else None)


def audited_actions(connection) -> list[str]:
    """The actions the log holds, for the audit page's filter."""
    return list(connection.execute(select(_audit.c.action).distinct().order_by(_audit.c.action)).scalars())


def _who() -> dict | None:
    """The audit entry's who, what and from where for this request; None when it is not audited
    (a read, or an anonymous public write: bookings are the customers' own)."""
    if not has_request_context() or request.method in SAFE_METHODS or request.endpoint is None:
        return None
    principal = g.get("principal")
    detail = g.get("audit_detail")
    if principal is None and not detail:
        return None
    return {"account": principal.name if principal else detail.get("account"),
            "role": principal.role if principal else None, "token_id": principal.token_id if principal else None,
            "action": request.endpoint, "method": request.method, "path": request.path,
            "address": request.remote_addr}


def _audit_in_transaction(session: Session) -> None:
    """Before the request's write commits, its audit row joins the same transaction (status 0:
    committed, answer not known yet): a write is never stored without its row, whatever happens
    to the database or the process between the commit and the answer."""
    if not has_request_context() or g.get("db_session") is not session or "audit_row" in g:
        return
    who = _who()
    if who is not None:
        g.audit_row = record(session.connection(), status=0, detail=g.get("audit_detail"), **who)


def _audit_request(response: Response) -> Response:
    """Once the answer is decided: complete this request's row with the status and the view's
    detail, or append the row of a request that committed nothing but was refused (4xx, 5xx) or
    noted something (a sign-out); a query sent with POST that changed nothing (a trace) leaves no
    row. Whatever the request's session left uncommitted is rolled back first (as the teardown
    would); the row is written on the thread's autocommit read connection. If the database is
    gone by now, the answer stands and the log says what was lost."""
    who = _who()
    row = g.setdefault("audit_row", None)  # from here on the commit hook leaves this request alone
    if who is None or row is None and response.status_code < 400 and not g.get("audit_detail"):
        return response  # nothing committed and nothing refused: a query made with POST (a trace)
    session = get_session()
    try:
        session.rollback()

        def complete(connection) -> None:
            if row is not None:  # who is known now, too: a sign-in's row was written before it signed in
                connection.execute(update(_audit).where(_audit.c.id == row).values(
                    status=response.status_code, detail=_clean(g.get("audit_detail")),
                    account=_clean(who["account"])[:64] if who["account"] else None, role=who["role"],
                    token_id=who["token_id"]))
            else:
                record(connection, status=response.status_code, detail=g.get("audit_detail"), **who)

        read(complete)  # the thread's autocommit connection: one round trip, no BEGIN and COMMIT
        if session.in_transaction():
            session.commit()  # the tests' app, whose reads share the request's session
    except DBAPIError as error:
        if not database_unavailable(error):
            raise
        current_app.logger.error("audit row not completed (database unavailable): %s %s", who,
                                 response.status_code)
    return response


def init_app(app: Flask) -> None:
    """Audit every write: in its own transaction before it commits, completed once its answer is decided."""
    event.listen(Session, "before_commit", _audit_in_transaction)
    app.after_request(_audit_request)
