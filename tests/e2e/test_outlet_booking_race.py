"""Bookings under real concurrency: parallel HTTP requests against the live server.

The database decides who gets a place (outlets/booking.py): however the requests interleave,
a slot never takes more visits than its capacity.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import text

from tests.outlet_data import add_outlet

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture()
def outlet(live_server):
    """An outlet open around the clock whose billing slots take two visits; returns a slot start."""
    live_server.reset()
    with live_server.engine.begin() as connection:
        add_outlet(connection, "RACE", hours="24/7", services={"billing": 2, "meter": 1}, slot_minutes=30)
    day = datetime.now(timezone.utc).astimezone(BERLIN).date() + timedelta(days=2)
    return datetime.combine(day, time(10), BERLIN)


def _fire(url: str, bodies: list[dict], method: str = "post") -> list[requests.Response]:
    """Send every body at once, one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(bodies))

    def send(body):
        barrier.wait()
        return getattr(requests, method)(url, json=body, timeout=60)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def _body(start: datetime, key: str, service: str = "billing") -> dict:
    return {"outlet": "RACE", "service": service, "start": start.isoformat(), "name": f"Customer {key}",
            "phone": "0721 1234567", "idempotency_key": key}


def test_fifty_parallel_requests_for_two_places_book_exactly_two(live_server, outlet):
    answers = _fire(live_server.url("/api/bookings"), [_body(outlet, f"race-{i}") for i in range(50)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 2 + [409] * 48
    refused = [a for a in answers if a.status_code == 409]
    assert all(a.headers["Content-Type"] == "application/problem+json" for a in refused)
    assert all("fully booked" in a.json()["detail"] for a in refused)
    with live_server.engine.connect() as connection:
        assert connection.execute(text("SELECT booked FROM slot_bookings")).scalars().all() == [2]
        assert connection.execute(text("SELECT count(*) FROM bookings")).scalar() == 2
    slots = requests.get(live_server.url(f"/api/outlets/RACE/slots?date={outlet.date()}&service=billing")).json()
    assert [s["remaining"] for s in slots["slots"] if s["start"] == outlet.isoformat()] == [0]


def test_parallel_requests_with_one_idempotency_key_make_one_booking(live_server, outlet):
    answers = _fire(live_server.url("/api/bookings"), [_body(outlet, "same-key") for _ in range(20)])
    assert sorted(a.status_code for a in answers) == [200] * 19 + [201]
    assert len({a.json()["code"] for a in answers}) == 1
    with live_server.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*), sum(booked) FROM bookings, slot_bookings")).one() == (1, 1)


def test_parallel_reschedules_into_the_last_place_move_exactly_one(live_server, outlet):
    url = live_server.url("/api/bookings")
    codes = [requests.post(url, json=_body(outlet + timedelta(hours=i), f"move-{i}", "meter")).json()["code"]
             for i in range(1, 9)]
    target = outlet.isoformat()  # meter takes one visit a slot
    answers = [None] * len(codes)
    barrier = threading.Barrier(len(codes))

    def move(index):
        barrier.wait()
        answers[index] = requests.patch(live_server.url(f"/api/bookings/{codes[index]}"), json={"start": target},
                                        timeout=60)

    threads = [threading.Thread(target=move, args=(i,)) for i in range(len(codes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] + [409] * 7
    with live_server.engine.connect() as connection:
        counters = dict(connection.execute(text("SELECT slot_start, booked FROM slot_bookings")).all())
        starts = connection.execute(text("SELECT slot_start FROM bookings ORDER BY slot_start")).scalars().all()
    # Every booking holds exactly one place, and every counter matches its bookings.
    assert sum(counters.values()) == len(codes) and max(counters.values()) == 1
    assert sorted(s for s, n in counters.items() if n) == starts
