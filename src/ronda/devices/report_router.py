"""POST /devices/report: an agent (or a user, or a key with devices_write) reports one device."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ronda.audit.service import Actor
from ronda.core.context import request_ip, request_user_agent
from ronda.core.errors import AppError
from ronda.core.principal import Principal, get_principal
from ronda.core.timeutil import utcnow
from ronda.core.uow import UnitOfWorkRoute, request_session
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


@dataclass(frozen=True, slots=True)
class Reporter:
    """Everything the report route needs about its caller, solved as one dependency (agents check in
    at fleet rates, and each dependency FastAPI solves costs about as much as a statement)."""

    principal: Principal
    session: AsyncSession
    actor: Actor
    offline_after: int


async def reporter(request: Request) -> Reporter:
    """Reports come from agent credentials, or from callers holding devices_write."""
    principal = await get_principal(request)
    if "agent" not in principal.permissions and "devices_write" not in principal.permissions:
        raise AppError(403, "Missing permission: devices_write")
    settings = request.scope["app"].state.runtime.settings
    actor = Actor.of(principal, request_ip(request), request_user_agent(request))
    return Reporter(principal, request_session(request), actor, settings.agent_offline_after)


ReporterDep = Annotated[Reporter, Depends(reporter)]


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
async def report(body: ReportBody, response: Response, caller: ReporterDep) -> DeviceRead:
    device, created = await ingest.ingest(caller.session, caller.principal, body, caller.actor, now=utcnow(),
                                          offline_after=caller.offline_after)
    if created:
        response.status_code = 201
    return device
