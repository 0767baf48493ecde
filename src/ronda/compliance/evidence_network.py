"""Evidence from open ports (scans and agents), network scans and CVE matches (when present)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, select

from ronda.compliance.context import EvidenceContext
from ronda.compliance.exposure import (
    cleartext_clause,
    describe_cleartext,
    describe_risk,
    port_label,
    risky_clause,
)
from ronda.compliance.types import Evidence, ExceptionItem, share_result
from ronda.core.tenancy import tenant_clause
from ronda.devices.models import Device, DevicePort


def _ports_in_period(ctx: EvidenceContext) -> Any:
    d = ctx.dialect
    return and_(tenant_clause(DevicePort, ctx.tenant_id), DevicePort.state == "open",
                DevicePort.first_seen < d.moment(ctx.end), DevicePort.last_seen >= d.moment(ctx.start))


def _exposure(key: str, title: str, clause: Any, describe: Any, note: str) -> Any:
    async def query(ctx: EvidenceContext) -> Evidence:
        in_period = _ports_in_period(ctx)
        flagged = clause()
        devices_with_ports, devices_flagged, ports_flagged = (await ctx.session.execute(
            select(func.count(func.distinct(DevicePort.device_id)),
                   func.count(func.distinct(DevicePort.device_id)).filter(flagged),
                   func.count().filter(flagged)).where(in_period)
        )).one()
        rows = (await ctx.session.execute(
            select(DevicePort.device_id, func.coalesce(Device.device_name, Device.hostname, Device.ip, Device.id),
                   Device.ip, DevicePort.port, DevicePort.protocol, DevicePort.service, DevicePort.first_seen,
                   DevicePort.last_seen)
            .join(Device, Device.id == DevicePort.device_id).where(in_period, flagged)
            .order_by(DevicePort.first_seen, DevicePort.device_id, DevicePort.port).limit(ctx.max_exceptions)
        )).all()
        recent = ctx.end - timedelta(days=1)
        items = []
        for device_id, name, ip, port, protocol, service, first_seen, last_seen in rows:
            label = f"{name} ({ip})" if ip and ip != name else str(name)
            reason = f"{port_label(port, protocol, service)}: {describe(port, service)}"
            closed = last_seen if last_seen is not None and last_seen < recent else None
            items.append(ExceptionItem("device", device_id, label, reason, first_seen, closed))
        total, bad = int(devices_with_ports), int(devices_flagged)
        return Evidence(
            key=key, title=title, source="open ports (scans and agents)",
            result=share_result(total - bad, total), passed=total - bad, total=total, unit="devices",
            exceptions=items, exceptions_total=int(ports_flagged),
            details={"devices_with_open_ports": total, "devices_flagged": bad, "ports_flagged": int(ports_flagged)},
            note=note,
        )

    query.__name__ = f"evidence_{key}"
    return query


risky_services = _exposure(
    "risky_services", "No risky services exposed (Telnet, FTP, SMB, RDP, VNC, databases)", risky_clause,
    lambda port, service: describe_risk(port, service)[2],
    "Devices with open ports seen during the period; exceptions list each risky port, since first seen.")
cleartext_services = _exposure(
    "cleartext_services", "No unencrypted network services", cleartext_clause,
    lambda port, service: f"{describe_cleartext(port, service)} without encryption",
    "Devices with open ports seen during the period; clear-text protocols (HTTP, FTP, Telnet, POP3, IMAP, "
    "LDAP, SNMP ...) are exceptions.")


def optional_model(module: str, name: str) -> Any | None:
    """A model from a domain that may not be installed yet (scans, CVEs): None when absent."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


async def network_scans(ctx: EvidenceContext) -> Evidence:
    """Completed network scans in each week of the period."""
    scan = optional_model("ronda.scans.models", "Scan")
    if scan is None:
        return Evidence(key="network_scans", title="Regular network scans", source="scans", result="not_applicable",
                        passed=0, total=0, unit="weeks", note="Network scanning is not available in this installation.")
    d = ctx.dialect
    start = ctx.start
    weeks_total = max(1, -(-int((ctx.end - start).total_seconds()) // (7 * 86400)))
    week = func.floor(d.seconds(scan.completed_at, d.moment(start)) / (7 * 86400.0))
    in_period = and_(tenant_clause(scan, ctx.tenant_id), scan.status == "completed",
                     scan.completed_at >= d.moment(start), scan.completed_at < d.moment(ctx.end))
    scans, weeks = (await ctx.session.execute(
        select(func.count(), func.count(func.distinct(week))).where(in_period))).one()
    last = await ctx.session.scalar(select(func.max(scan.completed_at)).where(
        tenant_clause(scan, ctx.tenant_id), scan.status == "completed", scan.completed_at < d.moment(ctx.end)))
    weeks = int(weeks)
    items = []
    if weeks < weeks_total:
        items.append(ExceptionItem("network", None, "scan schedule",
                                   f"{weeks_total - weeks} of {weeks_total} weeks without a completed scan", last))
    return Evidence(
        key="network_scans", title="Regular network scans", source="scans",
        result=share_result(weeks, weeks_total, pass_at=0.75, fail_below=0.25), passed=weeks, total=weeks_total,
        unit="weeks", exceptions=items, exceptions_total=len(items),
        details={"scans_completed": int(scans), "last_completed": last.isoformat() if last else None},
        note="Weeks of the period with at least one completed discovery or vulnerability scan.",
    )


async def vulnerabilities(ctx: EvidenceContext) -> Evidence:
    """Devices without open critical or high CVE matches (when the CVE tables exist)."""
    from ronda.compliance.cve_source import cve_evidence

    return await cve_evidence(ctx)
