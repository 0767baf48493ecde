"""Who may read and change devices: roles, owners, API key scopes, agents, other tenants."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ronda.devices.models import Device
from tests.conftest import Factory
from tests.devices.inventory_helpers import DEVICES, add_data, add_device, audit_events, count_rows
from tests.support import assert_error

READERS = ("super_admin", "admin", "analyst", "operator", "viewer", "user")
WRITERS = ("super_admin", "admin", "user")


def one_device_routes(device_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"{DEVICES}/{device_id}", None),
        ("PUT", f"{DEVICES}/{device_id}", {"device_name": "renamed"}),
        ("PATCH", f"{DEVICES}/{device_id}", {"note": "mine now"}),
        ("DELETE", f"{DEVICES}/{device_id}", None),
        ("GET", f"{DEVICES}/{device_id}/ports", None),
        ("GET", f"{DEVICES}/{device_id}/data/security", None),
        ("GET", f"{DEVICES}/{device_id}/data/security?history=true", None),
        ("GET", f"{DEVICES}/{device_id}/data/firmware", None),
    ]


@pytest.mark.parametrize("role", READERS)
async def test_every_reading_role_sees_the_tenant_and_only_writers_write(
    client: httpx.AsyncClient, factory: Factory, role: str
) -> None:
    admin = await factory.user("admin")
    caller = await factory.user(role, tenant_id=admin.tenant_id)
    owned_by_admin = await add_device(factory, admin.tenant_id, device_name="shared", user_id=admin.id)
    own = await add_device(factory, admin.tenant_id, device_name="own", user_id=caller.id)
    unowned = await add_device(factory, admin.tenant_id, device_name="nobody's")

    listed = {d["id"] for d in (await client.get(DEVICES, headers=caller.headers)).json()["data"]}
    if role == "user":
        assert listed == {own}
        assert_error(await client.get(f"{DEVICES}/{owned_by_admin}", headers=caller.headers), 404, "NOT_FOUND")
    else:
        assert listed == {owned_by_admin, own, unowned}
        assert (await client.get(f"{DEVICES}/{unowned}", headers=caller.headers)).status_code == 200

    create = await client.post(DEVICES, headers=caller.headers, json={"device_name": f"new by {role}"})
    rename = await client.patch(f"{DEVICES}/{own}", headers=caller.headers, json={"device_name": "renamed"})
    if role in WRITERS:
        assert create.status_code == 201, create.text
        assert rename.status_code == 200 and rename.json()["device_name"] == "renamed"
    else:
        assert_error(create, 403, "FORBIDDEN")
        assert_error(rename, 403, "FORBIDDEN")
        assert_error(await client.delete(f"{DEVICES}/{own}", headers=caller.headers), 403, "FORBIDDEN")
        assert_error(await client.put(f"{DEVICES}/{own}", headers=caller.headers, json={"device_name": "x"}), 403)
        assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 3


async def test_a_user_changes_only_name_tags_and_note_of_its_own_devices(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    user = await factory.user("user", tenant_id=admin.tenant_id)
    colleague = await factory.user("user", tenant_id=admin.tenant_id)
    own = await add_device(factory, admin.tenant_id, device_name="mine", user_id=user.id, site_id="site_hq")
    theirs = await add_device(factory, admin.tenant_id, device_name="theirs", user_id=colleague.id)

    ok = await client.patch(f"{DEVICES}/{own}", headers=user.headers,
                            json={"device_name": "Ana's laptop", "tags": ["wfh"], "note": "sticker on lid"})
    assert ok.status_code == 200, ok.text
    assert (ok.json()["device_name"], ok.json()["tags"], ok.json()["note"]) == ("Ana's laptop", ["wfh"],
                                                                                 "sticker on lid")
    [record] = await audit_events(factory, admin.tenant_id, "device.updated", own)
    assert record.actor_id == user.id

    refused: list[dict[str, Any]] = [{"user_id": colleague.id}, {"user_id": None}, {"device_type": "server"},
                                     {"site_id": "site_b"}]
    for change in refused:
        error = assert_error(await client.patch(f"{DEVICES}/{own}", headers=user.headers, json=change), 403)
        assert next(iter(change)) in error["detail"]
    # Sending the unchanged owner is no change at all.
    same = await client.patch(f"{DEVICES}/{own}", headers=user.headers, json={"user_id": user.id, "note": "x"})
    assert same.status_code == 200
    # A full replace may not move the device either (site_id left out would clear it).
    assert_error(await client.put(f"{DEVICES}/{own}", headers=user.headers,
                                  json={"device_name": "x", "user_id": user.id}), 403)
    assert_error(await client.delete(f"{DEVICES}/{own}", headers=user.headers), 403, "FORBIDDEN")

    # A colleague's device does not exist for this user.
    for method, url, body in one_device_routes(theirs):
        response = await client.request(method, url, headers=user.headers, json=body)
        assert_error(response, 404, "NOT_FOUND")

    # A user adds devices only for itself.
    created = await client.post(DEVICES, headers=user.headers, json={"device_name": "phone"})
    assert created.status_code == 201 and created.json()["user_id"] == user.id
    assert_error(await client.post(DEVICES, headers=user.headers,
                                   json={"device_name": "x", "user_id": colleague.id}), 403)
    got = (await client.get(f"{DEVICES}/{theirs}", headers=admin.headers)).json()
    assert got["device_name"] == "theirs" and got["user_id"] == colleague.id


async def test_another_tenants_device_is_not_found_on_every_route(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    mine = await factory.user("admin")
    theirs = await factory.user("admin")
    device_id = await add_device(factory, theirs.tenant_id, device_name="theirs", serial_number="T-1")
    await add_data(factory, theirs.tenant_id, device_id, "security", {"firewall_enabled": True})
    for method, url, body in one_device_routes(device_id):
        assert_error(await client.request(method, url, headers=mine.headers, json=body), 404, "NOT_FOUND")
    assert device_id not in str((await client.get(DEVICES, headers=mine.headers)).json())
    filtered = await client.get(f"{DEVICES}/tenant-devices", headers=mine.headers, params={"user_id": theirs.id})
    assert filtered.json()["data"] == []
    got = (await client.get(f"{DEVICES}/{device_id}", headers=theirs.headers)).json()
    assert got["device_name"] == "theirs" and len(got["device_data"]) == 1
    assert await audit_events(factory, theirs.tenant_id, "device.updated") == []


async def test_unauthenticated_and_agent_callers_are_refused(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    device_id = await add_device(factory, admin.tenant_id, device_name="x")
    routes = [("GET", DEVICES, None), ("POST", DEVICES, {"device_name": "y"}),
              ("GET", f"{DEVICES}/my-devices", None), ("GET", f"{DEVICES}/tenant-devices", None),
              *one_device_routes(device_id)]
    agent = await factory.user("agent", tenant_id=admin.tenant_id)  # holds only the `agent` permission
    bogus_key = {"Authorization": "Bearer rk_live_" + "0" * 48}
    for method, url, body in routes:
        assert_error(await client.request(method, url, json=body), 401, "UNAUTHORIZED")
        assert_error(await client.request(method, url, json=body, headers=bogus_key), 401, "UNAUTHORIZED")
        assert_error(await client.request(method, url, json=body, headers=agent.headers), 403, "FORBIDDEN")
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 1


async def test_api_keys_act_within_their_scopes(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    device_id = await add_device(factory, admin.tenant_id, device_name="x")
    reader = {"X-API-Key": await factory.api_key(admin, ["devices_read"])}
    writer = {"Authorization": "Bearer " + await factory.api_key(admin, ["devices_read", "devices_write"])}
    assert (await client.get(f"/v1/devices/{device_id}", headers=reader)).status_code == 200
    assert (await client.get("/v1/devices/tenant-devices", headers=reader)).status_code == 200
    assert_error(await client.patch(f"{DEVICES}/{device_id}", headers=reader, json={"note": "n"}), 403)
    assert (await client.patch(f"{DEVICES}/{device_id}", headers=writer, json={"note": "n"})).status_code == 200
    [record] = await audit_events(factory, admin.tenant_id, "device.updated", device_id)
    assert record.actor_type == "api_key"
    other = {"X-API-Key": await factory.api_key(admin, ["audit_read"])}
    assert_error(await client.get(DEVICES, headers=other), 403, "FORBIDDEN")



async def test_an_enrolled_agents_credential_cannot_use_the_inventory(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """An agent reports and heartbeats; it never lists, reads or edits devices, not even its own."""
    admin = await factory.user("admin")
    token = (await client.post("/api/v1/agents/tokens", headers=admin.headers, json={"max_uses": 1})).json()["token"]
    enrolled = await client.post("/api/v1/agents/enroll",
                                 json={"token": token, "hostname": "agent-host", "os_type": "linux"})
    assert enrolled.status_code in (200, 201), enrolled.text
    agent = {"Authorization": f"Bearer {enrolled.json()['credential']}"}
    own_device = enrolled.json()["device_id"]
    routes = [("GET", DEVICES, None), ("POST", DEVICES, {"device_name": "y"}),
              ("GET", f"{DEVICES}/my-devices", None), ("GET", f"{DEVICES}/tenant-devices", None),
              *one_device_routes(own_device)]
    for method, url, body in routes:
        assert_error(await client.request(method, url, json=body, headers=agent), 403, "FORBIDDEN")
    # The admin sees the enrolled device as managed, and online while the agent is fresh.
    got = (await client.get(f"{DEVICES}/{own_device}", headers=admin.headers)).json()
    assert got["managed"] is True and got["is_online"] is True and got["hostname"] == "agent-host"
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 1
