"""The migrations and the models describe the same schema, and migrate down and up again."""
from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2 import alembic_helpers
from sqlalchemy import text

from app import import_models
from geo.db import Base, make_engine
from geo.migrate import alembic_config, current_revision
from tests.conftest import _test_database_url
from tests.networks import protected_feeder
from tests.outlet_data import add_outlet
from topology.loader import load_network

import_models()


def _model_differences(engine) -> list:
    """Where the models and the database's schema differ (Alembic's autogenerate comparison)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_object": alembic_helpers.include_object, "compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_models_match_the_migrated_database(engine):
    assert _model_differences(engine) == []


# -- down and up again -------------------------------------------------------------------------------
# The schema as catalogue rows, one set per kind of object; what extensions own (PostGIS,
# pg_trgm) and Alembic's own table are left out: migrations create the extensions, never drop them.
SCHEMA_QUERIES = {
    "tables": """
        SELECT c.relname, c.relkind::text FROM pg_class c
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')""",
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(ad.adbin, ad.adrelid)
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
           AND a.attnum > 0 AND NOT a.attisdropped
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = current_schema()::regnamespace AND conrelid <> 0""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
         WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class
                                                WHERE relnamespace = current_schema()::regnamespace)""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), md5(pg_get_functiondef(p.oid)) FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind IN ('f', 'p')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
    "types": """
        SELECT t.typname, array_to_string(ARRAY(SELECT enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid
                                                ORDER BY enumsortorder), ',') FROM pg_type t
         WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype IN ('e', 'd')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')""",
}


def _schema(engine) -> dict[str, set]:
    """Every object of the schema the migrations make (see SCHEMA_QUERIES)."""
    with engine.connect() as connection:
        found = {kind: set(map(tuple, connection.execute(text(query)))) for kind, query in SCHEMA_QUERIES.items()}
    for kind in ("tables", "columns", "indexes", "constraints", "triggers"):
        found[kind] = {row for row in found[kind] if "alembic_version" not in row[:2]}
    return found


def _migrate(engine, direction: str, revision: str) -> None:
    """Alembic ``upgrade`` or ``downgrade`` to ``revision``, in one transaction."""
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def _difference(now: dict[str, set], expected: dict[str, set]) -> dict[str, dict[str, list]]:
    """What ``now`` has that ``expected`` has not (left over) and the reverse (missing), per kind."""
    return {kind: {"left over": sorted(map(str, now[kind] - expected[kind])),
                   "missing": sorted(map(str, expected[kind] - now[kind]))}
            for kind in expected if now[kind] != expected[kind]}


@pytest.fixture()
def empty_engine():
    """An engine on a fresh, empty database of this test's own (``<TEST_DB_NAME>_migrations``)."""
    engine = make_engine(_test_database_url("MIGRATIONS_DATABASE_URL", suffix="_migrations"), pool_size=1)
    yield engine
    engine.dispose()


def test_every_migration_goes_down_to_the_schema_before_it_and_up_again(empty_engine):
    revisions = [script.revision for script in
                 reversed(list(ScriptDirectory.from_config(alembic_config(empty_engine)).walk_revisions()))]
    schemas = {"base": _schema(empty_engine)}
    for revision in revisions:
        _migrate(empty_engine, "upgrade", revision)
        schemas[revision] = _schema(empty_engine)
        assert schemas[revision] != schemas[(["base"] + revisions)[revisions.index(revision)]], \
            f"{revision} changed nothing in the schema"
    # Downgrades meet data: a network with customers' addresses, and an outlet.
    with empty_engine.begin() as connection:
        load_network(connection, protected_feeder())
        add_outlet(connection)
    for revision, previous in zip(reversed(revisions), reversed(["base"] + revisions[:-1])):
        _migrate(empty_engine, "downgrade", previous)
        assert current_revision(empty_engine) == (None if previous == "base" else previous)
        # What the revision added (tables, columns, triggers, functions...) is gone, and what it
        # changed or dropped is back as it was.
        assert _difference(_schema(empty_engine), schemas[previous]) == {}, f"downgrade of {revision}"
    _migrate(empty_engine, "upgrade", "head")
    assert _difference(_schema(empty_engine), schemas[revisions[-1]]) == {}
    assert _model_differences(empty_engine) == []
