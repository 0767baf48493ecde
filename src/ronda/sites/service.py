"""Site rules: unique names per tenant, CIDR networks, audited changes, no deletion while in use.

Flushes, never commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core.errors import AppError, not_found
from ronda.core.pagination import ListParams, Page, fetch_page
from ronda.core.principal import Principal
from ronda.core.timeutil import utcnow
from ronda.sites import repository
from ronda.sites.models import Site
from ronda.sites.schemas import SiteCreate, SiteRead, SiteUpdate


def to_read(site: Site) -> SiteRead:
    return SiteRead.model_validate(site)


def _name_conflict(name: str) -> AppError:
    return AppError(409, f"A site named {name!r} already exists",
                    details=[{"field": "name", "location": "body", "reason": "already used in this tenant"}])


async def require_site(session: AsyncSession, tenant_id: str, site_id: str, *, field: str = "site_id") -> Site:
    """A site of this tenant, or a 400 naming the field (for bodies that refer to a site)."""
    site = await repository.get(session, tenant_id, site_id)
    if site is None:
        raise AppError(400, f"Invalid request: {field}: no such site",
                       details=[{"field": field, "location": "body", "reason": "no such site in your tenant"}])
    return site


async def _visible(session: AsyncSession, principal: Principal, site_id: str, *, for_update: bool = False) -> Site:
    site = await repository.get(session, principal, site_id, for_update=for_update)
    if site is None:
        raise not_found("Site")
    return site


async def create_site(session: AsyncSession, principal: Principal, body: SiteCreate, actor: Actor) -> SiteRead:
    if await repository.name_taken(session, principal.tenant_id, body.name):
        raise _name_conflict(body.name)
    now = utcnow()
    site = Site(tenant_id=principal.tenant_id, name=body.name, description=body.description,
                networks=list(body.networks), location=body.location, created_at=now, updated_at=now)
    session.add(site)
    await session.flush()
    await audit.record(session, actor, "site.created", resource_type="site", resource_id=site.id,
                       metadata={"name": site.name, "networks": site.networks, "location": site.location})
    return to_read(site)


async def list_sites(session: AsyncSession, principal: Principal, params: ListParams) -> Page[SiteRead]:
    rows, total = await fetch_page(session, repository.list_statement(principal, params), params)
    return Page[SiteRead](data=[to_read(row) for row in rows], meta=params.meta(total))


async def get_site(session: AsyncSession, principal: Principal, site_id: str) -> SiteRead:
    return to_read(await _visible(session, principal, site_id))


async def update_site(
    session: AsyncSession, principal: Principal, site_id: str, body: SiteUpdate, actor: Actor
) -> SiteRead:
    site = await _visible(session, principal, site_id, for_update=True)
    given = body.model_dump(exclude_unset=True)
    if given.get("name") is None:
        given.pop("name", None)  # a site always has a name
    if "networks" in given and given["networks"] is None:
        given["networks"] = []
    if "name" in given and await repository.name_taken(session, principal.tenant_id, given["name"], site.id):
        raise _name_conflict(given["name"])
    changes: dict[str, Any] = {}
    for field, value in given.items():
        old = getattr(site, field)
        if old != value:
            changes[field] = {"old": old, "new": value}
            setattr(site, field, value)
    if changes:
        site.updated_at = utcnow()
        await session.flush()
        await audit.record(session, actor, "site.updated", resource_type="site", resource_id=site.id,
                           metadata={"changes": changes})
    return to_read(site)


async def delete_site(session: AsyncSession, principal: Principal, site_id: str, actor: Actor) -> None:
    """Refused (409) while devices, unfinished scans or unrevoked probes refer to the site: nothing is
    silently moved out of a site. Finished scans keep the id as history; revoked probes go with it."""
    site = await _visible(session, principal, site_id, for_update=True)
    used = {name: count for name, count in (await repository.references(session, principal.tenant_id, site.id)).items()
            if count}
    if used:
        listed = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in used.items())
        raise AppError(409, f"Site {site.id} is still in use ({listed}); move or remove them first",
                       details=[{"field": name, "location": "path", "reason": f"{count} still refer to this site"}
                                for name, count in used.items()])
    await audit.record(session, actor, "site.deleted", resource_type="site", resource_id=site.id,
                       metadata={"name": site.name, "networks": site.networks})
    await session.delete(site)
    await session.flush()
