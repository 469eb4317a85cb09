"""The migrations and the models describe the same schema, and migrate down and up again."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from geoalchemy2 import alembic_helpers

from app import import_models
from geo.db import Base

import_models()


def test_models_match_the_migrated_database(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_object": alembic_helpers.include_object, "compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
