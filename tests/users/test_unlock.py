"""Lockout after repeated failures, and an admin's unlock."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, Factory
from tests.support import assert_error
from tests.users.helpers import audit_events, metadata


async def fail_logins(client: httpx.AsyncClient, username: str, times: int) -> list[httpx.Response]:
    return [
        await client.post("/api/v1/auth/login", json={"username": username, "password": "wrong password 123"})
        for _ in range(times)
    ]


async def test_locked_account_is_unlocked_by_an_admin(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    target = await factory.user("user", tenant_id=admin.tenant_id, login=False)
    responses = await fail_logins(client, target.username, 5)
    for early in responses[:4]:
        assert_error(early, 401, "UNAUTHORIZED")
    locked = assert_error(responses[4], 423, "LOCKED")
    assert locked["detail"]
    assert int(responses[4].headers["Retry-After"]) >= 1
    right_password = await client.post("/api/v1/auth/login", json={"username": target.username, "password": PASSWORD})
    assert_error(right_password, 423, "LOCKED")
    assert int(right_password.headers["Retry-After"]) >= 1

    seen = (await client.get(f"/api/v1/users/{target.id}", headers=admin.headers)).json()
    assert seen["locked_until"] is not None and seen["locked_until"].endswith("Z")

    unlocked = await client.post(f"/api/v1/users/{target.id}/unlock", headers=admin.headers)
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["locked_until"] is None
    login = await client.post("/api/v1/auth/login", json={"username": target.username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    [record] = await audit_events(factory, admin.tenant_id, "auth.account.unlocked", target.id)
    assert record.actor_id == admin.id and metadata(record)["failed_attempts"] == 5
    assert metadata(record)["locked_until"] is not None


async def test_unlock_resets_the_failure_count(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    target = await factory.user("viewer", tenant_id=admin.tenant_id, login=False)
    await fail_logins(client, target.username, 4)
    assert (await client.post(f"/api/v1/users/{target.id}/unlock", headers=admin.headers)).status_code == 200
    # Four more failures would have locked the account had the count survived the unlock.
    for response in await fail_logins(client, target.username, 4):
        assert_error(response, 401, "UNAUTHORIZED")
    ok = await client.post("/api/v1/auth/login", json={"username": target.username, "password": PASSWORD})
    assert ok.status_code == 200


async def test_tenant_lockout_threshold_is_honoured(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    target = await factory.user("viewer", tenant_id=admin.tenant_id, login=False)
    changed = await client.patch("/api/v1/tenants/current", headers=admin.headers,
                                 json={"lockout_threshold": 2, "lockout_duration_minutes": 60})
    assert changed.status_code == 200, changed.text
    first, second = await fail_logins(client, target.username, 2)
    assert_error(first, 401)
    assert_error(second, 423, "LOCKED")
    assert int(second.headers["Retry-After"]) > 3000
