"""Tenant administration: super admins only, across every tenant."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import PASSWORD, Factory
from tests.support import assert_error
from tests.users.helpers import ALL_ROLES, audit_events, metadata


def unique_name(prefix: str = "Acme") -> str:
    return f"{prefix} {secrets.token_hex(4)}"


@pytest.mark.parametrize("role", [r for r in ALL_ROLES if r != "super_admin"])
async def test_only_super_admins_manage_tenants(client: httpx.AsyncClient, factory: Factory, role: str) -> None:
    caller = await factory.user(role)
    other = await factory.tenant()
    name = unique_name()
    for method, path, body in [
        ("GET", "/api/v1/tenants", None),
        ("POST", "/api/v1/tenants", {"name": name, "plan": "startup"}),
        ("GET", f"/api/v1/tenants/{other}", None),
        ("GET", f"/api/v1/tenants/{caller.tenant_id}", None),
        ("PATCH", f"/api/v1/tenants/{other}", {"plan": "enterprise"}),
        ("DELETE", f"/api/v1/tenants/{other}", None),
    ]:
        response = await client.request(method, path, headers=caller.headers, json=body)
        assert_error(response, 403, "FORBIDDEN")
    root = await factory.user("super_admin")
    found = (await client.get("/api/v1/tenants", headers=root.headers, params={"search": name})).json()
    assert found["data"] == []
    untouched = (await client.get(f"/api/v1/tenants/{other}", headers=root.headers)).json()
    assert untouched["plan"] == "startup" and untouched["is_active"] is True


async def test_super_admin_creates_a_tenant(client: httpx.AsyncClient, factory: Factory) -> None:
    root = await factory.user("super_admin")
    name = unique_name("Globex Corp.")
    response = await client.post("/api/v1/tenants", headers=root.headers,
                                 json={"name": name, "plan": "scaleup", "daily_quota": 60_000})
    assert response.status_code == 201, response.text
    tenant = response.json()
    assert tenant["id"].startswith("tenant_") and tenant["name"] == name
    assert tenant["slug"] == name.lower().replace(" ", "-").replace(".", "")
    assert tenant["plan"] == "scaleup" and tenant["daily_quota"] == 60_000 and tenant["is_active"] is True
    assert (await client.get(f"/api/v1/tenants/{tenant['id']}", headers=root.headers)).json() == tenant
    [record] = await audit_events(factory, tenant["id"], "tenant.created", tenant["id"])
    assert record.actor_id == root.id and metadata(record)["plan"] == "scaleup"

    # A user created in the new tenant can log in and sees it as current.
    user = await factory.user("viewer", tenant_id=tenant["id"])
    assert (await client.get("/api/v1/tenants/current", headers=user.headers)).json()["id"] == tenant["id"]


async def test_create_defaults_conflicts_and_slugs(client: httpx.AsyncClient, factory: Factory) -> None:
    root = await factory.user("super_admin")
    name = unique_name("Initech")
    first = await client.post("/api/v1/tenants", headers=root.headers, json={"name": name})
    assert first.status_code == 201 and first.json()["plan"] == "startup" and first.json()["daily_quota"] is None
    duplicate = await client.post("/api/v1/tenants", headers=root.headers, json={"name": name.upper()})
    assert_error(duplicate, 409, "CONFLICT")
    lookalike = await client.post("/api/v1/tenants", headers=root.headers, json={"name": name + "!"})
    assert lookalike.status_code == 201
    assert lookalike.json()["slug"] == first.json()["slug"] + "-2"
    for body in ({"name": unique_name(), "plan": "platinum"}, {"name": ""}, {"plan": "startup"},
                 {"name": unique_name(), "daily_quota": 0}, {"name": unique_name(), "slug": "mine"}):
        assert_error(await client.post("/api/v1/tenants", headers=root.headers, json=body), 400, "BAD_REQUEST")


async def test_list_tenants_with_search_and_pagination(client: httpx.AsyncClient, factory: Factory) -> None:
    root = await factory.user("super_admin")
    marker = secrets.token_hex(3)
    for plan in ("startup", "scaleup", "enterprise"):
        response = await client.post("/api/v1/tenants", headers=root.headers,
                                     json={"name": f"Search {marker} {plan}", "plan": plan})
        assert response.status_code == 201
    found = (await client.get("/api/v1/tenants", headers=root.headers,
                              params={"search": marker.upper(), "sort": "-name"})).json()
    assert [t["name"] for t in found["data"]] == [f"Search {marker} {p}" for p in ("startup", "scaleup", "enterprise")]
    assert found["meta"]["total"] == 3
    paged = (await client.get("/api/v1/tenants", headers=root.headers,
                              params={"search": marker, "page": 2, "per_page": 2, "sort": "name"})).json()
    assert [t["name"] for t in paged["data"]] == [f"Search {marker} startup"]
    assert paged["meta"] == {"total": 3, "page": 2, "per_page": 2, "skip": 2, "limit": 2}
    by_plan = (await client.get("/api/v1/tenants", headers=root.headers,
                                params={"search": marker, "plan": "enterprise"})).json()
    assert [t["plan"] for t in by_plan["data"]] == ["enterprise"]
    seed = await client.get("/v1/tenants", headers=root.headers, params={"skip": 0, "limit": 1, "search": marker})
    assert len(seed.json()["data"]) == 1 and seed.json()["meta"]["total"] == 3
    for query in ("per_page=0", "limit=101", "sort=secret"):
        assert_error(await client.get(f"/api/v1/tenants?{query}", headers=root.headers), 400, "BAD_REQUEST")


async def test_super_admin_changes_another_tenant(client: httpx.AsyncClient, factory: Factory) -> None:
    root = await factory.user("super_admin")
    admin = await factory.user("admin")
    response = await client.patch(f"/api/v1/tenants/{admin.tenant_id}", headers=root.headers,
                                  json={"plan": "enterprise", "daily_quota": 500_000, "mfa_required": True})
    assert response.status_code == 200, response.text
    assert response.json()["plan"] == "enterprise" and response.json()["mfa_required"] is True
    seen_by_admin = (await client.get("/api/v1/tenants/current", headers=admin.headers)).json()
    assert seen_by_admin["plan"] == "enterprise" and seen_by_admin["daily_quota"] == 500_000
    # The record lands in the changed tenant's own chain, so its admins can see it.
    [record] = await audit_events(factory, admin.tenant_id, "tenant.updated", admin.tenant_id)
    assert record.actor_id == root.id
    assert metadata(record)["changes"]["plan"] == {"old": "startup", "new": "enterprise"}
    missing = await client.patch("/api/v1/tenants/tenant_doesnotexist", headers=root.headers, json={"plan": "startup"})
    assert_error(missing, 404, "NOT_FOUND")
    assert_error(await client.get("/api/v1/tenants/tenant_doesnotexist", headers=root.headers), 404, "NOT_FOUND")
    assert_error(await client.delete("/api/v1/tenants/tenant_doesnotexist", headers=root.headers), 404, "NOT_FOUND")


async def test_deactivating_a_tenant_stops_its_logins(client: httpx.AsyncClient, factory: Factory) -> None:
    root = await factory.user("super_admin")
    member = await factory.user("admin")
    response = await client.delete(f"/api/v1/tenants/{member.tenant_id}", headers=root.headers)
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert_error(await client.get("/api/v1/users/me", headers=member.headers), 401, "UNAUTHORIZED")
    login = await client.post("/api/v1/auth/login", json={"username": member.username, "password": PASSWORD})
    assert_error(login, 401, "UNAUTHORIZED")
    assert len(await audit_events(factory, member.tenant_id, "tenant.deleted", member.tenant_id)) == 1
    inactive = (await client.get("/api/v1/tenants", headers=root.headers,
                                 params={"is_active": "false", "limit": 100})).json()
    assert member.tenant_id in {t["id"] for t in inactive["data"]}

    back = await client.patch(f"/api/v1/tenants/{member.tenant_id}", headers=root.headers, json={"is_active": True})
    assert back.status_code == 200 and back.json()["is_active"] is True
    assert (await client.post("/api/v1/auth/login",
                              json={"username": member.username, "password": PASSWORD})).status_code == 200


async def test_super_admin_cannot_deactivate_its_own_tenant(client: httpx.AsyncClient, factory: Factory) -> None:
    root = await factory.user("super_admin")
    assert_error(await client.delete(f"/api/v1/tenants/{root.tenant_id}", headers=root.headers), 409, "CONFLICT")
    patched = await client.patch(f"/api/v1/tenants/{root.tenant_id}", headers=root.headers, json={"is_active": False})
    assert_error(patched, 409, "CONFLICT")
    assert (await client.get("/api/v1/tenants/current", headers=root.headers)).json()["is_active"] is True
    assert await audit_events(factory, root.tenant_id, "tenant.deleted") == []
