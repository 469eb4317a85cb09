"""The settler: the process that settles reports into predicted outages after their answer.

A trouble call or a batch of meter events is answered once it is committed; the request's
transaction notifies its section keys on the ``gridatlas_settle`` channel (``notify``), and the
settler, a process of its own (``flask --app app outages settle``, which ``flask serve`` starts
beside the web workers and restarts if it dies), runs ``outages.settle.settle_pending`` for
every key notified since its last round. While one round runs the next round's keys pile up, so
under a storm one settling covers many reports of a feeder, and the web workers do no settling
at all. In a process of its own it is not slowed by the web workers' threads: in a worker it
waited for the interpreter lock between every statement and a round took ten times its CPU.

Nothing is lost when the settler is down or misses a notification: the reports stay waiting
(``settled_at`` NULL), and the settler sweeps when it starts listening and every ``SWEEP_EVERY``
seconds for reports that waited longer than ``SWEEP_AFTER``. Two settlers never settle one key
at once (the advisory lock of settle_pending), so several may run, on several machines.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from outages.settings import OutageSettings
from outages.settle import settle_pending
from topology.cache import TopologyCache

__all__ = ["Settler", "Service", "notify", "listen", "wait_settled", "CHANNEL", "SWEEP_EVERY", "SWEEP_AFTER"]

log = logging.getLogger(__name__)

SWEEP_EVERY = 5.0   # seconds between sweeps for reports nobody settled
SWEEP_AFTER = 2.0   # a report waiting this long was left behind (its process died)
_BACKOFF = 1.0      # after a failed round (the database is down): wait, then try the keys again
CHANNEL = "gridatlas_settle"

_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', k) FROM unnest(CAST(:keys AS text[])) AS k")
_WAITING = text("SELECT EXISTS (SELECT 1 FROM trouble_calls WHERE settled_at IS NULL) "
                "OR EXISTS (SELECT 1 FROM meter_events WHERE settled_at IS NULL)")


def notify(connection: Connection, keys: list[str]) -> None:
    """In the request's transaction: have the settler settle these section keys once it commits."""
    if keys:
        connection.execute(_NOTIFY, {"keys": sorted(set(keys))})

_LEFT_BEHIND = text(
    "SELECT section_key FROM trouble_calls WHERE settled_at IS NULL AND received_at < now() - make_interval(secs => :after) "
    "UNION SELECT section_key FROM meter_events WHERE settled_at IS NULL AND received_at < now() - make_interval(secs => :after)")


class Settler:
    """Settles section keys handed to it, in one daemon thread per process (started on first use,
    again in a forked child: a thread does not survive ``fork``)."""

    def __init__(self, make_session: Callable[[], Session], cache: Callable[[], TopologyCache],
                 settings: Callable[[], OutageSettings], context: Callable | None = None):
        self._make_session = make_session
        self._cache = cache
        self._settings = settings
        self._context = context  # an application context for the thread, when the code needs one
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._keys: set[str] = set()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False
        self._sweep_now = True  # a settler that starts sweeps first
        self.rounds = 0

    def start(self) -> None:
        """Run the thread in this process if it is not running (again in a forked child)."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            return
        with self._lock:
            self._start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the round under way and end the thread (the keys not yet settled wait for a sweep)."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout)

    def sweep_soon(self) -> None:
        """Look for reports left waiting in the next round (after listening began again)."""
        with self._lock:
            self._sweep_now = True
            self._wake.notify_all()

    def submit(self, keys) -> None:
        """Settle these keys soon (returns at once)."""
        keys = set(keys)
        if not keys:
            return
        with self._lock:
            self._start()
            self._keys |= keys
            self._wake.notify_all()  # the settler, and not only a test waiting in wait_idle

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every key handed to this process is settled (tests, the storm replay)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._keys or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.05))
        return True

    def _start(self) -> None:
        if self._stopping or (self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()):
            return
        self._pid = os.getpid()
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="gridatlas-settler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._context is not None:
            with self._context():
                self._loop()
        else:
            self._loop()

    def _warm(self) -> None:
        """Build the topology before the first report needs it (seconds at a million customers)."""
        try:
            session = self._make_session()
            try:
                with session.begin():
                    self._cache().get(session.connection())
            finally:
                session.close()
        except Exception:  # noqa: BLE001 - the first round builds it then
            log.exception("could not read the network yet")

    def _loop(self) -> None:
        self._warm()
        swept = time.monotonic()
        while True:
            with self._lock:
                self._busy = False
                self._wake.notify_all()
                if not self._keys and not self._stopping and not self._sweep_now:
                    self._wake.wait(max(0.0, SWEEP_EVERY - (time.monotonic() - swept)))
                if self._stopping:
                    return
                keys, self._keys = self._keys, set()
                sweep, self._sweep_now = self._sweep_now, False
                self._busy = True
            try:
                if sweep or time.monotonic() - swept >= SWEEP_EVERY:
                    swept = time.monotonic()
                    keys |= self._left_behind(0.0 if sweep else SWEEP_AFTER)
                if keys:
                    self._settle(keys)
            except Exception:  # noqa: BLE001 - the thread must outlive a lost database
                log.exception("settling %d section(s) failed; trying again in %.0f s", len(keys), _BACKOFF)
                with self._lock:
                    self._keys |= keys
                time.sleep(_BACKOFF)

    def _settle(self, keys: set[str]) -> None:
        session = self._make_session()
        try:
            settle_pending(session, self._cache(), sorted(keys), self._settings())
            self.rounds += 1
        finally:
            session.close()

    def _left_behind(self, after: float) -> set[str]:
        session = self._make_session()
        try:
            with session.begin():
                rows = session.connection().execute(_LEFT_BEHIND, {"after": after}).scalars().all()
            return {key for key in rows if key}
        finally:
            session.close()


def listen(settler: Settler, engine: Engine, stop: threading.Event, poll: float = 0.5) -> None:
    """Hand the keys notified on ``CHANNEL`` to ``settler`` until ``stop`` is set; on a lost
    connection, connect again (and sweep: notifications sent meanwhile are lost)."""
    while not stop.is_set():
        try:
            with engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.exec_driver_sql(f"LISTEN {CHANNEL}")
                settler.sweep_soon()
                driver = connection.connection.driver_connection
                while not stop.is_set():
                    # Each key as it comes (the generator ends after ``poll`` s, to look at ``stop``).
                    for note in driver.notifies(timeout=poll):
                        settler.submit([note.payload])
        except Exception:  # noqa: BLE001 - a database restart must not end the listener
            log.exception("listening for reports to settle failed; connecting again in %.0f s", _BACKOFF)
            stop.wait(_BACKOFF)


class Service:
    """A settler and its listener in threads of this process: what ``flask outages settle`` runs,
    and what the tests' live servers run beside their app."""

    def __init__(self, engine: Engine, make_session: Callable[[], Session], cache: Callable[[], TopologyCache],
                 settings: Callable[[], OutageSettings], context: Callable | None = None):
        self.engine = engine
        self.settler = Settler(make_session, cache, settings, context)
        self._stop = threading.Event()
        self._listener = threading.Thread(target=listen, args=(self.settler, engine, self._stop),
                                          name="gridatlas-settle-listener", daemon=True)

    @classmethod
    def of(cls, app) -> "Service":
        """The service for ``app``'s database, topology cache and settings."""
        from outages.settings import settings_from

        return cls(app.extensions["engine"], lambda: app.extensions["sessionmaker"](),
                   lambda: app.extensions["topology_cache"], lambda: settings_from(app.config), app.app_context)

    def start(self) -> "Service":
        self.settler.start()
        self._listener.start()
        return self

    def ask_to_stop(self) -> None:
        """Stop after the round under way (from a signal handler)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self._listener.join(timeout=5)
        self.settler.stop()

    def wait(self) -> None:
        """Until stopped (SIGTERM or Ctrl-C in ``flask outages settle``)."""
        while not self._stop.wait(0.5):
            pass


def wait_settled(engine: Engine, timeout: float = 20.0) -> bool:
    """Wait until no report waits to be settled (tests, benchmarks): True when none does."""
    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while connection.execute(_WAITING).scalar():
            connection.rollback()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
    return True
