"""All SQL about tenants. Tenants are the unit of scoping, not tenant-scoped data themselves,
so these queries do not go through core.tenancy; only super admins reach the cross-tenant ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.pagination import ListParams, apply_search, apply_sort
from ronda.tenants.models import Tenant

SORT_FIELDS: dict[str, Any] = {
    "name": Tenant.name,
    "slug": Tenant.slug,
    "plan": Tenant.plan,
    "created_at": Tenant.created_at,
}
SEARCH_COLUMNS = (Tenant.name, Tenant.slug)


async def get(session: AsyncSession, tenant_id: str, *, for_update: bool = False) -> Tenant | None:
    statement = select(Tenant).where(Tenant.id == tenant_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


def list_statement(params: ListParams, *, plan: str | None = None, is_active: bool | None = None) -> Select[Any]:
    statement = select(Tenant)
    if plan is not None:
        statement = statement.where(Tenant.plan == plan)
    if is_active is not None:
        statement = statement.where(Tenant.is_active.is_(is_active))
    statement = apply_search(statement, params.search, SEARCH_COLUMNS)
    return apply_sort(statement, params.sort, SORT_FIELDS, (Tenant.name, Tenant.id))


async def name_taken(session: AsyncSession, name: str, *, exclude_id: str | None = None) -> bool:
    statement = select(Tenant.id).where(func.lower(Tenant.name) == name.lower())
    if exclude_id is not None:
        statement = statement.where(Tenant.id != exclude_id)
    return (await session.scalar(statement.limit(1))) is not None


async def slugs_like(session: AsyncSession, base: str) -> set[str]:
    """Slugs equal to `base` or `base-<n>`, to pick a free one."""
    escaped = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    statement = select(Tenant.slug).where(or_(Tenant.slug == base, Tenant.slug.like(escaped + "-%", escape="\\")))
    return set((await session.scalars(statement)).all())
