"""The audit log: every write made by an account or a token, and every sign-in and sign-out.

One ``after_request`` hook records each state-changing request that came with an account
(switching, outlet administration, account changes, imports, and whatever routes come later:
none can forget to): who (account and token), when, what (method, route, the answer's status
and a summary the view puts in ``note_audit``), and from which address. Refused attempts are
recorded too: a 403 on switching is exactly what an auditor looks for. The row is written in a
transaction of its own once the answer is decided; the log is append-only (no route changes it).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import BigInteger, DateTime, Integer, SmallInteger, String, func, select
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.auth import SAFE_METHODS, current_principal
from geo.db import Base, get_engine
from geo.errors import Invalid
from geo.i18n import _

__all__ = ["AuditEntry", "AuditRecord", "AuditPage", "note_audit", "record", "audit_log", "init_app"]

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


def record(connection, *, account: str | None, role: str | None, token_id: int | None, action: str, method: str,
           path: str, status: int, address: str | None, detail: dict | None) -> None:
    """Append one entry."""
    connection.execute(_audit.insert().values(
        account=account, role=role, token_id=token_id, action=action[:120], method=method, path=path[:500],
        status=status, address=address, detail=detail))


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


def _audit_request(response: Response) -> Response:
    """Record a state-changing request made by an account (or a sign-in attempt that named one)."""
    if request.method in SAFE_METHODS or request.endpoint is None:
        return response
    principal = g.get("principal")
    detail = g.get("audit_detail")
    if principal is None and not detail:
        return response  # anonymous public writes (bookings) are the customers' own, not audited here
    with get_engine().begin() as connection:
        record(connection, account=principal.name if principal else detail.get("account"),
               role=principal.role if principal else None, token_id=principal.token_id if principal else None,
               action=request.endpoint, method=request.method, path=request.path, status=response.status_code,
               address=request.remote_addr, detail=detail)
    return response


def init_app(app: Flask) -> None:
    """Audit every request once its answer is decided."""
    app.after_request(_audit_request)
