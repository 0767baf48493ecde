"""Network scans: start, list, status, result (with the diff from the previous scan), stop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router
from ronda.scans import service
from ronda.scans.schemas import ProfileName, ScanRead, ScanResultRead, ScanStart, ScanStatus

router = domain_router(prefix="/scans", tags=["scans"])

ReaderDep = Annotated[Principal, Depends(require("scans_read"))]
WriterDep = Annotated[Principal, Depends(require("scans_write"))]

BASE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission"},
}
ONE_ERRORS: dict[int | str, dict[str, Any]] = {**BASE_ERRORS, 404: {"description": "No such scan in your tenant"}}
CSV_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "JSON, or CSV with `?format=csv` or `Accept: text/csv`"},
}


@router.post(
    "/start", status_code=202, summary="Start a scan (queued; it runs in the background)",
    response_model=ScanRead, operation_id="scans_start",
    responses={**BASE_ERRORS,
               403: {"description": "The caller lacks scans_write, or a target is outside the allowed networks"},
               429: {"description": "The tenant already has its maximum of queued or running scans"}},
    description="`target` is an IP, CIDR, range (`10.0.0.1-50`), host name, or a list of these. Profiles: quick "
                "(top 100 ports), normal (top 1000 + profiling), deep (all 65535 + profiling + CVE match), stealth "
                "(1000 ports, low rate), custom. `ports`, `timeout_ms`, `max_concurrent`, `max_rate`, "
                "`enable_profiling` and `enable_cve_match` override the profile's defaults.",
)
async def start_scan(body: ScanStart, request: Request, principal: WriterDep, session: SessionDep,
                     runtime: RuntimeDep, actor: ActorDep) -> ScanRead:
    runner = getattr(request.app.state, "scan_runner", None)
    return await service.start_scan(session, runtime, principal, body, actor, getattr(runner, "new_scan_owner", None))


@router.get("", summary="List scans (status filter, both pagination styles, CSV)", response_model=Page[ScanRead],
            operation_id="scans_list", responses={**BASE_ERRORS, **CSV_CONTENT},
            description="Sort by created_at, started_at, completed_at, status, profile, hosts_found or "
                        "ports_found; default -created_at.")
async def list_scans(
    principal: ReaderDep, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep,
    status: Annotated[ScanStatus | None, Query(description="queued, running, completed, failed or cancelled")] = None,
    profile: Annotated[ProfileName | None, Query(description="Only scans of this profile")] = None,
    site_id: Annotated[str | None, Query(max_length=40, description="Only scans of this site")] = None,
) -> Page[ScanRead] | Response:
    return await service.list_scans(session, runtime, principal, params, status=status, profile=profile,
                                    site_id=site_id)


@router.get("/{scan_id}", summary="A scan's status and progress", response_model=ScanRead,
            operation_id="scans_get", responses=ONE_ERRORS)
async def get_scan(scan_id: str, principal: ReaderDep, session: SessionDep) -> ScanRead:
    return await service.get_scan(session, principal, scan_id)


@router.get("/{scan_id}/result", summary="A scan's hosts and ports, and its difference from the previous scan",
            response_model=ScanResultRead, operation_id="scans_result", responses={**ONE_ERRORS, **CSV_CONTENT},
            description="Hosts appear once the scan has completed. `diff` compares with the previous completed "
                        "scan of the same target. `?format=csv` (or `Accept: text/csv`) returns one row per host.")
async def scan_result(
    scan_id: str, request: Request, principal: ReaderDep, session: SessionDep,
    format: Annotated[str | None, Query(pattern="^(json|csv)$", description="json or csv")] = None,
) -> Response:
    # Rendered by the service (plain rows to JSON); response_model documents its shape.
    as_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    return await service.scan_result(session, principal, scan_id, as_csv=as_csv)


@router.post("/{scan_id}/stop", summary="Stop a queued or running scan", response_model=ScanRead,
             operation_id="scans_stop",
             responses={**ONE_ERRORS, 409: {"description": "The scan has already finished"}})
async def stop_scan(scan_id: str, principal: WriterDep, session: SessionDep, actor: ActorDep) -> ScanRead:
    return await service.stop_scan(session, principal, scan_id, actor)
