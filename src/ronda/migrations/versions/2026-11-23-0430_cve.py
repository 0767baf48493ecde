"""cve intelligence

Imported NVD records and their vulnerable CPE match rows (global: every tenant reads the same
feed), each tenant's device matches, the log of imported feed files, and a small key/value table
for the data version and the matcher's watermark.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 04:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronda.core.db

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cve_records',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('source_identifier', sa.String(length=200), nullable=True),
    sa.Column('vuln_status', sa.String(length=40), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('cvss_score', sa.Float(), nullable=True),
    sa.Column('severity', sa.String(length=10), nullable=True),
    sa.Column('cvss_v31_score', sa.Float(), nullable=True),
    sa.Column('cvss_v31_severity', sa.String(length=10), nullable=True),
    sa.Column('cvss_v31_vector', sa.String(length=200), nullable=True),
    sa.Column('cvss_v40_score', sa.Float(), nullable=True),
    sa.Column('cvss_v40_severity', sa.String(length=10), nullable=True),
    sa.Column('cvss_v40_vector', sa.String(length=400), nullable=True),
    sa.Column('published', ronda.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_modified', ronda.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('references', sa.JSON(), nullable=False),
    sa.Column('weaknesses', sa.JSON(), nullable=False),
    sa.Column('imported_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cve_records'))
    )
    with op.batch_alter_table('cve_records', schema=None) as batch_op:
        batch_op.create_index('ix_cve_records_published', ['published'], unique=False)
        batch_op.create_index('ix_cve_records_severity_score', ['severity', 'cvss_score'], unique=False)

    op.create_table('cve_cpes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('cve_id', sa.String(length=32), nullable=False),
    sa.Column('part', sa.String(length=1), nullable=False),
    sa.Column('vendor', sa.String(length=150), nullable=False),
    sa.Column('product', sa.String(length=200), nullable=False),
    sa.Column('version', sa.String(length=100), nullable=False),
    sa.Column('version_update', sa.String(length=100), nullable=False),
    sa.Column('criteria', sa.String(length=600), nullable=False),
    sa.Column('version_start_including', sa.String(length=100), nullable=True),
    sa.Column('version_start_excluding', sa.String(length=100), nullable=True),
    sa.Column('version_end_including', sa.String(length=100), nullable=True),
    sa.Column('version_end_excluding', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['cve_id'], ['cve_records.id'], name=op.f('fk_cve_cpes_cve_id_cve_records'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cve_cpes'))
    )
    with op.batch_alter_table('cve_cpes', schema=None) as batch_op:
        batch_op.create_index('ix_cve_cpes_vendor_product', ['vendor', 'product'], unique=False)
        batch_op.create_index('ix_cve_cpes_cve_id', ['cve_id'], unique=False)

    op.create_table('cve_matches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=False),
    sa.Column('cve_id', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('cpe', sa.String(length=300), nullable=False),
    sa.Column('matched_version', sa.String(length=100), nullable=False),
    sa.Column('package', sa.String(length=200), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('first_seen', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_cve_matches_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_cve_matches_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cve_matches'))
    )
    with op.batch_alter_table('cve_matches', schema=None) as batch_op:
        batch_op.create_index('ix_cve_matches_device_cve_source', ['device_id', 'cve_id', 'source'], unique=True)
        batch_op.create_index('ix_cve_matches_tenant_cve', ['tenant_id', 'cve_id'], unique=False)

    op.create_table('cve_imports',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('file_name', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('imported_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cve_imports'))
    )
    with op.batch_alter_table('cve_imports', schema=None) as batch_op:
        batch_op.create_index('ix_cve_imports_sha256', ['sha256'], unique=False)

    op.create_table('cve_state',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('updated_at', ronda.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_cve_state'))
    )


def downgrade() -> None:
    op.drop_table('cve_state')
    op.drop_table('cve_imports')
    op.drop_table('cve_matches')
    op.drop_table('cve_cpes')
    op.drop_table('cve_records')
