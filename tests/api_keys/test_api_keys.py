"""Creating, listing and revoking API keys, at /api-keys and at /keys."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ronda.api_keys.models import ApiKey
from ronda.core.authz import SCOPES
from ronda.core.db import transaction
from tests.conftest import Account, Factory
from tests.support import assert_error

KEY_FORMAT = re.compile(r"^rk_live_[0-9a-f]{48}$")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def create(client: httpx.AsyncClient, account: Account, **body: Any) -> httpx.Response:
    payload = {"name": "ci", "permissions": ["devices_read"], **body}
    return await client.post("/api/v1/api-keys", headers=account.headers, json=payload)


async def test_key_is_shown_once_and_stored_only_as_its_digest(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    response = await create(client, admin, name="Nightly export", permissions=["devices_read", "audit_read"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {"id", "key", "key_prefix", "name", "permissions", "kind", "created_at", "expires_at"}
    assert KEY_FORMAT.match(body["key"]), body["key"]
    assert body["id"].startswith("key_")
    assert body["key"].startswith(body["key_prefix"]) and len(body["key_prefix"]) < len(body["key"]) // 2
    assert body["name"] == "Nightly export"
    assert body["permissions"] == ["devices_read", "audit_read"]
    assert body["kind"] == "standard" and body["expires_at"] is None
    assert body["created_at"].endswith("Z")

    async with transaction(factory.runtime.sessions, write=False) as session:
        row = (await session.scalars(select(ApiKey).where(ApiKey.id == body["id"]))).one()
    assert row.key_hash == hashlib.sha256(body["key"].encode()).hexdigest()
    assert body["key"] not in (row.key_prefix, row.key_hash, row.name)

    listing = await client.get("/api/v1/api-keys", headers=admin.headers)
    assert listing.status_code == 200
    assert body["key"] not in listing.text and row.key_hash not in listing.text
    [item] = listing.json()["data"]
    assert "key" not in item and "key_hash" not in item
    assert item["id"] == body["id"] and item["key_prefix"] == body["key_prefix"]
    assert item["last_used_at"] is None and item["revoked_at"] is None and item["is_active"] is True
    assert item["user_id"] == admin.id and item["kind"] == "standard"


async def test_two_keys_never_repeat(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    first, second = (await create(client, admin)).json(), (await create(client, admin)).json()
    assert first["key"] != second["key"] and first["id"] != second["id"]


async def test_expiry_in_days(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    body = (await create(client, admin, expires_in_days=30)).json()
    delta = parse(body["expires_at"]) - parse(body["created_at"])
    assert delta == timedelta(days=30)
    assert (await create(client, admin, expires_in_days=3650)).status_code == 201


@pytest.mark.parametrize(
    "payload",
    [
        {"permissions": []},
        {"expires_in_days": 0},
        {"expires_in_days": 3651},
        {"kind": "superuser"},
        {"name": ""},
        {"name": "x" * 101},
        {"owner": "someone"},
        {"permissions": "devices_read"},
    ],
)
async def test_bad_input_is_a_400_and_creates_nothing(
    client: httpx.AsyncClient, factory: Factory, payload: dict[str, Any]
) -> None:
    admin = await factory.user("admin")
    response = await create(client, admin, **payload)
    body = assert_error(response, 400, "BAD_REQUEST")
    assert body["error"]["details"]
    listing = await client.get("/api/v1/api-keys", headers=admin.headers)
    assert listing.json()["meta"]["total"] == 0


async def test_unknown_scopes_are_named(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    response = await create(client, admin, permissions=["devices_read", "root", "fly"])
    body = assert_error(response, 400, "BAD_REQUEST")
    assert "root" in body["detail"] and "fly" in body["detail"] and "devices_read" not in body["detail"]
    assert {d["reason"] for d in body["error"]["details"]} == {"unknown scope root", "unknown scope fly"}


async def test_a_key_cannot_hold_a_scope_its_creator_lacks(client: httpx.AsyncClient, factory: Factory) -> None:
    analyst = await factory.user("analyst")
    response = await create(client, analyst, permissions=["audit_read", "users_manage", "settings_manage"])
    body = assert_error(response, 403, "FORBIDDEN")
    assert "users_manage" in body["detail"] and "settings_manage" in body["detail"]
    assert "audit_read" not in body["detail"]
    # The 'agent' scope belongs to agents only: not even an admin may grant it.
    admin = await factory.user("admin")
    assert_error(await create(client, admin, permissions=["agent"]), 403, "FORBIDDEN")
    ok = await create(client, analyst, permissions=["audit_read", "audit_read", "reports_write"])
    assert ok.status_code == 201 and ok.json()["permissions"] == ["audit_read", "reports_write"]


async def test_only_admins_create_service_keys(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant()
    for role in ("analyst", "operator"):
        caller = await factory.user(role, tenant_id=tenant)
        assert_error(await create(client, caller, kind="service"), 403, "FORBIDDEN")
    for role in ("admin", "super_admin"):
        caller = await factory.user(role, tenant_id=tenant)
        response = await create(client, caller, kind="service")
        assert response.status_code == 201 and response.json()["kind"] == "service"


async def test_roles_allowed_and_denied(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant()
    for role in ("viewer", "user"):
        caller = await factory.user(role, tenant_id=tenant)
        assert_error(await client.get("/api/v1/api-keys", headers=caller.headers), 403, "FORBIDDEN")
        assert_error(await client.get("/api/v1/api-keys/permissions", headers=caller.headers), 403)
        assert_error(await create(client, caller), 403, "FORBIDDEN")
        assert_error(await client.delete("/api/v1/api-keys/key_nothing", headers=caller.headers), 403)
    for role in ("operator", "analyst", "admin", "super_admin"):
        caller = await factory.user(role, tenant_id=tenant)
        assert (await client.get("/api/v1/api-keys", headers=caller.headers)).status_code == 200
        assert (await create(client, caller)).status_code == 201
    for method, path in (("GET", "/api/v1/api-keys"), ("POST", "/api/v1/api-keys"),
                         ("GET", "/api/v1/api-keys/permissions"), ("DELETE", "/api/v1/api-keys/key_x"),
                         ("GET", "/api/v1/keys")):
        assert_error(await client.request(method, path, json={}), 401, "UNAUTHORIZED")


async def test_permissions_catalogue_marks_what_the_caller_may_grant(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    analyst = await factory.user("analyst")
    response = await client.get("/api/v1/api-keys/permissions", headers=analyst.headers)
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["data"]}
    assert set(rows) == set(SCOPES)
    assert rows["audit_read"]["grantable"] is True and rows["reports_write"]["grantable"] is True
    assert rows["users_manage"]["grantable"] is False and rows["agent"]["grantable"] is False
    assert rows["devices_read"]["description"] == SCOPES["devices_read"]
    admin = await factory.user("admin")
    admin_rows = (await client.get("/api/v1/api-keys/permissions", headers=admin.headers)).json()["data"]
    assert {r["name"] for r in admin_rows if r["grantable"]} == set(SCOPES) - {"agent"}


async def test_admins_list_every_key_of_the_tenant_others_their_own(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    tenant = await factory.tenant()
    admin = await factory.user("admin", tenant_id=tenant)
    analyst = await factory.user("analyst", tenant_id=tenant)
    operator = await factory.user("operator", tenant_id=tenant)
    admin_key = (await create(client, admin, name="admin key", kind="service")).json()
    analyst_key = (await create(client, analyst, name="analyst key")).json()
    stranger = await factory.user("admin")
    await create(client, stranger, name="stranger key")

    seen = (await client.get("/api/v1/api-keys", headers=admin.headers)).json()
    assert {k["id"] for k in seen["data"]} == {admin_key["id"], analyst_key["id"]}
    assert seen["meta"]["total"] == 2
    own = (await client.get("/api/v1/api-keys", headers=analyst.headers)).json()
    assert [k["id"] for k in own["data"]] == [analyst_key["id"]]
    # A non-admin asking for someone else's keys still sees none of them.
    other = await client.get("/api/v1/api-keys", headers=analyst.headers, params={"user_id": admin.id})
    assert other.json()["data"] == []
    assert (await client.get("/api/v1/api-keys", headers=operator.headers)).json()["data"] == []


async def test_list_filters_search_sort_and_both_paging_styles(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant()
    admin = await factory.user("admin", tenant_id=tenant)
    analyst = await factory.user("analyst", tenant_id=tenant)
    alpha = (await create(client, admin, name="Alpha exporter", kind="service")).json()
    beta = (await create(client, admin, name="Beta sync")).json()
    gamma = (await create(client, analyst, name="Gamma exporter")).json()
    assert (await client.delete(f"/api/v1/api-keys/{beta['id']}", headers=admin.headers)).status_code == 200

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/v1/api-keys", headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        return [k["id"] for k in response.json()["data"]]

    assert await ids() == [gamma["id"], beta["id"], alpha["id"]]  # newest first
    assert await ids(kind="service") == [alpha["id"]]
    assert set(await ids(kind="standard")) == {beta["id"], gamma["id"]}
    assert await ids(user_id=analyst.id) == [gamma["id"]]
    assert set(await ids(active="true")) == {alpha["id"], gamma["id"]}
    assert await ids(active="false") == [beta["id"]]
    assert set(await ids(search="EXPORTER")) == {alpha["id"], gamma["id"]}
    assert await ids(sort="name") == [alpha["id"], beta["id"], gamma["id"]]
    assert await ids(sort="-name") == [gamma["id"], beta["id"], alpha["id"]]
    assert await ids(page=2, per_page=2) == [alpha["id"]]
    assert await ids(skip=1, limit=1) == [beta["id"]]
    page = (await client.get("/api/v1/api-keys", headers=admin.headers, params={"page": 2, "per_page": 2})).json()
    assert page["meta"] == {"total": 3, "page": 2, "per_page": 2, "skip": 2, "limit": 2}
    assert_error(await client.get("/api/v1/api-keys", headers=admin.headers, params={"sort": "key_hash"}), 400)
    assert_error(await client.get("/api/v1/api-keys", headers=admin.headers, params={"kind": "root"}), 400)
    assert_error(await client.get("/api/v1/api-keys", headers=admin.headers, params={"limit": 101}), 400)
    revoked = next(k for k in (await client.get("/api/v1/api-keys", headers=admin.headers)).json()["data"]
                   if k["id"] == beta["id"])
    assert revoked["revoked_at"] is not None and revoked["is_active"] is False

    csv = await client.get("/api/v1/api-keys", headers={**admin.headers, "Accept": "text/csv"},
                           params={"kind": "standard"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("id,name,key_prefix,kind,user_id,permissions")
    assert len(lines) == 3 and alpha["id"] not in csv.text


async def test_revoke_own_and_as_admin(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant()
    admin = await factory.user("admin", tenant_id=tenant)
    analyst = await factory.user("analyst", tenant_id=tenant)
    mine = (await create(client, analyst, name="mine")).json()
    admins = (await create(client, admin, name="admins")).json()
    another = (await create(client, analyst, name="another")).json()

    # An analyst cannot see, so cannot revoke, an admin's key.
    assert_error(await client.delete(f"/api/v1/api-keys/{admins['id']}", headers=analyst.headers), 404, "NOT_FOUND")
    response = await client.delete(f"/api/v1/api-keys/{mine['id']}", headers=analyst.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == mine["id"] and body["revoked_at"].endswith("Z") and body["is_active"] is False
    assert "key" not in body
    assert_error(await client.delete(f"/api/v1/api-keys/{mine['id']}", headers=analyst.headers), 409, "CONFLICT")
    # An admin may revoke any key of the tenant.
    assert (await client.delete(f"/api/v1/api-keys/{another['id']}", headers=admin.headers)).status_code == 200
    assert_error(await client.delete("/api/v1/api-keys/key_doesnotexist", headers=admin.headers), 404)


async def test_another_tenants_key_is_a_404(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    stranger = await factory.user("admin")
    theirs = (await create(client, stranger)).json()
    assert_error(await client.delete(f"/api/v1/api-keys/{theirs['id']}", headers=admin.headers), 404, "NOT_FOUND")
    assert_error(await client.delete(f"/api/v1/keys/{theirs['id']}", headers=admin.headers), 404, "NOT_FOUND")
    still = (await client.get("/api/v1/api-keys", headers=stranger.headers)).json()["data"]
    assert still[0]["revoked_at"] is None
    assert (await client.get("/api/v1/api-keys", headers=admin.headers,
                             params={"user_id": stranger.id})).json()["data"] == []


async def test_keys_alias_serves_the_same_routes_outside_the_schema(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    created = await client.post("/api/v1/keys", headers=admin.headers,
                                json={"name": "alias", "permissions": ["devices_read"]})
    assert created.status_code == 201 and KEY_FORMAT.match(created.json()["key"])
    key_id = created.json()["id"]
    for path in ("/api/v1/keys", "/api/keys", "/v1/keys"):
        listing = await client.get(path, headers=admin.headers)
        assert listing.status_code == 200 and listing.json()["data"][0]["id"] == key_id
    assert (await client.get("/api/v1/keys/permissions", headers=admin.headers)).status_code == 200
    assert (await client.delete(f"/api/v1/keys/{key_id}", headers=admin.headers)).status_code == 200
    assert_error(await client.delete(f"/api/v1/api-keys/{key_id}", headers=admin.headers), 409)

    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/api-keys" in schema["paths"] and "/api/v1/api-keys/{key_id}" in schema["paths"]
    assert not any(p.startswith("/api/v1/keys") for p in schema["paths"])
    create_op = schema["paths"]["/api/v1/api-keys"]["post"]
    assert create_op["operationId"] == "api_keys_create" and create_op["summary"]
