from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query
from starlette.responses import StreamingResponse

from ronda.audit.deps import ActorDep
from ronda.core.authz import AuthenticatedDep, require
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router
from ronda.tenants import service
from ronda.tenants.schemas import Plan, TenantCreate, TenantRead, TenantSettingsUpdate, TenantUpdate

router = domain_router(prefix="/tenants", tags=["tenants"])

SettingsDep = Annotated[Principal, Depends(require("settings_manage"))]
SuperAdminDep = Annotated[Principal, Depends(require("super_admin"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission this route needs"},
}
SUPER_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 403: {"description": "Only a super admin may manage tenants"},
}
ONE_TENANT: dict[int | str, dict[str, Any]] = {**SUPER_ERRORS, 404: {"description": "No such tenant"}}
CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "The name is taken, or the change would deactivate your own tenant"},
}


@router.get("/current", summary="Your tenant: plan, quota, lockout, MFA and compliance policy",
            response_model=TenantRead, operation_id="tenants_current", responses={401: ERRORS[401]})
async def current(principal: AuthenticatedDep, session: SessionDep) -> TenantRead:
    return await service.current(session, principal)


@router.patch(
    "/current",
    summary="Change your tenant's settings (plan and daily_quota: super admin only); each change is audited",
    response_model=TenantRead, operation_id="tenants_current_update",
    responses={**ERRORS, 403: {"description": "Needs settings_manage; plan and daily_quota need a super admin"},
               **CHANGE_ERRORS},
)
async def update_current(body: TenantSettingsUpdate, principal: SettingsDep, session: SessionDep,
                         actor: ActorDep) -> TenantRead:
    return await service.update_current(session, principal, body, actor)


@router.get("", summary="List every tenant (super admin)", response_model=Page[TenantRead],
            operation_id="tenants_list",
            responses={**SUPER_ERRORS,
                       200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "A page as JSON, or every match as CSV"}})
async def list_tenants(
    principal: SuperAdminDep, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
    plan: Annotated[Plan | None, Query(description="Only tenants on this plan")] = None,
    is_active: Annotated[bool | None, Query(description="Only active (true) or deactivated (false)")] = None,
) -> Page[TenantRead] | StreamingResponse:
    if params.csv:
        return service.export_tenants(runtime, params, plan=plan, is_active=is_active)
    return await service.list_tenants(session, params, plan=plan, is_active=is_active)


@router.post("", status_code=201, summary="Create a tenant (super admin); the slug is derived from the name",
             response_model=TenantRead, operation_id="tenants_create",
             responses={**SUPER_ERRORS, 409: {"description": "A tenant with that name exists"}})
async def create_tenant(body: TenantCreate, principal: SuperAdminDep, session: SessionDep,
                        actor: ActorDep) -> TenantRead:
    return await service.create_tenant(session, body, actor)


@router.get("/{tenant_id}", summary="One tenant (super admin)", response_model=TenantRead,
            operation_id="tenants_get", responses=ONE_TENANT)
async def get_tenant(tenant_id: str, principal: SuperAdminDep, session: SessionDep) -> TenantRead:
    return await service.get_tenant(session, tenant_id)


@router.patch("/{tenant_id}", summary="Change any tenant's settings, plan, quota or active state (super admin)",
              response_model=TenantRead, operation_id="tenants_update", responses={**ONE_TENANT, **CHANGE_ERRORS})
async def update_tenant(tenant_id: str, body: TenantUpdate, principal: SuperAdminDep, session: SessionDep,
                        actor: ActorDep) -> TenantRead:
    return await service.update_tenant(session, principal, tenant_id, body, actor)


@router.delete("/{tenant_id}", summary="Deactivate a tenant (super admin): its logins stop, its data stays",
               response_model=TenantRead, operation_id="tenants_delete",
               responses={**ONE_TENANT, 409: {"description": "You cannot deactivate your own tenant"}})
async def delete_tenant(tenant_id: str, principal: SuperAdminDep, session: SessionDep,
                        actor: ActorDep) -> TenantRead:
    return await service.delete_tenant(session, principal, tenant_id, actor)
