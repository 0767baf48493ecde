"""Facts about the current request that services need without seeing the request itself."""

from __future__ import annotations

from fastapi import Request

from ronda.core.middleware import client_ip


def request_ip(request: Request) -> str:
    return client_ip(request.scope)


def request_user_agent(request: Request) -> str | None:
    value = request.headers.get("user-agent")
    return value[:300] if value else None
