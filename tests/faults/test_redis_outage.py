"""Redis stopped under running servers: rate-limited requests fail closed with a clean 503 (never a 500),
/health still answers, and once Redis is back requests pass and the event bus carries events between
processes again, all without a restart.

On a redis-server of the test's own (tests/faults/instances.py), never the shared one.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import pytest

from ronda.core.events import Event
from tests.conftest import Factory, LiveServer, make_settings, start_server
from tests.faults.helpers import DEVICES, REPORT, report, stream_close_code
from tests.faults.instances import own_redis
from tests.support import assert_error

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


async def heard_after(live: LiveServer, other: LiveServer, seconds: float = 10) -> float:
    """Publish on `live` until `other` hears it through Redis; how long that took."""
    heard: list[Event] = []
    unsubscribe = other.app.state.events.subscribe(heard.append, broadcast=True)
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            sent = await live.app.state.events.publish("device.updated", "tenant-faults", {"device_id": "d"})
            await asyncio.sleep(0.2)
            if any(event.id == sent.id for event in heard):
                return time.monotonic() - started
        raise AssertionError(f"no event crossed between the servers within {seconds} s")
    finally:
        unsubscribe()


async def test_a_redis_outage_fails_closed_with_503_and_recovers(migrated: str, tmp_path: Path) -> None:
    with own_redis() as redis:
        settings = {"redis_url": redis.url, "rate_limits": "on"}
        a = await start_server(make_settings(migrated, tmp_path, **settings))
        b = await start_server(make_settings(migrated, tmp_path, **settings))
        try:
            async with httpx.AsyncClient(base_url=a.url, timeout=15) as http:
                admin = await Factory(a, http).user("admin")
                assert (await http.get(DEVICES, headers=admin.headers)).status_code == 200
                await heard_after(a, b)

                await asyncio.to_thread(redis.stop)
                for _ in range(3):
                    started = time.monotonic()
                    refused = await http.get(DEVICES, headers=admin.headers)
                    assert_error(refused, 503, "SERVICE_UNAVAILABLE")
                    assert refused.headers["Retry-After"] == "1"
                    assert_error(await http.post(REPORT, headers=admin.headers, json=report("REDIS-1")),
                                 503, "SERVICE_UNAVAILABLE")
                    assert time.monotonic() - started < 5
                    assert (await http.get("/health")).status_code == 200  # the database is fine
                assert await stream_close_code(a, admin.token) == 4503  # a stream is refused the same way
                await a.app.state.events.publish("device.updated", "tenant-faults", {"device_id": "d"})  # buffered

                await asyncio.to_thread(redis.start)
                assert (await http.get(DEVICES, headers=admin.headers)).status_code == 200
                created = await http.post(REPORT, headers=admin.headers, json=report("REDIS-1"))
                assert created.status_code == 201, created.text
                await heard_after(a, b)  # the listeners and senders reconnected by themselves
                listed = await http.get(DEVICES, headers=admin.headers, params={"search": "REDIS-1"})
                assert listed.status_code == 200 and listed.json()["meta"]["total"] == 1
        finally:
            await a.stop()
            await b.stop()
