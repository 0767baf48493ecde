"""Rate limits through real servers: tiers and bursts, the minute budget, daily quotas, per-credential
budgets, headers on every response, login attempts per address, and switching limits off.

Each test starts its own server with limits on (in-process limiter, or Redis), so tests never spend
each other's budgets. Most drive the server's limiter with a fake clock, so "within one second" is
exact rather than a race; the standard burst and the daily quota also run on the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, Account, Factory, LiveServer
from tests.ratelimit.support import (
    DAY,
    FakeClock,
    drive,
    rate_headers,
    statuses,
    within_one_second,
)
from tests.support import assert_error

ME = "/api/v1/auth/me"


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for a rate-limited server on each backend (Redis: the test Redis)."""
    if request.param == "redis":
        return {"rate_limits": "on", "redis_url": request.getfixturevalue("redis_url")}
    return {"rate_limits": "on"}


async def limited(server_factory: Any, backend: dict[str, Any], clock: FakeClock | None = None) -> LiveServer:
    server: LiveServer = await server_factory(**backend)
    if clock is not None:
        drive(server, clock)
    return server


async def burst(http: httpx.AsyncClient, n: int, headers: dict[str, str], path: str = ME) -> list[httpx.Response]:
    """`n` requests at once."""
    return list(await asyncio.gather(*(http.get(path, headers=headers) for _ in range(n))))


def assert_refused(response: httpx.Response, retry_after: int | None = None) -> None:
    assert_error(response, 429, "RATE_LIMITED")
    assert len(response.headers.get_list("retry-after")) == 1
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1
    if retry_after is not None:
        assert seconds == retry_after


@pytest.mark.parametrize(
    ("role", "key_kind", "per_minute", "burst_size"),
    [("viewer", None, 60, 10), ("admin", None, 120, 20), ("admin", "service", 300, 50)],
    ids=["standard-viewer-token", "admin-token", "service-key"],
)
async def test_tier_burst_within_one_second_then_429(
    server_factory: Any, backend: dict[str, Any], factory: Factory,
    role: str, key_kind: str | None, per_minute: int, burst_size: int,
) -> None:
    clock = FakeClock()
    server = await limited(server_factory, backend, clock)
    account = await factory.user(role)
    if key_kind:
        headers = {"X-API-Key": await factory.api_key(account, ["devices_read"], kind=key_kind)}
    else:
        headers = account.headers
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        responses = await burst(http, burst_size + 5, headers)
        assert sorted(statuses(responses)) == [200] * burst_size + [429] * 5
        ok = [r for r in responses if r.status_code == 200]
        minute_end = (int(clock()) // 60 + 1) * 60
        assert sorted(rate_headers(r)[1] for r in ok) == list(range(per_minute - burst_size, per_minute))
        assert {rate_headers(r)[0] for r in ok} == {per_minute}
        assert {rate_headers(r)[2] for r in ok} == {minute_end}
        for refused in (r for r in responses if r.status_code == 429):
            assert_refused(refused, retry_after=1)
            assert rate_headers(refused) == (per_minute, per_minute - burst_size, minute_end)

        clock.to_next_second()  # the burst window is one second: the next one has room again
        again = await http.get(ME, headers=headers)
        assert again.status_code == 200
        assert rate_headers(again)[1] == per_minute - burst_size - 1


async def test_standard_burst_on_the_wall_clock(server_factory: Any, backend: dict[str, Any],
                                                factory: Factory) -> None:
    server = await limited(server_factory, backend)  # the real clock
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def fire(viewer: Account) -> list[httpx.Response]:
            return await burst(http, 16, viewer.headers)

        responses = await within_one_second(lambda: factory.user("viewer"), fire)
    assert sorted(statuses(responses)) == [200] * 10 + [429] * 6
    for refused in (r for r in responses if r.status_code == 429):
        assert_refused(refused, retry_after=1)


async def test_minute_budget_is_sixty_then_429_until_the_minute_ends(
    server_factory: Any, backend: dict[str, Any], factory: Factory
) -> None:
    clock = FakeClock()
    clock.now = clock.now - clock.now % 60 + 20  # 20 seconds into a minute
    minute_end = int(clock()) + 40
    server = await limited(server_factory, backend, clock)
    viewer = await factory.user("viewer")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        remaining: list[int] = []
        for _ in range(6):  # full bursts for six seconds spend the minute's 60
            responses = await burst(http, 10, viewer.headers)
            assert statuses(responses) == [200] * 10
            remaining += [rate_headers(r)[1] for r in responses]
            clock.advance(1)
        assert sorted(remaining, reverse=True) == list(range(59, -1, -1))

        refused = await http.get(ME, headers=viewer.headers)
        assert_refused(refused, retry_after=minute_end - int(clock()))
        assert int(refused.headers["retry-after"]) == 34
        assert rate_headers(refused) == (60, 0, minute_end)
        assert "per minute" in refused.json()["detail"]

        clock.now = float(minute_end)
        fresh = await http.get(ME, headers=viewer.headers)
        assert fresh.status_code == 200
        assert rate_headers(fresh) == (60, 59, minute_end + 60)


async def test_tenant_daily_quota_refuses_the_sixth_request_until_midnight_utc(
    server_factory: Any, backend: dict[str, Any], factory: Factory
) -> None:
    server = await limited(server_factory, backend)  # the real clock: Retry-After counts to the real midnight
    tenant = await factory.tenant(daily_quota=5)
    viewer = await factory.user("viewer", tenant_id=tenant)
    analyst = await factory.user("analyst", tenant_id=tenant)
    outsider = await factory.user("viewer")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        counted = []
        for account in (viewer, analyst, viewer, analyst, viewer):  # the quota is the tenant's, not a user's
            response = await http.get(ME, headers=account.headers)
            assert response.status_code == 200
            counted.append(rate_headers(response)[:2])
        assert counted == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]

        sixth = await http.get(ME, headers=viewer.headers)
        midnight = (int(time.time()) // DAY + 1) * DAY
        assert_refused(sixth)
        assert abs(int(sixth.headers["retry-after"]) - (midnight - time.time())) <= 2
        assert rate_headers(sixth) == (5, 0, midnight)
        assert "daily quota" in sixth.json()["detail"]
        assert_refused(await http.get(ME, headers=analyst.headers))
        assert (await http.get(ME, headers=outsider.headers)).status_code == 200  # another tenant is untouched

        drive(server, FakeClock(midnight + 1))  # the next UTC day
        next_day = await http.get(ME, headers=viewer.headers)
        assert next_day.status_code == 200 and rate_headers(next_day)[:2] == (5, 4)


async def test_each_api_key_has_its_own_budget_while_a_users_tokens_share_one(
    server_factory: Any, backend: dict[str, Any], factory: Factory
) -> None:
    clock = FakeClock()
    server = await limited(server_factory, backend, clock)
    analyst = await factory.user("analyst")
    first_key = await factory.api_key(analyst, ["devices_read"])
    second_key = await factory.api_key(analyst, ["devices_read"])
    second_token = await factory.login(analyst)
    assert second_token != analyst.token
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        by_first = await burst(http, 12, {"X-API-Key": first_key})
        by_second = await burst(http, 12, {"Authorization": f"Bearer {second_key}"})
        assert sorted(statuses(by_first)) == [200] * 10 + [429] * 2
        assert sorted(statuses(by_second)) == [200] * 10 + [429] * 2  # untouched by the first key

        # Two login sessions of one user draw on one budget, also unspent by the user's keys.
        tokens = [analyst.headers, {"Authorization": f"Bearer {second_token}"}]
        alternated = await asyncio.gather(*(http.get(ME, headers=tokens[i % 2]) for i in range(14)))
        assert sorted(statuses(list(alternated))) == [200] * 10 + [429] * 4
        remaining = sorted(rate_headers(r)[1] for r in alternated if r.status_code == 200)
        assert remaining == list(range(50, 60))  # one count shared by both tokens


async def test_headers_on_success_and_on_every_kind_of_error(
    server_factory: Any, backend: dict[str, Any], factory: Factory
) -> None:
    clock = FakeClock()
    server = await limited(server_factory, backend, clock)
    viewer = await factory.user("viewer")
    admin = await factory.user("admin")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        ok = await http.get(ME, headers=viewer.headers)
        no_credentials = await http.get(ME)
        bad_token = await http.get(ME, headers={"Authorization": "Bearer not-a-token"})
        forbidden = await http.get("/api/v1/users", headers=viewer.headers)
        unknown_route = await http.get("/api/v1/no-such-thing", headers=viewer.headers)
        missing_user = await http.get("/api/v1/users/usr_doesnotexist", headers=admin.headers)
        assert ok.status_code == 200
        assert_error(no_credentials, 401, "UNAUTHORIZED")
        assert_error(bad_token, 401, "UNAUTHORIZED")
        assert_error(forbidden, 403, "FORBIDDEN")
        assert_error(unknown_route, 404, "NOT_FOUND")
        assert_error(missing_user, 404, "NOT_FOUND")
        minute_end = (int(clock()) // 60 + 1) * 60
        # The caller's own budget where there is a caller, the address's budget where there is none.
        assert rate_headers(ok) == (60, 59, minute_end)
        assert rate_headers(forbidden) == (60, 58, minute_end)
        assert rate_headers(missing_user) == (120, 119, minute_end)
        assert rate_headers(no_credentials) == (60, 59, minute_end)
        assert rate_headers(bad_token) == (60, 58, minute_end)  # failed attempts spend the address's budget
        assert rate_headers(unknown_route) == (60, 58, minute_end)  # no route: reported, not spent
        for response in (ok, no_credentials, bad_token, forbidden, unknown_route, missing_user):
            assert "retry-after" not in response.headers

        # A burst of unauthenticated requests from one address is refused like any other caller.
        anonymous = await burst(http, 12, {})
        refused = [r for r in anonymous if r.status_code == 429]
        assert len(refused) == 12 - (10 - 2)
        for response in refused:
            assert_refused(response, retry_after=1)
            rate_headers(response)
        limited_viewer = await burst(http, 12, viewer.headers)
        assert {rate_headers(r)[0] for r in limited_viewer} == {60}
        assert 429 in statuses(limited_viewer)


async def test_headers_present_with_limits_off(client: httpx.AsyncClient, factory: Factory) -> None:
    viewer = await factory.user("viewer")
    for response in (
        await client.get(ME, headers=viewer.headers),
        await client.get(ME),
        await client.get("/api/v1/no-such-thing"),
    ):
        limit, remaining, reset = rate_headers(response)
        assert limit == 60 and remaining == 60 and reset % 60 == 0
        assert "retry-after" not in response.headers


async def test_login_attempts_are_limited_per_address_even_with_the_right_password(
    server_factory: Any, backend: dict[str, Any], factory: Factory
) -> None:
    clock = FakeClock()
    server = await limited(server_factory, backend, clock)
    first = await factory.user("viewer", login=False)
    second = await factory.user("analyst", login=False)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def login(account: Account, password: str = PASSWORD) -> httpx.Response:
            return await http.post("/api/v1/auth/login", json={"username": account.username, "password": password})

        outcomes = [await login(first), await login(second, "wrong password!!")]
        for i in range(8):
            outcomes.append(await login(first if i % 2 else second))
        assert statuses(outcomes) == [200, 401] + [200] * 8
        assert [rate_headers(r)[:2] for r in outcomes] == [(10, n) for n in range(9, -1, -1)]

        eleventh = await login(first)  # right password, but the address has used its ten
        assert_refused(eleventh, retry_after=60 - int(clock()) % 60)
        assert "access_token" not in eleventh.text
        assert_refused(await login(second))  # whoever it claims to be
        refresh_token = outcomes[0].json()["refresh_token"]
        assert_refused(await http.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token}))
        # Ordinary requests are not login attempts: the token still works.
        me = await http.get(ME, headers={"Authorization": f"Bearer {outcomes[0].json()['access_token']}"})
        assert me.status_code == 200

        clock.to_next_minute()
        assert (await login(first)).status_code == 200


async def test_rate_limits_off_never_refuses(process_server: Any, factory: Factory) -> None:
    url = await asyncio.to_thread(process_server, RONDA_RATE_LIMITS="off")
    viewer = await factory.user("viewer")
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        authenticated = await burst(http, 100, viewer.headers)
        anonymous = await burst(http, 30, {})
        logins = [
            await http.post("/api/v1/auth/login", json={"username": viewer.username, "password": PASSWORD})
            for _ in range(15)
        ]
    assert statuses(authenticated) == [200] * 100
    assert statuses(anonymous) == [401] * 30
    assert statuses(logins) == [200] * 15
    for response in authenticated + anonymous + logins:
        rate_headers(response)
        assert "retry-after" not in response.headers
