"""From a domain event to a signed webhook through the alert rules: an open Telnet port on a device
raises a risky-service alert, and its alert.created reaches the receiver, signed."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.conftest import Factory, LiveServer
from tests.webhooks.helpers import HOOKS, SECRET, create_hook, deliveries, expected_signature


async def test_open_telnet_port_alert_is_delivered(
    client: httpx.AsyncClient, live: LiveServer, factory: Factory, receivers: Any
) -> None:
    receiver = receivers()
    admin = await factory.user("admin")
    device = await client.post("/api/v1/devices", headers=admin.headers,
                               json={"device_name": "old switch", "ip": "10.9.8.7", "site_id": "site_hq"})
    assert device.status_code == 201, device.text
    device_id = device.json()["id"]
    hook = await create_hook(client, admin, receiver.url, ["alert.created"])

    await live.app.state.events.publish("device.port_opened", admin.tenant_id, {
        "device_id": device_id, "ip": "10.9.8.7", "port": 23, "protocol": "tcp", "service": "telnet",
        "product": None, "version": None, "cpe": None, "scan_id": None})

    requests = await receiver.wait_for(1)
    body = orjson.loads(requests[0].body)
    assert body["event"] == "alert.created" and body["tenant_id"] == admin.tenant_id
    alert = body["data"]["alert"]
    assert alert["device_id"] == device_id and alert["severity"] in ("high", "critical")
    assert "Telnet" in alert["title"]
    assert requests[0].headers["x-ronda-signature"] == expected_signature(SECRET, requests[0].body)
    assert requests[0].headers["x-ronda-event"] == "alert.created"
    # The alert is the one the API lists, and the port event itself was not for this hook.
    listed = await client.get(f"/api/v1/alerts/{alert['id']}", headers=admin.headers)
    assert listed.status_code == 200 and listed.json()["title"] == alert["title"]
    logged = await deliveries(client, admin, hook["id"])
    assert {d["event"] for d in logged} == {"alert.created"}
    assert (await client.delete(f"{HOOKS}/{hook['id']}", headers=admin.headers)).status_code == 200
