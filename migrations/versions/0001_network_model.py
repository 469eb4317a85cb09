"""network model

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 21:36:39.930082
"""
from alembic import op
import sqlalchemy as sa
import geoalchemy2
from geoalchemy2 import Geometry

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_geospatial_table('substations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_geospatial_index('idx_substations_geom', 'substations', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_table('topology_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('id = 1', name='topology_state_single_row'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('feeders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('substation_id', sa.Integer(), nullable=True),
    sa.Column('voltage_kv', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['substation_id'], ['substations.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_index(op.f('ix_feeders_substation_id'), 'feeders', ['substation_id'], unique=False)
    op.create_geospatial_table('nodes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.Enum('busbar', 'pole', 'junction', 'lv', name='node_kind'), nullable=False),
    sa.Column('voltage_kv', sa.Float(), nullable=True),
    sa.Column('feeder_id', sa.Integer(), nullable=True),
    sa.Column('in_service', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['feeder_id'], ['feeders.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_geospatial_index('idx_nodes_geom', 'nodes', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_nodes_feeder_id'), 'nodes', ['feeder_id'], unique=False)
    op.create_geospatial_table('devices',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.Enum('breaker', 'recloser', 'switch', 'fuse', 'transformer', name='device_kind'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('from_node_id', sa.BigInteger(), nullable=False),
    sa.Column('to_node_id', sa.BigInteger(), nullable=False),
    sa.Column('feeder_id', sa.Integer(), nullable=True),
    sa.Column('normal_state', sa.Enum('open', 'closed', name='switch_state'), nullable=False),
    sa.Column('current_state', sa.Enum('open', 'closed', name='switch_state'), nullable=False),
    sa.Column('in_service', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('rated_kva', sa.Float(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint('from_node_id <> to_node_id', name='device_not_a_loop'),
    sa.ForeignKeyConstraint(['feeder_id'], ['feeders.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['from_node_id'], ['nodes.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['to_node_id'], ['nodes.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_geospatial_index('idx_devices_geom', 'devices', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_devices_feeder_id'), 'devices', ['feeder_id'], unique=False)
    op.create_index(op.f('ix_devices_from_node_id'), 'devices', ['from_node_id'], unique=False)
    op.create_index(op.f('ix_devices_to_node_id'), 'devices', ['to_node_id'], unique=False)
    op.create_geospatial_table('segments',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('from_node_id', sa.BigInteger(), nullable=False),
    sa.Column('to_node_id', sa.BigInteger(), nullable=False),
    sa.Column('feeder_id', sa.Integer(), nullable=True),
    sa.Column('length_m', sa.Float(), nullable=False),
    sa.Column('conductor', sa.String(length=120), nullable=True),
    sa.Column('in_service', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('geom', Geometry(geometry_type='LINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint('from_node_id <> to_node_id', name='segment_not_a_loop'),
    sa.CheckConstraint('length_m >= 0', name='segment_length_not_negative'),
    sa.ForeignKeyConstraint(['feeder_id'], ['feeders.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['from_node_id'], ['nodes.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['to_node_id'], ['nodes.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_geospatial_index('idx_segments_geom', 'segments', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_segments_feeder_id'), 'segments', ['feeder_id'], unique=False)
    op.create_index(op.f('ix_segments_from_node_id'), 'segments', ['from_node_id'], unique=False)
    op.create_index(op.f('ix_segments_to_node_id'), 'segments', ['to_node_id'], unique=False)
    op.create_table('sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.Enum('substation', 'ext_grid', 'generator', name='source_kind'), nullable=False),
    sa.Column('node_id', sa.BigInteger(), nullable=False),
    sa.Column('substation_id', sa.Integer(), nullable=True),
    sa.Column('in_service', sa.Boolean(), server_default='true', nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['substation_id'], ['substations.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_index(op.f('ix_sources_node_id'), 'sources', ['node_id'], unique=False)
    op.create_geospatial_table('transformer_areas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('transformer_id', sa.BigInteger(), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.ForeignKeyConstraint(['transformer_id'], ['devices.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('transformer_id')
    )
    op.create_geospatial_index('idx_transformer_areas_geom', 'transformer_areas', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_geospatial_table('service_points',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('account_number', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('node_id', sa.BigInteger(), nullable=False),
    sa.Column('transformer_area_id', sa.Integer(), nullable=True),
    sa.Column('in_service', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['transformer_area_id'], ['transformer_areas.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_number'),
    sa.UniqueConstraint('code')
    )
    op.create_geospatial_index('idx_service_points_geom', 'service_points', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_service_points_node_id'), 'service_points', ['node_id'], unique=False)
    op.create_index(op.f('ix_service_points_transformer_area_id'), 'service_points', ['transformer_area_id'], unique=False)
    op.execute("INSERT INTO topology_state (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_index(op.f('ix_service_points_transformer_area_id'), table_name='service_points')
    op.drop_index(op.f('ix_service_points_node_id'), table_name='service_points')
    op.drop_geospatial_index('idx_service_points_geom', table_name='service_points', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('service_points')
    op.drop_geospatial_index('idx_transformer_areas_geom', table_name='transformer_areas', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('transformer_areas')
    op.drop_index(op.f('ix_sources_node_id'), table_name='sources')
    op.drop_table('sources')
    op.drop_index(op.f('ix_segments_to_node_id'), table_name='segments')
    op.drop_index(op.f('ix_segments_from_node_id'), table_name='segments')
    op.drop_index(op.f('ix_segments_feeder_id'), table_name='segments')
    op.drop_geospatial_index('idx_segments_geom', table_name='segments', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('segments')
    op.drop_index(op.f('ix_devices_to_node_id'), table_name='devices')
    op.drop_index(op.f('ix_devices_from_node_id'), table_name='devices')
    op.drop_index(op.f('ix_devices_feeder_id'), table_name='devices')
    op.drop_geospatial_index('idx_devices_geom', table_name='devices', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('devices')
    op.drop_index(op.f('ix_nodes_feeder_id'), table_name='nodes')
    op.drop_geospatial_index('idx_nodes_geom', table_name='nodes', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('nodes')
    op.drop_index(op.f('ix_feeders_substation_id'), table_name='feeders')
    op.drop_table('feeders')
    op.drop_table('topology_state')
    op.drop_geospatial_index('idx_substations_geom', table_name='substations', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('substations')
    for enum_name in ("source_kind", "switch_state", "device_kind", "node_kind"):
        sa.Enum(name=enum_name).drop(op.get_bind(), checkfirst=True)
