"""network: a generalised copy of the segments per feeder and level, for vector tiles far out

And a partial GiST index on the devices far-out tiles show (breakers, reclosers, switches and
open devices, one in ten): a zoom-10 tile scanned 80,000 devices to keep 2,629 (51 ms).

The whole city's vector tiles (zoom 10 to 12) draw every segment; read one by one, a zoom-10
tile of the 1,000,000-customer city is 326,000 segments and takes 1.4 s. Merged per feeder and
level, simplified and kept in Web Mercator, the same tile takes 26-41 ms (topology/tiles.py
builds the copy; ``topology_state.overview_version`` says which version it was built at).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 10:00:00
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# As topology/models.py writes it (a migration keeps its own copy: the model may change later).
DEVICES_FAR_OUT = "kind IN ('breaker', 'recloser', 'switch') OR current_state = 'open'"


def upgrade() -> None:
    op.create_geospatial_table('segment_overview',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('feeder_id', sa.BigInteger(), nullable=True),
    sa.Column('level', sa.String(length=2), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTILINESTRING', srid=3857, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_geospatial_index('idx_segment_overview_geom', 'segment_overview', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.add_column('topology_state', sa.Column('overview_version', sa.BigInteger(), nullable=True))
    op.create_index('idx_devices_geom_far', 'devices', ['geom'], unique=False, postgresql_using='gist',
                    postgresql_where=sa.text(DEVICES_FAR_OUT))


def downgrade() -> None:
    op.drop_index('idx_devices_geom_far', table_name='devices', postgresql_using='gist',
                  postgresql_where=sa.text(DEVICES_FAR_OUT))
    op.drop_column('topology_state', 'overview_version')
    op.drop_geospatial_index('idx_segment_overview_geom', table_name='segment_overview', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('segment_overview')
