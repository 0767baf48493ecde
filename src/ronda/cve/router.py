"""CVE intelligence: matches on the tenant's devices, the CVE database (search, detail, statistics,
metadata) and a manual feed update. CVE records are global; matches are the tenant's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from ronda.audit import service as audit
from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.errors import AppError
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router
from ronda.cve import service, views
from ronda.cve.queries import CveFilters
from ronda.cve.schemas import AffectedCve, CveDetail, CveStats, CveSummary, DbInfo, Severity, UpdateAccepted

router = domain_router(prefix="/cve", tags=["cve"])

ReaderDep = Annotated[Principal, Depends(require("cve_read"))]
# A feed update changes data every tenant reads: it takes the settings permission (admins).
UpdaterDep = Annotated[Principal, Depends(require("settings_manage"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission"},
}
CvssMin = Annotated[float | None, Query(ge=0.0, le=10.0, description="Only CVSS scores at or above this (0.0-10.0)")]


def cve_filters(
    severity: Annotated[Severity | None, Query(description="critical, high, medium or low")] = None,
    cvss_min: CvssMin = None,
    min_cvss: Annotated[float | None, Query(ge=0.0, le=10.0, description="Same as cvss_min")] = None,
    site_id: Annotated[str | None, Query(max_length=40, description="Only devices of this site")] = None,
    device_id: Annotated[str | None, Query(max_length=40, description="Only this device")] = None,
    vendor: Annotated[str | None, Query(max_length=150, description="CPE vendor, e.g. openbsd")] = None,
    product: Annotated[str | None, Query(max_length=200, description="CPE product, e.g. openssh")] = None,
) -> CveFilters:
    return CveFilters(severity=severity, cvss_min=cvss_min if cvss_min is not None else min_cvss, site_id=site_id,
                      device_id=device_id, vendor=vendor, product=product)


FiltersDep = Annotated[CveFilters, Depends(cve_filters)]


@router.get("/affected", summary="CVEs matched to your devices, worst first, each with its affected devices",
            response_model=Page[AffectedCve], operation_id="cve_affected", responses=ERRORS,
            description="Filters: severity, cvss_min (or min_cvss), site_id, device_id, vendor, product, and "
                        "search (a CVE id or text of the description). Matches come from scanned service versions "
                        "(source scan) and agent software inventories (source agent).")
async def affected(principal: ReaderDep, session: SessionDep, params: ListParamsDep, filters: FiltersDep
                   ) -> Page[AffectedCve]:
    return await views.affected(session, principal, params, filters, params.search)


@router.get("/search", summary="Search the CVE database", response_model=Page[CveSummary], operation_id="cve_search",
            responses=ERRORS, description="q (or search): a CVE id or its start (CVE-2024-63), or text of the "
                                          "description. Filters severity, cvss_min, vendor, product. Sort by "
                                          "cvss_score, published, last_modified or cve_id (default -published).")
async def search(
    session: SessionDep, params: ListParamsDep, filters: FiltersDep, _: ReaderDep,
    q: Annotated[str | None, Query(max_length=200, description="CVE id or free text")] = None,
) -> Page[CveSummary]:
    return await views.search(session, params, filters, q or params.search)


@router.get("/stats", summary="CVE statistics of your devices", response_model=CveStats, operation_id="cve_stats",
            responses=ERRORS)
async def stats(principal: ReaderDep, session: SessionDep) -> CveStats:
    return await views.stats(session, principal)


@router.get("/db-info", summary="The CVE database: size, last import, imported feed files, next update",
            response_model=DbInfo, operation_id="cve_db_info", responses=ERRORS)
async def db_info(_: ReaderDep, session: SessionDep, runtime: RuntimeDep, request: Request) -> DbInfo:
    return await views.db_info(session, runtime.settings, getattr(request.app.state, "cve_runner", None))


@router.post("/update", status_code=202, summary="Import new NVD feed files from RONDA_CVE_FEED_DIR",
             response_model=UpdateAccepted, operation_id="cve_update",
             responses={**ERRORS, 409: {"description": "No feed directory is configured, or an update is running"}},
             description="Needs settings_manage (admins). Files not imported before (by content) are imported in "
                         "the background, each in one transaction; GET /cve/db-info lists them once done, and "
                         "devices are re-matched after. Every request is audited.")
async def update(principal: UpdaterDep, session: SessionDep, runtime: RuntimeDep, actor: ActorDep,
                 request: Request) -> UpdateAccepted:
    directory = runtime.settings.cve_feed_dir
    runner = getattr(request.app.state, "cve_runner", None)
    if directory is None:
        raise AppError(409, "No CVE feed directory is configured (set RONDA_CVE_FEED_DIR)")
    if runner is None or runner.updating:
        raise AppError(409, "A CVE feed update is already running")
    fresh, known = await service.new_feed_files(session, directory)
    await audit.record(session, actor, "cve.update_requested", resource_type="cve_feed", resource_id="nvd",
                       metadata={"feed_dir": str(directory), "new_files": [p.name for p in fresh],
                                 "already_imported": known})
    if fresh:
        runner.start_update(fresh, "api")
    return UpdateAccepted(
        status="accepted" if fresh else "up_to_date", feed_dir=str(directory), new_files=[p.name for p in fresh],
        already_imported=known,
        detail=f"importing {len(fresh)} new file(s) in the background" if fresh else "no new feed files",
    )


@router.get("/{cve_id}", summary="One CVE: scores, references, affected CPE ranges, remediation, your devices",
            response_model=CveDetail, operation_id="cve_get",
            responses={**ERRORS, 404: {"description": "No such CVE in the database"}})
async def get_cve(
    principal: ReaderDep, session: SessionDep,
    cve_id: Annotated[str, Path(max_length=40, description="A CVE id such as CVE-2024-6387")],
) -> CveDetail:
    return await views.detail(session, principal, cve_id)
