"""Queueing an outage's messages: one outage of 100,000 customers, every one subscribed (half in
English, half in Chinese), queued with ``outages.notices.enqueue_for_outage`` (one INSERT ...
SELECT); then the same again, which the dedup keys turn into nothing. Target: under 10 s.

    .venv/bin/python bench/notify_queue.py [--customers 100000] [--repeat 3]

Everything is written in one transaction that is rolled back, so the database is kept for the
next run (``bench_notify``, the demo city of that size).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# The project before bench/ itself (bench/outages.py would hide the package).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from common import bench_database, load_note  # noqa: E402
from geo.db import make_engine  # noqa: E402
from outages import lifecycle, notices  # noqa: E402
from outages.settings import OutageSettings  # noqa: E402

TARGET_SECONDS = 10.0

_SUBSCRIBE_EVERYONE = text("""
INSERT INTO outage_subscriptions (reference, token, channel, address, language, service_point_id, account_number,
                                  code_hash, confirmed_at)
SELECT 'B' || sp.id, md5(random()::text) || sp.id, 'sms', '+4930' || lpad(sp.id::text, 9, '0'),
       CASE WHEN sp.id % 2 = 0 THEN 'en' ELSE 'zh' END, sp.id, sp.account_number, '', now()
  FROM service_points sp WHERE sp.in_service
""")
_OUTAGE_OF_EVERYONE = text("""
INSERT INTO outage_steps (outage_id, number, kind, customers, customer_count, actor)
SELECT :id, 1, 'affected', array_agg(id ORDER BY id), count(*), 'bench' FROM service_points WHERE in_service
RETURNING customers
""")


def _run(connection, repeat: int) -> list[tuple[float, int, float, int]]:
    """(seconds, written) of a first and a repeated queueing, ``repeat`` times (each rolled back)."""
    runs = []
    for _ in range(repeat):
        savepoint = connection.begin_nested()
        outage_id, _code = lifecycle.new_outage(connection, "confirmed", "manual", "bench", "unknown")
        customers = connection.execute(_OUTAGE_OF_EVERYONE, {"id": outage_id}).scalar_one()
        facts = notices.facts_of(connection, outage_id)
        started = time.perf_counter()
        written = notices.enqueue_for_outage(connection, facts, "outage_ack", 0, OutageSettings(), customers)
        first = time.perf_counter() - started
        started = time.perf_counter()
        again = notices.enqueue_for_outage(connection, facts, "outage_ack", 0, OutageSettings(), customers)
        runs.append((first, written, time.perf_counter() - started, again))
        savepoint.rollback()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine = make_engine(bench_database("bench_notify", args.customers, reuse=True))
    with engine.connect() as connection:
        transaction = connection.begin()
        started = time.perf_counter()
        subscribed = connection.execute(_SUBSCRIBE_EVERYONE).rowcount
        connection.execute(text("ANALYZE outage_subscriptions"))
        print(f"  {subscribed:,} confirmed subscriptions written in {time.perf_counter() - started:.1f} s")
        runs = _run(connection, args.repeat)
        transaction.rollback()
    engine.dispose()
    first = statistics.median(run[0] for run in runs)
    print(f"queued {runs[0][1]:,} messages for one outage of {subscribed:,} subscribed customers: "
          f"median {first:.2f} s of {len(runs)} (target < {TARGET_SECONDS:.0f} s: {'met' if first < TARGET_SECONDS else 'MISSED'})")
    print(f"the same again (every dedup key written already): {statistics.median(run[2] for run in runs):.2f} s, "
          f"{runs[0][3]} written")
    print(load_note())


if __name__ == "__main__":
    main()
