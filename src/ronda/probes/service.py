"""Registering, listing and revoking probes (admins). Flushes, never commits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core.errors import AppError, not_found
from ronda.core.pagination import ListParams, Page, fetch_page
from ronda.core.principal import Principal
from ronda.core.security import secret_digest
from ronda.core.timeutil import as_utc, utcnow
from ronda.probes import repository
from ronda.probes.auth import mint_probe_key
from ronda.probes.models import Probe
from ronda.probes.schemas import ProbeCreate, ProbeCreated, ProbeRead
from ronda.scans.leases import PROBE_ACTIVE_SECONDS
from ronda.sites import repository as sites


def is_active(probe: Probe, now: datetime) -> bool:
    seen = as_utc(probe.last_contact_at)
    return probe.revoked_at is None and seen is not None and seen >= now - timedelta(seconds=PROBE_ACTIVE_SECONDS)


def to_read(probe: Probe, now: datetime) -> ProbeRead:
    return ProbeRead(
        id=probe.id, tenant_id=probe.tenant_id, site_id=probe.site_id, name=probe.name, key_prefix=probe.key_prefix,
        created_by=probe.created_by, created_at=probe.created_at, last_contact_at=probe.last_contact_at,
        last_ip=probe.last_ip, version=probe.version, active=is_active(probe, now), revoked_at=probe.revoked_at,
    )


async def create_probe(
    session: AsyncSession, principal: Principal, site_id: str, body: ProbeCreate, actor: Actor, prefix: str
) -> ProbeCreated:
    site = await sites.get(session, principal, site_id)
    if site is None:
        raise not_found("Site")
    key, key_prefix = mint_probe_key(prefix)
    now = utcnow()
    probe = Probe(tenant_id=principal.tenant_id, site_id=site.id, name=body.name, key_prefix=key_prefix,
                  key_hash=secret_digest(key), created_by=principal.actor_id, created_at=now)
    session.add(probe)
    await session.flush()
    await audit.record(session, actor, "probe.created", resource_type="probe", resource_id=probe.id,
                       metadata={"name": probe.name, "site_id": site.id, "key_prefix": key_prefix})
    return ProbeCreated(**to_read(probe, now).model_dump(), key=key)


async def list_probes(
    session: AsyncSession, principal: Principal, params: ListParams, *, site_id: str | None
) -> Page[ProbeRead]:
    rows, total = await fetch_page(session, repository.list_statement(principal, params, site_id=site_id), params)
    now = utcnow()
    return Page[ProbeRead](data=[to_read(row, now) for row in rows], meta=params.meta(total))


async def revoke_probe(session: AsyncSession, principal: Principal, probe_id: str, actor: Actor) -> ProbeRead:
    probe = await repository.get(session, principal, probe_id, for_update=True)
    if probe is None:
        raise not_found("Probe")
    if probe.revoked_at is not None:
        raise AppError(409, "Probe is already revoked")
    now = utcnow()
    probe.revoked_at = now
    await session.flush()
    await audit.record(session, actor, "probe.revoked", resource_type="probe", resource_id=probe.id,
                       metadata={"name": probe.name, "site_id": probe.site_id})
    return to_read(probe, now)
