"""``flask --app app notify run`` as a deployment runs it: processes of their own on the committed
database, delivering to a real local webhook endpoint that checks the HMAC and counts each key.
A sender killed mid-batch, parallel senders, and a stop by SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from geo import outbox
from tests.conftest import empty_tables
from tests.receivers import WebhookReceiver

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "test-webhook-secret"


class SenderProcess:
    """One ``flask notify run`` process; its output is read as it comes."""

    def __init__(self, database_url: str, *args: str, **env: str):
        flask = os.path.join(os.path.dirname(sys.executable), "flask")
        self.process = subprocess.Popen(
            [flask, "--app", "app", "notify", "run", "--report-every", "0.5", *args], cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url, "BASEMAP_URL": "none", "NOTIFY_WEBHOOK": "http",
                 "NOTIFY_WEBHOOK_SECRET": SECRET, "NOTIFY_POLL_SECONDS": "0.1", **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith("sending notifications as") for line in self.lines):
            assert self.process.poll() is None and time.monotonic() < deadline, self.output
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._reader.join(5)
        return code


@pytest.fixture()
def db(committed_engine):
    empty_tables(committed_engine)
    return committed_engine


@pytest.fixture()
def url(db) -> str:
    return db.url.render_as_string(hide_password=False)


def _enqueue(engine, recipient: str, count: int) -> set[str]:
    keys = [f"test:{n}" for n in range(count)]
    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        outbox.enqueue(connection, [outbox.Message(kind="outage_restored", recipient=recipient, body=f"Message {key}.",
                                                   due_at=now, channel="webhook", dedup_key=key) for key in keys])
    return set(keys)


def _statuses(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT status, count(*) FROM notification_outbox GROUP BY status")).all())


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_sender_killed_mid_batch_leaves_nothing_undelivered_and_nothing_taken_twice(db, url):
    with WebhookReceiver(SECRET, delay=0.01) as receiver:
        first = SenderProcess(url, "--batch", "50", NOTIFY_LEASE_SECONDS="3")
        first.wait_ready()
        keys = _enqueue(db, receiver.url, 300)
        _wait_until(lambda: receiver.total() >= 70, 60, "the first sender delivered too little")
        first.process.kill()  # SIGKILL, in its second batch
        first.process.wait(10)
        held = _statuses(db).get("sending", 0)
        assert 0 < held <= 50  # the rest of its batch, claimed under its lease
        second = SenderProcess(url, "--batch", "50")
        _wait_until(lambda: _statuses(db) == {"sent": 300}, 90, "not every message was sent")
        assert second.stop() == 0, second.output
    assert set(receiver.accepted) == keys and set(receiver.accepted.values()) == {1}
    # A message the killed sender had delivered but not recorded went again, with the same key.
    assert set(receiver.received.values()) <= {1, 2} and receiver.bad_signatures == 0
    with db.connect() as connection:
        lost = connection.execute(text("SELECT count(*) FROM notification_attempts WHERE outcome = 'lost'")).scalar_one()
    assert lost == held
    assert "taken over from stopped senders" in second.output


def test_parallel_senders_share_the_outbox_and_no_message_is_delivered_by_both(db, url):
    with WebhookReceiver(SECRET, delay=0.002) as receiver:
        senders = [SenderProcess(url, "--batch", "20") for _ in range(2)]
        for sender in senders:
            sender.wait_ready()
        keys = _enqueue(db, receiver.url, 1000)
        _wait_until(lambda: _statuses(db) == {"sent": 1000}, 90, "not every message was sent")
        assert [sender.stop() for sender in senders] == [0, 0], [sender.output for sender in senders]
    assert receiver.received == receiver.accepted and set(receiver.accepted) == keys
    assert set(receiver.received.values()) == {1}
    with db.connect() as connection:
        by_sender = connection.execute(text(
            "SELECT sender, count(*) FROM notification_attempts GROUP BY sender")).all()
    assert len(by_sender) == 2 and all(count > 50 for _, count in by_sender), by_sender
    assert all("stopped: sent" in sender.output for sender in senders)


def test_sigterm_finishes_the_message_under_way_and_gives_back_the_rest_of_the_batch(db, url):
    with WebhookReceiver(SECRET, delay=0.02) as receiver:
        sender = SenderProcess(url, "--batch", "100")
        sender.wait_ready()
        _enqueue(db, receiver.url, 100)
        _wait_until(lambda: receiver.total() >= 10, 60, "nothing was delivered")
        assert sender.stop(signal.SIGTERM, timeout=10) == 0, sender.output
        delivered = receiver.total()
    statuses = _statuses(db)
    assert "sending" not in statuses and statuses["sent"] == delivered and statuses["pending"] == 100 - delivered
    with db.connect() as connection:  # the given-back messages were never tried: no attempt counted
        assert connection.execute(text(
            "SELECT count(*) FROM notification_outbox WHERE status = 'pending' AND attempts = 0")).scalar_one() == 100 - delivered


def test_once_drains_what_is_due_and_exits(db, url):
    with WebhookReceiver(SECRET) as receiver:
        keys = _enqueue(db, receiver.url, 120)
        sender = SenderProcess(url, "--once", "--batch", "50")
        assert sender.process.wait(60) == 0, sender.output
    assert set(receiver.accepted) == keys and _statuses(db) == {"sent": 120}
    assert "stopped: sent 120" in sender.output
