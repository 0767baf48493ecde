"""scans and scan hosts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 04:15:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronda.core.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scans',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('site_id', sa.String(length=40), nullable=True),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('networks', sa.JSON(), nullable=False),
    sa.Column('target_key', sa.String(length=64), nullable=False),
    sa.Column('profile', sa.String(length=20), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=40), nullable=True),
    sa.Column('runner_id', sa.String(length=120), nullable=True),
    sa.Column('heartbeat_at', ronda.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('progress_percent', sa.Float(), nullable=False),
    sa.Column('hosts_total', sa.Integer(), nullable=False),
    sa.Column('hosts_found', sa.Integer(), nullable=False),
    sa.Column('ports_found', sa.Integer(), nullable=False),
    sa.Column('probes_sent', sa.Integer(), nullable=False),
    sa.Column('estimated_completion', ronda.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', ronda.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', ronda.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('diff', sa.JSON(), nullable=True),
    sa.Column('previous_scan_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_scans_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scans'))
    )
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.create_index('ix_scans_tenant_created', ['tenant_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_scans_tenant_status', ['tenant_id', 'status'], unique=False)
        batch_op.create_index('ix_scans_tenant_target_completed', ['tenant_id', 'target_key', 'status', 'completed_at'], unique=False)
        batch_op.create_index('ix_scans_status_runner', ['status', 'runner_id'], unique=False)

    op.create_table('scan_hosts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('scan_id', sa.String(length=40), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=True),
    sa.Column('mac', sa.String(length=17), nullable=True),
    sa.Column('vendor', sa.String(length=200), nullable=True),
    sa.Column('os_guess', sa.String(length=200), nullable=True),
    sa.Column('os_confidence', sa.Integer(), nullable=False),
    sa.Column('device_type', sa.String(length=40), nullable=True),
    sa.Column('device_type_confidence', sa.Integer(), nullable=False),
    sa.Column('ttl', sa.Integer(), nullable=True),
    sa.Column('rtt_ms', sa.Float(), nullable=True),
    sa.Column('ports', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['scan_id'], ['scans.id'], name=op.f('fk_scan_hosts_scan_id_scans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_scan_hosts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_hosts'))
    )
    with op.batch_alter_table('scan_hosts', schema=None) as batch_op:
        batch_op.create_index('ix_scan_hosts_scan_ip', ['scan_id', 'ip'], unique=False)
        batch_op.create_index(batch_op.f('ix_scan_hosts_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('scan_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scan_hosts_tenant_id'))
        batch_op.drop_index('ix_scan_hosts_scan_ip')
    op.drop_table('scan_hosts')
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_index('ix_scans_status_runner')
        batch_op.drop_index('ix_scans_tenant_target_completed')
        batch_op.drop_index('ix_scans_tenant_status')
        batch_op.drop_index('ix_scans_tenant_created')
    op.drop_table('scans')
