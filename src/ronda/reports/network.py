"""The network security audit: inventory, open ports and services, risky exposed and unencrypted
services, distribution by device type and CVEs (when the CVE tables exist). All aggregation in SQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.compliance.cve_source import cve_match_model
from ronda.compliance.evidence_network import optional_model
from ronda.compliance.exposure import (
    cleartext_clause,
    describe_cleartext,
    describe_risk,
    risky_clause,
)
from ronda.compliance.sqlfuncs import Dialect
from ronda.core.tenancy import tenant_clause
from ronda.core.timeutil import iso
from ronda.devices.models import Device, DevicePort
from ronda.reports.documents import ReportMeta

LIST_LIMIT = 2000  # risky and unencrypted findings listed (all are counted)
INVENTORY_LIMIT = 20000  # devices listed in the inventory (all are counted)


async def network_document(session: AsyncSession, meta: ReportMeta, site_id: str | None) -> dict[str, Any]:
    d = Dialect(session.get_bind().dialect.name)
    device_scope: list[Any] = [tenant_clause(Device, meta.tenant_id)]
    port_scope: list[Any] = [tenant_clause(DevicePort, meta.tenant_id), DevicePort.state == "open"]
    if meta.start and meta.end:
        start = datetime.combine(meta.start, time(), UTC)
        end = datetime.combine(meta.end + timedelta(days=1), time(), UTC)
        device_scope += [Device.first_seen < d.moment(end), Device.last_seen >= d.moment(start)]
        port_scope += [DevicePort.first_seen < d.moment(end), DevicePort.last_seen >= d.moment(start)]
    if site_id:
        device_scope.append(Device.site_id == site_id)
    devices_in_scope = select(Device.id).where(*device_scope).scalar_subquery()
    port_scope.append(DevicePort.device_id.in_(devices_in_scope))

    total, online, managed = (await session.execute(select(
        func.count(), func.count().filter(Device.is_online.is_(True)), func.count().filter(Device.managed.is_(True)),
    ).where(*device_scope))).one()
    by_type = [{"device_type": t or "unknown", "devices": int(n)} for t, n in (await session.execute(
        select(Device.device_type, func.count()).where(*device_scope).group_by(Device.device_type)
        .order_by(func.count().desc(), Device.device_type))).all()]
    os_name = func.coalesce(Device.os_type, Device.os_guess, "unknown")
    by_os = [{"os": o, "devices": int(n)} for o, n in (await session.execute(
        select(os_name, func.count()).where(*device_scope).group_by(os_name)
        .order_by(func.count().desc(), os_name).limit(25))).all()]
    per_port = func.count(func.distinct(DevicePort.device_id))
    services = [{"port": p, "protocol": proto, "service": svc, "devices": int(n)} for p, proto, svc, n in (
        await session.execute(
            select(DevicePort.port, DevicePort.protocol, DevicePort.service, per_port)
            .where(*port_scope).group_by(DevicePort.port, DevicePort.protocol, DevicePort.service)
            .order_by(per_port.desc(), DevicePort.port).limit(200))).all()]
    open_ports = int(await session.scalar(select(func.count()).select_from(DevicePort).where(*port_scope)) or 0)
    risky = await _findings(session, port_scope, risky_clause(), "risky")
    cleartext = await _findings(session, port_scope, cleartext_clause(), "cleartext")
    inventory = await _inventory(session, device_scope, port_scope)
    cves = await _cves(session, meta.tenant_id, devices_in_scope)
    return {
        "report": {**meta.as_dict(), "type": "network", "title": "Network Security Audit Report", "site_id": site_id},
        "summary": {
            "devices": int(total), "online": int(online), "managed": int(managed), "open_ports": open_ports,
            "risky_services": risky["total"], "unencrypted_services": cleartext["total"],
            "cves": cves["total"] if cves["present"] else None,
        },
        "by_device_type": by_type, "by_os": by_os, "services": services,
        "risky_services": risky, "unencrypted_services": cleartext, "cves": cves,
        "inventory": inventory,
    }


async def _findings(session: AsyncSession, scope: list[Any], clause: Any, kind: str) -> dict[str, Any]:
    where = and_(*scope, clause)
    total = int(await session.scalar(select(func.count()).select_from(DevicePort).where(where)) or 0)
    result = await session.execute(
        select(DevicePort.device_id, func.coalesce(Device.device_name, Device.hostname, Device.ip, Device.id),
               Device.ip, DevicePort.port, DevicePort.protocol, DevicePort.service, DevicePort.version,
               DevicePort.first_seen, DevicePort.last_seen)
        .join(Device, Device.id == DevicePort.device_id).where(where)
        .order_by(DevicePort.port, Device.ip_key.asc().nulls_last(), DevicePort.device_id).limit(LIST_LIMIT))
    items = []
    for device_id, name, ip, port, protocol, service, version, first_seen, last_seen in result.all():
        if kind == "risky":
            label, risk, why = describe_risk(port, service)
        else:
            label, risk, why = describe_cleartext(port, service), "medium", "traffic is not encrypted"
        items.append({"device_id": device_id, "name": name, "ip": ip, "port": port, "protocol": protocol,
                      "service": service or label, "version": version, "risk": risk, "why": why,
                      "first_seen": iso(first_seen), "last_seen": iso(last_seen)})
    # Counted by risk over every finding, not only the listed ones.
    by_risk: dict[str, int] = {}
    for port, service, count in (await session.execute(
            select(DevicePort.port, DevicePort.service, func.count()).where(where)
            .group_by(DevicePort.port, DevicePort.service))).all():
        risk = describe_risk(port, service)[1] if kind == "risky" else "medium"
        by_risk[risk] = by_risk.get(risk, 0) + int(count)
    return {"total": total, "listed": len(items), "by_risk": by_risk, "items": items}


async def _inventory(session: AsyncSession, device_scope: list[Any], port_scope: list[Any]) -> list[dict[str, Any]]:
    devices = (await session.execute(
        select(Device.id, func.coalesce(Device.device_name, Device.hostname, Device.ip, Device.id), Device.ip,
               Device.mac, Device.vendor, Device.device_type, func.coalesce(Device.os_type, Device.os_guess),
               Device.os_version, Device.is_online, Device.managed, Device.compliance_status, Device.last_seen)
        .where(*device_scope).order_by(Device.ip_key.asc().nulls_last(), Device.id).limit(INVENTORY_LIMIT))).all()
    risky_ports = set(_ports_matching(await session.execute(
        select(DevicePort.id).where(*port_scope, risky_clause()))))
    clear_ports = set(_ports_matching(await session.execute(
        select(DevicePort.id).where(*port_scope, cleartext_clause()))))
    ports = (await session.execute(
        select(DevicePort.id, DevicePort.device_id, DevicePort.port, DevicePort.protocol, DevicePort.service,
               DevicePort.version, DevicePort.first_seen, DevicePort.last_seen)
        .where(*port_scope).order_by(DevicePort.device_id, DevicePort.port))).all()
    # Tens of thousands of rows become dicts: off the event loop.
    return await asyncio.to_thread(_assemble, list(devices), list(ports), risky_ports, clear_ports)


def _assemble(devices: list[Any], port_rows: list[Any], risky_ports: set[str],
              clear_ports: set[str]) -> list[dict[str, Any]]:
    ports: dict[str, list[dict[str, Any]]] = {}
    for pid, device_id, port, protocol, service, version, first_seen, last_seen in port_rows:
        risk = describe_risk(port, service) if pid in risky_ports else None
        ports.setdefault(device_id, []).append({
            "port": port, "protocol": protocol, "service": service, "version": version,
            "risk": risk[1] if risk else None, "risk_reason": risk[2] if risk else None,
            "cleartext": pid in clear_ports, "first_seen": iso(first_seen), "last_seen": iso(last_seen)})
    inventory = []
    for (device_id, name, ip, mac, vendor, device_type, os_name, os_version, online, managed, status,
         last_seen) in devices:
        inventory.append({
            "id": device_id, "name": name, "ip": ip, "mac": mac, "vendor": vendor, "device_type": device_type,
            "os": " ".join(p for p in (os_name, os_version) if p) or None, "is_online": online, "managed": managed,
            "compliance_status": status, "last_seen": iso(last_seen), "ports": ports.get(device_id, []),
        })
    return inventory


def _ports_matching(result: Any) -> list[str]:
    return [row[0] for row in result.all()]


async def _cves(session: AsyncSession, tenant_id: str, devices_in_scope: Any) -> dict[str, Any]:
    match = cve_match_model()
    if match is None:
        return {"present": False, "total": 0, "items": []}
    record = optional_model("ronda.cve.models", "CveRecord")
    columns: list[Any] = [match.device_id, func.coalesce(Device.device_name, Device.hostname, Device.ip, Device.id),
                          match.cve_id, match.package, match.first_seen]
    statement = select(*columns).join(Device, Device.id == match.device_id).where(
        tenant_clause(match, tenant_id), match.device_id.in_(devices_in_scope))
    score: Any = None
    if record is not None:
        score = func.coalesce(record.cvss_score, 0)
        statement = statement.outerjoin(record, record.id == match.cve_id).add_columns(record.severity, score)
    total = int(await session.scalar(select(func.count()).select_from(statement.subquery())) or 0)
    order = [score.desc()] if score is not None else []
    rows = (await session.execute(statement.order_by(*order, match.cve_id).limit(LIST_LIMIT))).all()
    items = [{"device_id": r[0], "name": r[1], "cve_id": r[2], "package": r[3], "first_seen": iso(r[4]),
              "severity": (r[5] if len(r) > 5 else None), "cvss_score": (r[6] if len(r) > 6 else None)} for r in rows]
    return {"present": True, "total": total, "items": items}


