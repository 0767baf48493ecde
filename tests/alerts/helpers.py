"""Alert test helpers: fire bus events on the live server and wait for the rules' alerts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Account, LiveServer

ALERTS = "/api/v1/alerts"


async def fire(live: LiveServer, event_type: str, tenant_id: str, data: dict[str, Any]) -> None:
    await live.app.state.events.publish(event_type, tenant_id, data)


async def settle(live: LiveServer) -> None:
    """Wait until the alert engine has handled everything queued so far."""
    await asyncio.wait_for(live.app.state.alert_engine.queue.join(), 10)


async def alerts_of(client: httpx.AsyncClient, account: Account, **query: Any) -> list[dict[str, Any]]:
    response = await client.get(ALERTS, headers=account.headers, params={"per_page": 1000, **query})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def port_event(device: dict[str, Any], port: int, service: str = "", scan_id: str | None = None) -> dict[str, Any]:
    return {"device_id": device["id"], "ip": device.get("ip"), "port": port, "protocol": "tcp", "service": service,
            "product": None, "version": None, "cpe": None, "scan_id": scan_id}
