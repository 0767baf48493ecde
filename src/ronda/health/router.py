from __future__ import annotations

import asyncio

from pydantic import BaseModel
from sqlalchemy import text

from ronda import __version__
from ronda.core.errors import error_body
from ronda.core.responses import ORJSONResponse
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import domain_router


class Health(BaseModel):
    status: str
    version: str
    database: str


router = domain_router(tags=["health"])


@router.get(
    "/health",
    summary="Service and database health",
    response_model=Health,
    operation_id="health",
    responses={503: {"description": "The database is unreachable"}},
)
async def health(runtime: RuntimeDep) -> ORJSONResponse:
    try:
        async with asyncio.timeout(3):
            async with runtime.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        body = error_body(503, "Database unavailable", "SERVICE_UNAVAILABLE")
        body.update({"status": "degraded", "version": __version__, "database": "unavailable"})
        return ORJSONResponse(body, status_code=503)
    return ORJSONResponse({"status": "ok", "version": __version__, "database": "ok"})
