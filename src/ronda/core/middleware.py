"""Plain-ASGI middleware: prefix aliases, request ids, body limits, rate-limit and security headers.

Agent reports (REPORT_PATH) have their own, larger body limit and may be sent gzip-compressed;
the decompressed size is held to the same limit, so a gzip bomb is refused with 413 as well.

Written as raw ASGI rather than BaseHTTPMiddleware: it runs on every request, so it stays cheap.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from functools import lru_cache
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ronda.core.errors import error_body
from ronda.core.logging import request_id_var
from ronda.core.metrics import Metrics, route_template
from ronda.core.ratelimit import Decision, RateLimiter
from ronda.core.responses import ORJSONResponse

log = logging.getLogger("ronda.access")

CANONICAL = "/api/v1"
REPORT_PATH = CANONICAL + "/devices/report"
PROBE_RESULT_PATH = CANONICAL + "/probes/scans/{}/result"
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
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        limiter: RateLimiter,
        large_bodies: dict[str, int] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self.limiter = limiter
        # Paths with their own body limit; only these accept Content-Encoding: gzip. A "{}" stands for
        # one path segment (an id): such paths are matched by their prefix and suffix.
        self.large_bodies = {path: size for path, size in (large_bodies or {}).items() if "{}" not in path}
        self.large_patterns: list[tuple[str, str, int]] = [
            (path.partition("{}")[0], path.partition("{}")[2], size)
            for path, size in (large_bodies or {}).items() if "{}" in path
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                path = scope["path"]
                # Streams are documented at /ws/...: served by their /api/v1/ws/... routes.
                scope["path"] = CANONICAL + path if path.startswith("/ws/") else canonical_path(path)
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope["path"] = canonical_path(scope["path"])
        request_id = b""
        length = -1
        encoding = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _valid_request_id(value):
                request_id = value
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"content-encoding":
                encoding = value.strip().lower()
        large = self._large_limit(scope["path"])
        limit = large or self.max_body
        compressed = encoding == b"gzip" and large is not None
        # 16 hex digits, as before; random's generator (reseeded in forked workers) needs no system call.
        rid = request_id.decode() if request_id else f"{random.getrandbits(64):016x}"
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
                # A 429 already carries its decision's headers (and Retry-After): send them once.
                if not any(name == b"x-ratelimit-limit" for name, _ in headers):
                    headers.extend(_rate_headers(decision))
                headers.append((b"x-request-id", rid.encode()))
                headers.extend(STATIC_HEADERS)
                message["headers"] = headers
            await send(message)

        try:
            if length > limit:
                await self._too_large(send_wrapper, limit)
                return
            if encoding not in (b"", b"identity") and not compressed and large is not None:
                body = error_body(415, "Unsupported Content-Encoding; send gzip or identity", "UNSUPPORTED_MEDIA_TYPE")
                await ORJSONResponse(body, status_code=415)({"type": "http"}, _empty_receive, send_wrapper)
                return
            limited = _limited(receive, limit)
            if compressed:
                # Downstream sees a plain body of unknown length.
                scope["headers"] = [
                    (name, value) for name, value in scope["headers"]
                    if name not in (b"content-encoding", b"content-length")
                ]
                limited = _gunzipped(limited, limit)
            await self.app(scope, limited, send_wrapper)
        except Exception:
            # Caught here, inside the request's context, so the 500 carries our headers and the
            # log line its request id; the body never says what went wrong.
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if status_holder[0]:
                raise
            response = ORJSONResponse(error_body(500, "Internal server error", "INTERNAL_ERROR"), status_code=500)
            await response({"type": "http"}, _empty_receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(scope["method"], route_template(scope), status_holder[0] or 500, elapsed)
            if log.isEnabledFor(logging.INFO):  # the access line is built only when it is written
                log.info(
                    "%s %s %s %.1fms",
                    scope["method"],
                    scope["path"],
                    status_holder[0],
                    elapsed * 1000,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status_holder[0],
                        "client": client_ip(scope),
                    },
                )
            request_id_var.reset(token)

    def _large_limit(self, path: str) -> int | None:
        exact = self.large_bodies.get(path)
        if exact is not None or not self.large_patterns:
            return exact
        for prefix, suffix, size in self.large_patterns:
            if (path.startswith(prefix) and path.endswith(suffix) and len(path) > len(prefix) + len(suffix)
                    and "/" not in path[len(prefix):len(path) - len(suffix)]):
                return size
        return None

    async def _too_large(self, send: Send, limit: int) -> None:
        body = error_body(413, f"Request body exceeds {limit} bytes", "PAYLOAD_TOO_LARGE")
        response = ORJSONResponse(body, status_code=413)
        await response({"type": "http"}, _empty_receive, send)


@lru_cache(maxsize=1024)
def _rate_headers(decision: Decision) -> tuple[tuple[bytes, bytes], ...]:
    # Decisions repeat (the same budget left within a window, and always with limits off).
    return tuple((name.lower().encode(), value.encode()) for name, value in decision.headers().items())


def _limited(receive: Receive, limit: int) -> Receive:
    """Count the bytes as they arrive (a chunked body has no Content-Length to check up front)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped


def _gunzipped(receive: Receive, limit: int) -> Receive:
    """Inflate a gzip body chunk by chunk, never holding more than `limit` decompressed bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    produced = 0

    async def wrapped() -> Message:
        nonlocal produced
        message = await receive()
        if message["type"] != "http.request":
            return message
        more = bool(message.get("more_body", False))
        try:
            out = inflater.decompress(message.get("body", b""), limit + 1 - produced)
            if inflater.unconsumed_tail:  # stopped at the cap: the whole would exceed the limit
                raise BodyTooLarge(limit)
            if not more:
                out += inflater.flush()
                if not inflater.eof:
                    raise HTTPException(400, "Malformed gzip body: the stream is truncated")
        except zlib.error:
            raise HTTPException(400, "Malformed gzip body") from None
        produced += len(out)
        if produced > limit:
            raise BodyTooLarge(limit)
        return {"type": "http.request", "body": out, "more_body": more}

    return wrapped


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
