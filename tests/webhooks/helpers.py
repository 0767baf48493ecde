"""Shared steps of the delivery tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import timedelta
from typing import Any

import httpx

from ronda.core.timeutil import utcnow
from ronda.webhooks.clock import ManualClock
from ronda.webhooks.dispatcher import dispatcher_of
from tests.conftest import Account, LiveServer

HOOKS = "/api/v1/integrations/webhooks"
SECRET = "test-signing-secret-" + "s" * 20


def expected_signature(secret: str, body: bytes) -> str:
    """Computed here from scratch, as a receiver would: not with the code under test."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def future_clock(server: LiveServer, days: float) -> ManualClock:
    """A hand-moved clock for `server`, days ahead: the shared test server, on the real clock, never
    finds this server's deliveries due, so only `server` sends them."""
    clock = ManualClock(utcnow().replace(microsecond=0) + timedelta(days=days))
    server.app.state.webhook_clock = clock
    return clock


def wake(server: LiveServer) -> None:
    dispatcher = dispatcher_of(server.app)
    assert dispatcher is not None
    dispatcher.wake()


async def settle(server: LiveServer) -> None:
    """Wait until the events published so far have their deliveries written."""
    dispatcher = dispatcher_of(server.app)
    assert dispatcher is not None
    async with asyncio.timeout(10):
        await dispatcher.drain()


async def create_hook(http: httpx.AsyncClient, account: Account, url: str, events: list[str] | None = None,
                      **fields: Any) -> dict[str, Any]:
    response = await http.post(HOOKS, headers=account.headers,
                               json={"url": url, "events": events or ["*"], "secret": SECRET, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def deliveries(http: httpx.AsyncClient, account: Account, hook_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"{HOOKS}/{hook_id}/deliveries", headers=account.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def wait_delivery(http: httpx.AsyncClient, account: Account, hook_id: str, delivery_id: str,
                        attempt: int, timeout: float = 10.0) -> dict[str, Any]:
    """The delivery once its `attempt`-th attempt is recorded."""
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in await deliveries(http, account, hook_id) if d["id"] == delivery_id]
        if found and found[0]["attempt"] >= attempt:
            return found[0]
        assert time.monotonic() < deadline, f"delivery {delivery_id} never reached attempt {attempt}: {found}"
        await asyncio.sleep(0.02)
