"""alerts and agent offline marks

One active (open or acknowledged) alert per tenant, rule and subject: a partial unique index
(`status <> 'resolved'`), which the rules' upsert targets.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 04:20:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronda.core.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

ACTIVE_WHERE = "status <> 'resolved'"


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('rule', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=True),
    sa.Column('device_ip', sa.String(length=45), nullable=True),
    sa.Column('site_id', sa.String(length=40), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=True),
    sa.Column('occurrence_count', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', ronda.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=320), nullable=True),
    sa.Column('acknowledged_by_id', sa.String(length=40), nullable=True),
    sa.Column('resolved_at', ronda.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=320), nullable=True),
    sa.Column('resolved_by_id', sa.String(length=40), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.Column('created_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_alerts_device_id_devices'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_alerts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('uq_alerts_active_subject', ['tenant_id', 'rule', 'subject'], unique=True,
                              sqlite_where=sa.text(ACTIVE_WHERE), postgresql_where=sa.text(ACTIVE_WHERE))
        batch_op.create_index('ix_alerts_tenant_created', ['tenant_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_alerts_tenant_status_severity', ['tenant_id', 'status', 'severity'], unique=False)
        batch_op.create_index('ix_alerts_tenant_site', ['tenant_id', 'site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_device_id'), ['device_id'], unique=False)

    op.create_table('agent_offline_marks',
    sa.Column('agent_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('heartbeat_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('marked_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_offline_marks_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_agent_offline_marks_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_agent_offline_marks'))
    )
    with op.batch_alter_table('agent_offline_marks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_offline_marks_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('agent_offline_marks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_offline_marks_tenant_id'))
    op.drop_table('agent_offline_marks')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_device_id'))
        batch_op.drop_index('ix_alerts_tenant_site')
        batch_op.drop_index('ix_alerts_tenant_status_severity')
        batch_op.drop_index('ix_alerts_tenant_created')
        batch_op.drop_index('uq_alerts_active_subject')
    op.drop_table('alerts')
