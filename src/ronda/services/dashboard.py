"""GET /services/my-dashboard: the caller's services by status, with overdue and upcoming reviews."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.principal import Principal
from ronda.services import repository, status
from ronda.services.models import Service
from ronda.services.schemas import MyServicesDashboard, ReviewDue, StatusCounts
from ronda.services.service import policy_for


def review_due(service: Service, today: date) -> ReviewDue:
    due = service.next_review_date
    return ReviewDue(
        id=service.id, name=service.name, category=service.category, owner_id=service.owner_id,
        status=status.effective_status(service, today),  # type: ignore[arg-type]
        last_review_date=service.last_review_date, next_review_date=due,
        days_until_due=None if due is None else (due - today).days,
    )


def score(counts: dict[str, int]) -> float | None:
    total = sum(counts.values())
    return None if total == 0 else round(100.0 * counts.get("compliant", 0) / total, 1)


async def my_dashboard(
    session: AsyncSession, principal: Principal, today: date, days: int | None
) -> MyServicesDashboard:
    """Counts over every service the caller owns; `days` (default: the tenant policy's
    upcoming_review_days) is how far ahead upcoming reviews are listed."""
    tenant_id, owner = principal.tenant_id, principal.user_id
    window = days if days is not None else (await policy_for(session, tenant_id)).upcoming_review_days
    counts = await repository.status_counts(session, tenant_id, today, owner_id=owner)
    overdue = await repository.overdue(session, tenant_id, today, owner_id=owner)
    upcoming = await repository.upcoming(session, tenant_id, today, today + timedelta(days=window), owner_id=owner)
    return MyServicesDashboard(
        total_services=sum(counts.values()),
        by_status=StatusCounts(**{k: v for k, v in counts.items() if k in StatusCounts.model_fields}),
        by_category=await repository.category_counts(session, tenant_id, owner_id=owner),
        compliance_score=score(counts),
        never_reviewed=await repository.never_reviewed(session, tenant_id, owner_id=owner),
        overdue_reviews=[review_due(s, today) for s in overdue],
        upcoming_reviews=[review_due(s, today) for s in upcoming],
        as_of=today,
    )
