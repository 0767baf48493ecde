"""Alerts: list (filters, both pagination styles, CSV), detail, acknowledge, resolve."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Query
from starlette.responses import Response

from ronda.alerts import service
from ronda.alerts.models import Alert
from ronda.alerts.repository import AlertFilters
from ronda.alerts.schemas import AlertAcknowledge, AlertRead, AlertResolve
from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page, csv_response
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router, read_only

router = domain_router(prefix="/alerts", tags=["alerts"])

ReaderDep = Annotated[Principal, Depends(require("alerts_read"))]
WriterDep = Annotated[Principal, Depends(require("alerts_write"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission"},
}
ONE_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"description": "No such alert in your tenant"}}
CSV_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "The page as JSON, or every matching alert as CSV with `?format=csv` or `Accept: text/csv`"},
}
CSV_COLUMNS: list[tuple[str, Callable[[Alert], Any]]] = [
    ("id", lambda a: a.id), ("created_at", lambda a: a.created_at), ("severity", lambda a: a.severity),
    ("status", lambda a: a.status), ("rule", lambda a: a.rule), ("source", lambda a: a.source),
    ("title", lambda a: a.title), ("device_id", lambda a: a.device_id), ("device_ip", lambda a: a.device_ip),
    ("site_id", lambda a: a.site_id), ("occurrence_count", lambda a: a.occurrence_count),
    ("last_seen_at", lambda a: a.last_seen_at), ("acknowledged_at", lambda a: a.acknowledged_at),
    ("acknowledged_by", lambda a: a.acknowledged_by), ("resolved_at", lambda a: a.resolved_at),
    ("resolved_by", lambda a: a.resolved_by), ("resolution_note", lambda a: a.resolution_note),
]


async def alert_filters(  # async: a plain `def` dependency costs a worker-thread hop per request
    severity: Annotated[str | None, Query(max_length=100, description="critical, high, medium, low or info; "
                                          "a comma list for several")] = None,
    status: Annotated[str | None, Query(max_length=100, description="open, acknowledged or resolved; "
                                        "a comma list for several")] = None,
    source: Annotated[str | None, Query(max_length=40, description="scan, agent, compliance, cve, services")] = None,
    site_id: Annotated[str | None, Query(max_length=40, description="Only alerts of this site")] = None,
    device_id: Annotated[str | None, Query(max_length=40, description="Only alerts of this device")] = None,
    rule: Annotated[str | None, Query(max_length=40, description="Only alerts raised by this rule")] = None,
    since: Annotated[str | None, Query(max_length=40, description="Raised at or after: an ISO 8601 time, or a "
                                       "duration back from now such as 30m, 24h, 7d")] = None,
) -> AlertFilters:
    return service.filters(severity=severity, status=status, source=source, site_id=site_id, device_id=device_id,
                           rule=rule, since=since)


AlertFiltersDep = Annotated[AlertFilters, Depends(alert_filters)]


@router.get("", summary="List alerts (filters, sort, search, both pagination styles, CSV)",
            response_model=Page[AlertRead], operation_id="alerts_list", responses={**ERRORS, **CSV_CONTENT},
            description="Sort by created_at, last_seen_at, severity, status, title or occurrence_count "
                        "(-field for descending); default -created_at. `search` looks in title, description "
                        "and device_ip.")
@read_only
async def list_alerts(principal: ReaderDep, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
                      query: AlertFiltersDep) -> Response:
    if params.csv:
        return csv_response(runtime.sessions, service.list_statement(principal, params, query), CSV_COLUMNS,
                            "alerts.csv")
    # The page is rendered by the service (plain rows to JSON); response_model documents its shape.
    return await service.list_alerts(session, principal, params, query)


@router.get("/{alert_id}", summary="One alert", response_model=AlertRead, operation_id="alerts_get",
            responses=ONE_ERRORS)
@read_only
async def get_alert(alert_id: str, principal: ReaderDep, session: SessionDep) -> AlertRead:
    return await service.get_alert(session, principal, alert_id)


@router.post("/{alert_id}/acknowledge", summary="Acknowledge an alert (someone is on it)", response_model=AlertRead,
             operation_id="alerts_acknowledge",
             responses={**ONE_ERRORS, 409: {"description": "The alert is already acknowledged, or resolved"}})
async def acknowledge_alert(alert_id: str, principal: WriterDep, session: SessionDep, actor: ActorDep,
                            body: AlertAcknowledge | None = None) -> AlertRead:
    return await service.acknowledge(session, principal, alert_id, body, actor)


@router.post("/{alert_id}/resolve", summary="Resolve an alert, with an optional note", response_model=AlertRead,
             operation_id="alerts_resolve",
             responses={**ONE_ERRORS, 409: {"description": "The alert is already resolved"}})
async def resolve_alert(alert_id: str, principal: WriterDep, session: SessionDep, actor: ActorDep,
                        body: AlertResolve | None = None) -> AlertRead:
    return await service.resolve(session, principal, alert_id, body, actor)
