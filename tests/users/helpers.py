"""Shared by the users and tenants tests: audit records read straight from the table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ronda.audit.models import AuditLog
from tests.conftest import Factory

HUMAN_ROLES = ("super_admin", "admin", "analyst", "operator", "user", "viewer")
ALL_ROLES = (*HUMAN_ROLES, "agent")
ADMINS = ("super_admin", "admin")


async def audit_events(
    factory: Factory, tenant_id: str, event_type: str, resource_id: str | None = None
) -> list[AuditLog]:
    """The tenant's audit records of one type (optionally about one resource), oldest first."""
    statement = select(AuditLog).where(AuditLog.tenant_id == tenant_id, AuditLog.event_type == event_type)
    if resource_id is not None:
        statement = statement.where(AuditLog.resource_id == resource_id)
    async with factory.runtime.sessions() as session:
        return list((await session.scalars(statement.order_by(AuditLog.seq))).all())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def metadata(record: AuditLog) -> dict[str, Any]:
    return dict(record.details or {})
