from __future__ import annotations

import httpx
from sqlalchemy import select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from tests.conftest import PASSWORD, Factory
from tests.support import assert_error


async def test_five_failures_lock_the_account_even_for_the_right_password(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user("user", login=False)
    for attempt in range(4):
        bad = await client.post("/api/v1/auth/login", json={"username": user.username, "password": f"wrong-{attempt}"})
        assert_error(bad, 401, "UNAUTHORIZED")
    fifth = await client.post("/api/v1/auth/login", json={"username": user.username, "password": "wrong-again"})
    assert_error(fifth, 423, "LOCKED")
    assert 800 <= int(fifth.headers["Retry-After"]) <= 901
    right = await client.post("/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    assert_error(right, 423, "LOCKED")
    assert int(right.headers["Retry-After"]) >= 1

    async with transaction(factory.runtime.sessions, write=False) as session:
        events = (
            await session.scalars(
                select(AuditLog.event_type).where(AuditLog.tenant_id == user.tenant_id).order_by(AuditLog.seq)
            )
        ).all()
    assert events.count("auth.login.failed") == 6
    assert events.count("auth.account.locked") == 1


async def test_tenant_lockout_policy_is_honoured(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant(lockout_threshold=2, lockout_duration_minutes=1)
    user = await factory.user("viewer", tenant_id=tenant, login=False)
    await client.post("/api/v1/auth/login", json={"username": user.username, "password": "nope-nope-nope"})
    second = await client.post("/api/v1/auth/login", json={"username": user.username, "password": "nope-nope-nope"})
    assert_error(second, 423, "LOCKED")
    assert 1 <= int(second.headers["Retry-After"]) <= 61


async def test_success_resets_the_failure_count(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer", login=False)
    for _ in range(3):
        await client.post("/api/v1/auth/login", json={"username": user.username, "password": "not-the-password"})
    assert (
        await client.post("/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    ).status_code == 200
    for _ in range(4):
        response = await client.post("/api/v1/auth/login", json={"username": user.username, "password": "not-it-again"})
        assert response.status_code == 401
