"""GET and PATCH /tenants/current: every caller reads its tenant; settings_manage changes it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ronda.tenants.models import DEFAULT_COMPLIANCE_POLICY
from tests.conftest import Factory
from tests.support import assert_error
from tests.users.helpers import ADMINS, ALL_ROLES, audit_events, metadata

FIELDS = {"id", "name", "slug", "plan", "daily_quota", "lockout_threshold", "lockout_window_minutes",
          "lockout_duration_minutes", "mfa_required", "compliance_policy", "is_active", "created_at", "updated_at"}


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_every_role_reads_its_tenant(client: httpx.AsyncClient, factory: Factory, role: str) -> None:
    user = await factory.user(role)
    response = await client.get("/api/v1/tenants/current", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == FIELDS
    assert body["id"] == user.tenant_id and body["plan"] == "startup" and body["daily_quota"] is None
    assert (body["lockout_threshold"], body["lockout_window_minutes"], body["lockout_duration_minutes"]) == (5, 15, 15)
    assert body["compliance_policy"] == DEFAULT_COMPLIANCE_POLICY
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")


async def test_tenant_routes_need_credentials(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant_id = await factory.tenant()
    for method, path in [("GET", "/api/v1/tenants/current"), ("PATCH", "/api/v1/tenants/current"),
                         ("GET", "/api/v1/tenants"), ("POST", "/api/v1/tenants"),
                         ("GET", f"/api/v1/tenants/{tenant_id}"), ("PATCH", f"/api/v1/tenants/{tenant_id}"),
                         ("DELETE", f"/api/v1/tenants/{tenant_id}")]:
        body: dict[str, object] | None = {} if method in ("POST", "PATCH") else None
        assert_error(await client.request(method, path, json=body), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_only_settings_managers_change_settings(client: httpx.AsyncClient, factory: Factory, role: str) -> None:
    user = await factory.user(role)
    response = await client.patch("/api/v1/tenants/current", headers=user.headers, json={"mfa_required": True})
    if role in ADMINS:
        assert response.status_code == 200 and response.json()["mfa_required"] is True
    else:
        assert "settings_manage" in assert_error(response, 403, "FORBIDDEN")["detail"]
        assert (await client.get("/api/v1/tenants/current", headers=user.headers)).json()["mfa_required"] is False


async def test_changes_are_applied_and_audited_in_one_record(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    policy = {"required_checks": ["firewall_enabled", "disk_encryption", "firewall_enabled"],
              "min_os_versions": {"macos": "14.2", "windows": "10.0.19045"}}
    body = {"name": f"Renamed {admin.tenant_id[-6:]}", "lockout_threshold": 8, "lockout_window_minutes": 30,
            "lockout_duration_minutes": 1440, "compliance_policy": policy, "plan": "startup"}
    response = await client.patch("/api/v1/tenants/current", headers=admin.headers, json=body)
    assert response.status_code == 200, response.text
    tenant = response.json()
    assert tenant["name"] == body["name"] and tenant["lockout_threshold"] == 8
    assert tenant["lockout_window_minutes"] == 30 and tenant["lockout_duration_minutes"] == 1440
    assert tenant["compliance_policy"] == {"required_checks": ["disk_encryption", "firewall_enabled"],
                                           "stale_after_days": 7, "min_os_versions": policy["min_os_versions"],
                                           "services": DEFAULT_COMPLIANCE_POLICY["services"]}
    assert (await client.get("/api/v1/tenants/current", headers=admin.headers)).json() == tenant

    [record] = await audit_events(factory, admin.tenant_id, "tenant.updated", admin.tenant_id)
    changes = metadata(record)["changes"]
    assert set(changes) == {"name", "lockout_threshold", "lockout_window_minutes", "lockout_duration_minutes",
                            "compliance_policy"}  # plan was unchanged, so it is not listed
    assert changes["lockout_threshold"] == {"old": 5, "new": 8}
    assert changes["compliance_policy"]["old"]["required_checks"] == DEFAULT_COMPLIANCE_POLICY["required_checks"]
    assert changes["compliance_policy"]["new"]["required_checks"] == ["disk_encryption", "firewall_enabled"]
    assert record.actor_id == admin.id and record.category == "settings"

    partial = await client.patch("/api/v1/tenants/current", headers=admin.headers,
                                 json={"compliance_policy": {"stale_after_days": 30}})
    assert partial.json()["compliance_policy"]["required_checks"] == ["disk_encryption", "firewall_enabled"]
    assert partial.json()["compliance_policy"]["stale_after_days"] == 30
    unchanged = await client.patch("/api/v1/tenants/current", headers=admin.headers, json={"lockout_threshold": 8})
    assert unchanged.status_code == 200
    assert len(await audit_events(factory, admin.tenant_id, "tenant.updated", admin.tenant_id)) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"lockout_threshold": 0}, {"lockout_threshold": 101}, {"lockout_window_minutes": 0},
        {"lockout_window_minutes": 1441}, {"lockout_duration_minutes": -5}, {"lockout_threshold": "many"},
        {"compliance_policy": {"required_checks": ["vibes"]}},
        {"compliance_policy": {"stale_after_days": 0}}, {"compliance_policy": {"stale_after_days": 366}},
        {"compliance_policy": {"min_os_versions": {"macos": "latest"}}},
        {"compliance_policy": {"min_os_versions": {"Mac OS": "14"}}},
        {"compliance_policy": {"extra": 1}}, {"name": ""}, {"slug": "mine"}, {"id": "tenant_x"},
        {"is_active": False}, {"plan": "platinum"},
    ],
)
async def test_bad_settings_are_400_and_change_nothing(
    client: httpx.AsyncClient, factory: Factory, body: dict[str, Any]
) -> None:
    admin = await factory.user("admin")
    before = (await client.get("/api/v1/tenants/current", headers=admin.headers)).json()
    response = await client.patch("/api/v1/tenants/current", headers=admin.headers, json=body)
    assert assert_error(response, 400, "BAD_REQUEST")["error"]["details"]
    assert (await client.get("/api/v1/tenants/current", headers=admin.headers)).json() == before


async def test_bounds_are_inclusive(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    bodies: list[dict[str, object]] = [
        {"lockout_threshold": 1}, {"lockout_threshold": 100}, {"lockout_window_minutes": 1440},
        {"lockout_duration_minutes": 1}, {"compliance_policy": {"stale_after_days": 365}},
        {"compliance_policy": {"required_checks": []}},
    ]
    for body in bodies:
        response = await client.patch("/api/v1/tenants/current", headers=admin.headers, json=body)
        assert response.status_code == 200, (body, response.text)


async def test_plan_and_quota_belong_to_super_admins(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    for body in ({"plan": "enterprise"}, {"daily_quota": 999_999}, {"plan": "scaleup", "mfa_required": True}):
        response = await client.patch("/api/v1/tenants/current", headers=admin.headers, json=body)
        assert_error(response, 403, "FORBIDDEN")
    current = (await client.get("/api/v1/tenants/current", headers=admin.headers)).json()
    assert current["plan"] == "startup" and current["daily_quota"] is None and current["mfa_required"] is False
    same = await client.patch("/api/v1/tenants/current", headers=admin.headers, json={"plan": "startup"})
    assert same.status_code == 200

    root = await factory.user("super_admin")
    upgraded = await client.patch("/api/v1/tenants/current", headers=root.headers,
                                  json={"plan": "scaleup", "daily_quota": 75_000})
    assert upgraded.status_code == 200
    assert upgraded.json()["plan"] == "scaleup" and upgraded.json()["daily_quota"] == 75_000
    reset = await client.patch("/api/v1/tenants/current", headers=root.headers, json={"daily_quota": None})
    assert reset.json()["daily_quota"] is None
    records = await audit_events(factory, root.tenant_id, "tenant.updated", root.tenant_id)
    assert metadata(records[0])["changes"]["plan"] == {"old": "startup", "new": "scaleup"}
    assert metadata(records[1])["changes"]["daily_quota"] == {"old": 75_000, "new": None}


async def test_tenant_name_must_be_unique(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    other_id = await factory.tenant()
    root = await factory.user("super_admin")
    other_name = (await client.get(f"/api/v1/tenants/{other_id}", headers=root.headers)).json()["name"]
    response = await client.patch("/api/v1/tenants/current", headers=admin.headers, json={"name": other_name.upper()})
    assert_error(response, 409, "CONFLICT")
