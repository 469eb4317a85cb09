"""The notification outbox: messages (SMS, e-mail, webhook) written in the transaction of the change
they announce, and delivered later by a sender.

Writing a message is part of the change itself: a booking that rolls back leaves no
confirmation behind, and one that commits cannot lose its message. Every package that tells
customers something (bookings, outages) enqueues here; the sender (geo/notify.py, ``flask notify
run``) claims ``pending`` rows whose ``due_at`` has come and records every attempt.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Callable, Iterable

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base

__all__ = ["OUTBOX_STATUSES", "ATTEMPT_OUTCOMES", "CHANNELS", "NotificationOutbox", "NotificationAttempt",
           "NotificationPeriodicRun", "Message", "enqueue", "enqueue_query", "QUERY_COLUMNS", "cancel_pending",
           "cancel_pending_to", "Periodic", "register_periodic", "periodic_jobs"]

# ``sending``: a sender has claimed the message and holds it until ``lease_until`` (geo/notify.py).
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "cancelled")
ATTEMPT_OUTCOMES = ("sent", "retry", "failed", "lost")
CHANNELS = ("sms", "email", "webhook")


class NotificationOutbox(Base):
    """A message to send (SMS, e-mail, webhook) when ``due_at`` comes; a sender delivers it."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in OUTBOX_STATUSES)})", name="outbox_status_known"),
        Index("ix_notification_outbox_due", "due_at", postgresql_where=text("status = 'pending'")),
        # Claimed messages whose sender may have died: a sender takes them again once the lease ends.
        Index("ix_notification_outbox_lease", "lease_until", postgresql_where=text("status = 'sending'")),
        # One message per dedup key: an outage's "restored" to one subscriber is written once, however
        # many times the change that announces it is replayed.
        Index("ux_notification_outbox_dedup", "dedup_key", unique=True, postgresql_where=text("dedup_key IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20), default="sms", server_default="sms")
    recipient: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # What the message is about, e.g. ``booking:42``: lets its sender or a later change find it.
    reference: Mapped[str | None] = mapped_column(String(120), index=True)
    dedup_key: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(12), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # While ``sending``: the claim's end (after it another sender may take the message again,
    # carrying the same key to the receiver) and who holds it (host:pid:token).
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(80))


class NotificationAttempt(Base):
    """One delivery attempt of a message: who tried it through which backend, and what came of it
    (``lost``: the sender's lease ended before it recorded anything, delivered or not)."""

    __tablename__ = "notification_attempts"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({', '.join(repr(s) for s in ATTEMPT_OUTCOMES)})", name="attempt_outcome_known"),
        Index("ix_notification_attempts_message", "message_id", "attempt"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("notification_outbox.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(80))
    backend: Mapped[str] = mapped_column(String(20))
    # None for a ``lost`` attempt: its sender died before it said when it began.
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(Text)
    response_code: Mapped[int | None] = mapped_column(Integer)


class NotificationPeriodicRun(Base):
    """When a periodic job last started (on any sender) and how many messages it wrote."""

    __tablename__ = "notification_periodic_runs"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    written: Mapped[int] = mapped_column(Integer)


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
    # Names the message itself (e.g. ``outage:OUT-12:restored:sub:7``): a second enqueue with the
    # same key writes nothing, and senders hand it to the receiver to drop a repeated delivery.
    dedup_key: str | None = None

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}; got {self.channel!r}")


def enqueue(connection: Connection, messages: Iterable[Message]) -> int:
    """Write ``messages`` to the outbox in the caller's transaction, each dedup key once (the
    database decides, so two writers racing on one key leave one message); return how many were written."""
    rows = [asdict(message) for message in messages]
    if not rows:
        return 0
    statement = insert(_outbox).on_conflict_do_nothing(index_elements=["dedup_key"],
                                                       index_where=text("dedup_key IS NOT NULL"))
    return len(connection.execute(statement.returning(_outbox.c.id), rows).all())


# The columns a query handed to ``enqueue_query`` yields, in this order.
QUERY_COLUMNS = ("kind", "channel", "recipient", "subject", "body", "reference", "dedup_key", "due_at")


def enqueue_query(connection: Connection, rows) -> int:
    """Write the messages a query yields (a selectable with ``QUERY_COLUMNS``) in one statement,
    each dedup key once; return how many were written. For a package that writes a message per
    row of its own tables (100,000 subscribers of one outage) without a Python object per message."""
    written = insert(_outbox).from_select(list(QUERY_COLUMNS), rows).on_conflict_do_nothing(
        index_elements=["dedup_key"], index_where=text("dedup_key IS NOT NULL")).returning(_outbox.c.id).cte("written")
    return connection.execute(select(func.count()).select_from(written)).scalar_one()


def cancel_pending_to(connection: Connection, key_suffix: str) -> int:
    """Cancel the messages not sent yet whose dedup key ends with ``key_suffix`` (everything still
    queued for a subscriber who left); return how many."""
    return connection.execute(update(_outbox).where(
        _outbox.c.status == "pending", _outbox.c.dedup_key.endswith(key_suffix, autoescape=True),
    ).values(status="cancelled")).rowcount


def cancel_pending(connection: Connection, reference: str, kind: str) -> int:
    """Cancel the messages of ``kind`` about ``reference`` not sent yet (a reminder of a booking
    that moved); return how many."""
    return connection.execute(update(_outbox).where(
        _outbox.c.reference == reference, _outbox.c.kind == kind, _outbox.c.status == "pending",
    ).values(status="cancelled")).rowcount


@dataclass(frozen=True)
class Periodic:
    """A job that writes messages on a schedule (an outage's progress update every two hours, a
    booking's reminder): ``job(connection, now)`` enqueues what is due and returns how many."""

    name: str
    job: Callable[[Connection, datetime], int]
    every_seconds: float


_PERIODIC: dict[str, Periodic] = {}


def register_periodic(name: str, job: Callable[[Connection, datetime], int], every_seconds: float) -> None:
    """Have the sender (``flask notify run``) run ``job`` every ``every_seconds``: a registry, so that
    geo stays below the packages that know what is due."""
    _PERIODIC[name] = Periodic(name, job, every_seconds)


def periodic_jobs() -> tuple[Periodic, ...]:
    return tuple(_PERIODIC.values())
