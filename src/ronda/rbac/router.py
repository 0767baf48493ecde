"""Roles and permissions as the server enforces them (read straight from core.authz)."""

from __future__ import annotations

from typing import Any

from ronda.core.authz import ROLES, SCOPES, AuthenticatedDep
from ronda.core.uow import domain_router
from ronda.rbac.schemas import PermissionList, PermissionRead, RoleList, RoleRead

router = domain_router(prefix="/rbac", tags=["rbac"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing, invalid or expired credentials"}}

# Built once: the catalogue is fixed for the life of the process.
ROLE_LIST = RoleList(data=[
    RoleRead(name=name, description=description, permissions=sorted(permissions))
    for name, (description, permissions) in ROLES.items()
])
PERMISSION_LIST = PermissionList(data=[
    PermissionRead(name=name, description=description) for name, description in SCOPES.items()
])


@router.get("/roles", summary="Every role, what it is for, and the permissions it holds",
            response_model=RoleList, operation_id="rbac_roles", responses=ERRORS)
async def roles(principal: AuthenticatedDep) -> RoleList:
    return ROLE_LIST


@router.get("/permissions", summary="Every permission (API key scope) and what it allows",
            response_model=PermissionList, operation_id="rbac_permissions", responses=ERRORS)
async def permissions(principal: AuthenticatedDep) -> PermissionList:
    return PERMISSION_LIST
