"""Read-only work on PostgreSQL runs in autocommit: no BEGIN and COMMIT round trips around its reads."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from ronda.core.db import read_sessions
from ronda.core.uow import READ_ONLY
from ronda.devices import router as devices_router
from tests.conftest import Factory


async def test_read_sessions_are_the_autocommit_twin_on_postgresql(factory: Factory) -> None:
    sessions = factory.runtime.sessions
    twin = read_sessions(sessions)
    assert read_sessions(sessions) is twin  # made once
    if factory.runtime.engine.dialect.name != "postgresql":
        assert twin is sessions  # SQLite keeps its (round-trip free) transactions
        return
    assert twin is not sessions
    async with twin() as session:
        assert (await session.execute(text("select 1"))).scalar() == 1
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection is not None and not raw.driver_connection.is_in_transaction()
    async with sessions() as session:  # the factory itself is untouched
        await session.execute(text("select 1"))
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection is not None and raw.driver_connection.is_in_transaction()


async def test_only_marked_routes_read_outside_a_transaction(client: httpx.AsyncClient, factory: Factory) -> None:
    assert getattr(devices_router.list_devices, READ_ONLY, False)
    assert not getattr(devices_router.patch_device, READ_ONLY, False)
    admin = await factory.user("admin")
    listed = await client.get("/api/v1/devices", headers=admin.headers)
    assert listed.status_code == 200 and listed.json()["meta"]["total"] == 0
