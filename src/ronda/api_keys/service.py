"""API-key rules: minting within the caller's own scopes, listing, revocation. Flushes, never commits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.api_keys import repository
from ronda.api_keys.models import ApiKey
from ronda.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, GrantablePermission, GrantablePermissionList
from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core.authz import ADMIN_ROLES, SCOPES
from ronda.core.errors import AppError
from ronda.core.pagination import ListParams, Page, apply_search, apply_sort, fetch_page
from ronda.core.principal import Principal
from ronda.core.security import api_key_digest, mint_api_key
from ronda.core.timeutil import utcnow

PREFIX_HEX_CHARS = 8  # how much of the random part the displayable prefix shows


def is_active(key: ApiKey, now: datetime) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def to_read(key: ApiKey, now: datetime) -> ApiKeyRead:
    return ApiKeyRead(
        id=key.id, name=key.name, key_prefix=key.key_prefix, permissions=list(key.permissions or []),
        kind=key.kind, user_id=key.user_id, is_active=is_active(key, now), created_at=key.created_at,
        expires_at=key.expires_at, last_used_at=key.last_used_at, revoked_at=key.revoked_at,
    )


def _check_scopes(principal: Principal, body: ApiKeyCreate) -> list[str]:
    """The requested scopes, deduplicated; each known and held by the caller (or its key)."""
    wanted = list(dict.fromkeys(body.permissions))
    unknown = [p for p in wanted if p not in SCOPES]
    if unknown:
        raise AppError(
            400, f"Unknown permissions: {', '.join(unknown)}",
            details=[{"field": "permissions", "location": "body", "reason": f"unknown scope {p}"} for p in unknown],
        )
    lacking = [p for p in wanted if p not in principal.permissions]
    if lacking:
        raise AppError(
            403, f"You cannot grant permissions you do not hold: {', '.join(lacking)}",
            details=[{"field": "permissions", "location": "body", "reason": f"you lack {p}"} for p in lacking],
        )
    if body.kind == "service" and principal.role not in ADMIN_ROLES:
        raise AppError(403, "Only admins may create service keys")
    return wanted


async def create_key(
    session: AsyncSession, principal: Principal, body: ApiKeyCreate, actor: Actor, prefix: str
) -> ApiKeyCreated:
    permissions = _check_scopes(principal, body)
    secret = mint_api_key(prefix)
    now = utcnow()
    key = ApiKey(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        name=body.name,
        key_prefix=secret[: len(prefix) + len("_live_") + PREFIX_HEX_CHARS],
        key_hash=api_key_digest(secret),
        permissions=permissions,
        kind=body.kind,
        created_at=now,
        expires_at=now + timedelta(days=body.expires_in_days) if body.expires_in_days else None,
    )
    await repository.add(session, key)
    await audit.record(
        session, actor, "api_key.created", resource_type="api_key", resource_id=key.id,
        metadata={"name": key.name, "key_prefix": key.key_prefix, "permissions": permissions, "kind": key.kind,
                  "user_id": key.user_id, "expires_at": key.expires_at},
    )
    return ApiKeyCreated(
        id=key.id, key=secret, key_prefix=key.key_prefix, name=key.name, permissions=permissions, kind=key.kind,
        user_id=key.user_id, created_at=key.created_at, expires_at=key.expires_at,
    )


def list_statement(
    principal: Principal, params: ListParams, *, kind: str | None, user_id: str | None, active: bool | None
) -> Select[Any]:
    """Admins see every key of the tenant; everyone else only their own."""
    statement = repository.list_statement(
        principal, owner_id=None if principal.is_admin else principal.user_id,
        kind=kind, user_id=user_id, active=active, now=utcnow(),
    )
    statement = apply_search(statement, params.search, repository.SEARCH_COLUMNS)
    return apply_sort(statement, params.sort, repository.SORT_FIELDS, repository.DEFAULT_ORDER)


async def list_keys(session: AsyncSession, statement: Select[Any], params: ListParams) -> Page[ApiKeyRead]:
    rows, total = await fetch_page(session, statement, params)
    now = utcnow()
    return Page[ApiKeyRead](data=[to_read(key, now) for key in rows], meta=params.meta(total))


def permissions_view(principal: Principal) -> GrantablePermissionList:
    return GrantablePermissionList(
        data=[GrantablePermission(name=name, description=description, grantable=name in principal.permissions)
              for name, description in SCOPES.items()]
    )


async def revoke_key(session: AsyncSession, principal: Principal, key_id: str, actor: Actor) -> ApiKeyRead:
    key = await repository.get(session, principal, key_id, for_update=True)
    if key is None or (not principal.is_admin and key.user_id != principal.user_id):
        raise AppError(404, "API key not found")
    if key.revoked_at is not None:
        raise AppError(409, "API key is already revoked")
    now = utcnow()
    key.revoked_at = now
    await session.flush()
    await audit.record(
        session, actor, "api_key.revoked", resource_type="api_key", resource_id=key.id,
        metadata={"name": key.name, "key_prefix": key.key_prefix, "user_id": key.user_id},
    )
    return to_read(key, now)
