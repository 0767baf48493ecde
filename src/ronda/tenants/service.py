"""Tenant rules: settings of the caller's tenant, and tenant administration for super admins.

Every change is one `tenant.updated` audit record in the changed tenant's chain, listing each
changed field with its old and new value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core.errors import AppError, not_found
from ronda.core.pagination import ListParams, Page, csv_response, fetch_page
from ronda.core.principal import Principal
from ronda.core.runtime import Runtime
from ronda.core.timeutil import utcnow
from ronda.devices import posture
from ronda.services import status as service_status
from ronda.tenants import repository
from ronda.tenants.models import DEFAULT_COMPLIANCE_POLICY, Tenant
from ronda.tenants.schemas import (
    CompliancePolicyRead,
    TenantCreate,
    TenantRead,
    TenantSettingsUpdate,
    TenantUpdate,
)

SETTINGS = ("name", "plan", "daily_quota", "lockout_threshold", "lockout_window_minutes",
            "lockout_duration_minutes", "mfa_required")
SUPER_ADMIN_ONLY = ("plan", "daily_quota")
CSV_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    (name, attrgetter(name))
    for name in ("id", "name", "slug", "plan", "daily_quota", "mfa_required", "is_active", "created_at")
]


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100] or "tenant"


def policy_of(tenant: Tenant) -> dict[str, Any]:
    """The stored policy, with any key it lacks filled from the default."""
    merged = dict(DEFAULT_COMPLIANCE_POLICY)
    merged.update(tenant.compliance_policy or {})
    return merged


def tenant_read(tenant: Tenant) -> TenantRead:
    return TenantRead(
        id=tenant.id, name=tenant.name, slug=tenant.slug, plan=tenant.plan, daily_quota=tenant.daily_quota,
        lockout_threshold=tenant.lockout_threshold, lockout_window_minutes=tenant.lockout_window_minutes,
        lockout_duration_minutes=tenant.lockout_duration_minutes, mfa_required=tenant.mfa_required,
        compliance_policy=CompliancePolicyRead.model_validate(policy_of(tenant)), is_active=tenant.is_active,
        created_at=tenant.created_at, updated_at=tenant.updated_at,
    )


async def _locked(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await repository.get(session, tenant_id, for_update=True)
    if tenant is None:
        raise not_found("Tenant")
    return tenant


def _value(tenant: Tenant, field: str) -> Any:
    return policy_of(tenant) if field == "compliance_policy" else getattr(tenant, field)


async def _apply(
    session: AsyncSession, principal: Principal, tenant: Tenant, body: TenantSettingsUpdate, actor: Actor
) -> TenantRead:
    """Check and apply the given settings; audit every changed field in one record."""
    given = body.model_fields_set
    wanted: dict[str, Any] = {}
    for field in SETTINGS:
        value = getattr(body, field)
        # Only daily_quota gives null a meaning (back to the plan's default); elsewhere null is "unchanged".
        if field in given and (value is not None or field == "daily_quota"):
            wanted[field] = value
    if isinstance(body, TenantUpdate) and body.is_active is not None:
        wanted["is_active"] = body.is_active
    if body.compliance_policy is not None:
        policy = policy_of(tenant)
        policy.update(body.compliance_policy.model_dump(exclude_none=True, exclude={"services"}))
        if body.compliance_policy.services is not None:  # nested: the given rules replace, the rest stay
            policy["services"] = {**policy["services"], **body.compliance_policy.services.changes()}
        wanted["compliance_policy"] = policy

    changes = {field: {"old": _value(tenant, field), "new": value}
               for field, value in wanted.items() if _value(tenant, field) != value}
    restricted = [field for field in SUPER_ADMIN_ONLY if field in changes]
    if restricted and principal.role != "super_admin":
        raise AppError(403, f"Only a super admin may change {' or '.join(restricted)}")
    if changes.get("is_active", {}).get("new") is False and tenant.id == principal.tenant_id:
        raise AppError(409, "You cannot deactivate your own tenant")
    if "name" in changes and await repository.name_taken(session, wanted["name"], exclude_id=tenant.id):
        raise AppError(409, "A tenant with that name already exists",
                       details=[{"field": "name", "location": "body", "reason": "already in use"}])
    if changes:
        for field, change in changes.items():
            setattr(tenant, field, change["new"])
        await audit.record(session, actor, "tenant.updated", resource_type="tenant", resource_id=tenant.id,
                           metadata={"changes": changes}, tenant_id=tenant.id)
        try:
            await session.flush()
        except IntegrityError as exc:  # a concurrent rename took the name
            raise AppError(409, "A tenant with that name already exists") from exc
        if "compliance_policy" in changes:
            # Every evaluated device is re-judged under the new policy, in this transaction.
            await posture.reevaluate_tenant(session, tenant.id, posture.Policy.of(tenant.compliance_policy), actor,
                                            utcnow())
            await service_status.reevaluate_tenant(session, tenant.id, tenant.compliance_policy, utcnow().date())
    return tenant_read(tenant)


# --- the caller's own tenant -----------------------------------------------------------------


async def current(session: AsyncSession, principal: Principal) -> TenantRead:
    tenant = await repository.get(session, principal.tenant_id)
    if tenant is None:
        raise AppError(401, "Invalid or expired credentials")
    return tenant_read(tenant)


async def update_current(
    session: AsyncSession, principal: Principal, body: TenantSettingsUpdate, actor: Actor
) -> TenantRead:
    return await _apply(session, principal, await _locked(session, principal.tenant_id), body, actor)


# --- every tenant (super admin) --------------------------------------------------------------


async def list_tenants(
    session: AsyncSession, params: ListParams, *, plan: str | None, is_active: bool | None
) -> Page[TenantRead]:
    rows, total = await fetch_page(session, repository.list_statement(params, plan=plan, is_active=is_active),
                                   params)
    return Page[TenantRead](data=[tenant_read(row) for row in rows], meta=params.meta(total))


def export_tenants(rt: Runtime, params: ListParams, *, plan: str | None, is_active: bool | None) -> StreamingResponse:
    statement = repository.list_statement(params, plan=plan, is_active=is_active)
    return csv_response(rt.sessions, statement, CSV_COLUMNS, "tenants.csv")


async def get_tenant(session: AsyncSession, tenant_id: str) -> TenantRead:
    tenant = await repository.get(session, tenant_id)
    if tenant is None:
        raise not_found("Tenant")
    return tenant_read(tenant)


async def create_tenant(session: AsyncSession, body: TenantCreate, actor: Actor) -> TenantRead:
    if await repository.name_taken(session, body.name):
        raise AppError(409, "A tenant with that name already exists",
                       details=[{"field": "name", "location": "body", "reason": "already in use"}])
    base = slugify(body.name)
    taken = await repository.slugs_like(session, base)
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    tenant = Tenant(name=body.name, slug=slug, plan=body.plan, daily_quota=body.daily_quota,
                    compliance_policy=dict(DEFAULT_COMPLIANCE_POLICY))
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise AppError(409, "A tenant with that name already exists") from exc
    await audit.record(session, actor, "tenant.created", resource_type="tenant", resource_id=tenant.id,
                       metadata={"name": tenant.name, "slug": tenant.slug, "plan": tenant.plan,
                                 "daily_quota": tenant.daily_quota}, tenant_id=tenant.id)
    return tenant_read(tenant)


async def update_tenant(
    session: AsyncSession, principal: Principal, tenant_id: str, body: TenantUpdate, actor: Actor
) -> TenantRead:
    return await _apply(session, principal, await _locked(session, tenant_id), body, actor)


async def delete_tenant(session: AsyncSession, principal: Principal, tenant_id: str, actor: Actor) -> TenantRead:
    """Deactivate: its users and keys stop working at once; its data and history stay."""
    tenant = await _locked(session, tenant_id)
    if tenant.id == principal.tenant_id:
        raise AppError(409, "You cannot deactivate your own tenant")
    if tenant.is_active:
        tenant.is_active = False
        await audit.record(session, actor, "tenant.deleted", resource_type="tenant", resource_id=tenant.id,
                           metadata={"name": tenant.name}, tenant_id=tenant.id)
        await session.flush()
    return tenant_read(tenant)
