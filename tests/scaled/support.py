"""Helpers for the scaled-mode tests: log in, try a token, count audit records."""

from __future__ import annotations

import httpx
import jwt
from sqlalchemy import func, select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from tests.conftest import PASSWORD, Factory

ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_of(access_token: str) -> str:
    """The login session a token belongs to (read, not verified: the test issued it)."""
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


async def login(http: httpx.AsyncClient, url: str, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = await http.post(url + LOGIN, json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def works(http: httpx.AsyncClient, url: str, token: str) -> bool:
    """Whether `url` lets the token in; anything but a clean yes or no fails the test."""
    response = await http.get(url + ME, headers=bearer(token))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def audit_count(factory: Factory, tenant_id: str, event_type: str) -> int:
    async with transaction(factory.runtime.sessions, write=False) as session:
        found = await session.scalar(
            select(func.count()).select_from(AuditLog).where(
                AuditLog.tenant_id == tenant_id, AuditLog.event_type == event_type
            )
        )
    return int(found or 0)
