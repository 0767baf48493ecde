"""All SQL about sites. Every query goes through core.tenancy.scoped()."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.pagination import ListParams, apply_search, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.devices.models import Device
from ronda.probes.models import Probe
from ronda.scans.models import Scan
from ronda.scans.schemas import ACTIVE
from ronda.sites.models import Site

SORT_FIELDS: dict[str, Any] = {"name": Site.name, "created_at": Site.created_at, "updated_at": Site.updated_at}


async def get(
    session: AsyncSession, principal: Principal | str, site_id: str, *, for_update: bool = False
) -> Site | None:
    statement = scoped(select(Site).where(Site.id == site_id), Site, principal)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    site: Site | None = (await session.scalars(statement)).first()
    return site


async def name_taken(session: AsyncSession, tenant_id: str, name: str, exclude_id: str | None = None) -> bool:
    statement = scoped(select(Site.id).where(func.lower(Site.name) == name.lower()), Site, tenant_id)
    if exclude_id is not None:
        statement = statement.where(Site.id != exclude_id)
    return (await session.scalars(statement.limit(1))).first() is not None


def list_statement(principal: Principal, params: ListParams) -> Select[Any]:
    statement = scoped(select(Site), Site, principal)
    statement = apply_search(statement, params.search, [Site.name, Site.description, Site.location])
    return apply_sort(statement, params.sort, SORT_FIELDS, [Site.name, Site.id])


async def references(session: AsyncSession, tenant_id: str, site_id: str) -> dict[str, int]:
    """What still points at a site: devices, unfinished scans and unrevoked probes."""
    devices = await session.scalar(scoped(
        select(func.count()).select_from(Device).where(Device.site_id == site_id), Device, tenant_id))
    scans = await session.scalar(scoped(
        select(func.count()).select_from(Scan).where(Scan.site_id == site_id, Scan.status.in_(sorted(ACTIVE))),
        Scan, tenant_id))
    probes = await session.scalar(scoped(
        select(func.count()).select_from(Probe).where(Probe.site_id == site_id, Probe.revoked_at.is_(None)),
        Probe, tenant_id))
    return {"devices": int(devices or 0), "active_scans": int(scans or 0), "probes": int(probes or 0)}
