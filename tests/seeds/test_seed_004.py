"""Seed 004 (Recoger "API Reference"), line by line, at the seed's base URL `/v1`.

Already proven elsewhere, at the same /v1 paths, and not repeated here:
- POST /devices/report, GET /devices/{id}, GET /devices/{id}/data/{type}, my-devices, tenant-devices:
  tests/devices/test_report_seed.py
- every Services and Security Reviews endpoint: tests/services/test_seed_flow.py
- 423 Locked (lockout): tests/auth/test_lockout.py; rate-limit tiers and 429: tests/ratelimit/test_limits.py
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.agents.helpers import SEED_BODY
from tests.conftest import Factory, LiveServer
from tests.ratelimit.support import FakeClock, drive
from tests.support import assert_error


async def test_access_token_and_api_key_as_bearer(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    # curl -X GET https://api.recoger.app/v1/devices -H "Authorization: Bearer eyJ..."
    assert (await client.get("/v1/devices", headers=admin.headers)).status_code == 200
    # "API keys have the prefix rk_."  curl ... -H "Authorization: Bearer rk_live_..."
    key = await factory.api_key(admin, ["devices_read"])
    assert re.fullmatch(r"rk_live_[0-9a-f]{48}", key), key
    response = await client.get("/v1/devices", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert_error(await client.get("/v1/devices", headers={"Authorization": "Bearer rk_live_" + "f" * 48}),
                 401, "UNAUTHORIZED")


async def test_sdk_example_tenant_devices_with_api_key(client: httpx.AsyncClient, factory: Factory) -> None:
    # The seed's Python example: requests.get(".../v1/devices/tenant-devices", headers={"Authorization": ...})
    admin = await factory.user("admin")
    assert (await client.post("/v1/devices/report", headers=admin.headers, json=SEED_BODY)).status_code == 201
    api_key = await factory.api_key(admin, ["devices_read"])
    response = await client.get("/v1/devices/tenant-devices", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200, response.text
    devices = response.json()
    assert [d["serial_number"] for d in devices["data"]] == [SEED_BODY["serial_number"]]
    assert devices["meta"]["skip"] == 0 and devices["meta"]["limit"] == 50  # documented default
    # skip/limit: "Results per page (default: 50, max: 100)"
    assert (await client.get("/v1/devices/my-devices?skip=0&limit=100", headers=admin.headers)).status_code == 200
    assert_error(await client.get("/v1/devices/my-devices?limit=101", headers=admin.headers), 400, "BAD_REQUEST")


async def test_rate_limit_headers_on_all_responses(server_factory: Any) -> None:
    server: LiveServer = await server_factory(rate_limits="on")
    clock = drive(server, FakeClock())  # no minute boundary can fall between the two calls
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        user = await Factory(server, http).user("user")
        first = await http.get("/v1/devices", headers=user.headers)
        second = await http.get("/v1/devices/dev_nope", headers=user.headers)
        # X-RateLimit-Limit: 60 / X-RateLimit-Remaining: 58 / X-RateLimit-Reset: 1704412800 (after two calls)
        assert [first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]] == ["59", "58"]
        for response in (first, second):
            assert response.headers["X-RateLimit-Limit"] == "60"
            assert int(response.headers["X-RateLimit-Reset"]) > clock.now  # epoch seconds


async def test_login_refresh_logout(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin", login=False)
    # {"username": "user@example.com", "password": ...}: the seed's username is an email address.
    login = await client.post("/v1/auth/login", json={"username": admin.email, "password": admin.password})
    assert login.status_code == 200, login.text
    body = login.json()
    assert body["access_token"].startswith("eyJ") and body["refresh_token"]
    assert body["user_id"] == admin.id and body["tenant_id"] == admin.tenant_id and body["role"] == "admin"

    # POST /auth/refresh {"refresh_token": ...}: "Refresh an expired access token", so a client that still
    # sends its stale access token as Bearer next to the body is served by the body.
    stale = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c3RhbGU"}
    refreshed = await client.post("/v1/auth/refresh", headers=stale, json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    tokens = refreshed.json()
    assert tokens["access_token"] and tokens["refresh_token"] != body["refresh_token"]
    assert (tokens["user_id"], tokens["tenant_id"], tokens["role"]) == (admin.id, admin.tenant_id, "admin")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/v1/users/me", headers=bearer)).status_code == 200

    # POST /auth/logout: "Invalidate the current access token."
    out = await client.post("/v1/auth/logout", headers=bearer)
    assert out.status_code in (200, 204), out.text
    assert_error(await client.get("/v1/users/me", headers=bearer), 401, "UNAUTHORIZED")
    assert_error(await client.post("/v1/auth/login", json={"username": admin.email, "password": "wrong-password!"}),
                 401, "UNAUTHORIZED")


async def test_users(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    user = await factory.user("user", tenant_id=admin.tenant_id)
    # GET /users/me
    me = (await client.get("/v1/users/me", headers=user.headers)).json()
    assert me["id"] == user.id and me["role"] == "user" and me["tenant_id"] == user.tenant_id
    # PATCH /users/me
    patched = await client.patch("/v1/users/me", headers=user.headers, json={"full_name": "Ada Lovelace"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["full_name"] == "Ada Lovelace"
    # ... and audit logs filter by resource_type=user finds it (the seed's "device, service, user").
    audit = (await client.get("/v1/audit-logs", headers=admin.headers,
                              params={"resource_type": "user", "actor_id": user.id})).json()
    assert any(r["resource_id"] == user.id and r["event_type"] == "user.profile_updated" for r in audit["data"])
    # GET /users (Admin)
    listed = (await client.get("/v1/users", headers=admin.headers)).json()
    assert {u["id"] for u in listed["data"]} == {admin.id, user.id} and listed["meta"]["total"] == 2
    assert_error(await client.get("/v1/users", headers=user.headers), 403, "FORBIDDEN")


async def test_compliance_report(client: httpx.AsyncClient, factory: Factory) -> None:
    # At the seed's /v1 paths; generation, polling and the download are in tests/reports/test_api.py.
    admin = await factory.user("admin")
    # POST /reports/compliance with the seed's body verbatim.
    body = {"framework": "iso27001", "format": "pdf", "date_range": {"start": "2025-01-01", "end": "2026-01-01"}}
    created = await client.post("/v1/reports/compliance", headers=admin.headers, json=body)
    assert created.status_code == 202, created.text
    report = created.json()
    assert report["id"].startswith("rpt_") and report["framework"] == "iso27001" and report["format"] == "pdf"
    assert report["date_range"] == body["date_range"]
    # GET /reports/{report_id}
    got = await client.get(f"/v1/reports/{report['id']}", headers=admin.headers)
    assert got.status_code == 200 and got.json()["id"] == report["id"]
    assert got.json()["status"] in ("pending", "running", "completed")
    # GET /reports
    listed = (await client.get("/v1/reports", headers=admin.headers)).json()
    assert [r["id"] for r in listed["data"]] == [report["id"]]


async def test_audit_logs_filters(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    user = await factory.user("user", tenant_id=admin.tenant_id)
    created = await client.post("/v1/services", headers=admin.headers, json={"name": "GitHub"})
    assert created.status_code == 201
    service_id = created.json()["id"]
    # GET /audit-logs: "Admin only." A plain user is refused; product.md section 5 (which wins) also lets an
    # analyst read the audit log, so that role is the one documented widening of the seed.
    assert_error(await client.get("/v1/audit-logs", headers=user.headers), 403, "FORBIDDEN")
    analyst = await factory.user("analyst", tenant_id=admin.tenant_id)
    assert (await client.get("/v1/audit-logs", headers=analyst.headers)).status_code == 200
    everything = (await client.get("/v1/audit-logs", headers=admin.headers)).json()
    assert everything["meta"]["total"] >= 1
    record = next(r for r in everything["data"] if r["resource_id"] == service_id)
    # event_name, resource_type, actor_id, start_date/end_date
    today = datetime.now(UTC).date().isoformat()  # a date-only end_date takes in that whole day
    query = {"event_name": record["event_name"], "resource_type": "service", "actor_id": admin.id,
             "start_date": today, "end_date": today}
    filtered = (await client.get("/v1/audit-logs", headers=admin.headers, params=query)).json()
    assert [r["id"] for r in filtered["data"]] == [record["id"]]
    none = (await client.get("/v1/audit-logs", headers=admin.headers,
                             params={**query, "start_date": "2020-01-01", "end_date": "2020-01-02"})).json()
    assert none["data"] == [] and none["meta"]["total"] == 0
    by_type = (await client.get("/v1/audit-logs", headers=admin.headers, params={"resource_type": "device"})).json()
    assert by_type["data"] == []


async def test_error_shape_and_statuses(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    user = await factory.user("user", tenant_id=admin.tenant_id)
    # {"detail": "Device not found"}
    missing = assert_error(await client.get("/v1/devices/dev_abc123", headers=admin.headers), 404, "NOT_FOUND")
    assert missing["detail"] == "Device not found"
    assert_error(await client.get("/v1/devices?limit=0", headers=admin.headers), 400, "BAD_REQUEST")
    assert_error(await client.get("/v1/devices", headers={"Authorization": "Bearer not-a-token"}), 401)
    assert_error(await client.get("/v1/devices"), 401, "UNAUTHORIZED")  # "Invalid or missing token"
    assert_error(await client.get("/v1/devices/tenant-devices", headers=user.headers), 403, "FORBIDDEN")


async def test_openapi_and_docs_at_the_root(client: httpx.AsyncClient) -> None:
    # "The full OpenAPI spec is available at https://api.recoger.app/openapi.json"; docs at /docs.
    spec = await client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    assert (await client.get("/docs")).status_code == 200
