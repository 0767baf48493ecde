"""The limiter's arithmetic, driven by a fake clock, for the in-process and the Redis backend alike."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from ronda.core.ratelimit import (
    PLAN_QUOTAS,
    TIERS,
    Decision,
    DisabledRateLimiter,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    build_rate_limiter,
)
from tests.ratelimit.support import DAY, FakeClock

STANDARD = TIERS["standard"]  # (60, 10)


@dataclass
class Setup:
    limiter: RateLimiter
    clock: FakeClock
    backend: str
    redis_url: str = ""
    namespace: str = ""


@pytest_asyncio.fixture(params=["memory", "redis"])
async def rl(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    clock = FakeClock()
    if request.param == "memory":
        limiter = MemoryRateLimiter(clock=clock)
        yield Setup(limiter, clock, "memory")
        await limiter.close()
        return
    url: str = request.getfixturevalue("redis_url")
    namespace = "ronda:test:" + secrets.token_hex(6)
    redis_limiter = RedisRateLimiter(url, namespace=namespace, clock=clock)
    yield Setup(redis_limiter, clock, "redis", url, namespace)
    await _drop(url, namespace)
    await redis_limiter.close()


async def _drop(url: str, namespace: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=namespace + ":*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def hits(
    limiter: RateLimiter, n: int, key: str = "user:a", tier: tuple[int, int] = STANDARD,
    quota_key: str | None = None, quota: int | None = None,
) -> list[Decision]:
    """`n` requests one after another, all at the clock's current time."""
    return [await limiter.hit(key, *tier, quota_key=quota_key, quota=quota) for _ in range(n)]


def allowed(decisions: list[Decision]) -> int:
    return sum(d.allowed for d in decisions)


async def test_tiers_and_plans_are_the_contracts() -> None:
    assert TIERS == {"standard": (60, 10), "admin": (120, 20), "service": (300, 50)}
    assert PLAN_QUOTAS == {"startup": 10_000, "scaleup": 50_000, "enterprise": None}


async def test_burst_allows_ten_in_one_second_then_refuses_for_one_second(rl: Setup) -> None:
    start = int(rl.clock())
    first = await hits(rl.limiter, 10)
    assert all(d.allowed for d in first)
    assert [d.remaining for d in first] == list(range(59, 49, -1))
    assert {d.limit for d in first} == {60}
    assert {d.reset for d in first} == {(start // 60 + 1) * 60}

    refused = await rl.limiter.hit("user:a", *STANDARD)
    assert not refused.allowed and refused.reason == "burst"
    assert refused.retry_after == 1 and refused.headers()["Retry-After"] == "1"
    assert refused.remaining == 50  # the minute still has room: only the second is spent

    rl.clock.advance(0.999 - rl.clock() % 1)  # the very end of the same second
    assert not (await rl.limiter.hit("user:a", *STANDARD)).allowed
    rl.clock.to_next_second()
    again = await rl.limiter.hit("user:a", *STANDARD)
    assert again.allowed and again.remaining == 49


async def test_each_tier_has_its_own_burst(rl: Setup) -> None:
    for tier, (per_minute, burst) in TIERS.items():
        decisions = await hits(rl.limiter, burst + 5, key=f"tier:{tier}", tier=(per_minute, burst))
        assert [d.allowed for d in decisions] == [True] * burst + [False] * 5, tier
        assert decisions[0].limit == per_minute and decisions[0].remaining == per_minute - 1


async def test_minute_budget_runs_out_and_rolls_over(rl: Setup) -> None:
    minute_end = (int(rl.clock()) // 60 + 1) * 60
    rl.clock.now = minute_end - 30.0  # thirty seconds before the minute ends
    for _ in range(6):  # six seconds at full burst spend the 60
        assert allowed(await hits(rl.limiter, 10)) == 10
        rl.clock.advance(1)
    refused = await rl.limiter.hit("user:a", *STANDARD)
    assert not refused.allowed and refused.reason == "per minute"
    assert refused.remaining == 0 and refused.limit == 60
    assert refused.reset == minute_end
    assert refused.retry_after == 24  # 30 - 6 seconds left in the minute
    assert int(refused.headers()["Retry-After"]) == 24

    rl.clock.now = minute_end - 0.001
    assert not (await rl.limiter.hit("user:a", *STANDARD)).allowed
    rl.clock.now = float(minute_end)  # a new minute: a full budget again
    fresh = await rl.limiter.hit("user:a", *STANDARD)
    assert fresh.allowed and fresh.remaining == 59 and fresh.reset == minute_end + 60


async def test_burst_spanning_a_minute_boundary_counts_in_both_windows_separately(rl: Setup) -> None:
    minute_end = (int(rl.clock()) // 60 + 1) * 60
    rl.clock.now = minute_end - 0.5
    assert allowed(await hits(rl.limiter, 12)) == 10
    rl.clock.now = minute_end + 0.1
    after = await hits(rl.limiter, 12)
    assert allowed(after) == 10
    assert after[0].remaining == 59  # the new minute did not inherit the old one's count


async def test_refused_requests_consume_nothing(rl: Setup) -> None:
    # 10 allowed and 40 refused in the first second ...
    assert allowed(await hits(rl.limiter, 50)) == 10
    # ... yet the next five seconds still get 50 more: the refusals did not count.
    for _ in range(5):
        rl.clock.advance(1)
        assert allowed(await hits(rl.limiter, 10)) == 10
    rl.clock.advance(1)
    last = await rl.limiter.hit("user:a", *STANDARD)
    assert not last.allowed and last.reason == "per minute"
    assert (await rl.limiter.peek("user:a", 60)).remaining == 0


async def test_refusals_spend_no_daily_quota(rl: Setup) -> None:
    first = await hits(rl.limiter, 15, quota_key="tenant:t", quota=12)  # burst refuses 5: the quota has 2 left, not -3
    assert allowed(first) == 10
    rl.clock.advance(1)
    second = await hits(rl.limiter, 5, quota_key="tenant:t", quota=12)
    assert [d.allowed for d in second] == [True, True, False, False, False]
    assert second[2].reason == "daily quota"


async def test_daily_quota_is_per_tenant_and_resets_at_midnight_utc(rl: Setup) -> None:
    midnight = (int(rl.clock()) // DAY + 1) * DAY
    rl.clock.now = midnight - 3600.25  # 23:00 UTC
    decisions = await hits(rl.limiter, 5, quota_key="tenant:q", quota=5)
    assert all(d.allowed for d in decisions)
    # The quota is the tighter budget, so the headers count it down.
    assert [(d.limit, d.remaining) for d in decisions] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    assert {d.reset for d in decisions} == {midnight}

    sixth = (await hits(rl.limiter, 1, quota_key="tenant:q", quota=5))[0]
    assert not sixth.allowed and sixth.reason == "daily quota"
    assert sixth.retry_after == 3601 and sixth.reset == midnight and sixth.limit == 5
    # Another credential of the same tenant shares the quota; one of another tenant does not.
    other_user = (await hits(rl.limiter, 1, "user:b", quota_key="tenant:q", quota=5))[0]
    assert not other_user.allowed and other_user.reason == "daily quota"
    assert (await rl.limiter.hit("user:b", *STANDARD, quota_key="tenant:other", quota=5)).allowed

    rl.clock.now = float(midnight)
    next_day = (await hits(rl.limiter, 1, quota_key="tenant:q", quota=5))[0]
    assert next_day.allowed and next_day.limit == 5 and next_day.remaining == 4


async def test_no_quota_means_only_the_tier_limits(rl: Setup) -> None:
    # An enterprise tenant (quota None) is limited by its tier alone.
    for _ in range(6):
        assert allowed(await hits(rl.limiter, 10, quota_key="tenant:ent", quota=None)) == 10
        rl.clock.advance(1)
    assert (await hits(rl.limiter, 1, quota_key="tenant:ent", quota=None))[0].reason == "per minute"


async def test_credentials_have_separate_budgets(rl: Setup) -> None:
    assert allowed(await hits(rl.limiter, 12, key="key:one")) == 10
    assert allowed(await hits(rl.limiter, 12, key="key:two")) == 10


async def test_peek_reports_without_spending(rl: Setup) -> None:
    await hits(rl.limiter, 3, key="ip:1.2.3.4")
    for _ in range(3):
        view = await rl.limiter.peek("ip:1.2.3.4", 60)
        assert view.allowed and view.remaining == 57 and view.limit == 60
    assert (await rl.limiter.peek("ip:5.6.7.8", 60)).remaining == 60


async def test_concurrent_hits_never_exceed_the_burst(rl: Setup) -> None:
    decisions = await asyncio.gather(*(rl.limiter.hit("user:c", *STANDARD) for _ in range(40)))
    assert allowed(list(decisions)) == 10


async def test_two_redis_limiters_share_one_budget(redis_url: str) -> None:
    clock = FakeClock()
    namespace = "ronda:test:" + secrets.token_hex(6)
    first = RedisRateLimiter(redis_url, namespace=namespace, clock=clock)
    second = RedisRateLimiter(redis_url, namespace=namespace, clock=clock)
    try:
        results = []
        for i in range(14):
            results.append(await (first if i % 2 else second).hit("user:shared", *STANDARD))
        assert [d.allowed for d in results] == [True] * 10 + [False] * 4
        assert [d.remaining for d in results[:10]] == list(range(59, 49, -1))
        assert (await first.peek("user:shared", 60)).remaining == 50
    finally:
        await _drop(redis_url, namespace)
        await first.close()
        await second.close()


async def test_disabled_limiter_counts_nothing_but_still_reports() -> None:
    limiter = DisabledRateLimiter()
    decisions = [await limiter.hit("user:a", *STANDARD, quota_key="tenant:t", quota=1) for _ in range(500)]
    assert all(d.allowed for d in decisions)
    assert {(d.limit, d.remaining) for d in decisions} == {(60, 60)}
    assert "Retry-After" not in decisions[0].headers()
    assert set(decisions[0].headers()) == {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


def test_retry_after_is_a_whole_second_at_least() -> None:
    decision = Decision(False, 10, 0, 100, retry_after=0, reason="burst")
    assert decision.headers()["Retry-After"] == "1"
    assert Decision(False, 10, -3, 100, retry_after=7).headers()["X-RateLimit-Remaining"] == "0"


def test_backend_is_chosen_by_settings(redis_url: str) -> None:
    assert isinstance(build_rate_limiter(False, redis_url), DisabledRateLimiter)
    assert isinstance(build_rate_limiter(True, ""), MemoryRateLimiter)
    assert isinstance(build_rate_limiter(True, redis_url), RedisRateLimiter)
