"""Who is on a WebSocket: the same credentials as the REST API (an access token or an API key, in
`?token=` / `?api_key=` or in the Authorization / X-API-Key headers), through app.state.authenticator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from ronda.auth.authenticator import Authenticator, extract_credential
from ronda.core.errors import AppError, database_unavailable
from ronda.core.principal import Principal
from ronda.core.security import looks_like_jwt

# Close codes: the HTTP status a REST call would get, in the 4000-4999 application range.
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_RATE_LIMITED = 4429
CLOSE_UNAVAILABLE = 4503  # the database or the rate limiter's Redis is unreachable: try again later
CLOSE_TOO_SLOW = 1013  # "try again later": the client did not keep up
CLOSE_STATUS = {400: CLOSE_BAD_REQUEST, 401: CLOSE_UNAUTHORIZED, 403: CLOSE_FORBIDDEN, 404: CLOSE_NOT_FOUND,
                429: CLOSE_RATE_LIMITED, 503: CLOSE_UNAVAILABLE}


class StreamRefused(Exception):
    """The connection must be closed with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close frame's reason holds at most 123 bytes


@dataclass
class StreamCaller:
    principal: Principal
    credential: str


def _as_request(websocket: WebSocket) -> Request:
    """An HTTP view of the handshake, with a query credential moved into the Authorization header."""
    headers = list(websocket.scope.get("headers", []))
    query_credential = websocket.query_params.get("token") or websocket.query_params.get("api_key")
    if query_credential:
        headers = [(k, v) for k, v in headers if k not in (b"authorization", b"x-api-key")]
        headers.append((b"authorization", b"Bearer " + query_credential.strip().encode()))
    scope: dict[str, Any] = {**websocket.scope, "type": "http", "method": "GET", "headers": headers, "state": {}}
    return Request(scope)


async def _close_session(request: Request) -> None:
    session: AsyncSession | None = request.scope["state"].get("session")
    if session is not None:
        await session.close()


async def authenticate(websocket: WebSocket) -> StreamCaller:
    """The caller, charged to its rate budget like a request; StreamRefused when refused."""
    authenticator: Authenticator = websocket.app.state.authenticator
    request = _as_request(websocket)
    try:
        principal = await authenticator.authenticate(request)
    except AppError as exc:
        raise StreamRefused(CLOSE_STATUS.get(exc.status, CLOSE_FORBIDDEN), exc.message) from None
    except DBAPIError as exc:
        if not database_unavailable(exc):
            raise
        raise StreamRefused(CLOSE_UNAVAILABLE, "Database unavailable") from None
    finally:
        await _close_session(request)
    return StreamCaller(principal, extract_credential(request) or "")


async def current_principal(websocket: WebSocket, caller: StreamCaller) -> Principal | None:
    """The caller as the credential stands now (None once expired, revoked or disabled; a changed role
    brings its new permissions): checked on every ping, without charging the rate budget again."""
    authenticator: Authenticator = websocket.app.state.authenticator
    request = _as_request(websocket)
    try:
        if looks_like_jwt(caller.credential):
            principal = await authenticator._from_token(request, caller.credential)
        else:
            principal = await authenticator._from_api_key(request, caller.credential)
    finally:
        await _close_session(request)
    if principal is None or principal.tenant_id != caller.principal.tenant_id:
        return None
    return principal
