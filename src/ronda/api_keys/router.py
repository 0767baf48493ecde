"""API keys at /api-keys, and the same routes at /keys (hidden from the OpenAPI document)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Query
from starlette.responses import Response

from ronda.api_keys import service
from ronda.api_keys.models import ApiKey
from ronda.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, GrantablePermissionList
from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page, csv_response
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.timeutil import utcnow
from ronda.core.uow import SessionDep, domain_router

router = domain_router(tags=["api_keys"])

PATHS = ("/api-keys", "/keys")  # the first is canonical; the alias stays out of the schema
KeyManager = Annotated[Principal, Depends(require("api_keys_manage"))]
F = TypeVar("F", bound=Callable[..., Any])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request or unknown permission"},
    401: {"description": "Missing, invalid, expired or revoked credentials"},
    403: {"description": "Missing api_keys_manage, or a scope the caller does not hold"},
}


def _route(method: str, path: str, *, operation_id: str, **kwargs: Any) -> Callable[[F], F]:
    """Register one handler under both prefixes."""

    def decorate(handler: F) -> F:
        for base in PATHS:
            canonical = base == PATHS[0]
            router.add_api_route(
                base + path, handler, methods=[method], include_in_schema=canonical,
                operation_id=operation_id if canonical else f"{operation_id}_alias", **kwargs,
            )
        return handler

    return decorate


def _csv_columns() -> list[tuple[str, Callable[[ApiKey], Any]]]:
    now = utcnow()
    return [
        ("id", lambda k: k.id), ("name", lambda k: k.name), ("key_prefix", lambda k: k.key_prefix),
        ("kind", lambda k: k.kind), ("user_id", lambda k: k.user_id), ("permissions", lambda k: k.permissions),
        ("is_active", lambda k: service.is_active(k, now)), ("created_at", lambda k: k.created_at),
        ("expires_at", lambda k: k.expires_at), ("last_used_at", lambda k: k.last_used_at),
        ("revoked_at", lambda k: k.revoked_at),
    ]


@_route("POST", "", operation_id="api_keys_create", status_code=201, response_model=ApiKeyCreated,
        summary="Create an API key (the key is shown only in this response)",
        responses={**ERRORS, 201: {"description": "The new key, shown once"}})
async def create_key(
    body: ApiKeyCreate, principal: KeyManager, session: SessionDep, runtime: RuntimeDep, actor: ActorDep
) -> ApiKeyCreated:
    return await service.create_key(session, principal, body, actor, runtime.settings.api_key_prefix)


@_route("GET", "", operation_id="api_keys_list", response_model=Page[ApiKeyRead],
        summary="List API keys (admins: every key of the tenant; others: their own)",
        responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
async def list_keys(
    principal: KeyManager, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
    kind: Annotated[Literal["standard", "service"] | None, Query(description="standard or service")] = None,
    user_id: Annotated[str | None, Query(max_length=40, description="Keys created by this user")] = None,
    active: Annotated[bool | None, Query(description="true: usable keys; false: revoked or expired")] = None,
) -> Page[ApiKeyRead] | Response:
    statement = service.list_statement(principal, params, kind=kind, user_id=user_id, active=active)
    if params.csv:
        return csv_response(runtime.sessions, statement, _csv_columns(), "api-keys.csv")
    return await service.list_keys(session, statement, params)


@_route("GET", "/permissions", operation_id="api_keys_permissions", response_model=GrantablePermissionList,
        summary="Every scope a key can have, and whether you may grant it", responses=ERRORS)
async def list_permissions(principal: KeyManager) -> GrantablePermissionList:
    return service.permissions_view(principal)


@_route("DELETE", "/{key_id}", operation_id="api_keys_revoke", response_model=ApiKeyRead,
        summary="Revoke an API key (your own; admins: any key of the tenant)",
        responses={**ERRORS, 404: {"description": "No such key in your tenant"},
                   409: {"description": "The key is already revoked"}})
async def revoke_key(key_id: str, principal: KeyManager, session: SessionDep, actor: ActorDep) -> ApiKeyRead:
    return await service.revoke_key(session, principal, key_id, actor)
