"""Leases: how `ronda worker` processes and remote probes claim queued scans, and how a lost claim ends.

A queued scan whose runner_id is AWAITING_LEASE waits for a lease. A worker takes the oldest such scan whose site has
no active probe; a probe takes only its own site's. Claiming is one conditional UPDATE (queued and
unclaimed -> running, with a lease), after `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL so concurrent
workers skip each other's rows instead of queueing on them (SQLite ignores the lock clause; its write
transactions are serialised, and the conditional UPDATE decides). The holder renews the lease with
its heartbeats; once it expires, any runner's sweep re-queues the scan (once) or fails it with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.tenancy import scoped
from ronda.core.timeutil import utcnow
from ronda.probes.models import Probe
from ronda.scans.models import Scan

PROBE_ACTIVE_SECONDS = 90.0  # a probe heard from this recently takes its site's scans (it polls every ~25 s)
AWAITING_LEASE = "lease"  # the runner_id of a queued scan that a worker or a probe is to lease
MAX_ATTEMPTS = 2  # leases a scan may take: a lost one is re-queued once, then failed
CANDIDATES = 5


def probe_runner(probe_id: str) -> str:
    return f"probe:{probe_id}"


def active_probe_sites(now: datetime) -> Select[Any]:
    since = now - timedelta(seconds=PROBE_ACTIVE_SECONDS)
    return select(Probe.site_id).where(Probe.revoked_at.is_(None), Probe.last_contact_at >= since)


async def site_has_active_probe(session: AsyncSession, tenant_id: str, site_id: str, now: datetime) -> bool:
    statement = scoped(active_probe_sites(now).where(Probe.site_id == site_id), Probe, tenant_id).limit(1)
    return (await session.scalars(statement)).first() is not None


def _waiting(now: datetime, tenant_id: str | None, site_id: str | None) -> Select[Any]:
    statement = select(Scan.id).where(Scan.status == "queued", Scan.runner_id == AWAITING_LEASE)
    if site_id is not None and tenant_id is not None:  # a probe: its own tenant's site only
        statement = scoped(statement.where(Scan.site_id == site_id), Scan, tenant_id)
    else:  # a worker: anything a probe is not there to take
        statement = statement.where(or_(Scan.site_id.is_(None), Scan.site_id.not_in(active_probe_sites(now))))
    return statement.order_by(Scan.created_at, Scan.id).limit(CANDIDATES)


async def waiting(session: AsyncSession, now: datetime, *, tenant_id: str | None = None,
                  site_id: str | None = None) -> bool:
    """A read-only check, so an idle worker or probe never opens a write transaction to find nothing."""
    return (await session.scalars(_waiting(now, tenant_id, site_id))).first() is not None


async def lease_next(
    session: AsyncSession, runner_id: str, lease_seconds: float, *, tenant_id: str | None = None,
    site_id: str | None = None,
) -> Scan | None:
    """Claim the oldest waiting scan: it is `running` under `runner_id` until the lease lapses."""
    now = utcnow()
    statement = _waiting(now, tenant_id, site_id).with_for_update(skip_locked=True, of=Scan)
    for scan_id in list((await session.scalars(statement)).all()):
        claimed = await session.execute(
            update(Scan).where(Scan.id == scan_id, Scan.status == "queued", Scan.runner_id == AWAITING_LEASE).values(
                status="running", runner_id=runner_id, started_at=now, heartbeat_at=now, updated_at=now,
                lease_expires_at=now + timedelta(seconds=lease_seconds), attempts=Scan.attempts + 1, error=None,
            )
        )
        if getattr(claimed, "rowcount", 0):
            scan = (await session.scalars(
                select(Scan).where(Scan.id == scan_id).execution_options(populate_existing=True))).one()
            events.queue(session, "scan.started", scan.tenant_id,
                         {"scan_id": scan.id, "target": scan.target, "profile": scan.profile})
            return scan
    return None


async def renew(session: AsyncSession, scan_id: str, runner_id: str, lease_seconds: float) -> bool:
    """Extend the holder's lease; False once the scan is no longer running under it (stopped, taken over)."""
    now = utcnow()
    result = await session.execute(
        update(Scan).where(Scan.id == scan_id, Scan.runner_id == runner_id, Scan.status == "running")
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    return bool(getattr(result, "rowcount", 0))


async def take_over(session: AsyncSession, scan: Scan, reason: str, *, given_back: bool = False) -> str:
    """The scan's lease lapsed: re-queue it for another runner, unless it has used its attempts, then
    fail it. A scan its worker gave back on a clean shutdown is re-queued without using an attempt.
    Returns the new status."""
    now = utcnow()
    if given_back:
        scan.attempts = max(scan.attempts - 1, 0)
    elif scan.status == "running" and scan.attempts >= MAX_ATTEMPTS:
        reason = f"{reason} (attempt {scan.attempts} of {MAX_ATTEMPTS}; not retried)"
        scan.status, scan.error, scan.completed_at = "failed", reason, now
        scan.estimated_completion, scan.updated_at, scan.lease_expires_at = None, now, None
        await session.flush()
        await audit.record(session, Actor(tenant_id=scan.tenant_id), "scan.failed", resource_type="scan",
                           resource_id=scan.id, metadata={"reason": reason, "runner_id": scan.runner_id})
        events.queue(session, "scan.failed", scan.tenant_id, {"scan_id": scan.id, "reason": reason})
        return "failed"
    previous = scan.runner_id
    scan.status, scan.runner_id, scan.lease_expires_at, scan.started_at = "queued", AWAITING_LEASE, None, None
    scan.progress_percent, scan.hosts_found, scan.ports_found, scan.probes_sent = 0.0, 0, 0, 0
    scan.estimated_completion, scan.heartbeat_at, scan.updated_at = None, now, now
    scan.error = f"{reason}; re-queued"
    await session.flush()
    await audit.record(session, Actor(tenant_id=scan.tenant_id), "scan.requeued", resource_type="scan",
                       resource_id=scan.id, metadata={"reason": reason, "runner_id": previous,
                                                      "attempts": scan.attempts})
    events.queue(session, "scan.queued", scan.tenant_id,
                 {"scan_id": scan.id, "target": scan.target, "profile": scan.profile})
    return "queued"
