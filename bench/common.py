"""What every benchmark needs: a database of its own, the machine's load, a free port.

Benchmarks run as scripts (``.venv/bin/python bench/NAME.py``); importing this module also puts
the project root on ``sys.path``.
"""
from __future__ import annotations

import http.client
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from geo.cluster import default_cluster  # noqa: E402
from geo.db import make_engine  # noqa: E402
from geo.migrate import upgrade  # noqa: E402

__all__ = ["ROOT", "bench_database", "fresh_engine", "peak_memory_gb", "load_note", "free_port"]


def bench_database(name: str, customers: int | None = None, *, reuse: bool = False, seed: int = 1,
                   meshed: bool = False) -> str:
    """The URL of database ``name`` in the embedded cluster, migrated, holding the demo city.

    With ``customers`` the demo city of that size is loaded (operated meshed with ``meshed``:
    topology.demo.mesh); with ``reuse`` a database that already holds a city of that size is
    kept instead of being recreated.
    """
    cluster = default_cluster()
    cluster.ensure()
    cluster.create_database(name, drop_first=not reuse)
    url = cluster.url(name)
    engine = make_engine(url, pool_size=1)
    upgrade(engine)
    if customers is not None:
        with engine.connect() as connection:
            present = connection.execute(text("SELECT count(*) FROM service_points")).scalar_one()
        if present != customers:
            if present:
                engine.dispose()
                return bench_database(name, customers, reuse=False, seed=seed, meshed=meshed)
            from topology.demo import generate_city
            from topology.loader import load_network

            started = time.perf_counter()
            frames = generate_city(customers=customers, seed=seed, meshed=meshed)
            with engine.begin() as connection:
                load_network(connection, frames)
            print(f"  loaded the {customers:,}-customer demo city in {time.perf_counter() - started:.1f} s",
                  flush=True)
    engine.dispose()
    return url


def fresh_engine(name: str):
    """An engine on a newly created, migrated, empty database ``name``."""
    return make_engine(bench_database(name))


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def load_note() -> str:
    """The machine's load, to judge the figures by."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bench_token(engine, role: str = "dispatcher") -> dict[str, str]:
    """The Authorization header of a fresh ``bench-<role>`` account's API token (every route but
    the public ones needs one), made in the bench database."""
    from geo import accounts
    from geo.db import session_scope

    name = f"bench-{role}"
    with session_scope(engine) as session:
        if all(view.name != name for view in accounts.list_accounts(session)):
            accounts.create_account(session, name, role, None)
        issued = accounts.issue_token(session, name, 1, label="bench")
    return {"Authorization": f"Bearer {issued.token}"}


def serve_app(url: str, port: int, env: dict | None = None, args: tuple = ()) -> subprocess.Popen:
    """``flask --app app serve`` (granian, as production runs it) on ``port`` over the database
    ``url``, returned once it answers; ``env`` adds settings, ``args`` options of serve."""
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    settings = {**os.environ, "DATABASE_URL": url, "BASEMAP_URL": "none", "SECRET_KEY": secrets.token_hex(32),
                **(env or {})}
    settings.pop("PYTHONPATH", None)
    process = subprocess.Popen([flask, "--app", "app", "serve", "--port", str(port), *args], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=settings)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/outlets/services")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the production server did not start")


def stop_app(process: subprocess.Popen) -> None:
    """Stop a server started by ``serve_app`` (granian stops its workers on one SIGTERM)."""
    process.terminate()
    process.wait(timeout=60)
