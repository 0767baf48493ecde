"""POST /devices/report: an agent (or a user, or a key with devices_write) reports one device."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ronda.audit.deps import ActorDep
from ronda.core.errors import AppError
from ronda.core.principal import Principal, get_principal
from ronda.core.runtime import RuntimeDep
from ronda.core.timeutil import utcnow
from ronda.core.uow import SessionDep, UnitOfWorkRoute
from ronda.devices import ingest
from ronda.devices.report_schemas import ReportBody
from ronda.devices.schemas import DeviceRead


class OrjsonRequest(Request):
    """Parses the body with orjson: faster on check-in sized bodies, and strict (no NaN or Infinity,
    which a JSON column could not store). Its decode error is a json.JSONDecodeError, so a malformed
    body is the usual 400."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class ReportRoute(UnitOfWorkRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await inner(OrjsonRequest(request.scope, request.receive))

        return handler


router = APIRouter(prefix="/devices", tags=["devices"], route_class=ReportRoute)


async def require_devices_write_or_agent(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """Reports come from agent credentials, or from callers holding devices_write."""
    if "agent" in principal.permissions or "devices_write" in principal.permissions:
        return principal
    raise AppError(403, "Missing permission: devices_write")


ReporterDep = Annotated[Principal, Depends(require_devices_write_or_agent)]


@router.post(
    "/report",
    summary="Report a device's facts and posture (agent upsert); returns the device with its evaluation",
    response_model=DeviceRead,
    operation_id="devices_report",
    status_code=200,
    responses={
        200: {"description": "An existing device was updated"},
        201: {"description": "A new device was created", "model": DeviceRead},
        400: {"description": "Invalid report; `error.details` names each field and reason"},
        403: {"description": "Needs devices_write or an agent credential; an agent may report only for its own "
                             "device; only admins may set user_id; a user may not report another user's device"},
        413: {"description": "Body (after gzip decompression) larger than RONDA_MAX_REPORT_BYTES"},
        415: {"description": "A Content-Encoding other than gzip"},
    },
    description="The 004 seed's body as written (device facts, `security`, `hardware`, `software`), plus "
                "`network` {interfaces, listening_ports}, `custom`, `hostname`, `site_id`, `user_id` (admins) "
                "and `agent_version`. Security checks may be booleans or pass/fail/unknown. The body may be sent "
                "with `Content-Encoding: gzip`. Devices merge on serial number, then MAC, then hostname within "
                "a site; data is stored as a new version only when it changed.",
)
async def report(
    body: ReportBody, response: Response, principal: ReporterDep, session: SessionDep, runtime: RuntimeDep,
    actor: ActorDep,
) -> DeviceRead:
    device, created = await ingest.ingest(session, principal, body, actor, now=utcnow(),
                                          offline_after=runtime.settings.agent_offline_after)
    if created:
        response.status_code = 201
    return device
