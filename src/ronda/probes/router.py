"""Probes: registration (POST /sites/{id}/probes), listing (GET /probes), revocation (DELETE /probes/{id}),
and the probe API a `ronda probe` calls with its key: lease, progress, result, fail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Query, Request

from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router
from ronda.probes import api, service
from ronda.probes.auth import ProbeCallerDep
from ronda.probes.schemas import (
    FailReport,
    LeaseRequest,
    LeaseResponse,
    ProbeCreate,
    ProbeCreated,
    ProbeRead,
    ProbeScanState,
    ProgressReport,
)
from ronda.scans.schemas import ScanResultBody

router = domain_router(tags=["probes"])

ReaderDep = Annotated[Principal, Depends(require("devices_read"))]
ManagerDep = Annotated[Principal, Depends(require("settings_manage"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission"},
}
PROBE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request"},
    401: {"description": "Missing, invalid or revoked probe key"},
    403: {"description": "Not a probe key"},
    404: {"description": "No such scan of the probe's site"},
    409: {"description": "The scan is no longer held by this probe (stopped, taken over or finished)"},
}


@router.post("/sites/{site_id}/probes", status_code=201, summary="Register a probe for a site (its key is shown once)",
             response_model=ProbeCreated, operation_id="probes_create",
             responses={**ERRORS, 404: {"description": "No such site in your tenant"}})
async def create_probe(site_id: str, body: ProbeCreate, principal: ManagerDep, session: SessionDep,
                       runtime: RuntimeDep, actor: ActorDep) -> ProbeCreated:
    return await service.create_probe(session, principal, site_id, body, actor, runtime.settings.api_key_prefix)


@router.get("/probes", summary="List probes with their last contact", response_model=Page[ProbeRead],
            operation_id="probes_list", responses=ERRORS)
async def list_probes(
    principal: ReaderDep, session: SessionDep, params: ListParamsDep,
    site_id: Annotated[str | None, Query(max_length=40, description="Only this site's probes")] = None,
) -> Page[ProbeRead]:
    return await service.list_probes(session, principal, params, site_id=site_id)


@router.delete("/probes/{probe_id}", summary="Revoke a probe's key", response_model=ProbeRead,
               operation_id="probes_revoke",
               responses={**ERRORS, 404: {"description": "No such probe in your tenant"},
                          409: {"description": "Already revoked"}})
async def revoke_probe(probe_id: str, principal: ManagerDep, session: SessionDep, actor: ActorDep) -> ProbeRead:
    return await service.revoke_probe(session, principal, probe_id, actor)


# --- the probe API (probe key only) ------------------------------------------------------------------


@router.post("/probes/lease", summary="Probe: wait (up to 25 s) for a queued scan of its site and take it",
             response_model=LeaseResponse, operation_id="probes_lease", responses=PROBE_ERRORS)
async def lease(request: Request, caller: ProbeCallerDep, runtime: RuntimeDep,
                body: LeaseRequest | None = None) -> LeaseResponse:
    asked = body or LeaseRequest()
    return await api.lease(runtime, request.app.state.events, getattr(request.app.state, "probe_waiter", None),
                           caller, asked.wait, asked.version)


@router.post("/probes/scans/{scan_id}/progress", summary="Probe: report progress (renews its lease)",
             response_model=ProbeScanState, operation_id="probes_progress", responses=PROBE_ERRORS)
async def progress(scan_id: str, body: ProgressReport, caller: ProbeCallerDep, session: SessionDep,
                   runtime: RuntimeDep) -> ProbeScanState:
    return await api.progress(session, runtime, caller, scan_id, body)


@router.post("/probes/scans/{scan_id}/result", summary="Probe: post the scan's result (merged into the inventory)",
             response_model=ProbeScanState, operation_id="probes_result", responses=PROBE_ERRORS)
async def result(scan_id: str, body: Annotated[ScanResultBody, Body()], caller: ProbeCallerDep,
                 session: SessionDep) -> ProbeScanState:
    return await api.result(session, caller, scan_id, body.model_dump(mode="json"))


@router.post("/probes/scans/{scan_id}/fail", summary="Probe: give up on a scan, with the reason",
             response_model=ProbeScanState, operation_id="probes_fail", responses=PROBE_ERRORS)
async def fail(scan_id: str, body: FailReport, caller: ProbeCallerDep, session: SessionDep) -> ProbeScanState:
    return await api.fail(session, caller, scan_id, body)
