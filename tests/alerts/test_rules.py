"""Alert rules over bus events: which events raise which alerts, and no floods."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from ronda.agents.models import Agent
from ronda.agents.sweeper import sweep_agents, sweep_stale_devices
from ronda.core.timeutil import utcnow
from ronda.devices.models import Device
from tests.agents.helpers import enrolled_agent, set_columns
from tests.alerts.helpers import alerts_of, fire, port_event, settle
from tests.conftest import Factory, LiveServer
from tests.devices.inventory_helpers import audit_events
from tests.streams.helpers import make_device, make_scan, next_message, open_ws, ready


async def test_a_risky_port_on_a_known_device_raises_two_alerts_once(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    device = await make_device(client, admin, site_id="site_hq")
    scan_id = await make_scan(factory, admin.tenant_id, started_ago=0)  # the device predates the scan
    await set_columns(factory, Device, device["id"], first_seen=utcnow() - timedelta(days=3))
    for _ in range(2):  # the same trigger twice: still one alert of each rule
        await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 23, "telnet", scan_id))
    await settle(live)
    alerts = await alerts_of(client, admin)
    assert sorted((a["rule"], a["severity"], a["occurrence_count"]) for a in alerts) == [
        ("new_port", "medium", 2), ("risky_service", "high", 2)]
    risky = next(a for a in alerts if a["rule"] == "risky_service")
    assert risky["status"] == "open" and risky["source"] == "scan" and risky["device_id"] == device["id"]
    assert risky["device_ip"] == "10.9.0.5" and risky["site_id"] == "site_hq"
    assert risky["metadata"]["port"] == 23 and risky["metadata"]["risk"] == "Telnet"
    assert "Telnet" in risky["title"] and risky["id"].startswith("alert_")
    assert len(await audit_events(factory, admin.tenant_id, "alert.created", risky["id"])) == 1


async def test_a_port_of_a_device_new_in_this_scan_is_not_a_new_port(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    scan_id = await make_scan(factory, admin.tenant_id, started_ago=30)
    device = await make_device(client, admin)  # first seen after the scan started
    await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 8443, "https", scan_id))
    await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 3389, "", scan_id))
    await settle(live)
    assert [(a["rule"], a["metadata"]["port"]) for a in await alerts_of(client, admin)] == [("risky_service", 3389)]


async def test_new_device_compliance_cve_and_review_rules(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    device = await make_device(client, admin, site_id="site_lab")
    tenant = admin.tenant_id
    await fire(live, "device.discovered", tenant, {"device_id": device["id"], "ip": device["ip"], "mac": None,
                                                   "hostname": device["hostname"], "site_id": "site_lab",
                                                   "source": "scan"})
    await fire(live, "device.compliance_changed", tenant, {
        "device_id": device["id"], "old_status": "compliant", "new_status": "non_compliant", "old_score": 100.0,
        "new_score": 80.0, "checks": {"firewall_enabled": "fail", "disk_encryption": "pass"}})
    for severity, cve in (("critical", "CVE-2024-6387"), ("medium", "CVE-2023-51385")):
        await fire(live, "cve.matched", tenant, {"device_id": device["id"], "cve_id": cve, "severity": severity,
                                                 "cvss_score": 8.1, "cpe": "cpe:2.3:a:openbsd:openssh:9.6:*",
                                                 "source": "scan"})
    await fire(live, "service.review_overdue", tenant, {"service_id": "svc_x", "name": "Slack",
                                                        "owner_id": None, "next_review_date": "2026-01-01"})
    await settle(live)
    by_rule = {a["rule"]: a for a in await alerts_of(client, admin)}
    assert set(by_rule) == {"new_device", "non_compliant", "cve", "review_overdue"}  # a medium CVE raises none
    assert by_rule["new_device"]["site_id"] == "site_lab" and "site_lab" in by_rule["new_device"]["title"]
    assert by_rule["non_compliant"]["metadata"]["failing_checks"] == ["firewall_enabled"]
    assert by_rule["non_compliant"]["metadata"]["previous_state"] == "compliant"
    assert by_rule["cve"]["severity"] == "critical" and by_rule["cve"]["metadata"]["cve_id"] == "CVE-2024-6387"
    assert by_rule["review_overdue"]["source"] == "services" and by_rule["review_overdue"]["device_id"] is None
    # Compliant again: the non-compliance alert resolves itself.
    await fire(live, "device.compliance_changed", tenant, {
        "device_id": device["id"], "old_status": "non_compliant", "new_status": "compliant", "checks": {}})
    await settle(live)
    resolved = (await client.get(f"/api/v1/alerts/{by_rule['non_compliant']['id']}", headers=admin.headers)).json()
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "system"


async def test_other_tenants_never_see_the_alerts(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    other = await factory.user("admin")
    device = await make_device(client, admin)
    await fire(live, "device.port_opened", admin.tenant_id, port_event(device, 445))
    await settle(live)
    [alert] = await alerts_of(client, admin)
    assert await alerts_of(client, other) == []
    response = await client.get(f"/api/v1/alerts/{alert['id']}", headers=other.headers)
    assert response.status_code == 404
    assert (await client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=other.headers)).status_code == 404


async def test_a_silent_agent_goes_offline_once_per_silence(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin)
    long_ago = utcnow() - timedelta(hours=1)
    await set_columns(factory, Agent, agent.agent_id, last_heartbeat_at=long_ago)
    await set_columns(factory, Device, agent.device_id, last_seen=long_ago, is_online=True)
    sessions, bus = live.app.state.sessions, live.app.state.events
    seen: list[str] = []
    unsubscribe = bus.subscribe(lambda e: seen.append(e.type) if e.tenant_id == admin.tenant_id
                                and e.type.endswith(".offline") else None)
    try:
        await sweep_agents(sessions, bus, 90)
        await sweep_agents(sessions, bus, 90)  # the same silence: not announced again
        assert seen == ["agent.offline", "device.offline"]
        # Back (a heartbeat), then silent again: a new transition.
        beat = await client.post("/api/v1/agents/heartbeat", headers=agent.headers, json={})
        assert beat.status_code == 200, beat.text
        await set_columns(factory, Agent, agent.agent_id, last_heartbeat_at=utcnow() - timedelta(minutes=10))
        await sweep_agents(sessions, bus, 90)
        assert seen.count("agent.offline") == 2
    finally:
        unsubscribe()
    await settle(live)
    [alert] = await alerts_of(client, admin, rule="agent_offline")
    assert alert["occurrence_count"] == 2 and alert["device_id"] == agent.device_id


async def test_a_device_whose_reports_went_stale_becomes_unknown(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin)
    report = {"hostname": "stale-box", "os_type": "linux", "os_version": "6.8.0",
              "security": {"disk_encryption": True, "firewall_enabled": True, "screen_lock_enabled": True,
                           "os_up_to_date": True, "antivirus_enabled": True}}
    response = await client.post("/api/v1/devices/report", headers=agent.headers, json=report)
    assert response.status_code in (200, 201), response.text
    await set_columns(factory, Device, agent.device_id, last_report_at=utcnow() - timedelta(days=30))
    seen: list[dict[str, object]] = []
    bus = live.app.state.events
    unsubscribe = bus.subscribe(lambda e: seen.append(e.data) if e.tenant_id == admin.tenant_id
                                and e.type == "device.compliance_changed" else None)
    try:
        await sweep_stale_devices(live.app.state.sessions, bus)
        await sweep_stale_devices(live.app.state.sessions, bus)  # already unknown: no second change
    finally:
        unsubscribe()
    assert [(d["old_status"], d["new_status"]) for d in seen] == [("compliant", "unknown")]
    changes = await audit_events(factory, admin.tenant_id, "device.compliance_changed", agent.device_id)
    assert changes[-1].details["new"] == "unknown"


async def test_the_sweeper_loop_raises_agent_offline_for_websocket_clients(
    client: httpx.AsyncClient, factory: Factory, server_factory: object
) -> None:
    # Offline after 10 s here (90 s on the shared server, so only this one announces the agent).
    server = await server_factory(agent_offline_after=10, sweep_interval=0.1)  # type: ignore[operator]
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin)
    async with open_ws(server.url, "/ws/alerts", token=admin.token, events="alert_created") as ws:
        await ready(ws)
        await set_columns(factory, Agent, agent.agent_id, last_heartbeat_at=utcnow() - timedelta(seconds=30))
        message = await next_message(ws, "alert_created")
    alert = message["data"]["alert"]
    assert (alert["rule"], alert["source"], alert["device_id"]) == ("agent_offline", "agent", agent.device_id)
    assert alert["metadata"]["agent_id"] == agent.agent_id


async def test_concurrent_sweeps_announce_each_change_once(
    client: httpx.AsyncClient, factory: Factory, live: LiveServer
) -> None:
    admin = await factory.user("admin")
    silent = await enrolled_agent(client, admin)
    stale = await enrolled_agent(client, admin)
    report = {"hostname": "stale-2", "os_type": "linux", "os_version": "6.8.0",
              "security": {"disk_encryption": True, "firewall_enabled": False}}
    assert (await client.post("/api/v1/devices/report", headers=stale.headers, json=report)).status_code in (200, 201)
    await set_columns(factory, Agent, silent.agent_id, last_heartbeat_at=utcnow() - timedelta(hours=2))
    await set_columns(factory, Device, stale.device_id, last_report_at=utcnow() - timedelta(days=40))
    sessions, bus = live.app.state.sessions, live.app.state.events
    seen: list[str] = []
    unsubscribe = bus.subscribe(lambda e: seen.append(e.type) if e.tenant_id == admin.tenant_id and e.type in (
        "agent.offline", "device.compliance_changed") else None)
    try:  # as several server processes would, at the same moment
        await asyncio.gather(*(sweep_agents(sessions, bus, 90) for _ in range(3)),
                             *(sweep_stale_devices(sessions, bus) for _ in range(3)))
    finally:
        unsubscribe()
    assert sorted(seen) == ["agent.offline", "device.compliance_changed"]
    await settle(live)
