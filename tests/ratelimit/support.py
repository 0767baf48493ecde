"""Helpers for the rate-limit tests: a clock the test moves by hand, and firing inside one real second."""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

DAY = 86400
S = TypeVar("S")
T = TypeVar("T")


def far_day_start() -> int:
    """Midnight UTC of a random day years ahead: shared Redis counters of two runs never meet."""
    return (2_100_000_000 // DAY + secrets.randbelow(20_000)) * DAY


class FakeClock:
    """Stands in for time.time in a limiter; starts at noon UTC of a far-off day unless told otherwise."""

    def __init__(self, start: float | None = None) -> None:
        self.now = float(start if start is not None else far_day_start() + DAY // 2)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def to_next_minute(self) -> None:
        self.now = float((int(self.now) // 60 + 1) * 60)

    def to_next_second(self) -> None:
        self.now = float(int(self.now) + 1)


def drive(server: Any, clock: FakeClock) -> FakeClock:
    """Make a running server's limiter read `clock`: windows move only when the test says so."""
    server.app.state.runtime.limiter.clock = clock
    return clock


async def within_one_second(
    prepare: Callable[[], Awaitable[S]], fire: Callable[[S], Awaitable[T]], attempts: int = 4
) -> T:
    """Prepare (fresh credentials), then run `fire` right after a real second boundary.

    A batch that spills into the next second would meet a fresh burst window and prove nothing,
    so then it is prepared and run again; a result is returned only if all of it happened inside
    one wall-clock second.
    """
    for _ in range(attempts):
        state = await prepare()
        now = time.time()
        await asyncio.sleep(math.ceil(now) - now + 0.005)
        second = math.floor(time.time())
        result = await fire(state)
        if time.time() < second + 0.98:
            return result
    raise AssertionError(f"could not fit the requests into one second in {attempts} attempts")


async def outside_minute_edge(seconds_needed: float) -> None:
    """Wait for the next minute if the current one ends within `seconds_needed`."""
    now = time.time()
    left = 60 - now % 60
    if left < seconds_needed:
        await asyncio.sleep(left + 0.01)


def statuses(responses: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in responses]


def rate_headers(response: httpx.Response) -> tuple[int, int, int]:
    """The three headers as numbers; each must appear exactly once."""
    values = []
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        found = response.headers.get_list(name)
        assert len(found) == 1, (name, found, response.status_code)
        values.append(int(found[0]))
    return values[0], values[1], values[2]
