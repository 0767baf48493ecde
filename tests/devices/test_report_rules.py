"""POST /devices/report: ownership, merge rules, data versions, ports, audit."""

from __future__ import annotations

from typing import Any

import httpx

from ronda.devices.models import Device, DeviceData, DevicePort
from tests.agents.helpers import REPORT, report_body
from tests.conftest import Factory
from tests.devices.inventory_helpers import DEVICES, add_device, audit_events, count_rows
from tests.support import assert_error


async def _report(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any],
                  status: int | None = None) -> dict[str, Any]:
    response = await client.post(REPORT, headers=headers, json=body)
    if status is not None:
        assert response.status_code == status, response.text
    else:
        assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def test_ownership(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    alice = await factory.user("user", tenant_id=admin.tenant_id)
    bob = await factory.user("user", tenant_id=admin.tenant_id)
    stranger = await factory.user("user")

    # A user may not report a device for someone else...
    refused = await client.post(REPORT, headers=alice.headers, json=report_body("OWN-1", user_id=bob.id))
    assert_error(refused, 403, "FORBIDDEN")
    assert await count_rows(factory, Device, tenant_id=admin.tenant_id) == 0
    # ...but naming itself is fine.
    assert (await _report(client, alice.headers, report_body("OWN-1", user_id=alice.id), 201))["user_id"] == alice.id
    # Bob cannot take over Alice's device by reporting its serial number.
    assert_error(await client.post(REPORT, headers=bob.headers, json=report_body("OWN-1")), 403, "FORBIDDEN")

    # An admin may assign any user of the tenant, and the device moves to that user's list.
    moved = await _report(client, admin.headers, report_body("OWN-1", user_id=bob.id), 200)
    assert moved["user_id"] == bob.id
    bobs = (await client.get(f"{DEVICES}/my-devices", headers=bob.headers)).json()["data"]
    assert [d["id"] for d in bobs] == [moved["id"]]
    assert (await client.get(f"{DEVICES}/my-devices", headers=alice.headers)).json()["data"] == []
    # A user of another tenant is not a user here.
    wrong = await client.post(REPORT, headers=admin.headers, json=report_body("OWN-2", user_id=stranger.id))
    assert any(d["field"] == "user_id" for d in assert_error(wrong, 400, "BAD_REQUEST")["error"]["details"])
    # Without user_id an admin's report keeps the owner of an existing device, and owns a new one.
    assert (await _report(client, admin.headers, report_body("OWN-1"), 200))["user_id"] == bob.id
    assert (await _report(client, admin.headers, report_body("OWN-3"), 201))["user_id"] == admin.id
    # A user may claim an unowned device (e.g. one a scan found).
    found = await add_device(factory, admin.tenant_id, serial_number="SCAN-1", sources=["scan"])
    claimed = await _report(client, alice.headers, report_body("scan-1"), 200)
    assert claimed["id"] == found and claimed["user_id"] == alice.id and claimed["sources"] == ["scan", "agent"]


async def test_readers_and_other_roles_cannot_report(client: httpx.AsyncClient, factory: Factory) -> None:
    for role in ("viewer", "analyst", "operator"):
        user = await factory.user(role)
        assert_error(await client.post(REPORT, headers=user.headers, json=report_body()), 403, "FORBIDDEN")
    assert_error(await client.post(REPORT, json=report_body()), 401, "UNAUTHORIZED")
    admin = await factory.user("admin")
    read_only_key = await factory.api_key(admin, ["devices_read"])
    assert_error(await client.post(REPORT, headers={"X-API-Key": read_only_key}, json=report_body()), 403)
    service_key = await factory.api_key(admin, ["devices_write"], kind="service")
    assert (await client.post(REPORT, headers={"Authorization": f"Bearer {service_key}"},
                              json=report_body())).status_code == 201


async def test_merge_order(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    h = admin.headers
    iface = {"name": "en0", "ip": "10.1.2.3/24", "mac": "3c:22:fb:00:00:01"}
    first = await _report(client, h, report_body("MRG-1", hostname="mbp-anna", network={"interfaces": [iface]}), 201)
    assert first["ip"] == "10.1.2.3" and first["mac"] == "3C:22:FB:00:00:01"
    # Serial numbers compare without case or padding.
    assert (await _report(client, h, report_body(" mrg-1 "), 200))["id"] == first["id"]
    # No serial: the MAC finds it (any spelling).
    by_mac = report_body(None, hostname="renamed",
                         network={"interfaces": [{"name": "en0", "mac": "3C-22-FB-00-00-01"}]})
    del by_mac["serial_number"]
    assert (await _report(client, h, by_mac, 200))["id"] == first["id"]
    # No serial, no MAC: the hostname within the same site.
    by_name = report_body(None, hostname="RENAMED")
    del by_name["serial_number"]
    assert (await _report(client, h, by_name, 200))["id"] == first["id"]
    # The same hostname in another site is another device.
    other_site = report_body(None, hostname="renamed", site_id="site_b")
    del other_site["serial_number"]
    assert (await _report(client, h, other_site, 201))["id"] != first["id"]
    # A different serial never merges by MAC: a second machine with a cloned MAC stays separate.
    clone = await _report(client, h, report_body("MRG-2", network={"interfaces": [iface]}), 201)
    assert clone["id"] != first["id"]
    # A report that names nothing identifying is refused.
    anonymous = report_body(None)
    del anonymous["serial_number"], anonymous["hostname"]
    assert_error(await client.post(REPORT, headers=h, json=anonymous), 400, "BAD_REQUEST")


async def test_data_versions_only_on_change(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    body = report_body("VER-1", custom={"asset_tag": "A-1"})
    device = await _report(client, admin.headers, body, 201)
    device_id = device["id"]
    assert await count_rows(factory, DeviceData, device_id=device_id) == 4
    before = (await client.get(f"{DEVICES}/{device_id}/data/software", headers=admin.headers)).json()

    # Same content with keys in another order: the same version, only confirmed again.
    body["software"] = {"packages": [{"version": "3.0.13", "name": "openssl"}]}
    await _report(client, admin.headers, body, 200)
    assert await count_rows(factory, DeviceData, device_id=device_id) == 4
    after = (await client.get(f"{DEVICES}/{device_id}/data/software", headers=admin.headers)).json()
    assert after["id"] == before["id"] and after["collected_at"] == before["collected_at"]
    assert after["last_seen_at"] > before["last_seen_at"]
    assert await audit_events(factory, admin.tenant_id, "device.updated", device_id) == []

    # New software: one new version of that kind only; the old one stays in the history.
    body["software"] = {"packages": [{"name": "openssl", "version": "3.0.14"}]}
    body["os_version"] = "6.8.1"
    await _report(client, admin.headers, body, 200)
    assert await count_rows(factory, DeviceData, device_id=device_id, data_type="software") == 2
    assert await count_rows(factory, DeviceData, device_id=device_id) == 5
    history = (await client.get(f"{DEVICES}/{device_id}/data/software?history=true", headers=admin.headers)).json()
    assert [v["data"]["packages"][0]["version"] for v in history["data"]] == ["3.0.14", "3.0.13"]
    updated = await audit_events(factory, admin.tenant_id, "device.updated", device_id)
    assert len(updated) == 1
    assert updated[0].details["changes"] == {"os_version": {"old": "6.8.0", "new": "6.8.1"}}
    assert updated[0].details["data_changed"] == ["software"]
    # A bare software list is kept as {"packages": [...]}; sections left out keep their last version.
    await _report(client, admin.headers, {"serial_number": "VER-1", "software": [{"name": "curl"}]}, 200)
    latest = (await client.get(f"{DEVICES}/{device_id}/data/software", headers=admin.headers)).json()
    assert latest["data"] == {"packages": [{"name": "curl"}]}
    got = (await client.get(f"{DEVICES}/{device_id}", headers=admin.headers)).json()
    assert {d["data_type"] for d in got["device_data"]} == {"security", "hardware", "software", "custom"}
    assert got["compliance"]["status"] == "compliant"  # the stored checks still hold


async def test_network_interfaces_and_listening_ports(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    network = {
        "interfaces": [
            {"name": "lo", "ips": ["127.0.0.1", "::1"], "mac": "00:00:00:00:00:00"},
            {"name": "docker0", "ips": ["172.17.0.1"], "mac": "02:42:ac:11:00:01"},
            {"name": "eth0", "ips": ["fe80::1", "192.168.7.20"], "mac": "52:54:00:12:34:56", "state": "up"},
        ],
        "primary_interface": "eth0",
        "listening_ports": [
            {"port": 22, "protocol": "tcp", "process": "sshd", "address": "0.0.0.0"},
            {"port": 22, "protocol": "tcp6", "process": "sshd", "address": "::"},
            {"port": 53, "protocol": "udp", "process": "systemd-resolve", "address": "127.0.0.53"},
            {"port": 631, "protocol": "tcp", "address": "::1"},
            {"port": 5353, "protocol": "udp", "address": "*"},
        ],
    }
    device = await _report(client, admin.headers, report_body("NET-1", network=network), 201)
    assert device["ip"] == "192.168.7.20" and device["mac"] == "52:54:00:12:34:56"
    assert device["open_ports"] == [22, 5353]  # loopback-only listeners are not open ports of the device
    ports = (await client.get(f"{DEVICES}/{device['id']}/ports", headers=admin.headers)).json()["data"]
    assert [(p["port"], p["protocol"], p["process"], p["source"]) for p in ports] == [
        (22, "tcp", "sshd", "agent"), (5353, "udp", None, "agent")]
    stored = (await client.get(f"{DEVICES}/{device['id']}/data/network", headers=admin.headers)).json()["data"]
    assert stored["interfaces"][2]["state"] == "up" and len(stored["listening_ports"]) == 5

    # sshd stops, a web server starts: agent ports follow; a port a scan found stays.
    from tests.devices.inventory_helpers import add_port
    await add_port(factory, admin.tenant_id, device["id"], 8443, source="scan", service="https")
    network["listening_ports"] = [{"port": 80, "protocol": "tcp", "process": "nginx", "address": "0.0.0.0"}]
    again = await _report(client, admin.headers, report_body("NET-1", network=network), 200)
    assert again["open_ports"] == [80, 8443]
    assert await count_rows(factory, DevicePort, device_id=device["id"]) == 2
    changes = (await audit_events(factory, admin.tenant_id, "device.updated", device["id"]))[-1].details["changes"]
    assert changes["open_ports"] == {"old": [22, 5353], "new": [80, 8443]}
