"""Database engine, the one session per request, and the read connection each server thread keeps."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import psycopg
from flask import Flask, current_app, g
from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from geo.errors import database_unavailable

__all__ = ["Base", "normalise_url", "make_engine", "init_app", "get_engine", "get_session", "session_scope",
           "ThreadReads", "SessionReads", "read"]

T = TypeVar("T")


class Base(DeclarativeBase):
    """Declarative base of every table."""


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs, as users write them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# A pooled connection used this recently is handed out without a ping. Pinging at every checkout
# (pool_pre_ping) costs a round trip per transaction, a tenth of a trouble call's time; a connection
# that sat idle longer (the database may have restarted meanwhile) is pinged first, and one that
# fails anyway is taken as a lost database (503) and the pool is renewed (SQLAlchemy invalidates it).
PING_IDLE_SECONDS = 1.0


def make_engine(url: str, pool_size: int = 10, **options) -> Engine:
    """An engine with a pool sized for a threaded server; ``options`` go to create_engine."""
    ping = options.pop("pool_pre_ping", True)
    # PostGIS prices its spatial functions so high that ordinary map queries cross
    # jit_above_cost and spend ~150 ms compiling; our queries are short, so JIT never pays.
    engine = create_engine(normalise_url(url), **{
        "pool_size": pool_size, "max_overflow": pool_size * 2, "pool_pre_ping": False, "future": True,
        "connect_args": {"options": "-c jit=off"}, **options})
    if ping:
        event.listen(engine.pool, "checkin", _note_checkin)
        event.listen(engine.pool, "checkout", _ping_if_idle)
    return engine


def _note_checkin(dbapi_connection, record) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, proxy) -> None:
    """Ping a connection that sat idle; a dead one is replaced (the pool retries the checkout)."""
    if time.monotonic() - record.info.get("checked_in", 0.0) < PING_IDLE_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not dbapi_connection.autocommit:
            dbapi_connection.rollback()
    except psycopg.Error as error:
        raise exc.DisconnectionError(str(error)) from error


def init_app(app: Flask) -> None:
    """Create the engine (lazily resolving the embedded cluster) and close sessions at teardown."""
    url = app.config.get("DATABASE_URL")
    if not url:
        from geo.cluster import default_cluster

        url = default_cluster().ensure()
        app.config["DATABASE_URL"] = url
    engine = app.config.get("ENGINE") or make_engine(url, app.config.get("DB_POOL_SIZE", 10))
    app.extensions["engine"] = engine
    app.extensions["sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.extensions["reads"] = ThreadReads(engine, app.config.get("DB_POOL_SIZE", 10))

    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            try:
                session.close()
            except DBAPIError as error:
                # The database went away after the answer was made (a restart): the closing
                # rollback cannot reach it, so its connection is discarded and the answer stands.
                if not database_unavailable(error):
                    raise
                session.invalidate()


def get_engine() -> Engine:
    """The application's engine."""
    return current_app.extensions["engine"]


def get_session() -> Session:
    """The session of the current request (or app context), created on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["sessionmaker"]()
    return g.db_session


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session outside a request (CLI, benchmarks), committed on success."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def postgis_version(session: Session) -> str:
    """PostGIS's version string."""
    return session.execute(text("SELECT postgis_lib_version()")).scalar_one()


# -- reads ------------------------------------------------------------------------------------------
class ThreadReads:
    """Autocommit read connections, one per server thread, kept from request to request.

    A server thread serves many requests, and a pool checkout and return per request cost 0.2 ms
    of a 4 ms nearest search. Autocommit, so a read is one round trip (no BEGIN and ROLLBACK) and
    a kept connection holds no transaction; not pinged at checkout (a round trip more): ``read``
    runs a read again on a fresh connection when the database had dropped the first. Lifetimes
    are explicit: the connections of threads that have ended go back to the pool when the next
    thread takes its first one, a refused read gives its connection back, and ``close`` gives
    back all of them.
    """

    def __init__(self, engine: Engine, pool_size: int = 10):
        self._url = engine.url.render_as_string(hide_password=False)
        self._pool_size = pool_size
        self._engine: Engine | None = None
        self._held: dict[threading.Thread, Connection] = {}
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine of the read connections (created on first use)."""
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self._url, self._pool_size, isolation_level="AUTOCOMMIT",
                                           pool_pre_ping=False, pool_reset_on_return=None)
            return self._engine

    def connection(self) -> Connection:
        """This thread's read connection."""
        thread = threading.current_thread()
        held = self._held.get(thread)
        if held is not None and not held.closed and not held.invalidated:
            return held
        engine = self.engine
        with self._lock:
            for other in [t for t in self._held if not t.is_alive()]:
                self._held.pop(other).close()
            held = self._held[thread] = engine.connect()
        return held

    def release(self, invalidate: bool = False) -> None:
        """Give this thread's connection back to the pool, or discard it (``invalidate``: the
        database dropped it, so even a rollback would fail)."""
        with self._lock:
            held = self._held.pop(threading.current_thread(), None)
        if held is not None:
            if invalidate:
                held.invalidate()
            held.close()

    def read(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(connection, *args, **kwargs)`` on this thread's read connection; once more on a
        fresh one when the database had dropped it (a restart): reads are safe to repeat."""
        try:
            return work(self.connection(), *args, **kwargs)
        except (DBAPIError, psycopg.Error) as error:
            held = self._held.get(threading.current_thread())
            dropped = held is not None and (getattr(error, "connection_invalidated", False)
                                            or held.connection.driver_connection.broken)
            # Whatever the database refused, the next read starts on a connection from the pool.
            self.release(invalidate=dropped)
            if not dropped:
                raise
            # The database dropped it, and most likely every other pooled connection with it.
            self.engine.dispose()
            return work(self.connection(), *args, **kwargs)

    def held(self) -> int:
        """How many threads hold a read connection now."""
        return len(self._held)

    def close(self) -> None:
        """Give back every thread's connection and close the pool."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
            engine, self._engine = self._engine, None
        for connection in held:
            connection.close()
        if engine is not None:
            engine.dispose()


class SessionReads:
    """Reads on the request's session connection instead: for an app whose sessions all share one
    connection (the tests' rolled-back one), where a read must see what the test wrote."""

    def read(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(connection, *args, **kwargs)`` on the session's connection."""
        return work(get_session().connection(), *args, **kwargs)

    def close(self) -> None:
        """Nothing to give back: the session is closed at teardown."""


def read(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(connection, *args, **kwargs)`` on the app's read connections (``app.extensions["reads"]``)."""
    return current_app.extensions["reads"].read(work, *args, **kwargs)
