"""Fuzz the contract: schemathesis against every operation of /openapi.json, anonymously and with a
bearer token of each role, in process (WSGI), positive and negative cases, then the counts.

    .venv/bin/python bench/fuzz.py                  # make fuzz: 12 cases per operation, role and mode
    .venv/bin/python bench/fuzz.py --examples 40 --seed 7

Uses its own database ``gridatlas_fuzz`` (``--database``) in the embedded cluster, dropped and
recreated, holding what the short run in the test suite holds (tests/contract.py): the
protected_feeder network, an outlet with a booking, an account and token of each role. Rate
limits are raised out of reach (429 is in the contract of the limited routes). Exits 1 when any
case failed a check (a 5xx, an undocumented status or media type, an answer breaking its schema).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

# bench/outlets.py would stand for the outlets package: the project root comes first.
BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(BENCH.parent)] + [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH] + [str(BENCH)]

from common import bench_database  # noqa: E402

from app import create_app  # noqa: E402
from geo.db import make_engine  # noqa: E402
from tests.contract import UNLIMITED, run, seed  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=12, help="cases per operation, role and generation mode")
    parser.add_argument("--seed", type=int, default=1, help="hypothesis seed")
    parser.add_argument("--database", default="gridatlas_fuzz")
    arguments = parser.parse_args()
    url = bench_database(arguments.database)
    engine = make_engine(url, pool_size=4)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "ENGINE": engine, "BASEMAP_URL": "none", **UNLIMITED})
    # The app logs every 500 with its traceback; the tally reports them once each.
    logging.getLogger("app").setLevel(logging.CRITICAL)
    seeded = seed(engine, app)
    started = time.perf_counter()
    tally = run(app, seeded, arguments.examples, seed_value=arguments.seed)
    elapsed = time.perf_counter() - started
    for problem in tally.failures.values():
        print(problem, end="\n\n")
    print(tally.report())
    print(f"{elapsed:.0f} s, {sum(tally.cases.values()) / elapsed:.0f} cases/s")
    app.extensions["reads"].close()
    engine.dispose()
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
