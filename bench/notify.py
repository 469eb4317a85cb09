"""Notifications (issue 13): how fast ``flask notify run`` delivers a full outbox.

Usage::

    .venv/bin/python bench/notify.py [--messages 100000] [--senders 2] [--batch 200] [--concurrency 4]

Delivery: ``--messages`` webhook messages are queued directly in the outbox (not yet due), for a
local webhook sink in this process that checks every HMAC signature and counts each key;
``--senders`` sender processes are started and, once they are all up, the messages are made due
at once. The figure is messages delivered per second from then until the outbox is empty, against
the target of 1,000/s, with the machine's load; the sink's counts show that no key arrived twice.

The issue's other figure (100,000 subscribers' messages queued in under 10 s, by the outage
package's subscriptions) belongs in a function of its own beside ``deliver``, called from ``main``
before it; ``queue_for_delivery`` here only fills the outbox for the delivery figure.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

# The project's packages before bench/'s scripts of the same names (bench/outlets.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import ROOT, bench_database, load_note  # noqa: E402
from sqlalchemy import text  # noqa: E402

from geo import outbox  # noqa: E402
from geo.db import make_engine  # noqa: E402
from tests.receivers import WebhookReceiver  # noqa: E402

SECRET = "bench-webhook-secret"
TARGET_PER_SECOND = 1000


def queue_for_delivery(engine, url: str, count: int) -> float:
    """Write ``count`` webhook messages to ``url`` into the outbox, due tomorrow (``deliver`` makes
    them due); return the seconds it took."""
    started = time.perf_counter()
    later = datetime.now(timezone.utc) + timedelta(days=1)
    for first in range(0, count, 10_000):
        with engine.begin() as connection:
            outbox.enqueue(connection, (
                outbox.Message(kind="outage_restored", recipient=url, body=f"Power is back ({n}).", due_at=later,
                               channel="webhook", dedup_key=f"bench:{n}") for n in range(first, min(count, first + 10_000))))
    return time.perf_counter() - started


def _start_senders(url: str, senders: int, batch: int, concurrency: int) -> list[subprocess.Popen]:
    """``senders`` ``flask notify run`` processes, returned once each says it is sending."""
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    env = {**os.environ, "DATABASE_URL": url, "BASEMAP_URL": "none", "NOTIFY_WEBHOOK": "http",
           "NOTIFY_WEBHOOK_SECRET": SECRET, "NOTIFY_POLL_SECONDS": "0.2"}
    processes = [subprocess.Popen([flask, "--app", "app", "notify", "run", "--batch", str(batch), "--concurrency",
                                   str(concurrency), "--report-every", "5"],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(senders)]
    for process in processes:
        line = process.stdout.readline()
        if not line.startswith("sending notifications as"):
            raise SystemExit(f"a sender did not start: {line}{process.stdout.read()}")
    return processes


def _count_sent(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM notification_outbox WHERE status = 'sent'")).scalar_one()


def deliver(engine, url: str, count: int, senders: int, batch: int, concurrency: int) -> None:
    """Queue ``count`` messages, start the senders, make the messages due, and print the delivery rate."""
    with WebhookReceiver(SECRET) as sink:
        print(f"  queued {count:,} webhook messages in {queue_for_delivery(engine, sink.url, count):.1f} s", flush=True)
        processes = _start_senders(url, senders, batch, concurrency)
        try:
            with engine.begin() as connection:
                connection.execute(text("UPDATE notification_outbox SET due_at = now()"))
            started = time.perf_counter()
            sent, load = 0, os.getloadavg()[0]
            while sent < count:
                time.sleep(0.5)
                sent, load = _count_sent(engine), max(load, os.getloadavg()[0])
                print(f"\r  {sent:,} sent after {time.perf_counter() - started:.1f} s", end="", flush=True)
            elapsed = time.perf_counter() - started
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(30) for process in processes]
        repeats = sum(sink.received.values()) - len(sink.received)
        print()
        rate = count / elapsed
        verdict = "meets" if rate >= TARGET_PER_SECOND else "MISSES"
        print(f"delivered {count:,} messages with {senders} senders (batches of {batch}, {concurrency} at once each) in {elapsed:.1f} s: "
              f"{rate:,.0f} messages/s, {verdict} the target of >= {TARGET_PER_SECOND:,}/s")
        print(f"  the sink: {len(sink.accepted):,} keys taken in, {repeats} repeats, {sink.bad_signatures} bad signatures;"
              f" senders exited with {codes}; peak load average {load:.1f}; now {load_note()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4, help="deliveries under way at once in each sender")
    args = parser.parse_args()
    url = bench_database("gridatlas_bench_notify")
    engine = make_engine(url, pool_size=2)
    print(f"notify: {load_note()}", flush=True)
    deliver(engine, url, args.messages, args.senders, args.batch, args.concurrency)
    engine.dispose()


if __name__ == "__main__":
    main()
