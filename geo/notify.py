"""The notification sender (``flask --app app notify run``): claims due messages from the outbox,
delivers each through its channel's backend (geo/notify_backends.py), records every attempt, and
runs the periodic jobs the packages registered (geo/outbox.register_periodic).

Any number of senders on any number of machines share the outbox: a claim takes due rows with
``FOR UPDATE SKIP LOCKED`` and commits them as ``sending`` with a lease before anything is
delivered, so no two senders hold one message. The outcome of each delivery is committed right
after it, one statement per message. A sender killed between a delivery and that statement leaves
the message ``sending``; once its lease ends another sender takes it again and delivers it with
the same key (``Idempotency-Key``, ``Message-ID``, the gateway's reference), which the receiver
uses to drop the repeat (docs/notifications.md says what is and is not guaranteed).
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from geo.notify_backends import Backend, Delivery, Outgoing
from geo.outbox import Periodic, periodic_jobs

__all__ = ["SenderSettings", "Sender", "Totals", "backoff", "message_key", "claim", "record", "release"]

logger = logging.getLogger("gridatlas.notify")


@dataclass(frozen=True)
class SenderSettings:
    """How a sender claims, retries and waits (NOTIFY_* in the configuration)."""

    batch: int = 100
    lease_seconds: float = 120.0
    max_attempts: int = 8
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    poll_seconds: float = 1.0

    @classmethod
    def of(cls, config: Mapping[str, Any], batch: int | None = None) -> "SenderSettings":
        """The settings in ``config``; ``batch`` as given on the command line."""
        return cls(batch=batch or cls.batch, lease_seconds=config["NOTIFY_LEASE_SECONDS"],
                   max_attempts=config["NOTIFY_MAX_ATTEMPTS"], backoff_seconds=config["NOTIFY_BACKOFF_SECONDS"],
                   backoff_max_seconds=config["NOTIFY_BACKOFF_MAX_SECONDS"],
                   poll_seconds=config["NOTIFY_POLL_SECONDS"])


def backoff(attempt: int, base: float, most: float) -> float:
    """Seconds to wait after failed attempt number ``attempt``: doubling from ``base``, at most ``most``.

    >>> [backoff(n, 30, 3600) for n in (1, 2, 3, 8, 9)]
    [30, 60, 120, 3600, 3600]
    """
    return min(most, base * 2 ** (attempt - 1))


def message_key(dedup_key: str | None, message_id: int) -> str:
    """The name a receiver knows the message by, the same at every attempt: its dedup key, or its id.

    >>> message_key("outage:OUT-1:restored:sub:7", 12), message_key(None, 12)
    ('outage:OUT-1:restored:sub:7', 'gridatlas-outbox-12')
    """
    return dedup_key or f"gridatlas-outbox-{message_id}"


@dataclass
class Totals:
    """What a sender did: attempts by outcome, and leases of dead senders it found."""

    sent: int = 0
    retry: int = 0
    failed: int = 0
    lost: int = 0
    counts_since: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.counts_since, 1e-9)
        return (f"sent {self.sent} ({self.sent / elapsed:.0f}/s), to retry {self.retry}, failed {self.failed}, "
                f"taken over from stopped senders {self.lost}")


_RECLAIM_EXPIRED = text("""
WITH taken AS (
    SELECT id FROM notification_outbox WHERE status = 'sending' AND lease_until < now()
    ORDER BY lease_until LIMIT :n FOR UPDATE SKIP LOCKED
), lost AS (
    INSERT INTO notification_attempts (message_id, attempt, sender, backend, finished_at, outcome, error)
    SELECT o.id, o.attempts, coalesce(o.claimed_by, 'unknown'), 'unknown', now(), 'lost',
           'the lease of ' || coalesce(o.claimed_by, 'unknown')
           || ' ended before it recorded an outcome: delivered or not, unknown'
    FROM notification_outbox o JOIN taken USING (id)
)
UPDATE notification_outbox o SET
    status = CASE WHEN o.attempts >= :most THEN 'failed' ELSE 'sending' END,
    attempts = CASE WHEN o.attempts >= :most THEN o.attempts ELSE o.attempts + 1 END,
    lease_until = CASE WHEN o.attempts >= :most THEN NULL ELSE now() + make_interval(secs => :lease) END,
    claimed_by = CASE WHEN o.attempts >= :most THEN NULL ELSE :me END,
    last_error = CASE WHEN o.attempts >= :most THEN 'gave up: its sender stopped during the last attempt'
                 ELSE o.last_error END
FROM taken WHERE o.id = taken.id
RETURNING o.id, o.status, o.channel, o.kind, o.recipient, o.subject, o.body, o.reference, o.dedup_key, o.attempts
""")

_CLAIM_DUE = text("""
WITH taken AS (
    SELECT id FROM notification_outbox WHERE status = 'pending' AND due_at <= now()
    ORDER BY due_at LIMIT :n FOR UPDATE SKIP LOCKED
)
UPDATE notification_outbox o SET status = 'sending', attempts = o.attempts + 1,
    lease_until = now() + make_interval(secs => :lease), claimed_by = :me
FROM taken WHERE o.id = taken.id
RETURNING o.id, o.status, o.channel, o.kind, o.recipient, o.subject, o.body, o.reference, o.dedup_key, o.attempts
""")


def claim(connection: Connection, me: str, settings: SenderSettings) -> tuple[list[Outgoing], int]:
    """Claim up to a batch of messages for sender ``me``, committed before anything is sent:
    first those whose sender's lease ended (they go again with the same key), then due ones.
    Returns the messages in id order and how many dead senders' messages were found."""
    values = {"me": me, "lease": settings.lease_seconds, "most": settings.max_attempts, "n": settings.batch}
    rows = list(connection.execute(_RECLAIM_EXPIRED, values).mappings())
    lost = len(rows)
    rows = [row for row in rows if row["status"] == "sending"]
    if len(rows) < settings.batch:
        rows += connection.execute(_CLAIM_DUE, {**values, "n": settings.batch - len(rows)}).mappings().all()
    messages = [Outgoing(id=row["id"], channel=row["channel"], kind=row["kind"], recipient=row["recipient"],
                         subject=row["subject"], body=row["body"], reference=row["reference"],
                         key=message_key(row["dedup_key"], row["id"]), attempt=row["attempts"]) for row in rows]
    return sorted(messages, key=lambda message: message.id), lost


_RECORD = text("""
WITH attempt AS (
    INSERT INTO notification_attempts (message_id, attempt, sender, backend, started_at, finished_at, outcome,
                                       error, response_code)
    VALUES (:id, :attempt, :me, :backend, :started, :finished, :outcome, :error, :code)
)
UPDATE notification_outbox SET status = :status, sent_at = CAST(:sent_at AS timestamptz),
    due_at = coalesce(CAST(:due_at AS timestamptz), due_at), last_error = coalesce(CAST(:error AS text), last_error),
    lease_until = NULL, claimed_by = NULL
WHERE id = :id AND claimed_by = :me AND status = 'sending'
""")


def record(connection: Connection, me: str, message: Outgoing, delivery: Delivery, backend: str,
           started: datetime, finished: datetime, settings: SenderSettings) -> bool:
    """Record the attempt and the message's new state in one statement: sent, due again after the
    backoff, or failed (``failed`` too once ``max_attempts`` are spent). False when the message
    was no longer this sender's (its lease had ended and another sender took it)."""
    outcome, status, due_at = delivery.outcome, delivery.outcome, None
    if outcome == "retry":
        if message.attempt >= settings.max_attempts:
            outcome = status = "failed"
        else:
            status = "pending"
            due_at = finished + timedelta(seconds=backoff(message.attempt, settings.backoff_seconds,
                                                          settings.backoff_max_seconds))
    return connection.execute(_RECORD, {
        "id": message.id, "attempt": message.attempt, "me": me, "backend": backend, "started": started,
        "finished": finished, "outcome": outcome, "error": delivery.error, "code": delivery.code,
        "status": status, "sent_at": finished if status == "sent" else None, "due_at": due_at,
    }).rowcount == 1


def release(connection: Connection, me: str, ids: list[int]) -> int:
    """Give back claimed messages that were never tried (a stopping sender): due again at once,
    the claim not counted as an attempt."""
    if not ids:
        return 0
    return connection.execute(text(
        "UPDATE notification_outbox SET status = 'pending', attempts = attempts - 1, lease_until = NULL, "
        "claimed_by = NULL WHERE id = ANY(:ids) AND claimed_by = :me AND status = 'sending'"),
        {"ids": ids, "me": me}).rowcount


def renew(connection: Connection, me: str, ids: list[int], lease_seconds: float) -> set[int]:
    """Extend this sender's lease on ``ids``; the ids it still held."""
    return set(connection.execute(text(
        "UPDATE notification_outbox SET lease_until = now() + make_interval(secs => :lease) "
        "WHERE id = ANY(:ids) AND claimed_by = :me AND status = 'sending' RETURNING id"),
        {"ids": ids, "me": me, "lease": lease_seconds}).scalars())


def _now() -> datetime:
    return datetime.now(timezone.utc)


_TRY_JOB_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('gridatlas.notify.periodic'), hashtext(:name))")
_LAST_RUN = text("SELECT started_at, now() FROM notification_periodic_runs WHERE name = :name")
_NOTE_RUN = text("""
INSERT INTO notification_periodic_runs (name, started_at, written) VALUES (:name, :started, :written)
ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, written = excluded.written
""")


class Sender:
    """One sender: claims batches, delivers them, records the outcomes, runs the periodic jobs.

    ``run`` loops until ``ask_to_stop`` (a signal handler may call it); the message being
    delivered then is finished and recorded, and the rest of the batch is given back.
    """

    def __init__(self, engine: Engine, backends: Mapping[str, Backend], settings: SenderSettings = SenderSettings(),
                 name: str | None = None):
        self.engine, self.backends, self.settings = engine, backends, settings
        self.name = name or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.totals = Totals()
        self._stop = threading.Event()
        self._connection: Connection | None = None
        self._job_checks: dict[str, float] = {}

    def ask_to_stop(self) -> None:
        self._stop.set()

    @property
    def connection(self) -> Connection:
        """The sender's own connection, autocommit: a claim and a record are one statement each.
        Their commits need not wait for the disk: a claim or a record lost with a crashed
        database only means the message goes again, with its key."""
        if self._connection is None or self._connection.closed or self._connection.invalidated:
            self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._connection.execute(text("SET synchronous_commit = off"))
        return self._connection

    def run(self, once: bool = False, report_seconds: float = 10.0) -> Totals:
        """Send until asked to stop (``once``: until nothing is due); log progress every ``report_seconds``."""
        logger.info("sender %s: batches of %d, lease %.0f s, backends %s", self.name, self.settings.batch,
                    self.settings.lease_seconds, {c: b.name for c, b in self.backends.items()})
        reported = time.monotonic()
        try:
            while not self._stop.is_set():
                claimed = self._round(once)
                if time.monotonic() - reported >= report_seconds:
                    logger.info("sender %s: %s", self.name, self.totals.line())
                    reported = time.monotonic()
                if claimed < self.settings.batch:
                    if once:
                        break
                    self._stop.wait(self.settings.poll_seconds if claimed == 0 else 0)
        finally:
            self.close()
        logger.info("sender %s stopped: %s", self.name, self.totals.line())
        return self.totals

    def _round(self, once: bool) -> int:
        """Periodic jobs that are due, then one batch; a lost database is waited for (not with ``once``)."""
        try:
            self.run_periodic()
            return self.send_batch()
        except DBAPIError as error:
            if once or not error.connection_invalidated and "connection" not in str(error).lower():
                raise
            logger.warning("sender %s: the database is unreachable (%s); trying again", self.name, error.orig)
            self._connection = None
            self._stop.wait(self.settings.poll_seconds)
            return 0

    def send_batch(self) -> int:
        """Claim one batch and deliver it; return how many messages were claimed."""
        messages, lost = claim(self.connection, self.name, self.settings)
        self.totals.lost += lost
        claimed = len(messages)
        held_since = time.monotonic()
        while messages:
            if self._stop.is_set():
                release(self.connection, self.name, [message.id for message in messages])
                break
            if time.monotonic() - held_since > self.settings.lease_seconds / 2:
                kept = renew(self.connection, self.name, [message.id for message in messages],
                             self.settings.lease_seconds)
                messages = [message for message in messages if message.id in kept]
                held_since = time.monotonic()
                continue
            self._deliver(messages.pop(0))
        return claimed

    def _deliver(self, message: Outgoing) -> None:
        """One attempt, recorded at once: the window in which a killed sender leaves a delivered
        message unrecorded is this one statement's round trip."""
        backend = self.backends[message.channel]
        started = _now()
        try:
            delivery = backend.deliver(message)
        except Exception as error:  # a transport error of any backend: try again later
            delivery = Delivery("retry", None, f"{type(error).__name__}: {error}"[:1000])
        finished = _now()
        if not record(self.connection, self.name, message, delivery, backend.name, started, finished, self.settings):
            logger.warning("sender %s: message %d had passed to another sender before its outcome was recorded",
                           self.name, message.id)
        counted = "failed" if delivery.outcome == "retry" and message.attempt >= self.settings.max_attempts \
            else delivery.outcome
        setattr(self.totals, counted, getattr(self.totals, counted) + 1)
        if delivery.outcome != "sent":
            logger.info("message %d (%s to %s), attempt %d: %s %s", message.id, message.channel, message.recipient,
                        message.attempt, counted, delivery.error)

    def run_periodic(self) -> int:
        """Run each registered job whose period has passed since it last started on any sender;
        return how many messages they wrote."""
        written = 0
        for job in periodic_jobs():
            if self._job_checks.get(job.name, 0.0) <= time.monotonic():
                written += self._run_job(job)
        return written

    def _run_job(self, job: Periodic) -> int:
        """``job`` in its own transaction, if no other sender runs it now (an advisory lock) and
        its period has passed (the runs' table, on the database's clock)."""
        written = 0
        wait = job.every_seconds
        try:
            with self.engine.begin() as connection:
                if not connection.execute(_TRY_JOB_LOCK, {"name": job.name}).scalar_one():
                    wait = min(job.every_seconds, self.settings.poll_seconds)
                    return 0
                last = connection.execute(_LAST_RUN, {"name": job.name}).first()
                now = connection.execute(text("SELECT now()")).scalar_one()
                if last is not None and (now - last[0]).total_seconds() < job.every_seconds:
                    wait = job.every_seconds - (now - last[0]).total_seconds()
                    return 0
                written = job.job(connection, now)
                connection.execute(_NOTE_RUN, {"name": job.name, "started": now, "written": written})
            logger.info("periodic job %s wrote %d messages", job.name, written)
        except DBAPIError:
            raise
        except Exception:  # a package's job failing must not stop the deliveries
            logger.exception("periodic job %s failed; next try in %.0f s", job.name, job.every_seconds)
        finally:
            self._job_checks[job.name] = time.monotonic() + wait
        return written

    def close(self) -> None:
        """Close the connection and every backend's."""
        for backend in {id(b): b for b in self.backends.values()}.values():
            backend.close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
