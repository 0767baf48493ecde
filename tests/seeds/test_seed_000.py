"""Seed 000 (NetRecon "API Overview"), line by line, at the seed's own `/api/...` paths.

The rate-limit tiers, bursts and Retry-After are proven in depth in tests/ratelimit/test_limits.py;
here only what a client reads from this document: the headers on every response and the 429 shape.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.agents.helpers import enrolled_agent, report_body
from tests.conftest import Factory, LiveServer
from tests.ratelimit.support import FakeClock, drive
from tests.support import assert_error


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    # "All API endpoints (except /api/health and /health) require a JWT Bearer token."
    for path in ("/api/health", "/health"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.json()["status"] == "ok"
    assert_error(await client.get("/api/devices"), 401, "UNAUTHORIZED")


async def test_obtain_use_and_refresh_a_token(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin", login=False)
    # curl -X POST .../api/auth/login -H "Content-Type: application/json" -d '{"username", "password"}'
    login = await client.post("/api/auth/login", json={"username": admin.username, "password": admin.password})
    assert login.status_code == 200, login.text
    assert login.headers["content-type"].startswith("application/json")
    body = login.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400  # "expire after 24 hours by default"
    assert body["access_token"].startswith("eyJ")  # a JWT, as in the example

    # curl .../api/devices -H "Authorization: Bearer eyJ..."
    devices = await client.get("/api/devices", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert devices.status_code == 200, devices.text
    assert devices.json()["data"] == []

    # curl -X POST .../api/auth/refresh -H "Authorization: Bearer <current-token>"  (no body at all)
    refreshed = await client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert refreshed.status_code == 200, refreshed.text
    fresh = refreshed.json()
    assert fresh["token_type"] == "bearer" and fresh["expires_in"] == 86400
    again = await client.get("/api/devices", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert again.status_code == 200
    # Many HTTP clients send `{}` (or an empty JSON body) on a bodiless POST: still a Bearer refresh.
    with_empty_object = await client.post("/api/auth/refresh", json={},
                                          headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert with_empty_object.status_code == 200, with_empty_object.text
    bearer = {"Authorization": f"Bearer {with_empty_object.json()['access_token']}",
              "Content-Type": "application/json"}
    with_empty_body = await client.post("/api/auth/refresh", content=b"", headers=bearer)
    assert with_empty_body.status_code == 200, with_empty_body.text
    # Without a token and without a body there is nothing to refresh.
    assert_error(await client.post("/api/auth/refresh", json={}), 401, "UNAUTHORIZED")


async def test_api_key_in_x_api_key_header(server_factory: Any) -> None:
    # "Keys use the format nr_live_ followed by 48 hex characters": a deployment sets RONDA_API_KEY_PREFIX=nr.
    # "Tokens expire after 24 hours by default (configurable per deployment)": RONDA_ACCESS_TOKEN_TTL.
    server: LiveServer = await server_factory(
        api_key_prefix="nr", access_token_ttl=3600, rate_limits="off")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        factory = Factory(server, http)
        admin = await factory.user("admin")
        login = await http.post("/api/auth/login", json={"username": admin.username, "password": admin.password})
        assert login.json()["expires_in"] == 3600
        key = await factory.api_key(admin, ["devices_read"])
        assert re.fullmatch(r"nr_live_[0-9a-f]{48}", key), key
        # curl https://api.netreconapp.com/api/v1/devices -H "X-API-Key: nr_live_..."
        response = await http.get("/api/v1/devices", headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        # "Each key has granular permission scopes": a devices_read key cannot reach the audit log.
        assert_error(await http.get("/api/v1/audit-logs", headers={"X-API-Key": key}), 403, "FORBIDDEN")
        assert_error(await http.get("/api/v1/devices", headers={"X-API-Key": "nr_live_" + "0" * 48}),
                     401, "UNAUTHORIZED")


async def test_rate_limit_headers_on_every_request(server_factory: Any) -> None:
    server: LiveServer = await server_factory(rate_limits="on")
    clock = drive(server, FakeClock())  # the limiter's second stands still: the burst is exact
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        factory = Factory(server, http)
        user = await factory.user("user")
        # "on every request": success, error, unauthenticated and health alike.
        for response in (await http.get("/api/devices", headers=user.headers),
                         await http.get("/api/devices/dev_missing", headers=user.headers)):
            assert int(response.headers["X-RateLimit-Limit"]) == 60  # Standard tier
            assert int(response.headers["X-RateLimit-Remaining"]) < 60
        for response in (await http.get("/api/devices"), await http.get("/api/health")):
            assert "X-RateLimit-Limit" in response.headers and "X-RateLimit-Remaining" in response.headers
        # Admin tier 120; Service (agent) tier 300 for a key created as a service key.
        admin = await factory.user("admin")
        assert (await http.get("/api/devices", headers=admin.headers)).headers["X-RateLimit-Limit"] == "120"
        service_key = await factory.api_key(admin, ["devices_read"], kind="service")
        served = await http.get("/api/devices", headers={"X-API-Key": service_key})
        assert served.headers["X-RateLimit-Limit"] == "300"
        agent = await enrolled_agent(http, admin)  # an enrolled agent's credential is Service tier too
        reported = await http.post("/api/devices/report", headers=agent.headers, json=report_body())
        assert reported.status_code in (200, 201), reported.text
        assert reported.headers["X-RateLimit-Limit"] == "300"
        # Burst 10 for the standard tier: the 11th request within one second is a 429.
        clock.to_next_second()
        responses = [await http.get("/api/devices", headers=user.headers) for _ in range(11)]
        assert [r.status_code for r in responses] == [200] * 10 + [429]
        assert_error(responses[-1], 429, "RATE_LIMITED")
        assert int(responses[-1].headers["Retry-After"]) >= 1
        assert responses[-1].headers["X-RateLimit-Limit"] == "60"  # the headers ride on the 429 too


async def test_pagination_page_and_per_page(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    for n in range(3):
        body = {"device_name": f"host {n}", "serial_number": f"SEED000-{n}", "device_type": "server",
                "os_type": "linux", "os_version": "6.1"}
        assert (await client.post("/api/devices/report", headers=admin.headers, json=body)).status_code == 201
    # "List endpoints are paginated with a default page size of 100 items."
    first = (await client.get("/api/devices", headers=admin.headers)).json()
    assert first["meta"]["per_page"] == 100 and first["meta"]["page"] == 1 and first["meta"]["total"] == 3
    # GET /api/devices?page=2&per_page=50 ... here page 2 of 2 per page.
    page = (await client.get("/api/devices?page=2&per_page=2", headers=admin.headers)).json()
    assert page["meta"]["page"] == 2 and page["meta"]["per_page"] == 2 and page["meta"]["total"] == 3
    assert len(page["data"]) == 1
    assert (await client.get("/api/devices?page=2&per_page=50", headers=admin.headers)).json()["data"] == []
    # per_page=1 as a cheap count, and the 1000 cap (values beyond it are a 400, not clamped).
    count = (await client.get("/api/devices?per_page=1", headers=admin.headers)).json()
    assert len(count["data"]) == 1 and count["meta"]["total"] == 3
    assert (await client.get("/api/devices?per_page=1000", headers=admin.headers)).status_code == 200
    assert_error(await client.get("/api/devices?per_page=1001", headers=admin.headers), 400, "BAD_REQUEST")


async def test_csv_export_is_text_csv(client: httpx.AsyncClient, factory: Factory) -> None:
    # "CSV export endpoints return text/csv".
    admin = await factory.user("admin")
    response = await client.get("/api/devices", headers={**admin.headers, "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
