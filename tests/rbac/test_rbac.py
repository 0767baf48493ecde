"""GET /rbac/roles and /rbac/permissions: any signed-in caller reads what the server enforces."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Factory
from tests.support import assert_error
from tests.users.helpers import ALL_ROLES

SCOPES = [
    "devices_read", "devices_write", "scans_read", "scans_write", "alerts_read", "alerts_write", "cve_read",
    "reports_read", "reports_write", "services_read", "services_write", "users_manage", "api_keys_manage",
    "audit_read", "webhooks_manage", "settings_manage", "agent",
]


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_every_role_reads_roles_and_permissions(client: httpx.AsyncClient, factory: Factory, role: str) -> None:
    user = await factory.user(role)
    roles = await client.get("/api/v1/rbac/roles", headers=user.headers)
    assert roles.status_code == 200
    by_name = {r["name"]: r for r in roles.json()["data"]}
    assert list(by_name) == list(ALL_ROLES)
    assert all(r["description"] and r["permissions"] == sorted(r["permissions"]) for r in by_name.values())
    me = (await client.get("/api/v1/users/me", headers=user.headers)).json()
    assert by_name[role]["permissions"] == me["permissions"]

    permissions = await client.get("/api/v1/rbac/permissions", headers=user.headers)
    assert permissions.status_code == 200
    assert [p["name"] for p in permissions.json()["data"]] == SCOPES
    assert all(set(p) == {"name", "description"} and p["description"] for p in permissions.json()["data"])


async def test_roles_match_the_contract(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer")
    roles = {r["name"]: set(r["permissions"])
             for r in (await client.get("/v1/rbac/roles", headers=user.headers)).json()["data"]}
    assert roles["admin"] == set(SCOPES) - {"agent"} == roles["super_admin"]
    assert roles["agent"] == {"agent"}
    assert "users_manage" not in roles["analyst"] | roles["operator"] | roles["user"] | roles["viewer"]
    assert {"audit_read", "reports_write"} <= roles["analyst"]
    assert {"scans_write", "alerts_write"} <= roles["operator"]
    assert not any(scope.endswith("_write") or scope.endswith("_manage") for scope in roles["viewer"])
    assert {"devices_write", "services_write", "reports_read"} <= roles["user"]


async def test_rbac_needs_credentials(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/rbac/roles", "/api/v1/rbac/permissions", "/api/rbac/roles"):
        assert_error(await client.get(path), 401, "UNAUTHORIZED")
    assert_error(await client.get("/api/v1/rbac/roles", headers={"Authorization": "Bearer nope"}), 401)
