"""Time the address search (``?q=`` of the outlet finder) on the demo city's customers' addresses,
by kind of query, in process (the HTTP round trip adds what bench/outlets.py measures).

    .venv/bin/python bench/addresses.py                         # 1,000,000 customers
    .venv/bin/python bench/addresses.py --customers 100000 --reuse

Uses its own database ``gridatlas_bench_addresses`` (``--reuse`` keeps a city of the same size).
Each kind runs on queries drawn from the loaded addresses, suggestions and resolution both.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

from common import bench_database, load_note  # also puts the project root on sys.path

from sqlalchemy import text

from geo.db import make_engine
from geo.errors import NotFound
from geo.addresses import resolve_address, suggest_addresses


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def queries(connection, rng: random.Random, runs: int) -> dict[str, list[str]]:
    """Queries of each kind, drawn from the addresses loaded."""
    rows = connection.execute(text("SELECT address FROM service_points TABLESAMPLE SYSTEM (5) "
                                   "WHERE address IS NOT NULL LIMIT 5000")).scalars().all()
    picked = [rng.choice(rows) for _ in range(runs)]
    streets = [a.split(",")[0].rsplit(" ", 1) for a in picked]
    places = connection.execute(text("SELECT postcode, town FROM address_places")).all()
    towns = sorted({town for _, town in places})

    def typo(word: str) -> str:
        at = rng.randrange(1, len(word) - 2)
        return word[:at] + word[at + 1] + word[at] + word[at + 2:]

    return {
        "street prefix ('Karlstr')": [street[:max(4, len(street) - 4)] for street, _ in streets],
        "street and number ('Karlstraße 7')": [f"{street} {number}" for street, number in streets],
        "whole address with town": picked,
        "street, number, town ('Karlstraße 7, Karlsruhe')": [f"{s} {n}, {a.rsplit(' ', 1)[-1]}" for (s, n), a in zip(streets, picked)],
        "street and a number it lacks ('Karlstraße 971')": [f"{street} {900 + rng.randrange(99)}" for street, _ in streets],
        "town ('Karlsruhe')": [rng.choice(towns) for _ in range(runs)],
        "postcode ('76133')": [rng.choice(places)[0] or rng.choice(towns) for _ in range(runs)],
        "misspelt street and number ('Karlstarße 7')": [f"{typo(street)} {number}" for street, number in streets],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    url = bench_database("gridatlas_bench_addresses", args.customers, reuse=args.reuse, seed=args.seed)
    engine = make_engine(url)
    rng = random.Random(args.seed)
    print(f"{args.customers:,} customers' addresses; {load_note()}")
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        for kind, qs in queries(connection, rng, args.runs).items():
            for q in qs[:3]:  # warm the caches
                suggest_addresses(connection, q)
                connection.rollback()
            for name, search in (("suggest", suggest_addresses), ("resolve", resolve_address)):
                timings, resolved = [], 0
                for q in qs:
                    started = time.perf_counter()
                    try:
                        answer = search(connection, q)
                    except NotFound:
                        answer = None
                    timings.append((time.perf_counter() - started) * 1000)
                    connection.rollback()
                    resolved += name == "resolve" and answer is not None and answer[0] is not None
                note = f"   {resolved}/{len(qs)} resolved" if name == "resolve" else ""
                print(f"{kind:<52} {name}  median {statistics.median(timings):7.1f} ms   "
                      f"p99 {percentile(timings, 0.99):7.1f} ms{note}", flush=True)
    engine.dispose()
    print(load_note())


if __name__ == "__main__":
    main()
