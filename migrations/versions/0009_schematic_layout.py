"""network: a schematic flag on the elements whose place comes from a layout, not the ground

A pandapower net without coordinates is imported with a schematic layout of its graph
(``network import-pandapower --origin``); its elements are marked so that a map, an export or
a report can tell a drawn place from a surveyed one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The tables whose rows have a place of their own (transformer areas get none from a layout).
TABLES = ('substations', 'nodes', 'segments', 'devices', 'service_points')


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column('schematic', sa.Boolean(), server_default='false', nullable=False))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_column(table, 'schematic')
