"""The device inventory: list, my-devices, tenant-devices, get, create, replace, patch, delete, ports, data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from starlette.responses import Response

from ronda.audit.deps import ActorDep
from ronda.core.authz import require
from ronda.core.pagination import (
    MAX_LIMIT,
    MAX_PER_PAGE,
    ListParams,
    ListParamsDep,
    Page,
    list_params_dependency,
)
from ronda.core.principal import Principal
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import SessionDep, domain_router, read_only
from ronda.devices import service
from ronda.devices.schemas import (
    ComplianceStatus,
    DeviceCreate,
    DeviceDataRead,
    DevicePatch,
    DevicePortList,
    DeviceRead,
    DeviceReplace,
)
from ronda.devices.service import DeviceQuery

router = domain_router(prefix="/devices", tags=["devices"])

ReaderDep = Annotated[Principal, Depends(require("devices_read"))]
WriterDep = Annotated[Principal, Depends(require("devices_write"))]
SeedListParamsDep = Annotated[ListParams, Depends(list_params_dependency(default_limit=50))]
_list_params = list_params_dependency()


async def history_params(
    request: Request,
    page: Annotated[int | None, Query(description="1-based page number (with per_page)")] = None,
    per_page: Annotated[int | None, Query(description=f"Versions per page, 1 to {MAX_PER_PAGE}")] = None,
    skip: Annotated[int | None, Query(description="Versions to skip (with limit)")] = None,
    limit: Annotated[int | None, Query(description=f"Versions to return, 1 to {MAX_LIMIT}")] = None,
) -> ListParams:
    """Paging for history=true, with the same rules as every list (no sort, search or CSV here)."""
    return await _list_params(request, page, per_page, skip, limit, None, None, "json")


HistoryParamsDep = Annotated[ListParams, Depends(history_params)]

BASE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request; `error.details` names each field and reason"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks the permission (agents never may)"},
}
ONE_ERRORS: dict[int | str, dict[str, Any]] = {
    **BASE_ERRORS,
    404: {"description": "No such device in your tenant (or, for the user role, among your devices)"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ONE_ERRORS,
    409: {"description": "Another device already has this serial number, MAC, or hostname in this site; "
                         "`error.details[0].device_id` names it"},
}
CSV_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "The page as JSON, or every matching device as CSV with `?format=csv` or `Accept: text/csv`"},
}
SORT_HELP = "ip, hostname, last_seen, vendor, device_name or compliance_status; -field for descending"

IncludeData = Annotated[bool, Query(description="Add the latest device_data of each type")]


async def device_query(  # async: a plain `def` dependency costs a worker-thread hop per request
    site_id: Annotated[str | None, Query(max_length=40, description="Only devices of this site")] = None,
    is_online: Annotated[bool | None, Query(description="Only online (true) or offline (false) devices")] = None,
    vendor: Annotated[str | None, Query(max_length=200, description="Vendor contains this text")] = None,
    os: Annotated[str | None, Query(max_length=100, description="os_type or os_version contains this text")] = None,
    device_type: Annotated[str | None, Query(max_length=40, description="laptop, server, printer, ...")] = None,
    compliance_status: Annotated[ComplianceStatus | None, Query(description="Posture status")] = None,
    managed: Annotated[bool | None, Query(description="Has an agent (true) or not (false)")] = None,
    user_id: Annotated[str | None, Query(max_length=40, description="Owned by this user")] = None,
    tags: Annotated[str | None, Query(max_length=50, description="Carries this tag")] = None,
) -> DeviceQuery:
    return DeviceQuery(site_id=site_id, is_online=is_online, vendor=vendor, os=os, device_type=device_type,
                       compliance_status=compliance_status, managed=managed, user_id=user_id, tag=tags)


DeviceQueryDep = Annotated[DeviceQuery, Depends(device_query)]


@router.get("", summary="List devices (filters, sort, search, both pagination styles, CSV)",
            response_model=Page[DeviceRead], operation_id="devices_list",
            responses={**BASE_ERRORS, **CSV_CONTENT}, description=f"Sort by {SORT_HELP}. Default -last_seen. "
            "The user role sees only the devices it owns.")
@read_only
async def list_devices(
    principal: ReaderDep, session: SessionDep, runtime: RuntimeDep, params: ListParamsDep, query: DeviceQueryDep,
    include_data: IncludeData = False,
) -> Response:
    # The page is rendered by the service (plain rows to JSON); response_model documents its shape.
    return await service.list_devices(session, runtime, principal, params, query, include_data=include_data)


@router.get("/my-devices", summary="Devices you own (default 50 per page, device data included)",
            response_model=Page[DeviceRead], operation_id="devices_my_devices",
            responses={**BASE_ERRORS, **CSV_CONTENT})
@read_only
async def my_devices(
    principal: ReaderDep, session: SessionDep, runtime: RuntimeDep, params: SeedListParamsDep,
    include_data: IncludeData = True,
) -> Response:
    query = DeviceQuery(user_id=principal.user_id)
    return await service.list_devices(session, runtime, principal, params, query, include_data=include_data)


@router.get("/tenant-devices", summary="Every device of the tenant (admin; default 50 per page, data included)",
            response_model=Page[DeviceRead], operation_id="devices_tenant_devices",
            responses={**BASE_ERRORS, **CSV_CONTENT, 403: {"description": "Only admins may list the tenant's devices"}})
@read_only
async def tenant_devices(
    principal: ReaderDep, session: SessionDep, runtime: RuntimeDep, params: SeedListParamsDep,
    user_id: Annotated[str | None, Query(max_length=40, description="Owned by this user")] = None,
    include_data: IncludeData = True,
) -> Response:
    service.require_admin(principal)
    query = DeviceQuery(user_id=user_id)
    return await service.list_devices(session, runtime, principal, params, query, include_data=include_data)


@router.post("", status_code=201, summary="Add a device by hand", response_model=DeviceRead,
             operation_id="devices_create", responses={k: v for k, v in WRITE_ERRORS.items() if k != 404})
async def create_device(body: DeviceCreate, principal: WriterDep, session: SessionDep, runtime: RuntimeDep,
                        actor: ActorDep) -> DeviceRead:
    return await service.create_device(session, runtime, principal, body, actor)


@router.get("/{device_id}", summary="One device, with its latest data of each type", response_model=DeviceRead,
            operation_id="devices_get", responses=ONE_ERRORS)
async def get_device(device_id: str, principal: ReaderDep, session: SessionDep, runtime: RuntimeDep,
                     include_data: IncludeData = True) -> DeviceRead:
    return await service.get_device(session, runtime, principal, device_id, include_data=include_data)


@router.put("/{device_id}", summary="Replace a device's editable fields (those left out are cleared)",
            response_model=DeviceRead, operation_id="devices_replace", responses=WRITE_ERRORS)
async def replace_device(device_id: str, body: DeviceReplace, principal: WriterDep, session: SessionDep,
                         runtime: RuntimeDep, actor: ActorDep) -> DeviceRead:
    return await service.replace_device(session, runtime, principal, device_id, body, actor)


@router.patch("/{device_id}", summary="Change a device's name, type, site, owner, tags or note",
              response_model=DeviceRead, operation_id="devices_update", responses=WRITE_ERRORS)
async def patch_device(device_id: str, body: DevicePatch, principal: WriterDep, session: SessionDep,
                       runtime: RuntimeDep, actor: ActorDep) -> DeviceRead:
    return await service.patch_device(session, runtime, principal, device_id, body, actor)


@router.delete("/{device_id}", status_code=204, summary="Delete a device with its data, ports, evaluations and agents",
               response_class=Response, operation_id="devices_delete", responses=ONE_ERRORS)
async def delete_device(device_id: str, principal: WriterDep, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_device(session, principal, device_id, actor)
    return Response(status_code=204)


@router.get("/{device_id}/ports", summary="The device's open ports", response_model=DevicePortList,
            operation_id="devices_ports", responses=ONE_ERRORS)
async def device_ports(device_id: str, principal: ReaderDep, session: SessionDep) -> DevicePortList:
    return await service.device_ports(session, principal, device_id)


@router.get(
    "/{device_id}/data/{data_type}",
    summary="The device's latest data of one type, the version current at a moment, or its history",
    response_model=DeviceDataRead | Page[DeviceDataRead], operation_id="devices_data",
    responses={**ONE_ERRORS, 404: {"description": "No such device, or no data of this type (as of `at`) yet"}},
    description="data_type is security, hardware, software, network or custom. `at` (ISO date or date-time; a "
                "date means the end of that UTC day) returns the version that was current then. `history=true` "
                "returns every version, newest first, paginated.",
)
async def device_data(
    device_id: str,
    data_type: Annotated[str, Path(description="security, hardware, software, network or custom")],
    principal: ReaderDep, session: SessionDep, params: HistoryParamsDep,
    at: Annotated[str | None, Query(max_length=40, description="ISO 8601 date or date-time")] = None,
    history: Annotated[bool, Query(description="Every version, newest first, paginated")] = False,
) -> DeviceDataRead | Page[DeviceDataRead]:
    return await service.device_data(session, principal, device_id, data_type, at=at, history=history,
                                     params=params)
