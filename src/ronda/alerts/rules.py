"""The alert rules: which domain events raise which alert (pure decisions plus the device look-up).

Each rule maps one event to zero or more Triggers; `evaluate` runs inside the alert engine's own
transaction, after the triggering change committed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.alerts.service import Trigger
from ronda.core.events import Event
from ronda.core.tenancy import scoped
from ronda.core.timeutil import as_utc
from ronda.devices.models import Device

# Services that should not face a network unnoticed: port -> (name, severity).
RISKY_PORTS: dict[int, tuple[str, str]] = {
    23: ("Telnet", "high"),
    21: ("FTP", "medium"),
    139: ("SMB (NetBIOS)", "high"),
    445: ("SMB", "high"),
    3389: ("RDP", "high"),
    5900: ("VNC", "high"),
    5901: ("VNC", "high"),
    3306: ("MySQL", "high"),
    5432: ("PostgreSQL", "high"),
    1433: ("Microsoft SQL Server", "high"),
    1521: ("Oracle Database", "high"),
    27017: ("MongoDB", "high"),
    6379: ("Redis", "high"),
    9200: ("Elasticsearch", "high"),
}
# The same services recognised by name on another port.
RISKY_SERVICES: dict[str, tuple[str, str]] = {
    "telnet": ("Telnet", "high"), "ftp": ("FTP", "medium"), "microsoft-ds": ("SMB", "high"),
    "netbios-ssn": ("SMB (NetBIOS)", "high"), "smb": ("SMB", "high"), "ms-wbt-server": ("RDP", "high"),
    "rdp": ("RDP", "high"), "vnc": ("VNC", "high"), "mysql": ("MySQL", "high"),
    "postgresql": ("PostgreSQL", "high"), "ms-sql-s": ("Microsoft SQL Server", "high"),
    "oracle": ("Oracle Database", "high"), "mongodb": ("MongoDB", "high"), "redis": ("Redis", "high"),
    "elasticsearch": ("Elasticsearch", "high"),
}
CVE_SEVERITIES = ("critical", "high")
# Without a scan to compare with, a device first seen this recently is new, not known.
NEW_DEVICE_GRACE = timedelta(seconds=60)

Rule = Callable[[AsyncSession, Event], Awaitable[list[Trigger]]]


async def _device(session: AsyncSession, event: Event) -> Device | None:
    device_id = event.data.get("device_id")
    if not isinstance(device_id, str):
        return None
    return (await session.scalars(scoped(select(Device).where(Device.id == device_id), Device,
                                         event.tenant_id))).one_or_none()


def _label(device: Device | None, data: dict[str, Any]) -> str:
    if device is not None:
        return device.device_name or device.hostname or device.ip or device.id
    return str(data.get("hostname") or data.get("ip") or data.get("device_id") or "unknown device")


def _where(device: Device | None, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "device_id": device.id if device is not None else None,
        "device_ip": (device.ip if device is not None else None) or data.get("ip"),
        "site_id": (device.site_id if device is not None else None) or data.get("site_id"),
    }


async def new_device(session: AsyncSession, event: Event) -> list[Trigger]:
    data = event.data
    device = await _device(session, event)
    site = data.get("site_id") or (device.site_id if device is not None else None)
    source = str(data.get("source") or "scan")
    where = f" on site {site}" if site else ""
    return [Trigger(
        tenant_id=event.tenant_id, rule="new_device", subject=str(data.get("device_id")),
        title=f"New device{where}: {_label(device, data)}", severity="medium" if source == "scan" else "low",
        source=source, description=f"A device not seen before appeared{where} (found by {source}).",
        metadata={k: data.get(k) for k in ("ip", "mac", "hostname", "source") if data.get(k) is not None},
        event_id=event.id, **_where(device, data),
    )]


async def _known_before_scan(session: AsyncSession, device: Device, event: Event) -> bool:
    """Whether the device existed before the scan that found the port (so the port is news, not
    part of a new device's first sighting)."""
    first_seen = as_utc(device.first_seen)
    if first_seen is None:
        return False
    scan_id = event.data.get("scan_id")
    started: datetime | None = None
    if isinstance(scan_id, str):
        from ronda.scans.models import Scan

        statement = select(func.coalesce(Scan.started_at, Scan.created_at)).where(Scan.id == scan_id)
        started = as_utc(await session.scalar(scoped(statement, Scan, event.tenant_id)))
    if started is None:
        started = as_utc(event.occurred_at)
        return started is not None and first_seen < started - NEW_DEVICE_GRACE
    return first_seen < started


def _port_facts(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in ("port", "protocol", "service", "product", "version", "cpe", "scan_id")
            if data.get(k) is not None}


async def port_opened(session: AsyncSession, event: Event) -> list[Trigger]:
    """A new open port on a known device, and (whatever the device) a risky service exposed."""
    data = event.data
    try:
        port = int(data.get("port"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return []
    protocol = str(data.get("protocol") or "tcp")
    device = await _device(session, event)
    label = _label(device, data)
    service = str(data.get("service") or "").lower()
    triggers: list[Trigger] = []
    subject = f"{data.get('device_id') or data.get('ip')}:{port}/{protocol}"
    if device is not None and await _known_before_scan(session, device, event):
        name = f" ({service})" if service else ""
        triggers.append(Trigger(
            tenant_id=event.tenant_id, rule="new_port", subject=subject, severity="medium", source="scan",
            title=f"New open port {port}/{protocol}{name} on {label}",
            description=f"Port {port}/{protocol} is open on a known device where it was not before.",
            metadata=_port_facts(data), event_id=event.id, **_where(device, data)))
    risky = RISKY_PORTS.get(port) if protocol == "tcp" else None
    risky = risky or RISKY_SERVICES.get(service)
    if risky is not None:
        name, severity = risky
        triggers.append(Trigger(
            tenant_id=event.tenant_id, rule="risky_service", subject=subject, severity=severity, source="scan",
            title=f"{name} exposed on {label} ({port}/{protocol})",
            description=f"{name} is reachable on port {port}/{protocol}; it should not be exposed on this network.",
            metadata={**_port_facts(data), "risk": name}, event_id=event.id, **_where(device, data)))
    return triggers


async def compliance_changed(session: AsyncSession, event: Event) -> list[Trigger]:
    data = event.data
    if data.get("new_status") != "non_compliant" or data.get("old_status") == "non_compliant":
        return []
    device = await _device(session, event)
    checks = data.get("checks") or {}
    failing = sorted(k for k, v in checks.items() if v == "fail") if isinstance(checks, dict) else []
    return [Trigger(
        tenant_id=event.tenant_id, rule="non_compliant", subject=str(data.get("device_id")), severity="high",
        source="compliance", title=f"Device non-compliant: {_label(device, data)}",
        description="Failing checks: " + (", ".join(failing) or "see the device's checks"),
        metadata={"previous_state": data.get("old_status"), "failing_checks": failing,
                  "score": data.get("new_score")},
        event_id=event.id, **_where(device, data))]


async def agent_offline(session: AsyncSession, event: Event) -> list[Trigger]:
    data = event.data
    device = await _device(session, event)
    return [Trigger(
        tenant_id=event.tenant_id, rule="agent_offline", subject=str(data.get("agent_id")), severity="medium",
        source="agent", title=f"Agent offline: {_label(device, data)}",
        description="The agent has stopped sending heartbeats.",
        metadata={k: data.get(k) for k in ("agent_id", "last_heartbeat_at") if data.get(k) is not None},
        event_id=event.id, **_where(device, data))]


async def review_overdue(session: AsyncSession, event: Event) -> list[Trigger]:
    data = event.data
    name = data.get("name") or data.get("service_id")
    return [Trigger(
        tenant_id=event.tenant_id, rule="review_overdue",
        subject=f"{data.get('service_id')}:{data.get('next_review_date')}", severity="medium", source="services",
        title=f"Security review overdue: {name}",
        description=f"The review of {name} was due on {data.get('next_review_date')}.",
        metadata={k: data.get(k) for k in ("service_id", "name", "owner_id", "next_review_date")},
        event_id=event.id)]


async def cve_matched(session: AsyncSession, event: Event) -> list[Trigger]:
    data = event.data
    severity = str(data.get("severity") or "").lower()
    if severity not in CVE_SEVERITIES:
        return []
    device = await _device(session, event)
    cve_id = data.get("cve_id")
    return [Trigger(
        tenant_id=event.tenant_id, rule="cve", subject=f"{data.get('device_id')}:{cve_id}", severity=severity,
        source="cve", title=f"{cve_id} ({severity}) affects {_label(device, data)}",
        description=f"{cve_id} matches {data.get('cpe') or 'software'} on this device"
                    + (f" (CVSS {data['cvss_score']})." if data.get("cvss_score") is not None else "."),
        metadata={k: data.get(k) for k in ("cve_id", "cvss_score", "cpe", "source") if data.get(k) is not None},
        event_id=event.id, **_where(device, data))]


RULES: dict[str, Rule] = {
    "device.discovered": new_device,
    "device.port_opened": port_opened,
    "device.compliance_changed": compliance_changed,
    "agent.offline": agent_offline,
    "service.review_overdue": review_overdue,
    "cve.matched": cve_matched,
}
