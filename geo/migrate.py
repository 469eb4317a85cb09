"""Alembic driven from Python: ``flask --app app db upgrade`` and the tests use this."""
from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.engine import Connection, Engine

__all__ = ["alembic_config", "upgrade", "current_revision", "head_revision", "init_app", "statement_triggers"]

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


# Each row event with the transition tables its statement-level trigger sees.
_TRANSITIONS = (("insert", "NEW TABLE AS new_rows"), ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                ("delete", "OLD TABLE AS old_rows"))


def statement_triggers(table: str, function: str, suffix: str) -> list[tuple[str, str]]:
    """(name, CREATE TRIGGER) for triggers ``<table>_<event>_<suffix>`` that call ``function()`` once
    per INSERT, UPDATE and DELETE statement on ``table``, with the rows it changed as ``new_rows``
    and ``old_rows``. One trigger per event: PostgreSQL allows transition tables only on
    single-event triggers. Migrations use it; what it writes must stay as it is."""
    return [(f"{table}_{event}_{suffix}",
             f"CREATE TRIGGER {table}_{event}_{suffix} AFTER {event.upper()} ON {table} "
             f"REFERENCING {transitions} FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
            for event, transitions in _TRANSITIONS]


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision``."""
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(bind: Engine | Connection) -> str | None:
    """The revision the database is at (None before the first migration)."""
    if isinstance(bind, Connection):
        return MigrationContext.configure(bind).get_current_revision()
    with bind.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest revision in migrations/."""
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


db_cli = AppGroup("db", help="Database migrations.")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    engine = current_app.extensions["engine"]
    upgrade(engine, revision)
    click.echo(f"database at {current_revision(engine)}")


@db_cli.command("current")
def current_command() -> None:
    """Print the database's revision and the head."""
    engine = current_app.extensions["engine"]
    click.echo(f"current: {current_revision(engine)}  head: {head_revision(engine)}")


def init_app(app: Flask) -> None:
    """Register the ``db`` CLI group."""
    app.cli.add_command(db_cli)
