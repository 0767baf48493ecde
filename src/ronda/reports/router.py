"""Reports: request a compliance or network report (202), list them, read one, download its file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query
from starlette.responses import FileResponse, Response

from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.timeutil import utcnow
from ronda.core.uow import SessionDep, domain_router
from ronda.reports import service
from ronda.reports.schemas import (
    ComplianceReportCreate,
    Framework,
    NetworkReportCreate,
    ReportRead,
    ReportStatus,
    ReportType,
)

router = domain_router(prefix="/reports", tags=["reports"])

ReaderDep = Annotated[Principal, Depends(require("reports_read"))]
WriterDep = Annotated[Principal, Depends(require("reports_write"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission"},
}
ONE_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"description": "No such report in your tenant"}}


@router.post("/compliance", status_code=202, response_model=ReportRead, operation_id="reports_compliance",
             summary="Generate a compliance report (ISO 27001 or SOC 2; pdf, csv or json)", responses=ERRORS,
             description="Answers 202 at once with the report's id; poll `GET /reports/{id}` until `status` is "
                         "completed, then download. `date_range` days are inclusive (default: the last 90 days).")
async def create_compliance(body: ComplianceReportCreate, principal: WriterDep, session: SessionDep,
                            actor: ActorDep, response: Response) -> ReportRead:
    period = service.check_period(body.date_range, utcnow().date())
    report = await service.request_report(session, principal, actor, kind="compliance", fmt=body.format,
                                          framework=body.framework, period=period, parameters={})
    response.headers["Location"] = f"{service.API_PREFIX}/reports/{report.id}"
    return report


@router.post("/network", status_code=202, response_model=ReportRead, operation_id="reports_network",
             summary="Generate a network security audit report (pdf, csv or json)", responses=ERRORS,
             description="Inventory, open ports and services, risky exposed and unencrypted services, device "
                         "types and CVE matches. Answers 202 with the report's id.")
async def create_network(body: NetworkReportCreate, principal: WriterDep, session: SessionDep, actor: ActorDep,
                         response: Response) -> ReportRead:
    period = service.check_period(body.date_range, utcnow().date()) if body.date_range else None
    parameters = {"site_id": body.site_id} if body.site_id else {}
    report = await service.request_report(session, principal, actor, kind="network", fmt=body.format,
                                          framework=None, period=period, parameters=parameters)
    response.headers["Location"] = f"{service.API_PREFIX}/reports/{report.id}"
    return report


@router.get("", response_model=Page[ReportRead], operation_id="reports_list", responses=ERRORS,
            summary="List generated reports, newest first (both pagination styles)")
async def list_reports(
    principal: ReaderDep, session: SessionDep, params: ListParamsDep,
    status: Annotated[ReportStatus | None, Query(description="pending, running, completed or failed")] = None,
    type: Annotated[ReportType | None, Query(description="compliance or network")] = None,
    framework: Annotated[Framework | None, Query(description="iso27001 or soc2")] = None,
) -> Page[ReportRead]:
    return await service.list_reports(session, principal, params, status, type, framework)


@router.get("/{report_id}", response_model=ReportRead, operation_id="reports_get", responses=ONE_ERRORS,
            summary="A report: status, size and download URL")
async def get_report(report_id: str, principal: ReaderDep, session: SessionDep) -> ReportRead:
    return service.read(await service.get_report(session, principal, report_id))


@router.get("/{report_id}/download", response_class=FileResponse, operation_id="reports_download",
            summary="Download a completed report's file",
            responses={**ONE_ERRORS, 409: {"description": "The report is not completed yet (or failed)"},
                       200: {"content": {"application/pdf": {}, "text/csv": {}, "application/json": {}},
                             "description": "The file, with its name in Content-Disposition"}})
async def download(report_id: str, principal: ReaderDep, session: SessionDep, runtime: RuntimeDep) -> FileResponse:
    found = await service.download(session, principal, report_id, runtime.settings.data_dir)
    return FileResponse(found.path, media_type=found.content_type, filename=found.file_name)
