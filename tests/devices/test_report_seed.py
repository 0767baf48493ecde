"""POST /devices/report with the 004 seed's body, end to end, at the seed's /v1 paths."""

from __future__ import annotations

import httpx

from ronda.devices.models import DeviceData
from tests.agents.helpers import SEED_BODY
from tests.conftest import Factory
from tests.devices.inventory_helpers import audit_events, count_rows


async def test_seed_report_upsert_get_and_data(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    first = await client.post("/v1/devices/report", headers=admin.headers, json=SEED_BODY)
    assert first.status_code == 201, first.text
    device = first.json()
    assert device["id"].startswith("dev_")
    for field in ("device_name", "serial_number", "device_type", "os_type", "os_version"):
        assert device[field] == SEED_BODY[field]
    assert device["user_id"] == admin.id and device["sources"] == ["agent"] and device["vendor"] == "Apple"
    # Three of the five default checks reported as passing, two unknown: nothing failed, more to know.
    compliance = device["compliance"]
    assert compliance["status"] == "needs_review" and compliance["score"] == 100.0
    assert compliance["checks"] == {"disk_encryption": "pass", "firewall_enabled": "pass",
                                    "screen_lock_enabled": "pass", "os_up_to_date": "unknown",
                                    "antivirus_enabled": "unknown"}
    assert compliance["evaluated_at"].endswith("Z")

    again = await client.post("/v1/devices/report", headers=admin.headers, json=SEED_BODY)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == device["id"]
    assert await count_rows(factory, DeviceData, device_id=device["id"]) == 3  # unchanged: no new versions
    assert len(await audit_events(factory, admin.tenant_id, "device.created", device["id"])) == 1
    assert await audit_events(factory, admin.tenant_id, "device.updated", device["id"]) == []

    got = await client.get(f"/v1/devices/{device['id']}", headers=admin.headers)
    assert got.status_code == 200
    body = got.json()
    assert {k: body[k] for k in ("id", "device_name", "serial_number", "device_type", "os_type", "os_version",
                                 "user_id")} == {"id": device["id"], **{k: SEED_BODY[k] for k in (
                                     "device_name", "serial_number", "device_type", "os_type", "os_version")},
                                     "user_id": admin.id}
    assert body["last_seen"].endswith("Z")
    assert {d["data_type"]: d["data"] for d in body["device_data"]} == {
        "security": SEED_BODY["security"], "hardware": SEED_BODY["hardware"], "software": SEED_BODY["software"]}

    security = await client.get(f"/v1/devices/{device['id']}/data/security", headers=admin.headers)
    assert security.status_code == 200 and security.json()["data"] == SEED_BODY["security"]


async def test_my_devices_and_tenant_devices(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    alice = await factory.user("user", tenant_id=admin.tenant_id)
    bob = await factory.user("user", tenant_id=admin.tenant_id)
    mine = await client.post("/v1/devices/report", headers=alice.headers, json=SEED_BODY)
    assert mine.status_code == 201, mine.text
    assert mine.json()["user_id"] == alice.id  # a user reporting owns the device
    other = {**SEED_BODY, "serial_number": "BOB-0001", "device_name": "Bob's laptop"}
    assert (await client.post("/v1/devices/report", headers=bob.headers, json=other)).status_code == 201

    alices = (await client.get("/v1/devices/my-devices", headers=alice.headers)).json()
    assert [d["serial_number"] for d in alices["data"]] == ["C02XL0GTJG5J"]
    assert alices["meta"]["limit"] == 50
    assert {d["data_type"] for d in alices["data"][0]["device_data"]} == {"security", "hardware", "software"}
    lean = (await client.get("/v1/devices/my-devices?include_data=false", headers=alice.headers)).json()
    assert lean["data"][0]["device_data"] is None

    everyone = (await client.get("/v1/devices/tenant-devices", headers=admin.headers)).json()
    assert {d["serial_number"] for d in everyone["data"]} == {"C02XL0GTJG5J", "BOB-0001"}
    bobs = (await client.get(f"/v1/devices/tenant-devices?user_id={bob.id}", headers=admin.headers)).json()
    assert [d["serial_number"] for d in bobs["data"]] == ["BOB-0001"]
    assert (await client.get("/v1/devices/tenant-devices", headers=alice.headers)).status_code == 403
