"""The notification sender (geo/notify.py) in this process, on the committed database, against
real local receivers: a webhook endpoint that checks the HMAC, an SMTP server (aiosmtpd), an SMS
gateway. (tests/integration/test_notify_processes.py runs it as ``flask notify run`` processes.)"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geo import outbox
from geo.notify import Sender, SenderSettings, claim
from geo.notify_backends import (LogBackend, SmsGatewayBackend, SmtpBackend, WebhookBackend, backends_from_config,
                                 message_id)
from tests.conftest import empty_tables
from tests.receivers import SmtpReceiver, WebhookReceiver

SECRET = "test-webhook-secret"
FAST = SenderSettings(batch=10, backoff_seconds=0.2, backoff_max_seconds=1.0, poll_seconds=0.05)


@pytest.fixture()
def db(committed_engine):
    """The committed database with an empty outbox."""
    empty_tables(committed_engine)
    return committed_engine


def _enqueue(engine, channel: str, recipient: str, keys, subject=None) -> None:
    now = datetime.now(timezone.utc) - timedelta(seconds=1)
    with engine.begin() as connection:
        outbox.enqueue(connection, [outbox.Message(kind="outage_restored", recipient=recipient, body=f"Power is back ({key}).",
                                                   due_at=now, channel=channel, subject=subject, dedup_key=key)
                                    for key in keys])


def _rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def _sender(engine, settings=FAST, **backends) -> Sender:
    return Sender(engine, {"sms": LogBackend(), "email": LogBackend(), "webhook": LogBackend(), **backends}, settings)


def test_webhooks_are_signed_and_carry_the_message_key(db):
    with WebhookReceiver(SECRET) as receiver:
        _enqueue(db, "webhook", receiver.url, ["outage:OUT-1:restored:sub:1", "outage:OUT-1:restored:sub:2", None])
        totals = _sender(db, webhook=WebhookBackend(SECRET, 5)).run(once=True)
    assert totals.sent == 3 and receiver.bad_signatures == 0
    [unkeyed] = _rows(db, "SELECT id FROM notification_outbox WHERE dedup_key IS NULL")
    keys = {"outage:OUT-1:restored:sub:1", "outage:OUT-1:restored:sub:2", f"gridatlas-outbox-{unkeyed[0]}"}
    assert set(receiver.accepted) == keys and set(receiver.received.values()) == {1}
    assert receiver.bodies["outage:OUT-1:restored:sub:1"]["body"] == "Power is back (outage:OUT-1:restored:sub:1)."
    assert _rows(db, "SELECT DISTINCT status, attempts, lease_until IS NULL FROM notification_outbox") == [("sent", 1, True)]
    assert _rows(db, "SELECT outcome, backend, response_code, count(*) FROM notification_attempts "
                     "GROUP BY 1, 2, 3") == [("sent", "http", 200, 3)]


def test_a_receiver_refuses_a_wrong_signature_and_the_message_fails_at_once(db):
    with WebhookReceiver(SECRET) as receiver:
        _enqueue(db, "webhook", receiver.url, ["k1"])
        _sender(db, webhook=WebhookBackend("not-the-secret", 5)).run(once=True)
    assert receiver.bad_signatures == 1 and not receiver.accepted
    # 401 is the request's fault: trying again cannot help.
    assert _rows(db, "SELECT status, attempts, last_error FROM notification_outbox") == [("failed", 1, "HTTP 401: ")]


def test_email_goes_over_smtp_with_a_message_id_from_its_key(db):
    with SmtpReceiver() as smtp:
        _enqueue(db, "email", "customer@example.org", ["outage:OUT-2:etr:sub:9", "outage:OUT-2:etr:sub:10"],
                 subject="Power restoration estimate")
        backend = SmtpBackend("127.0.0.1", smtp.port, "noreply@grid.example", tls="none", timeout=5)
        assert _sender(db, email=backend).run(once=True).sent == 2
        received = sorted(smtp.messages, key=lambda message: message["Message-ID"])
    expected = sorted(message_id(key, "noreply@grid.example") for key in ("outage:OUT-2:etr:sub:9", "outage:OUT-2:etr:sub:10"))
    assert [message["Message-ID"] for message in received] == expected
    assert {(m["To"], m["From"], m["Subject"]) for m in received} == {
        ("customer@example.org", "noreply@grid.example", "Power restoration estimate")}
    assert received[0].get_payload().startswith("Power is back (outage:OUT-2:etr:sub:")


def test_sms_go_to_the_gateway_with_the_number_the_text_and_a_client_reference(db):
    with WebhookReceiver(None) as gateway:
        _enqueue(db, "sms", "+49301234567", ["outage:OUT-3:ack:sub:1"])
        _sender(db, sms=SmsGatewayBackend(gateway.url, "gateway-token", 5)).run(once=True)
    assert gateway.bodies == {"outage:OUT-3:ack:sub:1": {
        "number": "+49301234567", "text": "Power is back (outage:OUT-3:ack:sub:1).", "reference": "outage:OUT-3:ack:sub:1"}}
    assert gateway.headers["outage:OUT-3:ack:sub:1"]["Authorization"] == "Bearer gateway-token"


def test_the_log_backend_writes_the_message_to_the_log(db, caplog):
    _enqueue(db, "sms", "+49301234567", ["k-log"])
    with caplog.at_level(logging.INFO, logger="gridatlas.notify"):
        assert _sender(db).run(once=True).sent == 1
    assert "sms outage_restored to +49301234567 [k-log]: Power is back (k-log)." in caplog.text


def test_a_failing_receiver_is_tried_again_after_a_backoff(db):
    with WebhookReceiver(SECRET, answer=lambda key, seen: 500 if seen == 1 else 200) as receiver:
        _enqueue(db, "webhook", receiver.url, ["k-retry"])
        sender = _sender(db, webhook=WebhookBackend(SECRET, 5))
        sender.run(once=True)
        [(status, due_at, error)] = _rows(db, "SELECT status, due_at, last_error FROM notification_outbox")
        [(finished,)] = _rows(db, "SELECT finished_at FROM notification_attempts")
        assert status == "pending" and error == "HTTP 500: " and due_at == finished + timedelta(seconds=0.2)
        time.sleep(0.25)
        _sender(db, webhook=WebhookBackend(SECRET, 5)).run(once=True)
    assert receiver.received == {"k-retry": 2} and receiver.accepted == {"k-retry": 1}
    assert _rows(db, "SELECT attempt, outcome, response_code FROM notification_attempts ORDER BY attempt") == [
        (1, "retry", 500), (2, "sent", 200)]
    assert _rows(db, "SELECT status, attempts FROM notification_outbox") == [("sent", 2)]


def test_after_the_last_attempt_the_message_fails_with_the_last_error(db):
    settings = SenderSettings(batch=10, max_attempts=3, backoff_seconds=0.0, backoff_max_seconds=0.0)
    with WebhookReceiver(SECRET, answer=lambda key, seen: 503) as receiver:
        _enqueue(db, "webhook", receiver.url, ["k-down"])
        for _ in range(4):
            _sender(db, settings, webhook=WebhookBackend(SECRET, 5)).run(once=True)
    assert receiver.received == {"k-down": 3}
    assert _rows(db, "SELECT status, attempts, last_error FROM notification_outbox") == [("failed", 3, "HTTP 503: ")]
    assert [row[0] for row in _rows(db, "SELECT outcome FROM notification_attempts ORDER BY attempt")] == [
        "retry", "retry", "failed"]


def test_an_unreachable_receiver_is_a_transport_error_worth_another_try(db):
    _enqueue(db, "webhook", "http://127.0.0.1:9/hook", ["k-nobody"])
    _sender(db, webhook=WebhookBackend(SECRET, 2)).run(once=True)
    [(status, error)] = _rows(db, "SELECT status, last_error FROM notification_outbox")
    assert status == "pending" and error.startswith("ConnectionRefusedError")


def test_a_message_delivered_by_a_sender_that_died_before_recording_it_goes_again_with_its_key(db):
    """The window the design cannot close: delivered, then killed before the outcome's commit. The
    next sender takes the message once the lease has ended and sends the same key; the receiver drops it."""
    with WebhookReceiver(SECRET) as receiver:
        _enqueue(db, "webhook", receiver.url, ["outage:OUT-4:restored:sub:1"])
        backend = WebhookBackend(SECRET, 5)
        with db.connect() as connection:
            [held], _ = claim(connection, "dead-sender", SenderSettings(lease_seconds=0.2))
            connection.commit()
        backend.deliver(held)  # ... and the sender is killed here
        time.sleep(0.3)
        assert _sender(db, webhook=backend).run(once=True).lost == 1
    assert receiver.received == {"outage:OUT-4:restored:sub:1": 2}
    assert receiver.accepted == {"outage:OUT-4:restored:sub:1": 1}
    assert _rows(db, "SELECT attempt, outcome, sender FROM notification_attempts ORDER BY id")[0] == (1, "lost", "dead-sender")
    assert _rows(db, "SELECT status, attempts FROM notification_outbox") == [("sent", 2)]


def test_backends_come_from_the_configuration_and_missing_settings_are_refused():
    made = backends_from_config({"NOTIFY_WEBHOOK": "http", "NOTIFY_WEBHOOK_SECRET": "s"})
    assert (made["sms"].name, made["email"].name, made["webhook"].name) == ("log", "log", "http")
    with pytest.raises(ValueError, match="NOTIFY_WEBHOOK_SECRET"):
        backends_from_config({"NOTIFY_WEBHOOK": "http"})
    with pytest.raises(ValueError, match="NOTIFY_SMS must be one of log, gateway"):
        backends_from_config({"NOTIFY_SMS": "carrier-pigeon"})


def test_a_periodic_job_runs_on_one_sender_once_per_period(db, monkeypatch):
    monkeypatch.setattr(outbox, "_PERIODIC", {})
    runs = []

    def job(connection, now):
        runs.append(now)
        return outbox.enqueue(connection, [outbox.Message(kind="outage_update", recipient="+49301234567",
                                                          body="Update.", due_at=now, dedup_key=f"update:{len(runs)}")])

    outbox.register_periodic("test-updates", job, 3600)
    first, second = _sender(db), _sender(db)
    with db.connect() as holder:  # another sender is running the job right now
        holder.execute(text("SELECT pg_advisory_xact_lock(hashtext('gridatlas.notify.periodic'), hashtext('test-updates'))"))
        assert first.run_periodic() == 0 and runs == []
        holder.rollback()
    first._job_checks.clear()
    assert first.run_periodic() == 1 and second.run_periodic() == 0 and len(runs) == 1
    assert _rows(db, "SELECT name, written FROM notification_periodic_runs") == [("test-updates", 1)]
    with db.begin() as connection:  # the period passes
        connection.execute(text("UPDATE notification_periodic_runs SET started_at = started_at - interval '2 hours'"))
    second._job_checks.clear()
    assert second.run_periodic() == 1 and len(runs) == 2


def test_a_sender_renews_its_lease_so_that_a_slow_batch_is_not_taken_over(db):
    settings = SenderSettings(batch=6, lease_seconds=0.4, concurrency=1, poll_seconds=0.05)
    with WebhookReceiver(SECRET, delay=0.1) as receiver:
        _enqueue(db, "webhook", receiver.url, [f"k-slow-{n}" for n in range(6)])
        slow = _sender(db, settings, webhook=WebhookBackend(SECRET, 5))
        thread = threading.Thread(target=slow.run, kwargs={"once": True})
        thread.start()
        other = _sender(db, settings, webhook=WebhookBackend(SECRET, 5))
        while thread.is_alive():  # another sender keeps looking for messages whose lease ended
            other.send_batch()
            time.sleep(0.05)
        other.close()
    assert receiver.received == {f"k-slow-{n}": 1 for n in range(6)} and other.totals.lost == 0
    assert _rows(db, "SELECT DISTINCT status, attempts FROM notification_outbox") == [("sent", 1)]
