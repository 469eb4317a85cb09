"""network: demand and ratings for restoration plans

A restoration plan moves the load of a healthy section onto another feeder through a
normally-open tie; checking that it fits needs each customer's demand, each conductor's
ampacity and each feeder's rating (transformers already carry ``rated_kva``). All are
nullable: a network without them is still traced, and a plan says what it had to assume.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# (table, column) in the order they are added; dropped in reverse.
COLUMNS = (('service_points', 'demand_kw'), ('segments', 'ampacity_a'), ('feeders', 'rating_kva'))


def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(table, sa.Column(column, sa.Float(), nullable=True))


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        op.drop_column(table, column)
