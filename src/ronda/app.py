"""create_app(settings): the one place the service is assembled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ronda import __version__
from ronda.auth.authenticator import Authenticator
from ronda.config import Settings
from ronda.core.db import create_engine, create_session_factory
from ronda.core.errors import install_error_handlers
from ronda.core.events import EventBus
from ronda.core.logging import configure_logging
from ronda.core.middleware import CANONICAL, REPORT_PATH, RequestContextMiddleware
from ronda.core.openapi import install_openapi
from ronda.core.ratelimit import build_rate_limiter
from ronda.core.responses import ORJSONResponse
from ronda.core.runtime import Runtime
from ronda.core.security import Passwords, Tokens
from ronda.core.uow import UnitOfWorkRoute
from ronda.routes import api_routers

DESCRIPTION = """Ronda answers four questions for an IT or security team: what is on our networks,
is every device compliant, are our SaaS services reviewed, and can we prove it to an auditor.

Every route is served under `/api/v1` (shown here), and also under `/api` and `/v1`.
Authenticate with `Authorization: Bearer <token or API key>` or `X-API-Key: <key>`."""


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
        yield
        await runtime.limiter.close()
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
    app.state.authenticator = Authenticator(runtime.tokens, runtime.limiter, runtime.sessions)
    app.state.events = EventBus()
    install_error_handlers(app)
    install_openapi(app)

    api = APIRouter(prefix=CANONICAL, route_class=UnitOfWorkRoute)
    for router in api_routers():
        api.include_router(router)
    app.include_router(api)
    from ronda.health.router import router as health_router

    app.include_router(health_router, include_in_schema=False)

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
        large_bodies={REPORT_PATH: settings.max_report_bytes},
    )
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory used by `ronda serve`: settings from RONDA_* variables."""
    from ronda.config import load_settings

    return create_app(load_settings())
