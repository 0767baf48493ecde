"""GET and PATCH /users/me: any signed-in user sees and edits their own profile, never role or tenant."""

from __future__ import annotations

import httpx
import pytest

from ronda.core.authz import role_permissions
from tests.conftest import PASSWORD, Factory
from tests.support import assert_error
from tests.users.helpers import ALL_ROLES, audit_events, bearer, metadata


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_every_role_reads_its_own_profile(client: httpx.AsyncClient, factory: Factory, role: str) -> None:
    user = await factory.user(role)
    response = await client.get("/api/v1/users/me", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == user.id and body["username"] == user.username and body["email"] == user.email
    assert body["role"] == role and body["tenant_id"] == user.tenant_id
    assert body["permissions"] == sorted(role_permissions(role))
    assert body["auth_type"] == "user" and body["is_active"] is True and body["mfa_enabled"] is False
    assert body["created_at"].endswith("Z")
    assert not any("password" in key or "totp" in key for key in body)


async def test_seed_paths_serve_the_same_profile(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer")
    for path in ("/v1/users/me", "/api/users/me"):
        response = await client.get(path, headers=user.headers)
        assert response.status_code == 200 and response.json()["id"] == user.id


async def test_profile_needs_credentials(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/users/me"), 401, "UNAUTHORIZED")
    assert_error(await client.patch("/api/v1/users/me", json={"full_name": "Nobody"}), 401, "UNAUTHORIZED")
    bad = bearer("not-a-token")
    assert_error(await client.get("/api/v1/users/me", headers=bad), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_every_role_renames_itself_and_it_is_audited(
    client: httpx.AsyncClient, factory: Factory, role: str
) -> None:
    user = await factory.user(role)
    response = await client.patch("/api/v1/users/me", headers=user.headers, json={"full_name": "Ada Lovelace"})
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Ada Lovelace"
    assert (await client.get("/api/v1/users/me", headers=user.headers)).json()["full_name"] == "Ada Lovelace"
    [record] = await audit_events(factory, user.tenant_id, "user.profile_updated", user.id)
    assert metadata(record)["changes"]["full_name"]["new"] == "Ada Lovelace"
    assert record.actor_id == user.id


@pytest.mark.parametrize(
    "body",
    [
        {"role": "admin"},
        {"role": "super_admin", "full_name": "Sneaky"},
        {"tenant_id": "tenant_000000000000aaaaaaaaaaaaaaaa"},
        {"is_active": False},
        {"username": "renamed"},
    ],
)
async def test_own_role_tenant_and_status_cannot_be_changed(
    client: httpx.AsyncClient, factory: Factory, body: dict[str, object]
) -> None:
    user = await factory.user("viewer")
    other_tenant = await factory.tenant()
    if "tenant_id" in body:
        body = {"tenant_id": other_tenant}
    response = await client.patch("/api/v1/users/me", headers=user.headers, json=body)
    error = assert_error(response, 400, "BAD_REQUEST")
    assert any(d["field"] == next(iter(body)) for d in error["error"]["details"]), error
    me = (await client.get("/api/v1/users/me", headers=user.headers)).json()
    assert me["role"] == "viewer" and me["tenant_id"] == user.tenant_id and me["is_active"] is True
    assert me["full_name"] != "Sneaky" and me["username"] == user.username
    assert await audit_events(factory, user.tenant_id, "user.profile_updated", user.id) == []


async def test_email_change_needs_the_current_password(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("user")
    new_email = f"new-{user.username}@example.com"
    missing = await client.patch("/api/v1/users/me", headers=user.headers, json={"email": new_email})
    assert assert_error(missing, 400)["error"]["details"][0]["field"] == "current_password"
    wrong = await client.patch("/api/v1/users/me", headers=user.headers,
                               json={"email": new_email, "current_password": "not my password"})
    assert_error(wrong, 400, "BAD_REQUEST")
    assert (await client.get("/api/v1/users/me", headers=user.headers)).json()["email"] == user.email

    ok = await client.patch("/api/v1/users/me", headers=user.headers,
                            json={"email": new_email.upper(), "current_password": PASSWORD})
    assert ok.status_code == 200, ok.text
    assert ok.json()["email"] == new_email
    login = await client.post("/api/v1/auth/login", json={"email": new_email, "password": PASSWORD})
    assert login.status_code == 200
    [record] = await audit_events(factory, user.tenant_id, "user.profile_updated", user.id)
    assert metadata(record)["changes"]["email"] == {"old": user.email, "new": new_email}


async def test_email_already_in_use_is_a_conflict(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("user")
    other = await factory.user("user", login=False)  # another tenant: emails are unique everywhere
    response = await client.patch("/api/v1/users/me", headers=user.headers,
                                  json={"email": other.email, "current_password": PASSWORD})
    assert_error(response, 409, "CONFLICT")
    assert (await client.get("/api/v1/users/me", headers=user.headers)).json()["email"] == user.email


async def test_short_password_is_refused_with_a_reason(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("analyst")
    response = await client.patch("/api/v1/users/me", headers=user.headers,
                                  json={"password": "short-pw", "current_password": PASSWORD})
    error = assert_error(response, 400, "BAD_REQUEST")
    assert "12 characters" in error["detail"]
    assert error["error"]["details"][0]["field"] == "password"
    still = await client.post("/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    assert still.status_code == 200


async def test_password_change_ends_other_sessions_and_keeps_this_one(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user("operator")
    other_session = await factory.login(user)
    new_password = "a much longer passphrase 42"
    missing = await client.patch("/api/v1/users/me", headers=user.headers, json={"password": new_password})
    assert_error(missing, 400, "BAD_REQUEST")
    wrong = await client.patch("/api/v1/users/me", headers=user.headers,
                               json={"password": new_password, "current_password": "wrong password!"})
    assert_error(wrong, 400, "BAD_REQUEST")
    ok = await client.patch("/api/v1/users/me", headers=user.headers,
                            json={"password": new_password, "current_password": PASSWORD})
    assert ok.status_code == 200, ok.text
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    assert_error(await client.get("/api/v1/users/me", headers=bearer(other_session)), 401, "UNAUTHORIZED")
    old = await client.post("/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    assert_error(old, 401, "UNAUTHORIZED")
    new = await client.post("/api/v1/auth/login", json={"username": user.username, "password": new_password})
    assert new.status_code == 200
    assert len(await audit_events(factory, user.tenant_id, "auth.password.changed", user.id)) == 1


async def test_malformed_profile_update_changes_nothing(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("user")
    bad_email = await client.patch("/api/v1/users/me", headers=user.headers,
                                   json={"email": "not an email", "current_password": PASSWORD})
    assert_error(bad_email, 400, "BAD_REQUEST")
    wrong_type = await client.patch("/api/v1/users/me", headers=user.headers, json={"full_name": ["x"]})
    assert_error(wrong_type, 400, "BAD_REQUEST")
    broken = await client.patch("/api/v1/users/me", headers={**user.headers, "Content-Type": "application/json"},
                                content=b"{not json")
    assert_error(broken, 400, "BAD_REQUEST")
    me = (await client.get("/api/v1/users/me", headers=user.headers)).json()
    assert me["email"] == user.email and me["full_name"] == user.username.title()
