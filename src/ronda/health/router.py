"""GET /health (also /api/health, /api/v1/health): the service and its database.

Load balancers and monitors call it often, so it is served by a plain Starlette route placed
ahead of the API (see `install`); the FastAPI route below documents it in OpenAPI and answers
the same way. Concurrent requests share the one database check in flight; a check that has
finished is never reused, so no answer is older than the check it waited for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.routing import Route

from ronda import __version__
from ronda.core.errors import error_body
from ronda.core.responses import ORJSONResponse
from ronda.core.runtime import RuntimeDep
from ronda.core.uow import domain_router

PATHS = ("/health", "/api/v1/health")  # the request middleware maps /api/health and /v1/health here
CHECK_TIMEOUT = 3.0
SELECT_ONE = text("SELECT 1")
OK_BODY: dict[str, Any] = {"status": "ok", "version": __version__, "database": "ok"}


class Health(BaseModel):
    status: str
    version: str
    database: str


class DatabaseCheck:
    """Single flight: one `SELECT 1` at a time, its result shared by every request waiting on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._in_flight: asyncio.Future[bool] | None = None

    async def ok(self) -> bool:
        check = self._in_flight
        if check is None:
            check = self._in_flight = asyncio.ensure_future(self._run())
        # Shielded: a caller that goes away does not cancel the check the others wait on.
        return await asyncio.shield(check)

    async def _run(self) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                async with self._engine.connect() as conn:
                    await conn.execute(SELECT_ONE)
            return True
        except Exception:
            return False
        finally:
            # Cleared before any waiter sees the result: a later request starts a new check.
            self._in_flight = None


def health_response(ok: bool) -> ORJSONResponse:
    if ok:
        return ORJSONResponse(OK_BODY)
    body = error_body(503, "Database unavailable", "SERVICE_UNAVAILABLE")
    body.update({"status": "degraded", "version": __version__, "database": "unavailable"})
    return ORJSONResponse(body, status_code=503)


async def _endpoint(request: Request) -> ORJSONResponse:
    check: DatabaseCheck = request.app.state.health_check
    return health_response(await check.ok())


def install(routes: list[Any], engine: AsyncEngine, state: Any) -> None:
    """Serve the health paths first, ahead of every other route of the app."""
    state.health_check = DatabaseCheck(engine)
    for path in reversed(PATHS):
        route = Route(path, _endpoint, methods=["GET"], include_in_schema=False)
        route.methods = {"GET"}  # as the documented operation: HEAD is not part of it
        routes.insert(0, route)


router = domain_router(tags=["health"])


@router.get(
    "/health",
    summary="Service and database health",
    response_model=Health,
    operation_id="health",
    responses={503: {"description": "The database is unreachable"}},
)
async def health(runtime: RuntimeDep, request: Request) -> ORJSONResponse:
    check: DatabaseCheck | None = getattr(request.app.state, "health_check", None)
    return health_response(await (check or DatabaseCheck(runtime.engine)).ok())
