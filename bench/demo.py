"""Time the demo city: generation, and load_network into a fresh database, per size.

    .venv/bin/python bench/demo.py                 # 10k, 100k and 1M customers
    .venv/bin/python bench/demo.py 20000 --seed 2  # other sizes

Uses its own database ``gridatlas_bench_demo`` in the embedded cluster (dropped and recreated
for every size). Prints seconds, peak memory of this process and rows per layer.
"""
from __future__ import annotations

import argparse
import gc
import os
import time

from common import fresh_engine, peak_memory_gb  # noqa: E402  (puts the project on sys.path)
from topology.demo import city_for, generate_city  # noqa: E402
from topology.loader import load_network  # noqa: E402

DATABASE = "gridatlas_bench_demo"


def bench(customers: int, seed: int) -> None:
    """Generate and load one city; print the figures."""
    city = city_for(customers)
    started = time.perf_counter()
    frames = generate_city(customers, seed=seed)
    generated = time.perf_counter() - started
    engine = fresh_engine(DATABASE)
    started = time.perf_counter()
    with engine.begin() as connection:
        load_network(connection, frames)
    loaded = time.perf_counter() - started
    engine.dispose()
    counts = frames.counts()
    print(f"{customers:>9,} customers  generate {generated:6.1f} s  load_network {loaded:6.1f} s  "
          f"total {generated + loaded:6.1f} s  peak memory {peak_memory_gb():4.1f} GB  "
          f"({city.substations} substations, {city.feeders} feeders, {city.rows}x{city.columns} blocks)")
    print("           " + ", ".join(f"{table} {rows:,}" for table, rows in counts.items()))
    print(f"           all rows {sum(counts.values()):,}; per customer: " + ", ".join(
        f"{table} {counts[table] / customers:.2f}" for table in ("nodes", "segments", "devices")), flush=True)
    del frames
    gc.collect()


def main() -> None:
    """Parse the sizes and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    print(f"demo city benchmark on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for customers in arguments.sizes:
        bench(customers, arguments.seed)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
