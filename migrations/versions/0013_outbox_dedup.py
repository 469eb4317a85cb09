"""outbox: a dedup key per message, unique, so that one message is written and sent once

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('notification_outbox', sa.Column('dedup_key', sa.String(length=200), nullable=True))
    op.create_index('ux_notification_outbox_dedup', 'notification_outbox', ['dedup_key'], unique=True,
                    postgresql_where=sa.text('dedup_key IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ux_notification_outbox_dedup', table_name='notification_outbox',
                  postgresql_where=sa.text('dedup_key IS NOT NULL'))
    op.drop_column('notification_outbox', 'dedup_key')
