"""The overall dashboard: device and service posture, what is due, and recent activity.

A `user` sees the dashboard of what it owns (its devices and services, its own actions); other
roles see the tenant's. Recent activity is the tenant's audit log for those who may read it
(audit_read), otherwise the caller's own records.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.audit.models import AuditLog
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.dashboard.schemas import Activity, Dashboard, DeviceStatusCounts, DeviceSummary, ServiceSummary
from ronda.devices import posture
from ronda.devices import repository as devices
from ronda.devices.models import Device
from ronda.services import repository as services
from ronda.services.dashboard import review_due, score
from ronda.services.models import Service
from ronda.services.schemas import StatusCounts
from ronda.services.service import policy_for
from ronda.services.status import status_sql

ACTIVITY_LIMIT = 20
DUE_LIMIT = 20


async def _device_counts(session: AsyncSession, principal: Principal, now: datetime, own: bool) -> dict[str, int]:
    stale = await posture.stale_before(session, principal.tenant_id, now)
    status = devices.status_sql(stale)
    statement = scoped(cast(Select[Any], select(status, func.count())), Device, principal).group_by(status)
    if own:
        statement = statement.where(Device.user_id == principal.user_id)
    return {str(name): int(count) for name, count in (await session.execute(statement)).all()}


async def _services_due(session: AsyncSession, principal: Principal, today: date, owner: str | None) -> list[Service]:
    statement = scoped(select(Service), Service, principal).where(status_sql(today) != "compliant")
    if owner is not None:
        statement = statement.where(Service.owner_id == owner)
    # Non-compliant first, then by due date (never scheduled first), then name.
    urgent = (Service.status == "non_compliant").desc()
    statement = statement.order_by(urgent, Service.next_review_date.asc().nulls_first(), Service.name, Service.id)
    return list((await session.scalars(statement.limit(DUE_LIMIT))).all())


async def _activity(session: AsyncSession, principal: Principal) -> list[Activity]:
    statement = scoped(select(AuditLog), AuditLog, principal)
    if "audit_read" not in principal.permissions:
        statement = statement.where(AuditLog.actor_id == principal.actor_id)
    statement = statement.order_by(AuditLog.created_at.desc(), AuditLog.seq.desc()).limit(ACTIVITY_LIMIT)
    return [Activity.model_validate(row) for row in (await session.scalars(statement)).all()]


async def dashboard(session: AsyncSession, principal: Principal, now: datetime, days: int | None) -> Dashboard:
    today = now.date()
    own = principal.role == "user"
    owner = principal.user_id if own else None
    tenant_id = principal.tenant_id
    window = days if days is not None else (await policy_for(session, tenant_id)).upcoming_review_days

    device_counts = await _device_counts(session, principal, now, own)
    evaluated = {k: v for k, v in device_counts.items() if k != "unknown"}
    service_counts = await services.status_counts(session, tenant_id, today, owner_id=owner)
    upcoming = await services.upcoming(session, tenant_id, today, today + timedelta(days=window), owner_id=owner)

    compliant = evaluated.get("compliant", 0) + service_counts.get("compliant", 0)
    judged = sum(evaluated.values()) + sum(service_counts.values())
    return Dashboard(
        compliance_score=None if judged == 0 else round(100.0 * compliant / judged, 1),
        devices=DeviceSummary(
            total=sum(device_counts.values()),
            by_status=DeviceStatusCounts(**{k: v for k, v in device_counts.items()
                                            if k in DeviceStatusCounts.model_fields}),
            compliance_score=score(evaluated),
        ),
        services=ServiceSummary(
            total=sum(service_counts.values()),
            by_status=StatusCounts(**{k: v for k, v in service_counts.items() if k in StatusCounts.model_fields}),
            compliance_score=score(service_counts),
            never_reviewed=await services.never_reviewed(session, tenant_id, owner_id=owner),
            overdue=await services.overdue_count(session, tenant_id, today, owner_id=owner),
        ),
        services_due=[review_due(s, today) for s in await _services_due(session, principal, today, owner)],
        upcoming_reviews=[review_due(s, today) for s in upcoming],
        recent_activity=await _activity(session, principal),
        scope="own" if own else "tenant",
        as_of=today,
    )
