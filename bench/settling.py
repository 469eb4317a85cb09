"""What one settling round costs under a storm, in process, against the settling of a given commit
in the same run (issue 10's "each report settled with p99 < 50 ms").

Usage::

    .venv/bin/python bench/settling.py [size] [--against REV] [--calls 2000] [--events 20000]

The storm of ``bench/outages.py`` (the same faults, calls and meter event batches, seed = size) is
stored through the intake functions in its order, in one thread, with no server: after each
batch of meter events (and the calls that came before it) one settling round runs, as the
settler's does when it keeps up. For each round: the wall time, this thread's CPU, the
PostgreSQL backend's CPU (from /proc) and the statements sent. The storm's figures on a busy
server depend on the machine's load; these depend mostly on the code, so two versions of the
settling can be told apart on a machine that is doing something else. ``--against`` (default
ef04fa1, the settling before a round's feeders shared one transaction) loads ``outages/settle.py``
of that commit as the baseline, run on the same storm.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from common import bench_database, load_note  # noqa: E402

from geo.db import make_engine  # noqa: E402
from outages import intake  # noqa: E402
from outages.settings import OutageSettings  # noqa: E402
from topology.cache import TopologyCache  # noqa: E402


def _module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# bench/outages.py builds the storm (loaded by path: the package ``outages`` has that name).
STORM = _module("bench_outages_storm", ROOT / "bench" / "outages.py")


def baseline(revision: str) -> types.ModuleType:
    """``outages/settle.py`` as it was at ``revision``, importable beside today's."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:outages/settle.py"],
                            check=True, capture_output=True, text=True).stdout
    path = ROOT / "var" / f"settle_{revision.replace('/', '_')}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(source)
    return _module(f"outages.settle_at_{abs(hash(revision))}", path)


def backend_cpu(pid: int) -> float:
    """CPU seconds of a PostgreSQL backend (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storm_items(engine, size: int, calls: int, events: int):
    """The storm's requests, as ``bench/outages.py`` makes them for this size, and its faults' codes."""
    topology, faults, storm, _shape = STORM.the_storm(engine, size, calls, events)
    return storm, {str(topology.data.edge_code[f]) for f in faults}


def run(engine, settle, storm, faults: set[str]) -> dict:
    """Store the storm in order, one settling round after each batch of events: each round's costs."""
    STORM.reset(engine)
    make_session = sessionmaker(bind=engine, expire_on_commit=False)
    cache, settings = TopologyCache(), OutageSettings()
    statements = [0]
    counting = lambda *args: statements.__setitem__(0, statements[0] + 1)  # noqa: E731
    session = make_session()
    with session.begin():
        cache.get(session.connection())
        backend = session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one()
    rounds, keys = [], set()
    collect = lambda connection, found: keys.update(found)  # noqa: E731
    event.listen(engine, "before_cursor_execute", counting)
    try:
        for kind, body in storm:
            if kind == "call":
                intake.file_call(session, cache, intake.parse_call(body), settings, collect)
                continue
            intake.record_meter_events(session, cache, intake.parse_meter_events(body), settings, collect)
            sent, cpu, pg, wall = statements[0], time.thread_time(), backend_cpu(backend), time.perf_counter()
            settle.settle_pending(session, cache, sorted(keys), settings)
            rounds.append((time.perf_counter() - wall, time.thread_time() - cpu, backend_cpu(backend) - pg,
                           statements[0] - sent, len(keys)))
            keys = set()
    finally:
        event.remove(engine, "before_cursor_execute", counting)
    with engine.connect() as connection:
        predicted = set(connection.execute(text("SELECT device FROM outages WHERE state = 'predicted'")).scalars())
    session.close()
    return {"rounds": rounds, "found": len(faults & predicted), "faults": len(faults), "others": len(predicted - faults)}


def show(label: str, figures: dict) -> None:
    rounds = figures["rounds"]
    wall, cpu, pg, sent, keys = (np.array(column) * scale for column, scale in zip(zip(*rounds), (1e3, 1e3, 1e3, 1, 1)))
    print(f"  {label:10s} {len(rounds)} rounds of {statistics.median(keys):.0f} feeders (median):"
          f"  wall p50 {np.median(wall):6.1f} / p99 {np.percentile(wall, 99):6.1f} ms;"
          f"  Python CPU p50 {np.median(cpu):5.1f} ms; PostgreSQL CPU p50 {np.median(pg):5.1f} ms;"
          f"  statements p50 {np.median(sent):4.0f}; totals {wall.sum() / 1e3:.2f} s wall, {cpu.sum() / 1e3:.2f} s"
          f" Python, {pg.sum() / 1e3:.2f} s PostgreSQL; faults predicted {figures['found']} of {figures['faults']}"
          f" (other predicted outages {figures['others']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", nargs="?", type=int, default=100_000)
    parser.add_argument("--against", default="ef04fa1",
                        help="the commit whose outages/settle.py is the baseline (default: before rounds were batched)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    url = bench_database(f"gridatlas_bench_outages_{args.size}", args.size, reuse=True)
    engine = make_engine(url, pool_size=2)
    storm, faults = storm_items(engine, args.size, args.calls, args.events)
    print(f"settling rounds, {args.size:,} customers: {args.calls:,} calls and {args.events:,} meter events "
          f"over {len(faults)} faults ({load_note()})")
    from outages import settle

    for label, module in ((args.against, baseline(args.against)), ("now", settle)):
        show(label, run(engine, module, storm, faults))
    print(f"  ({load_note()})")


if __name__ == "__main__":
    main()
