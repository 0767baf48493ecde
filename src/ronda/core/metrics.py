"""Prometheus metrics: one registry per app, HTTP figures from the request middleware, the rest at scrape.

HTTP requests are counted by method, route template (never the raw path: ids would make a series per
object) and status, with a latency histogram by method and route. Figures that live in the database
(scans running, queue depths, failing webhooks, devices by status) are read when /metrics is scraped,
by "probes" that domains register: each is an async function of a session returning samples.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from ronda.core.errors import error_response

log = logging.getLogger("ronda.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"

# A probe returns {label values tuple: value}; label names are declared when it is registered.
Probe = Callable[[AsyncSession], Awaitable[dict[tuple[str, ...], float]]]


def route_template(scope: Scope, prefix: str = "/api/v1") -> str:
    """The matched route's template (`/api/v1/devices/{device_id}`), or "unmatched".

    FastAPI keeps an included router's routes with their own paths (the prefix lives in the
    include), so the API prefix is put back when the request came through it."""
    template = getattr(scope.get("route"), "path", None)
    if not template:
        return UNMATCHED
    if scope["path"].startswith(prefix) and not template.startswith(prefix):
        return prefix + str(template)
    return str(template)


class Metrics:
    def __init__(self, checkin_route: str) -> None:
        self.checkin_route = checkin_route
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter("ronda_http_requests", "HTTP requests answered, by method, route and status",
                                 ["method", "route", "status"], registry=self.registry)
        self._latency = Histogram("ronda_http_request_duration_seconds", "Time to answer an HTTP request",
                                  ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.checkins = Counter("ronda_agent_checkins", "Device reports accepted (POST /devices/report)",
                                registry=self.registry)
        self.scrape_errors = Counter("ronda_metrics_probe_errors", "Scrape-time probes that failed",
                                     ["probe"], registry=self.registry)
        # Label children cached per key: .labels() parses its arguments on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._probes: list[tuple[str, Gauge, Probe]] = []

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self._requests.labels(method, route, str(status)), self._latency.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if route == self.checkin_route and 200 <= status < 300:
            self.checkins.inc()

    def add_probe(self, name: str, documentation: str, labels: tuple[str, ...], probe: Probe) -> None:
        """A gauge whose samples `probe` reads from the database at each scrape."""
        self._probes.append((name, Gauge(name, documentation, list(labels), registry=self.registry), probe))

    async def render(self, sessions: async_sessionmaker[AsyncSession]) -> bytes:
        if self._probes:
            async with sessions() as session:
                for name, gauge, probe in self._probes:
                    try:
                        samples = await probe(session)
                    except Exception:  # a broken probe must not take the other figures down
                        log.exception("metrics probe %s failed", name)
                        self.scrape_errors.labels(name).inc()
                        with contextlib.suppress(Exception):  # the database may be the thing that is away
                            await session.rollback()
                        continue
                    gauge.clear()
                    for label_values, value in samples.items():
                        (gauge.labels(*label_values) if label_values else gauge).set(value)
        return generate_latest(self.registry)


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics in the Prometheus text format; with RONDA_METRICS_TOKEN set, only for that bearer."""
    state = request.app.state
    expected: str = state.runtime.settings.metrics_token
    if expected:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return error_response(401, "Metrics need Authorization: Bearer <RONDA_METRICS_TOKEN>", "UNAUTHORIZED",
                                  headers={"WWW-Authenticate": "Bearer"})
    started = time.perf_counter()
    body = await state.metrics.render(state.sessions)
    log.debug("metrics rendered in %.1f ms", (time.perf_counter() - started) * 1000)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
