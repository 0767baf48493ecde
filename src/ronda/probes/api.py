"""The probe API's rules: lease a scan of the probe's site, report progress, post the result, fail.

A leased scan runs under the runner id `probe:<id>` with a lease (scans/leases.py) that every
progress report renews; the result is merged exactly like a local scan's (scans/finish.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.errors import AppError, not_found
from ronda.core.events import EventBus
from ronda.core.runtime import Runtime
from ronda.core.timeutil import iso, utcnow
from ronda.probes import repository
from ronda.probes.auth import ProbeCaller
from ronda.probes.schemas import FailReport, LeaseResponse, ProbeJob, ProbeScanState, ProgressReport
from ronda.probes.waiter import QueueWaiter
from ronda.scanner import ScanResult
from ronda.scans import leases
from ronda.scans.finish import complete
from ronda.scans.models import Scan
from ronda.scans.runner import scan_options

POLL = 1.0  # the long-poll's own look, should a scan.queued wake-up be missed


def _job(scan: Scan, rt: Runtime) -> ProbeJob:
    return ProbeJob(scan_id=scan.id, tenant_id=scan.tenant_id, site_id=scan.site_id or "", profile=scan.profile,
                    target=scan.target, options=scan_options(scan, rt.settings.scan_max_hosts),
                    lease_seconds=rt.settings.scan_lease_seconds)


async def lease(
    rt: Runtime, bus: EventBus, waiter: QueueWaiter | None, caller: ProbeCaller, wait: float, version: str | None
) -> LeaseResponse:
    """Long-poll: each look is its own short transaction, so waiting holds no database resources."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    runner_id = leases.probe_runner(caller.probe_id)
    async with events.transaction(rt.sessions, bus) as session:
        await repository.touch(session, caller.probe_id, utcnow(), caller.ip, version)
    while True:
        async with events.transaction(rt.sessions, bus, write=False) as session:
            found = await leases.waiting(session, utcnow(), tenant_id=caller.tenant_id, site_id=caller.site_id)
        if found:
            async with events.transaction(rt.sessions, bus) as session:
                scan = await leases.lease_next(session, runner_id, rt.settings.scan_lease_seconds,
                                               tenant_id=caller.tenant_id, site_id=caller.site_id)
                await repository.touch(session, caller.probe_id, utcnow(), caller.ip, version)
                job = _job(scan, rt) if scan is not None else None
            if job is not None:
                return LeaseResponse(scan=job, probe_id=caller.probe_id, site_id=caller.site_id)
        left = deadline - loop.time()
        if left <= 0:
            return LeaseResponse(scan=None, probe_id=caller.probe_id, site_id=caller.site_id)
        if waiter is not None:
            await waiter.wait(min(POLL, left))
        else:
            await asyncio.sleep(min(POLL, left))


async def _held(session: AsyncSession, caller: ProbeCaller, scan_id: str) -> tuple[Scan, bool]:
    """The scan (of the probe's site, else 404) and whether this probe still holds it."""
    scan = await repository.site_scan(session, caller.tenant_id, caller.site_id, scan_id, for_update=True)
    if scan is None:
        raise not_found("Scan")
    return scan, scan.status == "running" and scan.runner_id == leases.probe_runner(caller.probe_id)


def _state(scan: Scan, held: bool) -> ProbeScanState:
    return ProbeScanState(scan_id=scan.id, status=scan.status, keep_running=held)  # type: ignore[arg-type]


async def progress(
    session: AsyncSession, rt: Runtime, caller: ProbeCaller, scan_id: str, body: ProgressReport
) -> ProbeScanState:
    scan, held = await _held(session, caller, scan_id)
    now = utcnow()
    await repository.touch(session, caller.probe_id, now, caller.ip, None)
    if not held:
        return _state(scan, False)
    scan.progress_percent = min(body.progress_percent, 99.9)
    scan.hosts_found = max(body.hosts_found, len(body.hosts), scan.hosts_found)
    scan.ports_found = max(body.ports_found, scan.ports_found)
    scan.probes_sent = body.probes_sent
    scan.estimated_completion = now + timedelta(seconds=body.eta_seconds) if body.eta_seconds is not None else None
    scan.heartbeat_at = scan.updated_at = now
    scan.lease_expires_at = now + timedelta(seconds=rt.settings.scan_lease_seconds)
    await session.flush()
    # Published once this commits, like the runner's relay does for a local scan.
    for host in body.hosts:
        events.queue(session, "scan.host_found", scan.tenant_id, {"scan_id": scan.id, **host.model_dump()})
    for port in body.ports:
        events.queue(session, "scan.port_found", scan.tenant_id, {"scan_id": scan.id, **port.model_dump()})
    events.queue(session, "scan.progress", scan.tenant_id, {
        "scan_id": scan.id, "progress_percent": round(scan.progress_percent, 1), "hosts_found": scan.hosts_found,
        "ports_found": scan.ports_found,
        "estimated_completion": iso(scan.estimated_completion),
    })
    return _state(scan, True)


def _inside(scan: Scan, result: ScanResult) -> None:
    """A probe reports only on the addresses it was asked to scan."""
    networks = [ipaddress.ip_network(n, strict=False) for n in scan.networks or []]
    for host in result.hosts:
        try:
            address = ipaddress.ip_address(host.ip)
        except ValueError:
            raise AppError(400, f"Invalid request: hosts: {host.ip!r} is not an IP address") from None
        if not any(address in network for network in networks):
            raise AppError(400, f"Invalid request: hosts: {host.ip} is outside the scan's targets",
                           details=[{"field": "hosts", "location": "body", "reason": f"{host.ip} was not scanned"}])


async def result(session: AsyncSession, caller: ProbeCaller, scan_id: str, body: dict[str, Any]) -> ProbeScanState:
    scan, held = await _held(session, caller, scan_id)
    if not held:
        raise AppError(409, f"Scan {scan.id} is {scan.status} and no longer held by this probe")
    try:
        parsed = ScanResult.from_dict(body)
    except (KeyError, TypeError, ValueError) as exc:
        raise AppError(400, f"Invalid request: the result does not parse: {type(exc).__name__}: {exc}"[:300]) from None
    _inside(scan, parsed)
    await repository.touch(session, caller.probe_id, utcnow(), caller.ip, None)
    scan.lease_expires_at = None
    await complete(session, scan, parsed)
    return _state(scan, False)


async def fail(session: AsyncSession, caller: ProbeCaller, scan_id: str, body: FailReport) -> ProbeScanState:
    scan, held = await _held(session, caller, scan_id)
    if not held:
        raise AppError(409, f"Scan {scan.id} is {scan.status} and no longer held by this probe")
    now = utcnow()
    reason = f"probe {caller.name}: {body.reason}"
    scan.status, scan.error, scan.completed_at, scan.updated_at = "failed", reason, now, now
    scan.estimated_completion, scan.lease_expires_at = None, None
    await repository.touch(session, caller.probe_id, now, caller.ip, None)
    await session.flush()
    await audit.record(session, Actor(actor_type="system", actor_id=caller.probe_id, tenant_id=scan.tenant_id),
                       "scan.failed", resource_type="scan", resource_id=scan.id, metadata={"reason": reason})
    events.queue(session, "scan.failed", scan.tenant_id, {"scan_id": scan.id, "reason": reason})
    return _state(scan, False)
