"""Shared by the inventory tests: devices, data versions and ports written straight to the tables.

The report endpoint is built separately; these tests put agent- and scan-shaped rows in place
directly, then read them back over HTTP like a client would.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from ronda.core.logging import request_id_var
from ronda.core.timeutil import utcnow
from ronda.devices.models import Device, DeviceData, DevicePort
from tests.conftest import Factory

DEVICES = "/api/v1/devices"


async def add_device(factory: Factory, tenant_id: str, **fields: Any) -> str:
    """A device row as an agent report or a scan would leave it."""
    now = utcnow()
    values: dict[str, Any] = {
        "device_type": "laptop", "tags": [], "open_ports": [], "sources": ["scan"], "managed": False,
        "is_online": False, "first_seen": now, "last_seen": now, "compliance_status": "unknown",
        "compliance_checks": {},
    }
    values.update(fields)
    async with transaction(factory.runtime.sessions) as session:
        device = Device(tenant_id=tenant_id, **values)
        session.add(device)
        await session.flush()
        return device.id


async def add_data(
    factory: Factory, tenant_id: str, device_id: str, data_type: str, data: dict[str, Any],
    collected_at: datetime | None = None, last_seen_at: datetime | None = None,
) -> str:
    collected = collected_at or utcnow()
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    async with transaction(factory.runtime.sessions) as session:
        row = DeviceData(tenant_id=tenant_id, device_id=device_id, data_type=data_type, data=data, digest=digest,
                         collected_at=collected, last_seen_at=last_seen_at or collected)
        session.add(row)
        await session.flush()
        return row.id


async def add_port(factory: Factory, tenant_id: str, device_id: str, port: int, **fields: Any) -> str:
    async with transaction(factory.runtime.sessions) as session:
        row = DevicePort(tenant_id=tenant_id, device_id=device_id, port=port, **fields)
        session.add(row)
        await session.flush()
        return row.id


async def count_rows(factory: Factory, model: Any, **where: Any) -> int:
    async with factory.runtime.sessions() as session:
        statement = select(model)
        for name, value in where.items():
            statement = statement.where(getattr(model, name) == value)
        return len((await session.scalars(statement)).all())


async def audit_events(factory: Factory, tenant_id: str, event_type: str, resource_id: str | None = None
                       ) -> list[AuditLog]:
    statement = select(AuditLog).where(AuditLog.tenant_id == tenant_id, AuditLog.event_type == event_type)
    if resource_id is not None:
        statement = statement.where(AuditLog.resource_id == resource_id)
    async with factory.runtime.sessions() as session:
        return list((await session.scalars(statement.order_by(AuditLog.seq))).all())


def ago(**delta: float) -> datetime:
    return utcnow() - timedelta(**delta)


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@contextmanager
def count_statements(factory: Factory) -> Iterator[list[str]]:
    """Every SQL statement the server issues for requests while the block runs (transaction control
    left out). Background work (sweepers, dispatchers), which runs outside any request, is not counted."""
    engine = factory.runtime.engine.sync_engine
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if request_id_var.get() == "-":  # not on behalf of a request
            return
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
