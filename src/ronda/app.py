"""create_app(settings): the one place the service is assembled."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from ronda import __version__
from ronda.auth.authenticator import Authenticator
from ronda.auth.epoch import RedisEpoch, epoch_for
from ronda.config import Settings
from ronda.core.db import create_engine, create_session_factory
from ronda.core.errors import install_error_handlers
from ronda.core.events import EventBus
from ronda.core.logging import configure_logging
from ronda.core.metrics import Metrics, metrics_endpoint
from ronda.core.middleware import CANONICAL, PROBE_RESULT_PATH, REPORT_PATH, RequestContextMiddleware
from ronda.core.openapi import install_openapi
from ronda.core.ratelimit import build_rate_limiter
from ronda.core.responses import ORJSONResponse
from ronda.core.runtime import Runtime
from ronda.core.security import Passwords, Tokens
from ronda.ops import metrics as ops_metrics
from ronda.routes import api_routers, start_background

GC_THRESHOLD = 20_000  # allocations between young-generation collections (CPython's default: 700)

DESCRIPTION = """Ronda answers four questions for an IT or security team: what is on our networks,
is every device compliant, are our SaaS services reviewed, and can we prove it to an auditor.

Every route is served under `/api/v1` (shown here), and also under `/api` and `/v1`.
Authenticate with `Authorization: Bearer <token or API key>` or `X-API-Key: <key>`."""


class StaticPaths(BaseRoute):
    """Where a request for a path without parameters goes, without matching it against every route.

    FastAPI tries a request against each included router's routes in turn (twice for the router
    that takes it): most of the cost of a cheap request. This route, placed first, knows for each
    (path, method) of the API's fixed paths which top-level route a full scan would pick (worked
    out here, by running that scan once), and hands the request straight to it. Anything else,
    including a path with parameters or a method a path lacks, goes on to the usual scan."""

    def __init__(self, routes: list[BaseRoute], routers: list[APIRouter]) -> None:
        self._targets: dict[tuple[str, str], BaseRoute] = {}
        for router in routers:
            for route in router.routes:
                path = CANONICAL + getattr(route, "path", "{")
                if "{" in path:
                    continue
                for method in getattr(route, "methods", None) or ():
                    target = _first_full_match(routes, path, method)
                    if target is not None:
                        self._targets.setdefault((path, method), target)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not scope.get("root_path"):
            target = self._targets.get((scope["path"], scope["method"]))
            if target is not None:
                return target.matches(scope)
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._targets[(scope["path"], scope["method"])]
        scope["route"] = target  # what the router would have recorded (metrics read the template)
        await target.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)


def _first_full_match(routes: list[BaseRoute], path: str, method: str) -> BaseRoute | None:
    for route in routes:
        probe: Scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
        match, _ = route.matches(probe)
        if match == Match.FULL:
            return route
    return None


def build_runtime(settings: Settings) -> Runtime:
    engine = create_engine(settings.resolved_database_url)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=create_session_factory(engine),
        passwords=Passwords(
            settings.argon2_memory_kib,
            settings.argon2_time_cost,
            settings.argon2_parallelism,
            settings.hash_concurrency,
        ),
        tokens=Tokens(settings.ensure_secret_key(), settings.access_token_ttl, settings.refresh_token_ttl),
        limiter=build_rate_limiter(settings.rate_limits_enabled, settings.redis_url),
    )


def create_app(settings: Settings) -> FastAPI:
    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await app.state.events.start()
        stops = await start_background(app)
        yield
        for stop in reversed(stops):
            await stop()
        await app.state.events.close()
        await runtime.limiter.close()
        if isinstance(auth_epoch, RedisEpoch):
            await auth_epoch.close()
        await runtime.engine.dispose()

    app = FastAPI(
        title="Ronda",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.sessions = runtime.sessions
    auth_epoch = epoch_for(settings, runtime.engine.url)
    app.state.authenticator = Authenticator(runtime.tokens, runtime.limiter, runtime.sessions, auth_epoch)
    app.state.events = EventBus(settings.redis_url)
    app.state.metrics = Metrics(checkin_route=REPORT_PATH)
    ops_metrics.register(app)  # scrape-time gauges read from the database (queues, alerts, agents)
    install_error_handlers(app)
    install_openapi(app)

    # Each domain's router straight under the canonical prefix: one level of routers to match
    # through (FastAPI matches every level of nesting again for each request).
    routers = api_routers()
    for router in routers:
        app.include_router(router, prefix=CANONICAL)
    from ronda.health import router as health

    app.include_router(health.router, include_in_schema=False)
    health.install(app.router.routes, runtime.engine, app.state)
    app.router.routes.insert(len(health.PATHS), StaticPaths(app.router.routes, routers))
    app.router.routes.append(Route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False))

    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["*"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
            ],
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body=settings.max_body_bytes,
        limiter=runtime.limiter,
        # Agent reports and a probe's scan results (a whole site's hosts and ports) may be large.
        large_bodies={REPORT_PATH: settings.max_report_bytes, PROBE_RESULT_PATH: settings.max_report_bytes},
        metrics=app.state.metrics,
    )
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory used by `ronda serve`: settings from RONDA_* variables."""
    from ronda.config import load_settings

    app = create_app(load_settings())
    tune_gc()
    return app


def tune_gc() -> None:
    """For the server process: what exists once the app is built (modules, routes, models) lives as
    long as the process, so the collector stops scanning it; and it runs less often, since a
    collection in the middle of requests is what sets their slowest latencies."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)
