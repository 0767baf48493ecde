"""A service's status and review schedule: pure rules first, then the two that write.

- `non_compliant`: the current answers break the tenant's service policy (ronda.services.policy);
  it wins over the rest (a critical issue needs attention whatever the review date);
- `needs_review`: never reviewed, or the next review date has passed (today > next_review_date);
- `compliant`: otherwise.

The stored `status` is decided at each write; time alone only turns `compliant` into
`needs_review`, so readers apply `effective_status()` (and its SQL twin) against today's date, and
the overdue sweeper (ronda.services.overdue) writes that flip back and publishes it once.
Every function takes `today` from its caller: the clock is the caller's, so tests fix it.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.tenancy import scoped
from ronda.services.models import Service
from ronda.services.policy import ServicePolicy

FREQUENCY_MONTHS: dict[str, int] = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_review_after(review_date: date, frequency: str) -> date:
    return add_months(review_date, FREQUENCY_MONTHS.get(frequency, 12))


def is_overdue(next_review_date: date | None, today: date) -> bool:
    return next_review_date is not None and today > next_review_date


def decide(service: Service, policy: ServicePolicy, today: date) -> str:
    """The status of a service's current answers and schedule under the policy, as of `today`."""
    if policy.issues(service):
        return "non_compliant"
    if service.last_review_date is None or service.next_review_date is None:
        return "needs_review"
    return "needs_review" if is_overdue(service.next_review_date, today) else "compliant"


def effective_status(service: Service, today: date) -> str:
    """The stored status as of `today`: a compliant service whose review date passed needs review."""
    if service.status == "compliant" and (
        service.next_review_date is None or is_overdue(service.next_review_date, today)
    ):
        return "needs_review"
    return service.status


def status_sql(today: date) -> ColumnElement[str]:
    """effective_status() in SQL, for the status filter and the dashboards' counts."""
    lapsed = or_(Service.next_review_date.is_(None), Service.next_review_date < today)
    return case((and_(Service.status == "compliant", lapsed), literal("needs_review")), else_=Service.status)


def refresh(service: Service, policy: ServicePolicy, today: date) -> bool:
    """Re-decide a service's stored status; True when it changed."""
    status = decide(service, policy, today)
    if status == service.status:
        return False
    service.status = status
    return True


async def reevaluate_tenant(
    session: AsyncSession, tenant_id: str, compliance_policy: Mapping[str, Any] | None, today: date
) -> int:
    """After a policy change: re-decide every service of the tenant; returns how many changed."""
    policy = ServicePolicy.of(compliance_policy)
    services = (await session.scalars(scoped(select(Service), Service, tenant_id))).all()
    changed = sum(refresh(service, policy, today) for service in services)
    if changed:
        await session.flush()
    return changed
