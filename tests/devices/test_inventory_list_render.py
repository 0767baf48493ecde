"""The device list renders each device exactly as GET /devices/{id} does, and its total stays exact.

The list's devices are rendered to JSON by the database (repository.device_json), a single device
by the DeviceRead model (service.to_read): these tests hold the two to the same output for devices
whose every field takes an awkward value, and the kept per-tenant count to the real number of rows
through inserts, deletes and tenants of their own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import delete

from ronda.core.db import transaction
from ronda.devices.models import Device
from tests.conftest import Factory
from tests.devices.inventory_helpers import DEVICES, add_data, add_device, ago


def exact(value: Any) -> Any:
    """JSON values with their types, so 100 (int) and 100.0 (float) differ."""
    if isinstance(value, dict):
        return {key: exact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [exact(item) for item in value]
    return (type(value).__name__, value)


async def odd_devices(factory: Factory, tenant_id: str, owner_id: str) -> list[str]:
    """Devices that exercise every rule of the device view."""
    whole_second = datetime(2026, 1, 4, 10, 30, 0, tzinfo=UTC)
    return [
        # Managed and heard from just now, with a fraction of a second in its timestamps.
        await add_device(factory, tenant_id, device_name='Ana\'s "Mac" \u2013 ünïcode', hostname="mbp", managed=True,
                         is_online=False, last_seen=ago(seconds=2), sources=["agent"], tags=["a", "b c"],
                         open_ports=[22, 443], last_report_at=ago(seconds=2), compliance_status="compliant",
                         compliance_score=100.0, evaluated_at=ago(seconds=2), user_id=owner_id,
                         compliance_checks={"disk_encryption": "pass", "firewall_enabled": "fail",
                                            "antivirus_enabled": "unknown"}),
        # Managed but silent: offline whatever its stored flag says; its last report is stale.
        await add_device(factory, tenant_id, hostname="silent", managed=True, is_online=True,
                         last_seen=ago(days=30), last_report_at=ago(days=30), compliance_status="compliant",
                         compliance_score=33.3, evaluated_at=whole_second, first_seen=whole_second,
                         compliance_checks={"disk_encryption": "maybe", "firewall_enabled": 1, "os_up_to_date": None,
                                            "screen_lock_enabled": "pass"}),
        # Scanned and up; timestamps on a whole second; odd stored values of every JSON column.
        await add_device(factory, tenant_id, ip="fd00::5", is_online=True, device_type="", last_seen=whole_second,
                         first_seen=whole_second, tags=None, open_ports=None, sources=None,
                         compliance_status="no-such-status", compliance_score=0.0,
                         compliance_checks=["pass"], note="line one\nline two\ttab \x01 \\ / end"),
        # Scanned and down, nothing known.
        await add_device(factory, tenant_id, mac="00:11:22:33:44:55", is_online=False, compliance_score=None),
    ]


async def test_each_listed_device_reads_as_it_does_alone(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id, login=False)
    ids = await odd_devices(factory, admin.tenant_id, owner.id)
    await add_data(factory, admin.tenant_id, ids[0], "security", {"disk_encryption": True, "nested": {"x": [1, 2.5]}})
    await add_data(factory, admin.tenant_id, ids[0], "hardware", {"cpu_cores": 10, "model": "21HD"})

    for include_data in ("false", "true"):
        listed = await client.get(DEVICES, headers=admin.headers, params={"include_data": include_data})
        assert listed.status_code == 200, listed.text
        items = {item["id"]: item for item in listed.json()["data"]}
        assert set(items) == set(ids)
        for device_id in ids:
            alone = await client.get(f"{DEVICES}/{device_id}", headers=admin.headers,
                                     params={"include_data": include_data})
            assert alone.status_code == 200, alone.text
            assert exact(items[device_id]) == exact(alone.json()), device_id

    mbp, silent, scanned, down = (items[device_id] for device_id in ids)
    assert mbp["is_online"] is True and silent["is_online"] is False and scanned["is_online"] is True
    assert silent["compliance"]["status"] == "unknown"  # stale report
    assert silent["compliance"]["checks"] == {"screen_lock_enabled": "pass"}
    assert scanned["compliance"] == {"status": "unknown", "score": 0.0, "checks": {}, "evaluated_at": None}
    assert scanned["device_type"] == "unknown" and scanned["tags"] == [] and scanned["first_seen"] == \
        "2026-01-04T10:30:00Z"
    assert mbp["compliance"]["score"] == 100.0 and mbp["device_data"] and down["device_data"] == []


async def test_every_sort_and_filter_renders_the_same_devices(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id, login=False)
    ids = await odd_devices(factory, admin.tenant_id, owner.id)
    alone = {device_id: (await client.get(f"{DEVICES}/{device_id}", headers=admin.headers,
                                          params={"include_data": "false"})).json() for device_id in ids}
    for params in ({"sort": "ip"}, {"sort": "-ip"}, {"sort": "hostname"}, {"is_online": "true"},
                   {"is_online": "false"}, {"user_id": owner.id}, {"search": "mbp"}, {"skip": 1, "limit": 2}):
        listed = await client.get(DEVICES, headers=admin.headers, params=params)
        assert listed.status_code == 200, (params, listed.text)
        for item in listed.json()["data"]:
            assert exact(item) == exact(alone[item["id"]]), params


async def test_total_follows_inserts_and_deletes(client: httpx.AsyncClient, factory: Factory) -> None:
    """The whole tenant's total is the count the database keeps; it never drifts from the rows."""
    admin = await factory.user("admin")
    other = await factory.user("admin")

    async def total(account: Any = admin, **params: Any) -> int:
        response = await client.get(DEVICES, headers=account.headers, params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["meta"]["total"])

    assert await total() == 0
    made = [await add_device(factory, admin.tenant_id, hostname=f"h{n}") for n in range(3)]
    await add_device(factory, other.tenant_id, hostname="elsewhere")
    created = await client.post(DEVICES, headers=admin.headers, json={"hostname": "manual-1"})
    assert created.status_code == 201, created.text
    assert await total() == 4 and await total(other) == 1

    assert (await client.delete(f"{DEVICES}/{made[0]}", headers=admin.headers)).status_code == 204
    assert await total() == 3
    async with transaction(factory.runtime.sessions) as session:  # a bulk delete, straight to the table
        await session.execute(delete(Device).where(Device.id.in_(made[1:])))
    assert await total() == 1
    # The same number a filter that matches everything counts row by row.
    assert await total() == await total(is_online="false") + await total(is_online="true")
    assert await total(other) == 1
