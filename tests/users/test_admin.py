"""User administration: who may call each route, tenant isolation, and the rules of each change."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import PASSWORD, Account, Factory
from tests.support import assert_error
from tests.users.helpers import ADMINS, ALL_ROLES, audit_events, bearer, metadata

NEW_PASSWORD = "another long passphrase 7"


def new_user_body(role: str = "user") -> dict[str, str]:
    name = f"new-{secrets.token_hex(4)}"
    return {"username": name, "email": f"{name}@example.com", "full_name": "New Person",
            "password": NEW_PASSWORD, "role": role}


async def admin_routes(client: httpx.AsyncClient, caller: Account, target_id: str) -> dict[str, httpx.Response]:
    """Call every users_manage route once as `caller`."""
    h = caller.headers
    return {
        "list": await client.get("/api/v1/users", headers=h),
        "csv": await client.get("/api/v1/users?format=csv", headers=h),
        "create": await client.post("/api/v1/users", headers=h, json=new_user_body()),
        "get": await client.get(f"/api/v1/users/{target_id}", headers=h),
        "patch": await client.patch(f"/api/v1/users/{target_id}", headers=h, json={"full_name": "Changed"}),
        "unlock": await client.post(f"/api/v1/users/{target_id}/unlock", headers=h),
        "delete": await client.delete(f"/api/v1/users/{target_id}", headers=h),
    }


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_only_admins_manage_users(client: httpx.AsyncClient, factory: Factory, role: str) -> None:
    caller = await factory.user(role)
    target = await factory.user("viewer", tenant_id=caller.tenant_id, login=False)
    responses = await admin_routes(client, caller, target.id)
    if role in ADMINS:
        expected = {"list": 200, "csv": 200, "create": 201, "get": 200, "patch": 200, "unlock": 200, "delete": 200}
        assert {name: r.status_code for name, r in responses.items()} == expected
        assert responses["delete"].json()["is_active"] is False
    else:
        for name, response in responses.items():
            error = assert_error(response, 403, "FORBIDDEN")
            assert "users_manage" in error["detail"], name
        listing = await factory.user("admin", tenant_id=caller.tenant_id)
        users = (await client.get("/api/v1/users", headers=listing.headers)).json()["data"]
        assert {u["id"]: u["full_name"] for u in users}[target.id] != "Changed"
        assert len(users) == 3  # nobody was created


async def test_user_routes_need_credentials(client: httpx.AsyncClient, factory: Factory) -> None:
    target = await factory.user("viewer", login=False)
    for method, path in [
        ("GET", "/api/v1/users"), ("POST", "/api/v1/users"), ("GET", f"/api/v1/users/{target.id}"),
        ("PATCH", f"/api/v1/users/{target.id}"), ("DELETE", f"/api/v1/users/{target.id}"),
        ("POST", f"/api/v1/users/{target.id}/unlock"),
    ]:
        body: dict[str, object] | None = {} if method in ("POST", "PATCH") else None
        response = await client.request(method, path, json=body)
        assert_error(response, 401, "UNAUTHORIZED")
        assert response.headers.get("www-authenticate") == "Bearer"


@pytest.mark.parametrize("role", ADMINS)
async def test_another_tenants_users_are_not_found(client: httpx.AsyncClient, factory: Factory, role: str) -> None:
    admin = await factory.user(role)
    stranger = await factory.user("viewer")  # its own tenant
    locked_until_before = None
    for method, path, body in [
        ("GET", f"/api/v1/users/{stranger.id}", None),
        ("PATCH", f"/api/v1/users/{stranger.id}", {"full_name": "Hijacked", "role": "admin"}),
        ("DELETE", f"/api/v1/users/{stranger.id}", None),
        ("POST", f"/api/v1/users/{stranger.id}/unlock", None),
        ("GET", "/api/v1/users/user_doesnotexist", None),
    ]:
        response = await client.request(method, path, headers=admin.headers, json=body)
        assert assert_error(response, 404, "NOT_FOUND")["detail"] == "User not found"
    me = (await client.get("/api/v1/users/me", headers=stranger.headers)).json()
    assert me["full_name"] != "Hijacked" and me["role"] == "viewer" and me["is_active"] is True
    assert me["locked_until"] == locked_until_before
    listed = (await client.get("/api/v1/users?limit=100", headers=admin.headers)).json()
    assert [u["id"] for u in listed["data"]] == [admin.id]
    search = await client.get("/api/v1/users", headers=admin.headers, params={"search": stranger.username})
    assert search.json()["data"] == []
    assert await audit_events(factory, stranger.tenant_id, "user.updated", stranger.id) == []


# --- create ----------------------------------------------------------------------------------


async def test_admin_creates_a_user_who_can_log_in(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    body = new_user_body("analyst")
    body["email"] = body["email"].upper()
    response = await client.post("/api/v1/users", headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("user_") and created["tenant_id"] == admin.tenant_id
    assert created["role"] == "analyst" and created["email"] == body["email"].lower()
    assert created["is_active"] is True and created["last_login_at"] is None and "password" not in created
    login = await client.post("/api/v1/auth/login", json={"username": body["username"], "password": NEW_PASSWORD})
    assert login.status_code == 200 and login.json()["role"] == "analyst"
    assert (await client.get(f"/api/v1/users/{created['id']}", headers=admin.headers)).json()["id"] == created["id"]
    [record] = await audit_events(factory, admin.tenant_id, "user.created", created["id"])
    assert record.actor_id == admin.id and metadata(record)["role"] == "analyst"
    assert NEW_PASSWORD not in str(metadata(record)) and "argon2" not in str(metadata(record))


@pytest.mark.parametrize("password", ["short", "elevenchars", "            ", "aaaaaaaaaaaaaaaa"])
async def test_weak_passwords_are_refused_with_a_reason(
    client: httpx.AsyncClient, factory: Factory, password: str
) -> None:
    admin = await factory.user("admin")
    body = {**new_user_body(), "password": password}
    error = assert_error(await client.post("/api/v1/users", headers=admin.headers, json=body), 400, "BAD_REQUEST")
    assert error["error"]["details"][0]["field"] == "password"
    assert "characters" in error["detail"] or "repetitive" in error["detail"]
    assert (await client.get("/api/v1/users", headers=admin.headers)).json()["meta"]["total"] == 1


async def test_duplicate_username_or_email_is_a_conflict(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    elsewhere = await factory.user("viewer", login=False)
    same_name = {**new_user_body(), "username": elsewhere.username.upper()}
    assert_error(await client.post("/api/v1/users", headers=admin.headers, json=same_name), 409, "CONFLICT")
    same_email = {**new_user_body(), "email": elsewhere.email.upper()}
    error = assert_error(await client.post("/api/v1/users", headers=admin.headers, json=same_email), 409)
    assert error["error"]["details"][0]["field"] == "email"
    users = (await client.get("/api/v1/users", headers=admin.headers)).json()
    assert users["meta"]["total"] == 1


async def test_only_a_super_admin_creates_super_admins(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    denied = await client.post("/api/v1/users", headers=admin.headers, json=new_user_body("super_admin"))
    assert_error(denied, 403, "FORBIDDEN")
    peer = await client.post("/api/v1/users", headers=admin.headers, json=new_user_body("admin"))
    assert peer.status_code == 201
    root = await factory.user("super_admin")
    allowed = await client.post("/api/v1/users", headers=root.headers, json=new_user_body("super_admin"))
    assert allowed.status_code == 201 and allowed.json()["role"] == "super_admin"


@pytest.mark.parametrize(
    "change",
    [{"role": "agent"}, {"role": "root"}, {"username": "bad name!"}, {"email": "nope"}, {"tenant_id": "x"},
     {"password": None}],
)
async def test_invalid_create_bodies_are_400(
    client: httpx.AsyncClient, factory: Factory, change: dict[str, object]
) -> None:
    admin = await factory.user("admin")
    body = {**new_user_body(), **change}
    assert_error(await client.post("/api/v1/users", headers=admin.headers, json=body), 400, "BAD_REQUEST")
    assert (await client.get("/api/v1/users", headers=admin.headers)).json()["meta"]["total"] == 1


# --- update ----------------------------------------------------------------------------------


async def test_role_change_takes_effect_and_is_audited(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    target = await factory.user("viewer", tenant_id=admin.tenant_id)
    assert_error(await client.get("/api/v1/users", headers=target.headers), 403, "FORBIDDEN")
    response = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"role": "admin"})
    assert response.status_code == 200 and response.json()["role"] == "admin"
    assert (await client.get("/api/v1/users", headers=target.headers)).status_code == 200
    [record] = await audit_events(factory, admin.tenant_id, "user.role_changed", target.id)
    assert metadata(record)["old"] == "viewer" and metadata(record)["new"] == "admin"
    assert record.actor_id == admin.id and record.event_name == "User Role Changed"
    same = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"role": "admin"})
    assert same.status_code == 200
    assert len(await audit_events(factory, admin.tenant_id, "user.role_changed", target.id)) == 1


async def test_admin_edits_name_and_email_with_old_and_new_values(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    target = await factory.user("user", tenant_id=admin.tenant_id, login=False)
    new_email = f"moved-{target.username}@example.com"
    response = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers,
                                  json={"full_name": "Grace Hopper", "email": new_email})
    assert response.status_code == 200
    assert response.json()["full_name"] == "Grace Hopper" and response.json()["email"] == new_email
    [record] = await audit_events(factory, admin.tenant_id, "user.updated", target.id)
    changes = metadata(record)["changes"]
    assert changes["email"] == {"old": target.email, "new": new_email}
    assert changes["full_name"]["new"] == "Grace Hopper"
    taken = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"email": admin.email})
    assert_error(taken, 409, "CONFLICT")
    unknown = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"tenant_id": "x"})
    assert_error(unknown, 400, "BAD_REQUEST")


@pytest.mark.parametrize("role", ADMINS)
async def test_admins_cannot_demote_or_deactivate_themselves(
    client: httpx.AsyncClient, factory: Factory, role: str
) -> None:
    admin = await factory.user(role)
    demote = await client.patch(f"/api/v1/users/{admin.id}", headers=admin.headers, json={"role": "viewer"})
    assert_error(demote, 409, "CONFLICT")
    deactivate = await client.patch(f"/api/v1/users/{admin.id}", headers=admin.headers, json={"is_active": False})
    assert_error(deactivate, 409, "CONFLICT")
    delete = await client.delete(f"/api/v1/users/{admin.id}", headers=admin.headers)
    assert_error(delete, 409, "CONFLICT")
    own_password = await client.patch(f"/api/v1/users/{admin.id}", headers=admin.headers,
                                      json={"password": NEW_PASSWORD})
    assert_error(own_password, 409, "CONFLICT")
    me = (await client.get("/api/v1/users/me", headers=admin.headers)).json()
    assert me["role"] == role and me["is_active"] is True
    rename = await client.patch(f"/api/v1/users/{admin.id}", headers=admin.headers,
                                json={"full_name": "Still Me", "role": role})
    assert rename.status_code == 200 and rename.json()["full_name"] == "Still Me"


async def test_only_a_super_admin_grants_or_touches_super_admin(client: httpx.AsyncClient, factory: Factory) -> None:
    root = await factory.user("super_admin")
    admin = await factory.user("admin", tenant_id=root.tenant_id)
    other_root = await factory.user("super_admin", tenant_id=root.tenant_id)
    target = await factory.user("viewer", tenant_id=root.tenant_id, login=False)
    grant = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"role": "super_admin"})
    assert_error(grant, 403, "FORBIDDEN")
    demote = await client.patch(f"/api/v1/users/{root.id}", headers=admin.headers, json={"role": "viewer"})
    assert_error(demote, 403, "FORBIDDEN")
    assert_error(await client.delete(f"/api/v1/users/{root.id}", headers=admin.headers), 403, "FORBIDDEN")
    assert (await client.get("/api/v1/users/me", headers=root.headers)).json()["role"] == "super_admin"
    granted = await client.patch(f"/api/v1/users/{target.id}", headers=root.headers, json={"role": "super_admin"})
    assert granted.status_code == 200 and granted.json()["role"] == "super_admin"
    demoted = await client.patch(f"/api/v1/users/{other_root.id}", headers=root.headers, json={"role": "admin"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "admin"


async def test_deactivation_ends_sessions_and_reactivation_restores_login(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    target = await factory.user("operator", tenant_id=admin.tenant_id)
    second = await factory.login(target)
    off = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False
    for token in (target.token, second):
        assert_error(await client.get("/api/v1/users/me", headers=bearer(token)), 401, "UNAUTHORIZED")
    login = await client.post("/api/v1/auth/login", json={"username": target.username, "password": PASSWORD})
    assert_error(login, 401, "UNAUTHORIZED")
    [record] = await audit_events(factory, admin.tenant_id, "user.deactivated", target.id)
    assert metadata(record)["sessions_revoked"] == 2
    on = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"is_active": True})
    assert on.status_code == 200 and on.json()["is_active"] is True
    again = await client.post("/api/v1/auth/login", json={"username": target.username, "password": PASSWORD})
    assert again.status_code == 200
    assert len(await audit_events(factory, admin.tenant_id, "user.reactivated", target.id)) == 1


async def test_admin_password_reset_applies_policy_and_ends_sessions(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    target = await factory.user("user", tenant_id=admin.tenant_id)
    short = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"password": "tiny"})
    assert "12 characters" in assert_error(short, 400, "BAD_REQUEST")["detail"]
    assert (await client.get("/api/v1/users/me", headers=target.headers)).status_code == 200
    reset = await client.patch(f"/api/v1/users/{target.id}", headers=admin.headers, json={"password": NEW_PASSWORD})
    assert reset.status_code == 200
    assert_error(await client.get("/api/v1/users/me", headers=target.headers), 401, "UNAUTHORIZED")
    login = await client.post("/api/v1/auth/login", json={"username": target.username, "password": NEW_PASSWORD})
    assert login.status_code == 200
    [record] = await audit_events(factory, admin.tenant_id, "auth.password.changed", target.id)
    assert record.actor_id == admin.id


# --- delete ----------------------------------------------------------------------------------


async def test_delete_deactivates_and_keeps_history(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    target = await factory.user("analyst", tenant_id=admin.tenant_id)
    response = await client.delete(f"/api/v1/users/{target.id}", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["id"] == target.id and response.json()["is_active"] is False
    assert_error(await client.get("/api/v1/users/me", headers=target.headers), 401, "UNAUTHORIZED")
    kept = await client.get(f"/api/v1/users/{target.id}", headers=admin.headers)
    assert kept.status_code == 200 and kept.json()["username"] == target.username
    inactive = (await client.get("/api/v1/users?is_active=false", headers=admin.headers)).json()["data"]
    assert [u["id"] for u in inactive] == [target.id]
    # The login the user made is still in the audit log.
    assert await audit_events(factory, admin.tenant_id, "auth.login.succeeded", target.id)
    assert len(await audit_events(factory, admin.tenant_id, "user.deactivated", target.id)) == 1
    twice = await client.delete(f"/api/v1/users/{target.id}", headers=admin.headers)
    assert twice.status_code == 200
    assert len(await audit_events(factory, admin.tenant_id, "user.deactivated", target.id)) == 1


async def test_api_keys_act_within_their_scopes(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    managing = {"X-API-Key": await factory.api_key(admin, ["users_manage"])}
    reading = {"Authorization": "Bearer " + await factory.api_key(admin, ["devices_read"])}
    listed = await client.get("/api/v1/users", headers=managing)
    assert listed.status_code == 200 and [u["id"] for u in listed.json()["data"]] == [admin.id]
    created = await client.post("/api/v1/users", headers=managing, json=new_user_body())
    assert created.status_code == 201
    [record] = await audit_events(factory, admin.tenant_id, "user.created", created.json()["id"])
    assert record.actor_type == "api_key"
    denied = assert_error(await client.get("/api/v1/users", headers=reading), 403, "FORBIDDEN")
    assert "users_manage" in denied["detail"]
    me = await client.get("/api/v1/users/me", headers=reading)
    assert me.status_code == 200 and me.json()["auth_type"] == "api_key" and me.json()["id"] == admin.id
    # A key cannot rewrite its owner's profile, even with the owner's password.
    edit = await client.patch("/api/v1/users/me", headers=managing, json={"full_name": "Key Holder"})
    assert_error(edit, 403, "FORBIDDEN")
    # Nor can it demote the admin who owns it.
    demote = await client.patch(f"/api/v1/users/{admin.id}", headers=managing, json={"role": "viewer"})
    assert_error(demote, 409, "CONFLICT")
