"""outages: subscriptions to outage messages (SMS, e-mail, webhook) for an account or a grid cell

A subscription is used once the code sent to its address is confirmed; its token (only in the
messages sent to the address) unsubscribes it. One live subscription per address and target.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_LIVE_CONFIRMED = sa.text('confirmed_at IS NOT NULL AND unsubscribed_at IS NULL')


def upgrade() -> None:
    op.create_table(
        'outage_subscriptions',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('reference', sa.String(length=16), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('address', sa.String(length=200), nullable=False),
        sa.Column('language', sa.String(length=5), server_default='en', nullable=False),
        sa.Column('service_point_id', sa.BigInteger(), nullable=True),
        sa.Column('account_number', sa.String(length=40), nullable=True),
        sa.Column('cell_code', sa.String(length=40), nullable=True),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('codes_sent', sa.Integer(), server_default='1', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('code_sent_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("channel IN ('sms', 'email', 'webhook')", name='subscription_channel_known'),
        sa.CheckConstraint("language IN ('en', 'zh')", name='subscription_language_known'),
        sa.CheckConstraint('(service_point_id IS NULL) <> (cell_code IS NULL)', name='subscription_one_target'),
        sa.ForeignKeyConstraint(['service_point_id'], ['service_points.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('reference'),
        sa.UniqueConstraint('token'),
    )
    op.create_index('ix_subscriptions_service_point', 'outage_subscriptions', ['service_point_id'],
                    postgresql_where=_LIVE_CONFIRMED)
    op.create_index('ix_subscriptions_cell', 'outage_subscriptions', ['cell_code'], postgresql_where=_LIVE_CONFIRMED)
    op.create_index('ux_subscriptions_live', 'outage_subscriptions',
                    ['channel', 'address', sa.text('coalesce(service_point_id, 0)'), sa.text("coalesce(cell_code, '')")],
                    unique=True, postgresql_where=sa.text('unsubscribed_at IS NULL'))


def downgrade() -> None:
    op.drop_table('outage_subscriptions')
