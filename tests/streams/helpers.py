"""WebSocket helpers for the stream tests: a real client (the `websockets` library) on loopback."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ronda.core.db import transaction
from ronda.core.timeutil import utcnow
from ronda.scans.models import Scan
from tests.conftest import Account, Factory


def ws_url(base: str, path: str, **query: str) -> str:
    url = base.replace("http://", "ws://", 1) + path
    return url + ("?" + urlencode(query) if query else "")


def open_ws(base: str, path: str, headers: dict[str, str] | None = None, **query: str) -> Any:
    return connect(ws_url(base, path, **query), additional_headers=headers or {}, open_timeout=10)


async def next_message(ws: ClientConnection, name: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next message called `name` (pings and other events skipped)."""
    async def wait() -> dict[str, Any]:
        while True:
            message = json.loads(await ws.recv())
            if message["event"] == name:
                return dict(message)

    return await asyncio.wait_for(wait(), timeout)


async def messages_until_quiet(ws: ClientConnection, quiet: float = 0.5) -> list[dict[str, Any]]:
    """Everything that arrives until nothing has for `quiet` seconds (pings left out)."""
    out: list[dict[str, Any]] = []
    while True:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), quiet))
        except TimeoutError:
            return out
        if message["event"] != "ping":
            out.append(message)


async def close_of(base: str, path: str, headers: dict[str, str] | None = None, **query: str) -> tuple[int, str]:
    """Connect and read until the server closes; the close code and reason."""
    async with open_ws(base, path, headers, **query) as ws:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("the server did not close the connection")


async def make_device(client: httpx.AsyncClient, admin: Account, **fields: Any) -> dict[str, Any]:
    body = {"hostname": "host-" + utcnow().strftime("%H%M%S%f"), "ip": "10.9.0.5", **fields}
    response = await client.post("/api/v1/devices", headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def make_scan(factory: Factory, tenant_id: str, status: str = "running", started_ago: float = 60) -> str:
    async with transaction(factory.runtime.sessions) as session:
        scan = Scan(tenant_id=tenant_id, target="10.9.0.0/24", networks=["10.9.0.0/24"], target_key="k" * 16,
                    profile="quick", status=status, started_at=utcnow() - timedelta(seconds=started_ago))
        session.add(scan)
        await session.flush()
        return scan.id


async def ready(ws: ClientConnection) -> None:
    """Round-trip a ping: once the pong is back the server's subscription is in place."""
    await ws.send("ping")
    await next_message(ws, "pong")
