"""WebSocket streams on a real server: auth (query, headers, API keys), tenancy, filters, pings, slow clients."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from ronda.core.security import Tokens
from tests.alerts.helpers import fire, port_event, settle
from tests.conftest import Factory, LiveServer
from tests.streams.helpers import (
    close_of,
    make_device,
    make_scan,
    messages_until_quiet,
    next_message,
    open_ws,
    ready,
)


async def test_query_token_header_and_api_key_clients_receive_alert_created(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    other = await factory.user("admin")
    key = await factory.api_key(admin, ["alerts_read"])
    device = await make_device(client, admin)
    async with (
        open_ws(live.url, "/ws/alerts", token=admin.token) as by_query,
        open_ws(live.url, "/api/v1/ws/events", headers=admin.headers) as by_header,
        open_ws(live.url, "/v1/ws/alerts", headers={"X-API-Key": key}) as by_key,
        open_ws(live.url, "/api/ws/events", token=other.token) as stranger,
    ):
        for ws in (by_query, by_header, by_key, stranger):
            await ready(ws)
        await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 23, "telnet"))
        await settle(live)
        # The events stream carries the trigger too, under its wire name, before the alert.
        assert (await next_message(by_header, "device_port_opened"))["data"]["port"] == 23
        for ws in (by_query, by_header, by_key):
            message = await next_message(ws, "alert_created")
            assert set(message) == {"event", "timestamp", "data"} and message["timestamp"].endswith("Z")
            alert = message["data"]["alert"]
            assert (alert["rule"], alert["device_id"], alert["tenant_id"]) == ("risky_service", device["id"],
                                                                               admin.tenant_id)
        assert await messages_until_quiet(stranger, 0.3) == []  # another tenant's events never arrive


@pytest.mark.parametrize("path", ["/ws/events", "/ws/alerts"])
async def test_bad_expired_and_revoked_credentials_are_refused(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer, path: str
) -> None:
    admin = await factory.user("admin")
    assert (await close_of(live.url, path))[0] == 4401
    assert (await close_of(live.url, path, token="not-a-token"))[0] == 4401
    assert (await close_of(live.url, path, headers={"X-API-Key": "rk_live_" + "0" * 40}))[0] == 4401
    claims = factory.runtime.tokens.decode(admin.token, "access")
    expired, _, _ = Tokens(factory.runtime.tokens._secret, -60, 60).issue(
        subject=admin.id, tenant_id=admin.tenant_id, session_id=claims.session_id, token_type="access")
    code, reason = await close_of(live.url, path, token=expired)
    assert code == 4401 and "credentials" in reason.lower()
    key = await factory.api_key(admin, ["alerts_read", "devices_read"])
    key_id = (await client.get("/api/v1/api-keys", headers=admin.headers)).json()["data"][0]["id"]
    assert (await client.delete(f"/api/v1/api-keys/{key_id}", headers=admin.headers)).status_code == 200
    assert (await close_of(live.url, path, headers={"X-API-Key": key}))[0] == 4401
    assert (await client.post("/api/v1/auth/logout", headers=admin.headers)).status_code == 200
    assert (await close_of(live.url, path, token=admin.token))[0] == 4401


async def test_a_token_revoked_while_connected_is_closed_at_the_next_ping(
    client: httpx.AsyncClient, factory: Factory, server_factory: object
) -> None:
    server = await server_factory(ws_ping_interval=0.2)  # type: ignore[operator]
    admin = await factory.user("admin")
    async with open_ws(server.url, "/ws/events", token=admin.token) as ws:
        ping = await next_message(ws, "ping", timeout=5)
        assert ping["data"] == {} and ping["timestamp"].endswith("Z")
        assert (await client.post("/api/v1/auth/logout", headers=admin.headers)).status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_permissions_filters_and_scans(client: httpx.AsyncClient, factory: Factory, live: LiveServer) -> None:
    admin = await factory.user("admin")
    user = await factory.user("user", tenant_id=admin.tenant_id)
    other = await factory.user("admin")
    code, reason = await close_of(live.url, "/ws/alerts", token=user.token)
    assert code == 4403 and "alerts_read" in reason
    code, reason = await close_of(live.url, "/ws/events", token=admin.token, events="alert_created,bogus")
    assert code == 4400 and "bogus" in reason
    code, reason = await close_of(live.url, "/ws/alerts", token=admin.token, events="scan_complete")
    assert code == 4400 and "not carried" in reason
    assert (await close_of(live.url, "/ws/events", token=admin.token, all_tenants="true"))[0] == 4403
    theirs = await make_scan(factory, other.tenant_id)
    assert (await close_of(live.url, f"/ws/scans/{theirs}", token=admin.token)) == (4404, "Scan not found")
    assert (await close_of(live.url, "/ws/scans/scan_nope", token=admin.token))[0] == 4404


async def test_events_filter_keeps_only_the_named_events(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    tenant = admin.tenant_id
    async with open_ws(live.url, "/ws/events", token=admin.token, events="scan.progress,host_found") as ws:
        await ready(ws)
        await fire(live, "scan.started", tenant, {"scan_id": "scan_f", "target": "10.0.0.0/30", "profile": "quick"})
        await fire(live, "scan.host_found", tenant, {"scan_id": "scan_f", "ip": "10.0.0.1"})
        await fire(live, "scan.progress", tenant, {"scan_id": "scan_f", "progress_percent": 50.0})
        await fire(live, "agent.offline", tenant, {"agent_id": "agt_x", "device_id": "dev_x"})
        got = await messages_until_quiet(ws, 1.0)
    assert [(m["event"], m["data"]["scan_id"]) for m in got] == [("host_found", "scan_f"), ("scan_progress", "scan_f")]
    await settle(live)


async def test_scan_stream_sends_status_then_its_events_and_closes_when_done(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    scan_id = await make_scan(factory, admin.tenant_id)
    other_scan = await make_scan(factory, admin.tenant_id)
    async with open_ws(live.url, f"/ws/scans/{scan_id}", headers=admin.headers) as ws:
        status = await next_message(ws, "scan_status")
        assert status["data"]["scan_id"] == scan_id and status["data"]["status"] == "running"
        await ready(ws)
        await fire(live, "scan.port_found", admin.tenant_id, {"scan_id": other_scan, "ip": "10.0.0.9", "port": 22})
        await fire(live, "scan.port_found", admin.tenant_id, {"scan_id": scan_id, "ip": "10.0.0.2", "port": 80})
        await fire(live, "scan.completed", admin.tenant_id, {"scan_id": scan_id, "hosts_found": 1, "ports_found": 1,
                                                             "diff": {"new_hosts": [], "new_ports": [],
                                                                      "closed_ports": []}})
        received = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    assert [(m["event"], m["data"].get("port")) for m in received] == [("port_found", 80), ("scan_complete", None)]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    finished = await make_scan(factory, admin.tenant_id, status="completed")
    code, _ = await close_of(live.url, f"/ws/scans/{finished}", token=admin.token)
    assert code == 1000


async def test_a_slow_client_is_dropped_without_holding_up_the_bus(
    client: httpx.AsyncClient, factory: Factory, server_factory: object
) -> None:
    server = await server_factory(ws_queue_size=3)  # type: ignore[operator]
    admin = await factory.user("admin")
    bus = server.app.state.events
    async with open_ws(server.url, "/ws/events", token=admin.token) as ws:
        await ready(ws)
        # Published back to back, with no pause for the connection to send: its queue overflows.
        for n in range(10):
            await bus.publish("scan.progress", admin.tenant_id, {"scan_id": "scan_slow", "progress_percent": n})
        received = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert "too slow" in closed.value.rcvd.reason
    assert len(received) <= 3


async def test_a_super_admin_may_follow_every_tenant(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    root = await factory.user("super_admin")
    other = await factory.user("admin")
    async with open_ws(live.url, "/ws/events", token=root.token, all_tenants="true", events="agent_offline") as every, \
            open_ws(live.url, "/ws/events", token=root.token, events="agent_offline") as own:
        await ready(every)
        await ready(own)
        await fire(live, "agent.offline", other.tenant_id, {"agent_id": "agt_t", "device_id": "dev_t"})
        message = await next_message(every, "agent_offline")
        assert message["data"] == {"agent_id": "agt_t", "device_id": "dev_t"}
        assert await messages_until_quiet(own, 0.3) == []
    await settle(live)


async def test_losing_the_permission_while_connected_closes_the_stream(
    client: httpx.AsyncClient, factory: Factory, server_factory: object
) -> None:
    server = await server_factory(ws_ping_interval=0.2)  # type: ignore[operator]
    admin = await factory.user("admin")
    operator = await factory.user("operator", tenant_id=admin.tenant_id)
    async with open_ws(server.url, "/ws/alerts", token=operator.token) as ws:
        await next_message(ws, "ping", timeout=5)
        changed = await client.patch(f"/api/v1/users/{operator.id}", headers=admin.headers, json={"role": "user"})
        assert changed.status_code == 200, changed.text
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403, closed.value.rcvd
