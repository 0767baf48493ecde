"""Every domain router, in the order they appear in the OpenAPI document."""

from __future__ import annotations

import importlib

from fastapi import APIRouter

DOMAINS = (
    "health", "auth", "users", "devices", "devices.report_router", "agents", "tenants", "api_keys", "rbac", "audit",
)


def api_routers() -> list[APIRouter]:
    routers = []
    for name in DOMAINS:
        # A package name means its router module; a dotted name is the router module itself.
        module = importlib.import_module(f"ronda.{name}" if "." in name else f"ronda.{name}.router")
        routers.append(module.router)
    return routers
