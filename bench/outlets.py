"""Time the outlet finder with 100,000 outlets: nearest over HTTP against the raw KNN query,
slots for one outlet-day, and 200 concurrent booking attempts on a handful of slots.

    .venv/bin/python bench/outlets.py                  # 100,000 outlets
    .venv/bin/python bench/outlets.py --outlets 20000 --requests 300

Uses its own database ``gridatlas_bench_outlets`` (``--database``) in the embedded cluster,
dropped and recreated (``--reuse`` keeps what a previous run loaded; then pass ``--bookings 0``).
The app runs in a separate process as production serves it (``flask --app app serve``: granian,
WSGI workers, keep-alive; geo/server.py) on a free port, after a shorter comparison run on
werkzeug's threaded dev server, so the client's timing threads do not share its interpreter. HTTP requests go over one kept-alive connection (http.client), one at a time,
except the booking burst, which opens 200 connections at once.
"""
from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sqlalchemy import text  # noqa: E402

from common import serve_app, stop_app  # noqa: E402
from geo.cluster import default_cluster  # noqa: E402
from geo.db import make_engine  # noqa: E402
from geo.migrate import upgrade  # noqa: E402
from outlets import search  # noqa: E402
from outlets.demo import HOURS  # noqa: E402
from outlets.hours import parse_weekly, weekly_to_json  # noqa: E402

DATABASE = "gridatlas_bench_outlets"
# Germany, roughly: 100,000 outlets there are one per 3.6 km².
BBOX = (5.9, 47.3, 15.0, 55.0)
ZONE = ZoneInfo("Europe/Berlin")
SERVICES = ("new_connection", "billing", "meter", "complaints")
# Addresses with a German town's variety: 40 names x 10 kinds of street, numbered.
STREETS = ("Haupt", "Bahnhof", "Kirch", "Schul", "Garten", "Berg", "Wald", "Linden", "Mühlen", "Ring", "Post",
           "Markt", "Wiesen", "Feld", "Birken", "Eichen", "Goethe", "Schiller", "Friedrich", "Wilhelm", "Kaiser",
           "Rosen", "Tal", "Buchen", "Ahorn", "Tannen", "Kastanien", "Blumen", "Sonnen", "Brunnen", "Rathaus",
           "Burg", "Schloss", "Hafen", "Mozart", "Beethoven", "Bismarck", "Luisen", "Karl", "Park")
SUFFIXES = ("straße", "weg", "gasse", "allee", "platz", "ring", "pfad", "steig", "damm", "ufer")
TOWNS = ("Karlsruhe", "Mannheim", "Stuttgart", "Freiburg", "Heidelberg", "Ulm", "Pforzheim", "Reutlingen",
         "Esslingen", "Ludwigsburg", "Tübingen", "Konstanz", "Offenburg", "Baden-Baden", "Bruchsal",
         "Rastatt", "Heilbronn", "Sindelfingen", "Aalen", "Kehl")


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def summary(name: str, values_ms: list[float]) -> str:
    """One line: median and p99 of ``values_ms``."""
    return (f"{name:<44} median {statistics.median(values_ms):7.2f} ms   p99 {percentile(values_ms, 0.99):7.2f} ms"
            f"   ({len(values_ms)} runs)")


# -- data ------------------------------------------------------------------------------------------
def load_outlets(engine, count: int, seed: int) -> None:
    """``count`` outlets spread over the box, with the demo's mix of hours, services and holidays."""
    rng = random.Random(seed)
    patterns = [(json.dumps(weekly_to_json(parse_weekly(h))) if h else None, minutes) for h, minutes in HOURS]
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            with cursor.copy("COPY outlets (code, name, address, country, timezone, slot_minutes, weekly_hours, "
                             "geom) FROM STDIN") as copy:
                for index in range(count):
                    hours, minutes = patterns[index % len(patterns)]
                    lon, lat = rng.uniform(BBOX[0], BBOX[2]), rng.uniform(BBOX[1], BBOX[3])
                    street = f"{STREETS[index % len(STREETS)]}{SUFFIXES[index // len(STREETS) % len(SUFFIXES)]}"
                    copy.write_row((f"B-{index:06d}", f"Centre {index}",
                                    f"{street} {index // 1000 + 1}, {10000 + index % 89999} {TOWNS[index % len(TOWNS)]}",
                                    "DE", "Europe/Berlin", minutes, hours, f"SRID=4326;POINT({lon:.6f} {lat:.6f})"))
        raw.driver_connection.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        # Billing everywhere, each other service at about half of them; one to three visits a slot.
        # One statement per table: the triggers that keep each outlet's services and exceptions
        # on its row (migration 0004) then run once, as they do for an import.
        selects = ["SELECT id, 'billing', 1 + id % 3 FROM outlets" if service == "billing" else
                   f"SELECT id, '{service}', 1 + (id + {number}) % 2 FROM outlets WHERE (id * 7 + {number}) % 2 = 0"
                   for number, service in enumerate(SERVICES)]
        connection.execute(text("INSERT INTO outlet_services (outlet_id, service, capacity) " + " UNION ALL ".join(selects)))
        # Every other outlet closes on the public holidays of this year and the next.
        year = datetime.now(timezone.utc).year
        days = [f"{y}-{day}" for y in (year, year + 1)
                for day in ("01-01", "01-06", "05-01", "10-03", "11-01", "12-25", "12-26")]
        connection.execute(text("INSERT INTO outlet_exceptions (outlet_id, day, hours, note) "
                                "SELECT id, day, '[]'::jsonb, 'Public holiday' FROM outlets, "
                                "unnest(CAST(:days AS date[])) AS day WHERE id % 2 = 0"), {"days": days})
    # As autovacuum would soon after an import: the triggers' updates left a dead row per outlet.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


# -- the server ------------------------------------------------------------------------------------
def serve(url: str, port: int) -> None:
    """Run the app (the child process)."""
    from werkzeug.serving import make_server

    from app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app({"DATABASE_URL": url, "BASEMAP_URL": "none"})
    server = make_server("127.0.0.1", port, app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(url: str, kind: str = "granian") -> tuple[subprocess.Popen, int]:
    """The app in a child process on a free port, once it serves: ``granian`` as production runs
    it (``flask --app app serve``: WSGI workers, keep-alive) or ``werkzeug``, Flask's dev server."""
    port = free_port()
    if kind == "werkzeug":
        process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", url, str(port)],
                                   stdout=subprocess.PIPE, text=True)
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the server did not start")
        return process, port
    return serve_app(url, port), port


def timed_get(connection: http.client.HTTPConnection, path: str) -> tuple[float, dict]:
    """GET ``path`` over ``connection``: milliseconds and the JSON body."""
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
    return elapsed, json.loads(body)


# -- the measurements --------------------------------------------------------------------------------
RAW_KNN = text("""
    SELECT id, code, ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) AS m
      FROM outlets WHERE active
     ORDER BY geom::geography <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography
     LIMIT 5
""")


def bench_nearest(engine, port: int, runs: int, rng: random.Random, server: str = "granian", full: bool = True) -> None:
    """Nearest-5 over HTTP (through ``server``) against the raw KNN query, interleaved; ``full``
    adds the "open now" search and the search function in process."""
    points = [(round(rng.uniform(BBOX[0] + 0.5, BBOX[2] - 0.5), 5), round(rng.uniform(BBOX[1] + 0.5, BBOX[3] - 0.5), 5))
              for _ in range(runs)]
    http_connection = http.client.HTTPConnection("127.0.0.1", port)
    with engine.connect() as db:
        for lon, lat in points[:50]:  # warm both paths (prepared statements, caches)
            timed_get(http_connection, f"/api/outlets/nearest?lon={lon}&lat={lat}&n=5")
            db.execute(RAW_KNN, {"lon": lon, "lat": lat}).all()
        raw_ms, http_ms, floor_ms = [], [], []
        # Interleaved, so that both see the same machine load.
        for lon, lat in points:
            started = time.perf_counter()
            rows = db.execute(RAW_KNN, {"lon": lon, "lat": lat}).all()
            raw_ms.append((time.perf_counter() - started) * 1000)
            elapsed, body = timed_get(http_connection, f"/api/outlets/nearest?lon={lon}&lat={lat}&n=5")
            http_ms.append(elapsed)
            # The floor: a request the app answers without the database.
            floor_ms.append(timed_get(http_connection, "/api/outlets/services")[0])
            assert [o["code"] for o in body["outlets"]] == [r.code for r in sorted(rows, key=lambda r: r.m)], (lon, lat)
        if not full:
            print(summary("nearest-5, raw PostGIS KNN query (psycopg)", raw_ms))
            print(summary(f"nearest-5 over HTTP, {server}", http_ms))
            print(summary(f"  HTTP floor, {server}: /api/outlets/services", floor_ms))
            print(f"{'  ratio HTTP / raw (medians), ' + server:<44} {statistics.median(http_ms) / statistics.median(raw_ms):7.2f} x")
            return
        open_ms = [timed_get(http_connection, f"/api/outlets/nearest?lon={lon}&lat={lat}&n=5&open=now")[0]
                   for lon, lat in points[: runs // 2]]
        # The search function the endpoint calls, in this process: the query plus the opening states.
        search_ms = []
        for lon, lat in points[: runs // 2]:
            started = time.perf_counter()
            [found.as_dict() for found in search.nearest(db, search.Origin(lon, lat), datetime.now(timezone.utc), n=5)]
            search_ms.append((time.perf_counter() - started) * 1000)
    print(summary("nearest-5, raw PostGIS KNN query (psycopg)", raw_ms))
    print(summary(f"nearest-5 over HTTP, {server} (/api/outlets/nearest)", http_ms))
    print(summary(f"  HTTP floor, {server}: /api/outlets/services", floor_ms))
    ratio = statistics.median(http_ms) / statistics.median(raw_ms)
    print(f"{'  ratio HTTP / raw (medians)':<44} {ratio:7.2f} x   (target: median < 10 ms, within 3x of raw)")
    print(summary("nearest-5 open now over HTTP", open_ms))
    print(summary("  outlets.search.nearest in process", search_ms))


def bench_addresses(port: int, runs: int, rng: random.Random) -> None:
    """Address suggestions over HTTP."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    queries = [f"{rng.choice(STREETS)}{rng.choice(('str', 'weg', 'gasse'))} {rng.randint(1, 100)}" for _ in range(runs)]
    timings = [timed_get(connection, "/api/outlets/addresses?" + urlencode({"q": query}))[0] for query in queries]
    print(summary("address suggestions over HTTP (street and number)", timings))


def bench_slots(engine, port: int, runs: int, rng: random.Random) -> None:
    """Slots of random outlet-days over HTTP."""
    with engine.connect() as db:
        codes = db.execute(text("SELECT code FROM outlets WHERE weekly_hours IS NOT NULL ORDER BY random() LIMIT :n"),
                           {"n": runs}).scalars().all()
    day = (datetime.now(timezone.utc).astimezone(ZONE) + timedelta(days=3)).date()
    connection = http.client.HTTPConnection("127.0.0.1", port)
    for code in codes[:20]:
        timed_get(connection, f"/api/outlets/{code}/slots?date={day}")
    timings, slots = [], 0
    for code in codes:
        elapsed, body = timed_get(connection, f"/api/outlets/{code}/slots?date={day + timedelta(days=rng.randint(0, 6))}")
        timings.append(elapsed)
        slots += len(body["slots"])
    print(summary("slots of one outlet-day over HTTP", timings) + f"   {slots / len(codes):.0f} slots a day on average")


def bench_bookings(engine, port: int, attempts: int) -> None:
    """A burst of concurrent booking attempts on a few slots; checks that nothing is overbooked."""
    with engine.begin() as db:
        code = db.execute(text("SELECT o.code FROM outlets o WHERE weekly_hours::text LIKE '%00:00-24:00%' "
                               "ORDER BY id LIMIT 1")).scalar_one()
        db.execute(text("UPDATE outlet_services SET capacity = 3 FROM outlets o "
                        "WHERE o.id = outlet_id AND o.code = :c AND service = 'billing'"), {"c": code})
    day = (datetime.now(timezone.utc).astimezone(ZONE) + timedelta(days=2)).date()
    starts = [datetime(day.year, day.month, day.day, 10 + hour, tzinfo=ZONE).isoformat() for hour in range(5)]
    barrier = threading.Barrier(attempts)

    def attempt(index: int) -> tuple[int, float]:
        """One booking attempt on its own connection: status and milliseconds."""
        body = json.dumps({"outlet": code, "service": "billing", "start": starts[index % len(starts)],
                           "name": f"Customer {index}", "phone": "0721 1234567", "idempotency_key": f"bench-{index}"})
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        barrier.wait()
        started = time.perf_counter()
        connection.request("POST", "/api/bookings", body, {"Content-Type": "application/json"})
        status = connection.getresponse().status
        return status, (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=attempts) as pool:
        results = list(pool.map(attempt, range(attempts)))
    wall = time.perf_counter() - started
    statuses = [status for status, _ in results]
    with engine.connect() as db:
        over = db.execute(text("""
            SELECT count(*) FROM slot_bookings c
             WHERE c.booked > c.capacity
                OR c.booked <> (SELECT count(*) FROM bookings b WHERE b.outlet_id = c.outlet_id
                                AND b.slot_start = c.slot_start AND b.service = c.service AND b.status = 'confirmed')
        """)).scalar_one()
        booked = db.execute(text("SELECT count(*) FROM bookings")).scalar_one()
    latencies = [ms for _, ms in results]
    print(f"{attempts} concurrent booking attempts on {len(starts)} slots of capacity 3: "
          f"{statuses.count(201)} booked, {statuses.count(409)} refused as full, "
          f"{len(statuses) - statuses.count(201) - statuses.count(409)} other")
    print(f"{'  throughput':<44} {attempts / wall:7.0f} requests/s ({wall:.2f} s for all)")
    print(summary("  booking request latency", latencies))
    print(f"{'  overbooked or miscounted slots':<44} {over}   (bookings stored: {booked})")
    if over or statuses.count(201) != 3 * len(starts):
        raise SystemExit("booking figures are wrong")


def main() -> None:
    """Load the outlets, start the server, run every measurement."""
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outlets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--bookings", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--reuse", action="store_true",
                        help="use the outlets a previous run loaded (run with --bookings 0, or its slots are full)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cluster = default_cluster()
    cluster.ensure()
    url = cluster.url(args.database)
    if not args.reuse:
        cluster.create_database(args.database, drop_first=True)
    engine = make_engine(url)
    if not args.reuse:
        upgrade(engine)
        started = time.perf_counter()
        load_outlets(engine, args.outlets, args.seed)
        print(f"loaded {args.outlets:,} outlets in {time.perf_counter() - started:.1f} s", end="; ")
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores, shared)")
    try:
        # The dev server first, for comparison, with fewer requests.
        server, port = start_server(url, "werkzeug")
        try:
            bench_nearest(engine, port, max(100, args.requests // 4), random.Random(args.seed + 1), "werkzeug", full=False)
        finally:
            stop_app(server)
        server, port = start_server(url, "granian")
        try:
            bench_nearest(engine, port, args.requests, rng)
            bench_slots(engine, port, args.requests // 2, rng)
            bench_addresses(port, args.requests // 10, rng)
            if args.bookings:
                bench_bookings(engine, port, args.bookings)
        finally:
            stop_app(server)
    finally:
        engine.dispose()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
