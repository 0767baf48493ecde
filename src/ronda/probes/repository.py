"""All SQL about probes. Every query goes through core.tenancy.scoped() (the key look-up is the
credential check, across tenants by nature, like an API key's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.pagination import ListParams, apply_search, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.probes.models import Probe
from ronda.scans.models import Scan

SORT_FIELDS: dict[str, Any] = {"name": Probe.name, "created_at": Probe.created_at,
                               "last_contact_at": Probe.last_contact_at}


async def by_key_hash(session: AsyncSession, digest: str) -> Probe | None:
    probe: Probe | None = (await session.scalars(select(Probe).where(Probe.key_hash == digest))).first()
    return probe


async def get(session: AsyncSession, principal: Principal | str, probe_id: str, *, for_update: bool = False
              ) -> Probe | None:
    statement = scoped(select(Probe).where(Probe.id == probe_id), Probe, principal)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    probe: Probe | None = (await session.scalars(statement)).first()
    return probe


def list_statement(principal: Principal, params: ListParams, *, site_id: str | None) -> Select[Any]:
    statement = scoped(select(Probe), Probe, principal)
    if site_id is not None:
        statement = statement.where(Probe.site_id == site_id)
    statement = apply_search(statement, params.search, [Probe.name, Probe.key_prefix])
    return apply_sort(statement, params.sort, SORT_FIELDS, [Probe.created_at.desc(), Probe.id.desc()])


async def touch(session: AsyncSession, probe_id: str, now: datetime, ip: str | None, version: str | None) -> None:
    values: dict[str, Any] = {"last_contact_at": now, "last_ip": ip}
    if version:
        values["version"] = version
    await session.execute(update(Probe).where(Probe.id == probe_id).values(**values))


async def site_scan(session: AsyncSession, tenant_id: str, site_id: str, scan_id: str, *, for_update: bool = False
                    ) -> Scan | None:
    """A scan of the probe's own tenant and site; anything else does not exist for the probe."""
    statement = scoped(select(Scan).where(Scan.id == scan_id, Scan.site_id == site_id), Scan, tenant_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    scan: Scan | None = (await session.scalars(statement)).first()
    return scan
