"""Lockouts and two-factor codes across server processes: one count, one lock, each code once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pyotp

from tests.conftest import PASSWORD, Factory
from tests.scaled.conftest import Pair, new_client
from tests.scaled.support import LOGIN, ME, audit_count, bearer, login
from tests.support import assert_error


async def test_failures_alternated_across_processes_lock_the_account_and_an_admin_unlocks_it(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.user("admin")
    user = await factory.user("viewer", tenant_id=admin.tenant_id, login=False)
    for i in range(4):
        bad = await http.post(pair[i] + LOGIN, json={"username": user.username, "password": f"wrong-{i}-password"})
        assert_error(bad, 401, "UNAUTHORIZED")
    fifth = await http.post(pair[4] + LOGIN, json={"username": user.username, "password": "wrong-again-password"})
    assert_error(fifth, 423, "LOCKED")
    assert 800 <= int(fifth.headers["Retry-After"]) <= 901
    for i in range(2):  # locked on both processes, even with the right password
        right = await http.post(pair[i] + LOGIN, json={"username": user.username, "password": PASSWORD})
        assert_error(right, 423, "LOCKED")
        assert 1 <= int(right.headers["Retry-After"]) <= 901
        assert "access_token" not in right.text

    unlocked = await http.post(pair[1] + f"/api/v1/users/{user.id}/unlock", headers=admin.headers)
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["locked_until"] is None
    tokens = await login(http, pair[0], user.username)
    assert (await http.get(pair[1] + ME, headers=bearer(tokens["access_token"]))).status_code == 200
    assert await audit_count(factory, user.tenant_id, "auth.account.locked") == 1
    assert await audit_count(factory, user.tenant_id, "auth.account.unlocked") == 1


async def test_simultaneous_failures_on_both_processes_are_all_counted(pair: Pair, factory: Factory) -> None:
    """Eight wrong passwords at once, four to each process: the fifth locks, none is lost."""
    user = await factory.user("viewer", login=False)
    async with new_client() as first, new_client() as second:  # 8 attempts: within each address's 10
        clients = (first, second)
        responses = await asyncio.gather(*(
            clients[i % 2].post(pair[i] + LOGIN, json={"username": user.username, "password": f"not-it-{i}-at-all"})
            for i in range(8)
        ))
    assert sorted(r.status_code for r in responses) == [401] * 4 + [423] * 4, [r.text for r in responses]
    for response in responses:
        assert_error(response, response.status_code, "UNAUTHORIZED" if response.status_code == 401 else "LOCKED")
    assert await audit_count(factory, user.tenant_id, "auth.account.locked") == 1
    assert await audit_count(factory, user.tenant_id, "auth.login.failed") == 8


def totp(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def test_a_totp_or_recovery_code_is_accepted_once_across_processes(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user("analyst")
    setup = await http.post(pair[0] + "/api/v1/auth/2fa/setup", headers=user.headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    confirm = await http.post(pair[1] + "/api/v1/auth/2fa/confirm", headers=user.headers,
                              json={"totp_code": totp(secret)})
    assert confirm.status_code == 200, confirm.text
    codes = confirm.json()["recovery_codes"]

    # The next step's code sent to both processes at once: one login, one refusal.
    body = {"username": user.username, "password": PASSWORD, "totp_code": totp(secret, 1)}
    raced = await asyncio.gather(*(http.post(pair[i] + LOGIN, json=body) for i in range(2)))
    assert sorted(r.status_code for r in raced) == [200, 401], [r.text for r in raced]
    # And replayed later on either process: refused.
    assert_error(await http.post(pair[0] + LOGIN, json=body), 401, "UNAUTHORIZED")

    # A recovery code raced the same way (from other addresses: ten login attempts a minute each).
    async with new_client() as first, new_client() as second:
        recovery = {"username": user.username, "password": PASSWORD, "totp_code": codes[0]}
        spent = await asyncio.gather(first.post(pair[0] + LOGIN, json=recovery),
                                     second.post(pair[1] + LOGIN, json=recovery))
        assert sorted(r.status_code for r in spent) == [200, 401], [r.text for r in spent]
        assert_error(await second.post(pair[1] + LOGIN, json=recovery), 401, "UNAUTHORIZED")
    assert await audit_count(factory, user.tenant_id, "auth.mfa.recovery_code_used") == 1


async def test_two_factor_confirmed_at_once_on_both_processes_is_enabled_once(
    pair: Pair, http: httpx.AsyncClient, factory: Factory
) -> None:
    """Two confirmations racing: one turns 2FA on with its recovery codes, the other is told it is on."""
    user = await factory.user("operator")
    setup = await http.post(pair[0] + "/api/v1/auth/2fa/setup", headers=user.headers)
    secret = setup.json()["secret"]
    code = {"totp_code": totp(secret)}
    raced = await asyncio.gather(
        *(http.post(pair[i] + "/api/v1/auth/2fa/confirm", headers=user.headers, json=code) for i in range(2))
    )
    assert sorted(r.status_code for r in raced) == [200, 409], [r.text for r in raced]
    [enabled] = [r.json() for r in raced if r.status_code == 200]
    # The codes handed out are the ones that work.
    recovery = {"username": user.username, "password": PASSWORD, "totp_code": enabled["recovery_codes"][0]}
    assert (await http.post(pair[1] + LOGIN, json=recovery)).status_code == 200
