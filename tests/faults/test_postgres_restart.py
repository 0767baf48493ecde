"""PostgreSQL restarted and stopped under a running server: clean 503s while it is away, recovery by
itself once it is back, and every acknowledged report kept.

On a PostgreSQL cluster of the test's own (tests/faults/instances.py), never the shared one: the test
stops and restarts it. Skipped where one cannot be started (no server binaries, not root).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ronda.core.db import PG_CONNECT_TIMEOUT
from tests.conftest import Account, Factory, make_settings, start_server
from tests.faults.helpers import DEVICES, REPORT, report, stream_close_code
from tests.faults.instances import OwnPostgres, own_postgres, why_no_postgres
from tests.support import assert_error

pytestmark = pytest.mark.skipif(bool(why_no_postgres()), reason=why_no_postgres() or "-")


async def load(http: httpx.AsyncClient, admin: Account, serial: str, stop: asyncio.Event,
               outcome: dict[str, int]) -> int:
    """Report one device's new revisions until `stop`; count the answers; return the last acknowledged."""
    acked = 0
    revision = 0
    while not stop.is_set():
        revision += 1
        started = time.monotonic()
        response = await http.post(REPORT, headers=admin.headers, json=report(serial, revision=revision))
        assert time.monotonic() - started < 10, "an answer took longer than 10 s"
        if response.status_code in (200, 201):
            acked = revision
            outcome["acknowledged"] += 1
        else:
            assert_error(response, 503, "SERVICE_UNAVAILABLE")
            outcome["unavailable"] += 1
            await asyncio.sleep(0.05)
    return acked


async def until_recovered(http: httpx.AsyncClient, admin: Account, seconds: float = 15) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = await http.get(DEVICES, headers=admin.headers)
        if response.status_code == 200:
            return time.monotonic() - started
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server did not recover within {seconds} s of PostgreSQL being back")


async def shutting_down_answers_503(pg: OwnPostgres, engine: AsyncEngine, http: httpx.AsyncClient,
                                    admin: Account) -> None:
    from ronda.core.db import create_engine

    other = create_engine(pg.url)
    held = await other.connect()  # a smart shutdown waits for this client to leave
    try:
        await held.execute(text("SELECT 1"))
        await asyncio.to_thread(pg.begin_smart_shutdown)
        await engine.dispose()  # the server's next request needs a new connection
        for _ in range(3):
            assert_error(await http.get(DEVICES, headers=admin.headers), 503, "SERVICE_UNAVAILABLE")
            assert_error(await http.post(REPORT, headers=admin.headers, json=report("PG-0", revision=10**6)),
                         503, "SERVICE_UNAVAILABLE")
    finally:
        await held.close()
        await other.dispose()
    await asyncio.to_thread(pg.wait_stopped)


async def stored_revisions(pg: OwnPostgres) -> dict[str, int]:
    from sqlalchemy import select

    from ronda.core.db import create_engine
    from ronda.devices.models import Device

    engine = create_engine(pg.url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Device.serial_number, Device.os_version))).all()
    finally:
        await engine.dispose()
    return {str(serial): int(str(version).split("-")[1]) for serial, version in rows}


async def test_postgres_restart_and_outage_give_clean_503s_and_recover_by_themselves(tmp_path: Path) -> None:
    from ronda.core.migrate import upgrade_async

    with own_postgres() as pg:
        await upgrade_async(pg.url)
        live = await start_server(make_settings(pg.url, tmp_path))
        try:
            async with httpx.AsyncClient(base_url=live.url, timeout=PG_CONNECT_TIMEOUT + 10) as http:
                admin = await Factory(live, http).user("admin")
                serials = [f"PG-{n}" for n in range(4)]

                # A fast restart in the middle of check-ins from four clients.
                stop = asyncio.Event()
                outcome = {"acknowledged": 0, "unavailable": 0}
                clients = [asyncio.create_task(load(http, admin, s, stop, outcome)) for s in serials]
                await asyncio.sleep(0.5)
                await asyncio.to_thread(pg.restart, "fast")
                await until_recovered(http, admin)
                await asyncio.sleep(0.5)
                stop.set()
                acked = dict(zip(serials, await asyncio.gather(*clients), strict=True))
                assert outcome["acknowledged"] > 0

                # Stopped for a while: every answer a prompt, clean 503; /health says so too.
                await asyncio.to_thread(pg.stop, "fast")
                assert await stream_close_code(live, admin.token) == 4503
                for _ in range(3):
                    started = time.monotonic()
                    assert_error(await http.post(REPORT, headers=admin.headers, json=report("PG-0", revision=10**6)),
                                 503, "SERVICE_UNAVAILABLE")
                    assert_error(await http.get(DEVICES, headers=admin.headers), 503, "SERVICE_UNAVAILABLE")
                    health = await http.get("/health")
                    assert_error(health, 503, "SERVICE_UNAVAILABLE")
                    assert health.json()["database"] == "unavailable"
                    assert time.monotonic() - started < 5
                await asyncio.to_thread(pg.start)
                await until_recovered(http, admin)  # the same server process, not restarted
                assert (await http.get("/health")).status_code == 200
                again = await http.post(REPORT, headers=admin.headers, json=report("PG-AFTER"))
                assert again.status_code == 201, again.text

                # Shutting down (or starting up), new connections are refused with SQLSTATE 57P03, which
                # asyncpg raises as a plain error rather than an OperationalError: still a 503.
                await shutting_down_answers_503(pg, live.app.state.runtime.engine, http, admin)
                await asyncio.to_thread(pg.start)
                await until_recovered(http, admin)

                # Hung: the server takes connections and never answers. A 503 once the connect timeout
                # is up, not a request held for asyncpg's default minute.
                await live.app.state.runtime.engine.dispose()
                pg.postmaster_signal(signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    assert_error(await http.get(DEVICES, headers=admin.headers), 503, "SERVICE_UNAVAILABLE")
                    assert time.monotonic() - started < PG_CONNECT_TIMEOUT + 5
                finally:
                    pg.postmaster_signal(signal.SIGCONT)
                await until_recovered(http, admin)
        finally:
            await live.stop()
        stored = await stored_revisions(pg)
        for serial, revision in acked.items():
            assert stored.get(serial, 0) >= revision, f"{serial}: acknowledged revision {revision} lost"
        assert stored.get("PG-0", 0) < 10**6  # the report refused while away was not written
        assert "PG-AFTER" in stored
