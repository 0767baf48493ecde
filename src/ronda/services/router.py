"""Services (the SaaS inventory), their security reviews and the owner's dashboard (product.md §8)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.errors import AppError
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router
from ronda.services import dashboard, reviews, service
from ronda.services.clock import TodayDep
from ronda.services.policy import Classification
from ronda.services.repository import ServiceFilters
from ronda.services.schemas import (
    Category,
    MyServicesDashboard,
    ReviewCreate,
    ReviewRead,
    ServiceCreate,
    ServicePatch,
    ServiceRead,
    ServiceStatus,
)

router = domain_router(prefix="/services", tags=["services"])

ReaderDep = Annotated[Principal, Depends(require("services_read"))]
WriterDep = Annotated[Principal, Depends(require("services_write"))]
_writer = require("services_write")


async def _admin_writer(request: Request) -> Principal:
    # A dependency (not a check in the handler) so a non-admin hears 403 before any body validation.
    principal = await _writer(request)
    if not principal.is_admin:
        raise AppError(403, "Only an administrator may add or delete services")
    return principal


AdminDep = Annotated[Principal, Depends(_admin_writer)]

BASE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission"},
}
ONE_ERRORS: dict[int | str, dict[str, Any]] = {
    **BASE_ERRORS,
    404: {"description": "No such service in your tenant (or, for the user role, among the services you own)"},
}
CSV_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "The page as JSON, or every matching service as CSV with `?format=csv` or `Accept: text/csv`"},
}


def service_filters(
    status: Annotated[ServiceStatus | None, Query(description="compliant, needs_review or non_compliant")] = None,
    category: Annotated[Category | None, Query(description="development, communication, ...")] = None,
    owner_id: Annotated[str | None, Query(max_length=40, description="Owned by this user")] = None,
    data_classification: Annotated[Classification | None, Query(description="public ... restricted")] = None,
) -> ServiceFilters:
    return ServiceFilters(status=status, category=category, owner_id=owner_id,
                          data_classification=data_classification)


FiltersDep = Annotated[ServiceFilters, Depends(service_filters)]


@router.get("", summary="List services (filters, search, sort, both pagination styles, CSV)",
            response_model=Page[ServiceRead], operation_id="services_list",
            responses={**BASE_ERRORS, **CSV_CONTENT},
            description="Admins, analysts, operators and viewers see every service of the tenant; the user role "
                        "sees the services it owns. `search` matches name, description and URL. Sort by name, "
                        "category, status, data_classification, next_review_date, last_review_date, created_at.")
async def list_services(principal: ReaderDep, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
                        filters: FiltersDep, today: TodayDep) -> Page[ServiceRead] | Response:
    return await service.list_services(session, runtime, principal, params, filters, today)


@router.post("", status_code=201, summary="Add a service (admin)", response_model=ServiceRead,
             operation_id="services_create", responses=BASE_ERRORS)
async def create_service(body: ServiceCreate, principal: AdminDep, session: SessionDep, actor: ActorDep,
                         today: TodayDep) -> ServiceRead:
    return await service.create_service(session, principal, body, actor, today)


@router.get("/my-dashboard", summary="Your services by status, with overdue and upcoming reviews",
            response_model=MyServicesDashboard, operation_id="services_my_dashboard", responses=BASE_ERRORS)
async def my_dashboard(
    principal: ReaderDep, session: SessionDep, today: TodayDep,
    days: Annotated[int | None, Query(ge=1, le=365, description="Upcoming window in days (default: policy)")] = None,
) -> MyServicesDashboard:
    return await dashboard.my_dashboard(session, principal, today, days)


@router.get("/{service_id}", summary="One service", response_model=ServiceRead, operation_id="services_get",
            responses=ONE_ERRORS)
async def get_service(service_id: str, principal: ReaderDep, session: SessionDep, today: TodayDep) -> ServiceRead:
    return await service.get_service(session, principal, service_id, today)


@router.patch("/{service_id}", summary="Change a service (admin, or the user who owns it)",
              response_model=ServiceRead, operation_id="services_update",
              responses={**ONE_ERRORS, 403: {"description": "Lacks services_write, or a non-admin changing owner_id"}})
async def patch_service(service_id: str, body: ServicePatch, principal: WriterDep, session: SessionDep,
                        actor: ActorDep, today: TodayDep) -> ServiceRead:
    return await service.patch_service(session, principal, service_id, body, actor, today)


@router.delete("/{service_id}", status_code=204, summary="Delete a service and its reviews (admin)",
               response_class=Response, operation_id="services_delete", responses=ONE_ERRORS)
async def delete_service(service_id: str, principal: AdminDep, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_service(session, principal, service_id, actor)
    return Response(status_code=204)


@router.get("/{service_id}/reviews", summary="The service's security reviews, newest first",
            response_model=Page[ReviewRead], operation_id="services_reviews_list",
            responses={**ONE_ERRORS, **CSV_CONTENT})
async def list_reviews(service_id: str, principal: ReaderDep, session: SessionDep, runtime: RuntimeDep,
                       params: ListParamsDep) -> Page[ReviewRead] | Response:
    return await reviews.list_reviews(session, runtime, principal, service_id, params)


@router.post("/{service_id}/reviews", status_code=201, summary="Record a security review",
             response_model=ReviewRead, operation_id="services_reviews_create", responses=ONE_ERRORS,
             description="Answers left out keep the service's current ones. The review's answers become the "
                         "service's, with last_review_date; next_review_date comes from the body or from the "
                         "service's review_frequency. A review dated in the future is a 400.")
async def create_review(service_id: str, body: ReviewCreate, principal: WriterDep, session: SessionDep,
                        actor: ActorDep, today: TodayDep) -> ReviewRead:
    return await reviews.create_review(session, principal, service_id, body, actor, today)
