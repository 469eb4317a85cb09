"""address index: geo's own table of searchable addresses, fed by the tables that hold them

The address search lived in outlets and read service_points (the network's table) through
trigram and prefix indexes that outlets declared on it. geo now owns the index: ``addresses``
holds each customer's and each active outlet's address and point under those indexes, kept by
statement-level triggers on service_points and outlets (one INSERT, UPDATE or DELETE of the
changed rows per statement, a million-row COPY included; an UPDATE that changes no address,
point or activity writes nothing). address_places and address_streets are now kept from
``addresses`` instead of from the two tables, by the same trigger function as in 0005.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:00:00
"""
import importlib.util
from pathlib import Path

from alembic import op
import sqlalchemy as sa
import geoalchemy2

from geo.migrate import statement_triggers

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _revision_0005():
    """Migration 0005, whose place-keeping SQL this one reuses and its downgrade restores."""
    spec = importlib.util.spec_from_file_location("revision_0005", Path(__file__).with_name("0005_address_places.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R5 = _revision_0005()
# Each table that holds addresses: its source name in ``addresses`` and which of its rows are searchable.
SOURCES = {"service_points": ("service_point", "{row}.address IS NOT NULL"), "outlets": ("outlet", "{row}.active")}
ADDRESS_KEY = "translate(replace(address, 'ß', 'ss'), 'ÄÖÜäöü', 'AOUaou')"
ADDRESS_PREFIX = f"lower({ADDRESS_KEY})"
OLD_INDEXES = (("ix_service_points_address_trgm", "service_points", f"USING gin ({ADDRESS_KEY} gin_trgm_ops)"),
               ("ix_service_points_address_prefix", "service_points", f"({ADDRESS_PREFIX} text_pattern_ops)"),
               ("ix_outlets_address_trgm", "outlets", f"USING gin ({ADDRESS_KEY} gin_trgm_ops)"),
               ("ix_outlets_address_prefix", "outlets", f"({ADDRESS_PREFIX} text_pattern_ops)"))


def _feeder(table: str) -> str:
    """The trigger function that copies ``table``'s searchable addresses into ``addresses``."""
    source, searchable = SOURCES[table]
    new, old = searchable.format(row="n"), searchable.format(row="o")
    changed = f"""o.address IS DISTINCT FROM n.address OR o.geom IS DISTINCT FROM n.geom
               OR ({old}) IS DISTINCT FROM ({new})"""
    return f"""
CREATE FUNCTION addresses_from_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO addresses (source, source_id, address, geom)
        SELECT '{source}', n.id, n.address, n.geom FROM new_rows n WHERE {new};
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM addresses a USING old_rows o WHERE a.source = '{source}' AND a.source_id = o.id;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only rows whose address, point or searchability changed (outlets are updated often).
        DELETE FROM addresses a USING old_rows o JOIN new_rows n USING (id)
         WHERE a.source = '{source}' AND a.source_id = o.id AND ({changed});
        INSERT INTO addresses (source, source_id, address, geom)
        SELECT '{source}', n.id, n.address, n.geom FROM old_rows o JOIN new_rows n USING (id)
         WHERE ({changed}) AND {new};
    ELSE
        DELETE FROM addresses WHERE source = '{source}';
    END IF;
    RETURN NULL;
END $$
"""


# Places and streets kept from ``addresses``: 0005's trigger function, its update rows matched by key.
PLACES_FUNCTION = R5.TRIGGER_FUNCTION.replace("JOIN new_rows n USING (id)", "JOIN new_rows n USING (source, source_id)")
EVERY_ADDRESS = "SELECT address, geom, 1 FROM addresses"
REBUILD_FUNCTION = R5.REBUILD_FUNCTION.replace(R5.EVERY_ADDRESS, EVERY_ADDRESS)


def _drop_place_triggers(table: str) -> None:
    for name, _ in statement_triggers(table, "address_places_kept", "places"):
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute(f"DROP TRIGGER {table}_truncate_places ON {table}")


def _create_place_triggers(table: str) -> None:
    for _, create in statement_triggers(table, "address_places_kept", "places"):
        op.execute(create)
    op.execute(f"CREATE TRIGGER {table}_truncate_places AFTER TRUNCATE ON {table} "
               "FOR EACH STATEMENT EXECUTE FUNCTION address_places_rebuilt()")


def _replace_place_functions(kept: str, rebuilt: str) -> None:
    op.execute("DROP FUNCTION address_places_kept()")
    op.execute("DROP FUNCTION address_places_rebuilt()")
    op.execute(kept)
    op.execute(rebuilt)


def upgrade() -> None:
    op.create_table(
        'addresses',
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('source_id', sa.BigInteger(), nullable=False),
        sa.Column('address', sa.Text(), nullable=False),
        sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='POINT', srid=4326, spatial_index=False,
                                                     from_text='ST_GeomFromEWKT', name='geometry', nullable=False),
                  nullable=False),
        sa.PrimaryKeyConstraint('source', 'source_id'),
    )
    op.execute(f"CREATE INDEX ix_addresses_trgm ON addresses USING gin ({ADDRESS_KEY} gin_trgm_ops)")
    op.execute(f"CREATE INDEX ix_addresses_prefix ON addresses ({ADDRESS_PREFIX} text_pattern_ops)")
    for table in SOURCES:
        _drop_place_triggers(table)
    _replace_place_functions(PLACES_FUNCTION, REBUILD_FUNCTION)
    _create_place_triggers("addresses")
    op.execute("DELETE FROM address_places; DELETE FROM address_streets")
    for table, (source, searchable) in SOURCES.items():
        op.execute(_feeder(table))
        for _, create in statement_triggers(table, f"addresses_from_{table}", "addresses"):
            op.execute(create)
        op.execute(f"CREATE TRIGGER {table}_truncate_addresses AFTER TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION addresses_from_{table}()")
        # The places follow through their own triggers on addresses.
        op.execute(f"INSERT INTO addresses (source, source_id, address, geom) "
                   f"SELECT '{source}', id, address, geom FROM {table} AS t WHERE {searchable.format(row='t')}")
    for name, table, _ in OLD_INDEXES:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, definition in OLD_INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} {definition}")
    for table in SOURCES:
        for name, _ in statement_triggers(table, f"addresses_from_{table}", "addresses"):
            op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(f"DROP TRIGGER {table}_truncate_addresses ON {table}")
        op.execute(f"DROP FUNCTION addresses_from_{table}()")
    _drop_place_triggers("addresses")
    op.drop_table('addresses')
    _replace_place_functions(R5.TRIGGER_FUNCTION, R5.REBUILD_FUNCTION)
    for table in SOURCES:
        _create_place_triggers(table)
    op.execute("DELETE FROM address_places; DELETE FROM address_streets")
    op.execute(R5.APPLY % R5.EVERY_ADDRESS)
