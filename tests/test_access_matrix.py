"""Every route, every role: allowed and denied as the contract says; other tenants' ids are 404.

The tables below are the contract (product.md §5). A route in /openapi.json that is missing
from them fails the test, so a new route cannot ship without declaring who may call it.
"""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from ronda.alerts.models import Alert
from ronda.audit.models import AuditLog
from ronda.core.authz import HUMAN_ROLES, role_permissions
from ronda.core.db import transaction
from tests.conftest import Factory
from tests.support import assert_error

OPEN = "open"
ANY = "authenticated"
ADMIN = "admin"  # an admin or super_admin role, whatever the permissions

# (method, canonical path) -> who may call it
CONTRACT: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/health"): OPEN,
    ("POST", "/api/v1/auth/login"): OPEN,
    ("POST", "/api/v1/auth/refresh"): OPEN,
    ("POST", "/api/v1/auth/logout"): ANY,
    ("GET", "/api/v1/auth/me"): ANY,
    ("POST", "/api/v1/auth/change-password"): ANY,
    ("POST", "/api/v1/auth/2fa/setup"): ANY,
    ("POST", "/api/v1/auth/2fa/confirm"): ANY,
    ("DELETE", "/api/v1/auth/2fa"): ANY,
    ("GET", "/api/v1/users/me"): ANY,
    ("PATCH", "/api/v1/users/me"): ANY,
    ("GET", "/api/v1/users"): "users_manage",
    ("POST", "/api/v1/users"): "users_manage",
    ("GET", "/api/v1/users/{id}"): "users_manage",
    ("PATCH", "/api/v1/users/{id}"): "users_manage",
    ("DELETE", "/api/v1/users/{id}"): "users_manage",
    ("POST", "/api/v1/users/{id}/unlock"): "users_manage",
    ("GET", "/api/v1/tenants/current"): ANY,
    ("PATCH", "/api/v1/tenants/current"): "settings_manage",
    ("GET", "/api/v1/tenants"): "super_admin",
    ("POST", "/api/v1/tenants"): "super_admin",
    ("GET", "/api/v1/tenants/{id}"): "super_admin",
    ("PATCH", "/api/v1/tenants/{id}"): "super_admin",
    ("DELETE", "/api/v1/tenants/{id}"): "super_admin",
    ("GET", "/api/v1/api-keys"): "api_keys_manage",
    ("POST", "/api/v1/api-keys"): "api_keys_manage",
    ("GET", "/api/v1/api-keys/permissions"): "api_keys_manage",
    ("DELETE", "/api/v1/api-keys/{id}"): "api_keys_manage",
    ("GET", "/api/v1/rbac/roles"): ANY,
    ("GET", "/api/v1/rbac/permissions"): ANY,
    ("GET", "/api/v1/audit-logs"): "audit_read",
    ("GET", "/api/v1/audit-logs/verify"): "audit_read",
    ("GET", "/api/v1/audit-logs/{id}"): "audit_read",
    ("GET", "/api/v1/devices"): "devices_read",
    ("POST", "/api/v1/devices"): "devices_write",
    ("GET", "/api/v1/devices/my-devices"): "devices_read",
    ("GET", "/api/v1/devices/tenant-devices"): ADMIN,
    ("GET", "/api/v1/devices/{id}"): "devices_read",
    ("PUT", "/api/v1/devices/{id}"): "devices_write",
    ("PATCH", "/api/v1/devices/{id}"): "devices_write",
    ("DELETE", "/api/v1/devices/{id}"): "devices_write",
    ("GET", "/api/v1/devices/{id}/ports"): "devices_read",
    ("GET", "/api/v1/devices/{id}/data/{id}"): "devices_read",
    ("POST", "/api/v1/devices/report"): "devices_write",  # or an agent credential (tests/agents)
    ("POST", "/api/v1/agents/tokens"): "settings_manage",
    ("GET", "/api/v1/agents/tokens"): "settings_manage",
    ("DELETE", "/api/v1/agents/tokens/{id}"): "settings_manage",
    ("POST", "/api/v1/agents/enroll"): OPEN,
    ("POST", "/api/v1/agents/heartbeat"): "agent",
    ("GET", "/api/v1/agents"): "devices_read",
    ("DELETE", "/api/v1/agents/{id}"): "settings_manage",
    ("GET", "/api/v1/integrations/webhooks"): "webhooks_manage",
    ("POST", "/api/v1/integrations/webhooks"): "webhooks_manage",
    ("GET", "/api/v1/integrations/webhooks/{id}"): "webhooks_manage",
    ("PATCH", "/api/v1/integrations/webhooks/{id}"): "webhooks_manage",
    ("DELETE", "/api/v1/integrations/webhooks/{id}"): "webhooks_manage",
    ("POST", "/api/v1/integrations/webhooks/{id}/test"): "webhooks_manage",
    ("GET", "/api/v1/integrations/webhooks/{id}/deliveries"): "webhooks_manage",
    ("GET", "/api/v1/services"): "services_read",
    ("POST", "/api/v1/services"): ADMIN,
    ("GET", "/api/v1/services/my-dashboard"): "services_read",
    ("GET", "/api/v1/services/{id}"): "services_read",  # the user role: only services it owns (tests/services)
    ("PATCH", "/api/v1/services/{id}"): "services_write",  # admin, or the user owning it
    ("DELETE", "/api/v1/services/{id}"): ADMIN,
    ("GET", "/api/v1/services/{id}/reviews"): "services_read",
    ("POST", "/api/v1/services/{id}/reviews"): "services_write",
    ("GET", "/api/v1/dashboard"): "services_read",  # and devices_read; every human role holds both
    ("POST", "/api/v1/scans/start"): "scans_write",
    ("GET", "/api/v1/scans"): "scans_read",
    ("GET", "/api/v1/scans/{id}"): "scans_read",
    ("GET", "/api/v1/scans/{id}/result"): "scans_read",
    ("POST", "/api/v1/scans/{id}/stop"): "scans_write",
    ("GET", "/api/v1/sites"): "devices_read",
    ("POST", "/api/v1/sites"): "settings_manage",
    ("GET", "/api/v1/sites/{id}"): "devices_read",
    ("PATCH", "/api/v1/sites/{id}"): "settings_manage",
    ("DELETE", "/api/v1/sites/{id}"): "settings_manage",
    ("POST", "/api/v1/sites/{id}/probes"): "settings_manage",
    ("GET", "/api/v1/probes"): "devices_read",
    ("DELETE", "/api/v1/probes/{id}"): "settings_manage",
    # The probe API takes a probe key only (tests/probes); a user's credentials get 403.
    ("POST", "/api/v1/probes/lease"): "probe",
    ("POST", "/api/v1/probes/scans/{id}/progress"): "probe",
    ("POST", "/api/v1/probes/scans/{id}/result"): "probe",
    ("POST", "/api/v1/probes/scans/{id}/fail"): "probe",
    ("POST", "/api/v1/reports/compliance"): "reports_write",
    ("POST", "/api/v1/reports/network"): "reports_write",
    ("GET", "/api/v1/reports"): "reports_read",
    ("GET", "/api/v1/reports/{id}"): "reports_read",
    ("GET", "/api/v1/reports/{id}/download"): "reports_read",
    ("GET", "/api/v1/alerts"): "alerts_read",
    ("GET", "/api/v1/alerts/{id}"): "alerts_read",
    ("POST", "/api/v1/alerts/{id}/acknowledge"): "alerts_write",
    ("POST", "/api/v1/alerts/{id}/resolve"): "alerts_write",
    ("GET", "/api/v1/cve/affected"): "cve_read",
    ("GET", "/api/v1/cve/search"): "cve_read",
    ("GET", "/api/v1/cve/stats"): "cve_read",
    ("GET", "/api/v1/cve/db-info"): "cve_read",
    ("POST", "/api/v1/cve/update"): "settings_manage",
    ("GET", "/api/v1/cve/{id}"): "cve_read",
}
# Calling these would end the caller's own session or change its credentials; 401 is still checked.
SELF_AFFECTING = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/change-password")}


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{id}", path)


def _allowed(role: str, need: str) -> bool:
    if need in (OPEN, ANY):
        return True
    if need == "super_admin":
        return role == "super_admin"
    if need == ADMIN:
        return role in ("admin", "super_admin")
    return need in role_permissions(role)


async def _operations(client: httpx.AsyncClient) -> list[tuple[str, str, str]]:
    spec = (await client.get("/openapi.json")).json()
    out = []
    for path, methods in spec["paths"].items():
        for method in methods:
            out.append((method.upper(), path, _normalise(path)))
    return out


async def test_every_route_is_in_the_contract_table(client: httpx.AsyncClient) -> None:
    documented = {(m, p) for m, _, p in await _operations(client)}
    assert documented - set(CONTRACT) == set(), "routes without a declared permission"
    assert set(CONTRACT) - documented == set(), "contract routes that are not served"


async def test_unauthenticated_calls_get_401(client: httpx.AsyncClient) -> None:
    for method, raw, path in await _operations(client):
        if CONTRACT[(method, path)] == OPEN:
            continue
        url = raw.replace("{", "").replace("}", "")
        response = await client.request(method, url, json={} if method != "GET" else None)
        assert_error(response, 401, "UNAUTHORIZED")


async def test_each_role_allowed_and_denied_as_the_contract_says(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    operations = await _operations(client)
    for role in HUMAN_ROLES:
        user = await factory.user(role)
        for method, raw, path in operations:
            need = CONTRACT[(method, path)]
            if need == OPEN or (method, path) in SELF_AFFECTING:
                continue
            url = raw.replace("{", "x_missing_").replace("}", "")
            response = await client.request(method, url, headers=user.headers,
                                            json={} if method != "GET" else None)
            if _allowed(role, need):
                assert response.status_code != 403, f"{role} refused {method} {path}: {response.text}"
                assert response.status_code < 500, f"{role} {method} {path}: {response.text}"
            else:
                assert_error(response, 403, "FORBIDDEN")


async def test_another_tenants_ids_are_not_found(client: httpx.AsyncClient, factory: Factory) -> None:
    mine = await factory.user("admin")
    theirs = await factory.user("admin")
    their_viewer = await factory.user("viewer", tenant_id=theirs.tenant_id, login=False)
    their_key = (await client.post("/api/v1/api-keys", headers=theirs.headers,
                                   json={"name": "theirs", "permissions": ["devices_read"]})).json()["id"]
    async with transaction(factory.runtime.sessions, write=False) as session:
        their_event = (await session.scalars(
            select(AuditLog.id).where(AuditLog.tenant_id == theirs.tenant_id).limit(1)
        )).one()
    their_device = (await client.post("/api/v1/devices", headers=theirs.headers,
                                      json={"device_name": "their laptop", "serial_number": "THEIRS-1"})).json()["id"]
    their_service = (await client.post("/api/v1/services", headers=theirs.headers,
                                       json={"name": "Their GitHub", "category": "development"})).json()["id"]
    their_hook = (await client.post("/api/v1/integrations/webhooks", headers=theirs.headers,
                                    json={"url": "http://127.0.0.1:9/", "events": ["backup.completed"]})).json()["id"]
    their_scan = (await client.post("/api/v1/scans/start", headers=theirs.headers, json={
        "target": "127.0.0.1", "profile": "custom", "ports": [1], "timeout_ms": 100})).json()["id"]
    their_site = (await client.post("/api/v1/sites", headers=theirs.headers, json={"name": "Their site"})).json()["id"]
    their_probe = (await client.post(f"/api/v1/sites/{their_site}/probes", headers=theirs.headers,
                                     json={"name": "their probe"})).json()["id"]
    their_report = (await client.post("/api/v1/reports/network", headers=theirs.headers,
                                      json={"format": "json"})).json()["id"]
    their_token = (await client.post("/api/v1/agents/tokens", headers=theirs.headers, json={"max_uses": 2})).json()
    async with transaction(factory.runtime.sessions) as session:
        their_alert = Alert(tenant_id=theirs.tenant_id, rule="new_device", subject="dev_theirs", title="theirs",
                            severity="low", source="scan")
        session.add(their_alert)
    their_agent = (await client.post("/api/v1/agents/enroll", json={
        "token": their_token["token"], "hostname": "their-host", "os_type": "linux"})).json()["agent_id"]
    ids = {"/api/v1/users/": their_viewer.id, "/api/v1/api-keys/": their_key, "/api/v1/audit-logs/": their_event,
           "/api/v1/devices/": their_device, "/api/v1/services/": their_service,
           "/api/v1/integrations/webhooks/": their_hook,
           "/api/v1/scans/": their_scan, "/api/v1/alerts/": their_alert.id, "/api/v1/reports/": their_report,
           "/api/v1/agents/tokens/": their_token["id"], "/api/v1/agents/": their_agent,  # tokens/ first: longest
           "/api/v1/sites/": their_site, "/api/v1/probes/": their_probe}
    checked = 0
    for method, raw, path in await _operations(client):
        if "{id}" not in path or path.startswith(("/api/v1/tenants/", "/api/v1/cve/", "/api/v1/probes/scans/")):
            # tenants/{id} is the super admin's cross-tenant view by design; a CVE is global data (the
            # tenant's matches it lists are scoped: tests/cve/test_api.py); the probe API takes probe
            # keys only (their tenant and site scoping: tests/probes)
            continue
        prefix = next(p for p in ids if path.startswith(p))
        url = re.sub(r"\{[^}]+\}", ids[prefix], raw)
        response = await client.request(method, url, headers=mine.headers, json={} if method != "GET" else None)
        assert_error(response, 404, "NOT_FOUND")
        checked += 1
    assert checked >= 6
    # Their objects are untouched and still theirs.
    still = await client.get(f"/api/v1/users/{their_viewer.id}", headers=theirs.headers)
    assert still.status_code == 200 and still.json()["is_active"] is True
    device = await client.get(f"/api/v1/devices/{their_device}", headers=theirs.headers)
    assert device.status_code == 200 and device.json()["device_name"] == "their laptop"
    agents = (await client.get("/api/v1/agents", headers=theirs.headers)).json()["data"]
    assert [(a["id"], a["revoked"]) for a in agents] == [(their_agent, False)]
    tokens = (await client.get("/api/v1/agents/tokens", headers=theirs.headers)).json()["data"]
    assert [(t["id"], t["revoked_at"]) for t in tokens] == [(their_token["id"], None)]
