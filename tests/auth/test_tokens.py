"""Refresh rotation and reuse detection, logout, and every kind of bad token."""

from __future__ import annotations

import time

import httpx
import jwt
from sqlalchemy import select

from ronda.audit.models import AuditLog
from ronda.core.db import transaction
from tests.conftest import PASSWORD, Factory
from tests.support import assert_error

SECRET = "test-secret-" + "x" * 40


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return dict(response.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_refresh_by_body_rotates_and_reuse_revokes_the_session(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user("analyst", login=False)
    first = await _login(client, user.username)
    second = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert (await client.get("/api/v1/auth/me", headers=bearer(rotated["access_token"]))).status_code == 200

    # The spent refresh token comes back: the whole login session dies, new tokens included.
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_error(reuse, 401, "UNAUTHORIZED")
    assert_error(await client.get("/api/v1/auth/me", headers=bearer(rotated["access_token"])), 401)
    assert_error(await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}), 401)

    async with transaction(factory.runtime.sessions, write=False) as session:
        events = (await session.scalars(select(AuditLog.event_type).where(AuditLog.tenant_id == user.tenant_id))).all()
    assert "auth.token.reuse_detected" in events


async def test_refresh_with_current_access_token_as_bearer(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer", login=False)
    tokens = await _login(client, user.username)
    response = await client.post("/api/auth/refresh", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400
    assert (await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))).status_code == 200
    # Without a body or a token there is nothing to refresh.
    assert_error(await client.post("/api/v1/auth/refresh"), 401)


async def test_logout_revokes_at_once(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("operator", login=False)
    tokens = await _login(client, user.username)
    other = await _login(client, user.username)
    out = await client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.status_code == 200
    assert_error(await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"])), 401)
    assert_error(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    # Another login of the same user is a separate session and keeps working.
    assert (await client.get("/api/v1/auth/me", headers=bearer(other["access_token"]))).status_code == 200


def _claims(user_id: str, tenant_id: str, session_id: str = "sess_x", **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": user_id,
        "tid": tenant_id,
        "sid": session_id,
        "jti": "j" * 32,
        "typ": "access",
        "scp": "full",
        "iss": "ronda",
        "aud": "ronda-api",
        "iat": now,
        "exp": now + 600,
        **extra,
    }


async def test_bad_tokens_are_refused_cleanly(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("admin")
    session_id = jwt.decode(user.token, options={"verify_signature": False})["sid"]
    good = _claims(user.id, user.tenant_id, session_id)
    cases = {
        "expired": jwt.encode({**good, "exp": int(time.time()) - 10}, SECRET, algorithm="HS256"),
        "other key": jwt.encode(good, "another-secret-" + "y" * 40, algorithm="HS256"),
        "alg none": jwt.encode(good, None, algorithm="none"),  # type: ignore[arg-type]
        "tampered": user.token[:-4] + ("AAAA" if not user.token.endswith("AAAA") else "BBBB"),
        "refresh as access": jwt.encode({**good, "typ": "refresh"}, SECRET, algorithm="HS256"),
        "wrong audience": jwt.encode({**good, "aud": "elsewhere"}, SECRET, algorithm="HS256"),
        "other tenant": jwt.encode({**good, "tid": "tenant_someone_else"}, SECRET, algorithm="HS256"),
        "unknown session": jwt.encode({**good, "sid": "sess_unknown"}, SECRET, algorithm="HS256"),
        "garbage": "eyJ.not.a-token",
        "empty api key": "rk_live_",
    }
    for name, token in cases.items():
        response = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert response.status_code == 401, name
        assert_error(response, 401, "UNAUTHORIZED")
    # The same signature with a valid session works: the checks above were about the token.
    valid = jwt.encode(good, SECRET, algorithm="HS256")
    assert (await client.get("/api/v1/auth/me", headers=bearer(valid))).status_code == 200
    assert_error(await client.get("/api/v1/auth/me"), 401, "UNAUTHORIZED")
    assert_error(await client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"}), 401)


async def test_deactivated_user_token_stops_working(client: httpx.AsyncClient, factory: Factory) -> None:
    from ronda.users.models import User

    user = await factory.user("viewer")
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status_code == 200
    async with transaction(factory.runtime.sessions) as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.is_active = False
    assert_error(await client.get("/api/v1/auth/me", headers=user.headers), 401)
    login = await client.post("/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    assert_error(login, 401)
