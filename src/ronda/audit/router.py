"""The audit log: list (JSON or CSV), verify the tenant's hash chain, read one record."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from starlette.responses import Response

from ronda.audit import service
from ronda.audit.deps import ActorDep
from ronda.audit.repository import AuditFilters
from ronda.audit.schemas import AuditLogRead, ChainVerification
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page, csv_response
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router

router = domain_router(prefix="/audit-logs", tags=["audit"])

AuditReader = Annotated[Principal, Depends(require("audit_read"))]
DATE_HELP = "A date (YYYY-MM-DD) or an ISO 8601 date and time; a bare end date includes that whole day"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid filter, date or paging value"},
    401: {"description": "Missing or invalid credentials"},
    403: {"description": "Missing audit_read"},
}


@router.get("", summary="List the tenant's audit records, newest first (JSON, or CSV with Accept: text/csv)",
            response_model=Page[AuditLogRead], operation_id="audit_logs_list",
            responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
async def list_logs(
    principal: AuditReader, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
    event_name: Annotated[str | None, Query(max_length=120, description=(
        "Event name ('User Login Success') or event type ('auth.login.succeeded')"))] = None,
    event_type: Annotated[str | None, Query(max_length=80, description="Dotted event type")] = None,
    category: Annotated[str | None, Query(max_length=40, description="e.g. authentication, security")] = None,
    resource_type: Annotated[str | None, Query(max_length=40, description="e.g. user, api_key, tenant")] = None,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    actor_id: Annotated[str | None, Query(max_length=40, description="A user or API key id")] = None,
    actor_type: Annotated[Literal["user", "api_key", "agent", "system"] | None, Query()] = None,
    ip_address: Annotated[str | None, Query(max_length=64)] = None,
    start_date: Annotated[str | None, Query(max_length=40, description=DATE_HELP)] = None,
    end_date: Annotated[str | None, Query(max_length=40, description=DATE_HELP)] = None,
) -> Page[AuditLogRead] | Response:
    filters = service.with_dates(
        AuditFilters(event_name=event_name, event_type=event_type, category=category, resource_type=resource_type,
                     resource_id=resource_id, actor_id=actor_id, actor_type=actor_type, ip_address=ip_address),
        start_date, end_date,
    )
    statement = service.log_statement(principal, params, filters)
    if params.csv:
        return csv_response(runtime.sessions, statement, service.CSV_COLUMNS, "audit-logs.csv")
    return await service.list_logs(session, statement, params)


@router.get("/verify", summary="Check the tenant's hash chain and name the first tampered or missing record",
            response_model=ChainVerification, operation_id="audit_logs_verify", responses=ERRORS)
async def verify(
    principal: AuditReader, session: SessionDep, runtime: RuntimeDep, actor: ActorDep
) -> ChainVerification:
    result = await service.verify_tenant(session, principal)
    await service.record_verification(runtime.sessions, actor, result)
    return result


@router.get("/{log_id}", summary="One audit record", response_model=AuditLogRead, operation_id="audit_logs_get",
            responses={**ERRORS, 404: {"description": "No such record in your tenant"}})
async def get_log(log_id: str, principal: AuditReader, session: SessionDep) -> AuditLogRead:
    return await service.get_log(session, principal, log_id)
