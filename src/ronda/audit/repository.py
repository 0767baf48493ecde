"""All SQL for reading the audit log; every statement is scoped to the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit.models import AuditLog
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped

SORT_FIELDS: dict[str, Any] = {
    "created_at": AuditLog.created_at,
    "event_type": AuditLog.event_type,
    "actor_id": AuditLog.actor_id,
}
NEWEST_FIRST = (AuditLog.created_at.desc(), AuditLog.seq.desc())
SEARCH_COLUMNS = (AuditLog.event_name, AuditLog.actor_email, AuditLog.resource_id)


@dataclass(frozen=True, slots=True)
class AuditFilters:
    event_name: str | None = None
    event_type: str | None = None
    category: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    actor_id: str | None = None
    actor_type: str | None = None
    ip_address: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None
    end_inclusive: bool = True  # False when `end` is the midnight after a whole day


def list_statement(principal: Principal, filters: AuditFilters) -> Select[Any]:
    statement = scoped(select(AuditLog), AuditLog, principal)
    if filters.event_name is not None:
        # The seed calls the event type "event_name": accept either the human name or the dotted type.
        wanted = filters.event_name.lower()
        statement = statement.where(
            or_(func.lower(AuditLog.event_name) == wanted, AuditLog.event_type == wanted)
        )
    exact = {
        AuditLog.event_type: filters.event_type,
        AuditLog.category: filters.category,
        AuditLog.resource_type: filters.resource_type,
        AuditLog.resource_id: filters.resource_id,
        AuditLog.actor_id: filters.actor_id,
        AuditLog.actor_type: filters.actor_type,
        AuditLog.ip_address: filters.ip_address,
    }
    for column, value in exact.items():
        if value is not None:
            statement = statement.where(column == value)
    if filters.start is not None:
        statement = statement.where(AuditLog.created_at >= filters.start)
    if filters.end is not None:
        statement = statement.where(
            AuditLog.created_at <= filters.end if filters.end_inclusive else AuditLog.created_at < filters.end
        )
    return statement


async def get(session: AsyncSession, principal: Principal, log_id: str) -> AuditLog | None:
    statement = scoped(select(AuditLog).where(AuditLog.id == log_id), AuditLog, principal)
    return (await session.scalars(statement)).one_or_none()
