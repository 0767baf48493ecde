"""All SQL of the reports domain: tenant reads through core.tenancy, the runners' queue by status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.reports.models import Report

NEWEST_FIRST = (Report.created_at.desc(), Report.id.desc())
SORT_FIELDS: dict[str, Any] = {"created_at": Report.created_at, "completed_at": Report.completed_at,
                               "status": Report.status, "type": Report.kind, "format": Report.format}


def list_statement(principal: Principal, status: str | None, kind: str | None, framework: str | None) -> Select[Any]:
    statement = scoped(select(Report), Report, principal)
    if status:
        statement = statement.where(Report.status == status)
    if kind:
        statement = statement.where(Report.kind == kind)
    if framework:
        statement = statement.where(Report.framework == framework)
    return statement


async def get(session: AsyncSession, principal: Principal, report_id: str) -> Report | None:
    return (await session.scalars(scoped(select(Report).where(Report.id == report_id), Report, principal))).first()


# --- the runners' queue (system work: by id, across tenants) -----------------------------------


async def oldest_pending(session: AsyncSession) -> str | None:
    return (await session.scalars(
        select(Report.id).where(Report.status == "pending").order_by(Report.created_at, Report.id).limit(1)
    )).first()


async def claim(session: AsyncSession, report_id: str, now: datetime, lease_until: datetime) -> bool:
    """pending -> running for this runner; false when another runner took it first."""
    result = await session.execute(
        update(Report).where(Report.id == report_id, Report.status == "pending")
        .values(status="running", started_at=now, lease_expires_at=lease_until, attempts=Report.attempts + 1)
        .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


async def renew(session: AsyncSession, report_id: str, lease_until: datetime) -> None:
    await session.execute(update(Report).where(Report.id == report_id, Report.status == "running")
                          .values(lease_expires_at=lease_until).execution_options(synchronize_session=False))


async def release(session: AsyncSession, report_id: str) -> None:
    """Back to the queue (this runner is stopping)."""
    await session.execute(update(Report).where(Report.id == report_id, Report.status == "running")
                          .values(status="pending", lease_expires_at=None, attempts=Report.attempts - 1)
                          .execution_options(synchronize_session=False))


async def expired(session: AsyncSession, now: datetime) -> list[Report]:
    """Running reports whose runner stopped renewing its lease (the process died)."""
    return list((await session.scalars(
        select(Report).where(Report.status == "running", Report.lease_expires_at < now)
        .order_by(Report.created_at).limit(100)
    )).all())
