"""Tracing benchmark on the demo city: cold start, affected customers in-process and over HTTP,
switching end to end, and a from-scratch networkx multi-source search as the naive baseline.

Usage::

    .venv/bin/python bench/trace.py [sizes ...] [--reuse] [--port N]

Sizes are customer counts (default 10000 100000 1000000). Each size gets a database of its own
in the embedded cluster (``gridatlas_bench_trace_<size>``), loaded with the demo city (seed 1);
``--reuse`` keeps one that already holds a city of that size. A worker process serves the app
on 127.0.0.1 (a free port unless ``--port``) for the HTTP figures and its memory.

The same changes are timed in every way: random single switching devices, every feeder
breaker, and sets of 50 random switching devices failing at once. The fast path's answers
are checked against the baseline's.
"""
from __future__ import annotations

import argparse
import gc
import random
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import numpy as np
import requests

from common import ROOT, bench_database, bench_token, free_port, load_note  # noqa: E402  (puts the project on sys.path)

from geo.db import make_engine  # noqa: E402
from topology import trace  # noqa: E402
from topology.index import Topology  # noqa: E402
from topology.nxview import to_networkx  # noqa: E402
from topology.read import read_network  # noqa: E402

TARGETS_1M = {"single in-process median": "< 1 ms", "HTTP median (<= 2,000 customers)": "< 30 ms",
              "switching end to end median": "< 100 ms", "cold start": "< 20 s", "worker memory": "< 2.5 GB"}


def say(message: str) -> None:
    """Print a line at once (the run is long)."""
    print(message, flush=True)


# -- database and worker ---------------------------------------------------------------------------
def serve(port: int, url: str) -> None:
    """The worker: the app on a threaded server, as ``flask run --with-threads`` serves it."""
    import logging

    from werkzeug.serving import make_server

    from app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    app = create_app({"DATABASE_URL": url, "BASEMAP_URL": "none"})
    server = make_server("127.0.0.1", port, app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()


def start_worker(port: int, url: str) -> subprocess.Popen:
    """A worker process serving the app, once it is ready."""
    worker = subprocess.Popen([sys.executable, __file__, "--serve", str(port), url], stdout=subprocess.PIPE,
                              cwd=ROOT, text=True)
    assert worker.stdout.readline().strip() == "ready"
    return worker


def memory_gb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) of a process in GB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 2**20, int(fields["VmHWM"].split()[0]) / 2**20


# -- timing ------------------------------------------------------------------------------------------
def timed(function, items) -> tuple[list[float], list]:
    """Seconds per call and the results."""
    seconds, results = [], []
    for item in items:
        started = time.perf_counter()
        results.append(function(item))
        seconds.append(time.perf_counter() - started)
    return seconds, results


def ms(values) -> str:
    """Median and 95th percentile in milliseconds."""
    return f"{median(values) * 1e3:.3f} ms (p95 {np.percentile(values, 95) * 1e3:.3f})"


def bench(size: int, reuse: bool, port: int | None) -> dict:
    """Every figure for one size of the demo city."""
    say(f"\n== {size:,} customers ({load_note()})")
    url = bench_database(f"gridatlas_bench_trace_{size}", size, reuse=reuse)
    engine = make_engine(url, pool_size=2)
    figures: dict[str, object] = {"customers": size}

    # Cold start in-process: the graph and its index from PostGIS, with code lookups.
    gc.collect()
    with engine.connect() as connection:
        started = time.perf_counter()
        data, version = read_network(connection)
        read = time.perf_counter() - started
        started = time.perf_counter()
        topology = Topology(data, version=version)
        indexed = time.perf_counter() - started
        started = time.perf_counter()
        data.warm_lookups()
        lookups = time.perf_counter() - started
    figures["cold start"] = read + indexed + lookups
    say(f"  network: {data.node_count:,} nodes, {data.edge_count:,} edges, {len(data.sp_id):,} service points, "
        f"{sum(s is not None and s.kind == 'radial' for s in topology.sections):,} radial sections"
        f"{'' if topology.is_radial else ' (some meshed)'}")
    say(f"  cold start in-process: read {read:.2f} s + index {indexed:.2f} s + code lookups {lookups:.2f} s "
        f"= {figures['cold start']:.2f} s")

    rng = random.Random(size)
    gear = np.flatnonzero(data.is_switchgear(np.arange(data.edge_count)) & topology.conducting).tolist()
    breakers = np.flatnonzero((data.edge_kind == 1) & topology.conducting).tolist()
    singles = rng.sample(gear, min(2000, len(gear)))
    fifties = [rng.sample(gear, 50) for _ in range(200)]
    scenarios = {"single device": [[e] for e in singles], "feeder breaker": [[e] for e in breakers],
                 "50 simultaneous faults": fifties}

    say("  in-process (trace.affected on positions; by codes = resolving codes and listing customer codes):")
    fast_median = {}
    for name, changes in scenarios.items():
        seconds, results = timed(lambda edges: trace.affected(topology, edges).customer_count, changes)
        codes = [data.edge_code[edges].tolist() for edges in changes]
        by_code, _ = timed(lambda c: trace.affected_by_codes(topology, c).customer_codes(), codes)
        fast_median[name] = median(seconds)
        figures[f"in-process {name}"] = median(by_code)
        say(f"    {name:24s} {ms(seconds)}; by codes {ms(by_code)}; customers median {median(results):,.0f}")
    single_edges = singles[:200]
    reindex, _ = timed(lambda e: topology.operated({e: False}), single_edges)
    say(f"    re-index after opening one device (Topology.operated) {ms(reindex)}")

    # The naive baseline: a networkx graph of the current state, one multi-source search per change.
    started = time.perf_counter()
    graph = to_networkx(data, topology.closed)
    say(f"  naive baseline: networkx graph built in {time.perf_counter() - started:.1f} s")
    before = trace.energised_by_networkx(data, topology.closed, graph=graph)
    samples = 5 if size >= 500_000 else 20
    for name, changes in scenarios.items():
        picked = rng.sample(changes, min(samples, len(changes)))
        seconds = []
        for edges in picked:
            started = time.perf_counter()
            after = trace.energised_by_networkx(data, topology.closed, edges, graph=graph)
            lost = np.array(sorted(before - after), dtype=np.int64)
            naive = set(data.customers_at(lost).tolist())
            seconds.append(time.perf_counter() - started)
            assert naive == set(trace.affected(topology, edges).customers.tolist()), f"disagreement on {edges}"
        ratio = median(seconds) / fast_median[name]
        figures[f"naive {name}"] = median(seconds)
        figures[f"ratio {name}"] = ratio
        say(f"    {name:24s} {ms(seconds)}  -> fast path {ratio:,.0f}x faster (answers equal)")
    del graph, before
    gc.collect()

    # HTTP against a worker process.
    port = port or free_port()
    worker = start_worker(port, url)
    try:
        http = requests.Session()
        http.headers.update(bench_token(engine))  # traces and switching are a dispatcher's
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        assert http.get(f"{base}/api/network/supply", timeout=600).status_code == 200
        figures["worker cold start"] = time.perf_counter() - started
        say(f"  worker (pid {worker.pid}, port {port}): first request incl. cold start "
            f"{figures['worker cold start']:.2f} s; memory {memory_gb(worker.pid)[0]:.2f} GB")
        say("  HTTP POST /api/trace/affected (JSON with every code):")
        for name, changes in scenarios.items():
            picked = changes[:500] if name == "single device" else changes[:200]
            bodies = [{"open": data.edge_code[edges].tolist()} for edges in picked]
            seconds, responses = timed(lambda body: http.post(f"{base}/api/trace/affected", json=body, timeout=60),
                                       bodies)
            counts = [r.json()["customer_count"] for r in responses]
            small = [s for s, c in zip(seconds, counts) if c <= 2000]
            if small:
                figures[f"HTTP {name} (<= 2,000)"] = median(small)
            say(f"    {name:24s} {ms(seconds)}; supply losses of <= 2,000 customers ({len(small)}): "
                f"{ms(small) if small else '-'}")
        figures["HTTP median (<= 2,000 customers)"] = median(
            [v for k, v in figures.items() if k.startswith("HTTP ") and "(<= 2,000)" in k])

        switches = [e for e in gear if data.kind_of(e) == "switch"]
        operated = rng.sample(switches, min(40, len(switches)))
        seconds = []
        for edge in operated:
            for action in ("open", "close"):
                body = {"operations": [{"device": data.edge_code[edge], "action": action}], "reason": "benchmark"}
                started = time.perf_counter()
                response = http.post(f"{base}/api/switching", json=body, timeout=60)
                seconds.append(time.perf_counter() - started)
                assert response.status_code == 201, response.text
        figures["switching end to end"] = median(seconds)
        say(f"  HTTP POST /api/switching (lock, persist, re-index, lost/regained): {ms(seconds)} "
            f"over {len(seconds)} operations")
        resident, peak = memory_gb(worker.pid)
        figures["worker memory"] = peak
        say(f"  worker memory: {resident:.2f} GB resident, {peak:.2f} GB peak")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        engine.dispose()
    say(f"  ({load_note()})")
    return figures


def main() -> None:
    """Run the sizes asked for and print a summary table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--reuse", action="store_true", help="keep a bench database already holding that city")
    parser.add_argument("--port", type=int, help="the worker's port (default: a free one)")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    started = time.perf_counter()
    results = [bench(size, args.reuse, args.port) for size in args.sizes]
    say(f"\nSummary (run took {time.perf_counter() - started:.0f} s)")
    say("| customers | cold start | single in-process | breaker in-process | 50 faults in-process | "
        "HTTP (<= 2,000) | switching | worker memory | naive single | ratio single | ratio 50 faults |")
    say("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in results:
        say(f"| {f['customers']:,} | {f['cold start']:.1f} s | {f['in-process single device'] * 1e3:.3f} ms | "
            f"{f['in-process feeder breaker'] * 1e3:.3f} ms | {f['in-process 50 simultaneous faults'] * 1e3:.2f} ms | "
            f"{f['HTTP median (<= 2,000 customers)'] * 1e3:.1f} ms | {f['switching end to end'] * 1e3:.1f} ms | "
            f"{f['worker memory']:.2f} GB | {f['naive single device'] * 1e3:.0f} ms | "
            f"{f['ratio single device']:,.0f}x | {f['ratio 50 simultaneous faults']:,.0f}x |")
    say("Targets at 1M customers: " + "; ".join(f"{k} {v}" for k, v in TARGETS_1M.items()))


if __name__ == "__main__":
    main()
