"""The production server: granian (a Rust HTTP server) running ``wsgi:app`` in worker processes.

``flask --app app serve`` starts it; the granian command line does the same with its own flags
(``granian --interface wsgi wsgi:app``). Chosen over gunicorn's threaded workers for its lower
cost per request: 0.38 ms against 0.59 ms for a request that does not reach the database, and
0.95 ms against 1.30 ms for a nearest-outlet search (bench/outlets.py, docs/performance.md).

Each worker is a process with its own database pool and its own copy of the tracing cache, so
workers cost memory (0.74 GB each at a million customers); threads in a worker share them and
wait for the database in parallel. HTTP/1.1 connections are kept alive for reverse proxies and
API clients. Static files are served by granian itself, without entering Python.

granian runs in a session of its own, and this process passes it one SIGTERM when it gets
Ctrl-C or SIGTERM, once its workers have started. A terminal's Ctrl-C signals a whole process
group: when granian's workers got that SIGINT and their parent's SIGTERM together, one stop in
four left a worker hanging until it was killed after the grace period (20 s); so did a SIGTERM
that reached a worker still loading the app (about 3 s after it is spawned). A single SIGTERM
to granian's main process once its workers run stopped it in 0.24 s every time.
"""
from __future__ import annotations

import ctypes
import _thread
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from geo.config import from_environment
from geo.security import InsecureSecretKey, require_secret_key

__all__ = ["serve", "granian_command", "init_app", "default_workers", "register_companion", "COMPANIONS",
           "relay_stop_signals"]

ROOT = Path(__file__).resolve().parent.parent
# A worker that dies is started again; one that grows past this much memory (MiB) is replaced.
MAX_WORKER_RSS_MB = 4096
# Workers are replaced now and then (granian staggers it), so that a slow leak cannot grow.
WORKER_LIFETIME_S = 6 * 3600
# How long a stopping worker may finish its requests before it is killed.
GRACE_S = 20
# How long a stop asked for while the workers start waits for them.
STARTUP_WAIT_S = 30
# How long browsers keep a static file: our own scripts change with a deployment, and the
# URLs carry no version.
STATIC_MAX_AGE_S = 600


# Processes that run beside the web workers, registered by the packages that need them (name ->
# the arguments of ``flask --app app``): started with granian, started again when one dies,
# stopped with it.
COMPANIONS: dict[str, tuple[str, ...]] = {}
# A companion that dies is started again after this many seconds (not in a tight loop).
RESTART_S = 2.0


def register_companion(name: str, args: tuple[str, ...]) -> None:
    """Have ``flask serve`` run ``flask --app app <args>`` beside the web workers."""
    COMPANIONS[name] = tuple(args)


def _start_companion(args: tuple[str, ...]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                            start_new_session=True, preexec_fn=_die_with_parent)


def _stop_companions(companions: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each, then wait for them (a companion finishes what it is doing), kill the late."""
    for process in companions.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + GRACE_S
    for process in companions.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def default_workers() -> int:
    """One worker per core this process may use (at least 2, so one can restart while the other serves)."""
    return max(2, len(os.sched_getaffinity(0)))


def granian_command(host: str, port: int, workers: int, threads: int, access_log: bool = False) -> list[str]:
    """The granian command line that serves ``wsgi:app`` with our production settings."""
    return [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port", str(port),
        "--workers", str(workers), "--blocking-threads", str(threads),
        "--respawn-failed-workers", "--workers-max-rss", str(MAX_WORKER_RSS_MB),
        "--workers-lifetime", str(WORKER_LIFETIME_S), "--workers-kill-timeout", str(GRACE_S),
        # info: the supervisor reads "Started worker-N" (and passes every line on)
        "--log-level", "info", "--access-log" if access_log else "--no-access-log",
        "--static-path-route", "/static", "--static-path-mount", str(ROOT / "static"),
        "--static-path-expires", str(STATIC_MAX_AGE_S), "--working-dir", str(ROOT), "wsgi:app",
    ]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this process dies, however it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(host: str, port: int, workers: int, threads: int, access_log: bool = False) -> int:
    """Serve ``wsgi:app`` until Ctrl-C or SIGTERM, which stop it gracefully; a second Ctrl-C kills
    it at once. Returns granian's exit status.

    granian's log passes through this process, which counts its workers as they start: a worker
    still loading the app misses a stop signal and then hangs until the grace period ends, so a
    stop asked for during startup waits for the workers (at most STARTUP_WAIT_S)."""
    child = subprocess.Popen(granian_command(host, port, workers, threads, access_log), cwd=ROOT,
                             start_new_session=True, preexec_fn=_die_with_parent,
                             stdout=subprocess.PIPE, text=True, errors="replace")
    started, asked_at, signalled = 0, None, False

    def stop(signum: int, frame: object) -> None:
        nonlocal asked_at
        if asked_at is not None:  # asked twice: no more waiting
            os.killpg(child.pid, signal.SIGKILL)
        else:
            asked_at = time.monotonic()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    companions = {name: _start_companion(args) for name, args in COMPANIONS.items()}
    died: dict[str, float] = {}
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            while True:
                for name, process in companions.items():
                    if asked_at is None and process.poll() is not None:
                        if name not in died:
                            died[name] = time.monotonic()
                            print(f"GridAtlas: the {name} stopped (exit {process.returncode}); starting it "
                                  f"again in {RESTART_S:.0f} s", file=sys.stderr, flush=True)
                        elif time.monotonic() - died[name] >= RESTART_S:
                            companions[name] = _start_companion(COMPANIONS[name])
                            del died[name]
                if selector.select(timeout=0.2):
                    line = child.stdout.readline()
                    if not line:  # granian has exited
                        break
                    try:
                        sys.stdout.write(line)
                        sys.stdout.flush()
                    except OSError:
                        pass  # nobody reads this process's output any more: keep serving
                    started += "Started worker-" in line
                if asked_at is not None and not signalled and (
                        started >= workers or time.monotonic() - asked_at > STARTUP_WAIT_S):
                    child.terminate()
                    signalled = True
        return child.wait()
    finally:
        _stop_companions(companions)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def relay_stop_signals() -> None:
    """In a granian worker, whichever thread the kernel hands a stop signal to, have it acted on.

    granian's worker waits for its stop in the main thread (``threading.Event.wait``), and its
    handler for SIGTERM and SIGINT, like every Python signal handler, runs only in the main thread.
    The kernel may deliver the signal to any of the worker's threads (the Rust runtime's, the WSGI
    threads'); the main thread then sleeps on, and the worker lives until it is killed when the
    grace period ends: one stop in seven or so (CI saw it; a SIGTERM sent to a worker's
    tokio-rt-worker thread hangs it every time). Python's C-level handler, on whichever thread it
    runs, writes the signal's number to the wakeup fd: a thread of ours reads it and calls the
    handler installed for it (granian's tells the worker to stop). The main thread calls it too
    when it does get the signal, and granian's handler must not run twice: ``_stop_once``.
    """
    if threading.current_thread() is not threading.main_thread() or "granian" not in sys.modules:
        return  # not a granian worker loading the app: any other server stops its own way
    _stop_once()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def relay() -> None:
        while True:
            for signum in os.read(read_end, 64):
                handler = signal.getsignal(signum) if signum in (signal.SIGINT, signal.SIGTERM) else None
                if callable(handler):
                    try:
                        handler(signum, None)
                    except BaseException:  # noqa: BLE001 - Python's default SIGINT handler raises
                        # KeyboardInterrupt: in this thread it would end the relay and the next
                        # stop signal would find nobody to act on it; the main thread gets it instead.
                        _thread.interrupt_main(signum)

    threading.Thread(target=relay, name="gridatlas-signal-relay", daemon=True).start()


def _stop_once() -> None:
    """Have the stop handlers that granian installs in this worker act once, whoever calls them.

    granian's handler calls ``WorkerSignal.set()``, which sends on a channel of one slot and, on a
    second call before the worker took the first, blocks holding the GIL; the worker then never
    takes it. With the relay, one signal can call the handler twice (the relay thread and the main
    thread), and a busy machine hung 2 stops in 24 that way until the kill 20 s later (py-spy: the
    relay, or the main thread, inside the handler in a futex). granian makes the handler in the
    worker's main thread after loading the app (``granian._signals.set_sync_signals``): wrapped
    here, it installs it behind a lock that lets one call through, SIGINT and SIGTERM alike."""
    from granian import _signals

    make = getattr(_signals, "set_sync_signals", None)
    if make is None or getattr(make, "acts_once", False):
        return
    first = threading.Lock()

    def once(handler):
        def handle(signum, frame):
            if first.acquire(blocking=False):
                handler(signum, frame)
        return handle

    def set_sync_signals(*args, **kwargs):
        made = make(*args, **kwargs)
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if callable(handler):
                signal.signal(sig, once(handler))
        return made

    set_sync_signals.acts_once = True
    _signals.set_sync_signals = set_sync_signals


def init_app(app: Flask) -> None:
    """Register ``flask serve``; behind a trusted reverse proxy (``TRUST_PROXY``), believe its
    X-Forwarded-For and -Proto (one hop): client addresses for limits and the audit log, HTTPS
    for Secure cookies."""
    if app.config.get("TRUST_PROXY"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)

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
        if os.environ.get("DATABASE_URL"):  # a deployment; the demo on the embedded cluster keeps its own key
            try:
                require_secret_key(from_environment())
            except InsecureSecretKey as error:
                raise click.ClickException(str(error)) from None
        click.echo(f"GridAtlas: http://{host}:{port}/  ({workers} workers x {threads} threads; Ctrl-C stops)")
        sys.exit(serve(host, port, workers, threads, access_log))
