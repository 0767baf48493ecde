"""All SQL for API keys; every statement is scoped to the caller's tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.api_keys.models import ApiKey
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped

SORT_FIELDS: dict[str, Any] = {
    "created_at": ApiKey.created_at,
    "name": ApiKey.name,
    "kind": ApiKey.kind,
    "last_used_at": ApiKey.last_used_at,
    "expires_at": ApiKey.expires_at,
}
DEFAULT_ORDER = (ApiKey.created_at.desc(), ApiKey.id.desc())
SEARCH_COLUMNS = (ApiKey.name,)


def is_active_clause(now: datetime) -> ColumnElement[bool]:
    return and_(ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))


def list_statement(
    principal: Principal,
    *,
    owner_id: str | None,
    kind: str | None,
    user_id: str | None,
    active: bool | None,
    now: datetime,
) -> Select[Any]:
    """The tenant's keys; `owner_id` limits them to one user's (non-admin callers)."""
    statement = scoped(select(ApiKey), ApiKey, principal)
    if owner_id is not None:
        statement = statement.where(ApiKey.user_id == owner_id)
    if kind is not None:
        statement = statement.where(ApiKey.kind == kind)
    if user_id is not None:
        statement = statement.where(ApiKey.user_id == user_id)
    if active is not None:
        clause = is_active_clause(now)
        statement = statement.where(clause if active else not_(clause))
    return statement


async def get(
    session: AsyncSession, principal: Principal, key_id: str, *, for_update: bool = False
) -> ApiKey | None:
    statement = scoped(select(ApiKey).where(ApiKey.id == key_id), ApiKey, principal)
    if for_update:
        # Refreshed under the lock: a key authenticating its own request is already loaded, unlocked.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).one_or_none()


async def add(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    return key
