"""Security reviews: the questionnaire snapshot, the schedule it sets, the status it decides.

A review dated on or after the service's last review becomes the service's current state (its
answers, last_review_date, next_review_date, status). An older review (a backfilled record) is
kept in the history without overwriting the newer state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from operator import attrgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ronda.audit import service as audit
from ronda.audit.service import Actor
from ronda.core import events
from ronda.core.errors import AppError
from ronda.core.pagination import ListParams, Page, csv_response, fetch_page
from ronda.core.principal import Principal
from ronda.core.runtime import Runtime
from ronda.services import repository, status
from ronda.services.models import ServiceReview
from ronda.services.schemas import ReviewCreate, ReviewRead
from ronda.services.service import QUESTIONNAIRE, policy_for, visible_service


def _problem(field: str, reason: str) -> list[dict[str, str]]:
    return [{"field": field, "location": "body", "reason": reason}]


REVIEW_CSV: list[tuple[str, Callable[[Any], Any]]] = [
    (name, attrgetter(name)) for name in (
        "id", "service_id", "reviewer_id", "review_date", "sso_enabled", "mfa_enforced", "audit_logging_enabled",
        "data_classification", "encrypted_at_rest", "data_location", "findings", "notes", "next_review_date",
        "status", "created_at")
]


async def list_reviews(
    session: AsyncSession, rt: Runtime, principal: Principal, service_id: str, params: ListParams
) -> Page[ReviewRead] | Response:
    """The review history, newest first; as CSV it is the audit evidence for one service."""
    await visible_service(session, principal, service_id)
    statement = repository.reviews_statement(principal, service_id, params)
    if params.csv:
        return csv_response(rt.sessions, statement, REVIEW_CSV, f"{service_id}-reviews.csv")
    rows, total = await fetch_page(session, statement, params)
    return Page[ReviewRead](data=[ReviewRead.model_validate(row) for row in rows], meta=params.meta(total))


async def create_review(
    session: AsyncSession, principal: Principal, service_id: str, body: ReviewCreate, actor: Actor, today: date
) -> ReviewRead:
    service = await visible_service(session, principal, service_id, for_update=True)
    review_date = body.review_date or today
    if review_date > today:
        raise AppError(400, "review_date cannot be in the future", details=_problem("review_date", "in the future"))
    next_date = body.next_review_date or status.next_review_after(review_date, service.review_frequency)
    if next_date <= review_date:
        raise AppError(400, "next_review_date must be after review_date",
                       details=_problem("next_review_date", "not after review_date"))
    answers = {name: getattr(body, name) if getattr(body, name) is not None else getattr(service, name)
               for name in QUESTIONNAIRE}
    policy = await policy_for(session, principal.tenant_id)
    current = service.last_review_date is None or review_date >= service.last_review_date
    old_status = status.effective_status(service, today)
    review = ServiceReview(
        tenant_id=principal.tenant_id, service_id=service.id, reviewer_id=principal.user_id or None,
        review_date=review_date, next_review_date=next_date, findings=body.findings, notes=body.notes, **answers,
    )
    if current:
        for name, value in answers.items():
            setattr(service, name, value)
        service.last_review_date = review_date
        service.next_review_date = next_date
        service.overdue_notified_for = None
        status.refresh(service, policy, today)
        review.status = service.status
    else:
        review.status = "non_compliant" if policy.issues(review) else "compliant"
    session.add(review)
    await session.flush()
    await audit.record(session, actor, "service.reviewed", resource_type="service", resource_id=service.id,
                       metadata={"review_id": review.id, "review_date": review_date.isoformat(),
                                 "next_review_date": next_date.isoformat(), "status": review.status,
                                 "current": current, "answers": answers})
    events.queue(session, "service.reviewed", service.tenant_id,
                 {"service_id": service.id, "review_id": review.id, "name": service.name,
                  "status": review.status, "next_review_date": next_date.isoformat()})
    new_status = status.effective_status(service, today)
    if new_status != old_status:
        events.queue(session, "service.status_changed", service.tenant_id,
                     {"service_id": service.id, "name": service.name, "owner_id": service.owner_id,
                      "old_status": old_status, "new_status": new_status})
    return ReviewRead.model_validate(review)
