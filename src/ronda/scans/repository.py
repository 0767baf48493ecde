"""All SQL about scans and their hosts. Every tenant query goes through core.tenancy.scoped()."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.pagination import ListParams, apply_search, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.scans.models import Scan, ScanHost
from ronda.scans.schemas import ACTIVE
from ronda.tenants.models import Tenant

SORT_FIELDS: dict[str, Any] = {
    "created_at": Scan.created_at, "started_at": Scan.started_at, "completed_at": Scan.completed_at,
    "status": Scan.status, "profile": Scan.profile, "hosts_found": Scan.hosts_found,
    "ports_found": Scan.ports_found,
}


async def get(
    session: AsyncSession, principal: Principal | str, scan_id: str, *, for_update: bool = False
) -> Scan | None:
    statement = scoped(select(Scan).where(Scan.id == scan_id), Scan, principal)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    scan: Scan | None = (await session.scalars(statement)).first()
    return scan


def list_statement(
    principal: Principal, params: ListParams, *, status: str | None, profile: str | None, site_id: str | None
) -> Select[Any]:
    statement = scoped(select(Scan), Scan, principal)
    if status is not None:
        statement = statement.where(Scan.status == status)
    if profile is not None:
        statement = statement.where(Scan.profile == profile)
    if site_id is not None:
        statement = statement.where(Scan.site_id == site_id)
    # The target is JSON; its text form is what a search matches.
    statement = apply_search(statement, params.search, [Scan.id, cast(Scan.target, Text)])
    return apply_sort(statement, params.sort, SORT_FIELDS, [Scan.created_at.desc(), Scan.id.desc()])


async def lock_tenant(session: AsyncSession, tenant_id: str) -> None:
    """Serialise scan starts of one tenant (PostgreSQL; SQLite write transactions already are)."""
    await session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


async def active_count(session: AsyncSession, tenant_id: str) -> int:
    statement = scoped(select(func.count()).select_from(Scan).where(Scan.status.in_(sorted(ACTIVE))), Scan, tenant_id)
    return int(await session.scalar(statement) or 0)


async def hosts(session: AsyncSession, tenant_id: str, scan_id: str) -> list[ScanHost]:
    statement = scoped(select(ScanHost).where(ScanHost.scan_id == scan_id), ScanHost, tenant_id)
    return list((await session.scalars(statement.order_by(ScanHost.id))).all())


async def previous_completed(
    session: AsyncSession, tenant_id: str, target_key: str, before: datetime, exclude_id: str
) -> Scan | None:
    statement = scoped(
        select(Scan).where(Scan.target_key == target_key, Scan.status == "completed", Scan.id != exclude_id,
                           Scan.completed_at <= before),
        Scan, tenant_id,
    ).order_by(Scan.completed_at.desc(), Scan.id.desc()).limit(1)
    scan: Scan | None = (await session.scalars(statement)).first()
    return scan


# --- the runner's bookkeeping (across tenants: it owns jobs, not callers) -------------------------


async def claim(session: AsyncSession, scan_id: str, runner_id: str, now: datetime) -> bool:
    """queued -> running, only if nobody cancelled it meanwhile."""
    result = await session.execute(
        update(Scan).where(Scan.id == scan_id, Scan.status == "queued", Scan.runner_id == runner_id)
        .values(status="running", started_at=now, heartbeat_at=now, updated_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


async def save_progress(session: AsyncSession, scan_id: str, runner_id: str, values: dict[str, Any]) -> bool:
    """Write progress while the scan is still running here; False once it is not (stopped elsewhere, or
    its lease lost and the scan taken over)."""
    result = await session.execute(
        update(Scan).where(Scan.id == scan_id, Scan.status == "running", Scan.runner_id == runner_id).values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


async def heartbeat(session: AsyncSession, runner_id: str, now: datetime, lease_until: datetime | None = None) -> None:
    """The runner's scans are alive; a worker's leases are extended to `lease_until`."""
    values: dict[str, Any] = {"heartbeat_at": now}
    if lease_until is not None:
        values["lease_expires_at"] = lease_until
    await session.execute(
        update(Scan).where(Scan.runner_id == runner_id, Scan.status.in_(sorted(ACTIVE))).values(**values)
    )


async def active_scans(session: AsyncSession, *, lock: bool = True) -> Sequence[Scan]:
    statement = select(Scan).where(Scan.status.in_(sorted(ACTIVE)))
    if lock:
        statement = statement.with_for_update()
    return (await session.scalars(statement.execution_options(populate_existing=True))).all()


async def queued_for(session: AsyncSession, runner_id: str) -> list[str]:
    statement = select(Scan.id).where(Scan.status == "queued", Scan.runner_id == runner_id).order_by(Scan.created_at)
    return list((await session.scalars(statement)).all())


async def for_update(session: AsyncSession, scan_id: str) -> Scan | None:
    statement = select(Scan).where(Scan.id == scan_id).with_for_update().execution_options(populate_existing=True)
    scan: Scan | None = (await session.scalars(statement)).first()
    return scan


async def statuses(session: AsyncSession, scan_ids: Sequence[str], runner_id: str) -> dict[str, str]:
    """Each scan's status, as `running` only while it runs under `runner_id`."""
    rows = await session.execute(select(Scan.id, Scan.status, Scan.runner_id).where(Scan.id.in_(list(scan_ids))))
    return {scan_id: status if runner == runner_id else "elsewhere" for scan_id, status, runner in rows.all()}
