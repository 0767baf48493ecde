"""Scaled mode: two real server processes on one Redis behave as one server for rate limits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Account, Factory
from tests.ratelimit.support import outside_minute_edge, rate_headers, statuses, within_one_second
from tests.support import assert_error

ME = "/api/v1/auth/me"


async def test_two_server_processes_share_one_budget(
    process_server: Any, redis_url: str, factory: Factory
) -> None:
    env = {"RONDA_RATE_LIMITS": "on", "RONDA_REDIS_URL": redis_url}
    first, second = await asyncio.gather(
        asyncio.to_thread(process_server, **env), asyncio.to_thread(process_server, **env)
    )
    servers = [first, second]
    assert first != second
    async with httpx.AsyncClient(timeout=30) as http:
        # Requests alternated one by one across the processes count down one budget.
        viewer = await factory.user("viewer")
        await outside_minute_edge(3)
        sequential = [await http.get(servers[i % 2] + ME, headers=viewer.headers) for i in range(6)]
        assert statuses(sequential) == [200] * 6
        assert [rate_headers(r)[:2] for r in sequential] == [(60, n) for n in range(59, 53, -1)]

        # A burst alternated across both processes inside one second: ten in total, not ten each.
        async def fire(account: Account) -> list[httpx.Response]:
            return list(await asyncio.gather(
                *(http.get(servers[i % 2] + ME, headers=account.headers) for i in range(20))
            ))

        responses = await within_one_second(lambda: factory.user("viewer"), fire)
        assert sorted(statuses(responses)) == [200] * 10 + [429] * 10
        for refused in (r for r in responses if r.status_code == 429):
            assert_error(refused, 429, "RATE_LIMITED")
            assert refused.headers["retry-after"] == "1"
        served_by = {server: statuses(responses[i::2]) for i, server in enumerate(servers)}
        assert all(len(codes) == 10 for codes in served_by.values())

        # The tenant's daily quota is one count across the processes too.
        tenant = await factory.tenant(daily_quota=5)
        member = await factory.user("viewer", tenant_id=tenant)
        quota = [await http.get(servers[i % 2] + ME, headers=member.headers) for i in range(6)]
        assert statuses(quota) == [200] * 5 + [429]
        assert [rate_headers(r)[:2] for r in quota[:5]] == [(5, n) for n in range(4, -1, -1)]
        assert_error(quota[5], 429, "RATE_LIMITED")
        assert int(quota[5].headers["retry-after"]) >= 1


async def test_each_process_alone_would_have_allowed_its_own_burst(
    process_server: Any, factory: Factory
) -> None:
    """The control: without Redis the same alternated burst gets ten per process."""
    env = {"RONDA_RATE_LIMITS": "on", "RONDA_REDIS_URL": ""}
    first, second = await asyncio.gather(
        asyncio.to_thread(process_server, **env), asyncio.to_thread(process_server, **env)
    )
    servers = [first, second]
    async with httpx.AsyncClient(timeout=30) as http:

        async def fire(account: Account) -> list[httpx.Response]:
            return list(await asyncio.gather(
                *(http.get(servers[i % 2] + ME, headers=account.headers) for i in range(30))
            ))

        responses = await within_one_second(lambda: factory.user("viewer"), fire)
    assert sorted(statuses(responses)) == [200] * 20 + [429] * 10
    for i in range(2):
        assert sorted(statuses(responses[i::2])) == [200] * 10 + [429] * 5
