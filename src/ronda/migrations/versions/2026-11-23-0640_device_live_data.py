"""devices.live_data: the digests of the data the last report carried

An unchanged agent check-in compares its sections' digests with this column (loaded with the
device) instead of querying device_data, and confirms those rows through devices.last_report_at
instead of rewriting each row's last_seen_at. NULL (the first report after the upgrade fills it)
means: read the latest versions from device_data.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 06:40:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronda.core.db

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on every database (batch mode would rebuild the SQLite table and its triggers).
    op.add_column('devices', sa.Column('live_data', sa.JSON(), nullable=True))


def downgrade() -> None:
    # Before dropping the column, write the confirmations it stood for into the rows themselves.
    devices = sa.table('devices', sa.column('id', sa.String), sa.column('live_data', sa.JSON),
                       sa.column('last_report_at', ronda.core.db.UTCDateTime(timezone=True)))
    data = sa.table('device_data', sa.column('id', sa.String), sa.column('device_id', sa.String),
                    sa.column('last_seen_at', ronda.core.db.UTCDateTime(timezone=True)))
    bind = op.get_bind()
    rows = bind.execute(sa.select(devices.c.live_data, devices.c.last_report_at)
                        .where(devices.c.live_data.is_not(None), devices.c.last_report_at.is_not(None))).all()
    for live_data, last_report_at in rows:
        ids = [entry[0] for entry in (live_data or {}).values()]
        if ids:
            bind.execute(sa.update(data).where(data.c.id.in_(ids), data.c.last_seen_at < last_report_at)
                         .values(last_seen_at=last_report_at))
    if bind.dialect.name == "sqlite":
        # A plain ALTER (SQLite 3.35+): batch mode would rebuild the table without its triggers.
        op.execute("ALTER TABLE devices DROP COLUMN live_data")
    else:
        op.drop_column('devices', 'live_data')
