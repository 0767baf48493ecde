"""The merge order every source shares (find_match), the identity normalisers, and the one online rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ronda.core.timeutil import utcnow
from ronda.devices.models import Device
from ronda.devices.repository import find_match
from ronda.devices.schemas import normalize_hostname, normalize_mac, normalize_serial
from ronda.devices.service import effective_online, to_read
from tests.conftest import Factory
from tests.devices.inventory_helpers import add_device


async def match(factory: Factory, tenant_id: str, **facts: object) -> str | None:
    values: dict[str, object] = {"serial_number": None, "mac": None, "hostname": None, "site_id": None}
    values.update(facts)
    async with factory.runtime.sessions() as session:
        device = await find_match(session, tenant_id, **values)  # type: ignore[arg-type]
        return device.id if device else None


async def test_merge_order_serial_then_mac_then_hostname_in_site(factory: Factory) -> None:
    t = await factory.tenant()
    serial = await add_device(factory, t, serial_number="C02XL0GTJG5J", mac="AA:AA:AA:AA:AA:01", hostname="mbp")
    mac = await add_device(factory, t, mac="AA:AA:AA:AA:AA:02", hostname="scan-host")
    host = await add_device(factory, t, hostname="Printer-3", site_id="site_a")
    unsited = await add_device(factory, t, hostname="kiosk")

    assert await match(factory, t, serial_number="  c02xl0gtjg5j ") == serial
    assert await match(factory, t, serial_number="C02XL0GTJG5J", mac="AA:AA:AA:AA:AA:02", hostname="kiosk") == serial
    assert await match(factory, t, mac="aa-aa-aa-aa-aa-02") == mac
    assert await match(factory, t, mac=["00:00:00:00:00:00", "aaaa.aaaa.aa02"]) == mac  # any of several NICs
    assert await match(factory, t, mac="AA:AA:AA:AA:AA:02", hostname="PRINTER-3", site_id="site_a") == mac
    assert await match(factory, t, hostname="printer-3.", site_id="site_a") == host
    assert await match(factory, t, hostname="printer-3", site_id="site_b") is None
    assert await match(factory, t, hostname="printer-3") is None
    assert await match(factory, t, hostname="KIOSK") == unsited
    assert await match(factory, t, hostname="kiosk", site_id="site_a") is None
    # An unknown serial still merges with a serial-less device by MAC (a scan found it first) ...
    assert await match(factory, t, serial_number="NEW-SN", mac="AA:AA:AA:AA:AA:02") == mac
    # ... but never with a device that has a different serial: that is another machine.
    assert await match(factory, t, serial_number="NEW-SN", mac="AA:AA:AA:AA:AA:01") is None
    assert await match(factory, t, serial_number="NEW-SN", hostname="mbp") is None
    assert await match(factory, t, serial_number="NEW-SN") is None
    assert await match(factory, t) is None
    # Another tenant's devices never match; an edit can leave its own device out.
    assert await match(factory, await factory.tenant(), serial_number="C02XL0GTJG5J") is None
    assert await match(factory, t, serial_number="C02XL0GTJG5J", exclude_id=serial) is None


@pytest.mark.parametrize("junk", ["", "   ", "0", "000000", "To Be Filled By O.E.M.", "Default string", "None",
                                  "System Serial Number", "to be filled by o.e.m."])
async def test_junk_serials_never_match(factory: Factory, junk: str) -> None:
    t = await factory.tenant()
    await add_device(factory, t, serial_number=junk)
    assert normalize_serial(junk) is None
    assert await match(factory, t, serial_number=junk) is None


def test_normalisers() -> None:
    assert normalize_serial(" ab 12\t") == "AB 12"
    assert normalize_mac("0011.2233.4455") == "00:11:22:33:44:55"
    assert normalize_mac("00-11-22-33-44-5G") is None
    assert normalize_mac("ff:ff:ff:ff:ff:ff") is None
    assert normalize_mac(None) is None
    assert normalize_hostname(" host.example.com. ") == "host.example.com"
    assert normalize_hostname("  ") is None


def test_online_rule() -> None:
    now = utcnow()
    managed = Device(id="dev_1", tenant_id="t", managed=True, is_online=False, last_seen=now - timedelta(seconds=89))
    assert effective_online(managed, now, 90) is True
    managed.last_seen = now - timedelta(seconds=91)
    managed.is_online = True  # a stale stored flag does not keep an agent's device online
    assert effective_online(managed, now, 90) is False
    scanned = Device(id="dev_2", tenant_id="t", managed=False, is_online=True, last_seen=now - timedelta(days=30))
    assert effective_online(scanned, now, 90) is True
    scanned.is_online = False
    assert effective_online(scanned, now, 90) is False

    managed.first_seen = managed.last_seen
    managed.device_type = "laptop"
    managed.compliance_status = "bogus"
    managed.compliance_checks = {"disk_encryption": "pass", "weird": {"nested": 1}}
    read = to_read(managed, None, now, 90)
    assert read.is_online is False and read.device_data is None
    assert read.compliance.status == "unknown" and read.compliance.checks == {"disk_encryption": "pass"}
    assert to_read(managed, [], now, 3600).is_online is True
