"""Every domain router, in the order they appear in the OpenAPI document."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI

DOMAINS = (
    "health", "auth", "users", "devices", "devices.report_router", "agents", "tenants", "api_keys", "rbac", "audit",
    "webhooks", "services", "dashboard", "alerts", "streams", "scans", "reports", "cve",
    "sites", "probes",
)


def api_routers() -> list[APIRouter]:
    routers = []
    for name in DOMAINS:
        # A package name means its router module; a dotted name is the router module itself.
        module = importlib.import_module(f"ronda.{name}" if "." in name else f"ronda.{name}.router")
        routers.append(module.router)
    return routers


# Modules with `async def start(app: FastAPI) -> Stop`: background work (scan runners, webhook
# delivery, report generation ...) started in the app's lifespan, stopped in reverse order.
BACKGROUND: tuple[str, ...] = ("maintenance", "services.overdue", "webhooks.dispatcher", "alerts.engine",
                               "agents.sweeper", "scans.runner", "reports.runner", "cve.runner",
                               "probes.waiter")

Stop = Callable[[], Awaitable[None]]


async def start_background(app: FastAPI) -> list[Stop]:
    stops: list[Stop] = []
    for name in BACKGROUND:
        module = importlib.import_module(f"ronda.{name}")
        stops.append(await module.start(app))
    return stops
