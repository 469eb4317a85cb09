"""Tracing benchmark on the demo city: cold start, affected customers in-process and over HTTP,
switching end to end, and a from-scratch networkx multi-source search as the naive baseline.

Usage::

    .venv/bin/python bench/trace.py [sizes ...] [--reuse] [--port N] [--meshed] [--pandapower]

Sizes are customer counts (default 10000 100000 1000000). Each size gets a database of its own
in the embedded cluster (``gridatlas_bench_trace_<size>``), loaded with the demo city (seed 1);
``--reuse`` keeps one that already holds a city of that size. A worker process serves the app
on 127.0.0.1 (a free port unless ``--port``) for the HTTP figures and its memory.

``--meshed`` runs the same on the meshed demo city (``demo --meshed``: every tie closed, feeder
exits doubled; databases ``gridatlas_bench_trace_meshed_<size>``), against issue 11's targets,
and adds pandapower's ``unsupplied_buses`` as a second baseline on the same changes, on the
city (a pandapower net built from it) and on mv_oberrhein with every tie closed.
``--pandapower`` adds that baseline to a radial run too.

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

from sqlalchemy import text  # noqa: E402

from geo.db import make_engine  # noqa: E402
from topology import trace  # noqa: E402
from topology.index import Topology  # noqa: E402
from topology.nxview import to_networkx  # noqa: E402
from topology.read import read_network  # noqa: E402

TARGETS_1M = {"single in-process median": "< 1 ms", "HTTP median (<= 2,000 customers)": "< 30 ms",
              "switching end to end median": "< 100 ms", "cold start": "< 20 s", "worker memory": "< 2.5 GB"}
TARGETS_MESHED = {"single device median (1M)": "< 1 ms", "50 simultaneous faults median (1M)": "< 10 ms",
                  "ratio to pandapower unsupplied_buses": ">= 100x", "cold start": "< 20 s",
                  "worker memory": "< 2.5 GB"}


def pandapower_net(data, closed):
    """The network as a pandapower net for ``unsupplied_buses``: a bus per node, a line per
    segment, a bus-bus switch per device (in its state in ``closed``), an external grid per
    source, a load per service point; out-of-service elements out of service."""
    import pandapower as pp

    net = pp.create_empty_network()
    pp.create_buses(net, data.node_count, vn_kv=20.0, in_service=data.node_in_service)
    segments = np.arange(data.segment_count)
    pp.create_lines_from_parameters(net, data.edge_u[segments], data.edge_v[segments], length_km=0.1,
                                    r_ohm_per_km=0.1, x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=1.0,
                                    in_service=data.edge_in_service[segments])
    devices = np.arange(data.segment_count, data.edge_count)
    # an out-of-service device is an open switch: it conducts nothing either way
    pp.create_switches(net, data.edge_u[devices], data.edge_v[devices], et="b",
                       closed=closed[devices] & data.edge_in_service[devices])
    for node, live in zip(data.source_node.tolist(), data.source_in_service.tolist()):
        pp.create_ext_grid(net, node, in_service=live)
    pp.create_loads(net, data.sp_node, p_mw=0.001, in_service=data.sp_in_service)
    return net


def unsupplied_seconds(net, data, changes: list[list[int]]) -> list[float]:
    """pandapower's ``unsupplied_buses`` on ``net`` after each change (devices opened; segments
    taken out of service), the same changes the fast path answered; the net is put back after."""
    from pandapower.topology import unsupplied_buses

    seconds = []
    for edges in changes:
        lines = [e for e in edges if e < data.segment_count]
        switches = [e - data.segment_count for e in edges if e >= data.segment_count]
        before_lines = net.line.loc[lines, "in_service"].copy()
        before_switches = net.switch.loc[switches, "closed"].copy()
        net.line.loc[lines, "in_service"] = False
        net.switch.loc[switches, "closed"] = False
        started = time.perf_counter()
        unsupplied_buses(net)
        seconds.append(time.perf_counter() - started)
        net.line.loc[lines, "in_service"] = before_lines
        net.switch.loc[switches, "closed"] = before_switches
    return seconds


def versus_pandapower(data, topology, scenarios: dict, fast_median: dict, figures: dict, samples: int) -> None:
    """pandapower's unsupplied_buses against the fast path on the same changes; prints the ratios."""
    started = time.perf_counter()
    net = pandapower_net(data, topology.closed)
    say(f"  pandapower baseline: net of {len(net.bus):,} buses built in {time.perf_counter() - started:.1f} s")
    rng = random.Random(len(net.bus))
    for name, changes in scenarios.items():
        picked = rng.sample(changes, min(samples, len(changes)))
        seconds = unsupplied_seconds(net, data, picked)
        ratio = median(seconds) / fast_median[name]
        figures[f"pandapower {name}"], figures[f"pp ratio {name}"] = median(seconds), ratio
        say(f"    {name:24s} unsupplied_buses {ms(seconds)}  -> fast path {ratio:,.0f}x faster   "
            f"target >= 100x   {'met' if ratio >= 100 else 'MISSED'}")


def oberrhein_meshed(figures: dict) -> None:
    """mv_oberrhein with every normally-open tie closed: the fast path against unsupplied_buses
    on the same random changes (switches opened, lines out of service), answers compared."""
    import copy

    import pandapower.networks
    from pandapower.topology import unsupplied_buses

    from topology.loader import load_network
    from topology.pandapower_mapping import frames_from_net

    net = pandapower.networks.mv_oberrhein()
    url = bench_database("gridatlas_bench_trace_oberrhein", reuse=True)  # loaded below when empty
    engine = make_engine(url, pool_size=1)
    with engine.begin() as connection:
        if not connection.execute(text("SELECT EXISTS (SELECT 1 FROM nodes)")).scalar_one():
            load_network(connection, frames_from_net(net))
    with engine.connect() as connection:
        data, version = read_network(connection)
    engine.dispose()
    ties = net.switch.index[~net.switch.closed].tolist()
    tied = copy.deepcopy(net)
    tied.switch.loc[ties, "closed"] = True
    topology = Topology(data).operated({int(data.find("devices", [f"pp:switch:{i}"])[0]): True for i in ties})
    rng = random.Random(11)
    switches = tied.switch.index[tied.switch.closed].tolist()
    fast, slow, disagreements = [], [], 0
    before = set(unsupplied_buses(tied))
    changes = []
    for _ in range(200):
        opened, lines = rng.sample(switches, rng.randint(1, 5)), rng.sample(tied.line.index.tolist(), rng.randint(0, 3))
        edges = [int(e) for e in data.find("devices", [f"pp:switch:{i}" for i in opened])]
        edges += [int(e) for e in data.find("segments", [f"pp:line:{i}" for i in lines])]
        changes.append((opened, lines, edges))
    # Each way timed over all the changes in a row (interleaved, each would time the other's cache misses).
    losses = []
    for _opened, _lines, edges in changes:
        started = time.perf_counter()
        losses.append(trace.affected(topology, edges))
        fast.append(time.perf_counter() - started)
    for (opened, lines, _edges), loss in zip(changes, losses):
        changed = copy.deepcopy(tied)
        changed.switch.loc[opened, "closed"] = False
        changed.line.loc[lines, "in_service"] = False
        started = time.perf_counter()
        after = set(unsupplied_buses(changed))
        slow.append(time.perf_counter() - started)
        loads = changed.load[changed.load.in_service]
        expected = {f"pp:load:{i}" for i in loads.index[loads.bus.isin(after - before)].tolist()}
        disagreements += set(data.sp_code[loss.customers].tolist()) != expected
    ratio = median(slow) / median(fast)
    figures["oberrhein ratio"] = ratio
    say(f"  mv_oberrhein, all {len(ties)} ties closed ({'meshed' if not topology.is_radial else 'radial'}): "
        f"fast path {ms(fast)}; unsupplied_buses {ms(slow)}  -> {ratio:,.0f}x faster   target >= 100x   "
        f"{'met' if ratio >= 100 else 'MISSED'}; answers differ in {disagreements} of 200 changes")


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


def bench(size: int, reuse: bool, port: int | None, meshed: bool = False, with_pandapower: bool = False) -> dict:
    """Every figure for one size of the demo city."""
    say(f"\n== {size:,} customers{', meshed' if meshed else ''} ({load_note()})")
    url = bench_database(f"gridatlas_bench_trace_{'meshed_' if meshed else ''}{size}", size, reuse=reuse,
                         meshed=meshed)
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
        f"{sum(s is not None and s.kind == 'radial' for s in topology.sections):,} radial sections, "
        f"{sum(s is not None and s.kind == 'meshed' for s in topology.sections):,} meshed ones")
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
    if meshed or with_pandapower:
        versus_pandapower(data, topology, scenarios, fast_median, figures, 3 if size >= 500_000 else 10)
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
    parser.add_argument("--meshed", action="store_true", help="the meshed demo city (every tie closed)")
    parser.add_argument("--pandapower", action="store_true", help="pandapower's unsupplied_buses as a baseline too")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    started = time.perf_counter()
    oberrhein = {}
    if args.meshed or args.pandapower:  # first, in a process not yet holding a big city
        oberrhein_meshed(oberrhein)
    results = [bench(size, args.reuse, args.port, args.meshed, args.pandapower) for size in args.sizes]
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
    if args.meshed or args.pandapower:
        say("| customers | unsupplied_buses single | ratio single | unsupplied_buses 50 faults | ratio 50 faults |")
        say("|---:|---:|---:|---:|---:|")
        for f in results:
            say(f"| {f['customers']:,} | {f['pandapower single device'] * 1e3:,.0f} ms | "
                f"{f['pp ratio single device']:,.0f}x | {f['pandapower 50 simultaneous faults'] * 1e3:,.0f} ms | "
                f"{f['pp ratio 50 simultaneous faults']:,.0f}x |")
        say(f"mv_oberrhein with every tie closed: {oberrhein['oberrhein ratio']:,.0f}x faster than unsupplied_buses")
    targets = TARGETS_MESHED if args.meshed else TARGETS_1M
    say("Targets: " + "; ".join(f"{k} {v}" for k, v in targets.items()))


if __name__ == "__main__":
    main()
