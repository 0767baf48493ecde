"""Scan job rules for the API: start (checked, limited, audited, queued), read, result, stop.

Flushes, never commits. The scan itself runs in the runner (runner.py), never on the request path.
"""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.errors import AppError, not_found
from ronda.core.pagination import ListParams, Page, csv_response, fetch_page
from ronda.core.principal import Principal
from ronda.core.responses import json_response
from ronda.core.runtime import Runtime
from ronda.core.timeutil import as_utc, iso, utcnow
from ronda.scanner import ScanInputError
from ronda.scans import leases, repository
from ronda.scans.models import Scan, ScanHost
from ronda.scans.schemas import (
    FINISHED,
    HostRead,
    PortRead,
    ScanDiff,
    ScanOptionsRead,
    ScanRead,
    ScanStart,
)
from ronda.scans.targets import OutsideAllowed, Prepared, prepare
from ronda.sites.service import require_site

PREPARE_TIMEOUT = 20.0  # seconds for resolving host names and checking the target set


# --- how a scan reads ------------------------------------------------------------------------------


def duration_of(scan: Scan) -> float | None:
    started, finished = as_utc(scan.started_at), as_utc(scan.completed_at)
    if started is None:
        return None
    end = finished or utcnow()
    return round(max((end - started).total_seconds(), 0.0), 3)


def to_read(scan: Scan) -> ScanRead:
    options = {k: v for k, v in (scan.options or {}).items() if k in ScanOptionsRead.model_fields}
    return ScanRead(
        id=scan.id, tenant_id=scan.tenant_id, site_id=scan.site_id, target=scan.target, profile=scan.profile,
        status=scan.status,  # type: ignore[arg-type]
        progress_percent=round(float(scan.progress_percent or 0.0), 1), hosts_total=scan.hosts_total,
        hosts_found=scan.hosts_found, ports_found=scan.ports_found, estimated_completion=scan.estimated_completion,
        created_at=scan.created_at, started_at=scan.started_at, completed_at=scan.completed_at,
        duration_seconds=duration_of(scan), error=scan.error, requested_by=scan.requested_by,
        options=ScanOptionsRead.model_validate(options),
    )


def _ip_order(ip: str) -> tuple[int, int]:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0)
    return (address.version, int(address))


def host_read(row: ScanHost) -> HostRead:
    return HostRead(
        ip=row.ip, mac=row.mac, hostname=row.hostname, vendor=row.vendor, os_guess=row.os_guess,
        os_confidence=row.os_confidence, device_type=row.device_type,
        device_type_confidence=row.device_type_confidence, device_id=row.device_id, ttl=row.ttl, rtt_ms=row.rtt_ms,
        ports=[PortRead.model_validate(port) for port in row.ports or []],
    )


# --- start -----------------------------------------------------------------------------------------


def _bad(field: str, message: str) -> AppError:
    return AppError(400, f"Invalid request: {field}: {message}",
                    details=[{"field": field, "location": "body", "reason": message}])


async def _prepare(rt: Runtime, body: ScanStart) -> Prepared:
    try:
        return await asyncio.wait_for(asyncio.to_thread(
            prepare, body.target, body.exclude or [], body.ports_spec(), body.profile,
            max_hosts=rt.settings.scan_max_hosts, allowed_setting=rt.settings.scan_allowed_networks,
        ), PREPARE_TIMEOUT)
    except ScanInputError as exc:
        raise _bad(exc.field, str(exc)) from None
    except OutsideAllowed as exc:
        raise AppError(403, f"Target {exc} is outside the networks this server may scan "
                            "(RONDA_SCAN_ALLOWED_NETWORKS)") from None
    except TimeoutError:
        raise _bad("target", "resolving the targets took too long") from None


def nmap_installed() -> bool:
    try:
        from ronda.scanner.nmap_engine import nmap_available
    except ImportError:
        return False
    return bool(nmap_available())


async def start_scan(
    session: AsyncSession, rt: Runtime, principal: Principal, body: ScanStart, actor: Actor, runner_id: str | None
) -> ScanRead:
    prepared = await _prepare(rt, body)
    if body.engine == "nmap" and not await asyncio.to_thread(nmap_installed):
        raise _bad("engine", "nmap is not installed on this server")
    await repository.lock_tenant(session, principal.tenant_id)
    if body.site_id is not None:
        await require_site(session, principal.tenant_id, body.site_id)
        if await leases.site_has_active_probe(session, principal.tenant_id, body.site_id, utcnow()):
            runner_id = leases.AWAITING_LEASE  # the site's probe takes it (probes/)
    limit = rt.settings.scan_max_concurrent
    if await repository.active_count(session, principal.tenant_id) >= limit:
        raise AppError(429, f"Your tenant already has {limit} scan(s) queued or running; "
                            "wait for one to finish or stop one", headers={"Retry-After": "5"})
    now = utcnow()
    options: dict[str, Any] = {
        "ports": prepared.ports, "port_count": prepared.port_count, "exclude": list(body.exclude or []),
        "timeout_ms": body.timeout_ms, "max_concurrent": body.max_concurrent, "max_rate": body.max_rate,
        "enable_profiling": body.enable_profiling, "enable_cve_match": body.enable_cve_match, "engine": body.engine,
        "ranges": prepared.ranges, "hostnames": prepared.hostnames,
    }
    scan = Scan(
        tenant_id=principal.tenant_id, site_id=body.site_id, target=body.target, networks=prepared.networks,
        target_key=prepared.target_key, profile=body.profile, options=options, status="queued",
        requested_by=principal.actor_id, runner_id=runner_id, heartbeat_at=now, progress_percent=0.0,
        hosts_total=prepared.hosts_total, hosts_found=0, ports_found=0, probes_sent=0, created_at=now,
        updated_at=now,
    )
    session.add(scan)
    await session.flush()
    await audit.record(session, actor, "scan.started", resource_type="scan", resource_id=scan.id, metadata={
        "target": body.target, "profile": body.profile, "site_id": body.site_id, "ports": prepared.ports,
        "hosts_total": prepared.hosts_total,
    })
    # Wakes the runner once this commits (it also polls, so a lost wake-up only delays the start).
    events.queue(session, "scan.queued", principal.tenant_id, {"scan_id": scan.id, "target": body.target,
                                                                "profile": body.profile})
    return to_read(scan)


# --- reads -----------------------------------------------------------------------------------------


async def _visible(session: AsyncSession, principal: Principal, scan_id: str, *, for_update: bool = False) -> Scan:
    scan = await repository.get(session, principal, scan_id, for_update=for_update)
    if scan is None:
        raise not_found("Scan")
    return scan


async def get_scan(session: AsyncSession, principal: Principal, scan_id: str) -> ScanRead:
    return to_read(await _visible(session, principal, scan_id))


SCAN_CSV = ("id", "status", "profile", "site_id", "progress_percent", "hosts_total", "hosts_found", "ports_found",
            "created_at", "started_at", "completed_at", "error")


async def list_scans(
    session: AsyncSession, rt: Runtime, principal: Principal, params: ListParams, *, status: str | None,
    profile: str | None, site_id: str | None,
) -> Page[ScanRead] | Response:
    statement = repository.list_statement(principal, params, status=status, profile=profile, site_id=site_id)
    if params.csv:
        columns: list[tuple[str, Any]] = [("target", lambda scan: _target_text(scan.target))]
        columns.extend((name, _getter(name)) for name in SCAN_CSV)
        return csv_response(rt.sessions, statement, columns, "scans.csv")
    rows, total = await fetch_page(session, statement, params)
    return Page[ScanRead](data=[to_read(row) for row in rows], meta=params.meta(total))


def _getter(name: str) -> Any:
    return lambda scan: getattr(scan, name)


def _target_text(target: Any) -> str:
    return target if isinstance(target, str) else " ".join(str(t) for t in target or [])


PORT_FIELDS: tuple[tuple[str, Any], ...] = (
    ("port", None), ("protocol", "tcp"), ("state", "open"), ("service", None), ("product", None), ("version", None),
    ("banner", None), ("cpe", []), ("extra", {}),
)


def host_view(row: ScanHost) -> dict[str, Any]:
    """HostRead as a plain dict: a /24 with thousands of ports renders without a model per port."""
    return {
        "ip": row.ip, "mac": row.mac, "hostname": row.hostname, "vendor": row.vendor, "os_guess": row.os_guess,
        "os_confidence": row.os_confidence, "device_type": row.device_type,
        "device_type_confidence": row.device_type_confidence, "device_id": row.device_id, "ttl": row.ttl,
        "rtt_ms": row.rtt_ms,
        "ports": [{name: port.get(name, default) for name, default in PORT_FIELDS} for port in row.ports or []],
    }


async def scan_result(session: AsyncSession, principal: Principal, scan_id: str, *, as_csv: bool) -> Response:
    """ScanResultRead as JSON (rendered straight from the rows), or one CSV row per host."""
    scan = await _visible(session, principal, scan_id)
    rows = sorted(await repository.hosts(session, principal.tenant_id, scan.id), key=lambda r: _ip_order(r.ip))
    if as_csv:
        return _result_csv(scan, [host_read(row) for row in rows])
    devices = [host_view(row) for row in rows]
    return json_response({
        "id": scan.id, "status": scan.status, "target": scan.target, "profile": scan.profile,
        "site_id": scan.site_id, "started_at": iso(scan.started_at), "completed_at": iso(scan.completed_at),
        "duration_seconds": duration_of(scan), "devices_found": len(devices),
        "open_ports_total": sum(1 for d in devices for p in d["ports"] if p["state"] == "open"),
        "devices": devices, "diff": ScanDiff.model_validate(scan.diff).model_dump() if scan.diff else None,
        "error": scan.error,
    })


def _result_csv(scan: Scan, devices: list[HostRead]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["ip", "mac", "hostname", "vendor", "os_guess", "device_type", "device_id", "open_ports",
                     "services"])
    for device in devices:
        opened = [p for p in device.ports if p.state == "open"]
        writer.writerow([device.ip, device.mac or "", device.hostname or "", device.vendor or "",
                         device.os_guess or "", device.device_type or "", device.device_id or "",
                         ";".join(str(p.port) for p in opened),
                         ";".join(f"{p.port}/{p.service}" for p in opened if p.service)])
    headers = {"Content-Disposition": f'attachment; filename="{scan.id}-hosts.csv"'}
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


# --- stop ------------------------------------------------------------------------------------------


async def stop_scan(session: AsyncSession, principal: Principal, scan_id: str, actor: Actor) -> ScanRead:
    scan = await _visible(session, principal, scan_id, for_update=True)
    if scan.status in FINISHED:
        raise AppError(409, f"Scan {scan.id} is already {scan.status}",
                       details=[{"field": "status", "location": "path", "reason": f"the scan is {scan.status}"}])
    previous = scan.status
    now = utcnow()
    scan.status = "cancelled"
    scan.completed_at = now
    scan.estimated_completion = None
    scan.updated_at = now
    await session.flush()
    await audit.record(session, actor, "scan.stopped", resource_type="scan", resource_id=scan.id,
                       metadata={"previous_status": previous, "progress_percent": scan.progress_percent})
    # The runner hears this after commit and kills the scan's process.
    events.queue(session, "scan.cancelled", scan.tenant_id, {"scan_id": scan.id})
    return to_read(scan)
