"""Enrolment tokens and POST /agents/enroll: expiry, maximum uses, revocation, wrong tokens, merging."""

from __future__ import annotations

import asyncio
import re

import httpx

from ronda.agents.models import Agent, EnrollmentToken
from ronda.core.timeutil import utcnow
from ronda.devices.models import Device
from tests.agents.helpers import AGENTS, REPORT, enroll, host_facts, iso_age, make_token, report_body, set_columns
from tests.conftest import Factory
from tests.devices.inventory_helpers import DEVICES, ago, audit_events, count_rows
from tests.support import assert_error


async def test_tokens_create_list_revoke(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id)
    created = await make_token(client, admin, label="Berlin laptops", expires_in_hours=48, max_uses=25,
                               owner_user_id=owner.id, site_id="site_berlin")
    assert re.fullmatch(r"rk_enroll_[0-9a-f]{32}", created["token"])
    assert created["token"].startswith(created["token_prefix"]) and created["uses"] == 0
    assert created["max_uses"] == 25 and created["is_active"] is True and created["owner_user_id"] == owner.id
    assert 47.9 * 3600 < (iso_age(created["expires_at"]) - utcnow()).total_seconds() <= 48 * 3600
    defaults = await make_token(client, admin)
    assert defaults["max_uses"] == 1
    assert 23.9 * 3600 < (iso_age(defaults["expires_at"]) - utcnow()).total_seconds() <= 24 * 3600
    unlimited = await make_token(client, admin, max_uses=None)
    assert unlimited["max_uses"] is None

    listed = (await client.get(f"{AGENTS}/tokens", headers=admin.headers)).json()
    assert listed["meta"]["total"] == 3
    assert all("token" not in item for item in listed["data"])
    assert created["token"] not in str(listed)

    revoked = await client.delete(f"{AGENTS}/tokens/{created['id']}", headers=admin.headers)
    assert revoked.status_code == 200 and revoked.json()["is_active"] is False and revoked.json()["revoked_at"]
    assert_error(await client.delete(f"{AGENTS}/tokens/{created['id']}", headers=admin.headers), 409, "CONFLICT")
    active = (await client.get(f"{AGENTS}/tokens?active=true", headers=admin.headers)).json()
    assert {t["id"] for t in active["data"]} == {defaults["id"], unlimited["id"]}
    csv = await client.get(f"{AGENTS}/tokens?format=csv", headers=admin.headers)
    assert csv.headers["content-type"].startswith("text/csv") and created["token"] not in csv.text
    assert len(await audit_events(factory, admin.tenant_id, "agent.token_created")) == 3
    assert len(await audit_events(factory, admin.tenant_id, "agent.token_revoked", created["id"])) == 1

    for bad in ({"expires_in_hours": 0}, {"expires_in_hours": 8761}, {"max_uses": 0}, {"max_uses": 100_001},
                {"label": "x" * 101}, {"extra": 1}):
        assert_error(await client.post(f"{AGENTS}/tokens", headers=admin.headers, json=bad), 400, "BAD_REQUEST")
    stranger = await factory.user("user")
    bad_owner = await client.post(f"{AGENTS}/tokens", headers=admin.headers, json={"owner_user_id": stranger.id})
    assert_error(bad_owner, 400, "BAD_REQUEST")
    for role in ("user", "analyst", "operator", "viewer"):
        someone = await factory.user(role, tenant_id=admin.tenant_id)
        assert_error(await client.post(f"{AGENTS}/tokens", headers=someone.headers, json={}), 403, "FORBIDDEN")


async def test_enroll_creates_a_managed_device(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id)
    token = await make_token(client, admin, owner_user_id=owner.id, site_id="site_hq", max_uses=2)
    facts = host_facts(mac="3c-22-fb-aa-bb-cc")
    response = await client.post(f"{AGENTS}/enroll", json={"token": token["token"], **facts})
    assert response.status_code == 201, response.text
    body = response.json()
    assert re.fullmatch(r"rk_agent_[0-9a-f]{48}", body["credential"])
    assert body["tenant_id"] == admin.tenant_id and body["agent_id"].startswith("agt_")
    assert body["heartbeat_interval"] == 30 and body["report_interval"] == 900

    device = (await client.get(f"{DEVICES}/{body['device_id']}", headers=admin.headers)).json()
    assert device["hostname"] == facts["hostname"] and device["serial_number"] == facts["serial_number"]
    assert device["mac"] == "3C:22:FB:AA:BB:CC" and device["user_id"] == owner.id and device["site_id"] == "site_hq"
    assert device["managed"] is True and device["sources"] == ["agent"] and device["is_online"] is True
    mine = (await client.get(f"{DEVICES}/my-devices", headers=owner.headers)).json()["data"]
    assert [d["id"] for d in mine] == [body["device_id"]]

    tokens = (await client.get(f"{AGENTS}/tokens", headers=admin.headers)).json()["data"]
    assert tokens[0]["uses"] == 1 and tokens[0]["is_active"] is True
    enrolled = await audit_events(factory, admin.tenant_id, "agent.enrolled", body["agent_id"])
    assert len(enrolled) == 1 and enrolled[0].actor_type == "agent" and enrolled[0].actor_id == body["agent_id"]
    assert body["credential"] not in str(enrolled[0].details)
    assert len(await audit_events(factory, admin.tenant_id, "device.created", body["device_id"])) == 1
    agents = (await client.get(AGENTS, headers=admin.headers)).json()["data"]
    assert [(a["id"], a["device_id"], a["platform"], a["is_online"], a["revoked"]) for a in agents] == [
        (body["agent_id"], body["device_id"], "linux-amd64", True, False)]
    # The netrecon-style field name is accepted too.
    again = await client.post(f"{AGENTS}/enroll", json={"deployment_token": token["token"], **host_facts()})
    assert again.status_code == 201, again.text


async def test_refused_tokens_write_nothing(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    t = admin.tenant_id
    single = await make_token(client, admin)
    await enroll(client, single["token"])
    expired = await make_token(client, admin, max_uses=5)
    await set_columns(factory, EnrollmentToken, expired["id"], expires_at=ago(seconds=1))
    revoked = await make_token(client, admin, max_uses=5)
    await client.delete(f"{AGENTS}/tokens/{revoked['id']}", headers=admin.headers)
    other_tenant = await factory.user("admin")
    foreign = await make_token(client, other_tenant)
    await client.delete(f"{AGENTS}/tokens/{foreign['id']}", headers=other_tenant.headers)

    devices_before = await count_rows(factory, Device, tenant_id=t)
    for secret in (single["token"], expired["token"], revoked["token"], foreign["token"],
                   single["token"][:-1] + ("0" if single["token"][-1] != "0" else "1"), "rk_live_" + "0" * 48,
                   "completely wrong"):
        response = await client.post(f"{AGENTS}/enroll", json={"token": secret, **host_facts()})
        assert_error(response, 401, "UNAUTHORIZED")
    assert await count_rows(factory, Device, tenant_id=t) == devices_before
    assert await count_rows(factory, Agent, tenant_id=t) == 1
    listed = (await client.get(f"{AGENTS}/tokens", headers=admin.headers)).json()["data"]
    uses = {tok["id"]: tok["uses"] for tok in listed}
    assert uses == {single["id"]: 1, expired["id"]: 0, revoked["id"]: 0}
    assert_error(await client.post(f"{AGENTS}/enroll", json={"token": single["token"]}), 400, "BAD_REQUEST")


async def test_max_uses_holds_under_concurrent_enrolments(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    token = await make_token(client, admin, max_uses=3)
    responses = await asyncio.gather(*[
        client.post(f"{AGENTS}/enroll", json={"token": token["token"], **host_facts()}) for _ in range(8)
    ])
    assert sorted(r.status_code for r in responses) == [201] * 3 + [401] * 5
    assert await count_rows(factory, Agent, tenant_id=admin.tenant_id) == 3
    listed = (await client.get(f"{AGENTS}/tokens", headers=admin.headers)).json()["data"][0]
    assert listed["uses"] == 3 and listed["is_active"] is False


async def test_enrolment_merges_with_a_known_device(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    reported = await client.post(REPORT, headers=admin.headers, json=report_body("KNOWN-1"))
    device_id = reported.json()["id"]
    token = await make_token(client, admin, max_uses=3)
    first = await enroll(client, token["token"], serial_number="known-1")
    assert first.device_id == device_id
    device = (await client.get(f"{DEVICES}/{device_id}", headers=admin.headers)).json()
    assert device["managed"] is True and device["sources"] == ["agent"]
    # Reinstalled: the new agent replaces the old one, whose credential stops working.
    second = await enroll(client, token["token"], serial_number="KNOWN-1")
    assert second.device_id == device_id
    assert_error(await client.post(f"{AGENTS}/heartbeat", headers=first.headers), 401, "UNAUTHORIZED")
    assert (await client.post(f"{AGENTS}/heartbeat", headers=second.headers)).status_code == 200
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 1


async def test_enroll_is_rate_limited_per_address(server_factory, factory: Factory) -> None:  # type: ignore[no-untyped-def]
    server = await server_factory(rate_limits="on", login_attempts_per_minute=3)
    async with httpx.AsyncClient(base_url=server.url) as http:
        statuses = [(await http.post(f"{AGENTS}/enroll", json={"token": "rk_enroll_" + "0" * 32, **host_facts()}))
                    .status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
