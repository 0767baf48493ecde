"""Permissions, what each role holds, and require(...): the dependency every route declares."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request

from ronda.core.errors import AppError
from ronda.core.principal import Principal, get_principal

SCOPES: dict[str, str] = {
    "devices_read": "Read devices, their data and ports",
    "devices_write": "Create, change and delete devices",
    "scans_read": "Read scans and their results",
    "scans_write": "Start and stop scans",
    "alerts_read": "Read alerts",
    "alerts_write": "Acknowledge and resolve alerts",
    "cve_read": "Read CVE data and matches",
    "reports_read": "Read and download reports",
    "reports_write": "Generate reports",
    "services_read": "Read services and security reviews",
    "services_write": "Create and change services and reviews",
    "users_manage": "Manage users of the tenant",
    "api_keys_manage": "Create, list and revoke API keys",
    "audit_read": "Read and verify the audit log",
    "webhooks_manage": "Manage webhooks",
    "settings_manage": "Change tenant settings and policy",
    "agent": "Enrol a device, send heartbeats and reports",
}
ALL_SCOPES = frozenset(SCOPES)
READ_ALL = frozenset({"devices_read", "scans_read", "alerts_read", "cve_read", "reports_read", "services_read"})

ROLES: dict[str, tuple[str, frozenset[str]]] = {
    "super_admin": ("Everything, in every tenant", ALL_SCOPES - {"agent"}),
    "admin": ("Everything in its tenant", ALL_SCOPES - {"agent"}),
    "analyst": (
        "Reads everything, generates reports, reads the audit log",
        READ_ALL | {"reports_write", "audit_read", "api_keys_manage"},
    ),
    "operator": (
        "Reads everything, runs scans, handles alerts",
        READ_ALL | {"scans_write", "alerts_write", "api_keys_manage"},
    ),
    "user": (
        "Own devices, services it owns, reads reports",
        frozenset({"devices_read", "devices_write", "services_read", "services_write", "reports_read"}),
    ),
    "viewer": ("Read-only", READ_ALL),
    "agent": ("Device enrolment, heartbeat and reports only", frozenset({"agent"})),
}
ADMIN_ROLES = frozenset({"admin", "super_admin"})
HUMAN_ROLES = tuple(r for r in ROLES if r != "agent")


def role_permissions(role: str) -> frozenset[str]:
    return ROLES.get(role, ("", frozenset()))[1]


def require(*permissions: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A dependency: the caller must be authenticated and hold every named permission.

    It takes the request itself rather than depending on get_principal: one dependency fewer for
    FastAPI to solve on every request (get_principal remembers the caller for the request)."""
    unknown = set(permissions) - ALL_SCOPES - {"super_admin"}
    if unknown:
        raise ValueError(f"unknown permissions {unknown}")
    super_admin_only = "super_admin" in permissions
    needed = tuple(p for p in permissions if p != "super_admin")

    async def dependency(request: Request) -> Principal:
        principal = await get_principal(request)
        if super_admin_only and principal.role != "super_admin":
            raise AppError(403, "Only a super admin may do this")
        missing = [p for p in needed if p not in principal.permissions]
        if missing:
            raise AppError(403, f"Missing permission: {', '.join(missing)}")
        return principal

    dependency.__name__ = "require_" + "_".join(permissions or ("auth",))
    return dependency


AuthenticatedDep = Annotated[Principal, Depends(require())]
