"""GET /health: concurrent requests share the database check in flight, and never reuse a finished one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from ronda.health.router import DatabaseCheck


class CountingEngine:
    """Stands in for the engine: counts connections and makes each check take a while."""

    def __init__(self, fail: bool = False) -> None:
        self.checks = 0
        self.fail = fail

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Any]:
        self.checks += 1
        await asyncio.sleep(0.05)
        if self.fail:
            raise OSError("connection refused")

        class Conn:
            async def execute(self, statement: Any) -> None:
                return None

        yield Conn()


async def test_concurrent_checks_share_the_one_in_flight() -> None:
    engine = CountingEngine()
    check = DatabaseCheck(engine)  # type: ignore[arg-type]
    assert all(await asyncio.gather(*(check.ok() for _ in range(50))))
    assert engine.checks == 1
    assert await check.ok()  # the finished check is not reused: a new one runs
    assert engine.checks == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_others_check() -> None:
    engine = CountingEngine()
    check = DatabaseCheck(engine)  # type: ignore[arg-type]
    leaving = asyncio.ensure_future(check.ok())
    staying = asyncio.ensure_future(check.ok())
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert await staying is True
    assert engine.checks == 1


async def test_a_failed_check_is_unavailable_and_the_next_one_tries_again() -> None:
    engine = CountingEngine(fail=True)
    check = DatabaseCheck(engine)  # type: ignore[arg-type]
    assert await asyncio.gather(check.ok(), check.ok()) == [False, False]
    engine.fail = False
    assert await check.ok() is True
    assert engine.checks == 2


async def test_every_health_path_answers_and_is_documented(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/health", "/v1/health", "/api/v1/health"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.json()["database"] == "ok"
        assert response.headers["x-request-id"] and response.headers["x-content-type-options"] == "nosniff"
    assert (await client.post("/health")).status_code == 405
    spec = (await client.get("/openapi.json")).json()
    assert spec["paths"]["/api/v1/health"]["get"]["operationId"] == "health"
