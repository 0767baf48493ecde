"""Service and review queries; every one goes through core.tenancy.scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ronda.core.pagination import ListParams, apply_search, apply_sort
from ronda.core.principal import Principal
from ronda.core.tenancy import scoped
from ronda.services.models import Service, ServiceReview
from ronda.services.status import status_sql
from ronda.users.models import User

SORTS: dict[str, Any] = {
    "name": Service.name, "category": Service.category,
    "data_classification": Service.data_classification, "next_review_date": Service.next_review_date,
    "last_review_date": Service.last_review_date, "created_at": Service.created_at,
    "updated_at": Service.updated_at,
}
REVIEW_SORTS: dict[str, Any] = {"review_date": ServiceReview.review_date, "created_at": ServiceReview.created_at}


def owns_only(principal: Principal) -> bool:
    """The `user` role sees and edits only the services it owns (product.md §5, §8)."""
    return principal.role == "user"


def visible(principal: Principal) -> Select[Any]:
    statement = scoped(select(Service), Service, principal)
    if owns_only(principal):
        statement = statement.where(Service.owner_id == principal.user_id)
    return statement


async def get(
    session: AsyncSession, principal: Principal, service_id: str, *, for_update: bool = False
) -> Service | None:
    statement = visible(principal).where(Service.id == service_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def active_user_exists(session: AsyncSession, tenant_id: str, user_id: str) -> bool:
    statement = scoped(select(User.id), User, tenant_id).where(User.id == user_id, User.is_active.is_(True))
    return (await session.scalar(statement)) is not None


@dataclass(frozen=True, slots=True)
class ServiceFilters:
    status: str | None = None
    category: str | None = None
    owner_id: str | None = None
    data_classification: str | None = None


def list_statement(
    principal: Principal, params: ListParams, filters: ServiceFilters, today: date
) -> Select[Any]:
    statement = visible(principal)
    if filters.status is not None:
        statement = statement.where(status_sql(today) == filters.status)
    if filters.category is not None:
        statement = statement.where(Service.category == filters.category)
    if filters.owner_id is not None:
        statement = statement.where(Service.owner_id == filters.owner_id)
    if filters.data_classification is not None:
        statement = statement.where(Service.data_classification == filters.data_classification)
    statement = apply_search(statement, params.search, [Service.name, Service.description, Service.url])
    sorts = {**SORTS, "status": status_sql(today)}  # the status as of today, as the filter reads it
    return apply_sort(statement, params.sort, sorts, [Service.name.asc(), Service.id.asc()])


def reviews_statement(principal: Principal, service_id: str, params: ListParams) -> Select[Any]:
    statement = scoped(select(ServiceReview), ServiceReview, principal).where(ServiceReview.service_id == service_id)
    default = [ServiceReview.review_date.desc(), ServiceReview.created_at.desc(), ServiceReview.id.desc()]
    return apply_sort(statement, params.sort, REVIEW_SORTS, default)


async def status_counts(
    session: AsyncSession, tenant_id: str, today: date, owner_id: str | None = None
) -> dict[str, int]:
    status = status_sql(today)
    counted = cast(Select[Any], select(status, func.count()))
    statement = scoped(counted, Service, tenant_id).group_by(status)
    if owner_id is not None:
        statement = statement.where(Service.owner_id == owner_id)
    return {str(name): int(count) for name, count in (await session.execute(statement)).all()}


async def category_counts(session: AsyncSession, tenant_id: str, owner_id: str | None = None) -> dict[str, int]:
    counted = cast(Select[Any], select(Service.category, func.count()))
    statement = scoped(counted, Service, tenant_id).group_by(Service.category)
    if owner_id is not None:
        statement = statement.where(Service.owner_id == owner_id)
    return {str(name): int(count) for name, count in (await session.execute(statement)).all()}


async def never_reviewed(session: AsyncSession, tenant_id: str, owner_id: str | None = None) -> int:
    statement = scoped(select(func.count()).select_from(Service), Service, tenant_id).where(
        Service.last_review_date.is_(None))
    if owner_id is not None:
        statement = statement.where(Service.owner_id == owner_id)
    return int(await session.scalar(statement) or 0)


async def overdue_count(session: AsyncSession, tenant_id: str, today: date, owner_id: str | None = None) -> int:
    statement = scoped(select(func.count()).select_from(Service), Service, tenant_id).where(
        Service.next_review_date < today)
    if owner_id is not None:
        statement = statement.where(Service.owner_id == owner_id)
    return int(await session.scalar(statement) or 0)


async def overdue(
    session: AsyncSession, tenant_id: str, today: date, owner_id: str | None = None, limit: int = 50
) -> list[Service]:
    """Services whose next review date has passed, most overdue first."""
    statement = scoped(select(Service), Service, tenant_id).where(Service.next_review_date < today)
    if owner_id is not None:
        statement = statement.where(Service.owner_id == owner_id)
    statement = statement.order_by(Service.next_review_date.asc(), Service.id.asc()).limit(limit)
    return list((await session.scalars(statement)).all())


async def upcoming(
    session: AsyncSession, tenant_id: str, today: date, until: date, owner_id: str | None = None, limit: int = 50
) -> list[Service]:
    """Services whose next review falls between today and `until` (inclusive), soonest first."""
    statement = scoped(select(Service), Service, tenant_id).where(
        Service.next_review_date >= today, Service.next_review_date <= until)
    if owner_id is not None:
        statement = statement.where(Service.owner_id == owner_id)
    statement = statement.order_by(Service.next_review_date.asc(), Service.id.asc()).limit(limit)
    return list((await session.scalars(statement)).all())
