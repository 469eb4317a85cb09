"""Database engine and the one session per request."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from flask import Flask, current_app, g
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

__all__ = ["Base", "normalise_url", "make_engine", "init_app", "get_engine", "get_session", "session_scope"]


class Base(DeclarativeBase):
    """Declarative base of every table."""


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs, as users write them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, pool_size: int = 10, **options) -> Engine:
    """An engine with a pool sized for a threaded server; ``options`` go to create_engine."""
    # PostGIS prices its spatial functions so high that ordinary map queries cross
    # jit_above_cost and spend ~150 ms compiling; our queries are short, so JIT never pays.
    return create_engine(normalise_url(url), **{
        "pool_size": pool_size, "max_overflow": pool_size * 2, "pool_pre_ping": True, "future": True,
        "connect_args": {"options": "-c jit=off"}, **options})


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

    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


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
