"""Running agents: reports for their own device only, heartbeats, online state, the list, revocation."""

from __future__ import annotations

import httpx

from ronda.agents.models import Agent
from ronda.devices.models import Device, DeviceData
from tests.agents.helpers import AGENTS, REPORT, enroll, enrolled_agent, make_token, report_body, set_columns
from tests.conftest import Factory
from tests.devices.inventory_helpers import DEVICES, ago, audit_events, count_rows
from tests.support import assert_error


async def test_an_agent_reports_for_its_own_device(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="AGT-1", hostname="lab-1")
    body = report_body("AGT-1", hostname="lab-1", agent_version="1.1.0")
    first = await client.post(REPORT, headers=agent.headers, json=body)
    assert first.status_code == 200, first.text  # enrolment created the device
    device = first.json()
    assert device["id"] == agent.device_id and device["managed"] is True
    assert device["compliance"]["status"] == "compliant" and device["compliance"]["score"] == 100.0
    # Bearer works as well as X-API-Key.
    bearer = await client.post(REPORT, headers={"Authorization": f"Bearer {agent.credential}"}, json=body)
    assert bearer.status_code == 200 and bearer.json()["id"] == agent.device_id
    listed = (await client.get(AGENTS, headers=admin.headers)).json()["data"][0]
    assert listed["agent_version"] == "1.1.0" and listed["last_report_at"]
    # The audit trail names the agent.
    updated = await audit_events(factory, admin.tenant_id, "device.updated", agent.device_id)
    assert updated and all(e.actor_type == "agent" and e.actor_id == agent.agent_id for e in updated)
    changed = await audit_events(factory, admin.tenant_id, "device.compliance_changed", agent.device_id)
    assert [(e.details["old"], e.details["new"]) for e in changed] == [("unknown", "compliant")]


async def test_an_agent_cannot_report_for_another_device(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="MINE-1")
    other = await client.post(REPORT, headers=admin.headers, json=report_body("THEIRS-1", device_name="not yours"))
    other_id = other.json()["id"]
    data_before = await count_rows(factory, DeviceData, tenant_id=admin.tenant_id)

    hijack = await client.post(REPORT, headers=agent.headers, json=report_body("theirs-1", device_name="pwned"))
    assert_error(hijack, 403, "FORBIDDEN")
    assert await count_rows(factory, DeviceData, tenant_id=admin.tenant_id) == data_before
    still = (await client.get(f"{DEVICES}/{other_id}", headers=admin.headers)).json()
    assert still["device_name"] == "not yours"
    mine = (await client.get(f"{DEVICES}/{agent.device_id}", headers=admin.headers)).json()
    assert mine["serial_number"] == "MINE-1" and mine["device_name"] != "pwned"
    # Nor may it hand its device to someone.
    owner = await factory.user("user", tenant_id=admin.tenant_id)
    assert_error(await client.post(REPORT, headers=agent.headers, json=report_body("MINE-1", user_id=owner.id)), 403)
    # An agent of another tenant never sees this tenant's devices: its report lands on its own device.
    foreign_admin = await factory.user("admin")
    foreign = await enrolled_agent(client, foreign_admin, serial_number="FOREIGN-1")
    response = await client.post(REPORT, headers=foreign.headers, json=report_body("THEIRS-1"))
    assert response.status_code == 200 and response.json()["id"] == foreign.device_id
    assert (await client.get(f"{DEVICES}/{other_id}", headers=admin.headers)).json()["serial_number"] == "THEIRS-1"


async def test_agent_credentials_reach_only_reports_and_heartbeats(client: httpx.AsyncClient,
                                                                   factory: Factory) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin)
    for method, path in (("GET", "/api/v1/auth/me"), ("GET", "/api/v1/users/me"), ("GET", DEVICES),
                         ("GET", f"{DEVICES}/{agent.device_id}"), ("GET", AGENTS), ("POST", f"{AGENTS}/tokens"),
                         ("DELETE", f"{AGENTS}/{agent.agent_id}"), ("GET", "/api/v1/tenants/current")):
        response = await client.request(method, path, headers=agent.headers, json={} if method != "GET" else None)
        assert_error(response, 403, "FORBIDDEN")
    assert (await client.post("/v1/agents/heartbeat", headers=agent.headers)).status_code == 200
    # People cannot send heartbeats.
    assert_error(await client.post(f"{AGENTS}/heartbeat", headers=admin.headers), 403, "FORBIDDEN")
    assert_error(await client.post(f"{AGENTS}/heartbeat", headers={"X-API-Key": "rk_agent_" + "0" * 48}), 401)


async def test_heartbeats_and_online_state(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    agent = await enrolled_agent(client, admin, serial_number="HB-1")
    beat = await client.post(f"{AGENTS}/heartbeat", headers=agent.headers, json={"agent_version": "1.0.1"})
    assert beat.status_code == 200, beat.text
    ack = beat.json()
    assert ack["status"] == "ok" and ack["server_time"].endswith("Z") and ack["report_due"] is True
    assert (await client.post(REPORT, headers=agent.headers, json=report_body("HB-1"))).status_code == 200
    assert (await client.post(f"{AGENTS}/heartbeat", headers=agent.headers)).json()["report_due"] is False

    listed = (await client.get(AGENTS, headers=admin.headers)).json()["data"][0]
    assert listed["is_online"] is True and listed["agent_version"] == "1.0.1"
    assert (await client.get(f"{DEVICES}/{agent.device_id}", headers=admin.headers)).json()["is_online"] is True

    # Silent for longer than RONDA_AGENT_OFFLINE_AFTER (90 s): offline, and a report is due again.
    await set_columns(factory, Agent, agent.agent_id, last_heartbeat_at=ago(seconds=120),
                      last_report_at=ago(minutes=20))
    await set_columns(factory, Device, agent.device_id, last_seen=ago(seconds=120))
    assert (await client.get(AGENTS, headers=admin.headers)).json()["data"][0]["is_online"] is False
    assert (await client.get(f"{DEVICES}/{agent.device_id}", headers=admin.headers)).json()["is_online"] is False
    offline = (await client.get(f"{AGENTS}?is_online=false", headers=admin.headers)).json()["data"]
    assert [a["id"] for a in offline] == [agent.agent_id]
    assert (await client.get(f"{AGENTS}?is_online=true", headers=admin.headers)).json()["data"] == []
    ack = (await client.post(f"{AGENTS}/heartbeat", headers=agent.headers)).json()
    assert ack["report_due"] is True
    assert (await client.get(f"{DEVICES}/{agent.device_id}", headers=admin.headers)).json()["is_online"] is True


async def test_offline_after_is_a_setting(server_factory, factory: Factory) -> None:  # type: ignore[no-untyped-def]
    server = await server_factory(agent_offline_after=10)
    admin = await factory.user("admin")
    async with httpx.AsyncClient(base_url=server.url) as http:
        agent = await enrolled_agent(http, admin)
        ack = (await http.post(f"{AGENTS}/heartbeat", headers=agent.headers)).json()
        assert ack["heartbeat_interval"] == 5
        await set_columns(factory, Agent, agent.agent_id, last_heartbeat_at=ago(seconds=15))
        await set_columns(factory, Device, agent.device_id, last_seen=ago(seconds=15))
        assert (await http.get(AGENTS, headers=admin.headers)).json()["data"][0]["is_online"] is False
        assert (await http.get(f"{DEVICES}/{agent.device_id}", headers=admin.headers)).json()["is_online"] is False


async def test_list_revoke_and_visibility(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    alice = await factory.user("user", tenant_id=admin.tenant_id)
    viewer = await factory.user("viewer", tenant_id=admin.tenant_id)
    token = await make_token(client, admin, max_uses=2)
    alices_token = await make_token(client, admin, owner_user_id=alice.id)
    shared = await enroll(client, token["token"])
    hers = await enroll(client, alices_token["token"])

    everything = (await client.get(AGENTS, headers=viewer.headers)).json()
    assert {a["id"] for a in everything["data"]} == {shared.agent_id, hers.agent_id}
    assert [a["id"] for a in (await client.get(AGENTS, headers=alice.headers)).json()["data"]] == [hers.agent_id]
    by_device = (await client.get(f"{AGENTS}?device_id={shared.device_id}", headers=admin.headers)).json()
    assert [a["id"] for a in by_device["data"]] == [shared.agent_id]
    csv = await client.get(AGENTS, headers={**admin.headers, "Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv") and hers.agent_id in csv.text
    assert hers.credential not in csv.text

    assert_error(await client.delete(f"{AGENTS}/{hers.agent_id}", headers=alice.headers), 403, "FORBIDDEN")
    revoked = await client.delete(f"{AGENTS}/{hers.agent_id}", headers=admin.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True and revoked.json()["is_online"] is False
    assert_error(await client.delete(f"{AGENTS}/{hers.agent_id}", headers=admin.headers), 409, "CONFLICT")
    assert_error(await client.post(f"{AGENTS}/heartbeat", headers=hers.headers), 401, "UNAUTHORIZED")
    assert_error(await client.post(REPORT, headers=hers.headers, json=report_body()), 401, "UNAUTHORIZED")
    device = (await client.get(f"{DEVICES}/{hers.device_id}", headers=admin.headers)).json()
    assert device["managed"] is False and device["is_online"] is False
    live = (await client.get(f"{AGENTS}?revoked=false", headers=admin.headers)).json()["data"]
    assert [a["id"] for a in live] == [shared.agent_id]
    assert len(await audit_events(factory, admin.tenant_id, "agent.revoked", hers.agent_id)) == 1
    assert_error(await client.delete(f"{AGENTS}/agt_nope", headers=admin.headers), 404, "NOT_FOUND")
    # Deleting the device removes its agent too; the credential stops working.
    assert (await client.delete(f"{DEVICES}/{shared.device_id}", headers=admin.headers)).status_code == 204
    assert_error(await client.post(f"{AGENTS}/heartbeat", headers=shared.headers), 401, "UNAUTHORIZED")
