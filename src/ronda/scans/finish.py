"""Closing a scan that finished: its hosts stored, merged into the inventory, the diff, the audit record."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.ids import new_id
from ronda.core.timeutil import utcnow
from ronda.devices.schemas import normalize_mac
from ronda.scanner import PROFILES, PortResult, ScanInputError, ScanResult, parse_ports
from ronda.scans import diff, repository
from ronda.scans.merge import merge_hosts
from ronda.scans.models import Scan, ScanHost

AUDIT_IDS = 500  # device ids listed per kind of change in the scan.completed audit record
BATCH = 500  # rows per bulk insert


def _port_view(port: PortResult) -> dict[str, Any]:
    """A port as the result stores it (dataclasses.asdict deep-copies: slow for thousands of ports)."""
    return {"port": port.port, "protocol": port.protocol, "state": port.state, "service": port.service,
            "product": port.product, "version": port.version, "banner": port.banner, "cpe": list(port.cpe),
            "extra": dict(port.extra)}


async def complete(session: AsyncSession, scan: Scan, result: ScanResult) -> None:
    """Store the hosts, merge them into the inventory, compute the diff, close the scan."""
    now = utcnow()
    try:
        scanned = set(parse_ports(str((scan.options or {}).get("ports") or "")))
    except ScanInputError:
        scanned = set()
    hosts = result.hosts
    hostnames: dict[str, str] = (scan.options or {}).get("hostnames") or {}
    for host in hosts:
        # Without reverse DNS, the name the caller asked for is the best name the host has.
        host.hostname = host.hostname or hostnames.get(host.ip) or None
    outcome = await merge_hosts(session, scan, hosts, scanned, now)
    rows = [
        {
            "id": new_id("sh"), "tenant_id": scan.tenant_id, "scan_id": scan.id,
            "device_id": outcome.device_ids.get(host.ip), "ip": host.ip, "hostname": host.hostname,
            "mac": normalize_mac(host.mac), "vendor": (host.vendor or "")[:200] or None,
            "os_guess": (host.os_guess or "")[:200] or None, "os_confidence": int(host.os_confidence or 0),
            "device_type": (host.device_type or "")[:40] or None,
            "device_type_confidence": int(host.device_type_confidence or 0), "ttl": host.ttl, "rtt_ms": host.rtt_ms,
            "ports": [_port_view(port) for port in sorted(host.ports, key=lambda p: (p.protocol, p.port))],
        }
        for host in hosts
    ]
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(ScanHost), rows[start:start + BATCH])
    previous = await repository.previous_completed(session, scan.tenant_id, scan.target_key, now, scan.id)
    previous_rows = await repository.hosts(session, scan.tenant_id, previous.id) if previous else []
    changes = diff.compute(hosts, previous.id if previous else None, previous_rows, scanned)
    open_total = sum(1 for h in hosts for p in h.ports if p.state == "open")
    scan.status, scan.completed_at, scan.updated_at = "completed", now, now
    scan.progress_percent, scan.estimated_completion = 100.0, None
    scan.hosts_found, scan.ports_found, scan.probes_sent = len(hosts), open_total, result.probes_sent
    scan.hosts_total = result.hosts_total or scan.hosts_total
    scan.diff, scan.previous_scan_id = changes, previous.id if previous else None
    await session.flush()
    await audit.record(session, Actor(tenant_id=scan.tenant_id), "scan.completed", resource_type="scan",
                       resource_id=scan.id, metadata={
                           "requested_by": scan.requested_by, "hosts_found": len(hosts), "ports_found": open_total,
                           # ids of what changed (the first AUDIT_IDS of each; the counts are exact)
                           "devices_created": outcome.created[:AUDIT_IDS], "created_count": len(outcome.created),
                           "devices_updated": outcome.updated[:AUDIT_IDS], "updated_count": len(outcome.updated),
                           "devices_offline": outcome.offline[:AUDIT_IDS], "offline_count": len(outcome.offline),
                           "ports_opened": outcome.ports_opened,
                       })
    events.queue(session, "scan.completed", scan.tenant_id, {
        "scan_id": scan.id, "hosts_found": len(hosts), "ports_found": open_total,
        "diff": {name: changes[name] for name in ("new_hosts", "new_ports", "closed_ports")},
        "enable_cve_match": cve_match(scan),
    })


def cve_match(scan: Scan) -> bool:
    """The caller's enable_cve_match, else the profile's default (deep matches CVEs)."""
    asked = (scan.options or {}).get("enable_cve_match")
    profile = PROFILES.get(scan.profile)
    return bool(asked) if asked is not None else bool(profile and profile.cve_match)
