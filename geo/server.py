"""The production server: granian (a Rust HTTP server) running ``wsgi:app`` in worker processes.

``flask --app app serve`` starts it; the granian command line does the same with its own flags
(``granian --interface wsgi wsgi:app``). Chosen over gunicorn's threaded workers for its lower
cost per request: 0.38 ms against 0.59 ms for a request that does not reach the database, and
0.95 ms against 1.30 ms for a nearest-outlet search (bench/outlets.py, docs/performance.md).

Each worker is a process with its own database pool and its own copy of the tracing cache, so
workers cost memory (0.74 GB each at a million customers); threads in a worker share them and
wait for the database in parallel. HTTP/1.1 connections are kept alive for reverse proxies and
API clients. Static files are served by granian itself, without entering Python.
"""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask import Flask

__all__ = ["serve", "init_app", "default_workers"]

ROOT = Path(__file__).resolve().parent.parent
# A worker that dies is started again; one that grows past this much memory is replaced.
MAX_WORKER_RSS_MB = 4096
# Workers are replaced now and then (granian staggers it), so that a slow leak cannot grow.
WORKER_LIFETIME_S = 6 * 3600
# How long browsers keep a static file: our own scripts change with a deployment, and the
# URLs carry no version.
STATIC_MAX_AGE_S = 600


def default_workers() -> int:
    """One worker per core this process may use (at least 2, so one can restart while the other serves)."""
    return max(2, len(os.sched_getaffinity(0)))


def serve(host: str, port: int, workers: int, threads: int, access_log: bool = False) -> None:
    """Serve ``wsgi:app`` until interrupted (Ctrl-C or SIGTERM stop it gracefully)."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    Granian(
        "wsgi:app", address=host, port=port, interface=Interfaces.WSGI, workers=workers,
        blocking_threads=threads, working_dir=ROOT,
        respawn_failed_workers=True, workers_max_rss=MAX_WORKER_RSS_MB, workers_lifetime=WORKER_LIFETIME_S,
        workers_kill_timeout=20, log_level=LogLevels.warning, log_access=access_log,
        static_path_route=["/static"], static_path_mount=[ROOT / "static"], static_path_expires=STATIC_MAX_AGE_S,
    ).serve()


def init_app(app: Flask) -> None:
    """Register ``flask serve``."""

    @app.cli.command("serve", with_appcontext=False)
    @click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1 or $HOST")
    @click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "5000")), show_default="5000 or $PORT")
    @click.option("--workers", type=click.IntRange(1, 64), default=lambda: int(os.environ.get("WORKERS", default_workers())),
                  show_default="one per core, at least 2, or $WORKERS")
    @click.option("--threads", type=click.IntRange(1, 256), default=lambda: int(os.environ.get("THREADS", "4")),
                  show_default="4 or $THREADS")
    @click.option("--access-log/--no-access-log", default=False, help="Log every request.")
    def serve_command(host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
        """Serve GridAtlas in production (granian, WSGI workers); settings come from the environment."""
        click.echo(f"GridAtlas: http://{host}:{port}/  ({workers} workers x {threads} threads; Ctrl-C stops)")
        serve(host, port, workers, threads, access_log)
