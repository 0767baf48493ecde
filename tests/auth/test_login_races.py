"""The usual login writes without holding the user's row through the hash, and still decides on the
user as it is at the end: a lock or a password change that lands while the hash runs wins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ronda.auth.models import AuthSession, RefreshToken
from ronda.core.timeutil import utcnow
from ronda.users.models import User
from tests.agents.helpers import set_columns
from tests.conftest import PASSWORD, Account, Factory
from tests.devices.inventory_helpers import audit_events
from tests.support import assert_error

LOGIN = "/api/v1/auth/login"


async def _sessions_of(factory: Factory, user_id: str) -> tuple[int, int]:
    async with factory.runtime.sessions() as session:
        auth = await session.scalar(select(func.count()).select_from(AuthSession).where(AuthSession.user_id == user_id))
        tokens = await session.scalar(select(func.count()).select_from(RefreshToken)
                                      .where(RefreshToken.user_id == user_id))
    return int(auth or 0), int(tokens or 0)


def _meanwhile(monkeypatch: pytest.MonkeyPatch, factory: Factory,
               change: Callable[[], Awaitable[None]]) -> None:
    """Run `change` while the login's hash is being verified (after the login read the user)."""
    passwords = factory.runtime.passwords
    verify = passwords.verify

    async def verify_then_change(stored: str | None, password: str) -> bool:
        result = await verify(stored, password)
        await change()
        return result

    monkeypatch.setattr(passwords, "verify", verify_then_change)


async def test_a_login_resets_failures_and_records_its_session(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer", login=False)
    await set_columns(factory, User, user.id, failed_login_count=3, failed_window_start=utcnow())
    response = await client.post(LOGIN, json={"username": user.username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json()["mfa_setup_required"] is False
    async with factory.runtime.sessions() as session:
        row = (await session.execute(select(User).where(User.id == user.id))).scalar_one()
        assert row.failed_login_count == 0 and row.failed_window_start is None and row.locked_until is None
        assert row.last_login_at is not None
        auth = (await session.execute(select(AuthSession).where(AuthSession.user_id == user.id))).scalar_one()
    assert await _sessions_of(factory, user.id) == (1, 1)
    [event] = await audit_events(factory, user.tenant_id, "auth.login.succeeded")
    assert event.details == {"session_id": auth.id, "mfa": False, "scope": "full"}
    assert event.actor_id == user.id and event.actor_email == user.email
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"})
    assert me.status_code == 200


async def test_a_lock_that_lands_during_the_hash_refuses_the_login(
    client: httpx.AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await factory.user("viewer", login=False)

    async def lock() -> None:
        await set_columns(factory, User, user.id, locked_until=utcnow() + timedelta(minutes=10))

    _meanwhile(monkeypatch, factory, lock)
    assert_error(await client.post(LOGIN, json={"username": user.username, "password": PASSWORD}), 423, "LOCKED")
    assert await _sessions_of(factory, user.id) == (0, 0)
    assert [e.details["reason"] for e in await audit_events(factory, user.tenant_id, "auth.login.failed")] == \
        ["account_locked"]
    assert await audit_events(factory, user.tenant_id, "auth.login.succeeded") == []


async def test_a_password_change_during_the_hash_refuses_the_old_password(
    client: httpx.AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await factory.user("viewer", login=False)
    other_hash = await factory.runtime.passwords.hash("a completely new password")

    async def change_password() -> None:
        await set_columns(factory, User, user.id, password_hash=other_hash)

    _meanwhile(monkeypatch, factory, change_password)
    assert_error(await client.post(LOGIN, json={"username": user.username, "password": PASSWORD}), 401)
    assert await _sessions_of(factory, user.id) == (0, 0)
    failed = await audit_events(factory, user.tenant_id, "auth.login.failed")
    assert [(e.details["reason"], e.details["failed_attempts"]) for e in failed] == [("bad_password", 1)]


async def test_a_tenant_that_requires_2fa_gets_an_enrolment_token(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant(mfa_required=True)
    user: Account = await factory.user("viewer", tenant_id=tenant, login=False)
    response = await client.post(LOGIN, json={"username": user.username, "password": PASSWORD})
    assert response.status_code == 200 and response.json()["mfa_setup_required"] is True
    [event] = await audit_events(factory, tenant, "auth.login.succeeded")
    details: dict[str, Any] = event.details
    assert details["scope"] == "mfa_setup" and details["mfa"] is False
