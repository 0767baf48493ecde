"""GET /devices/{id}/ports and /devices/{id}/data/{data_type}: latest, as of a moment, history; data retention."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from ronda.core.db import transaction
from ronda.devices import repository
from ronda.devices.models import DeviceData
from tests.conftest import Factory
from tests.devices.inventory_helpers import DEVICES, add_data, add_device, add_port, count_rows
from tests.support import assert_error


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 1, day, hour, 0, tzinfo=UTC)


async def test_ports(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    t = admin.tenant_id
    device_id = await add_device(factory, t, hostname="web-1", open_ports=[22, 443])
    other = await add_device(factory, t, hostname="web-2")
    await add_port(factory, t, device_id, 443, service="https", version="nginx 1.24", cpe="cpe:/a:nginx:nginx:1.24",
                   banner="HTTP/1.1 200 OK", source="scan")
    await add_port(factory, t, device_id, 22, service="ssh", version="OpenSSH 9.6", process="sshd")
    await add_port(factory, t, device_id, 53, protocol="udp", service="domain")
    await add_port(factory, t, other, 8080)

    response = await client.get(f"{DEVICES}/{device_id}/ports", headers=admin.headers)
    assert response.status_code == 200, response.text
    ports = response.json()["data"]
    assert [(p["port"], p["protocol"]) for p in ports] == [(22, "tcp"), (53, "udp"), (443, "tcp")]
    ssh = ports[0]
    assert ssh["service"] == "ssh" and ssh["process"] == "sshd" and ssh["state"] == "open" and ssh["source"] == "agent"
    assert ports[2]["cpe"] == "cpe:/a:nginx:nginx:1.24" and ports[2]["banner"] == "HTTP/1.1 200 OK"
    assert set(ssh) >= {"port", "protocol", "state", "service", "version", "banner", "cpe", "process", "source",
                        "first_seen", "last_seen"}
    assert ssh["first_seen"].endswith("Z")
    none = await client.get(f"{DEVICES}/{await add_device(factory, t)}/ports", headers=admin.headers)
    assert none.json() == {"data": []}
    assert_error(await client.get(f"{DEVICES}/dev_nope/ports", headers=admin.headers), 404, "NOT_FOUND")


async def test_latest_data_by_type(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    t = admin.tenant_id
    device_id = await add_device(factory, t, device_name="mbp")
    await add_data(factory, t, device_id, "software", {"apps": ["old"]}, collected_at=at(1))
    newest = await add_data(factory, t, device_id, "software", {"apps": ["new"]}, collected_at=at(5),
                            last_seen_at=at(9))
    await add_data(factory, t, device_id, "hardware", {"ram_gb": 32}, collected_at=at(6))

    response = await client.get(f"{DEVICES}/{device_id}/data/software", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": newest, "data_type": "software", "data": {"apps": ["new"]},
                               "collected_at": "2026-01-05T12:00:00Z", "last_seen_at": "2026-01-09T12:00:00Z"}
    # The seed's path form.
    seed = await client.get(f"/v1/devices/{device_id}/data/hardware", headers=admin.headers)
    assert seed.json()["data"] == {"ram_gb": 32}

    missing = assert_error(await client.get(f"{DEVICES}/{device_id}/data/network", headers=admin.headers), 404)
    assert "network" in missing["detail"]
    unknown = assert_error(await client.get(f"{DEVICES}/{device_id}/data/firmware", headers=admin.headers), 400,
                           "BAD_REQUEST")
    for valid in ("security", "hardware", "software", "network", "custom"):
        assert valid in unknown["detail"]
    assert_error(await client.get(f"{DEVICES}/dev_nope/data/software", headers=admin.headers), 404, "NOT_FOUND")


async def test_data_as_it_was_at_a_moment(client: httpx.AsyncClient, factory: Factory) -> None:
    """Compliance reports ask what was true on a given day."""
    admin = await factory.user("admin")
    t = admin.tenant_id
    device_id = await add_device(factory, t, device_name="mbp")
    off = await add_data(factory, t, device_id, "security", {"disk_encryption": False}, collected_at=at(2, 9))
    on = await add_data(factory, t, device_id, "security", {"disk_encryption": True}, collected_at=at(4, 15))
    url = f"{DEVICES}/{device_id}/data/security"

    async def version(moment: str) -> str:
        response = await client.get(url, headers=admin.headers, params={"at": moment})
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    assert await version("2026-01-03") == off  # a date means the end of that UTC day
    assert await version("2026-01-04") == on  # changed that afternoon: true by the end of the day
    assert await version("2026-01-04T15:00:00Z") == on
    assert await version("2026-01-04T14:59:59Z") == off
    assert await version("2026-01-04T16:59:59+02:00") == off  # 14:59:59 UTC
    assert await version("2026-01-04T15:00:00") == on  # no offset: UTC
    assert await version("2026-02-01") == on
    before = assert_error(await client.get(url, headers=admin.headers, params={"at": "2026-01-01"}), 404)
    assert "as of 2026-01-01" in before["detail"]
    for bad in ("yesterday", "2026-13-01", "2026-01-04T25:00"):
        assert_error(await client.get(url, headers=admin.headers, params={"at": bad}), 400, "BAD_REQUEST")


async def test_history_lists_every_version_newest_first(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    t = admin.tenant_id
    device_id = await add_device(factory, t, device_name="mbp")
    versions = [await add_data(factory, t, device_id, "software", {"v": day}, collected_at=at(day))
                for day in range(1, 6)]
    await add_data(factory, t, device_id, "hardware", {"v": 0})
    url = f"{DEVICES}/{device_id}/data/software"
    everything = (await client.get(url, headers=admin.headers, params={"history": "true"})).json()
    assert [row["id"] for row in everything["data"]] == versions[::-1]
    assert everything["meta"]["total"] == 5
    page = (await client.get(url, headers=admin.headers, params={"history": "true", "page": 2, "per_page": 2})).json()
    assert [row["data"]["v"] for row in page["data"]] == [3, 2]
    until = (await client.get(url, headers=admin.headers, params={"history": "true", "at": "2026-01-02"})).json()
    assert [row["data"]["v"] for row in until["data"]] == [2, 1]
    empty = (await client.get(f"{DEVICES}/{device_id}/data/custom", headers=admin.headers,
                              params={"history": "true"})).json()
    assert empty["data"] == [] and empty["meta"]["total"] == 0
    assert_error(await client.get(url, headers=admin.headers, params={"history": "true", "per_page": 5000}), 400)


async def test_pruning_keeps_what_was_current_inside_the_window(factory: Factory) -> None:
    """Superseded versions go once they stopped being current before the cutoff; the latest always stays."""
    admin = await factory.user("admin")
    t = admin.tenant_id
    device_id = await add_device(factory, t)
    other = await add_device(factory, t)
    first = await add_data(factory, t, device_id, "software", {"v": 1}, collected_at=at(1))
    second = await add_data(factory, t, device_id, "software", {"v": 2}, collected_at=at(5))
    third = await add_data(factory, t, device_id, "software", {"v": 3}, collected_at=at(20))
    lone = await add_data(factory, t, device_id, "hardware", {"v": 1}, collected_at=at(1))
    untouched = await add_data(factory, t, other, "software", {"v": 1}, collected_at=at(1))
    async with transaction(factory.runtime.sessions) as session:
        assert await repository.prune_history(session, at(10), tenant_id=t, device_id=other) == 0
        # Cutoff day 10: the first version ended on day 5 (gone); the second was current until day 20 (kept).
        assert await repository.prune_history(session, at(10), tenant_id=t) == 1
    async with factory.runtime.sessions() as session:
        left = set((await session.scalars(
            DeviceData.__table__.select().with_only_columns(DeviceData.id).where(DeviceData.tenant_id == t)
        )).all())
    assert left == {second, third, lone, untouched} and first not in left
    assert await count_rows(factory, DeviceData, device_id=other) == 1
