"""Time the import of a network file: the demo city written as a GeoPackage, imported into an empty database.

    .venv/bin/python bench/import.py                  # 10k, 100k and 1M customers
    .venv/bin/python bench/import.py 20000 --seed 2   # other sizes

For each size: generate the demo city, write it with ``write_network_file``, then time what
``flask network import FILE`` does: ``read_network_file`` and ``load_network`` in one
transaction, into a freshly migrated database (``gridatlas_bench_import`` in the embedded
cluster). The load is split into validation (``normalise_layer``, timed on its own beforehand),
index and constraint rebuilds, ANALYZE, and the rest (resolving codes, encoding, COPY).
Prints the load average too: the machine is shared.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import fresh_engine, load_note  # noqa: E402  (puts the project on sys.path)
from sqlalchemy import event  # noqa: E402

from topology.demo import generate_city  # noqa: E402
from topology.importers import read_network_file, write_network_file  # noqa: E402
from topology.loader import load_network, normalise_layer  # noqa: E402

DATABASE = "gridatlas_bench_import"


def sql_timer(engine) -> Counter:
    """Seconds spent in index/constraint rebuilds and ANALYZE, accumulated per kind of statement."""
    spent: Counter = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        """Note when the statement started."""
        conn.info["started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        """Add its time to its kind."""
        kind = ("indexes" if statement.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX", "ALTER TABLE"))
                else "analyze" if statement.startswith("ANALYZE") else "other sql")
        spent[kind] += time.perf_counter() - conn.info.pop("started")

    return spent


def bench(customers: int, seed: int, folder: Path) -> None:
    """Generate, write and import one city; print the figures."""
    before = load_note()
    started = time.perf_counter()
    frames = generate_city(customers, seed=seed)
    generated = time.perf_counter() - started
    path = folder / f"city-{customers}.gpkg"
    started = time.perf_counter()
    write_network_file(frames, path)
    written = time.perf_counter() - started
    del frames

    engine = fresh_engine(DATABASE)
    spent = sql_timer(engine)
    started = time.perf_counter()
    frames = read_network_file(path)
    read = time.perf_counter() - started
    started = time.perf_counter()
    for name, frame in frames.items():
        normalise_layer(name, frame)
    validated = time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as connection:
        load_network(connection, frames)
    loaded = time.perf_counter() - started
    engine.dispose()
    rest = loaded - validated - spent["indexes"] - spent["analyze"]
    rows = sum(frames.counts().values())
    print(f"{customers:>9,} customers  import {read + loaded:6.1f} s = read {read:5.1f} s + load {loaded:6.1f} s "
          f"(validate {validated:4.1f}, resolve+encode+COPY {rest:5.1f}, indexes {spent['indexes']:4.1f}, "
          f"analyze {spent['analyze']:4.1f})  {rows / (read + loaded):,.0f} rows/s")
    print(f"           file {path.stat().st_size / 1e6:,.0f} MB (written in {written:.1f} s; city generated in "
          f"{generated:.1f} s); peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.1f} GB; "
          f"before: {before}; after: {load_note()}")
    print("           " + ", ".join(f"{table} {count:,}" for table, count in frames.counts().items()))
    path.unlink()


def main() -> None:
    """Run the sizes given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gridatlas-import-") as folder:
        for customers in args.sizes:
            bench(customers, args.seed, Path(folder))


if __name__ == "__main__":
    main()
