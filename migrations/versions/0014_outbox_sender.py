"""outbox sender: a lease on the message being sent, every delivery attempt, the periodic jobs' last runs

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_OLD_STATUSES = "status IN ('pending', 'sent', 'failed', 'cancelled')"
_NEW_STATUSES = "status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')"


def upgrade() -> None:
    op.drop_constraint('outbox_status_known', 'notification_outbox', type_='check')
    op.create_check_constraint('outbox_status_known', 'notification_outbox', _NEW_STATUSES)
    op.add_column('notification_outbox', sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
    op.add_column('notification_outbox', sa.Column('claimed_by', sa.String(length=80), nullable=True))
    op.create_index('ix_notification_outbox_lease', 'notification_outbox', ['lease_until'], unique=False,
                    postgresql_where=sa.text("status = 'sending'"))
    op.create_table('notification_attempts',
                    sa.Column('id', sa.BigInteger(), nullable=False),
                    sa.Column('message_id', sa.BigInteger(), nullable=False),
                    sa.Column('attempt', sa.Integer(), nullable=False),
                    sa.Column('sender', sa.String(length=80), nullable=False),
                    sa.Column('backend', sa.String(length=20), nullable=False),
                    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
                    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
                    sa.Column('outcome', sa.String(length=12), nullable=False),
                    sa.Column('error', sa.Text(), nullable=True),
                    sa.Column('response_code', sa.Integer(), nullable=True),
                    sa.CheckConstraint("outcome IN ('sent', 'retry', 'failed', 'lost')", name='attempt_outcome_known'),
                    sa.ForeignKeyConstraint(['message_id'], ['notification_outbox.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_notification_attempts_message', 'notification_attempts', ['message_id', 'attempt'],
                    unique=False)
    op.create_table('notification_periodic_runs',
                    sa.Column('name', sa.String(length=80), nullable=False),
                    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('written', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('name'))


def downgrade() -> None:
    op.drop_table('notification_periodic_runs')
    op.drop_index('ix_notification_attempts_message', table_name='notification_attempts')
    op.drop_table('notification_attempts')
    op.drop_index('ix_notification_outbox_lease', table_name='notification_outbox',
                  postgresql_where=sa.text("status = 'sending'"))
    op.drop_column('notification_outbox', 'claimed_by')
    op.drop_column('notification_outbox', 'lease_until')
    # A message a sender was sending when the schema went back is due again.
    op.execute("UPDATE notification_outbox SET status = 'pending' WHERE status = 'sending'")
    op.drop_constraint('outbox_status_known', 'notification_outbox', type_='check')
    op.create_check_constraint('outbox_status_known', 'notification_outbox', _OLD_STATUSES)
