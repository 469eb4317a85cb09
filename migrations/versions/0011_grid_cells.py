"""geo: grid cells, their versions, the service territory, transformer areas assigned to a cell,
and dispatchers' control zones given as cells

A grid cell is a polygon a planner draws, with a team (its manager and the transformer-area
managers); every save is a row in ``grid_cell_versions`` (append-only: author, time, reason), and
``grid_cells`` holds each live cell's newest version for spatial queries. A transformer area whose
customers a border splits is given to one cell in ``transformer_area_cells`` (by the area's code:
geo knows no topology table). ``grid_cell_revision`` counts every change, so that what is derived
from the cells (contents, figures) can be cached and follow it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 10:00:00
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _area(nullable: bool) -> sa.Column:
    return sa.Column('geom', Geometry('MULTIPOLYGON', srid=4326, spatial_index=False), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        'grid_cells',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('code', sa.String(64), nullable=False, unique=True),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('team', JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        _area(False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_by', sa.String(64), nullable=False),
    )
    op.create_index('ix_grid_cells_geom', 'grid_cells', ['geom'], postgresql_using='gist')
    op.create_table(
        'grid_cell_versions',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('code', sa.String(64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('team', JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        _area(True),  # NULL: the cell was deleted in this version
        sa.Column('author', sa.String(64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.UniqueConstraint('code', 'version', name='grid_cell_version_once'),
    )
    op.create_table(
        'grid_territory',
        sa.Column('id', sa.Integer(), primary_key=True),
        _area(False),
        sa.Column('imported_by', sa.String(64), nullable=False),
        sa.Column('imported_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint('id = 1', name='grid_territory_one_row'),
    )
    op.create_table(
        'transformer_area_cells',
        sa.Column('transformer_area', sa.String(120), primary_key=True),
        sa.Column('cell_code', sa.String(64), sa.ForeignKey('grid_cells.code', ondelete='CASCADE'), nullable=False),
        sa.Column('assigned_by', sa.String(64), nullable=False),
        sa.Column('assigned_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    )
    op.create_table(
        'grid_cell_revision',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('revision', sa.BigInteger(), nullable=False, server_default='0'),
        sa.CheckConstraint('id = 1', name='grid_cell_revision_one_row'),
    )
    op.execute("INSERT INTO grid_cell_revision (id, revision) VALUES (1, 0)")
    op.add_column('accounts', sa.Column('control_cells', ARRAY(sa.String(64)), nullable=True))


def downgrade() -> None:
    op.drop_column('accounts', 'control_cells')
    for table in ('grid_cell_revision', 'transformer_area_cells', 'grid_territory', 'grid_cell_versions'):
        op.drop_table(table)
    op.drop_index('ix_grid_cells_geom', table_name='grid_cells')
    op.drop_table('grid_cells')
