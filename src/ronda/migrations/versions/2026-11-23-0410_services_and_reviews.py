"""services and security reviews

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 04:10:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronda.core.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('services',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=True),
    sa.Column('owner_id', sa.String(length=40), nullable=True),
    sa.Column('data_classification', sa.String(length=20), nullable=False),
    sa.Column('sso_enabled', sa.Boolean(), nullable=False),
    sa.Column('mfa_enforced', sa.Boolean(), nullable=False),
    sa.Column('audit_logging_enabled', sa.Boolean(), nullable=False),
    sa.Column('encrypted_at_rest', sa.Boolean(), nullable=False),
    sa.Column('data_location', sa.String(length=200), nullable=True),
    sa.Column('review_frequency', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('last_review_date', sa.Date(), nullable=True),
    sa.Column('next_review_date', sa.Date(), nullable=True),
    sa.Column('overdue_notified_for', sa.Date(), nullable=True),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_services_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_services_owner_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_services_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services'))
    )
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.create_index('ix_services_owner_tenant', ['owner_id', 'tenant_id'], unique=False)
        batch_op.create_index('ix_services_tenant_name', ['tenant_id', 'name'], unique=False)
        batch_op.create_index('ix_services_tenant_next_review', ['tenant_id', 'next_review_date'], unique=False)
        batch_op.create_index('ix_services_tenant_status', ['tenant_id', 'status'], unique=False)

    op.create_table('service_reviews',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('service_id', sa.String(length=40), nullable=False),
    sa.Column('reviewer_id', sa.String(length=40), nullable=True),
    sa.Column('review_date', sa.Date(), nullable=False),
    sa.Column('sso_enabled', sa.Boolean(), nullable=False),
    sa.Column('mfa_enforced', sa.Boolean(), nullable=False),
    sa.Column('audit_logging_enabled', sa.Boolean(), nullable=False),
    sa.Column('data_classification', sa.String(length=20), nullable=False),
    sa.Column('encrypted_at_rest', sa.Boolean(), nullable=False),
    sa.Column('data_location', sa.String(length=200), nullable=True),
    sa.Column('findings', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('next_review_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_service_reviews_reviewer_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_service_reviews_service_id_services'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_service_reviews_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_reviews'))
    )
    with op.batch_alter_table('service_reviews', schema=None) as batch_op:
        batch_op.create_index('ix_service_reviews_service_date', ['service_id', 'review_date'], unique=False)
        batch_op.create_index('ix_service_reviews_tenant_date', ['tenant_id', 'review_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('service_reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_service_reviews_tenant_date')
        batch_op.drop_index('ix_service_reviews_service_date')
    op.drop_table('service_reviews')
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_index('ix_services_tenant_status')
        batch_op.drop_index('ix_services_tenant_next_review')
        batch_op.drop_index('ix_services_tenant_name')
        batch_op.drop_index('ix_services_owner_tenant')
    op.drop_table('services')
