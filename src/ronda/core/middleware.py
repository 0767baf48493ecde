"""Plain-ASGI middleware: prefix aliases, request ids, body limits, rate-limit and security headers.

Written as raw ASGI rather than BaseHTTPMiddleware: it runs on every request, so it stays cheap.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ronda.core.errors import error_body
from ronda.core.logging import request_id_var
from ronda.core.ratelimit import Decision, RateLimiter
from ronda.core.responses import ORJSONResponse

log = logging.getLogger("ronda.access")

CANONICAL = "/api/v1"
ALIASES = ("/api/", "/v1/")
STATIC_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
ANONYMOUS_PER_MINUTE = 60


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body exceeds {limit} bytes")


def canonical_path(path: str) -> str:
    """`/api/x` and `/v1/x` are served by the `/api/v1/x` route."""
    if path.startswith(CANONICAL + "/") or path == CANONICAL:
        return path
    for alias in ALIASES:
        if path.startswith(alias):
            return CANONICAL + "/" + path[len(alias) :]
    if path in ("/api", "/v1"):
        return CANONICAL
    return path


def _valid_request_id(value: bytes) -> bool:
    return 0 < len(value) <= 64 and all(
        c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_." for c in value
    )


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body: int, limiter: RateLimiter) -> None:
        self.app = app
        self.max_body = max_body
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                scope["path"] = canonical_path(scope["path"])
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope["path"] = canonical_path(scope["path"])
        request_id = b""
        length = -1
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _valid_request_id(value):
                request_id = value
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
        rid = request_id.decode() if request_id else secrets.token_hex(8)
        token = request_id_var.set(rid)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        status_holder = [0]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                decision: Decision | None = state.get("rate_decision")
                if decision is None:
                    decision = await self.limiter.peek("ip:" + client_ip(scope), ANONYMOUS_PER_MINUTE)
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                headers.extend(STATIC_HEADERS)
                headers.extend(
                    (k.lower().encode(), v.encode())
                    for k, v in decision.headers().items()
                    if k != "Retry-After" or not decision.allowed
                )
                message["headers"] = headers
            await send(message)

        try:
            if length > self.max_body:
                await self._too_large(send_wrapper)
                return
            await self.app(scope, self._limited(receive), send_wrapper)
        except Exception:
            # Caught here, inside the request's context, so the 500 carries our headers and the
            # log line its request id; the body never says what went wrong.
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if status_holder[0]:
                raise
            response = ORJSONResponse(error_body(500, "Internal server error", "INTERNAL_ERROR"), status_code=500)
            await response({"type": "http"}, _empty_receive, send_wrapper)
        finally:
            log.info(
                "%s %s %s %.1fms",
                scope["method"],
                scope["path"],
                status_holder[0],
                (time.perf_counter() - started) * 1000,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_holder[0],
                    "client": client_ip(scope),
                },
            )
            request_id_var.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return wrapped

    async def _too_large(self, send: Send) -> None:
        body = error_body(413, f"Request body exceeds {self.max_body} bytes", "PAYLOAD_TOO_LARGE")
        response = ORJSONResponse(body, status_code=413)
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
