"""Manual create, get, PUT, PATCH and DELETE of devices: validation, merge conflicts, ownership, audit."""

from __future__ import annotations

import re

import httpx
import pytest

from ronda.agents.models import Agent
from ronda.core.db import transaction
from ronda.devices.models import Device, DeviceData, DeviceEvaluation, DevicePort
from tests.conftest import Factory
from tests.devices.inventory_helpers import (
    DEVICES,
    add_data,
    add_device,
    add_port,
    audit_events,
    count_rows,
)
from tests.support import assert_error

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_manual_create_then_get(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id, login=False)
    body = {
        "device_name": 'MacBook Pro 16"', "hostname": "mbp-ana", "serial_number": " c02xl0gtjg5j ",
        "device_type": "Laptop", "os_type": "macos", "os_version": "14.2.1", "ip": "10.0.0.7",
        "mac": "a4-83-e7-12-34-56", "vendor": "Apple", "site_id": "site_hq", "user_id": owner.id,
        "tags": ["finance", "finance", "remote"], "note": "Issued 2026-01",
    }
    created = await client.post(DEVICES, headers=admin.headers, json=body)
    assert created.status_code == 201, created.text
    device = created.json()
    assert device["id"].startswith("dev_")
    assert device["tenant_id"] == admin.tenant_id
    assert device["mac"] == "A4:83:E7:12:34:56"
    assert device["serial_number"] == "C02XL0GTJG5J"
    assert device["device_type"] == "laptop"
    assert device["tags"] == ["finance", "remote"]
    assert device["sources"] == ["manual"]
    assert device["managed"] is False and device["is_online"] is False
    assert device["compliance"] == {"status": "unknown", "score": None, "checks": {}, "evaluated_at": None}
    assert TIMESTAMP.match(device["last_seen"]) and TIMESTAMP.match(device["first_seen"])

    fetched = await client.get(f"{DEVICES}/{device['id']}", headers=admin.headers)
    assert fetched.status_code == 200
    got = fetched.json()
    # The seed's example fields, with device_data included by default.
    for field in ("id", "device_name", "serial_number", "device_type", "os_type", "os_version", "last_seen",
                  "user_id", "device_data"):
        assert field in got
    assert got["device_data"] == [] and got["user_id"] == owner.id and got["note"] == "Issued 2026-01"

    [record] = await audit_events(factory, admin.tenant_id, "device.created", device["id"])
    assert record.details["source"] == "manual"
    assert record.details["fields"]["serial_number"] == "C02XL0GTJG5J"
    assert record.actor_id == admin.id


@pytest.mark.parametrize("mac", ["a4:83:e7:12:34:56", "A4-83-E7-12-34-56", "a483.e712.3456", "a483e7123456"])
async def test_mac_spellings_are_normalised(client: httpx.AsyncClient, factory: Factory, mac: str) -> None:
    admin = await factory.user("admin")
    response = await client.post(DEVICES, headers=admin.headers, json={"mac": mac})
    assert response.status_code == 201, response.text
    assert response.json()["mac"] == "A4:83:E7:12:34:56"


async def test_ipv6_is_stored_in_its_short_form(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    response = await client.post(DEVICES, headers=admin.headers, json={"ip": "2001:0db8:0000:0000:0000:0000:0000:0001"})
    assert response.status_code == 201 and response.json()["ip"] == "2001:db8::1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device_name": "x", "ip": "10.0.0.300"}, "ip"),
        ({"device_name": "x", "ip": "not an ip"}, "ip"),
        ({"device_name": "x", "mac": "00:11:22:33:44"}, "mac"),
        ({"device_name": "x", "mac": "zz:11:22:33:44:55"}, "mac"),
        ({"device_name": "x", "mac": "00:00:00:00:00:00"}, "mac"),
        ({"device_name": "x", "colour": "blue"}, "colour"),
        ({"device_name": "x", "tags": "one"}, "tags"),
        ({"device_name": "x", "tags": [""]}, "tags"),
        ({"device_name": "x", "tags": [f"t{i}" for i in range(51)]}, "tags"),
        ({"device_name": "x" * 201}, "device_name"),
        ({"device_name": "x", "device_type": "lap top!"}, "device_type"),
        ({"note": "only a note"}, "body"),
        ({}, "body"),
    ],
)
async def test_bad_create_bodies_are_400_and_write_nothing(
    client: httpx.AsyncClient, factory: Factory, body: dict[str, object], field: str
) -> None:
    admin = await factory.user("admin")
    response = await client.post(DEVICES, headers=admin.headers, json=body)
    error = assert_error(response, 400, "BAD_REQUEST")
    assert any(field in str(d.get("field", "")) for d in error["error"]["details"]), error
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 0
    assert await audit_events(factory, admin.tenant_id, "device.created") == []


async def test_owner_must_be_a_user_of_the_tenant(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    stranger = await factory.user("user", login=False)
    for user_id in (stranger.id, "user_nope"):
        response = await client.post(DEVICES, headers=admin.headers, json={"device_name": "x", "user_id": user_id})
        error = assert_error(response, 400, "BAD_REQUEST")
        assert error["error"]["details"][0]["field"] == "user_id"
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 0


async def test_manual_create_matching_an_existing_device_is_409_naming_it(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    t = admin.tenant_id
    by_serial = await add_device(factory, t, serial_number="SN-77", mac="00:11:22:33:44:01")
    by_mac = await add_device(factory, t, mac="00:11:22:33:44:02")
    by_host = await add_device(factory, t, hostname="Printer-3", site_id="site_a")

    async def conflict(body: dict[str, object], device_id: str, field: str) -> None:
        response = await client.post(DEVICES, headers=admin.headers, json=body)
        error = assert_error(response, 409, "CONFLICT")
        assert device_id in error["detail"]
        assert error["error"]["details"][0] == {"field": field, "location": "body",
                                                "reason": "matches an existing device", "device_id": device_id}

    await conflict({"serial_number": "sn-77 "}, by_serial, "serial_number")
    await conflict({"mac": "00-11-22-33-44-02"}, by_mac, "mac")
    await conflict({"hostname": "printer-3", "site_id": "site_a"}, by_host, "hostname")
    # Serial wins over MAC: the MAC belongs to another device, the serial names this one.
    await conflict({"serial_number": "SN-77", "mac": "00:11:22:33:44:02"}, by_serial, "serial_number")
    assert await count_rows(factory, Device, tenant_id=t) == 3

    # Same hostname in another site, a junk serial, or a different serial with a known MAC: new devices.
    other_site = await client.post(DEVICES, headers=admin.headers, json={"hostname": "Printer-3", "site_id": "site_b"})
    assert other_site.status_code == 201, other_site.text
    junk = await client.post(DEVICES, headers=admin.headers,
                             json={"device_name": "a", "serial_number": "To Be Filled By O.E.M."})
    assert junk.status_code == 201 and junk.json()["serial_number"] is None
    moved_nic = await client.post(DEVICES, headers=admin.headers,
                                  json={"serial_number": "SN-99", "mac": "00:11:22:33:44:01"})
    assert moved_nic.status_code == 201, moved_nic.text


async def test_another_tenants_device_is_no_conflict(client: httpx.AsyncClient, factory: Factory) -> None:
    mine = await factory.user("admin")
    theirs = await factory.user("admin")
    await add_device(factory, theirs.tenant_id, serial_number="SHARED-1")
    response = await client.post(DEVICES, headers=mine.headers, json={"serial_number": "SHARED-1"})
    assert response.status_code == 201, response.text


async def test_patch_changes_only_what_is_sent_and_audits_old_and_new(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id, login=False)
    device_id = await add_device(factory, admin.tenant_id, device_name="old", tags=["a"], note="n",
                                 os_version="13.0", managed=True, sources=["agent"])
    response = await client.patch(f"{DEVICES}/{device_id}", headers=admin.headers,
                                  json={"device_name": "new", "tags": ["b", "c"], "user_id": owner.id,
                                        "device_type": "Server", "site_id": "site_dc"})
    assert response.status_code == 200, response.text
    got = response.json()
    assert (got["device_name"], got["tags"], got["user_id"], got["device_type"], got["site_id"]) == (
        "new", ["b", "c"], owner.id, "server", "site_dc")
    assert got["note"] == "n" and got["os_version"] == "13.0" and got["sources"] == ["agent"]
    [record] = await audit_events(factory, admin.tenant_id, "device.updated", device_id)
    assert record.details["changes"] == {
        "device_name": {"old": "old", "new": "new"},
        "tags": {"old": ["a"], "new": ["b", "c"]},
        "user_id": {"old": None, "new": owner.id},
        "device_type": {"old": "laptop", "new": "server"},
        "site_id": {"old": None, "new": "site_dc"},
    }

    # Nothing changes: nothing audited. null owner removes the owner.
    same = await client.patch(f"{DEVICES}/{device_id}", headers=admin.headers, json={"device_name": "new"})
    assert same.status_code == 200
    assert len(await audit_events(factory, admin.tenant_id, "device.updated", device_id)) == 1
    cleared = await client.patch(f"{DEVICES}/{device_id}", headers=admin.headers, json={"user_id": None})
    assert cleared.json()["user_id"] is None

    for bad in ({"os_version": "14"}, {"user_id": "user_nope"}, {"tags": [""]}, {"mac": "00:11:22:33:44:55"}):
        assert_error(await client.patch(f"{DEVICES}/{device_id}", headers=admin.headers, json=bad), 400)
    assert len(await audit_events(factory, admin.tenant_id, "device.updated", device_id)) == 2


async def test_put_replaces_every_editable_field(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    device_id = await add_device(factory, admin.tenant_id, device_name="laptop-1", hostname="lt1", vendor="Dell",
                                 tags=["x"], note="keep?", ip="10.1.1.1", mac="00:AA:BB:CC:DD:01")
    body = {"device_name": "laptop-1b", "hostname": "lt1b", "ip": "10.1.1.2", "mac": "00aa.bbcc.dd02"}
    response = await client.put(f"{DEVICES}/{device_id}", headers=admin.headers, json=body)
    assert response.status_code == 200, response.text
    got = response.json()
    assert (got["device_name"], got["hostname"], got["ip"], got["mac"]) == ("laptop-1b", "lt1b", "10.1.1.2",
                                                                             "00:AA:BB:CC:DD:02")
    assert got["vendor"] is None and got["tags"] == [] and got["note"] is None and got["device_type"] == "unknown"
    [record] = await audit_events(factory, admin.tenant_id, "device.updated", device_id)
    assert record.details["changes"]["vendor"] == {"old": "Dell", "new": None}
    assert record.details["changes"]["mac"] == {"old": "00:AA:BB:CC:DD:01", "new": "00:AA:BB:CC:DD:02"}

    # A replace with nothing that identifies a device is refused; so is one colliding with another device.
    assert_error(await client.put(f"{DEVICES}/{device_id}", headers=admin.headers, json={"note": "x"}), 400)
    other = await add_device(factory, admin.tenant_id, serial_number="OTHER-SN")
    collide = await client.put(f"{DEVICES}/{device_id}", headers=admin.headers,
                               json={"device_name": "laptop-1b", "serial_number": "other-sn"})
    assert other in assert_error(collide, 409, "CONFLICT")["detail"]
    assert len(await audit_events(factory, admin.tenant_id, "device.updated", device_id)) == 1


async def test_delete_removes_the_device_and_everything_hanging_off_it(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    t = admin.tenant_id
    device_id = await add_device(factory, t, device_name="gone", serial_number="DEL-1", managed=True)
    keep_id = await add_device(factory, t, device_name="kept")
    await add_data(factory, t, device_id, "security", {"disk_encryption": True})
    await add_data(factory, t, keep_id, "security", {"disk_encryption": False})
    await add_port(factory, t, device_id, 22)
    async with transaction(factory.runtime.sessions) as session:
        session.add(DeviceEvaluation(tenant_id=t, device_id=device_id, status="compliant", score=100.0, checks={}))
        session.add(Agent(tenant_id=t, device_id=device_id, credential_hash="h" * 64, credential_prefix="agt_x"))

    response = await client.delete(f"{DEVICES}/{device_id}", headers=admin.headers)
    assert response.status_code == 204 and response.content == b""
    assert_error(await client.get(f"{DEVICES}/{device_id}", headers=admin.headers), 404, "NOT_FOUND")
    for model in (DeviceData, DevicePort, DeviceEvaluation, Agent):
        assert await count_rows(factory, model, device_id=device_id) == 0, model
    assert await count_rows(factory, DeviceData, device_id=keep_id) == 1
    [record] = await audit_events(factory, t, "device.deleted", device_id)
    assert record.details["serial_number"] == "DEL-1"
    assert record.details["removed"] == {"data": 1, "ports": 1, "evaluations": 1, "agents": 1}
    # Its serial number is free again.
    assert (await client.post(DEVICES, headers=admin.headers, json={"serial_number": "DEL-1"})).status_code == 201
    assert_error(await client.delete(f"{DEVICES}/{device_id}", headers=admin.headers), 404)
