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
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from geo.errors import database_unavailable
from geo.notify_backends import Backend, Delivery, Outgoing
from geo.outbox import Periodic, periodic_jobs

__all__ = ["SenderSettings", "Sender", "Totals", "backoff", "message_key", "claim", "record", "release", "Attempt", "outcome_of"]

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
    # Outcomes are recorded in one statement per this many attempts, or sooner once the oldest
    # is this old: the bound on what a killed sender leaves delivered but unrecorded.
    record_every: int = 20
    record_seconds: float = 0.05
    # Deliveries under way at once (each in a thread with its own connections to the receivers).
    concurrency: int = 4

    @classmethod
    def of(cls, config: Mapping[str, Any], batch: int | None = None,
           concurrency: int | None = None) -> "SenderSettings":
        """The settings in ``config``; ``batch`` and ``concurrency`` as given on the command line."""
        return cls(batch=batch or cls.batch, concurrency=concurrency or config["NOTIFY_CONCURRENCY"], lease_seconds=config["NOTIFY_LEASE_SECONDS"],
                   max_attempts=config["NOTIFY_MAX_ATTEMPTS"], backoff_seconds=config["NOTIFY_BACKOFF_SECONDS"],
                   backoff_max_seconds=config["NOTIFY_BACKOFF_MAX_SECONDS"],
                   poll_seconds=config["NOTIFY_POLL_SECONDS"], record_every=config["NOTIFY_RECORD_EVERY"],
                   record_seconds=config["NOTIFY_RECORD_SECONDS"])


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


@dataclass(frozen=True)
class Attempt:
    """One finished attempt, to record: the message, what its backend answered, and when."""

    message: Outgoing
    delivery: Delivery
    backend: str
    started: datetime
    finished: datetime


# How often the sender's main thread looks at the outcomes the delivering threads left.
_TICK = 0.005

_RECORD = text("""
WITH done AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:backends AS text[]),
                         CAST(:started AS timestamptz[]), CAST(:finished AS timestamptz[]), CAST(:outcomes AS text[]),
                         CAST(:errors AS text[]), CAST(:codes AS integer[]), CAST(:statuses AS text[]),
                         CAST(:due AS timestamptz[]))
        AS d(id, attempt, backend, started, finished, outcome, error, code, status, due_at)
), attempt AS (
    INSERT INTO notification_attempts (message_id, attempt, sender, backend, started_at, finished_at, outcome,
                                       error, response_code)
    SELECT id, attempt, :me, backend, started, finished, outcome, error, code FROM done
)
UPDATE notification_outbox o SET status = d.status, sent_at = CASE WHEN d.status = 'sent' THEN d.finished END,
    due_at = coalesce(d.due_at, o.due_at), last_error = coalesce(d.error, o.last_error),
    lease_until = NULL, claimed_by = NULL
FROM done d WHERE o.id = d.id AND o.claimed_by = :me AND o.status = 'sending'
RETURNING o.id
""")


def outcome_of(attempt: Attempt, settings: SenderSettings) -> tuple[str, str, datetime | None]:
    """The attempt's recorded outcome, the message's new status and, to try again, when: a
    ``retry`` is due again after the backoff, or ``failed`` once ``max_attempts`` are spent."""
    outcome, number = attempt.delivery.outcome, attempt.message.attempt
    if outcome != "retry":
        return outcome, outcome, None
    if number >= settings.max_attempts:
        return "failed", "failed", None
    wait = backoff(number, settings.backoff_seconds, settings.backoff_max_seconds)
    return "retry", "pending", attempt.finished + timedelta(seconds=wait)


def record(connection: Connection, me: str, attempts: list[Attempt], settings: SenderSettings) -> set[int]:
    """Record ``attempts`` and their messages' new states in one statement; return the ids that
    were still this sender's (a message whose lease had ended and passed to another sender keeps
    that sender's state; its attempt is recorded all the same)."""
    if not attempts:
        return set()
    fates = [outcome_of(attempt, settings) for attempt in attempts]
    return set(connection.execute(_RECORD, {
        "me": me, "ids": [a.message.id for a in attempts], "attempts": [a.message.attempt for a in attempts],
        "backends": [a.backend for a in attempts], "started": [a.started for a in attempts],
        "finished": [a.finished for a in attempts], "outcomes": [fate[0] for fate in fates],
        "errors": [a.delivery.error for a in attempts], "codes": [a.delivery.code for a in attempts],
        "statuses": [fate[1] for fate in fates], "due": [fate[2] for fate in fates],
    }).scalars())


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


def _age(attempt: Attempt) -> float:
    """Seconds since ``attempt`` finished."""
    return (_now() - attempt.finished).total_seconds()


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
        self._pool: ThreadPoolExecutor | None = None  # the delivering threads, while running

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
        counts = lambda: (self.totals.sent, self.totals.retry, self.totals.failed, self.totals.lost)  # noqa: E731
        reported, last = time.monotonic(), counts()
        try:
            while not self._stop.is_set():
                claimed = self._round(once)
                # A line when something happened since the last one (an idle sender beside the
                # demo's server said "sent 0" every ten seconds).
                if time.monotonic() - reported >= report_seconds and counts() != last:
                    last = counts()
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
            if once or not database_unavailable(error):
                raise
            logger.warning("sender %s: the database is unreachable (%s); trying again", self.name, error.orig)
            if self._connection is not None:
                self._connection.invalidate()
            self._connection = None
            self._stop.wait(self.settings.poll_seconds)
            return 0

    def send_batch(self) -> int:
        """Claim one batch and deliver it with ``concurrency`` threads taking its messages in turn;
        record the outcomes as they come; return how many messages were claimed. Once asked to
        stop, the deliveries under way finish and are recorded, and the untried rest is given back."""
        messages, lost = claim(self.connection, self.name, self.settings)
        self.totals.lost += lost
        waiting, results, done = deque(messages), deque(), []
        workers = [self._workers().submit(self._work, waiting, results)
                   for _ in range(min(self.settings.concurrency, len(messages)))]
        held_since = time.monotonic()
        while results or not all(worker.done() for worker in workers):
            wait(workers, timeout=_TICK)
            while results:
                done.append(results.popleft())
            if done and (len(done) >= self.settings.record_every or _age(done[0]) >= self.settings.record_seconds):
                self._record(done)
            if time.monotonic() - held_since > self.settings.lease_seconds / 2:
                self._renew(messages, waiting)
                held_since = time.monotonic()
        for worker in workers:
            worker.result()  # a worker's own failure (not a delivery's) is the sender's
        # The loop may end between a worker's last result and the look at ``results`` before its
        # ``done()``: that outcome is still there, and unrecorded it would go again once its lease
        # ran out (2 of 100,000 did in bench/notify.py, 120 s late and twice at the receiver).
        while results:
            done.append(results.popleft())
        self._record(done)
        release(self.connection, self.name, [message.id for message in waiting])
        return len(messages)

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="notify")
        return self._pool

    def _work(self, waiting: deque, results: deque) -> None:
        """A delivering thread: take the next waiting message until none is left or a stop is asked."""
        while not self._stop.is_set():
            try:
                message = waiting.popleft()
            except IndexError:
                return
            results.append(self._attempt(message))

    def _renew(self, messages: list[Outgoing], waiting: deque) -> None:
        """Renew the lease on the batch's messages not recorded yet; drop from ``waiting`` those
        this sender no longer holds (another sender took them over)."""
        # Recorded messages are no longer claimed: the statement passes them by.
        kept = renew(self.connection, self.name, [message.id for message in messages], self.settings.lease_seconds)
        for message in [message for message in waiting if message.id not in kept]:
            try:
                waiting.remove(message)
            except ValueError:  # a thread took it meanwhile
                pass

    def _attempt(self, message: Outgoing) -> Attempt:
        """Deliver ``message`` once through its channel's backend."""
        backend = self.backends[message.channel]
        started = _now()
        try:
            delivery = backend.deliver(message)
        except Exception as error:  # a transport error of any backend: try again later
            delivery = Delivery("retry", None, f"{type(error).__name__}: {error}"[:1000])
        return Attempt(message, delivery, backend.name, started, _now())

    def _record(self, done: list[Attempt]) -> None:
        """Record the attempts made since the last record (and empty ``done``): until then, a
        killed sender's deliveries are unrecorded, so ``record_every`` and ``record_seconds``
        bound how many messages may go a second time (with their keys)."""
        kept = record(self.connection, self.name, done, self.settings)
        for attempt in done:
            outcome = outcome_of(attempt, self.settings)[0]
            setattr(self.totals, outcome, getattr(self.totals, outcome) + 1)
            message = attempt.message
            if message.id not in kept:
                logger.warning("sender %s: message %d had passed to another sender before its outcome was recorded",
                               self.name, message.id)
            if outcome != "sent":
                logger.info("message %d (%s to %s), attempt %d: %s %s", message.id, message.channel,
                            message.recipient, message.attempt, outcome, attempt.delivery.error)
        done.clear()

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
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for backend in {id(b): b for b in self.backends.values()}.values():
            backend.close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
