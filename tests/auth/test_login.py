from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, Factory
from tests.support import assert_error


async def test_login_by_username_returns_both_seed_shapes(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("analyst", login=False)
    response = await client.post("/api/auth/login", json={"username": user.username, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86400
    assert body["user_id"] == user.id and body["tenant_id"] == user.tenant_id and body["role"] == "analyst"
    me = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == user.id


async def test_login_by_email_and_wrong_password(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer", login=False)
    ok = await client.post("/api/v1/auth/login", json={"email": user.email.upper(), "password": PASSWORD})
    assert ok.status_code == 200
    bad = await client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong password!!"})
    assert_error(bad, 401, "UNAUTHORIZED")
    unknown = await client.post("/api/v1/auth/login", json={"username": "nobody-here", "password": "x" * 12})
    assert_error(unknown, 401, "UNAUTHORIZED")
    assert bad.json()["detail"] == unknown.json()["detail"]
