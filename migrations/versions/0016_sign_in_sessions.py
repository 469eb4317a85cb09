"""sign_in_sessions: a row per signed-in session, so that signing out ends it on the server

A signed cookie alone cannot be taken back: a copy of it (or a response to a request that was
still running when its page signed out, which sets the cookie again) would sign its holder back
in. The cookie now names a row here, and signing out ends that row.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 02:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sign_in_sessions',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('account_id', sa.Integer(), sa.ForeignKey('accounts.id', ondelete='CASCADE'), nullable=False),
        sa.Column('secret_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_sign_in_sessions_account_id', 'sign_in_sessions', ['account_id'])


def downgrade() -> None:
    op.drop_index('ix_sign_in_sessions_account_id', table_name='sign_in_sessions')
    op.drop_table('sign_in_sessions')
