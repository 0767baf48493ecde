"""Using API keys: both headers, scopes, expiry, revocation, tampering, last use, rate tiers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from ronda.api_keys.models import ApiKey
from ronda.core.db import transaction
from ronda.core.timeutil import utcnow
from ronda.users.models import User
from tests.conftest import Account, Factory
from tests.support import assert_error


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def x_api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def db_update(factory: Factory, model: Any, row_id: str, **values: Any) -> None:
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(update(model).where(model.id == row_id).values(**values))


async def key_row(client: httpx.AsyncClient, owner: Account, key_id: str) -> dict[str, Any]:
    listing = await client.get("/api/v1/api-keys", headers=owner.headers, params={"limit": 100})
    return next(k for k in listing.json()["data"] if k["id"] == key_id)


async def test_a_key_works_in_both_headers_with_exactly_its_scopes(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    analyst = await factory.user("analyst")
    key = await factory.api_key(analyst, ["audit_read", "devices_read"])
    for headers in (x_api_key(key), bearer(key)):
        me = await client.get("/api/v1/auth/me", headers=headers)
        assert me.status_code == 200, me.text
        body = me.json()
        assert body["id"] == analyst.id and body["auth_type"] == "api_key"
        assert sorted(body["permissions"]) == ["audit_read", "devices_read"]
        assert (await client.get("/api/v1/audit-logs", headers=headers)).status_code == 200
        # The analyst may manage keys, but this key was not given that scope.
        assert_error(await client.get("/api/v1/api-keys", headers=headers), 403, "FORBIDDEN")


async def test_a_devices_read_key_cannot_list_keys(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    key = await factory.api_key(admin, ["devices_read"])
    body = assert_error(await client.get("/api/v1/api-keys", headers=x_api_key(key)), 403, "FORBIDDEN")
    assert "api_keys_manage" in body["detail"]
    assert_error(await client.get("/api/v1/audit-logs", headers=bearer(key)), 403, "FORBIDDEN")


async def test_revoked_expired_and_tampered_keys_are_refused(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    revoked = (await client.post("/api/v1/api-keys", headers=admin.headers,
                                 json={"name": "r", "permissions": ["devices_read"]})).json()
    assert (await client.get("/api/v1/auth/me", headers=x_api_key(revoked["key"]))).status_code == 200
    assert (await client.delete(f"/api/v1/api-keys/{revoked['id']}", headers=admin.headers)).status_code == 200
    for headers in (x_api_key(revoked["key"]), bearer(revoked["key"])):
        assert_error(await client.get("/api/v1/auth/me", headers=headers), 401, "UNAUTHORIZED")

    expired = (await client.post("/api/v1/api-keys", headers=admin.headers,
                                 json={"name": "e", "permissions": ["devices_read"], "expires_in_days": 1})).json()
    assert (await client.get("/api/v1/auth/me", headers=bearer(expired["key"]))).status_code == 200
    await db_update(factory, ApiKey, expired["id"], expires_at=utcnow() - timedelta(seconds=1))
    assert_error(await client.get("/api/v1/auth/me", headers=bearer(expired["key"])), 401, "UNAUTHORIZED")
    row = await key_row(client, admin, expired["id"])
    assert row["is_active"] is False and row["revoked_at"] is None

    good = await factory.api_key(admin, ["devices_read"])
    assert (await client.get("/api/v1/auth/me", headers=x_api_key(good))).status_code == 200
    last = good[-1]
    tampered = good[:-1] + ("0" if last != "0" else "1")
    middle = len(good) // 2 + 4
    tampered_middle = good[:middle] + ("a" if good[middle] != "a" else "b") + good[middle + 1:]
    for bad in (tampered, tampered_middle, good.upper(), good + "0", good.replace("_live_", "_test_"),
                "rk_live_" + "0" * 48, "x" * 300):
        assert_error(await client.get("/api/v1/auth/me", headers=x_api_key(bad)), 401, "UNAUTHORIZED")
        assert_error(await client.get("/api/v1/auth/me", headers=bearer(bad)), 401, "UNAUTHORIZED")


async def test_a_deactivated_creators_keys_stop_working(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant()
    analyst = await factory.user("analyst", tenant_id=tenant)
    key = await factory.api_key(analyst, ["devices_read"])
    assert (await client.get("/api/v1/auth/me", headers=x_api_key(key))).status_code == 200
    await db_update(factory, User, analyst.id, is_active=False)
    assert_error(await client.get("/api/v1/auth/me", headers=x_api_key(key)), 401, "UNAUTHORIZED")
    await db_update(factory, User, analyst.id, is_active=True)
    assert (await client.get("/api/v1/auth/me", headers=x_api_key(key))).status_code == 200


async def test_a_key_loses_scopes_its_creator_loses(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    key = await factory.api_key(admin, ["api_keys_manage", "devices_read"])
    assert (await client.get("/api/v1/api-keys", headers=x_api_key(key))).status_code == 200
    await db_update(factory, User, admin.id, role="viewer")  # a viewer holds devices_read only
    assert_error(await client.get("/api/v1/api-keys", headers=x_api_key(key)), 403, "FORBIDDEN")
    me = (await client.get("/api/v1/auth/me", headers=x_api_key(key))).json()
    assert me["permissions"] == ["devices_read"]


async def test_last_used_at_is_recorded(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    created = (await client.post("/api/v1/api-keys", headers=admin.headers,
                                 json={"name": "used", "permissions": ["devices_read"]})).json()
    before = await key_row(client, admin, created["id"])
    assert before["last_used_at"] is None
    assert (await client.get("/api/v1/auth/me", headers=bearer(created["key"]))).status_code == 200
    after = await key_row(client, admin, created["id"])
    assert after["last_used_at"] is not None
    assert parse(after["last_used_at"]) >= parse(created["created_at"])
    # At most once a minute: a second use right away leaves the timestamp as it was.
    assert (await client.get("/api/v1/auth/me", headers=bearer(created["key"]))).status_code == 200
    assert (await key_row(client, admin, created["id"]))["last_used_at"] == after["last_used_at"]


async def test_a_key_creates_keys_only_within_its_own_scopes(client: httpx.AsyncClient, factory: Factory) -> None:
    analyst = await factory.user("analyst")
    key = await factory.api_key(analyst, ["api_keys_manage", "devices_read"])
    # The analyst holds audit_read, but the calling key does not: it cannot hand it out.
    wider = await client.post("/api/v1/api-keys", headers=x_api_key(key),
                              json={"name": "wider", "permissions": ["devices_read", "audit_read"]})
    body = assert_error(wider, 403, "FORBIDDEN")
    assert "audit_read" in body["detail"] and "devices_read" not in body["detail"]
    narrower = await client.post("/api/v1/api-keys", headers=x_api_key(key),
                                 json={"name": "narrower", "permissions": ["devices_read"]})
    assert narrower.status_code == 201, narrower.text
    grants = (await client.get("/api/v1/api-keys/permissions", headers=x_api_key(key))).json()["data"]
    assert {g["name"] for g in grants if g["grantable"]} == {"api_keys_manage", "devices_read"}
    # The new key belongs to the analyst, and the audit log shows which key made it.
    row = await key_row(client, analyst, narrower.json()["id"])
    assert row["user_id"] == analyst.id
    logs = (await client.get("/api/v1/audit-logs", headers=analyst.headers,
                             params={"event_type": "api_key.created",
                                     "resource_id": narrower.json()["id"]})).json()["data"]
    assert len(logs) == 1
    keys = (await client.get("/api/v1/api-keys", headers=analyst.headers)).json()["data"]
    calling_key_id = next(k["id"] for k in keys if k["id"] != narrower.json()["id"])
    assert logs[0]["actor_type"] == "api_key" and logs[0]["actor_id"] == calling_key_id


async def test_service_keys_get_the_service_rate_tier(server_factory: Any, factory: Factory) -> None:
    tenant = await factory.tenant()
    admin = await factory.user("admin", tenant_id=tenant)
    analyst = await factory.user("analyst", tenant_id=tenant)
    service_key = await factory.api_key(admin, ["devices_read"], kind="service")
    admin_key = await factory.api_key(admin, ["devices_read"])
    analyst_key = await factory.api_key(analyst, ["devices_read"])
    limited = await server_factory(rate_limits="on")
    async with httpx.AsyncClient(base_url=limited.url, timeout=30) as http:
        for key, per_minute in ((service_key, 300), (admin_key, 120), (analyst_key, 60)):
            response = await http.get("/api/v1/auth/me", headers=x_api_key(key))
            assert response.status_code == 200, response.text
            assert response.headers["X-RateLimit-Limit"] == str(per_minute)
            assert int(response.headers["X-RateLimit-Remaining"]) == per_minute - 1
        # Each key has its own budget, apart from its creator's tokens.
        first = await http.get("/api/v1/auth/me", headers=x_api_key(admin_key))
        again = await http.get("/api/v1/auth/me", headers=x_api_key(admin_key))
        if again.headers["X-RateLimit-Reset"] == first.headers["X-RateLimit-Reset"]:  # same minute window
            assert int(again.headers["X-RateLimit-Remaining"]) == int(first.headers["X-RateLimit-Remaining"]) - 1
        token = await http.get("/api/v1/auth/me", headers=admin.headers)
        assert token.headers["X-RateLimit-Remaining"] == "119"
