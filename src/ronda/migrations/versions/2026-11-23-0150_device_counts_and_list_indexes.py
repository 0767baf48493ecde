"""device counts and list indexes

The device list's exact total without counting: `device_counts` holds each tenant's number of
devices, kept by triggers on `devices` in the same transaction as every insert and delete (so it
is exact whatever writes devices, across processes), backfilled here. `sort=ip` walks an index on
a generated key column instead of computing the key for every row, and the default order
(-last_seen, then id) walks (tenant_id, last_seen, id, managed, is_online), which also makes deep
pages an index-only skip and lets the is_online and managed filters decide from the index alone.
The compliance_status and device_type filters get indexes their counts can read, and a user's
devices (user_id, tenant_id, last_seen, id) an index that lists them newest first.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 01:50:28.169299
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# ronda.devices.models.ip_sort_key() as each database's SQL (the generated column ip_key).
IP_KEY_SQLITE = "CASE WHEN ((ip GLOB '[0-9]*.[0-9]*.[0-9]*.[0-9]*') AND instr(ip, ':') = 0) THEN '4' || printf('%03d%03d%03d%03d', substr(ip || '.', 1, instr(ip || '.', '.') - 1), substr(substr(ip || '.', instr(ip || '.', '.') + 1), 1, instr(substr(ip || '.', instr(ip || '.', '.') + 1), '.') - 1), substr(substr(substr(ip || '.', instr(ip || '.', '.') + 1), instr(substr(ip || '.', instr(ip || '.', '.') + 1), '.') + 1), 1, instr(substr(substr(ip || '.', instr(ip || '.', '.') + 1), instr(substr(ip || '.', instr(ip || '.', '.') + 1), '.') + 1), '.') - 1), substr(substr(substr(substr(ip || '.', instr(ip || '.', '.') + 1), instr(substr(ip || '.', instr(ip || '.', '.') + 1), '.') + 1), instr(substr(substr(ip || '.', instr(ip || '.', '.') + 1), instr(substr(ip || '.', instr(ip || '.', '.') + 1), '.') + 1), '.') + 1), 1, instr(substr(substr(substr(ip || '.', instr(ip || '.', '.') + 1), instr(substr(ip || '.', instr(ip || '.', '.') + 1), '.') + 1), instr(substr(substr(ip || '.', instr(ip || '.', '.') + 1), instr(substr(ip || '.', instr(ip || '.', '.') + 1), '.') + 1), '.') + 1), '.') - 1)) ELSE '6' || ip END"
IP_KEY_POSTGRESQL = "CASE WHEN (ip ~ '^[0-9]{1,3}(\\.[0-9]{1,3}){3}$') THEN '4' || lpad(split_part(ip, '.', 1), 3, '0') || lpad(split_part(ip, '.', 2), 3, '0') || lpad(split_part(ip, '.', 3), 3, '0') || lpad(split_part(ip, '.', 4), 3, '0') ELSE '6' || ip END"

SQLITE_TRIGGERS = (
    """CREATE TRIGGER trg_devices_count_insert AFTER INSERT ON devices FOR EACH ROW BEGIN
    INSERT INTO device_counts (tenant_id, total) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET total = total + 1;
END""",
    """CREATE TRIGGER trg_devices_count_delete AFTER DELETE ON devices FOR EACH ROW BEGIN
    UPDATE device_counts SET total = total - 1 WHERE tenant_id = OLD.tenant_id;
END""",
    """CREATE TRIGGER trg_devices_count_move AFTER UPDATE OF tenant_id ON devices FOR EACH ROW
WHEN OLD.tenant_id <> NEW.tenant_id BEGIN
    UPDATE device_counts SET total = total - 1 WHERE tenant_id = OLD.tenant_id;
    INSERT INTO device_counts (tenant_id, total) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET total = total + 1;
END""",
)

# Statement-level where it can be (one upsert per tenant for a multi-row insert or delete).
POSTGRESQL_TRIGGERS = (
    """CREATE FUNCTION device_counts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_counts (tenant_id, total)
        SELECT tenant_id, count(*) FROM added GROUP BY tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET total = device_counts.total + EXCLUDED.total;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION device_counts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE device_counts SET total = device_counts.total - gone.n
        FROM (SELECT tenant_id, count(*) AS n FROM removed GROUP BY tenant_id) AS gone
        WHERE device_counts.tenant_id = gone.tenant_id;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION device_counts_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE device_counts SET total = total - 1 WHERE tenant_id = OLD.tenant_id;
    INSERT INTO device_counts (tenant_id, total) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET total = device_counts.total + 1;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER trg_devices_count_insert AFTER INSERT ON devices REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION device_counts_added()""",
    """CREATE TRIGGER trg_devices_count_delete AFTER DELETE ON devices REFERENCING OLD TABLE AS removed
FOR EACH STATEMENT EXECUTE FUNCTION device_counts_removed()""",
    """CREATE TRIGGER trg_devices_count_move AFTER UPDATE OF tenant_id ON devices FOR EACH ROW
WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id) EXECUTE FUNCTION device_counts_moved()""",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # ### commands auto generated by Alembic - adjusted: the generated column's SQL per database,
    # the count triggers and the backfill ###
    op.create_table('device_counts',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_device_counts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_device_counts'))
    )
    # PostgreSQL indexes only stored generated columns; SQLite adds only virtual ones to a table.
    computed = sa.Computed(IP_KEY_POSTGRESQL, persisted=True) if dialect == "postgresql" \
        else sa.Computed(IP_KEY_SQLITE)
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ip_key', sa.String(), computed, nullable=True))
        batch_op.drop_index(batch_op.f('ix_devices_tenant_last_seen'))
        batch_op.create_index('ix_devices_tenant_ip_key', ['tenant_id', 'ip_key', 'id'], unique=False)
        batch_op.create_index('ix_devices_tenant_last_seen_state', ['tenant_id', 'last_seen', 'id', 'managed', 'is_online'], unique=False)
        batch_op.create_index('ix_devices_tenant_status', ['tenant_id', 'compliance_status', 'last_report_at'], unique=False)
        batch_op.create_index('ix_devices_tenant_type', ['tenant_id', 'device_type'], unique=False)
        batch_op.drop_index(batch_op.f('ix_devices_user_id'))
        batch_op.create_index('ix_devices_user_tenant_last_seen', ['user_id', 'tenant_id', 'last_seen', 'id'], unique=False)
    # ### end Alembic commands ###
    for statement in POSTGRESQL_TRIGGERS if dialect == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)
    op.execute("INSERT INTO device_counts (tenant_id, total) SELECT tenant_id, count(*) FROM devices GROUP BY tenant_id")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in ("trg_devices_count_insert", "trg_devices_count_delete", "trg_devices_count_move"):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON devices" if dialect == "postgresql"
                   else f"DROP TRIGGER IF EXISTS {name}")
    if dialect == "postgresql":
        for name in ("device_counts_added", "device_counts_removed", "device_counts_moved"):
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_user_tenant_last_seen')
        batch_op.create_index(batch_op.f('ix_devices_user_id'), ['user_id'], unique=False)
        batch_op.drop_index('ix_devices_tenant_type')
        batch_op.drop_index('ix_devices_tenant_status')
        batch_op.drop_index('ix_devices_tenant_last_seen_state')
        batch_op.drop_index('ix_devices_tenant_ip_key')
        batch_op.create_index(batch_op.f('ix_devices_tenant_last_seen'), ['tenant_id', 'last_seen'], unique=False)
        batch_op.drop_column('ip_key')

    op.drop_table('device_counts')
    # ### end Alembic commands ###
