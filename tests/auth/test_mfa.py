from __future__ import annotations

import time

import httpx
import pyotp

from ronda.core.db import transaction
from ronda.tenants.models import Tenant
from tests.conftest import PASSWORD, Factory
from tests.support import assert_error


def _code(secret: str, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset)


async def _enrol(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, list[str]]:
    setup = await client.post("/api/v1/auth/2fa/setup", headers=headers)
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/")
    confirm = await client.post("/api/v1/auth/2fa/confirm", headers=headers, json={"totp_code": _code(secret)})
    assert confirm.status_code == 200, confirm.text
    codes = confirm.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


async def test_totp_login_flow_with_recovery_codes(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("analyst")
    secret, codes = await _enrol(client, user.headers)
    me = await client.get("/api/v1/auth/me", headers=user.headers)
    assert me.json()["mfa_enabled"] is True

    no_code = await client.post("/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    assert_error(no_code, 401, "MFA_REQUIRED")
    wrong = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD, "totp_code": "000000"}
    )
    assert_error(wrong, 401, "UNAUTHORIZED")
    # A code from the next step (the confirm used the current one: replays are refused).
    ok = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD, "totp_code": _code(secret, 30)}
    )
    assert ok.status_code == 200, ok.text
    replay = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD, "totp_code": _code(secret, 30)}
    )
    assert_error(replay, 401)

    recovery = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD, "totp_code": codes[0]}
    )
    assert recovery.status_code == 200
    again = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD, "totp_code": codes[0]}
    )
    assert_error(again, 401)

    headers = {"Authorization": f"Bearer {recovery.json()['access_token']}"}
    assert_error(await client.request("DELETE", "/api/v1/auth/2fa", headers=headers, json={"totp_code": "123456"}), 400)
    off = await client.request("DELETE", "/api/v1/auth/2fa", headers=headers, json={"totp_code": codes[1]})
    assert off.status_code == 200
    plain = await client.post("/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    assert plain.status_code == 200


async def test_tenant_mfa_required_forces_enrolment(client: httpx.AsyncClient, factory: Factory) -> None:
    tenant = await factory.tenant()
    user = await factory.user("admin", tenant_id=tenant, login=False)
    async with transaction(factory.runtime.sessions) as session:
        row = await session.get(Tenant, tenant)
        assert row is not None
        row.mfa_required = True
    login = await client.post("/api/v1/auth/login", json={"username": user.username, "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["mfa_setup_required"] is True
    limited = {"Authorization": f"Bearer {login.json()['access_token']}"}
    blocked = await client.get("/api/v1/users", headers=limited)
    assert_error(blocked, 403, "MFA_SETUP_REQUIRED")

    setup = await client.post("/api/v1/auth/2fa/setup", headers=limited)
    secret = setup.json()["secret"]
    confirm = await client.post("/api/v1/auth/2fa/confirm", headers=limited, json={"totp_code": _code(secret)})
    assert confirm.status_code == 200
    full = confirm.json()["tokens"]
    assert full is not None and full["mfa_setup_required"] is False
    assert (
        await client.get("/api/v1/users", headers={"Authorization": f"Bearer {full['access_token']}"})
    ).status_code == 200
    # The enrolment-only token is spent.
    assert_error(await client.get("/api/v1/auth/me", headers=limited), 401)
    # The tenant requires 2FA, so it cannot be turned off.
    full_headers = {"Authorization": f"Bearer {full['access_token']}"}
    refused = await client.request(
        "DELETE", "/api/v1/auth/2fa", headers=full_headers, json={"totp_code": _code(secret, 30)}
    )
    assert_error(refused, 403)


async def test_change_password_ends_other_sessions(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user("viewer")
    other = await factory.login(user)
    short = await client.post(
        "/api/v1/auth/change-password",
        headers=user.headers,
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    body = assert_error(short, 400, "BAD_REQUEST")
    assert "12 characters" in body["detail"]
    wrong = await client.post(
        "/api/v1/auth/change-password",
        headers=user.headers,
        json={"current_password": "not my password", "new_password": "a brand new passphrase"},
    )
    assert_error(wrong, 400)
    done = await client.post(
        "/api/v1/auth/change-password",
        headers=user.headers,
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )
    assert done.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status_code == 200
    assert_error(await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {other}"}), 401)
    login = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": "a brand new passphrase"}
    )
    assert login.status_code == 200
