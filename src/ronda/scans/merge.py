"""Merging a completed scan into the device inventory.

Matching is by site: a host matches the site's device with its MAC when the scan learned one,
else the site's device at its IP (unless that device's known MAC says it is another machine).
Devices gain the source "scan"; scan-found ports are upserted (and scan-sourced ports that were
probed and found shut are removed); online devices of the site inside the scanned address set
that did not answer go offline. Every change queues its device event (published after commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core import events
from ronda.core.ids import new_id
from ronda.core.tenancy import scoped
from ronda.devices.models import Device, DevicePort
from ronda.devices.schemas import normalize_mac
from ronda.scanner import HostResult, PortResult
from ronda.scans.models import Scan
from ronda.scans.targets import contains, network_set

SOURCE = "scan"
CHUNK = 500  # values per IN list


@dataclass
class MergeOutcome:
    device_ids: dict[str, str] = field(default_factory=dict)  # ip -> device id
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    ports_opened: int = 0


def _site(site_id: str | None) -> ColumnElement[bool]:
    return Device.site_id.is_(None) if site_id is None else Device.site_id == site_id


def _cut(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


def port_version(port: PortResult) -> str | None:
    text = " ".join(part for part in (port.product, port.version) if part)
    return text[:200] or None


async def _candidates(session: AsyncSession, scan: Scan, ips: list[str], macs: list[str]) -> list[Device]:
    found: list[Device] = []
    for start in range(0, max(len(ips), len(macs), 1), CHUNK):
        clauses = []
        if ips[start:start + CHUNK]:
            clauses.append(Device.ip.in_(ips[start:start + CHUNK]))
        if macs[start:start + CHUNK]:
            clauses.append(Device.mac.in_(macs[start:start + CHUNK]))
        if not clauses:
            continue
        statement = scoped(select(Device).where(_site(scan.site_id), or_(*clauses)), Device, scan.tenant_id)
        found.extend((await session.scalars(statement.order_by(Device.last_seen.desc(), Device.id))).all())
    return list({d.id: d for d in found}.values())


def _match(host: HostResult, mac: str | None, by_mac: dict[str, Device], by_ip: dict[str, list[Device]],
           taken: set[str]) -> Device | None:
    if mac and mac in by_mac and by_mac[mac].id not in taken:
        return by_mac[mac]
    for device in by_ip.get(host.ip, []):
        if device.id in taken:
            continue
        if mac and device.mac and device.mac != mac:
            continue  # the address now belongs to another machine
        return device
    return None


def _new_device(scan: Scan, host: HostResult, mac: str | None, now: datetime) -> dict[str, Any]:
    """A new device's row (inserted in bulk with the others of the scan)."""
    return {
        "id": new_id("dev"), "tenant_id": scan.tenant_id, "site_id": scan.site_id,
        "hostname": _cut(host.hostname, 255), "ip": host.ip, "mac": mac, "vendor": _cut(host.vendor, 200),
        "os_guess": _cut(host.os_guess, 200), "device_type": _cut(host.device_type, 40) or "unknown", "tags": [],
        "open_ports": sorted({p.port for p in host.ports if p.state == "open"}), "sources": [SOURCE],
        "managed": False, "is_online": True, "first_seen": now, "last_seen": now, "created_at": now,
        "updated_at": now, "compliance_status": "unknown", "compliance_checks": {},
    }


def _port_row(scan: Scan, device_id: str, port: PortResult, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id("port"), "tenant_id": scan.tenant_id, "device_id": device_id, "port": port.port,
        "protocol": port.protocol, "state": "open", "service": _cut(port.service, 64), "version": port_version(port),
        "banner": port.banner, "cpe": port.cpe[0][:300] if port.cpe else None, "source": SOURCE,
        "first_seen": now, "last_seen": now,
    }


def _opened(scan: Scan, device_id: str, ip: str, port: PortResult, cpe: str | None) -> dict[str, Any]:
    """The device.port_opened event's data."""
    return {"device_id": device_id, "ip": ip, "port": port.port, "protocol": port.protocol,
            "service": port.service, "product": port.product, "version": port.version, "cpe": cpe,
            "scan_id": scan.id}


def _updates(device: Device, host: HostResult, mac: str | None) -> dict[str, Any]:
    """What the scan changes on a known device. An agent-managed device keeps what its agent reports."""
    wanted: dict[str, Any] = {}
    managed = bool(device.managed)
    if host.hostname and not managed:
        wanted["hostname"] = _cut(host.hostname, 255)
    if mac and not device.mac:
        wanted["mac"] = mac
    if host.vendor and (not managed or not device.vendor):
        wanted["vendor"] = _cut(host.vendor, 200)
    if host.os_guess:
        wanted["os_guess"] = _cut(host.os_guess, 200)
    if host.device_type and (device.device_type or "unknown") == "unknown":
        wanted["device_type"] = _cut(host.device_type, 40)
    if not managed:
        wanted["ip"] = host.ip
        wanted["is_online"] = True
    if SOURCE not in (device.sources or []):
        wanted["sources"] = [*(device.sources or []), SOURCE]
    return {name: value for name, value in wanted.items() if getattr(device, name) != value}


def _refresh(row: DevicePort, port: PortResult, cpe: str | None) -> None:
    """What the scan learned about a port it found open again (only real changes mark the row dirty)."""
    for name, value in (("service", _cut(port.service, 64)), ("version", port_version(port)),
                        ("banner", port.banner), ("cpe", cpe)):
        if value and getattr(row, name) != value:
            setattr(row, name, value)


async def _sync_ports(
    session: AsyncSession, scan: Scan, device: Device, host: HostResult, rows: list[DevicePort],
    scanned: set[int], now: datetime, seen_again: list[str],
) -> int:
    """Upsert the host's open ports on the device; returns how many opened. Rows that were open and
    still are go into `seen_again` (their last_seen is moved in one statement for the whole scan)."""
    existing = {(row.port, row.protocol): row for row in rows}
    opened = 0
    open_now = {(p.port, p.protocol): p for p in host.ports if p.state == "open"}
    for key, port in open_now.items():
        row = existing.get(key)
        cpe = port.cpe[0][:300] if port.cpe else None
        if row is not None and row.state == "open":
            _refresh(row, port, cpe)
            seen_again.append(row.id)
            continue
        if row is None:
            row = DevicePort(id=new_id("port"), tenant_id=scan.tenant_id, device_id=device.id, port=key[0],
                             protocol=key[1], state="open", source=SOURCE, first_seen=now, last_seen=now)
            session.add(row)
            existing[key] = row
        row.state, row.last_seen = "open", now
        _refresh(row, port, cpe)
        opened += 1
        events.queue(session, "device.port_opened", scan.tenant_id, _opened(scan, device.id, host.ip, port, cpe))
    for key, row in list(existing.items()):
        # A port this scan probed and found shut: gone, if a scan is what said it was open.
        if key not in open_now and row.source == SOURCE and key[1] == "tcp" and key[0] in scanned:
            await session.delete(row)
            del existing[key]
    ports = sorted({key[0] for key, row in existing.items() if row.state == "open"})
    if ports != list(device.open_ports or []):
        device.open_ports = ports
    return opened


async def _ports_of(session: AsyncSession, tenant_id: str, device_ids: list[str]) -> dict[str, list[DevicePort]]:
    out: dict[str, list[DevicePort]] = {device_id: [] for device_id in device_ids}
    for start in range(0, len(device_ids), CHUNK):
        statement = scoped(select(DevicePort).where(DevicePort.device_id.in_(device_ids[start:start + CHUNK])),
                           DevicePort, tenant_id)
        for row in (await session.scalars(statement)).all():
            out[row.device_id].append(row)
    return out


async def merge_hosts(
    session: AsyncSession, scan: Scan, hosts: Sequence[HostResult], scanned: set[int], now: datetime,
) -> MergeOutcome:
    outcome = MergeOutcome()
    macs = {host.ip: normalize_mac(host.mac) for host in hosts}
    candidates = await _candidates(session, scan, [h.ip for h in hosts], sorted({m for m in macs.values() if m}))
    by_mac = {d.mac: d for d in reversed(candidates) if d.mac}
    by_ip: dict[str, list[Device]] = {}
    for device in candidates:
        if device.ip:
            by_ip.setdefault(device.ip, []).append(device)
    taken: set[str] = set()
    matched: list[tuple[HostResult, Device]] = []
    new_devices: list[dict[str, Any]] = []
    new_ports: list[dict[str, Any]] = []
    for host in hosts:
        mac = macs[host.ip]
        found = _match(host, mac, by_mac, by_ip, taken)
        if found is None:
            row = _new_device(scan, host, mac, now)
            new_devices.append(row)
            device_id = str(row["id"])
            outcome.created.append(device_id)
            events.queue(session, "device.discovered", scan.tenant_id, {
                "device_id": device_id, "ip": host.ip, "mac": mac, "hostname": row["hostname"],
                "site_id": scan.site_id, "source": SOURCE,
            })
            for port in {(p.port, p.protocol): p for p in host.ports if p.state == "open"}.values():
                new_ports.append(_port_row(scan, device_id, port, now))
                events.queue(session, "device.port_opened", scan.tenant_id,
                             _opened(scan, device_id, host.ip, port, new_ports[-1]["cpe"]))
            outcome.ports_opened += len(row["open_ports"])
        else:
            device = found
            device_id = device.id
            wanted = _updates(device, host, mac)
            changes = {name: {"old": getattr(device, name), "new": value} for name, value in wanted.items()}
            for name, value in wanted.items():
                setattr(device, name, value)
            if not device.managed:
                device.last_seen = now
            if changes:
                device.updated_at = now
                outcome.updated.append(device.id)
                events.queue(session, "device.updated", scan.tenant_id, {
                    "device_id": device.id, "changes": changes, "source": SOURCE, "scan_id": scan.id})
            matched.append((host, device))
        taken.add(device_id)
        outcome.device_ids[host.ip] = device_id
    # New devices and their ports in bulk: a /24 is two statements, not hundreds of ORM objects.
    for start in range(0, len(new_devices), CHUNK):
        await session.execute(insert(Device), new_devices[start:start + CHUNK])
    for start in range(0, len(new_ports), CHUNK):
        await session.execute(insert(DevicePort), new_ports[start:start + CHUNK])
    ports = await _ports_of(session, scan.tenant_id, [device.id for _, device in matched])
    seen_again: list[str] = []
    for host, device in matched:
        outcome.ports_opened += await _sync_ports(session, scan, device, host, ports.get(device.id, []), scanned,
                                                  now, seen_again)
    for start in range(0, len(seen_again), CHUNK):
        await session.execute(
            scoped(update(DevicePort).where(DevicePort.id.in_(seen_again[start:start + CHUNK])), DevicePort,
                   scan.tenant_id).values(last_seen=now).execution_options(synchronize_session=False)
        )
    await _mark_offline(session, scan, taken, now, outcome)
    await session.flush()
    return outcome


async def _mark_offline(
    session: AsyncSession, scan: Scan, seen: set[str], now: datetime, outcome: MergeOutcome
) -> None:
    """Online, scan-tracked devices of the site inside the scanned set that did not answer."""
    networks = network_set(scan.networks or [])
    statement: Select[Any] = select(Device.id, Device.ip)  # type: ignore[assignment]
    statement = scoped(
        statement.where(_site(scan.site_id), Device.managed.is_(False), Device.is_online.is_(True),
                                           Device.ip.is_not(None)),
        Device, scan.tenant_id,
    )
    gone = [device_id for device_id, ip in (await session.execute(statement)).all()
            if device_id not in seen and ip and contains(networks, ip)]
    for start in range(0, len(gone), CHUNK):
        chunk = gone[start:start + CHUNK]
        await session.execute(
            scoped(update(Device).where(Device.id.in_(chunk)), Device, scan.tenant_id)
            .values(is_online=False, updated_at=now).execution_options(synchronize_session=False)
        )
    for device_id in gone:
        events.queue(session, "device.offline", scan.tenant_id, {"device_id": device_id, "site_id": scan.site_id})
    outcome.offline.extend(gone)
