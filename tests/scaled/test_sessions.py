"""Tokens across server processes: what one process revokes, the other refuses at once."""

from __future__ import annotations

import asyncio

import httpx

from ronda.auth.models import AuthSession
from ronda.core.db import transaction
from tests.conftest import PASSWORD, Factory
from tests.scaled.conftest import Pair, new_client
from tests.scaled.support import ME, audit_count, bearer, login, session_of, works
from tests.support import assert_error

NEW_PASSWORD = "a different horse battery"


async def test_logout_in_one_process_is_refused_by_the_other_at_once(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user("operator", login=False)
    tokens = await login(http, pair[0], user.username)
    other = await login(http, pair[1], user.username)
    # Used on both sides first: whatever a process remembers of a token, it has remembered it.
    for i in range(4):
        assert await works(http, pair[i], tokens["access_token"])
    out = await http.post(pair[0] + "/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.status_code == 200, out.text
    assert_error(await http.get(pair[1] + ME, headers=bearer(tokens["access_token"])), 401, "UNAUTHORIZED")
    assert_error(await http.get(pair[0] + ME, headers=bearer(tokens["access_token"])), 401, "UNAUTHORIZED")
    refresh = await http.post(pair[1] + "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_error(refresh, 401, "UNAUTHORIZED")
    # The same user's other login is another session, on either process.
    assert await works(http, pair[0], other["access_token"]) and await works(http, pair[1], other["access_token"])


async def test_refresh_rotated_in_one_process_and_replayed_in_the_other_ends_the_session(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user("analyst", login=False)
    first = await login(http, pair[0], user.username)
    rotated = await http.post(pair[0] + "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert await works(http, pair[1], fresh["access_token"])

    replay = await http.post(pair[1] + "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_error(replay, 401, "UNAUTHORIZED")
    assert "already used" in replay.json()["detail"]
    # The whole login is gone, on both processes: the rotated tokens too.
    for url in pair.urls:
        assert not await works(http, url, fresh["access_token"])
        assert not await works(http, url, first["access_token"])
    again = await http.post(pair[0] + "/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert_error(again, 401, "UNAUTHORIZED")
    async with transaction(factory.runtime.sessions, write=False) as session:
        ended = await session.get(AuthSession, session_of(fresh["access_token"]))
    assert ended is not None and ended.revoked_reason == "refresh_reuse"
    assert await audit_count(factory, user.tenant_id, "auth.token.reuse_detected") == 1


async def test_one_refresh_token_spent_at_once_in_both_processes_is_used_once(
    pair: Pair, factory: Factory
) -> None:
    """The race a stolen copy would run: one exchange wins, the other is a reuse and ends the login."""
    user = await factory.user("viewer", login=False)
    for _ in range(3):
        async with new_client() as http:  # each round from its own address: logins are budgeted per address
            await race_one_refresh_token(pair, http, user.username)


async def race_one_refresh_token(pair: Pair, http: httpx.AsyncClient, username: str) -> None:
    tokens = await login(http, pair[0], username)
    body = {"refresh_token": tokens["refresh_token"]}
    responses = await asyncio.gather(*(http.post(pair[i] + "/api/v1/auth/refresh", json=body) for i in range(2)))
    assert sorted(r.status_code for r in responses) == [200, 401], [r.text for r in responses]
    [won] = [r.json() for r in responses if r.status_code == 200]
    [lost] = [r for r in responses if r.status_code == 401]
    assert_error(lost, 401, "UNAUTHORIZED")
    for url in pair.urls:
        assert not await works(http, url, won["access_token"])
    refused = await http.post(pair[1] + "/api/v1/auth/refresh", json={"refresh_token": won["refresh_token"]})
    assert_error(refused, 401)


async def test_password_changed_in_one_process_ends_other_sessions_in_the_other(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user("user", login=False)
    here = await login(http, pair[0], user.username)
    elsewhere = await login(http, pair[1], user.username)
    assert await works(http, pair[1], elsewhere["access_token"])
    changed = await http.post(
        pair[0] + "/api/v1/auth/change-password",
        headers=bearer(here["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    assert not await works(http, pair[1], elsewhere["access_token"])
    refresh = await http.post(pair[1] + "/api/v1/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]})
    assert_error(refresh, 401)
    # The session that changed it stays, on both processes; only the new password logs in.
    assert await works(http, pair[1], here["access_token"]) and await works(http, pair[0], here["access_token"])
    old = await http.post(pair[1] + "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    assert_error(old, 401, "UNAUTHORIZED")
    await login(http, pair[1], user.username, NEW_PASSWORD)


async def test_api_key_revoked_in_one_process_is_refused_by_the_other(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    created = await http.post(
        pair[1] + "/api/v1/api-keys", headers=admin.headers, json={"name": "ci", "permissions": ["devices_read"]}
    )
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    for i in range(4):
        assert (await http.get(pair[i] + "/api/v1/devices", headers={"X-API-Key": key})).status_code == 200
    revoked = await http.delete(pair[0] + f"/api/v1/api-keys/{key_id}", headers=admin.headers)
    assert revoked.status_code == 200, revoked.text
    for i in range(2):
        assert_error(await http.get(pair[i] + "/api/v1/devices", headers={"X-API-Key": key}), 401, "UNAUTHORIZED")
        assert_error(await http.get(pair[i] + "/api/v1/devices", headers=bearer(key)), 401, "UNAUTHORIZED")
    # Revoked once: the other process knows it is already revoked.
    assert_error(await http.delete(pair[1] + f"/api/v1/api-keys/{key_id}", headers=admin.headers), 409, "CONFLICT")


async def test_user_deactivated_in_one_process_is_refused_by_the_other(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    member = await factory.user("viewer", tenant_id=admin.tenant_id, login=False)
    tokens = await login(http, pair[1], member.username)
    assert await works(http, pair[1], tokens["access_token"])
    gone = await http.delete(pair[0] + f"/api/v1/users/{member.id}", headers=admin.headers)
    assert gone.status_code == 200, gone.text
    assert not await works(http, pair[1], tokens["access_token"])
    again = await http.post(pair[1] + "/api/v1/auth/login", json={"username": member.username, "password": PASSWORD})
    assert_error(again, 401)


async def test_a_key_revoking_itself_on_both_processes_at_once_is_revoked_once(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    created = await http.post(pair[0] + "/api/v1/api-keys", headers=admin.headers,
                              json={"name": "self-revoking", "permissions": ["api_keys_manage"]})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    raced = await asyncio.gather(
        *(http.delete(pair[i] + f"/api/v1/api-keys/{key_id}", headers={"X-API-Key": key}) for i in range(2))
    )
    # The loser either saw the key already revoked (409) or was no longer let in (401): never a second 200.
    codes = sorted(r.status_code for r in raced)
    assert codes in ([200, 401], [200, 409]), [r.text for r in raced]
    assert await audit_count(factory, admin.tenant_id, "api_key.revoked") == 1


async def test_role_lowered_in_one_process_applies_in_the_other_at_once(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    member = await factory.user("admin", tenant_id=admin.tenant_id)
    assert (await http.get(pair[1] + "/api/v1/users", headers=member.headers)).status_code == 200
    lowered = await http.patch(pair[0] + f"/api/v1/users/{member.id}", headers=admin.headers, json={"role": "viewer"})
    assert lowered.status_code == 200, lowered.text
    assert_error(await http.get(pair[1] + "/api/v1/users", headers=member.headers), 403, "FORBIDDEN")
    me = await http.get(pair[1] + ME, headers=member.headers)
    assert me.status_code == 200 and me.json()["role"] == "viewer"
