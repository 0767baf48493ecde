"""GET /dashboard: overall compliance score, device status, services due, recent activity, upcoming reviews."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from ronda.core.authz import require
from ronda.core.principal import Principal
from ronda.core.uow import SessionDep, domain_router
from ronda.dashboard import service
from ronda.dashboard.schemas import Dashboard
from ronda.services.clock import now_of

router = domain_router(prefix="/dashboard", tags=["dashboard"])

ReaderDep = Annotated[Principal, Depends(require("devices_read", "services_read"))]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request"},
    401: {"description": "Missing, invalid or expired credentials"},
    403: {"description": "The caller lacks devices_read or services_read"},
}


@router.get("", summary="The compliance dashboard", response_model=Dashboard, operation_id="dashboard_get",
            responses=ERRORS, description="The user role sees what it owns; other roles see the tenant.")
async def get_dashboard(
    request: Request, principal: ReaderDep, session: SessionDep,
    days: Annotated[int | None, Query(ge=1, le=365, description="Upcoming window in days (default: policy)")] = None,
) -> Dashboard:
    return await service.dashboard(session, principal, now_of(request.app), days)
