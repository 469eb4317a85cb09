"""outlets: outlets, hours, slot counters, bookings, notification outbox; trigram address indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 21:42:22.220941
"""
from alembic import op
import sqlalchemy as sa
import geoalchemy2
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# outlets.models.address_key: what the trigram address search compares (ß as ss, no umlaut dots).
ADDRESS_KEY = "translate(replace(%s, 'ß', 'ss'), 'ÄÖÜäöü', 'AOUaou')"
# outlets.models.address_prefix: the same in lower case, for the search's prefix match.
ADDRESS_PREFIX = f"lower({ADDRESS_KEY})"


def upgrade() -> None:
    # The address search (outlets/search.py) needs pg_trgm for its GIN indexes.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table('notification_outbox',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=20), server_default='sms', nullable=False),
    sa.Column('recipient', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('reference', sa.String(length=120), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=12), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed', 'cancelled')", name='outbox_status_known'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_notification_outbox_due', 'notification_outbox', ['due_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index(op.f('ix_notification_outbox_reference'), 'notification_outbox', ['reference'], unique=False)
    op.create_geospatial_table('outlets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('slot_minutes', sa.SmallInteger(), server_default='15', nullable=False),
    sa.Column('weekly_hours', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("country ~ '^[A-Z]{2}$'", name='outlet_country_iso'),
    sa.CheckConstraint('slot_minutes BETWEEN 5 AND 480', name='outlet_slot_minutes_range'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_geospatial_index('idx_outlets_geom', 'outlets', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.execute(f"CREATE INDEX ix_outlets_address_trgm ON outlets USING gin ({ADDRESS_KEY % 'address'} gin_trgm_ops)")
    op.execute(f"CREATE INDEX ix_outlets_address_prefix ON outlets ({ADDRESS_PREFIX % 'address'} text_pattern_ops)")
    op.create_index('ix_outlets_geog', 'outlets', [sa.literal_column('(geom::geography)')], unique=False, postgresql_using='gist')
    op.create_table('bookings',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('outlet_id', sa.Integer(), nullable=False),
    sa.Column('service', sa.String(length=40), nullable=False),
    sa.Column('slot_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('slot_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), server_default='confirmed', nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('sequence', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('confirmed', 'cancelled')", name='booking_status_known'),
    sa.CheckConstraint('slot_end > slot_start', name='booking_slot_ordered'),
    sa.ForeignKeyConstraint(['outlet_id'], ['outlets.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('idempotency_key')
    )
    op.create_index('ix_bookings_outlet_slot', 'bookings', ['outlet_id', 'slot_start'], unique=False)
    op.create_table('outlet_exceptions',
    sa.Column('outlet_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('hours', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['outlet_id'], ['outlets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('outlet_id', 'day')
    )
    op.create_table('outlet_services',
    sa.Column('outlet_id', sa.Integer(), nullable=False),
    sa.Column('service', sa.String(length=40), nullable=False),
    sa.Column('capacity', sa.SmallInteger(), nullable=False),
    sa.CheckConstraint('capacity BETWEEN 1 AND 1000', name='outlet_service_capacity_range'),
    sa.ForeignKeyConstraint(['outlet_id'], ['outlets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('outlet_id', 'service')
    )
    op.create_table('slot_bookings',
    sa.Column('outlet_id', sa.Integer(), nullable=False),
    sa.Column('slot_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('service', sa.String(length=40), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name='slot_within_capacity'),
    sa.ForeignKeyConstraint(['outlet_id'], ['outlets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('outlet_id', 'slot_start', 'service')
    )
    op.execute(f"CREATE INDEX ix_service_points_address_trgm ON service_points "
               f"USING gin ({ADDRESS_KEY % 'address'} gin_trgm_ops)")
    op.execute(f"CREATE INDEX ix_service_points_address_prefix ON service_points "
               f"({ADDRESS_PREFIX % 'address'} text_pattern_ops)")


def downgrade() -> None:
    op.drop_index('ix_service_points_address_prefix', table_name='service_points')
    op.drop_index('ix_service_points_address_trgm', table_name='service_points')
    op.drop_table('slot_bookings')
    op.drop_table('outlet_services')
    op.drop_table('outlet_exceptions')
    op.drop_index('ix_bookings_outlet_slot', table_name='bookings')
    op.drop_table('bookings')
    op.drop_index('ix_outlets_geog', table_name='outlets', postgresql_using='gist')
    op.drop_index('ix_outlets_address_prefix', table_name='outlets')
    op.drop_index('ix_outlets_address_trgm', table_name='outlets')
    op.drop_geospatial_index('idx_outlets_geom', table_name='outlets', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('outlets')
    op.drop_index(op.f('ix_notification_outbox_reference'), table_name='notification_outbox')
    op.drop_index('ix_notification_outbox_due', table_name='notification_outbox', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('notification_outbox')
