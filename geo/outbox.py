"""The notification outbox: messages (SMS, e-mail, webhook) written in the transaction of the change
they announce, and delivered later by a sender.

Writing a message is part of the change itself: a booking that rolls back leaves no
confirmation behind, and one that commits cannot lose its message. Every package that tells
customers something (bookings, outages) enqueues here; the sender comes with the customer
information work and reads ``pending`` rows whose ``due_at`` has come.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, String, Text, func, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base

__all__ = ["OUTBOX_STATUSES", "CHANNELS", "NotificationOutbox", "Message", "enqueue", "cancel_pending"]

OUTBOX_STATUSES = ("pending", "sent", "failed", "cancelled")
CHANNELS = ("sms", "email", "webhook")


class NotificationOutbox(Base):
    """A message to send (SMS, e-mail, webhook) when ``due_at`` comes; a sender delivers it."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in OUTBOX_STATUSES)})", name="outbox_status_known"),
        Index("ix_notification_outbox_due", "due_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20), default="sms", server_default="sms")
    recipient: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # What the message is about, e.g. ``booking:42``: lets its sender or a later change find it.
    reference: Mapped[str | None] = mapped_column(String(120), index=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(12), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


_outbox = NotificationOutbox.__table__


@dataclass(frozen=True)
class Message:
    """One message to one recipient, due at ``due_at``; ``reference`` names what it is about."""

    kind: str
    recipient: str
    body: str
    due_at: datetime
    reference: str | None = None
    channel: str = "sms"
    subject: str | None = None

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}; got {self.channel!r}")


def enqueue(connection: Connection, messages: Iterable[Message]) -> int:
    """Write ``messages`` to the outbox in the caller's transaction; return how many."""
    rows = [asdict(message) for message in messages]
    if rows:
        connection.execute(_outbox.insert(), rows)
    return len(rows)


def cancel_pending(connection: Connection, reference: str, kind: str) -> int:
    """Cancel the messages of ``kind`` about ``reference`` not sent yet (a reminder of a booking
    that moved); return how many."""
    return connection.execute(update(_outbox).where(
        _outbox.c.reference == reference, _outbox.c.kind == kind, _outbox.c.status == "pending",
    ).values(status="cancelled")).rowcount
