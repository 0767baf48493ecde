"""All SQL about users. Every query about a tenant's users goes through core.tenancy.scoped()."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.auth.models import AuthSession
from ronda.core.pagination import ListParams, apply_search, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.core.timeutil import utcnow
from ronda.tenants.models import Tenant
from ronda.users.models import User

SORT_FIELDS: dict[str, Any] = {
    "username": User.username,
    "email": User.email,
    "created_at": User.created_at,
    "last_login_at": User.last_login_at,
    "role": User.role,
}
SEARCH_COLUMNS = (User.username, User.email, User.full_name)


async def get(session: AsyncSession, principal: Principal, user_id: str, *, for_update: bool = False) -> User | None:
    """One user of the caller's tenant; another tenant's id finds nothing."""
    statement = scoped(select(User).where(User.id == user_id), User, principal)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    user: User | None = (await session.execute(statement)).scalar_one_or_none()
    return user


def list_statement(
    principal: Principal, params: ListParams, *, role: str | None = None, is_active: bool | None = None
) -> Select[Any]:
    """The caller's tenant's users, filtered, searched and sorted (not yet paged)."""
    statement = scoped(select(User), User, principal)
    if role is not None:
        statement = statement.where(User.role == role)
    if is_active is not None:
        statement = statement.where(User.is_active.is_(is_active))
    statement = apply_search(statement, params.search, SEARCH_COLUMNS)
    return apply_sort(statement, params.sort, SORT_FIELDS, (User.created_at, User.id))


async def identity_taken(
    session: AsyncSession, *, username: str | None = None, email: str | None = None, exclude_id: str | None = None
) -> str | None:
    """Which identity field is already used by any user ("username" or "email"), or None.

    Usernames and emails are unique across the whole installation (login does not name a
    tenant), so this one check deliberately looks past the caller's tenant; it answers only
    whether the value is free, never which user or tenant holds it.
    """
    clauses = []
    if username is not None:
        clauses.append(func.lower(User.username) == username.lower())
    if email is not None:
        clauses.append(func.lower(User.email) == email.lower())
    if not clauses:
        return None
    statement = select(User.username, User.email).where(or_(*clauses))
    if exclude_id is not None:
        statement = statement.where(User.id != exclude_id)
    for found_username, found_email in (await session.execute(statement.limit(2))).all():
        if username is not None and found_username.lower() == username.lower():
            return "username"
        if email is not None and found_email.lower() == email.lower():
            return "email"
    return None


async def revoke_sessions(
    session: AsyncSession, principal: Principal, user_id: str, reason: str, *, keep: str | None = None
) -> int:
    """End every live login of one user of the caller's tenant; returns how many ended."""
    statement = scoped(
        update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)),
        AuthSession, principal,
    )
    if keep is not None:
        statement = statement.where(AuthSession.id != keep)
    result = await session.execute(
        statement.values(revoked_at=utcnow(), revoked_reason=reason).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def caller_tenant(session: AsyncSession, principal: Principal) -> Tenant | None:
    return await session.get(Tenant, principal.tenant_id)
