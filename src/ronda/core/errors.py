"""AppError and the handlers that turn every failure into the contract's JSON error body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ronda.core.responses import json_response

log = logging.getLogger("ronda.errors")

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    423: "LOCKED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class AppError(Exception):
    """A failure the client should see. `persist=True` keeps the request's writes (security events)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
        persist: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES.get(status, "ERROR")
        self.details = details
        self.headers = headers or {}
        self.persist = persist


def not_found(what: str) -> AppError:
    return AppError(404, f"{what} not found")


def error_body(status: int, message: str, code: str | None = None, details: Any = None) -> dict[str, Any]:
    return {
        "detail": message,
        "error": {"code": code or CODES.get(status, "ERROR"), "message": message, "details": details},
    }


def error_response(
    status: int, message: str, code: str | None = None, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return json_response(error_body(status, message, code, details), status_code=status, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else "body"
        field = ".".join(loc[1:]) if len(loc) > 1 else where
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            field, message = "body", "Malformed JSON"
        out.append({"field": field, "location": where, "reason": message, "type": str(err.get("type", ""))})
    return out


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return error_response(exc.status, exc.message, exc.code, exc.details, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: "Not found", 405: "Method not allowed"}
    message = exc.detail if isinstance(exc.detail, str) and exc.status_code not in messages else None
    message = message or messages.get(exc.status_code, "Request failed")
    return error_response(exc.status_code, message, headers=dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = _field_errors(exc)
    first = details[0] if details else {"field": "body", "reason": "invalid"}
    message = f"Invalid request: {first['field']}: {first['reason']}"
    return error_response(400, message, "BAD_REQUEST", details)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return error_response(500, "Internal server error")


# SQLite result codes that mean the database cannot be used right now, rather than a faulty statement
# (which is SQLITE_ERROR, like a constraint is SQLITE_CONSTRAINT): busy or locked past the busy
# timeout, I/O error, corrupt, full, cannot open, locking protocol, read-only, not a database.
SQLITE_UNAVAILABLE = frozenset({5, 6, 8, 10, 11, 13, 14, 15, 26})


# PostgreSQL SQLSTATEs of a server that cannot serve right now: connection exceptions (08), shutting down
# or starting up (57P01-57P04: asyncpg raises these as a plain Error, not an OperationalError), out of
# resources (53: disk full, out of memory, too many connections), a read-only (standby) server.
def _pg_unavailable(sqlstate: str) -> bool:
    return sqlstate.startswith(("08", "57P", "53")) or sqlstate == "25006"


def database_unavailable(exc: BaseException) -> bool:
    """True when a database error says the database is unreachable or unusable (a 503), not that a
    statement was wrong (a 500)."""
    if isinstance(exc, SQLAlchemyTimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # the connection died under the statement
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF in SQLITE_UNAVAILABLE
    if _pg_unavailable(str(getattr(exc.orig, "sqlstate", None) or "")):
        return True
    # PostgreSQL: connecting failed (core/db.py turns that into OperationalError) or the driver
    # lost the connection.
    return isinstance(exc, OperationalError | InterfaceError)


async def _database_error(request: Request, exc: Exception) -> Response:
    if database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__, extra={"path": request.url.path})
        return error_response(503, "Database unavailable", "SERVICE_UNAVAILABLE")
    return await _unexpected(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(SQLAlchemyTimeoutError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
