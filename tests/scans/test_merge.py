"""Merging a finished scan into the inventory: matching by site, MAC and IP, ports, offline, events.

The engine's result is built here (every 127.x address answers on loopback, so a host that stops
answering cannot be staged with real sockets); the database and the merge code are the real ones.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ronda.core import events
from ronda.core.db import transaction
from ronda.core.timeutil import utcnow
from ronda.devices.models import Device, DevicePort
from ronda.scanner import HostResult, PortResult, ScanResult
from ronda.scans.finish import complete
from ronda.scans.models import Scan
from tests.conftest import Factory


async def _device(factory: Factory, tenant_id: str, **fields: Any) -> str:
    now = utcnow() - timedelta(hours=1)
    values: dict[str, Any] = {"device_type": "unknown", "tags": [], "open_ports": [], "sources": ["scan"],
                              "managed": False, "is_online": True, "first_seen": now, "last_seen": now,
                              "compliance_status": "unknown", "compliance_checks": {}}
    values.update(fields)
    async with transaction(factory.runtime.sessions) as session:
        device = Device(tenant_id=tenant_id, **values)
        session.add(device)
        await session.flush()
        return device.id


async def test_merge_matches_updates_creates_and_marks_offline(factory: Factory) -> None:
    tenant = await factory.tenant()
    site = f"site_{secrets.token_hex(4)}"
    silent = await _device(factory, tenant, ip="127.0.0.5", site_id=site)
    moved = await _device(factory, tenant, ip="127.0.0.7", mac="02:00:00:00:00:07", site_id=site, vendor=None)
    agent_box = await _device(factory, tenant, ip="127.0.0.4", site_id=site, managed=True, hostname="agent-box",
                              sources=["agent"])
    outside = await _device(factory, tenant, ip="127.0.1.1", site_id=site)
    other_site = await _device(factory, tenant, ip="127.0.0.5", site_id="elsewhere")
    async with transaction(factory.runtime.sessions) as session:
        session.add(DevicePort(tenant_id=tenant, device_id=moved, port=22, protocol="tcp", state="open", source="scan"))
        session.add(DevicePort(tenant_id=tenant, device_id=moved, port=631, protocol="tcp", state="open",
                               source="agent"))
        scan = Scan(tenant_id=tenant, site_id=site, target="127.0.0.0/29", networks=["127.0.0.0/29"],
                    target_key="k" + secrets.token_hex(8), profile="custom", options={"ports": "22,80,443"},
                    status="running", progress_percent=0.0, hosts_total=8, hosts_found=0, ports_found=0,
                    probes_sent=0)
        session.add(scan)
    now = utcnow()
    result = ScanResult(hosts=[
        # the MAC says this is `moved`, now at another address
        HostResult(ip="127.0.0.6", mac="02-00-00-00-00-07", vendor="Acme", hostname="printer.lan",
                   device_type="printer", ports=[PortResult(port=80, service="http", product="nginx", version="1.25",
                                                            cpe=["cpe:2.3:a:f5:nginx:1.25:*:*:*:*:*:*:*"])]),
        HostResult(ip="127.0.0.4", hostname="scanned-name", ports=[PortResult(port=443, service="https")]),
        HostResult(ip="127.0.0.3", ports=[]),
    ], started_at=now, finished_at=now, hosts_total=8, ports_per_host=3, probes_sent=24)
    async with transaction(factory.runtime.sessions) as session:
        loaded = await session.get(Scan, scan.id)
        assert loaded is not None
        await complete(session, loaded, result)
        queued = [(e.type, e.data) for e in session.info.get(events.QUEUE_KEY, [])]
    async with transaction(factory.runtime.sessions, write=False) as session:
        devices = {d.id: d for d in (await session.scalars(select(Device).where(Device.tenant_id == tenant))).all()}
        ports = (await session.scalars(select(DevicePort).where(DevicePort.device_id == moved))).all()
        final = await session.get(Scan, scan.id)
    assert final is not None and final.status == "completed" and final.hosts_found == 3 and final.ports_found == 2

    # Matched by MAC: same device, new address, filled-in facts, online again.
    assert devices[moved].ip == "127.0.0.6" and devices[moved].vendor == "Acme"
    assert devices[moved].hostname == "printer.lan" and devices[moved].device_type == "printer"
    assert devices[moved].is_online is True
    # Port 22 was probed and found shut: the scan's row goes; the agent's 631 stays; 80 is new.
    assert {(p.port, p.source) for p in ports} == {(80, "scan"), (631, "agent")}
    [http] = [p for p in ports if p.port == 80]
    assert http.service == "http" and http.version == "nginx 1.25" and (http.cpe or "").startswith("cpe:2.3:a:f5:nginx")
    assert devices[moved].open_ports == [80, 631]
    # An agent-managed device keeps its own name but learns the scan saw it.
    assert devices[agent_box].hostname == "agent-box" and devices[agent_box].sources == ["agent", "scan"]
    # A new host is a new device of the site.
    [created] = [d for d in devices.values() if d.ip == "127.0.0.3"]
    assert created.site_id == site and created.sources == ["scan"] and created.is_online is True
    # Inside the scanned set and silent: offline. Outside it, or in another site: untouched.
    assert devices[silent].is_online is False
    assert devices[outside].is_online is True and devices[other_site].is_online is True

    types = [t for t, _ in queued]
    assert ("device.discovered", created.id) in [(t, d.get("device_id")) for t, d in queued]
    assert ("device.offline", silent) in [(t, d.get("device_id")) for t, d in queued]
    opened = [d for t, d in queued if t == "device.port_opened"]
    assert {(d["device_id"], d["port"]) for d in opened} == {(moved, 80), (agent_box, 443)}
    assert all(d["scan_id"] == scan.id for d in opened)
    assert types[-1] == "scan.completed"
