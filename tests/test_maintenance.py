"""Housekeeping runs on its own in a running server: old device history goes, current data stays."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ronda.core.timeutil import utcnow
from ronda.devices.models import DeviceData
from tests.conftest import Factory
from tests.devices.inventory_helpers import add_data, add_device


async def test_server_prunes_old_device_history_on_schedule(factory: Factory, server_factory: Any) -> None:
    admin = await factory.user("admin")
    t = admin.tenant_id
    device_id = await add_device(factory, t)
    now = utcnow()
    ancient = await add_data(factory, t, device_id, "software", {"v": 1}, collected_at=now - timedelta(days=200))
    old = await add_data(factory, t, device_id, "software", {"v": 2}, collected_at=now - timedelta(days=100))
    current = await add_data(factory, t, device_id, "software", {"v": 3}, collected_at=now - timedelta(days=1))
    lone_old = await add_data(factory, t, device_id, "hardware", {"v": 1}, collected_at=now - timedelta(days=300))

    await server_factory(maintenance_interval=0.2, device_history_days=90)

    async def remaining() -> set[str]:
        async with factory.runtime.sessions() as session:
            rows = await session.scalars(select(DeviceData.id).where(DeviceData.device_id == device_id))
            return set(rows.all())

    for _ in range(100):
        if ancient not in await remaining():
            break
        await asyncio.sleep(0.1)
    # `old` stopped being current only 1 day ago (inside the window): kept; the newest of each kind always stays.
    assert await remaining() == {old, current, lone_old}
