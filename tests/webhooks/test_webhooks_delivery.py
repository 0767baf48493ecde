"""Deliveries to real receivers on loopback: signed bodies and headers, event routing, the delivery log."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from ronda.core.db import transaction
from ronda.core.timeutil import utcnow
from ronda.webhooks import repository
from tests.conftest import Factory, LiveServer
from tests.webhooks.helpers import (
    HOOKS,
    SECRET,
    create_hook,
    deliveries,
    expected_signature,
    future_clock,
    settle,
    wait_delivery,
    wake,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_test_delivery_is_signed(client: httpx.AsyncClient, factory: Factory, receivers: Any) -> None:
    receiver = receivers()
    admin = await factory.user("admin")
    hook = await create_hook(client, admin, receiver.url, ["alert.created"])
    queued = await client.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)
    assert queued.status_code == 202, queued.text
    delivery = queued.json()
    assert delivery["id"].startswith("whd_") and delivery["status"] == "pending" and delivery["event"] == "webhook.test"

    [request] = await receiver.wait_for(1)
    assert request.path == "/hooks/ronda"
    assert request.headers["x-ronda-signature"] == expected_signature(SECRET, request.body)
    assert request.headers["x-ronda-event"] == "webhook.test"
    assert request.headers["x-ronda-delivery"] == delivery["id"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Ronda-Webhooks/")
    body = orjson.loads(request.body)
    assert set(body) == {"id", "event", "timestamp", "tenant_id", "data"}
    assert body["id"] == delivery["event_id"] and body["event"] == "webhook.test"
    assert body["tenant_id"] == admin.tenant_id and TIMESTAMP.match(body["timestamp"])
    assert body["data"]["webhook_id"] == hook["id"]

    done = await wait_delivery(client, admin, hook["id"], delivery["id"], 1)
    assert done["status"] == "succeeded" and done["status_code"] == 200
    assert isinstance(done["duration_ms"], int) and done["error"] is None and done["next_attempt_at"] is None
    assert TIMESTAMP.match(done["delivered_at"])
    assert [(a["attempt"], a["status_code"]) for a in done["attempts"]] == [(1, 200)]
    after = (await client.get(f"{HOOKS}/{hook['id']}", headers=admin.headers)).json()
    assert after["status"] == "active" and after["last_success_at"] is not None


async def test_bus_events_reach_matching_hooks(
    client: httpx.AsyncClient, live: LiveServer, factory: Factory, receivers: Any
) -> None:
    admin = await factory.user("admin")
    alerts, scans, everything, inactive = receivers(), receivers(), receivers(), receivers()
    alert_hook = await create_hook(client, admin, alerts.url, ["alert.created"])
    scan_hook = await create_hook(client, admin, scans.url, ["scan.completed"])
    all_hook = await create_hook(client, admin, everything.url, ["*"])
    off_hook = await create_hook(client, admin, inactive.url, ["*"], active=False)
    other = await factory.user("admin")  # another tenant's event reaches none of these
    await live.app.state.events.publish("alert.created", other.tenant_id, {"alert": {"id": "alert_x"}})

    alert = {"id": "alert_1", "title": "Telnet exposed", "severity": "high", "device_ip": "10.0.0.5"}
    event = await live.app.state.events.publish("alert.created", admin.tenant_id, {"alert": alert})
    await live.app.state.events.publish("scan.progress", admin.tenant_id, {"scan_id": "scan_1"})  # never a hook's

    [got] = await alerts.wait_for(1)
    [got_all] = await everything.wait_for(1)
    for request in (got, got_all):
        body = orjson.loads(request.body)
        assert body == {"id": event.id, "event": "alert.created", "timestamp": body["timestamp"],
                        "tenant_id": admin.tenant_id, "data": {"alert": alert}}
        assert request.headers["x-ronda-signature"] == expected_signature(SECRET, request.body)
        assert request.headers["x-ronda-event"] == "alert.created"
    assert got.headers["x-ronda-delivery"] != got_all.headers["x-ronda-delivery"]
    await settle(live)  # every published event has its deliveries written
    assert await deliveries(client, admin, scan_hook["id"]) == []
    assert await deliveries(client, admin, off_hook["id"]) == []
    assert scans.count() == 0 and inactive.count() == 0

    await live.app.state.events.publish("scan.completed", admin.tenant_id, {"scan_id": "scan_1", "hosts_found": 3})
    [scan_request] = await scans.wait_for(1)
    assert orjson.loads(scan_request.body)["data"] == {"scan_id": "scan_1", "hosts_found": 3}
    await everything.wait_for(2)
    assert alerts.count() == 1

    log = await deliveries(client, admin, alert_hook["id"])
    assert len(log) == 1 and log[0]["event"] == "alert.created" and log[0]["event_id"] == event.id
    statuses = await client.get(f"{HOOKS}/{all_hook['id']}/deliveries", headers=admin.headers,
                                params={"event": "scan.completed", "per_page": 1, "page": 1})
    assert statuses.json()["meta"]["total"] == 1 and statuses.json()["data"][0]["event"] == "scan.completed"


async def test_secret_never_logged(
    client: httpx.AsyncClient, factory: Factory, receivers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The app's "ronda" logger has its own handler and does not propagate: listen on it directly.
    ronda_logger = logging.getLogger("ronda")
    ronda_logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="ronda")
    try:
        await _secret_never_logged(client, factory, receivers, caplog)
    finally:
        ronda_logger.removeHandler(caplog.handler)


async def _secret_never_logged(
    client: httpx.AsyncClient, factory: Factory, receivers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ok, failing = receivers(), receivers([500])
    admin = await factory.user("admin")
    created = await client.post(HOOKS, headers=admin.headers, json={"url": ok.url, "events": ["*"]})
    generated = created.json()["secret"]
    broken = await create_hook(client, admin, failing.url)
    good = created.json()
    for hook in (good, broken):
        delivery = (await client.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)).json()
        await wait_delivery(client, admin, hook["id"], delivery["id"], 1)
    assert ok.count() == 1 and failing.count() == 1
    assert "attempt 1 failed" in caplog.text and "sent (HTTP 200)" in caplog.text  # the logs were captured
    assert generated not in caplog.text and SECRET not in caplog.text
    listed = await client.get(HOOKS, headers=admin.headers)
    assert generated not in listed.text and SECRET not in listed.text
    audit = await client.get("/api/v1/audit-logs", headers=admin.headers, params={"resource_type": "webhook"})
    assert audit.status_code == 200 and audit.json()["meta"]["total"] >= 4
    assert generated not in audit.text and SECRET not in audit.text
    # Deleting the failing hook ends its retries (the shared server would otherwise retry it).
    assert (await client.delete(f"{HOOKS}/{broken['id']}", headers=admin.headers)).status_code == 200


async def test_refused_at_send_time(
    client: httpx.AsyncClient, server_factory: Any, factory: Factory, receivers: Any
) -> None:
    """An address allowed when the hook was made but refused when it is sent (here: private addresses
    turned off; the same check catches a name re-pointed at a metadata address) fails the attempt."""
    receiver = receivers()
    admin = await factory.user("admin")
    server = await server_factory(webhook_allow_private="off", webhook_poll_interval=0.02)
    future_clock(server, days=3)
    async with httpx.AsyncClient(base_url=server.url) as http:
        # Created through the shared server, where private addresses are allowed.
        hook = await create_hook(client, admin, receiver.url.replace("127.0.0.1", "localhost"))
        delivery = (await http.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)).json()
        wake(server)
        failed = await wait_delivery(http, admin, hook["id"], delivery["id"], 1)
    assert failed["status"] == "pending" and failed["status_code"] is None
    assert failed["error"].startswith("refused: localhost resolves to") and "PRIVATE" in failed["error"]
    await asyncio.sleep(0.1)
    assert receiver.count() == 0
    assert (await client.delete(f"{HOOKS}/{hook['id']}", headers=admin.headers)).status_code == 200


async def test_rotated_secret_signs_the_next_delivery(
    client: httpx.AsyncClient, factory: Factory, receivers: Any
) -> None:
    receiver = receivers()
    admin = await factory.user("admin")
    hook = await create_hook(client, admin, receiver.url)
    rotated = (await client.patch(f"{HOOKS}/{hook['id']}", headers=admin.headers, json={"rotate_secret": True})).json()
    await client.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)
    [request] = await receiver.wait_for(1)
    assert request.headers["x-ronda-signature"] == expected_signature(rotated["secret"], request.body)
    assert request.headers["x-ronda-signature"] != expected_signature(SECRET, request.body)


async def test_slow_receivers_time_out_and_redirects_are_not_followed(
    server_factory: Any, factory: Factory, receivers: Any
) -> None:
    slow, redirecting = receivers(delay=1.5), receivers([302])
    admin = await factory.user("admin")
    server = await server_factory(webhook_timeout=0.5, webhook_poll_interval=0.02)
    future_clock(server, days=40)
    async with httpx.AsyncClient(base_url=server.url) as http:
        outcomes = []
        for receiver in (slow, redirecting):
            hook = await create_hook(http, admin, receiver.url)
            delivery = (await http.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)).json()
            outcomes.append(await wait_delivery(http, admin, hook["id"], delivery["id"], 1))
            assert (await http.delete(f"{HOOKS}/{hook['id']}", headers=admin.headers)).status_code == 200
    timed_out, redirected = outcomes
    assert timed_out["error"] == "timed out" and timed_out["status_code"] is None
    assert 400 <= timed_out["duration_ms"] < 1400 and timed_out["status"] == "pending"
    assert redirected["status_code"] == 302 and "redirects are not followed" in redirected["error"]
    assert redirecting.count() == 1  # the Location (a metadata address) was never requested


async def test_finished_deliveries_are_pruned_pending_ones_kept(
    client: httpx.AsyncClient, factory: Factory, receivers: Any
) -> None:
    ok, failing = receivers(), receivers([500])
    admin = await factory.user("admin")
    done_hook, pending_hook = await create_hook(client, admin, ok.url), await create_hook(client, admin, failing.url)
    ids = []
    for hook in (done_hook, pending_hook):
        delivery = (await client.post(f"{HOOKS}/{hook['id']}/test", headers=admin.headers)).json()
        ids.append((await wait_delivery(client, admin, hook["id"], delivery["id"], 1))["id"])
    async with transaction(factory.runtime.sessions) as session:
        removed = await repository.prune(session, utcnow() + timedelta(days=1))
    assert removed >= 1
    assert await deliveries(client, admin, done_hook["id"]) == []
    assert [d["id"] for d in await deliveries(client, admin, pending_hook["id"])] == [ids[1]]
    assert (await client.delete(f"{HOOKS}/{pending_hook['id']}", headers=admin.headers)).status_code == 200


@pytest.mark.redis
async def test_one_delivery_per_event_across_servers_sharing_redis(
    server_factory: Any, redis_url: str, factory: Factory, receivers: Any
) -> None:
    """Every process hears every event through Redis, but deliveries are made only where it was published."""
    receiver = receivers()
    admin = await factory.user("admin")
    one = await server_factory(redis_url=redis_url, webhook_poll_interval=0.02)
    two = await server_factory(redis_url=redis_url, webhook_poll_interval=0.02)
    for server in (one, two):
        async with asyncio.timeout(10):
            await server.app.state.events.listening.wait()
    heard: list[str] = []
    two.app.state.events.subscribe(lambda event: heard.append(event.id), broadcast=True)
    async with httpx.AsyncClient(base_url=one.url) as http:
        hook = await create_hook(http, admin, receiver.url, ["cve.matched"])
        event = await one.app.state.events.publish("cve.matched", admin.tenant_id, {
            "device_id": "dev_x", "cve_id": "CVE-2024-6387", "severity": "high", "cvss_score": 8.1,
            "cpe": "cpe:2.3:a:openbsd:openssh:9.6:p1:*:*:*:*:*:*", "source": "scan"})
        for _ in range(200):
            if event.id in heard:
                break
            await asyncio.sleep(0.02)
        assert event.id in heard  # the other process did hear it
        await settle(one)
        await settle(two)
        await receiver.wait_for(1)
        await asyncio.sleep(0.2)
        assert receiver.count() == 1
        [delivery] = await deliveries(http, admin, hook["id"])
        done = await wait_delivery(http, admin, hook["id"], delivery["id"], 1)
    assert done["event_id"] == event.id and done["status"] == "succeeded"
