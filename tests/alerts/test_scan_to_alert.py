"""End to end on real sockets: a scan finds a risky service (VNC) on a loopback address, the alert rules
raise an alert, a webhook receiver gets it signed, and a WebSocket client sees the scan and the alert."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import orjson

from tests.alerts.helpers import alerts_of, settle
from tests.conftest import Factory, LiveServer
from tests.scans.helpers import start, wait_for
from tests.streams.helpers import messages_until_quiet, next_message, open_ws, ready
from tests.webhooks.helpers import SECRET, create_hook, expected_signature
from tests.webhooks.receiver import Receiver


async def test_a_scan_that_finds_vnc_raises_an_alert_sent_to_a_webhook_and_the_stream(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    address = f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    vnc = await asyncio.start_server(handle, address, 5900)
    receiver = Receiver()
    try:
        await create_hook(client, admin, receiver.url, ["alert.created"])
        async with open_ws(live.url, "/ws/events", token=admin.token,
                           events="port_found,scan_complete,alert_created") as ws:
            await ready(ws)
            scan = await start(client, admin.headers, target=address, profile="custom", ports=[5900, 5901],
                               timeout_ms=300, enable_profiling=False)
            done = await wait_for(client, admin.headers, scan["id"], {"completed", "failed"})
            assert done["status"] == "completed", done
            found = await next_message(ws, "port_found")
            assert (found["data"]["scan_id"], found["data"]["ip"], found["data"]["port"]) == (scan["id"], address,
                                                                                              5900)
            complete = await next_message(ws, "scan_complete")
            assert complete["data"]["scan_id"] == scan["id"]
            await settle(live)
            # The new host is an alert of its own; the exposed VNC port is the risky one.
            created = [await next_message(ws, "alert_created"), *await messages_until_quiet(ws, 1.0)]
            by_rule = {m["data"]["alert"]["rule"]: m["data"]["alert"] for m in created}
            assert sorted(by_rule) == ["new_device", "risky_service"] and len(created) == 2
            alert = by_rule["risky_service"]
            assert (alert["severity"], alert["device_ip"], alert["source"]) == ("high", address, "scan")
            assert alert["metadata"]["port"] == 5900 and alert["metadata"]["scan_id"] == scan["id"]
            assert by_rule["new_device"]["device_id"] == alert["device_id"]
        # The same two alerts reached the webhook, each signed with the hook's secret.
        requests = await receiver.wait_for(2)
        bodies = {orjson.loads(r.body)["data"]["alert"]["rule"]: r for r in requests}
        delivered = bodies["risky_service"]
        assert delivered.headers["x-ronda-signature"] == expected_signature(SECRET, delivered.body)
        assert delivered.headers["x-ronda-event"] == "alert.created"
        assert orjson.loads(delivered.body)["data"]["alert"]["id"] == alert["id"]
    finally:
        receiver.close()
        vnc.close()
        await vnc.wait_closed()
    listed = await alerts_of(client, admin, rule="risky_service")
    assert [a["id"] for a in listed] == [alert["id"]] and listed[0]["title"].startswith("VNC exposed")
