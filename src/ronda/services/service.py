"""Service inventory rules: visibility, ownership, status, audit. Flushes, never commits.

Who may do what: admins see and manage every service of the tenant; analysts, operators and
viewers read them all; a `user` sees only the services it owns (others are 404, as if absent)
and may edit those, but neither reassign them nor change their review schedule (it records a review);
only admins create and delete.
"""

from __future__ import annotations

from datetime import date
from operator import attrgetter
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.errors import AppError, not_found
from ronda.core.pagination import ListParams, Page, csv_response, fetch_page
from ronda.core.principal import Principal
from ronda.core.runtime import Runtime
from ronda.core.tenancy import scoped
from ronda.services import repository, status
from ronda.services.models import Service, ServiceReview
from ronda.services.policy import ServicePolicy
from ronda.services.repository import ServiceFilters
from ronda.services.schemas import NULLABLE, ServiceCreate, ServicePatch, ServiceRead
from ronda.tenants.models import Tenant

QUESTIONNAIRE = ("sso_enabled", "mfa_enforced", "audit_logging_enabled", "data_classification", "encrypted_at_rest",
                 "data_location")


async def policy_for(session: AsyncSession, tenant_id: str) -> ServicePolicy:
    tenant = await session.get(Tenant, tenant_id)
    return ServicePolicy.of(tenant.compliance_policy if tenant is not None else None)


def to_read(service: Service, policy: ServicePolicy, today: date) -> ServiceRead:
    return ServiceRead(
        id=service.id, tenant_id=service.tenant_id, name=service.name, description=service.description,
        category=service.category, url=service.url, owner_id=service.owner_id,
        data_classification=service.data_classification, sso_enabled=service.sso_enabled,
        mfa_enforced=service.mfa_enforced, audit_logging_enabled=service.audit_logging_enabled,
        encrypted_at_rest=service.encrypted_at_rest, data_location=service.data_location,
        review_frequency=service.review_frequency, status=status.effective_status(service, today),  # type: ignore[arg-type]
        issues=policy.issues(service), review_overdue=status.is_overdue(service.next_review_date, today),
        last_review_date=service.last_review_date, next_review_date=service.next_review_date,
        created_at=service.created_at, updated_at=service.updated_at,
    )


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _problem(field: str, reason: str) -> list[dict[str, str]]:
    return [{"field": field, "location": "body", "reason": reason}]


def require_admin(principal: Principal, what: str) -> None:
    if not principal.is_admin:
        raise AppError(403, f"Only an administrator may {what}")


async def visible_service(
    session: AsyncSession, principal: Principal, service_id: str, *, for_update: bool = False
) -> Service:
    found = await repository.get(session, principal, service_id, for_update=for_update)
    if found is None:
        raise not_found("Service")
    return found


async def _check_owner(session: AsyncSession, principal: Principal, owner_id: str) -> None:
    if not await repository.active_user_exists(session, principal.tenant_id, owner_id):
        raise AppError(400, "owner_id is not an active user of your tenant",
                       details=_problem("owner_id", "no such user"))


# --- lists ---------------------------------------------------------------------------------------


def csv_columns(today: date) -> list[tuple[str, Any]]:
    plain = ("id", "name", "category", "url", "owner_id", "data_classification", "sso_enabled", "mfa_enforced",
             "audit_logging_enabled", "encrypted_at_rest", "data_location", "review_frequency")
    columns: list[tuple[str, Any]] = [(name, attrgetter(name)) for name in plain]
    columns.append(("status", lambda service: status.effective_status(service, today)))
    columns.extend((name, attrgetter(name)) for name in ("last_review_date", "next_review_date", "created_at"))
    return columns


async def list_services(
    session: AsyncSession, rt: Runtime, principal: Principal, params: ListParams, filters: ServiceFilters,
    today: date,
) -> Page[ServiceRead] | Response:
    statement = repository.list_statement(principal, params, filters, today)
    if params.csv:
        return csv_response(rt.sessions, statement, csv_columns(today), "services.csv")
    rows, total = await fetch_page(session, statement, params)
    policy = await policy_for(session, principal.tenant_id)
    return Page[ServiceRead](data=[to_read(row, policy, today) for row in rows], meta=params.meta(total))


async def get_service(session: AsyncSession, principal: Principal, service_id: str, today: date) -> ServiceRead:
    found = await visible_service(session, principal, service_id)
    return to_read(found, await policy_for(session, principal.tenant_id), today)


# --- writes --------------------------------------------------------------------------------------


def _status_changed(session: AsyncSession, service: Service, old: str, today: date) -> None:
    new = status.effective_status(service, today)
    if new != old:
        events.queue(session, "service.status_changed", service.tenant_id,
                     {"service_id": service.id, "name": service.name, "owner_id": service.owner_id,
                      "old_status": old, "new_status": new})


async def create_service(
    session: AsyncSession, principal: Principal, body: ServiceCreate, actor: Actor, today: date
) -> ServiceRead:
    require_admin(principal, "add a service")
    if body.owner_id is not None:
        await _check_owner(session, principal, body.owner_id)
    service = Service(tenant_id=principal.tenant_id, created_by=principal.user_id or None, **body.model_dump())
    policy = await policy_for(session, principal.tenant_id)
    service.status = status.decide(service, policy, today)
    session.add(service)
    await session.flush()
    await audit.record(session, actor, "service.created", resource_type="service", resource_id=service.id,
                       metadata={"name": service.name, "category": service.category, "owner_id": service.owner_id,
                                 "data_classification": service.data_classification, "status": service.status})
    events.queue(session, "service.created", service.tenant_id,
                 {"service_id": service.id, "name": service.name, "owner_id": service.owner_id,
                  "status": service.status})
    return to_read(service, policy, today)


async def patch_service(
    session: AsyncSession, principal: Principal, service_id: str, body: ServicePatch, actor: Actor, today: date
) -> ServiceRead:
    service = await visible_service(session, principal, service_id, for_update=True)
    wanted: dict[str, Any] = {}
    for field in body.model_fields_set:
        value = getattr(body, field)
        if value is None and field not in NULLABLE:
            raise AppError(400, f"{field} cannot be null", details=_problem(field, "cannot be null"))
        wanted[field] = value
    changes = {field: {"old": _plain(getattr(service, field)), "new": _plain(value)}
               for field, value in wanted.items() if getattr(service, field) != value}
    if "owner_id" in changes:
        require_admin(principal, "change a service's owner")
        if wanted["owner_id"] is not None:
            await _check_owner(session, principal, wanted["owner_id"])
    if "next_review_date" in changes or "review_frequency" in changes:
        # The schedule is the admin's: an owner records a review instead of postponing one.
        require_admin(principal, "change a service's review schedule")
    policy = await policy_for(session, principal.tenant_id)
    if changes:
        old_status = status.effective_status(service, today)
        for field in changes:
            setattr(service, field, wanted[field])
        if "review_frequency" in changes and "next_review_date" not in wanted and service.last_review_date:
            # A new frequency reschedules the next review from the last one.
            rescheduled = status.next_review_after(service.last_review_date, service.review_frequency)
            changes["next_review_date"] = {"old": _plain(service.next_review_date), "new": rescheduled.isoformat()}
            service.next_review_date = rescheduled
        status.refresh(service, policy, today)
        if "next_review_date" in changes and service.next_review_date != service.overdue_notified_for:
            service.overdue_notified_for = None  # a new due date is a new period to warn about
        await session.flush()
        await audit.record(session, actor, "service.updated", resource_type="service", resource_id=service.id,
                           metadata={"changes": changes})
        _status_changed(session, service, old_status, today)
    return to_read(service, policy, today)


async def delete_service(session: AsyncSession, principal: Principal, service_id: str, actor: Actor) -> None:
    require_admin(principal, "delete a service")
    service = await visible_service(session, principal, service_id, for_update=True)
    removed = await session.execute(
        scoped(delete(ServiceReview), ServiceReview, principal).where(ServiceReview.service_id == service.id))
    await session.delete(service)
    await session.flush()
    await audit.record(session, actor, "service.deleted", resource_type="service", resource_id=service.id,
                       metadata={"name": service.name, "reviews_deleted": getattr(removed, "rowcount", None)})
    events.queue(session, "service.deleted", service.tenant_id, {"service_id": service.id, "name": service.name})
