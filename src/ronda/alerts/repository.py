"""All SQL for alerts; every statement is scoped to a tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.alerts.models import ACTIVE_WHERE, Alert
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped

SORT_FIELDS: dict[str, Any] = {
    "created_at": Alert.created_at,
    "last_seen_at": Alert.last_seen_at,
    "severity": Alert.severity,
    "status": Alert.status,
    "title": Alert.title,
    "occurrence_count": Alert.occurrence_count,
}
DEFAULT_ORDER = (Alert.created_at.desc(), Alert.id.desc())
SEARCH_COLUMNS = (Alert.title, Alert.description, Alert.device_ip)


@dataclass(frozen=True, slots=True)
class AlertFilters:
    severity: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    source: str | None = None
    site_id: str | None = None
    device_id: str | None = None
    rule: str | None = None
    since: datetime | None = None


def list_statement(principal: Principal, filters: AlertFilters) -> Select[Any]:
    statement = scoped(select(Alert), Alert, principal)
    if filters.severity:
        statement = statement.where(Alert.severity.in_(filters.severity))
    if filters.status:
        statement = statement.where(Alert.status.in_(filters.status))
    if filters.source is not None:
        statement = statement.where(Alert.source == filters.source)
    if filters.site_id is not None:
        statement = statement.where(Alert.site_id == filters.site_id)
    if filters.device_id is not None:
        statement = statement.where(Alert.device_id == filters.device_id)
    if filters.rule is not None:
        statement = statement.where(Alert.rule == filters.rule)
    if filters.since is not None:
        statement = statement.where(Alert.created_at >= filters.since)
    return statement


async def get(session: AsyncSession, principal: Principal | str, alert_id: str, *, for_update: bool = False
              ) -> Alert | None:
    statement = scoped(select(Alert).where(Alert.id == alert_id), Alert, principal)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def upsert_active(session: AsyncSession, values: dict[str, Any], now: datetime) -> tuple[str, bool]:
    """Insert the alert, or (an active one of the same tenant, rule and subject exists) count one more
    occurrence of it. Atomic in the database, so concurrent triggers never make two. Returns the
    alert's id and whether it was created."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    base = insert(Alert).values(**values)
    statement = base.on_conflict_do_update(
        index_elements=[Alert.tenant_id, Alert.rule, Alert.subject],
        index_where=text(ACTIVE_WHERE),
        set_={"occurrence_count": Alert.occurrence_count + 1, "last_seen_at": now, "updated_at": now},
    ).returning(Alert.id, Alert.occurrence_count)
    row = (await session.execute(statement)).one()
    return str(row[0]), int(row[1]) == 1


async def active_for(session: AsyncSession, tenant_id: str, rule: str, subject: str) -> Alert | None:
    statement = scoped(select(Alert), Alert, tenant_id).where(
        Alert.rule == rule, Alert.subject == subject, Alert.status != "resolved"
    )
    return (await session.scalars(statement)).one_or_none()
