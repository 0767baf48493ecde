"""Sites: GET|POST /sites, GET|PATCH|DELETE /sites/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from starlette.responses import Response

from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.pagination import ListParamsDep, Page
from ronda.core.principal import Principal
from ronda.core.uow import SessionDep, domain_router
from ronda.sites import service
from ronda.sites.schemas import SiteCreate, SiteRead, SiteUpdate

router = domain_router(prefix="/sites", tags=["sites"])

ReaderDep = Annotated[Principal, Depends(require("devices_read"))]
ManagerDep = Annotated[Principal, Depends(require("settings_manage"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission"},
}
ONE_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"description": "No such site in your tenant"}}


@router.post("", status_code=201, summary="Create a site", response_model=SiteRead, operation_id="sites_create",
             responses={**ERRORS, 409: {"description": "A site of that name exists"}})
async def create_site(body: SiteCreate, principal: ManagerDep, session: SessionDep, actor: ActorDep) -> SiteRead:
    return await service.create_site(session, principal, body, actor)


@router.get("", summary="List sites", response_model=Page[SiteRead], operation_id="sites_list", responses=ERRORS,
            description="`search` matches name, description and location; sort by name, created_at, updated_at.")
async def list_sites(principal: ReaderDep, session: SessionDep, params: ListParamsDep) -> Page[SiteRead]:
    return await service.list_sites(session, principal, params)


@router.get("/{site_id}", summary="A site", response_model=SiteRead, operation_id="sites_get", responses=ONE_ERRORS)
async def get_site(site_id: str, principal: ReaderDep, session: SessionDep) -> SiteRead:
    return await service.get_site(session, principal, site_id)


@router.patch("/{site_id}", summary="Change a site's name, description, networks or location",
              response_model=SiteRead, operation_id="sites_update",
              responses={**ONE_ERRORS, 409: {"description": "A site of that name exists"}})
async def update_site(
    site_id: str, body: SiteUpdate, principal: ManagerDep, session: SessionDep, actor: ActorDep
) -> SiteRead:
    return await service.update_site(session, principal, site_id, body, actor)


@router.delete("/{site_id}", status_code=204, summary="Delete a site that nothing refers to any more",
               response_class=Response, operation_id="sites_delete",
               responses={**ONE_ERRORS, 409: {"description": "Devices, unfinished scans or probes still refer to it"}})
async def delete_site(site_id: str, principal: ManagerDep, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_site(session, principal, site_id, actor)
    return Response(status_code=204)
