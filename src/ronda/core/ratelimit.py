"""Rate limits: one protocol, two backends (in-process and Redis), the same arithmetic in both.

A budget is a per-minute window plus a one-second burst window; a tenant's daily quota is a
third window. A denied request consumes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from ronda.core.errors import AppError

TIERS: dict[str, tuple[int, int]] = {  # tier -> (per minute, burst per second)
    "standard": (60, 10),
    "admin": (120, 20),
    "service": (300, 50),
}
PLAN_QUOTAS: dict[str, int | None] = {"startup": 10_000, "scaleup": 50_000, "enterprise": None}
DAY = 86400


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int = 0
    reason: str = ""

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(self.retry_after, 1))
        return out


class RateLimiter(Protocol):
    async def hit(
        self, key: str, per_minute: int, burst: int, quota_key: str | None = None, quota: int | None = None
    ) -> Decision: ...

    async def peek(self, key: str, per_minute: int) -> Decision: ...

    async def close(self) -> None: ...


def _windows(now: float) -> tuple[int, int, int]:
    return int(now), int(now // 60), int(now // DAY)


def _decide(
    now: float,
    second_count: int,
    minute_count: int,
    day_count: int,
    per_minute: int,
    burst: int,
    quota: int | None,
) -> Decision:
    _, minute, day = _windows(now)
    minute_reset = (minute + 1) * 60
    if quota is not None and day_count >= quota:
        reset = (day + 1) * DAY
        return Decision(False, quota, 0, reset, reset - int(now), "daily quota")
    if minute_count >= per_minute:
        return Decision(False, per_minute, 0, minute_reset, minute_reset - int(now), "per minute")
    if second_count >= burst:
        return Decision(False, per_minute, per_minute - minute_count, minute_reset, 1, "burst")
    remaining = per_minute - minute_count - 1
    if quota is not None and quota - day_count - 1 < remaining:
        return Decision(True, quota, quota - day_count - 1, (day + 1) * DAY)
    return Decision(True, per_minute, remaining, minute_reset)


class MemoryRateLimiter:
    """In-process counters for embedded mode; old windows are dropped as time moves on."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # public so tests can drive a running server's windows with a fake clock
        self._counts: dict[tuple[str, str, int], int] = {}
        self._last_sweep = 0

    def _sweep(self, minute: int) -> None:
        if minute == self._last_sweep:
            return
        self._last_sweep = minute
        now = self.clock()
        second, minute, day = _windows(now)
        current = {"s": second, "m": minute, "d": day}
        self._counts = {k: v for k, v in self._counts.items() if k[2] >= current[k[1]] - 1}

    async def hit(
        self, key: str, per_minute: int, burst: int, quota_key: str | None = None, quota: int | None = None
    ) -> Decision:
        now = self.clock()
        second, minute, day = _windows(now)
        self._sweep(minute)
        s_key, m_key = (key, "s", second), (key, "m", minute)
        # As in the Redis script, the day window is read and counted only when a quota applies.
        use_quota = quota if quota_key else None
        d_key = (quota_key or "", "d", day)
        decision = _decide(
            now,
            self._counts.get(s_key, 0),
            self._counts.get(m_key, 0),
            self._counts.get(d_key, 0) if use_quota is not None else 0,
            per_minute,
            burst,
            use_quota,
        )
        if decision.allowed:
            self._counts[s_key] = self._counts.get(s_key, 0) + 1
            self._counts[m_key] = self._counts.get(m_key, 0) + 1
            if use_quota is not None:
                self._counts[d_key] = self._counts.get(d_key, 0) + 1
        return decision

    async def peek(self, key: str, per_minute: int) -> Decision:
        now = self.clock()
        _, minute, _ = _windows(now)
        used = self._counts.get((key, "m", minute), 0)
        return Decision(True, per_minute, max(per_minute - used, 0), (minute + 1) * 60)

    async def close(self) -> None:
        self._counts.clear()


# Reads three windows, and only if the request is allowed increments them: atomic in Redis.
_HIT_SCRIPT = """
local s = tonumber(redis.call('GET', KEYS[1]) or '0')
local m = tonumber(redis.call('GET', KEYS[2]) or '0')
local d = 0
local quota = tonumber(ARGV[3])
if quota >= 0 then d = tonumber(redis.call('GET', KEYS[3]) or '0') end
if (quota >= 0 and d >= quota) or m >= tonumber(ARGV[1]) or s >= tonumber(ARGV[2]) then
  return {0, s, m, d}
end
redis.call('INCR', KEYS[1]); redis.call('EXPIRE', KEYS[1], 3)
redis.call('INCR', KEYS[2]); redis.call('EXPIRE', KEYS[2], 120)
if quota >= 0 then redis.call('INCR', KEYS[3]); redis.call('EXPIRE', KEYS[3], 172800) end
return {1, s, m, d}
"""


class RedisRateLimiter:
    """Shared counters for scaled mode: every server process draws on one budget."""

    def __init__(self, url: str, *, namespace: str = "ronda:rl", clock: Callable[[], float] = time.time) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_HIT_SCRIPT)
        self._ns = namespace
        self.clock = clock

    async def hit(
        self, key: str, per_minute: int, burst: int, quota_key: str | None = None, quota: int | None = None
    ) -> Decision:
        now = self.clock()
        second, minute, day = _windows(now)
        keys = [
            f"{self._ns}:{key}:s:{second}",
            f"{self._ns}:{key}:m:{minute}",
            f"{self._ns}:{quota_key or '-'}:d:{day}",
        ]
        use_quota = quota if (quota_key and quota is not None) else -1
        try:
            _, s, m, d = (int(x) for x in await self._script(keys=keys, args=[per_minute, burst, use_quota]))
        except RedisError as exc:
            # Fail closed: without the shared counters no budget can be enforced, so nothing is let through.
            raise AppError(503, "Rate limiting unavailable; retry shortly", headers={"Retry-After": "1"}) from exc
        return _decide(now, s, m, d, per_minute, burst, None if use_quota < 0 else use_quota)

    async def peek(self, key: str, per_minute: int) -> Decision:
        now = self.clock()
        _, minute, _ = _windows(now)
        try:
            used = int(await self._redis.get(f"{self._ns}:{key}:m:{minute}") or 0)
        except RedisError:  # only for a response's headers (which may be a 503 about Redis): say none left
            used = per_minute
        return Decision(True, per_minute, max(per_minute - used, 0), (minute + 1) * 60)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


class DisabledRateLimiter:
    """RONDA_RATE_LIMITS=off: headers still tell the budget, nothing is counted or refused."""

    async def hit(
        self, key: str, per_minute: int, burst: int, quota_key: str | None = None, quota: int | None = None
    ) -> Decision:
        minute = int(time.time() // 60)
        return Decision(True, per_minute, per_minute, (minute + 1) * 60)

    async def peek(self, key: str, per_minute: int) -> Decision:
        return await self.hit(key, per_minute, 0)

    async def close(self) -> None:
        return None


def build_rate_limiter(enabled: bool, redis_url: str) -> RateLimiter:
    if not enabled:
        return DisabledRateLimiter()
    if redis_url:
        return RedisRateLimiter(redis_url)
    return MemoryRateLimiter()
